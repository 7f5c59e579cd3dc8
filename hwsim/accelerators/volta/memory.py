"""Does the model fit in HBM? The one account of :mod:`hwsim.capacity`, with
what is Volta's own:

- workspace: the score matrix ``b·h·q·kv`` and its softmax when attention runs
  the ``standard`` way (eager PyTorch materializes both in HBM), plus the
  gathered keys and values of a block-sparse selection and the selected
  probabilities of value pruning (:func:`.attention.standard_workspace`);
- CPU-GPU cooperation: ``host_kv_fraction`` of the KV cache lives in host
  memory (FastAttention's cooperative strategy), checked against
  ``host_bytes``.
"""

from __future__ import annotations

from dataclasses import replace

from hwsim.capacity import GIB, Footprint, footprint
from hwsim.errors import InputError

from .attention import choose, standard_workspace


def volta_footprint(graph, spec, tiling) -> Footprint:
    strategy = tiling.attention if tiling is not None else "auto"

    def workspace(op) -> float:
        if op.kind != "attention":
            return 0.0
        a = op.attrs
        if choose(strategy, a["q_len"], a["kv_len"]) != "standard":
            return 0.0
        return standard_workspace(op, graph)

    fp = footprint(graph, workspace)
    host = fp.kv_cache_bytes * spec.host_kv_fraction
    if spec.host_bytes and host > spec.host_bytes:
        raise InputError(
            f"the offloaded KV cache ({host / GIB:.2f} GiB) does not fit in "
            f"{spec.host_bytes / GIB:.2f} GiB of host memory, "
            f"{(host - spec.host_bytes) / GIB:.2f} GiB over", field="spec.host_bytes")
    return replace(fp, kv_cache_bytes=fp.kv_cache_bytes - host, host_kv_cache_bytes=host)
