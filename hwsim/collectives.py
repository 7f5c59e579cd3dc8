"""Collective communication between tensor-parallel devices.

An ``allreduce`` of ``B`` bytes over ``N`` devices in a ring takes ``2(N-1)``
steps (a reduce-scatter, then an all-gather); in each, every device sends
``B/N`` bytes to its neighbour while receiving as much::

    sent per device = 2(N-1)/N · B
    time            = sent / link_bw + 2(N-1) · link_latency

This is the bandwidth-optimal algorithm NCCL and HCCL use for large tensors.
Targets call :func:`ring_allreduce` with their own link parameters and add
their own costs (a kernel launch, the additions on their vector units).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError


@dataclass(frozen=True)
class RingCost:
    time_s: float  # communication time, no kernel launch
    sent_bytes: float  # bytes each device sends (and receives)


def ring_allreduce(nbytes: float, devices: int, link_bw_bytes_per_s: float,
                   link_latency_s: float) -> RingCost:
    """Time and traffic of a ring all-reduce (see the module docstring).

    A preset without links (bandwidth 0) cannot all-reduce: that is an error
    naming the field to set, never a free or infinite transfer.
    """
    if devices < 2:
        return RingCost(0.0, 0.0)
    if link_bw_bytes_per_s <= 0:
        raise InputError(f"this preset has no links, needed by an all-reduce over {devices} "
                         f"devices (set target.link_bw_bytes_per_s)",
                         field="spec.link_bw_bytes_per_s")
    steps = 2 * (devices - 1)
    sent = steps * nbytes / devices
    return RingCost(sent / link_bw_bytes_per_s + steps * link_latency_s, sent)
