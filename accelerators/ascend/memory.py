"""HBM capacity: a workload that does not fit in one device's HBM is an error.

What one device must hold: the weights and the KV cache (persistent), plus the
largest working set of any single op: its activations in and out and the
workspace its strategy needs (the standard attention materialises the scores
and the probabilities, ``batch·heads·q·kv`` each, and the N × N mask; a fused
attention without tiling-mask reads an N × N mask from HBM). Activations that
are dead between ops are not counted twice; a liveness analysis across ops is
not done (approximation).
"""

from __future__ import annotations

from hwsim.errors import InputError
from hwsim.ir.dtypes import dtype_bits

GIB = 2.0**30
PERSISTENT = ("param", "kv_cache")

_last: list = []  # (graph, spec, tiling) of the last check: one check per simulation


def attention_workspace(op, graph, tiling) -> float:
    """HBM bytes an attention op needs beyond its inputs and output."""
    from .attention import strategy_of  # noqa: PLC0415

    a = op.attrs
    eb = dtype_bits(graph.tensors[op.inputs[0]].dtype) / 8
    n2 = a["q_len"] * a["kv_len"] * eb
    strategy = strategy_of(tiling)
    if strategy == "standard":
        return 2 * a["batch"] * a["heads"] * n2 + (n2 if a["causal"] else 0)
    mask_tile = getattr(tiling, "tiling_mask", True) if tiling is not None else True
    return n2 if a["causal"] and not mask_tile else 0.0


def footprint(graph, tiling) -> tuple[float, float, float, object]:
    """(weights, KV cache, largest op working set, that op) in bytes."""
    t = graph.tensors
    weights = sum(x.bytes for x in t.values() if x.kind == "param")
    kv = sum(x.bytes for x in t.values() if x.kind == "kv_cache")
    peak, peak_op = 0.0, None
    for op in graph.ops:
        if op.kind == "view":
            continue
        live = sum(t[i].bytes for i in {*op.inputs, *op.outputs} if t[i].kind not in PERSISTENT)
        if op.kind == "attention":
            live += attention_workspace(op, graph, tiling)
        if live > peak:
            peak, peak_op = live, op
    return weights, kv, peak, peak_op


def check_capacity(graph, spec, tiling) -> None:
    """Raise when the workload needs more HBM than the preset has (once per graph)."""
    if not spec.hbm_bytes:
        return
    if _last and _last[0] is graph and _last[1] is spec and _last[2] is tiling:
        return
    weights, kv, peak, op = footprint(graph, tiling)
    need = weights + kv + peak
    _last[:] = [graph, spec, tiling]
    if need > spec.hbm_bytes:
        _last.clear()
        devices = graph.header.get("devices", 1)
        where = f" at {op.kind} {op.name or op.id}" if op is not None else ""
        raise InputError(
            f"the workload needs {need / GIB:.2f} GiB of HBM per device ({devices} device"
            f"{'s' if devices != 1 else ''}): weights {weights / GIB:.2f} GiB, KV cache "
            f"{kv / GIB:.2f} GiB, activations and workspace {peak / GIB:.2f} GiB{where}; the "
            f"NPU has {spec.hbm_bytes / GIB:.2f} GiB, {(need - spec.hbm_bytes) / GIB:.2f} GiB "
            f"too little (use more devices, a shorter sequence or a fused attention)",
            field="spec.hbm_bytes")
