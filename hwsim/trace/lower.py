"""Lowering the fused raw record into an :class:`hwsim.ir.Graph`.

Each data node becomes one op (:mod:`hwsim.trace.aten_map` says which), in the
order the nodes ran, so the ops are in topological order. Graph tensors are
created when first needed, which keeps their numbering a function of the
model's structure alone (a template needs the same ids at every size).

What a consumer reads:

* a **produced value**: the tensor its producing op wrote;
* a **view** with as many elements as the tensor it views (``view``,
  ``transpose``, ``permute``, ``_unsafe_view``, a full slice): the viewed tensor
  itself, so views cost nothing and leave no op. The canonical kinds check
  sizes by element count, so a ``(b·s, h)`` GEMM operand that is a view of a
  ``(b, s, h)`` tensor reads that tensor;
* a view that **changes the element count** (a slice such as GPT-2's split of
  the fused QKV projection, ``[:, 0]``, ``[:, 1:]``; an ``expand``): a ``view``
  op from the viewed tensor to a tensor of the view's shape, made once (when
  first read), in the module that made the view. It is free, and its readers
  read only their part. An ``expand`` is always such a ``view`` (note
  ``broadcast``), even at a size where it adds nothing (ViT's CLS token at
  batch 1), so that the graph has the same ops at every size;
* a **parameter**, **model input** or **past KV cache**: a graph tensor of kind
  ``param``, ``input`` or ``kv_cache``;
* a **constant**, a value computed from no data (a causal mask, position ids,
  a rotary cos/sin table, a broadcast scalar): a graph tensor of kind ``input``
  and no producer. Building it is bookkeeping of a few kilobytes that a
  deployment precomputes or fuses; it is not in the graph. 0-d constants
  (scalars) are not inputs at all.

A convolution is a GEMM over its input's patches. When the windows are disjoint
and unpadded (a ViT patch embedding) the GEMM reads the input as it is; when
they overlap or are padded, a ``gather`` op (``im2col``) first copies the patch
matrix, as an im2col implementation does.

Every op gets its ``module`` (the PyTorch module path) and its ``layer``: the
global index of the transformer block whose module path contains it
(:class:`Stack`), ``None`` outside blocks (embeddings, final norm, LM head,
LLaVA's projector). Names are the module's last path component (two for a
block, ``layers.3``), with the elementwise function, a hint (``rope_q``) or the
kind appended when the module yields several ops, numbered when repeated:
``q_proj``, ``self_attn.attention``, ``self_attn.rope_k``, ``layers.3.add1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from ..ir import Graph
from .aten_map import Alias, map_node
from .raw import RawNode, RawTrace


@dataclass(frozen=True)
class Stack:
    """A run of transformer blocks: ``prefix.0`` ... ``prefix.{count-1}``."""

    prefix: str  # module path of the ModuleList, e.g. "model.layers"
    name: str  # "decoder", "vision", ...
    first_layer: int
    count: int


@dataclass
class _PendingOp:
    kind: str
    inputs: list[int]
    outputs: list[int]
    attrs: dict[str, Any]
    module: str
    hint: str


class _Lowering:
    def __init__(self, trace: RawTrace, header: dict[str, Any], stacks: Iterable[Stack]):
        self.trace = trace
        self.graph = Graph(header)
        self.gid: dict[int, int] = {}
        self.const_gid: dict[int, int | None] = {}
        self.ops: list[_PendingOp] = []
        self.stacks = sorted(stacks, key=lambda s: -len(s.prefix))
        self._layers: dict[str, int | None] = {}

    # ------------------------------------------------------------ tensors
    def read(self, tid: int, module: str) -> int | None:
        got = self.gid.get(tid)
        if got is not None:
            return got
        t = self.trace.tensors[tid]
        if not t.data:
            return self.const(tid)
        if t.role == "view":
            parent = self.read(t.base, module)  # type: ignore[arg-type]
            if parent is None or (self.graph.tensors[parent].numel == t.numel and not t.expand):
                self.gid[tid] = parent  # type: ignore[assignment]
                return parent
            out = self.graph.add_tensor(t.shape, t.dtype)
            note = "slice" if t.numel < self.graph.tensors[parent].numel else "broadcast"
            self.ops.append(_PendingOp("view", [parent], [out], {"note": note},
                                       t.module or module, "view"))
            self.gid[tid] = out
            return out
        if t.role in ("param", "input", "kv_cache"):
            self.gid[tid] = self.graph.add_tensor(t.shape, t.dtype, t.role)
            return self.gid[tid]
        raise RuntimeError(f"hwsim.trace: raw tensor r{tid} {t.shape} is read before any op "
                           f"writes it (module {module!r})")

    def const(self, tid: int) -> int | None:
        t = self.trace.tensors[tid]
        while t.base is not None and self.trace.tensors[t.base].numel == t.numel:
            t = self.trace.tensors[t.base]
        if t.id not in self.const_gid:
            self.const_gid[t.id] = (None if not t.shape
                                    else self.graph.add_tensor(t.shape, t.dtype, "input"))
        return self.const_gid[t.id]

    def write(self, tid: int, kind: str) -> int:
        t = self.trace.tensors[tid]
        gid = self.graph.add_tensor(t.shape, t.dtype,
                                    "kv_cache" if kind == "kv_write" else "activation")
        self.gid[tid] = gid
        return gid

    # ------------------------------------------------------------ ops
    def lower(self, nodes: list[RawNode]) -> Graph:
        for node in nodes:
            mapped = map_node(node, self.trace)
            if isinstance(mapped, Alias):
                self.gid[node.outputs[0]] = self.read(mapped.source, node.module)  # type: ignore
                continue
            ins = [g for g in (self.read(t, node.module) for t in mapped.inputs) if g is not None]
            if "im2col" in mapped.extra:
                (elements,) = mapped.extra["im2col"]
                patches = self.graph.add_tensor((elements,), self.graph.tensors[ins[0]].dtype)
                self.ops.append(_PendingOp("gather", [ins[0]], [patches],
                                           {"elements": elements}, node.module, "im2col"))
                ins[0] = patches
            outs = [self.write(t, mapped.kind) for t in mapped.outputs]
            self.ops.append(_PendingOp(mapped.kind, ins, outs, mapped.attrs, node.module,
                                       node.hint))
        for op, name in zip(self.ops, _names(self.ops)):
            self.graph.add_op(op.kind, op.inputs, op.outputs, op.attrs,
                              layer=self.layer(op.module), module=op.module, name=name)
        return self.graph

    def layer(self, module: str) -> int | None:
        if module in self._layers:
            return self._layers[module]
        found = None
        for s in self.stacks:
            if module.startswith(s.prefix + "."):
                head = module[len(s.prefix) + 1:].split(".", 1)[0]
                if head.isdigit():
                    found = s.first_layer + int(head)
                    break
        self._layers[module] = found
        return found


def _names(ops: list[_PendingOp]) -> list[str]:
    """Module leaf, plus the kind or hint (numbered if repeated) when a module has several ops."""
    per_module: dict[str, list[int]] = {}
    for i, op in enumerate(ops):
        per_module.setdefault(op.module, []).append(i)
    names = [""] * len(ops)
    for module, idxs in per_module.items():
        parts = module.split(".")
        leaf = ".".join(parts[-2:]) if parts[-1].isdigit() and len(parts) > 1 else parts[-1]
        if len(idxs) == 1 and module:
            names[idxs[0]] = leaf
            continue
        labels = [ops[i].hint or ops[i].attrs.get("fn") or ops[i].kind for i in idxs]
        counts: dict[str, int] = {}
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
        seen: dict[str, int] = {}
        for i, label in zip(idxs, labels):
            if counts[label] > 1:
                n = seen.get(label, 0)
                seen[label] = n + 1
                label = f"{label}{n}"
            names[i] = f"{leaf}.{label}" if module else label
    return names


def lower(trace: RawTrace, nodes: list[RawNode], header: dict[str, Any],
          stacks: Iterable[Stack]) -> Graph:
    """The graph of ``nodes`` (fused, from ``trace``), with ``header`` and layer ``stacks``."""
    return _Lowering(trace, header, stacks).lower(nodes)
