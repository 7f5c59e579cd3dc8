"""The host: who issues each op to the device, and what that costs.

A model does not run by itself: a host thread walks the graph and, for every op,
runs a framework's or a library's code (Python, the dispatcher, the library's
shape checks and algorithm choice) and then enqueues the kernel. The device runs
a kernel when it has been enqueued *and* the previous one is done. So two lanes
run side by side::

    host    |h0|h1|h2|h3|h4|h5|h6| ...             (issue time per op)
    device     [ op0 ][op1][ op2 ......... ][op3]  (op i starts at max(issue i,
                                                    end of op i-1))

Large kernels hide the host (it runs ahead and the queue fills); small ones wait
for it (the op is *host-bound*, and the device idles: the gap is the report's
``host_wait_s``). :func:`schedule` runs those two lanes as the event engine
(:mod:`hwsim.engine`) would run them as tasks (units ``host`` and ``device``), so
the waiting is on the timeline, not added as a formula; an op that runs many times
(``repeat``) is scheduled in closed form, whatever its count. On a CPU target the host *is* the
device (the same cores run the framework and the kernel): the lanes do not
overlap, and each op waits for its own dispatch.

The workload's ``runtime`` says who the host is:

``library``
    a vendor library called from compiled code (cuBLAS, aclnn, OpenBLAS), as the
    kernel benchmarks the measured validation cases time: the library's host path
    and the launch API per op. The default, so that those cases keep what they assume.
``eager``
    PyTorch eager: Python, the binding, autograd and ATen dispatch, the library's
    host path and the launch, per op.
``graph``
    a captured graph (CUDA Graphs, ACL graph mode, torch.compile's graph on a
    CPU): the host launches the whole graph once; the device runs its nodes back
    to back.
``fused``
    an inference engine (TensorRT, MindIE/ATB): compiled code enqueues each
    kernel (the launch API), and pointwise ops that follow a producer are fused
    into it (no launch of their own).

A kernel launch has two sides, and each is paid once. The host's side is the launch
call (``cudaLaunchKernel``, ``aclrtLaunchKernel``): CPU time, in the host lane below,
after which the host is free to issue the next op. The device's side is the
target's ``kernel_launch_s``, the first task of each op: from the enqueue to the
kernel's start on an idle device (the GPU's front end fetching the launch and its
work distributor handing out blocks; the NPU's task scheduler). A lone small kernel
therefore costs the host call, then the device's latency, then its own work. On the
V100 the two are split from one measurement set (A. Gray, "Getting Started with CUDA
Graphs", NVIDIA Technical Blog, 2019, on a V100: a 2.9 us kernel takes 9.6 us per
kernel launched and synchronised one at a time, 3.8 us launched back to back, 3.4 us
inside a graph): the host call is the back-to-back rate, 3.8 us (the host is the
bound there); the device latency the rest of the synchronised time, 9.6 - 3.8 - 2.9 =
2.9 us (with the synchronise call's return in it: an upper bound); the gap between
two queued kernels 3.4 - 2.9 = 0.5 us (``kernel_gap_s``).

A device takes a queued launch in while the kernel before it runs: a target that
says how much of an op's time that is (:meth:`hwsim.targets.Target.queued_launch_s`,
its ``kernel_launch_s`` less its ``kernel_gap_s``: the V100, and the Ascend NPU,
whose stream of tasks the task scheduler works through the same way) has each op
issued before the previous one ended start its kernels at
``max(issue + launch, previous end + gap)`` (:func:`schedule`), the part of its
launch spent behind the previous op reported as its ``launch_hidden_s``. So ``n``
small kernels issued back to back take ``n · max(host call, kernel + gap)`` plus one
device latency (to within one kernel and gap): the host's rate when the host is
slower (``library``, ``eager``), the kernels' own when it is ahead (``graph``).
Targets without a host (the SpAtten accelerator sequences its own ops; the roofline
is a bound unless its spec names a ``host``) have no host lane: every op was enqueued
at t = 0 by an ideal host that costs nothing, so on one with queued launches (the
roofline) each op after the first pays only ``kernel_gap_s`` of its launch, whatever
the runtime: the least any host's schedule of those ops can give, since an issue
time only ever delays a kernel (:func:`hwsim.simulate.issue_from_host`).

The host's cost depends on the op's kind where its host path does
(:meth:`Platform.op_host_s`: a runtime's cost per op, and per kind where a kind
differs). On CUDA a GEMM goes through cuBLAS, whose own host path (argument checks, the
heuristic's kernel choice, the workspace) runs before its launch call: 4.7 us more
than a kernel of the framework's own, 8.5 us a ``cublasGemmEx`` in all, from
DeepBench's V100 floor of back-to-back fp16 calls (a calibration point). Elementwise
and other kernels pay the launch call alone; a captured graph and an inference engine
(kernels chosen when the engine was built) pay no library path per op. On CANN,
torch_npu eager is measured whole per op: 12.1 us for an elementwise add, 70.3 us for
the fused attention operator, whose host side builds its tiling before the launch (on
an aarch64 host; a calibration point); a kind without a measurement of its own takes
the add's (M). The host CPU moves these (the same attention call takes 0.67x on an
x86 host) and is not a field: no measurement set separates the CPU from the op.

Every per-op cost below names its source; ``(M)`` marks a value without a
measurement behind it (a sensitivity, not a calibration), ``(C)`` a value set from a
measurement that is a validate case (listed there as a calibration point).

Per op, in microseconds (the default for a kind not named, then the kinds that differ):

========  =====================  =============================  ==========
runtime   cuda (volta)           cann (ascend)                  cpu
========  =====================  =============================  ==========
library   3.8; matmul 8.5 (C)    7.6 (M)                        0
eager     12.3 (M); matmul 14.0  12.1 (S, M for kinds but the   5.5 (M)
                                 elementwise); attention 70.3
                                 (C)
graph     3.8 once per graph     7.6 once per graph (M)         1.5 (M)
fused     3.8; pointwise 0       3.8; pointwise 0 (M)           0
========  =====================  =============================  ==========
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .engine.streams import Node, StreamSchedule, run_streams

RUNTIMES = ("library", "eager", "graph", "fused")

# PyTorch eager's host path per op, from the per-layer costs of the dispatch chain in
# "From PyTorch op to kernel launch" (jiahuanglin.xyz gpu_kernel_serving lesson 18, M: a
# walk-through with typical costs, not one measurement): Python bytecode ~1 us, pybind11
# ~1 us, autograd dispatch 1-3 us, ATen dispatcher 1-2 us, the backend's algorithm choice
# 1-5 us, cudaLaunchKernel 1-3 us; totals 5-25 us per op. Midpoints:
_PY_BYTECODE_S = 1.0e-6
_PYBIND_S = 1.0e-6
_AUTOGRAD_S = 2.0e-6
_ATEN_DISPATCH_S = 1.5e-6
_BACKEND_HOST_S = 3.0e-6
# The host's side of one kernel launch on a V100 (the launch call's CPU time): NVIDIA's
# "Getting Started with CUDA Graphs" (A. Gray, NVIDIA Technical Blog, 2019) times a 2.9 us
# kernel at 3.8 us per kernel when launched in a loop without synchronisation (the host's
# launch rate bounds it: the device runs queued kernels at 3.4 us, inside a CUDA graph) and
# at 9.6 us when each launch is synchronised, which puts 2.9 us on the device's side (the
# V100's kernel_launch_s, in its preset) (S).
_CUDA_LAUNCH_S = 3.8e-6
_CUDA_GRAPH_LAUNCH_S = 3.8e-6  # cudaGraphLaunch: one launch call for the whole graph (M: as one
# kernel launch; the blog's per-node cost inside the graph is device-side)
# cuBLAS's own host path per GEMM call (argument checks, the heuristic's kernel choice,
# workspace), on top of the launch call it makes: DeepBench's V100 results
# (baidu-research/DeepBench results/train/DeepBench_NV_V100.xlsx, sheet "Results - FP16 ip,
# Mixed math"; a DGX-1 with a Xeon E5-2698 v4 host, CUDA 10.1.243; code/nvidia/gemm_bench.cu
# times 400 back-to-back cublasGemmEx calls on the host clock and truncates the mean to whole
# microseconds) put five fp16 calls at 8 us each: 512 x 16 x 512 NN and NT, 512 x 32 x 512
# NN, 1024 x 16 x 512 NN and NT, flat over 4x the work, so bound by the host's call rate.
# A call is 8.0-9.0 us (truncated): 8.5 us, less the launch call's 3.8 us, is cuBLAS's path,
# 4.7 +- 0.5 us (C: a calibration point, the validate case "V100 DeepBench HGEMM 512 x 16 x
# 512"; one kernel per call assumed, a second launch would take 3.8 us of it). The fp32
# rows of the same sheet floor at 10-15 us, above it: their kernels are slower. Beside it
# (not set from it): cublasSgemm of 4500 x 50 x 50 takes 11 us a call on a Summit V100
# with a POWER9 host, CUDA 10.1.243 (kokkos/kokkos-kernels issue 1052, matrixMulCUBLAS).
_CUBLAS_GEMM_HOST_S = 8.5e-6 - _CUDA_LAUNCH_S
# CANN. The aclnn call is two host calls (aclnnXxxGetWorkspaceSize, then aclnnXxx, which
# launches the kernel through the runtime): taken as two CUDA-like launch calls (M: no public
# per-op measurement of aclnn or aclrtLaunchKernel from compiled code was found); the device's
# side of the start is the Ascend preset's kernel_launch_s (M, as the V100's).
_ACLNN_CALL_S = 2 * _CUDA_LAUNCH_S
# torch_npu eager, measured whole (Python, binding, dispatch, the aclnn calls, torch_npu's
# task queue): a steady-state loop of 5,000 eager torch.add on a 910B2 enqueues one every
# 12.142 us (triton-lang/triton-ascend issue 1675, "host enqueue time, not NPU execution
# time": the timer stops before the final synchronise; the host CPU is not named) (S for an
# elementwise op; the stand-in, M, for every kind without a measurement of its own: it
# replaces PyTorch's per-layer composition above, 16.1 us with two aclnn calls, which no
# measurement supported).
_TORCH_NPU_EAGER_S = 12.142e-6
# torch_npu's fused attention (npu_fused_infer_attention_score) builds its tiling on the
# host before the launch: called eagerly 50 times back to back on a 910B2 it takes 70.338 us
# a call at 128 queries x 1,024 keys (one head of 128, fp16), and 70-76 us for every shape up
# to 1,024 x 4,096, where its kernel takes under 20 us (hw-native-sys/pto-isa
# demos/torch_jit/flash_atten/README.md, table "Speedup vs Fused Baseline aarch64", column
# "Fused us"): the host's call rate (C: a calibration point, the validate case "torch_npu
# fused attention, 128 queries x 1,024 keys"). The host CPU moves it: the same table on an
# x86_64 host gives 46.83 us (0.67x); this is the aarch64 host's figure (the host CPU is not a
# field: one operator on two unnamed CPUs is no model of a CPU).
_TORCH_NPU_FUSED_ATTENTION_S = 70.338e-6

# A kind that launches no kernel (metadata only): no host cost in any runtime.
FREE_KINDS = ("view",)
# Pointwise kinds a fused engine folds into the op before them (TensorRT's pointwise and
# elementwise fusion; MindIE/ATB fused operators): no launch of their own.
FUSABLE_KINDS = ("elementwise", "rope")


@dataclass(frozen=True)
class Platform:
    """Host cost per op of each runtime on one kind of machine, in seconds."""

    name: str
    per_op_s: dict  # runtime -> host time per issued op, an op without a path of its own
    graph_launch_s: float  # runtime graph: one launch of the whole graph
    overlaps: bool  # the host runs on other hardware than the device (a GPU, an NPU)
    # runtime -> {op kind: host time per issued op}: the kinds whose host path differs
    # (a GEMM through cuBLAS; an operator that builds its tiling on the host)
    per_kind_s: dict = field(default_factory=dict)

    def op_host_s(self, runtime: str, kind: str) -> float:
        """Host time to issue one op of ``kind`` under ``runtime``."""
        return self.per_kind_s.get(runtime, {}).get(kind, self.per_op_s[runtime])


_EAGER_PY_S = _PY_BYTECODE_S + _PYBIND_S + _AUTOGRAD_S + _ATEN_DISPATCH_S

PLATFORMS = {
    # A GEMM goes through cuBLAS (its host path, then the launch); every other kernel
    # through PyTorch's or the benchmark's own launch. Eager: for a GEMM, cuBLAS's measured
    # path takes the place of the walk-through's "backend's algorithm choice" (M).
    "cuda": Platform("cuda", {"library": _CUDA_LAUNCH_S,
                              "eager": _EAGER_PY_S + _BACKEND_HOST_S + _CUDA_LAUNCH_S,
                              "fused": _CUDA_LAUNCH_S, "graph": 0.0},
                     _CUDA_GRAPH_LAUNCH_S, True,
                     {"library": {"matmul": _CUBLAS_GEMM_HOST_S + _CUDA_LAUNCH_S},
                      "eager": {"matmul": _EAGER_PY_S + _CUBLAS_GEMM_HOST_S + _CUDA_LAUNCH_S}}),
    "cann": Platform("cann", {"library": _ACLNN_CALL_S, "eager": _TORCH_NPU_EAGER_S,
                              "fused": _CUDA_LAUNCH_S, "graph": 0.0},
                     _ACLNN_CALL_S, True,
                     {"eager": {"attention": _TORCH_NPU_FUSED_ATTENTION_S}}),
    # A CPU: the library call is already in the target's own per-op dispatch (armv8's
    # call_cycles); eager adds PyTorch's Python and dispatch path (no launch, no device
    # library host path); a compiled graph keeps the ATen dispatch per op.
    "cpu": Platform("cpu", {"library": 0.0, "eager": _EAGER_PY_S, "fused": 0.0,
                            "graph": _ATEN_DISPATCH_S}, 0.0, False),
}


def host_times(kinds: list[str], platform: Platform | None, runtime: str) -> list[float]:
    """Host time to issue each op (in graph order) under ``runtime``."""
    if platform is None:
        return [0.0] * len(kinds)
    per = platform.per_op_s[runtime]
    out = []
    issued = False
    for i, kind in enumerate(kinds):
        if kind in FREE_KINDS:
            out.append(0.0)
        elif runtime == "graph":
            out.append(0.0 if issued else platform.graph_launch_s + per)
            issued = True
        elif runtime == "fused" and kind in FUSABLE_KINDS and i > 0 \
                and kinds[i - 1] not in FREE_KINDS:
            out.append(0.0)
        else:
            out.append(platform.op_host_s(runtime, kind))
    return out


def repeat_host_times(kinds: list[str], platform: Platform | None, runtime: str) -> list[float]:
    """Host time to issue each run of op i after its first (an op's ``repeat``,
    :attr:`hwsim.ir.Op.repeat`): the run before it is the same op, so a captured graph
    issues nothing more and a fused engine folds a pointwise op into the run before."""
    if platform is None:
        return [0.0] * len(kinds)
    return [0.0 if kind in FREE_KINDS or runtime == "graph"
            or (runtime == "fused" and kind in FUSABLE_KINDS)
            else platform.op_host_s(runtime, kind) for kind in kinds]


def schedule(names: list[str], host_s: list[float], device_s: list[float], *,
             overlaps: bool = True, repeats: list[int] | None = None,
             repeat_host_s: list[float] | None = None,
             queued_launch_s: float | list[float] = 0.0) -> StreamSchedule:
    """The host lane and the device lane, op by op: one stream of kernels behind one
    chain of issues (:func:`hwsim.engine.streams.run_streams`, its one-stream case).

    Host task i follows host task i-1; device task i waits for host task i and for
    device task i-1. Without overlap (a CPU, where the host is the device) host task
    i also waits for device task i-1. That is the event engine's schedule of those
    tasks, computed directly (``tests/test_runtime.py`` holds it to
    :func:`hwsim.engine.run_events` to the last bit on random lanes; a sweep schedules
    hundreds of ops per point).

    ``repeats[i]``: op i runs that many times back to back (device time
    ``device_s[i]`` each; host time ``host_s[i]`` for the first run and
    ``repeat_host_s[i]`` for each later one), in closed form: with overlap the host
    issues them every ``h`` seconds and the device runs them every ``d``, so the last
    starts at ``max(start of the second + (n-2) d, the first's issue + (n-1) h)``;
    without overlap each run is its issue then its kernel. Its ``start_s`` is the
    first run's, its ``wait_s`` the device's idle time before and between its runs,
    and its ``host_lane`` entry spans all its issues.

    ``queued_launch_s`` (a GPU's :meth:`hwsim.targets.Target.queued_launch_s`, one
    value or one per op): each op's device time ``d`` begins with a launch ``L``
    that the device takes in as soon as the host has enqueued it, even while the
    previous kernel runs; the kernel then starts when its launch is done and the
    previous kernel has ended, plus the gap ``g`` the device keeps between kernels::

        end_i = max(issue_i + L, end_{i-1} + g) + r      (d = L + r, hide = L - g)

    So an op issued ``x`` seconds before the previous op ends spends
    ``min(x, hide)`` of its launch behind it (``hidden_s``, empty when nothing can
    hide), and one issued after the previous op ended (the host behind) pays its
    launch whole. Its ``start_s`` stays where the device lane reaches it (the
    previous op's end, or its issue), its time on the lane is ``d - hidden``, and
    ``wait_s`` is the idle time before it: the device's time is still the lane's ops
    and waits, end to end. A repeated op's later runs follow in closed form
    (:func:`hwsim.engine.streams.queued_runs`).
    """
    n_ops = len(device_s)
    repeats = repeats or [1] * n_ops
    repeat_host_s = repeat_host_s or [0.0] * n_ops
    hides = (list(queued_launch_s) if isinstance(queued_launch_s, (list, tuple))
             else [queued_launch_s] * n_ops)
    sched = run_streams([Node("device", d, (), h, n, hr, name, x) for name, h, d, n, hr, x
                         in zip(names, host_s, device_s, repeats, repeat_host_s, hides)],
                        overlaps=overlaps)
    if not (overlaps and any(x > 0 for x in hides)):
        sched = replace(sched, hidden_s=[])
    return sched
