"""The canonical operator kinds, their attributes, and their FLOP and byte counts.

hwsim does not speak aten. A traced model is reduced to a small vocabulary of
kinds that every target knows how to cost:

==============  ==========================================  =======================
kind            attributes                                  FLOPs
==============  ==========================================  =======================
matmul          batch, m, n, k [, bias, trans_a, trans_b]  2·batch·m·n·k
attention       batch, heads, kv_heads, head_dim, q_len,    2·batch·heads·q_len·(keys
                kv_len, causal [, v_head_dim, v_len,        ·head_dim + values·v_head_dim)
                window, sparse_keys, sparse_block]
softmax         rows, cols                                  5·rows·cols
layernorm       rows, cols                                  8·rows·cols
rmsnorm         rows, cols                                  4·rows·cols
elementwise     fn, elements                                elements·FN_FLOPS[fn]
reduce          fn, elements, out_elements                  elements
embedding       tokens, dim                                 0
rope            elements                                    3·elements
topk            rows, n, k                                  rows·n
gather          elements                                    0
concat          elements                                    0
kv_write        elements                                    0
allreduce       elements, devices                           0
view            (none)                                      0
moe_experts     tokens, hidden, ffn, experts, top_k, act    tokens·k·(2·hidden·g·ffn
                [, gated, active_k, kept]                   + 2·ffn·hidden + a·ffn)
==============  ==========================================  =======================

``matmul``'s ``trans_a`` and ``trans_b`` (booleans, default false) say how an
operand is *stored*, not what is computed: C = A·B always, with A [batch?, m, k]
and B [batch?, k, n] as math; ``trans_a`` means A's memory holds Aᵀ, row-major
[k, m] (m contiguous), ``trans_b`` that B's holds Bᵀ, [n, k] (k contiguous). This
is what the kernel reads: ``nn.Linear``'s weight is [out, in] and its product
x·Wᵀ has ``trans_b`` (PyTorch hands the weight to ``cublasGemmEx`` as the
transposed operand); Q·Kᵀ over a key cache stored [kv_len, head_dim] has it too.
Element counts and FLOPs do not depend on them; a target may cost the layout
(which library kernel variant runs, how its loads coalesce) or ignore it.

``attention`` is fused: its FLOPs are those of its two GEMMs (Q·Kᵀ and P·V) over
the whole score matrix, masked or not. Its key and value operands always hold
the ``kv_len`` rows of each key/value head (the cache, or the keys of this
call); two attributes say that each query uses fewer of them, selected at run
time: ``v_len`` (default ``kv_len``) is the number of value rows each query
weights (SpAtten's local value pruning: the top-``v_len`` probabilities of the
row, found inside the attention), and ``sparse_keys`` the number of keys each
block of ``sparse_block`` queries (default 1) attends to (block-sparse
attention: HiP, top-k attention), for scores and values alike. FLOPs count
``keys = sparse_keys or kv_len`` and ``values = min(v_len, keys)``. With
``lsb_bits`` (SpAtten's progressive quantization) a fourth operand holds the
keys' low bits; which rows re-fetch them depends on the probabilities, so it is
no compulsory traffic, and the recomputed scores are the target's to count.
``kv_stored`` says where the ``kv_len`` keys come from: the survivors of token
pruning among that many cached tokens, so a target with a row-buffer model
fetches them scattered (SpAtten's traces); it changes no count. The softmax
and scaling inside it are vector work a target costs from the score elements.
A causal attention still counts the full matrix (the convention of FLOP
counters and of the FastV/DivPrune papers); a target that skips masked blocks
saves time, not counted FLOPs. ``window`` (sliding-window
attention, Mistral's 4,096) lets a query see only the ``window`` most recent
keys up to its own position (``pos - key < window``, as Hugging Face's
sliding-window mask); it too is a mask: counted FLOPs stay those of the full
matrix. What a kernel *executes* is :func:`executed_flops`: the score blocks
that hold at least one visible element, every element of such a block
computed (a diagonal block is executed whole), wholly masked blocks skipped.
Throughput and utilisation are computed from executed FLOPs.

Other per-element conventions: softmax = max, subtract, exp, sum, divide;
layernorm = mean, subtract, square, sum, rsqrt-scale, affine mul and add (8);
rmsnorm = square, sum, scale, weight (4); rope = x·cos + rotate(x)·sin (3).

``moe_experts`` is a mixture-of-experts FFN block after its router (Mixtral's
``MixtralSparseMoeBlock`` less the gate): inputs, in order, ``x`` [tokens,
hidden], ``index`` [tokens, top_k] (int64, the router's top-k expert ids),
``weight`` [tokens, top_k] (the normalized routing weights), and the experts'
weights as parameters, ``w_in`` [experts, g·ffn, hidden] (with ``gated``, the
default, g = 2: gate and up projections stacked, as transformers'
``MixtralExperts.gate_up_proj``; else g = 1) and ``w_out`` [experts, hidden, ffn]
(``down_proj``); output [tokens, hidden]. ``act`` is ``silu`` (gated: SwiGLU,
silu(gate)·up) or ``gelu``/``gelu_tanh``/``relu`` (gated: GeGLU-like act(gate)·up).
Every routed token runs ``k`` expert FFNs, whoever the experts are, so the FLOPs
are independent of how balanced the routing is: ``k = active_k`` (default
``top_k``; fewer when experts are skipped or top-k is reduced, the router still
computes its ``top_k``), a = FN_FLOPS[act] (+1 for the gate's product when gated;
SwiGLU's 3 = FN_FLOPS["swiglu"]). The combine (scaling by the routing weights
and the sum over the k experts) is not in these FLOPs; it is counted once the op
is expanded, as the ``elementwise`` mul and ``reduce`` sum it is
(:mod:`hwsim.moe`). ``kept`` lists the original ids of the experts that
remain after expert pruning (its length is ``experts``: the weight tensors hold
only those). Compulsory bytes: ``x``, ``index``, ``weight`` and the output, plus
the weights of the experts that receive at least one token under *balanced*
routing, ``min(experts, tokens·k)`` of them (a decode step of one token with
top-2 reads two experts). Targets never cost this op: it is expanded before
simulation into the gather / per-expert matmuls / combine that grouped-GEMM MoE
kernels run (:mod:`hwsim.moe`), so that the per-expert token counts of
the workload's routing decide what each expert costs; a target given one raises
:class:`~hwsim.errors.UnsupportedOpError`.

Bytes are the *compulsory* traffic of the op as written: each input read once,
each output written once, except where a kind reads less than its inputs
(``embedding`` and ``gather`` read only the selected rows, ``kv_write`` writes
only the new entries into the cache, ``view`` moves nothing). ``allreduce`` is
the sum of a tensor over ``devices`` tensor-parallel devices: communication,
whose additions are not counted as FLOPs; its IR bytes are the local read and
write, and the bytes on the links are the target's to cost. What a target
really moves (re-reads, tiling, caches) is the target's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from .graph import Graph, Op

# FLOPs per output element of an elementwise function. Transcendentals count as
# one operation (a special-function-unit op), as PyTorch's and fvcore's counters do.
FN_FLOPS: dict[str, int] = {
    "add": 1, "sub": 1, "mul": 1, "div": 1, "neg": 1, "abs": 1, "max": 1, "min": 1,
    "relu": 1, "exp": 1, "log": 1, "sqrt": 1, "rsqrt": 1, "pow": 1, "tanh": 1,
    "sigmoid": 1, "erf": 1, "sin": 1, "cos": 1, "reciprocal": 1, "square": 1,
    "where": 1, "compare": 1, "clamp": 1, "fma": 2,
    "gelu": 5,  # 0.5·x·(1 + erf(x/√2)): mul, erf, add, mul, mul
    "gelu_tanh": 8,  # tanh approximation: x³, mul, add, mul, tanh, add, mul, mul
    "silu": 2,  # x·sigmoid(x)
    "swiglu": 3,  # silu(a)·b
    "bilinear": 7,  # a 2x2-tap blend: 4 weight multiplies, 3 adds (one output element)
    "copy": 0, "cast": 0, "fill": 0,
}

# Attributes any op may carry: a free-text note, and the pruning method whose
# machinery the op is (importance scores, top-k, token selection), so reports
# can show what pruning itself costs.
COMMON_ATTRS = ("note", "pruning")

REDUCE_FNS = ("sum", "mean", "max", "min", "argmax", "argmin", "prod", "any", "all", "norm")


@dataclass(frozen=True)
class KindSpec:
    """What hwsim knows about one op kind."""

    name: str
    required: tuple[str, ...]  # attributes every op of this kind carries
    optional: tuple[str, ...]
    flops: Callable[["Op"], int]
    doc: str


def _a(op: "Op", key: str, default=None):
    return op.attrs.get(key, default)


def attention_keys(a) -> tuple[int, int]:
    """(keys, values) each query of an attention with attributes ``a`` uses."""
    kv = a["kv_len"]
    keys = min(kv, a["sparse_keys"]) if a.get("sparse_keys") else kv
    return keys, min(keys, a.get("v_len", kv))


def _attention_flops(op: "Op") -> int:
    a = op.attrs
    dv = a.get("v_head_dim", a["head_dim"])
    keys, values = attention_keys(a)
    return 2 * a["batch"] * a["heads"] * a["q_len"] * (keys * a["head_dim"] + values * dv)


# Kinds no target costs: a graph pass expands them into the kinds above before
# simulation (moe_experts: hwsim.moe), and the simulator refuses them.
EXPANDED_KINDS = frozenset({"moe_experts"})

MOE_ACTS = ("silu", "gelu", "gelu_tanh", "relu")


def moe_active_k(a) -> int:
    """Experts each token of a ``moe_experts`` op with attributes ``a`` runs."""
    k = a.get("active_k")
    return int(a["top_k"] if k is None else k)


def moe_act_flops(a) -> int:
    """FLOPs per ffn element of a ``moe_experts`` activation: the function, and the
    product with the up projection when gated (SwiGLU: 2 + 1 = FN_FLOPS["swiglu"])."""
    return FN_FLOPS[a["act"]] + (1 if a.get("gated", True) else 0)


def moe_expert_flops(a, tokens: int) -> int:
    """FLOPs of one expert FFN run on ``tokens`` tokens: the input projection
    (hidden -> g·ffn), the activation, the output projection (ffn -> hidden)."""
    h, f = a["hidden"], a["ffn"]
    g = 2 if a.get("gated", True) else 1
    return tokens * (2 * h * g * f + 2 * f * h + moe_act_flops(a) * f)


def moe_active_experts(a) -> int:
    """Experts that receive at least one token under balanced routing."""
    return min(a["experts"], a["tokens"] * moe_active_k(a))


def _moe_flops(op: "Op") -> int:
    a = op.attrs
    return moe_expert_flops(a, a["tokens"] * moe_active_k(a))


KINDS: dict[str, KindSpec] = {
    k.name: k
    for k in [
        KindSpec("matmul", ("batch", "m", "n", "k"), ("bias", "trans_a", "trans_b"),
                 lambda op: 2 * op.attrs["batch"] * op.attrs["m"] * op.attrs["n"] * op.attrs["k"],
                 "C[batch, m, n] = A[batch?, m, k] @ B[batch?, k, n] (+ bias); trans_a: A stored "
                 "[k, m], trans_b: B stored [n, k]"),
        KindSpec("attention",
                 ("batch", "heads", "kv_heads", "head_dim", "q_len", "kv_len", "causal"),
                 ("v_head_dim", "scale", "masked", "v_len", "window", "sparse_keys",
                  "sparse_block", "lsb_bits", "kv_stored"),
                 _attention_flops,
                 "softmax(Q Kᵀ · scale + mask) V, fused"),
        KindSpec("softmax", ("rows", "cols"), (),
                 lambda op: 5 * op.attrs["rows"] * op.attrs["cols"], "softmax over the last dim"),
        KindSpec("layernorm", ("rows", "cols"), (),
                 lambda op: 8 * op.attrs["rows"] * op.attrs["cols"], "LayerNorm"),
        KindSpec("rmsnorm", ("rows", "cols"), (),
                 lambda op: 4 * op.attrs["rows"] * op.attrs["cols"], "RMSNorm"),
        KindSpec("elementwise", ("fn", "elements"), (),
                 lambda op: op.attrs["elements"] * FN_FLOPS[op.attrs["fn"]],
                 "an elementwise function"),
        KindSpec("reduce", ("fn", "elements", "out_elements"), (),
                 lambda op: op.attrs["elements"], "a reduction"),
        KindSpec("embedding", ("tokens", "dim"), (), lambda op: 0, "table lookup"),
        KindSpec("rope", ("elements",), (), lambda op: 3 * op.attrs["elements"],
                 "rotary position embedding"),
        KindSpec("topk", ("rows", "n", "k"), (), lambda op: op.attrs["rows"] * op.attrs["n"],
                 "k largest of n, per row"),
        KindSpec("gather", ("elements",), (), lambda op: 0, "index select"),
        KindSpec("concat", ("elements",), (), lambda op: 0, "concatenation"),
        KindSpec("kv_write", ("elements",), (), lambda op: 0, "append to the KV cache"),
        KindSpec("allreduce", ("elements", "devices"), (), lambda op: 0,
                 "sum over tensor-parallel devices"),
        KindSpec("view", (), (), lambda op: 0, "reshape, slice or broadcast: free"),
        KindSpec("moe_experts", ("tokens", "hidden", "ffn", "experts", "top_k", "act"),
                 ("gated", "active_k", "kept"), _moe_flops,
                 "routed expert FFNs (expanded before simulation)"),
    ]
}


def flops(op: "Op") -> int:
    """FLOPs of ``op`` in the counting convention (attention: the full score matrix)."""
    return KINDS[op.kind].flops(op)


def visible_scores(q_len: int, kv_len: int, causal: bool, window: int = 0,
                   block_q: int = 1, block_kv: int = 1) -> int:
    """Score elements of one head a kernel with ``block_q x block_kv`` tiles computes.

    Query ``i`` sits at position ``i + kv_len - q_len`` (bottom-right aligned, as
    a decode step or a chunk of prefill over a cache); it sees the keys at or
    before that position when ``causal``, and only the ``window`` most recent of
    them (``pos - key < window``) when ``window`` > 0; without ``causal`` a window
    is symmetric (``|pos - key| < window``). A tile holding at least one visible
    element is computed whole; other tiles are skipped. With 1 x 1 tiles the
    count is exact: ``q·(q+1)/2`` for a square causal attention.
    """
    q, kv = int(q_len), int(kv_len)
    if q <= 0 or kv <= 0:
        return 0
    if not causal and window <= 0:
        return q * kv
    bq, bkv = max(1, int(block_q)), max(1, int(block_kv))
    off = kv - q
    if bq == 1 and bkv == 1:  # one row at a time: the sum in closed form
        # row i sees keys max(0, i+off-window+1) .. min(kv-1, i+off[+window-1])
        w = int(window)
        top = (kv - 1, off) if causal else ((kv - 1, off + w - 1) if window > 0 else (kv - 1, kv))
        bottom = (0, off - w + 1) if window > 0 else (0, -q)
        return _clipped_sum(q, top, bottom)
    blocks = -(-q // bq)
    if blocks > _PYTHON_BLOCKS:  # many row blocks: as arrays
        return _visible_blocks_np(q, kv, causal, window, bq, bkv)
    total = 0
    for first in range(0, q, bq):
        last = min(first + bq, q) - 1
        hi = min(kv - 1, last + off) if causal else kv - 1
        if window > 0:
            lo = max(0, first + off - int(window) + 1)
            if not causal:
                hi = min(kv - 1, last + off + int(window) - 1)
        else:
            lo = 0
        if hi >= lo:
            total += (last - first + 1) * (min(kv, (hi // bkv + 1) * bkv) - (lo // bkv) * bkv)
    return total


# Row blocks up to which :func:`visible_scores` sums in Python (no numpy import): a
# tiled kernel's few hundred blocks; more are summed as arrays.
_PYTHON_BLOCKS = 256


def _clipped_sum(n: int, top: tuple[int, int], bottom: tuple[int, int]) -> int:
    """``sum(max(0, min(A, i + a) - max(B, i + b) + 1) for i in range(n))`` for
    ``top = (A, a)``, ``bottom = (B, b)``, exactly, in a few steps: the term is
    linear between the rows where the min or the max switches sides (slope -1, 0 or
    1), so each piece is an arithmetic series, cut where the term reaches zero."""
    (hi_cap, hi_off), (lo_cap, lo_off) = top, bottom

    def term(i: int) -> int:
        return min(hi_cap, i + hi_off) - max(lo_cap, i + lo_off) + 1

    cuts = sorted({0, n, *(c for c in (hi_cap - hi_off + 1, lo_cap - lo_off + 1) if 0 < c < n)})
    total = 0
    for s0, e0 in zip(cuts, cuts[1:]):
        v0 = term(s0)
        slope = term(s0 + 1) - v0 if e0 - s0 > 1 else 0
        if slope == 0:
            total += (e0 - s0) * max(0, v0)
            continue
        if slope > 0:  # positive from the row where the term reaches 1
            first, last = max(s0, s0 + 1 - v0), e0 - 1
        else:  # positive up to the row where it falls to 1
            first, last = s0, min(e0 - 1, s0 + v0 - 1)
        if last >= first:
            k = last - first + 1
            total += k * (term(first) + term(last)) // 2
    return total


def _visible_blocks_np(q: int, kv: int, causal: bool, window: int, bq: int, bkv: int) -> int:
    """:func:`visible_scores` over many row blocks, as arrays."""
    import numpy as np  # noqa: PLC0415 - numpy is a core dependency, imported when needed

    off = kv - q
    first = np.arange(0, q, bq, dtype=np.int64)  # first query row of each block
    last = np.minimum(first + bq, q) - 1
    rows = last - first + 1
    hi = np.minimum(kv - 1, last + off) if causal else np.full_like(first, kv - 1)
    if window > 0:
        lo = np.maximum(0, first + off - int(window) + 1)
        if not causal:
            hi = np.minimum(kv - 1, last + off + int(window) - 1)
    else:
        lo = np.zeros_like(first)
    ok = hi >= lo
    b0, b1 = lo // bkv, hi // bkv
    width = np.minimum(kv, (b1 + 1) * bkv) - b0 * bkv
    return int(np.sum(np.where(ok, rows * width, 0)))


def executed_flops(op: "Op", block_q: int = 1, block_kv: int = 1) -> int:
    """FLOPs a kernel executes for ``op``: as :func:`flops`, except that an
    attention with a causal or sliding-window mask skips the score tiles
    (``block_q x block_kv``) that lie wholly under the mask."""
    if op.kind != "attention":
        return flops(op)
    a = op.attrs
    causal, window = bool(a["causal"]), int(a.get("window", 0) or 0)
    if (not causal and window <= 0) or a.get("sparse_keys"):
        return flops(op)  # a block-sparse attention computes what it selected
    q, kv = a["q_len"], a["kv_len"]
    seen = visible_scores(q, kv, causal, window, block_q, block_kv)
    d = a["head_dim"]
    dv = a.get("v_head_dim", d)
    v_len = a.get("v_len", kv)
    # Q·Kᵀ over the visible scores; P·V over the same share of the value rows
    per_head = 2 * seen * d + 2 * seen * dv * v_len / kv
    return int(round(a["batch"] * a["heads"] * per_head))


def read_bytes(op: "Op", graph: "Graph") -> int:
    """Compulsory bytes ``op`` reads (see the module docstring)."""
    t = graph.tensors
    kind = op.kind
    if kind == "view":
        return 0
    if kind == "embedding":
        table, idx = t[op.inputs[0]], t[op.inputs[1]]
        out = t[op.outputs[0]]
        return out.bytes + idx.bytes if table.kind == "param" else table.bytes + idx.bytes
    if kind == "gather":
        out = t[op.outputs[0]]
        return out.bytes + sum(t[i].bytes for i in op.inputs[1:])
    if kind == "kv_write":
        return t[op.inputs[0]].bytes
    if kind == "attention":
        a = op.attrs
        kv = max(1, a["kv_len"])
        k_rows, v_rows = attention_rows(a)
        extra = op.inputs[4:] if a.get("lsb_bits") else op.inputs[3:]  # LSBs: data-dependent
        return (graph.stored_bytes(op.inputs[0])
                + graph.stored_bytes(op.inputs[1]) * k_rows // kv
                + graph.stored_bytes(op.inputs[2]) * v_rows // kv
                + sum(graph.stored_bytes(i) for i in extra))
    if kind == "moe_experts":
        a = op.attrs
        per_expert = (graph.stored_bytes(op.inputs[3]) + graph.stored_bytes(op.inputs[4])) \
            // max(1, a["experts"])
        return (sum(graph.stored_bytes(i) for i in op.inputs[:3])
                + per_expert * moe_active_experts(a))
    return sum(graph.stored_bytes(i) for i in op.inputs)


def attention_rows(a) -> tuple[int, int]:
    """(key rows, value rows) of each key/value head that some query of an
    attention with attributes ``a`` uses, so that the op must read: all
    ``kv_len``, or fewer under a sliding window, a block-sparse selection
    (``ceil(q / sparse_block)`` blocks of each of the group's query heads select
    ``sparse_keys`` each) or local value pruning (``v_len`` per query row)."""
    kv, q = a["kv_len"], a["q_len"]
    group = max(1, a["heads"] // max(1, a["kv_heads"]))
    k_rows = kv
    if a.get("window"):
        k_rows = window_keys(q, kv, int(a["window"]), bool(a["causal"]))
    if a.get("sparse_keys"):
        blocks = -(-q // max(1, int(a.get("sparse_block", 1) or 1)))
        k_rows = min(k_rows, blocks * group * int(a["sparse_keys"]))
    v_rows = k_rows
    if a.get("v_len") is not None and a["v_len"] < kv:
        v_rows = min(v_rows, group * q * int(a["v_len"]))
    return k_rows, v_rows


def window_keys(q_len: int, kv_len: int, window: int, causal: bool) -> int:
    """Keys that at least one of ``q_len`` queries sees under a sliding window
    (bottom-right aligned, as :func:`visible_scores`: the queries sit at positions
    ``kv - q .. kv - 1``): from ``kv - q - window + 1`` to the last query's position,
    or ``window - 1`` past it when the window is symmetric, clipped to the keys."""
    if window <= 0:
        return kv_len
    lo = max(0, kv_len - q_len - window + 1)
    hi = min(kv_len - 1, kv_len - 1 + (0 if causal else window - 1))
    return max(0, hi - lo + 1)


def write_bytes(op: "Op", graph: "Graph") -> int:
    """Compulsory bytes ``op`` writes."""
    t = graph.tensors
    if op.kind == "view":
        return 0
    if op.kind == "kv_write":
        return t[op.inputs[0]].bytes
    return sum(t[o].bytes for o in op.outputs)


# the largest size any input may give: an op's size attribute, a tensor dimension, an ops
# list's or a trace's sizes (2**40: a terabyte-class dimension, past what any machine here
# holds, and where float arithmetic of byte counts stays exact); one bound for every reader
MAX_SIZE = 1 << 40


def check(op: "Op", graph: "Graph") -> list[str]:
    """Problems with ``op``'s attributes and tensor sizes (empty when fine)."""
    spec = KINDS.get(op.kind)
    if spec is None:
        return [f"unknown op kind {op.kind!r} (known: {', '.join(KINDS)})"]
    if not op.outputs:
        return [f"a {op.kind} op writes no tensor (outputs is empty)"]
    errs = [f"missing attribute {a!r}" for a in spec.required if a not in op.attrs]
    extra = set(op.attrs) - set(spec.required) - set(spec.optional) - set(COMMON_ATTRS)
    errs += [f"unexpected attribute {a!r}" for a in sorted(extra)]
    if errs:
        return errs
    for key in spec.required + spec.optional:
        v = op.attrs.get(key)
        if key in ("trans_a", "trans_b"):
            if v is not None and not isinstance(v, bool):
                errs.append(f"attribute {key}={v!r} must be true or false")
            continue
        if key in ("fn", "act"):
            if key in op.attrs and not isinstance(v, str):
                errs.append(f"attribute {key}={v!r} must be a name")
            continue
        if key in ("causal", "bias", "masked", "scale", "gated", "kept") or key in COMMON_ATTRS:
            continue
        if v is None and key in spec.required:
            errs.append(f"attribute {key} must be a non-negative integer, got null")
        elif v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0
                                or v > MAX_SIZE):
            errs.append(f"attribute {key}={v!r} must be a non-negative integer of at most "
                        f"{MAX_SIZE:,}")
    if errs:
        return errs
    if op.kind == "elementwise" and op.attrs["fn"] not in FN_FLOPS:
        return [f"unknown elementwise fn {op.attrs['fn']!r}"]
    if op.kind == "reduce" and op.attrs["fn"] not in REDUCE_FNS:
        return [f"unknown reduce fn {op.attrs['fn']!r}"]
    if op.kind == "moe_experts":
        errs = _check_moe_attrs(op.attrs)
        if errs:
            return errs
    try:
        return _check_sizes(op, graph)
    except (IndexError, KeyError) as e:
        return [f"wrong number of inputs/outputs for {op.kind} ({e})"]


def _check_moe_attrs(a) -> list[str]:
    errs = []
    if a["act"] not in MOE_ACTS:
        errs.append(f"act={a['act']!r} is not one of {', '.join(MOE_ACTS)}")
    if not isinstance(a.get("gated", True), bool):
        errs.append(f"gated={a['gated']!r} must be true or false")
    if a["experts"] < 1:
        errs.append("experts must be at least 1")
    if a["top_k"] < 1:
        errs.append("top_k must be at least 1")
    k = moe_active_k(a)
    if k > min(a["top_k"], a["experts"]):
        errs.append(f"active_k={k} exceeds top_k={a['top_k']} or experts={a['experts']}")
    kept = a.get("kept")
    if kept is not None:
        ok = isinstance(kept, (list, tuple)) and all(
            isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in kept)
        if not ok or len(set(kept)) != len(kept):
            errs.append(f"kept={kept!r} must be a list of distinct non-negative expert ids")
        elif len(kept) != a["experts"]:
            errs.append(f"kept lists {len(kept)} experts, expected experts={a['experts']}")
    return errs


def _n(graph: "Graph", tid: int) -> int:
    return graph.tensors[tid].numel


def _check_sizes(op: "Op", g: "Graph") -> list[str]:
    a, k = op.attrs, op.kind
    ins, outs = op.inputs, op.outputs
    errs: list[str] = []

    def want(what: str, got: int, *allowed: int) -> None:
        if got not in allowed:
            errs.append(f"{what} has {got} elements, expected "
                        + " or ".join(str(x) for x in allowed))

    if k == "matmul":
        b, m, n, kk = a["batch"], a["m"], a["n"], a["k"]
        want("input A", _n(g, ins[0]), b * m * kk, m * kk)
        want("input B", _n(g, ins[1]), b * kk * n, kk * n)
        want("output", _n(g, outs[0]), b * m * n)
    elif k == "attention":
        b, h, hk, d = a["batch"], a["heads"], a["kv_heads"], a["head_dim"]
        dv = a.get("v_head_dim", d)
        if hk == 0 or h % hk:
            errs.append(f"heads={h} is not a multiple of kv_heads={hk}")
        want("query", _n(g, ins[0]), b * h * a["q_len"] * d)
        want("key", _n(g, ins[1]), b * hk * a["kv_len"] * d)
        want("value", _n(g, ins[2]), b * hk * a["kv_len"] * dv)
        for key in ("v_len", "sparse_keys"):
            if a.get(key, 0) > a["kv_len"]:
                errs.append(f"{key}={a[key]} exceeds kv_len={a['kv_len']}")
        if a.get("sparse_block") and not a.get("sparse_keys"):
            errs.append("sparse_block without sparse_keys")
        if 0 < a.get("kv_stored", 0) < a["kv_len"]:
            errs.append(f"kv_stored={a['kv_stored']} is below kv_len={a['kv_len']} (the "
                        f"cached tokens the kept keys lie among hold them all)")
        if a.get("lsb_bits"):
            if len(ins) < 4:
                errs.append("lsb_bits needs a fourth input, the keys' low-bit plane")
            else:
                want("key LSB plane", _n(g, ins[3]), b * hk * a["kv_len"] * d)
        want("output", _n(g, outs[0]), b * h * a["q_len"] * dv)
    elif k in ("softmax", "layernorm", "rmsnorm"):
        want("input", _n(g, ins[0]), a["rows"] * a["cols"])
        want("output", _n(g, outs[0]), a["rows"] * a["cols"])
    elif k == "elementwise":
        want("output", _n(g, outs[0]), a["elements"])
    elif k == "reduce":
        want("input", _n(g, ins[0]), a["elements"])
        want("output", _n(g, outs[0]), a["out_elements"])
    elif k == "embedding":
        want("indices", _n(g, ins[1]), a["tokens"])
        want("output", _n(g, outs[0]), a["tokens"] * a["dim"])
    elif k == "rope":
        want("output", _n(g, outs[0]), a["elements"])
    elif k == "topk":
        want("input", _n(g, ins[0]), a["rows"] * a["n"])
        want("output", _n(g, outs[0]), a["rows"] * a["k"])
        if a["k"] > a["n"]:
            errs.append(f"k={a['k']} exceeds n={a['n']}")
    elif k == "gather":
        want("output", _n(g, outs[0]), a["elements"])
    elif k == "concat":
        want("output", _n(g, outs[0]), a["elements"])
        want("inputs together", sum(_n(g, i) for i in ins), a["elements"])
    elif k == "kv_write":
        want("new entries", _n(g, ins[0]), a["elements"])
    elif k == "allreduce":
        want("input", _n(g, ins[0]), a["elements"])
        want("output", _n(g, outs[0]), a["elements"])
        if a["devices"] < 2:
            errs.append(f"devices={a['devices']} must be at least 2")
    elif k == "moe_experts":
        t, h, f, e, tk = a["tokens"], a["hidden"], a["ffn"], a["experts"], a["top_k"]
        gm = 2 if a.get("gated", True) else 1
        if len(ins) != 5:
            errs.append(f"expected 5 inputs (x, index, weight, w_in, w_out), got {len(ins)}")
            return errs
        want("input x", _n(g, ins[0]), t * h)
        want("index", _n(g, ins[1]), t * tk)
        want("routing weights", _n(g, ins[2]), t * tk)
        want("w_in", _n(g, ins[3]), e * gm * f * h)
        want("w_out", _n(g, ins[4]), e * h * f)
        want("output", _n(g, outs[0]), t * h)
        for name, tid in (("w_in", ins[3]), ("w_out", ins[4])):
            if g.tensors[g.root(tid)].kind != "param":
                errs.append(f"{name} must be a parameter (the experts' weights)")
    elif k == "view":
        # a reshape keeps the element count; a slice has fewer, a broadcast a multiple;
        # a strided view (as_strided: overlapping windows of its input) any count
        n_in, n_out = _n(g, ins[0]), _n(g, outs[0])
        strided = str(a.get("note", "")).startswith("strided")
        if n_out > n_in and not strided and (n_in == 0 or n_out % n_in):
            errs.append(f"output has {n_out} elements: not a reshape, slice or broadcast "
                        f"of the input's {n_in}")
    return errs
