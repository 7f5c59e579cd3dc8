"""The host's cost per op depends on the op's kind (hwsim.runtime): a GEMM goes through
cuBLAS's host path before its launch, a kernel of the framework's own pays the launch
call alone; torch_npu's fused attention builds its tiling on the host. Each measured
floor comes back out of the two lanes, and the runtimes keep their order."""

from __future__ import annotations

import pytest
from conftest import dump_yaml

import hwsim
from hwsim.runtime import PLATFORMS, host_times, repeat_host_times

GEMM_FLOOR = {"kind": "matmul", "m": 16, "n": 512, "k": 512, "dtype": "fp16"}
COPY = {"kind": "elementwise", "fn": "copy", "elements": 4096, "dtype": "fp16"}
FA_SMALL = {"kind": "attention", "heads": 1, "kv_heads": 1, "head_dim": 128, "q_len": 128,
            "kv_len": 1024, "causal": False, "dtype": "fp16"}


def _run(tmp_path, ops, runtime, target):
    wl = dump_yaml(tmp_path / f"{runtime}.yaml", {"name": "hp", "runtime": runtime, "ops": ops})
    return hwsim.simulate(wl, target)


def _per_call(tmp_path, op, runtime, target, n=400):
    """Steady-state time per call of ``n`` back-to-back calls (the first's cold start
    taken out by differencing two counts)."""
    long = _run(tmp_path, [dict(op, repeat=n)], runtime, target).totals["latency_s"]
    short = _run(tmp_path, [dict(op, repeat=n // 2)], runtime, target).totals["latency_s"]
    return (long - short) / (n - n // 2)


def test_cublas_host_path_is_a_gemms_alone():
    """On CUDA a GEMM pays cuBLAS's path (4.7 us, from DeepBench's V100 fp16 floor of 8-9
    us a cublasGemmEx) before the 3.8 us launch call; an elementwise kernel pays the
    launch alone; a captured graph or an engine (kernels chosen ahead) pays neither per op."""
    cuda = PLATFORMS["cuda"]
    launch = cuda.per_op_s["library"]
    assert launch == pytest.approx(3.8e-6)
    assert cuda.op_host_s("library", "matmul") == pytest.approx(8.5e-6)
    assert cuda.op_host_s("library", "elementwise") == launch
    path = cuda.op_host_s("library", "matmul") - launch
    # eager: the same cuBLAS path in place of the walk-through's backend item (M)
    assert cuda.op_host_s("eager", "matmul") - cuda.op_host_s("eager", "elementwise") == \
        pytest.approx(path - 3.0e-6)
    kinds = ["matmul", "elementwise", "view", "matmul"]
    assert host_times(kinds, cuda, "library") == pytest.approx(
        [launch + path, launch, 0.0, launch + path])
    assert host_times(kinds, cuda, "fused") == pytest.approx([launch, 0.0, 0.0, launch])
    assert repeat_host_times(kinds, cuda, "library") == pytest.approx(
        [launch + path, launch, 0.0, launch + path])
    assert repeat_host_times(kinds, cuda, "graph") == [0.0] * 4


def test_deepbench_fp16_floor_comes_back_from_the_lanes(tmp_path):
    """400 back-to-back cublasGemmEx of 512 x 16 x 512 fp16 on a V100 take 8 us each
    (DeepBench, truncated to whole us: 8.0-9.0): the host's rate, since the kernel is
    shorter; a copy of a few KiB, launched without cuBLAS, runs at the launch call's 3.8
    us, and the same GEMMs in a captured graph at the kernels' own rate."""
    per = _per_call(tmp_path, GEMM_FLOOR, "library", "volta-v100-sxm2")
    assert 8.0e-6 <= per < 9.0e-6
    assert per == pytest.approx(PLATFORMS["cuda"].op_host_s("library", "matmul"), rel=1e-9)
    assert _per_call(tmp_path, COPY, "library", "volta-v100-sxm2") == pytest.approx(
        3.8e-6, rel=1e-9)
    graph = _per_call(tmp_path, GEMM_FLOOR, "graph", "volta-v100-sxm2")
    assert graph < 0.75 * per
    eager = _per_call(tmp_path, GEMM_FLOOR, "eager", "volta-v100-sxm2")
    assert eager == pytest.approx(PLATFORMS["cuda"].op_host_s("eager", "matmul"), rel=1e-9)
    assert graph < per < eager


def test_torch_npu_eager_host_cost_per_kind(tmp_path):
    """torch_npu eager on a 910B2: a torch.add enqueues every 12.142 us (triton-ascend
    issue 1675), the fused attention every 70.338 us at 128 x 1,024 (pto-isa's flash_atten
    table, aarch64 host), where its kernel takes a fraction of that: 50 calls take the
    host's rate. The library runtime's aclnn calls (M) are not moved."""
    cann = PLATFORMS["cann"]
    assert cann.op_host_s("eager", "elementwise") == pytest.approx(12.142e-6)
    assert cann.op_host_s("eager", "attention") == pytest.approx(70.338e-6)
    assert cann.op_host_s("eager", "matmul") == cann.per_op_s["eager"]  # the stand-in (M)
    assert cann.op_host_s("library", "attention") == cann.per_op_s["library"] == \
        pytest.approx(7.6e-6)
    device = _run(tmp_path, [FA_SMALL], "graph", "ascend-910b").rows[0]["latency_s"]
    assert device < 0.5 * 70.338e-6
    per = _per_call(tmp_path, FA_SMALL, "eager", "ascend-910b", n=50)
    assert per == pytest.approx(70.338e-6, rel=1e-9)
    # an add between two attentions: each op issued at its own kind's cost
    rep = _run(tmp_path, [FA_SMALL, COPY, FA_SMALL], "eager", "ascend-910b")
    assert [r["host_s"] for r in rep.rows] == pytest.approx([70.338e-6, 12.142e-6, 70.338e-6])
    # a large attention hides the host: 2,048 x 8,192 runs longer than its call
    big = dict(FA_SMALL, q_len=2048, kv_len=8192)
    d_big = _run(tmp_path, [big], "graph", "ascend-910b").rows[0]["latency_s"]
    per_big = _per_call(tmp_path, big, "eager", "ascend-910b", n=50)
    assert per_big == pytest.approx(max(70.338e-6, d_big - 2.4e-6), rel=0.05)


@pytest.mark.parametrize("preset", ["volta-v100-sxm2", "ascend-910b"])
@pytest.mark.parametrize("op", [GEMM_FLOOR, COPY, FA_SMALL], ids=["gemm", "copy", "attention"])
def test_runtimes_keep_their_order_for_every_kind(tmp_path, preset, op):
    """Whatever an op's own host path, a captured graph is never slower than library
    calls, nor these than eager, nor an engine than library calls (equal where the
    device, not the host, sets the pace: an attention on the V100)."""
    lat = {rt: _run(tmp_path, [op] * 20, rt, preset).totals["latency_s"]
           for rt in ("eager", "library", "fused", "graph")}
    assert lat["graph"] <= lat["library"] <= lat["eager"]
    assert lat["fused"] <= lat["library"]
    if op is not FA_SMALL or preset == "ascend-910b":  # host-bound: strictly cheaper
        assert lat["graph"] < lat["library"] < lat["eager"]
