"""The roofline target: the simplest honest model of a machine.

Per op::

    latency_s = max(flops / peak_flops_per_s[dtype], bytes / dram_bw_bytes_per_s)
                + kernel_launch_s      (the first op; each later one + kernel_gap_s)

where ``flops`` are the executed FLOPs (a causal or sliding-window attention
skips every masked score: an ideal kernel) and ``bytes`` the op's compulsory
traffic (each input read once, each output written once; see
:mod:`hwsim.ir.kinds`), ``kernel_launch_s`` the device's side of a launch (from the
enqueue to the kernel's start: 2.9 us on ``roofline-v100``, as the V100 target's) and
``kernel_gap_s`` what a launch queued behind a running op still costs (0.5 us, as the
V100's). ``bound`` is ``compute`` or ``memory`` by which term is larger, or
``latency`` when the launch exceeds both. No caches, no tiling, no overlap of one op's
work with another's: it is the reference the detailed targets are checked against,
and a lower bound on what they report for the same peak numbers, op by op and over a
run.

No host by default (``host: none``): the roofline is a bound of the device alone,
whatever the workload's ``runtime`` (the host's launch call, 3.8 us on a V100, is not
in it). That is an ideal host, not an absent launch rule: one that costs nothing and
enqueued every op at t = 0, so the device meets each op queued behind the one before.
An op's launch is a task of its own before its work (lane ``stream``), and a queued
op takes it in behind the op before, all but ``kernel_gap_s``, as the V100 and Ascend
targets do (:meth:`RooflineTarget.queued_launch_s`, :func:`hwsim.runtime.schedule`;
the row's ``launch_hidden_s``): the first op pays its whole launch, each later one the
gap. That is the least either detailed target charges between two kernels under any
runtime (their gap, behind a host that is ahead: a captured graph), and an issue time
only ever delays a kernel, so the hostless run is below every host's run of the same
ops (docs/architecture.md, "Without a host the roofline's ops were all enqueued at
t = 0"). 20 GEMMs of 16^3: 12.4 us on ``roofline-v100``, against 29.5 us on
``volta-v100-sxm2`` in a captured graph and 173.6 us under ``library``; when each
hostless op paid its whole launch, 58.0 us, above the captured graph. On
``roofline-kunpeng920`` the gap is the whole launch, both ``armv8-kunpeng920``'s
per-op call (384.6 ns): a CPU's call runs on its cores and hides behind nothing.

A spec that names a ``host`` (``--set target.host=cuda``, ``cann`` or ``cpu``) puts
the ops behind that host's lane (:mod:`hwsim.runtime`) as on the detailed targets:
an op the host enqueued while the one before it ran takes its launch in behind that
op, all but ``kernel_gap_s``, and one issued after the op before ended pays it whole
(20 GEMMs of 16^3 in a captured graph behind ``cuda``: 16.2 us, the hostless run one
graph launch later). Over a model: BERT-base at 128 tokens runs in 0.39 ms on
``roofline-v100`` and 0.83 ms on ``volta-v100-sxm2`` in a captured graph (0.97 ms under
``library``); 0.78 ms on the roofline when each hostless op paid its whole launch.
"""

from .target import TARGET, RooflineSpec, RooflineTarget

__all__ = ["TARGET", "RooflineSpec", "RooflineTarget"]
