"""Memory capacity: what one device must hold, counted once from the graph.

Every target checks its DRAM (HBM, DDR) capacity with the same account, on the
graph one device runs (after the tensor-parallel split):

- **weights**: every ``param`` tensor, once, however many ``view`` ops read
  slices of it (an expanded mixture of experts reads each expert's slice of
  the stacked expert weights through a view: all experts are held, only the
  routed ones are read);
- **KV cache**: the keys and values the attention layers keep. A layer's cache
  is the ``kv_cache`` tensor its attention reads after this call's
  ``kv_write`` (a decode step appends to the cache in place: the cache before
  the write and the cache after it are one allocation, counted once). Kernel
  studies and encoders have no cache: their keys and values are activations;
- **activations**: the largest working set of one op, its non-persistent
  inputs and outputs plus the workspace its kernel needs on this target (the
  score matrix of an unfused attention, a materialized mask). Tensors dead
  between ops are not summed across ops (no liveness analysis: the largest op
  bounds the peak from below). A ``view``'s output is an alias of its input
  and holds nothing of its own (:meth:`hwsim.ir.Graph.root`).

An op that runs ``repeat`` times (:attr:`hwsim.ir.Op.repeat`: each run on its own
operands) holds its weights and KV cache once per run (:meth:`hwsim.ir.Graph.copies`),
as the same op written out that many times would; its activations are one run's,
since its runs follow one another and are not live at once.

A target names its capacity (:meth:`hwsim.targets.Target.capacity_bytes`, 0 for
unchecked) and may add workspace or move part of the KV cache off the device
(:meth:`hwsim.targets.Target.footprint`). A workload that does not fit is an
:class:`~hwsim.errors.InputError` saying by how much; the phrase "does not fit"
is what ``hwsim validate``'s ``fits`` metric looks for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

from .errors import InputError

GIB = 2.0**30
PERSISTENT = ("param", "kv_cache")


@dataclass(frozen=True)
class Footprint:
    """Bytes one device holds (see the module docstring)."""

    weights_bytes: float
    kv_cache_bytes: float
    activations_bytes: float
    host_kv_cache_bytes: float = 0.0  # KV cache kept in host memory (CPU-GPU cooperation)
    peak_op: str = ""  # the op with the largest working set

    @property
    def total_bytes(self) -> float:
        return self.weights_bytes + self.kv_cache_bytes + self.activations_bytes

    def to_dict(self) -> dict:
        out = asdict(self)
        out["total_bytes"] = self.total_bytes
        return out


def kv_cache_ids(graph) -> list[int]:
    """The tensors that are a layer's KV cache: ``kv_cache`` tensors no
    ``kv_write`` appends to (the state after this call's writes)."""
    t = graph.tensors
    appended = {i for op in graph.ops if op.kind == "kv_write" for i in op.inputs[1:]}
    seen: set[int] = set()
    out = []
    for op in graph.ops:
        for i in (*op.inputs, *op.outputs):
            if i not in seen and t[i].kind == "kv_cache" and i not in appended:
                seen.add(i)
                out.append(i)
    return out


def footprint(graph, workspace: Callable | None = None) -> Footprint:
    """Weights, KV cache and the largest op's working set of ``graph``.

    ``workspace(op) -> bytes`` adds what a target's kernel for ``op`` needs
    beyond the op's own tensors."""
    t = graph.tensors
    copies = graph.copies
    # every tensor's bytes (as Tensor.bytes: a root's are its stored bytes) and each
    # op's tensors' roots, looked up once
    params = [i for i, x in t.items() if x.kind == "param"]
    roots, nbytes = graph.storage([*params, *(i for op in graph.ops
                                              for i in (*op.inputs, *op.outputs))])
    weights = float(sum((nbytes[i] if roots[i] == i else t[i].bytes) * copies(i)
                        for i in params))
    kv = float(sum(t[i].bytes * copies(i) for i in kv_cache_ids(graph)))
    peak, peak_op = 0.0, ""
    held: dict[int, int] = {}  # tensor -> the bytes it holds while live (0: persistent)
    for op in graph.ops:
        if op.kind == "view":
            continue
        total = 0
        for r in {roots[i] for i in (*op.inputs, *op.outputs)}:
            b = held.get(r)
            if b is None:
                b = held[r] = nbytes[r] if t[r].kind not in PERSISTENT else 0
            total += b
        live = float(total)
        if workspace is not None:
            live += float(workspace(op))
        if live > peak:
            peak, peak_op = live, f"{op.kind} {op.name or op.id}"
    return Footprint(weights, kv, peak, 0.0, peak_op)


def check(fp: Footprint, capacity_bytes: float, *, devices: int, memory: str, source: str,
          field: str, hint: str = "") -> None:
    """Raise when ``fp`` exceeds ``capacity_bytes`` (0: not checked)."""
    if not capacity_bytes or fp.total_bytes <= capacity_bytes:
        return
    over = fp.total_bytes - capacity_bytes
    where = f" at {fp.peak_op}" if fp.peak_op else ""
    host = (f" (plus {fp.host_kv_cache_bytes / GIB:.2f} GiB of KV cache in host memory)"
            if fp.host_kv_cache_bytes else "")
    raise InputError(
        f"does not fit in {capacity_bytes / GIB:.2f} GiB of {memory} per device ({devices} "
        f"device{'s' if devices != 1 else ''}): weights {fp.weights_bytes / GIB:.2f} GiB + KV "
        f"cache {fp.kv_cache_bytes / GIB:.2f} GiB + activations and workspace "
        f"{fp.activations_bytes / GIB:.2f} GiB{where} = {fp.total_bytes / GIB:.2f} GiB, "
        f"{over / GIB:.2f} GiB over{host}{hint}", source=source, field=field)
