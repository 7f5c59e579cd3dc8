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
numbers.
"""

from .target import TARGET, RooflineSpec, RooflineTarget

__all__ = ["TARGET", "RooflineSpec", "RooflineTarget"]
