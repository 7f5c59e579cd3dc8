"""Does the model fit in HBM? Parameters, KV cache and peak activations per device.

Counted on the graph one device runs (after the tensor-parallel split):

- parameters: every ``param`` tensor;
- KV cache: the keys and values every attention op reads (``b·kv_heads·kv_len·
  (d + dv)`` elements each), of which ``host_kv_fraction`` lives in host memory
  when CPU-GPU cooperation is on;
- activations: the largest working set of one op (its activation inputs and
  outputs), plus the score matrix ``b·h·q·kv`` and its softmax when attention
  runs the ``standard`` way.

What does not fit is an :class:`~hwsim.errors.InputError` saying by how much.
"""

from __future__ import annotations

from hwsim.errors import InputError

from .attention import choose
from .gemm import ELEM

GB = 1e9


def footprint(graph, spec, tiling) -> dict[str, float]:
    t = graph.tensors
    params = sum(x.bytes for x in t.values() if x.kind == "param")
    kv = 0.0
    kv_ids: set[int] = set()
    act = 0.0
    strategy = tiling.attention if tiling is not None else "auto"
    for op in graph.ops:
        if op.kind == "attention":
            a = op.attrs
            e = ELEM.get(t[op.inputs[1]].dtype, 2)
            d = a["head_dim"]
            kv += a["batch"] * a["kv_heads"] * a["kv_len"] * (d + a.get("v_head_dim", d)) * e
            kv_ids.update(op.inputs[1:3])
        live = sum(t[i].bytes for i in (*op.inputs, *op.outputs)
                   if t[i].kind in ("activation", "input") and i not in kv_ids)
        if op.kind == "attention" and choose(strategy, op.attrs["q_len"],
                                             op.attrs["kv_len"]) == "standard":
            a = op.attrs
            live += 2 * a["batch"] * a["heads"] * a["q_len"] * a["kv_len"] * ELEM.get(
                t[op.inputs[0]].dtype, 2)
        act = max(act, live)
    host = kv * spec.host_kv_fraction
    return {"params": params, "kv_cache": kv - host, "kv_host": host, "activations": act,
            "total": params + kv - host + act}


def check_capacity(graph, spec, tiling) -> dict[str, float]:
    fp = footprint(graph, spec, tiling)
    devices = graph.header.get("devices", 1)
    per = f" per device ({devices} devices)" if devices > 1 else ""
    if spec.hbm_bytes and fp["total"] > spec.hbm_bytes:
        over = fp["total"] - spec.hbm_bytes
        hint = ("; keep part of the KV cache in host memory with "
                "--set target.host_kv_fraction=F" if spec.host_kv_fraction < 1 else "")
        raise InputError(
            f"does not fit in {spec.hbm_bytes / GB:.1f} GB of HBM{per}: parameters "
            f"{fp['params'] / GB:.2f} GB + KV cache {fp['kv_cache'] / GB:.2f} GB + "
            f"activations {fp['activations'] / GB:.2f} GB = {fp['total'] / GB:.2f} GB, "
            f"{over / GB:.2f} GB over{hint}", field="spec.hbm_bytes")
    if spec.host_bytes and fp["kv_host"] > spec.host_bytes:
        raise InputError(
            f"the offloaded KV cache ({fp['kv_host'] / GB:.2f} GB) does not fit in "
            f"{spec.host_bytes / GB:.1f} GB of host memory, "
            f"{(fp['kv_host'] - spec.host_bytes) / GB:.2f} GB over", field="spec.host_bytes")
    return fp
