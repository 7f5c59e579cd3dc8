"""Collective communication between tensor-parallel devices.

An ``allreduce`` of ``B`` bytes over ``N`` devices in a ring takes ``2(N-1)``
steps (a reduce-scatter, then an all-gather); in each, every device sends
``B/N`` bytes to its neighbour while receiving as much::

    sent per device = 2(N-1)/N · B
    time            = sent / link_bw + 2(N-1) · link_latency

This is the bandwidth-optimal algorithm NCCL and HCCL use for large tensors
when each device has one link to each neighbour of a ring.

On a *full mesh* (every device linked directly to every other, as the eight
NPUs of an Ascend 910B server are over HCCS), the reduce-scatter and the
all-gather each take one step in which a device exchanges ``B/N`` with each of
its ``N-1`` peers over ``N-1`` links at once::

    sent per device = 2(N-1)/N · B           (the same bytes)
    time            = sent / ((N-1) · link_bw) + 2 · link_latency

Targets call :func:`allreduce` with their own link parameters and topology and
add their own costs (a kernel launch, the additions on their vector units).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError


@dataclass(frozen=True)
class RingCost:
    """A collective's communication time (no kernel launch) and the bytes each device
    sends (and receives)."""

    time_s: float  # communication time, no kernel launch
    sent_bytes: float  # bytes each device sends (and receives)


TOPOLOGIES = ("ring", "mesh")


def allreduce(nbytes: float, devices: int, link_bw_bytes_per_s: float, link_latency_s: float,
              topology: str = "ring") -> RingCost:
    """Time and traffic of an all-reduce on a ring or a full mesh (module docstring)."""
    if topology not in TOPOLOGIES:
        raise InputError(f"expected one of {', '.join(TOPOLOGIES)}, got {topology!r}",
                         field="spec.link_topology")
    ring = ring_allreduce(nbytes, devices, link_bw_bytes_per_s, link_latency_s)
    if topology == "ring" or devices < 2:
        return ring
    links = devices - 1
    return RingCost(ring.sent_bytes / (links * link_bw_bytes_per_s) + 2 * link_latency_s,
                    ring.sent_bytes)


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
