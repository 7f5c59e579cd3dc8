"""The roofline target: the simplest honest model of a machine.

Per op::

    latency_s = max(flops / peak_flops_per_s[dtype], bytes / dram_bw_bytes_per_s)
                + kernel_launch_s

where ``flops`` are the executed FLOPs (a causal or sliding-window attention
skips every masked score: an ideal kernel) and ``bytes`` the op's compulsory
traffic (each input read once, each output written once; see
:mod:`hwsim.ir.kinds`), and ``kernel_launch_s`` the device's side of a launch
(from the enqueue to the kernel's start: 2.9 us on ``roofline-v100``, as the V100
target's). ``bound`` is ``compute`` or ``memory`` by which term is larger, or
``latency`` when the fixed overhead exceeds both. No caches, no tiling, no overlap
between ops: it is the reference the detailed targets are checked against, and a
lower bound on what they report for the same peak numbers, op by op.

No host by default: the roofline is a bound of the device alone, whatever the
workload's ``runtime`` (the host's launch call, 3.8 us on a V100, is not in it). A
spec that names a ``host`` (``--set target.host=cuda``, ``cann`` or ``cpu``) puts
the ops behind that host's lane (:mod:`hwsim.runtime`) as on the detailed targets.
An op's launch is then a task of its own before its work (lane ``stream``), so an op
the host enqueued while the one before it ran takes its launch in behind that op, all
but ``kernel_gap_s`` (0.5 us on ``roofline-v100``, as the V100's), as the V100 and
Ascend targets do: the bound stays below them on a chain of tiny kernels (20 GEMMs of
16^3 in a captured graph: 29.5 us on ``volta-v100-sxm2``, 16.2 us here; when each op
was one task paying its whole launch, 58.0 us, above the V100). Over a model: BERT-base
at 128 tokens runs in 0.78 ms on ``roofline-v100`` and 0.84 ms on ``volta-v100-sxm2``
(before the launch was split between host and device, 0.96 ms against 0.85).
"""

from .target import TARGET, RooflineSpec, RooflineTarget

__all__ = ["TARGET", "RooflineSpec", "RooflineTarget"]
