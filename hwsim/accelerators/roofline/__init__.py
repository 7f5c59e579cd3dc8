"""The roofline target: the simplest honest model of a machine.

Per op::

    latency_s = max(flops / peak_flops_per_s[dtype], bytes / dram_bw_bytes_per_s)
                + kernel_launch_s

where ``flops`` are the executed FLOPs (a causal or sliding-window attention
skips every masked score: an ideal kernel) and ``bytes`` the op's compulsory
traffic (each input read once, each output written once; see
:mod:`hwsim.ir.kinds`). ``bound`` is ``compute`` or ``memory`` by which term is
larger, or ``latency`` when the fixed overhead exceeds both. No caches, no
tiling, no overlap between ops: it is the reference the detailed targets are
checked against, and a lower bound on what they report for the same peak
numbers, op by op. Not over a chain of small ops: the roofline has no host
lane and pays ``kernel_launch_s`` after every op, where the V100 target takes a
queued op's launch in while the op before it runs and pays only its
``kernel_gap_s`` (docs/targets/volta.md, "Launches and the host lane"), so
BERT-base at 128 tokens runs in 0.96 ms on ``roofline-v100`` and 0.88 ms on
``volta-v100-sxm2``.
"""

from .target import TARGET, RooflineSpec, RooflineTarget

__all__ = ["TARGET", "RooflineSpec", "RooflineTarget"]
