"""Recording a forward pass: what ran, on which values, inside which module.

The recorder watches one forward pass of a model whose tensors are *fake*
(:class:`torch._subclasses.fake_tensor.FakeTensorMode`): every tensor has a
shape, a dtype and a device but no storage, so a 7B model in fp16 costs no
memory and its forward runs in about a second. It listens at five places:

1. **A dispatch mode** (:class:`torch.utils._python_dispatch.TorchDispatchMode`)
   sees every aten call below the autograd layer, after composite ops such as
   ``torch.matmul`` and ``F.linear`` have been decomposed into ``mm``/``bmm``/
   ``addmm``. Each call with a tensor result becomes a :class:`RawNode`; calls
   that return no tensor (``prim.device``, ``aten.sym_size``, metadata asserts,
   ``.item()``) are noise and vanish. A view op (``func.is_view``: ``view``,
   ``transpose``, ``expand``, ``slice``, ``alias``...) records no node: its
   result is a raw tensor with ``base`` set. An op that writes into one of its
   inputs (``add_``, ``copy_``, ``out=``) gets a fresh tensor *version*, so
   the graph stays single-assignment. A ``clone``/``contiguous`` of a slice or a
   broadcast is a layout artefact of PyTorch's reshape (it appears for some
   batch sizes and not others) and is recorded as a view too. Nodes whose
   inputs carry no data (masks, position ids, rotary tables) are not recorded
   at all; their results are ``const`` tensors, each with an abstract value
   when it is one that masks are built from (:mod:`hwsim.trace.masks`).
2. **A function mode** (:class:`torch.overrides.TorchFunctionMode`) catches
   ``F.scaled_dot_product_attention`` before it is decomposed and records it as
   one ``hwsim.sdpa`` node. Its result is made as an empty tensor of the output
   shape (``(*batch, q_len, v_head_dim)``) instead of running the decomposition:
   the values are fake anyway, and the decomposition is a quarter of the time
   of a 7B trace. A function mode does not see calls made *inside* another
   torch function (``nn.MultiheadAttention``'s
   ``F.multi_head_attention_forward`` calls SDPA there), so the aten
   attention kernels SDPA dispatches to (``_scaled_dot_product_flash_attention_for_cpu``,
   ``_efficient_``, ``_cudnn_``...) are recorded as ``hwsim.sdpa`` nodes too.
   Either node keeps the call's ``is_causal`` and its ``attn_mask`` (read by
   :mod:`hwsim.trace.masks`: which scores the mask hides, from how constants
   were built, since fake tensors have no values).
3. **Global module hooks** keep the stack of module paths
   (``model.layers.3.self_attn``), so every node knows where it ran, and close
   *regions*: everything recorded inside a module whose class name ends in
   ``RMSNorm`` is one ``rmsnorm``; a tanh-approximated GELU module written as
   eight Python ops is one ``elementwise`` ``gelu_tanh``. Calls of a model's
   ``apply_rotary_pos_emb`` are wrapped the same way (one ``rope`` per result).
4. **The KV cache**: ``transformers``' ``Cache.update`` is wrapped. A
   ``DynamicLayer`` stores the first keys of a prefill without any aten op, and
   a cache implementation's concatenations say nothing about which tensors are
   the cache, so each update becomes two ``hwsim.kv_write`` nodes (K and V),
   reading the new entries and the past cache, writing the full cache.
5. **Experts modules** (:mod:`hwsim.trace.moe`): a mixture-of-experts bank
   (``MixtralExperts``, ``Qwen2MoeExperts``... with 3-D ``gate_up_proj`` and
   ``down_proj``) is a leaf. Its ``forward`` is replaced, for the duration of
   the recording, by one that records a single ``hwsim.moe_experts`` node (the
   tokens, the router's top-k ids and weights, the two weight parameters) and
   returns an empty tensor of the tokens' shape: the eager forward loops over
   the experts the routing hit, which depends on values fake tensors do not
   have. The router before it is ordinary tensor code and is recorded as such.

Recorded tensor identity is by Python object: the recorder keeps every tensor
it has seen alive for the duration of the trace, so ``id()`` is never reused.
Writes through a view into its base (``x[:, :4].copy_(y)``) version the view
only; the zoo's models do not do this.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from typing import Any, Callable, Iterable

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from . import masks, moe
from .raw import RawNode, RawTensor, RawTrace, Region, TRef

DTYPES: dict[torch.dtype, str] = {
    torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32",
    torch.float64: "fp64", torch.int64: "int64", torch.int32: "int32",
    torch.int16: "int16", torch.int8: "int8", torch.uint8: "uint8", torch.bool: "bool",
    torch.float8_e4m3fn: "fp8", torch.float8_e5m2: "fp8",
}

# Activation modules whose forward is a chain of Python ops for one function.
ACTIVATION_REGIONS: dict[str, str] = {
    "NewGELUActivation": "gelu_tanh",
    "FastGELUActivation": "gelu_tanh",
    "GELUTanh": "gelu_tanh",
    "PytorchGELUTanh": "gelu_tanh",
    "GELUActivation": "gelu",
}

# Rotary functions of transformers' modeling files, wrapped into one ``rope`` op per
# result: the language models' and Qwen2.5-VL's vision tower's (2-D rotary).
ROPE_FUNCTIONS = ("apply_rotary_pos_emb", "apply_rotary_pos_emb_vision")

_COPIES = ("aten.clone.default", "aten._to_copy.default")
# Not views by schema, but free aliases at inference time.
_VIEW_LIKE = frozenset(("aten._unsafe_view.default", "aten.dropout.default",
                        "aten.feature_dropout.default", "aten.alpha_dropout.default"))
_SDPA = torch.nn.functional.scaled_dot_product_attention
# The aten kernels F.scaled_dot_product_attention dispatches to (output first).
SDPA_ATEN = frozenset(("scaled_dot_product_attention", "_scaled_dot_product_flash_attention",
                       "_scaled_dot_product_flash_attention_for_cpu",
                       "_scaled_dot_product_efficient_attention",
                       "_scaled_dot_product_cudnn_attention",
                       "_scaled_dot_product_fused_attention_overrideable"))


def hw_dtype(dtype: torch.dtype) -> str:
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ValueError(f"hwsim has no name for torch dtype {dtype}") from None


# aten matrix products -> the positions of their A and B operands
_MATMUL_OPERANDS = {"mm": (0, 1), "bmm": (0, 1), "addmm": (1, 2), "baddbmm": (1, 2)}


def stored_transposed(t: torch.Tensor) -> bool:
    """Whether the matrix in the last two dims of ``t`` is stored column-major: a
    transposed view (``w.t()``, ``k.transpose(-2, -1)``) whose rows are not contiguous
    but whose columns are. A kernel reads such an operand as the transposed one (PyTorch
    passes it to cuBLAS as 'T' instead of copying it). A dim of size 1 has no order."""
    if t.dim() < 2 or t.shape[-1] == 1 or t.shape[-2] == 1:
        return False
    return t.stride(-1) != 1 and t.stride(-2) == 1


def _operand_layout(packet: str, args: tuple, kwargs: dict) -> dict[str, bool]:
    """``trans_a`` / ``trans_b`` of an aten matrix product (only those that are true,
    so a product of row-major operands records nothing)."""
    pos = _MATMUL_OPERANDS.get(packet)
    if pos is None:
        return {}
    out = {}
    for key, i in zip(("trans_a", "trans_b"), pos):
        t = args[i] if len(args) > i else None
        if isinstance(t, torch.Tensor) and stored_transposed(t):
            out[key] = True
    return out


def _flat_tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, torch.Tensor)]
    return []


class Recorder:
    """Builds a :class:`RawTrace` from one forward pass of ``model``."""

    def __init__(self, model: torch.nn.Module):
        self.trace = RawTrace()
        self.suppress = 0
        self._ids: dict[int, int] = {}
        self._keep: list[torch.Tensor] = []
        self._paths: dict[int, str] = {}
        for path, m in model.named_modules(remove_duplicate=False):
            self._paths.setdefault(id(m), path)
        self._params = {id(p) for p in model.parameters()}
        self._stack: list[str] = [""]
        self._starts: list[int] = []
        self._names: dict[Any, str] = {}
        for path, m in model.named_modules():
            if isinstance(m, torch.nn.MultiheadAttention):
                self.trace.heads[path] = m.num_heads  # its eager path merges batch and heads
            flag = getattr(m, "is_causal", None)
            if isinstance(flag, bool):
                self.trace.causal[path] = flag
                window = _sliding_window(m)
                if window:
                    self.trace.window[path] = window
        self._rope_modules = _rope_modules(model)
        self._buffer_values = mask_buffers(model)
        self._experts = moe.find_experts(model)
        self._experts_modules = [m for m in model.modules() if id(m) in self._experts]

    # ---------------------------------------------------------------- tensors
    @property
    def module(self) -> str:
        return self._stack[-1]

    def _new(self, t: torch.Tensor, role: str, data: bool, base: int | None = None) -> int:
        tid = len(self.trace.tensors)
        self.trace.tensors.append(RawTensor(tid, tuple(t.shape), hw_dtype(t.dtype), role, data,
                                            base, len(self.trace.nodes)))
        self._ids[id(t)] = tid
        self._keep.append(t)
        return tid

    def add_input(self, t: torch.Tensor, role: str = "input") -> int:
        """Register a model input (floating tensors carry data; ids and masks do not)."""
        data = role == "kv_cache" or t.is_floating_point()
        return self._new(t, role, data)

    def tensor_id(self, t: torch.Tensor, role: str = "const") -> int:
        """The raw id of ``t``, registering a tensor first seen here as a source."""
        tid = self._ids.get(id(t))
        if tid is not None:
            return tid
        if id(t) in self._params:
            return self._new(t, "param", True)
        tid = self._new(t, role, role == "kv_cache")
        value = self._buffer_values.get(id(t))
        if value is not None:
            self.trace.values[tid] = value
        return tid

    def _encode(self, value: Any, ins: list[int]) -> Any:
        if isinstance(value, torch.Tensor):
            tid = self.tensor_id(value)
            ins.append(tid)
            return TRef(tid)
        if isinstance(value, (list, tuple)):
            return tuple(self._encode(v, ins) for v in value)
        return value

    def _name(self, func: Any) -> str:
        name = self._names.get(func)
        if name is None:
            name = self._names[func] = str(func)
        return name

    # ---------------------------------------------------------------- aten
    def on_aten(self, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        outs = _flat_tensors(out)
        if not outs:
            return
        ins: list[int] = []
        enc_args = self._encode(args, ins)
        enc_kwargs = {k: self._encode(v, ins) for k, v in kwargs.items()} if kwargs else {}
        tensors = self.trace.tensors
        data = any(tensors[i].data for i in ins)
        name = self._name(func)
        if (func.is_view or name in _VIEW_LIKE
                or (name in _COPIES and ins and self._is_reshaping_copy(name, ins[0], args, out))):
            base = ins[0] if ins else None
            expand = name.startswith("aten.expand")
            value = self.trace.values.get(base) if base is not None and not data else None
            for o in outs:
                tid = self._new(o, "view" if base is not None else "const", data, base)
                t = tensors[tid]
                t.module, t.expand = self.module, expand
                if value is not None and masks.view_keeps(name.split(".")[1], enc_args,
                                                          tensors[base].shape, t.shape):
                    self.trace.values[tid] = value
            return
        if not data:
            value = None
            if len(outs) == 1:
                value = masks.evaluate(name.split(".")[1], enc_args, enc_kwargs,
                                       self.trace.values.get, outs[0].dtype == torch.bool)
            for o in outs:
                tid = self._new(o, "const", False)
                if value is not None:
                    self.trace.values[tid] = value
            return
        if name.split(".")[1] in SDPA_ATEN:
            self._aten_sdpa(func, args, kwargs, ins, outs)
            return
        out_ids = tuple(self._new(o, "op", True) for o in outs)
        attrs = _operand_layout(name.split(".")[1], args, kwargs)
        self.trace.nodes.append(RawNode(name, tuple(ins), out_ids, self.module, enc_args,
                                        enc_kwargs, attrs=attrs))

    def _is_reshaping_copy(self, name: str, tid: int, args: tuple, out: Any) -> bool:
        """A same-dtype copy of a slice or broadcast view (PyTorch's reshape of such a view)."""
        t = self.trace.tensors[tid]
        if t.base is None or t.numel == self.trace.tensors[self.trace.root(tid)].numel:
            return False
        return name != "aten._to_copy.default" or out.dtype == args[0].dtype

    # ---------------------------------------------------------------- synthesised nodes
    def _sdpa_attrs(self, bound: dict[str, Any]) -> dict[str, Any]:
        """``is_causal`` and the mask (a tensor id, or None) of an SDPA call."""
        mask = bound.get("attn_mask", bound.get("attn_bias"))
        attrs: dict[str, Any] = {"is_causal": bool(bound.get("is_causal", False))}
        if isinstance(mask, torch.Tensor):
            attrs["mask"] = self.tensor_id(mask)
            attrs["mask_convention"] = "keep" if mask.dtype == torch.bool else "additive"
        return attrs

    def _aten_sdpa(self, func: Any, args: tuple, kwargs: dict, ins: list[int],
                   outs: list[torch.Tensor]) -> None:
        """An aten attention kernel (SDPA called inside another torch function)."""
        names = [a.name for a in func._schema.arguments]
        bound = dict(zip(names, args))
        bound.update(kwargs)
        q, k, v = (self.tensor_id(bound[n]) for n in ("query", "key", "value"))
        oid = self._new(outs[0], "op", True)
        for extra in outs[1:]:  # log-sum-exp and friends: for a backward pass only
            self._new(extra, "const", False)
        self.trace.nodes.append(RawNode("hwsim.sdpa", (q, k, v), (oid,), self.module,
                                        attrs=self._sdpa_attrs(bound)))

    def on_sdpa(self, func: Callable, args: tuple, kwargs: dict) -> Any:
        names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale")
        bound = dict(zip(names, args))
        bound.update(kwargs)
        q, k, v = bound["query"], bound["key"], bound["value"]
        ins = (self.tensor_id(q), self.tensor_id(k), self.tensor_id(v))
        # Only the result's shape matters, and running SDPA's decomposition on fake
        # tensors costs a quarter of a 7B trace: make the result directly.
        lead_q, lead_v = tuple(q.shape[:-2]), tuple(v.shape[:-2])
        if bound.get("enable_gqa") and lead_v:
            lead_v = lead_v[:-1] + lead_q[-1:]
        shape = torch.broadcast_shapes(lead_q, lead_v) + (q.shape[-2], v.shape[-1])
        self.suppress += 1
        try:
            out = q.new_empty(shape)
        finally:
            self.suppress -= 1
        oid = self._new(out, "op", True)
        self.trace.nodes.append(RawNode("hwsim.sdpa", ins, (oid,), self.module,
                                        attrs=self._sdpa_attrs(bound)))
        return out

    def on_cache_update(self, orig: Callable, cache: Any, key: torch.Tensor,
                        value: torch.Tensor, layer_idx: int, *args, **kwargs) -> Any:
        past = None
        layers = getattr(cache, "layers", [])
        if layer_idx < len(layers):
            layer = layers[layer_idx]
            keys = getattr(layer, "keys", None)
            if getattr(layer, "is_initialized", False) and keys is not None and keys.numel():
                past = (self.tensor_id(keys, "kv_cache"), self.tensor_id(layer.values, "kv_cache"))
        new = (self.tensor_id(key), self.tensor_id(value))
        self.suppress += 1
        try:
            result = orig(cache, key, value, layer_idx, *args, **kwargs)
        finally:
            self.suppress -= 1
        for which, (new_id, full) in enumerate(zip(new, result[:2])):
            ins = (new_id,) if past is None else (new_id, past[which])
            oid = self._new(full, "op", True)
            self.trace.nodes.append(RawNode(
                "hwsim.kv_write", ins, (oid,), self.module,
                attrs={"elements": self.trace.tensors[new_id].numel},
                hint="kv_write_" + "kv"[which]))
        return result

    def on_experts(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> torch.Tensor:
        """An experts module's call (:mod:`hwsim.trace.moe`): one ``moe_experts`` node; its
        forward (a loop over the experts the routing hit) is not run."""
        x, index, weight = moe.call_operands(args, kwargs)
        _, static = self._experts[id(module)]
        top_k = index.shape[-1]
        ins = (self.tensor_id(x), self.tensor_id(index), self.tensor_id(weight),
               self.tensor_id(module.gate_up_proj), self.tensor_id(module.down_proj))
        self.suppress += 1
        try:
            out = x.new_empty(x.shape)
        finally:
            self.suppress -= 1
        oid = self._new(out, "op", True)
        attrs = {"tokens": index.numel() // top_k, **static, "top_k": top_k}
        self.trace.nodes.append(RawNode("hwsim.moe_experts", ins, (oid,), self.module,
                                        attrs=attrs))
        return out

    # ---------------------------------------------------------------- regions
    def _region(self, kind: str, start: int, outputs: Iterable[torch.Tensor], module: str,
                hints: tuple[str, ...] = (), fn: str = "") -> None:
        outs = tuple(self._ids[id(t)] for t in outputs if id(t) in self._ids)
        if outs and len(self.trace.nodes) > start:
            self.trace.regions.append(Region(kind, start, len(self.trace.nodes), outs, module,
                                             hints, fn))

    def _pre_hook(self, module: torch.nn.Module, args: Any) -> None:
        self._stack.append(self._paths.get(id(module), self._stack[-1]))
        self._starts.append(len(self.trace.nodes))

    def _post_hook(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        start = self._starts.pop()
        path = self._stack.pop()
        if self.suppress:
            return
        cls = type(module).__name__
        if cls.endswith("RMSNorm"):
            self._region("rmsnorm", start, _flat_tensors(output), path)
        elif cls in ACTIVATION_REGIONS:
            self._region("elementwise", start, _flat_tensors(output), path,
                         fn=ACTIVATION_REGIONS[cls])

    def _experts_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        if self.suppress:
            return type(module).forward(module, *args, **kwargs)
        return self.on_experts(module, args, kwargs)

    def _wrap_rope(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def rope(*args, **kwargs):
            if self.suppress:
                return fn(*args, **kwargs)
            start = len(self.trace.nodes)
            result = fn(*args, **kwargs)
            outs = _flat_tensors(result)
            hints = ("rope_q", "rope_k") if len(outs) == 2 else ()
            self._region("rope", start, outs, self.module, hints)
            return result
        return rope

    # ---------------------------------------------------------------- context
    @contextlib.contextmanager
    def recording(self):
        """Hooks, patches and modes active for the forward pass; all removed on exit."""
        from torch.nn.modules import module as nn_module

        with contextlib.ExitStack() as stack:
            pre = nn_module.register_module_forward_pre_hook(self._pre_hook)
            stack.callback(pre.remove)
            post = nn_module.register_module_forward_hook(self._post_hook, always_call=True)
            stack.callback(post.remove)
            for mod in self._rope_modules:
                for name in ROPE_FUNCTIONS:
                    orig = getattr(mod, name, None)
                    if callable(orig):
                        setattr(mod, name, self._wrap_rope(orig))
                        stack.callback(setattr, mod, name, orig)
            for mod in self._experts_modules:
                stack.callback(_unpatch, mod, "forward", mod.__dict__.get("forward"))
                mod.forward = functools.partial(self._experts_forward, mod)
            cache_cls = _cache_class()
            if cache_cls is not None:
                orig_update = cache_cls.update
                recorder = self

                def update(cache, key, value, layer_idx, *args, **kwargs):
                    if recorder.suppress:
                        return orig_update(cache, key, value, layer_idx, *args, **kwargs)
                    return recorder.on_cache_update(orig_update, cache, key, value, layer_idx,
                                                    *args, **kwargs)

                cache_cls.update = update
                stack.callback(setattr, cache_cls, "update", orig_update)
            stack.enter_context(torch.no_grad())
            stack.enter_context(_FunctionRecorder(self))
            stack.enter_context(_AtenRecorder(self))
            yield self


class _AtenRecorder(TorchDispatchMode):
    def __init__(self, recorder: Recorder):
        super().__init__()
        self.recorder = recorder

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if not self.recorder.suppress:
            self.recorder.on_aten(func, args, kwargs, out)
        return out


class _FunctionRecorder(TorchFunctionMode):
    def __init__(self, recorder: Recorder):
        super().__init__()
        self.recorder = recorder

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is _SDPA and not self.recorder.suppress:
            return self.recorder.on_sdpa(func, args, kwargs)
        return func(*args, **kwargs)


def _unpatch(obj: Any, name: str, old: Any) -> None:
    """Undo an instance attribute set over a class attribute (``old`` None: there was none)."""
    if old is None:
        obj.__dict__.pop(name, None)
    else:
        setattr(obj, name, old)


def _sliding_window(module: torch.nn.Module) -> int:
    """The sliding window an attention module applies (0: none).

    Hugging Face attention modules that mix window and full layers keep their own
    ``sliding_window`` (None on a full-attention layer: Qwen2, Gemma); Mistral's
    read it from the config (``sliding_window: 4096`` in Mistral-7B-v0.1's
    config.json), so the module's own attribute wins when it has one.
    """
    if hasattr(module, "sliding_window"):
        window = module.sliding_window
    else:
        window = getattr(getattr(module, "config", None), "sliding_window", None)
    return window if isinstance(window, int) and not isinstance(window, bool) and window > 0 \
        else 0


def mask_buffers(model: torch.nn.Module, limit: int = 1 << 24) -> dict[int, Any]:
    """Abstract values (:mod:`hwsim.trace.masks`) of the buffers that hold a mask:
    buffers with values (not on the meta device) whose last two dims, the same in
    every leading slice, are one value or two values split by a diagonal band
    (``tril``, ``triu``, a sliding window). Read before the fake forward starts."""
    from torch._subclasses.fake_tensor import unset_fake_temporarily

    out: dict[int, Any] = {}
    with unset_fake_temporarily(), torch.no_grad():
        for buf in model.buffers():
            if (buf.device.type == "meta" or buf.dim() < 2 or buf.numel() > limit
                    or min(buf.shape[-2:]) < 2 or buf.is_complex()):
                continue
            flat = buf.detach().reshape(-1, *buf.shape[-2:])
            if not bool((flat == flat[:1]).all()):
                continue
            value = _band_of(flat[0])
            if value is not None:
                out[id(buf)] = value
    return out


def _band_of(m: torch.Tensor) -> Any:
    values = torch.unique(m)
    if values.numel() == 1:
        return masks.Fill(values[0].item())
    if values.numel() != 2:
        return None
    n, k = m.shape
    d = torch.arange(k)[None, :] - torch.arange(n)[:, None]  # j - i
    for inside, outside in ((values[0], values[1]), (values[1], values[0])):
        hit = m == inside
        lo, hi = int(d[hit].min()), int(d[hit].max())
        if bool((hit == ((d >= lo) & (d <= hi))).all()):
            return masks.Band(None if lo <= -(n - 1) else lo, None if hi >= k - 1 else hi,
                              inside.item(), outside.item())
    return None


def _rope_modules(model: torch.nn.Module) -> list[Any]:
    """The Python modules defining the model's classes that have a rotary function."""
    seen: dict[str, Any] = {}
    for m in model.modules():
        name = type(m).__module__
        if name not in seen:
            mod = sys.modules.get(name)
            if mod is not None and any(hasattr(mod, f) for f in ROPE_FUNCTIONS):
                seen[name] = mod
    return list(seen.values())


def _cache_class() -> Any:
    mod = sys.modules.get("transformers.cache_utils")
    return getattr(mod, "Cache", None) if mod is not None else None
