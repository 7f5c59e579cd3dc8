"""From aten calls to hwsim's canonical op kinds.

Each recorded aten call (a :class:`~hwsim.trace.raw.RawNode`) is mapped here to
one op of :mod:`hwsim.ir.kinds`, with the attributes that kind needs and the
tensor arguments it reads, in the order the kind expects (``matmul`` reads A
then B then the bias). The mapping is by aten packet name (``aten.addmm``);
where an overload matters (``pow`` by 2 is a square), the handler looks at the
arguments.

What maps to what:

=====================================================  ============================
aten                                                   kind
=====================================================  ============================
mm, addmm (bias), bmm, baddbmm (bias), convolution     matmul (a convolution is
                                                       its im2col GEMM; an operand
                                                       that is a transposed view:
                                                       trans_a / trans_b)
embedding                                              embedding (table, indices)
native_layer_norm                                      layernorm (mean and rstd,
                                                       training-only outputs, dropped)
rms_norm                                               rmsnorm
_softmax, _safe_softmax, softmax, _log_softmax         softmax
add, mul, gelu, silu, exp, where, compare... (and      elementwise (``fn`` from
their in-place forms), clone / same-dtype _to_copy    :data:`ELEMENTWISE`); copies
(copy), dtype _to_copy (cast), repeat, pad             are ``copy``, casts ``cast``
sum, mean, amax, max.dim, argmax, prod, norm, var,     reduce
pooling (max_pool2d, avg_pool2d, adaptive_avg_pool2d)
topk, sort                                             topk
index, index_select, gather, scatter, index_put...     gather
cat, stack                                             concat
upsample_bilinear2d, upsample_nearest2d (resampling)   elementwise (``fma`` / ``copy``
                                                       per output element)
=====================================================  ============================

A ``_to_copy`` that reads a parameter is a weight cast that a deployment does
once at load time; it maps to nothing (its result *is* the parameter). An aten
op with no entry raises :class:`UnsupportedAtenOp` naming the op and the module
it ran in: hwsim never silently counts an op as free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import HwsimError
from .raw import RawNode, RawTrace, TRef


class UnsupportedAtenOp(HwsimError):
    """A traced aten op that hwsim has no canonical kind for."""

    def __init__(self, target: str, module: str):
        self.target = target
        self.module = module
        super().__init__(f"cannot map aten op {target} (in module {module or '<root>'!r}) to an "
                         f"hwsim op kind; add it to hwsim.trace.aten_map")


@dataclass(frozen=True)
class Mapped:
    """One canonical op: ``kind`` with ``attrs``, reading ``inputs``, writing ``outputs``."""

    kind: str
    attrs: dict[str, Any]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Alias:
    """The node's output is its input (a cast of a parameter)."""

    source: int


ELEMENTWISE: dict[str, str] = {
    "add": "add", "sub": "sub", "rsub": "sub", "mul": "mul", "div": "div", "neg": "neg",
    "abs": "abs", "exp": "exp", "log": "log", "sqrt": "sqrt", "rsqrt": "rsqrt", "pow": "pow",
    "tanh": "tanh", "sigmoid": "sigmoid", "erf": "erf", "sin": "sin", "cos": "cos",
    "reciprocal": "reciprocal", "relu": "relu", "silu": "silu", "gelu": "gelu", "where": "where",
    "masked_fill": "where", "tril": "where", "triu": "where", "clamp": "clamp",
    "clamp_min": "clamp", "clamp_max": "clamp", "hardtanh": "clamp", "maximum": "max",
    "minimum": "min", "square": "square", "addcmul": "fma", "addcdiv": "fma",
    "eq": "compare", "ne": "compare", "lt": "compare", "le": "compare", "gt": "compare",
    "ge": "compare", "logical_not": "compare", "logical_and": "compare",
    "logical_or": "compare", "bitwise_not": "compare", "bitwise_and": "compare",
    "bitwise_or": "compare", "sign": "compare", "isnan": "compare", "isinf": "compare",
    "fill": "fill", "zero": "fill", "clone": "copy", "copy": "copy", "repeat": "copy",
    "repeat_interleave": "copy", "constant_pad_nd": "copy", "flip": "copy", "roll": "copy",
    "lerp": "fma", "exp2": "exp", "expm1": "exp", "log1p": "log", "log2": "log",
    "floor": "clamp", "ceil": "clamp", "round": "clamp", "trunc": "clamp",
}

REDUCE: dict[str, str] = {
    "sum": "sum", "mean": "mean", "amax": "max", "amin": "min", "max": "max", "min": "min",
    "argmax": "argmax", "argmin": "argmin", "prod": "prod", "any": "any", "all": "all",
    "norm": "norm", "linalg_vector_norm": "norm", "var": "norm", "std": "norm",
    "var_mean": "norm", "std_mean": "norm", "logsumexp": "sum", "cumsum": "sum",
    "cumprod": "prod", "max_pool1d": "max", "max_pool2d": "max", "max_pool3d": "max",
    "max_pool2d_with_indices": "max", "max_pool3d_with_indices": "max",
    "avg_pool1d": "mean", "avg_pool2d": "mean", "avg_pool3d": "mean",
    "adaptive_avg_pool1d": "mean", "adaptive_avg_pool2d": "mean", "_adaptive_avg_pool2d": "mean",
    "adaptive_avg_pool3d": "mean", "_adaptive_avg_pool3d": "mean",
    "adaptive_max_pool2d": "max",
}

SOFTMAX = ("_softmax", "_safe_softmax", "softmax", "_log_softmax", "log_softmax")
GATHER = ("index", "index_select", "gather", "take", "take_along_dim", "scatter",
          "scatter_add", "scatter_reduce", "index_put", "index_add", "index_copy",
          "masked_scatter", "index_fill", "embedding_bag")


def packet(target: str) -> str:
    """``aten.add_.Tensor`` -> ``add_``."""
    parts = target.split(".")
    return parts[1] if len(parts) > 1 else target


def _arg(node: RawNode, pos: int, name: str, default: Any = None) -> Any:
    if name in node.kwargs:
        return node.kwargs[name]
    return node.args[pos] if len(node.args) > pos else default


def _tid(value: Any) -> int:
    if not isinstance(value, TRef):
        raise TypeError(f"expected a tensor argument, got {value!r}")
    return value.id


def map_node(node: RawNode, trace: RawTrace) -> Mapped | Alias:
    """The canonical op for ``node`` (see the module docstring)."""
    if node.target.startswith("hwsim."):
        return Mapped(node.target[len("hwsim."):], dict(node.attrs), node.inputs, node.outputs)
    name = packet(node.target)
    handler = _HANDLERS.get(name)
    if handler is not None:
        return handler(node, trace)
    base = name[:-1] if name.endswith("_") and not name.startswith("_") else name
    if base in ELEMENTWISE:
        return _elementwise(node, trace, ELEMENTWISE[base])
    if base in REDUCE:
        return _reduce(node, trace, REDUCE[base])
    if base in SOFTMAX:
        return _softmax(node, trace)
    if base in GATHER:
        return _gather(node, trace)
    raise UnsupportedAtenOp(node.target, node.module)


# ---------------------------------------------------------------------- helpers
def _shape(trace: RawTrace, tid: int) -> tuple[int, ...]:
    return trace.tensors[tid].shape


def _numel(trace: RawTrace, tid: int) -> int:
    return trace.tensors[tid].numel


def _elementwise(node: RawNode, trace: RawTrace, fn: str) -> Mapped:
    out = node.outputs[0]
    name = packet(node.target)
    ins = node.inputs
    if name == "copy_":  # copy_(dst, src): the old contents of dst are not read
        ins = node.inputs[1:]
    elif name.startswith("pow") and _arg(node, 1, "exponent") == 2:
        fn = "square"
    elif name.startswith("gelu") and _arg(node, 1, "approximate", "none") == "tanh":
        fn = "gelu_tanh"
    return Mapped("elementwise", {"fn": fn, "elements": _numel(trace, out)}, ins, (out,))


def _to_copy(node: RawNode, trace: RawTrace) -> Mapped | Alias:
    src, out = node.inputs[0], node.outputs[0]
    if trace.tensors[trace.root(src)].role == "param":
        return Alias(src)
    fn = "copy" if trace.tensors[src].dtype == trace.tensors[out].dtype else "cast"
    return Mapped("elementwise", {"fn": fn, "elements": _numel(trace, out)}, (src,), (out,))


def _reduce(node: RawNode, trace: RawTrace, fn: str) -> Mapped:
    src, out = node.inputs[0], node.outputs[0]
    # a pooling's argmax indices are kept for a backward pass only
    outs = node.outputs[:1] if "pool" in packet(node.target) else node.outputs
    return Mapped("reduce", {"fn": fn, "elements": _numel(trace, src),
                             "out_elements": _numel(trace, out)}, (src,), outs)


def _softmax(node: RawNode, trace: RawTrace) -> Mapped:
    src, out = node.inputs[0], node.outputs[0]
    shape = _shape(trace, src)
    dim = _arg(node, 1, "dim", -1)
    cols = shape[dim] if shape else 1
    rows = math.prod(shape) // cols if cols else 0
    return Mapped("softmax", {"rows": rows, "cols": cols}, (src,), (out,))


def _gather(node: RawNode, trace: RawTrace) -> Mapped:
    out = node.outputs[0]
    return Mapped("gather", {"elements": _numel(trace, out)}, node.inputs, (out,))


def _layout(node: RawNode) -> dict[str, bool]:
    """The operands' storage order the recorder saw (``trans_a`` / ``trans_b`` when
    true: a transposed view handed to the kernel as is,
    :func:`hwsim.trace.recorder.stored_transposed`)."""
    return {k: True for k in ("trans_a", "trans_b") if node.attrs.get(k)}


def _mm(node: RawNode, trace: RawTrace) -> Mapped:
    a, b = node.inputs[:2]
    (m, k), n = _shape(trace, a), _shape(trace, b)[1]
    return Mapped("matmul", {"batch": 1, "m": m, "n": n, "k": k, **_layout(node)}, (a, b),
                  node.outputs)


def _addmm(node: RawNode, trace: RawTrace) -> Mapped:
    bias, a, b = (_tid(_arg(node, i, key)) for i, key in enumerate(("self", "mat1", "mat2")))
    (m, k), n = _shape(trace, a), _shape(trace, b)[1]
    return Mapped("matmul", {"batch": 1, "m": m, "n": n, "k": k, "bias": True, **_layout(node)},
                  (a, b, bias), node.outputs)


def _bmm(node: RawNode, trace: RawTrace) -> Mapped:
    a, b = node.inputs[:2]
    (bt, m, k), n = _shape(trace, a), _shape(trace, b)[2]
    return Mapped("matmul", {"batch": bt, "m": m, "n": n, "k": k, **_layout(node)}, (a, b),
                  node.outputs)


def _baddbmm(node: RawNode, trace: RawTrace) -> Mapped:
    bias, a, b = (_tid(_arg(node, i, key)) for i, key in enumerate(("self", "batch1", "batch2")))
    (bt, m, k), n = _shape(trace, a), _shape(trace, b)[2]
    attrs = {"batch": bt, "m": m, "n": n, "k": k, **_layout(node)}
    ins: tuple[int, ...] = (a, b)
    if _arg(node, 3, "beta", 1) != 0:
        attrs["bias"] = True
        ins = (a, b, bias)
    return Mapped("matmul", attrs, ins, node.outputs)


def _convolution(node: RawNode, trace: RawTrace) -> Mapped:
    """A convolution as its im2col GEMM: M = N·output positions, K = C/g·kernel, N = O/g."""
    x, w = _tid(node.args[0]), _tid(node.args[1])
    bias = node.args[2] if len(node.args) > 2 else None
    groups = _arg(node, 8, "groups", 1)
    xs, ws, os_ = _shape(trace, x), _shape(trace, w), _shape(trace, node.outputs[0])
    m = os_[0] * math.prod(os_[2:])
    k = ws[1] * math.prod(ws[2:])
    n = ws[0] // groups
    attrs: dict[str, Any] = {"batch": groups, "m": m, "n": n, "k": k}
    ins: tuple[int, ...] = (x, w)
    extra = {}
    if math.prod(xs) != groups * m * k:
        extra["im2col"] = (groups * m * k,)  # overlapping or padded windows: patches copied
    if isinstance(bias, TRef):
        attrs["bias"] = True
        ins = ins + (bias.id,)
    return Mapped("matmul", attrs, ins, node.outputs, extra)


def _embedding(node: RawNode, trace: RawTrace) -> Mapped:
    table, idx = node.inputs[:2]
    return Mapped("embedding", {"tokens": _numel(trace, idx), "dim": _shape(trace, table)[-1]},
                  (table, idx), node.outputs)


def _layer_norm(node: RawNode, trace: RawTrace) -> Mapped:
    x = _tid(node.args[0])
    cols = math.prod(_arg(node, 1, "normalized_shape"))
    rows = _numel(trace, x) // cols
    return Mapped("layernorm", {"rows": rows, "cols": cols}, node.inputs, node.outputs[:1])


def _rms_norm(node: RawNode, trace: RawTrace) -> Mapped:
    x = _tid(node.args[0])
    cols = math.prod(_arg(node, 1, "normalized_shape"))
    return Mapped("rmsnorm", {"rows": _numel(trace, x) // cols, "cols": cols}, node.inputs,
                  node.outputs[:1])


def _batch_norm(node: RawNode, trace: RawTrace) -> Mapped:
    """Inference batch norm: a per-channel scale and shift of every element."""
    out = node.outputs[0]
    return Mapped("elementwise", {"fn": "fma", "elements": _numel(trace, out)}, node.inputs,
                  (out,))


def _topk(node: RawNode, trace: RawTrace) -> Mapped:
    src = node.inputs[0]
    shape = _shape(trace, src)
    dim = _arg(node, 2, "dim", -1)
    n = shape[dim]
    k = _arg(node, 1, "k")
    return Mapped("topk", {"rows": math.prod(shape) // n, "n": n, "k": k}, (src,), node.outputs)


def _sort(node: RawNode, trace: RawTrace) -> Mapped:
    """A full sort is a top-k with k = n (``sort.stable`` takes ``dim`` by keyword)."""
    src = node.inputs[0]
    shape = _shape(trace, src)
    dim = node.kwargs.get("dim", -1)
    if node.target == "aten.sort.default" and len(node.args) > 1:
        dim = node.args[1]
    n = shape[dim]
    return Mapped("topk", {"rows": math.prod(shape) // n, "n": n, "k": n}, (src,), node.outputs)


def _upsample(node: RawNode, trace: RawTrace) -> Mapped:
    """A resampling (``F.interpolate``): one output element per position, read from
    the whole input (LLaVA-OneVision's bilinear downscales of its feature maps).

    Bilinear blends the 4 nearest inputs with 2 x 2 weights: ``bilinear``, 4
    multiplies and 3 adds per output element (``hwsim.ir.kinds.FN_FLOPS``); the
    nearest entry is a ``copy``. These ops are a few MFLOPs beside the vision
    tower's TFLOPs."""
    src, out = node.inputs[0], node.outputs[0]
    fn = "copy" if "nearest" in packet(node.target) else "bilinear"
    return Mapped("elementwise", {"fn": fn, "elements": _numel(trace, out)}, (src,), (out,))


def _cat(node: RawNode, trace: RawTrace) -> Mapped:
    out = node.outputs[0]
    return Mapped("concat", {"elements": _numel(trace, out)}, node.inputs, (out,))


_HANDLERS: dict[str, Callable[[RawNode, RawTrace], Any]] = {
    "mm": _mm, "addmm": _addmm, "bmm": _bmm, "baddbmm": _baddbmm,
    "convolution": _convolution, "_convolution": _convolution,
    "embedding": _embedding, "native_layer_norm": _layer_norm, "layer_norm": _layer_norm,
    "rms_norm": _rms_norm, "_fused_rms_norm": _rms_norm,
    "_native_batch_norm_legit_no_training": _batch_norm, "native_batch_norm": _batch_norm,
    "topk": _topk, "sort": _sort, "cat": _cat, "stack": _cat, "_to_copy": _to_copy,
    "upsample_bilinear2d": _upsample, "_upsample_bilinear2d_aa": _upsample,
    "upsample_nearest2d": _upsample, "_upsample_nearest_exact2d": _upsample,
}
