"""The roofline without a host is a lower bound of the detailed target it mirrors,
under every runtime (hwsim.runtime).

``host: none`` (every roofline preset's default) is an ideal host: it costs nothing
and enqueued every op at t = 0, so the device meets each op already queued behind the
one before. The first op pays the device's whole ``kernel_launch_s``, each later one
only ``kernel_gap_s`` (its launch taken in behind the op before), the least the V100
and Ascend targets charge between two kernels under any runtime (their gap, behind a
host that is ahead: a captured graph). An issue time only ever delays a kernel, so
with each roofline op below its detailed op the whole hostless run is below the
detailed run, op by op. When each hostless op paid its whole launch, 20 GEMMs of 16^3
took 58.0 us on ``roofline-v100`` against 29.5 us on ``volta-v100-sxm2`` in a
captured graph: no bound.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hwsim
from hwsim.runtime import PLATFORMS, RUNTIMES
from hwsim.targets import resolve

# (roofline preset, the detailed target it mirrors, that target's host platform)
PAIRS = [("roofline-v100", "volta-v100-sxm2", "cuda"), ("roofline-910b", "ascend-910b", "cann")]
# the CPU: its per-op call runs on the cores and hides behind nothing (kernel_gap_s =
# kernel_launch_s, armv8-kunpeng920's call_cycles); fp32 only (no fp16 peak in the preset)
CPU = ("roofline-kunpeng920", "armv8-kunpeng920", "cpu")
GEMM_16 = {"kind": "matmul", "m": 16, "n": 16, "k": 16, "dtype": "fp16"}


def _latency(ops: list[dict], runtime: str, target: str, sets=()) -> hwsim.Report:
    return hwsim.simulate({"name": "small", "runtime": runtime, "ops": ops}, target,
                          sets=list(sets))


@pytest.mark.parametrize("roofline,detailed,host", PAIRS)
def test_twenty_tiny_gemms_in_a_captured_graph_stay_above_the_bound(roofline, detailed, host):
    """20 GEMMs of 16^3: the roofline pays one whole launch, then a gap per GEMM, below
    the detailed target in a captured graph (one graph launch, then its kernels each a
    gap after the one before). Each hostless GEMM paying its whole 2.9 us launch gave
    58.0 us, above the V100's 29.5 us and the 910B's 20.6 us."""
    ops = [GEMM_16] * 20
    bound = _latency(ops, "graph", roofline)
    graph = _latency(ops, "graph", detailed)
    assert bound.totals["latency_s"] < graph.totals["latency_s"]
    spec = bound.target.spec
    work = _latency([GEMM_16], "graph", roofline).totals["latency_s"] - spec.kernel_launch_s
    assert bound.totals["latency_s"] == pytest.approx(
        spec.kernel_launch_s + 19 * spec.kernel_gap_s + 20 * work, rel=1e-9)
    assert bound.totals["latency_s"] == pytest.approx(12.4e-6, abs=0.05e-6)
    # the same rule the detailed target follows: it is the bound's run after the host's
    # one graph launch when the bound is put behind the same host
    hosted = _latency(ops, "graph", roofline, [f"target.host={host}"])
    assert hosted.totals["latency_s"] == pytest.approx(
        PLATFORMS[host].graph_launch_s + bound.totals["latency_s"], rel=1e-9)
    # the gaps and launches are the detailed target's own (the bound pays no less per
    # kernel than the device must, only no host)
    detailed_spec = resolve(detailed).spec
    assert spec.kernel_launch_s == detailed_spec.kernel_launch_s
    assert spec.kernel_gap_s == detailed_spec.kernel_gap_s


def _graphs(dtypes: list[str], attention_dtype: str):
    """Chains of 1 to 10 small ops: GEMMs (some repeated), elementwise ops, attentions."""
    dims = st.sampled_from([1, 4, 16, 37, 64, 128, 256])
    gemm = st.builds(lambda m, n, k, dtype, repeat: {"kind": "matmul", "m": m, "n": n, "k": k,
                                                     "dtype": dtype, "repeat": repeat},
                     dims, dims, dims, st.sampled_from(dtypes), st.sampled_from([1, 1, 1, 3]))
    elementwise = st.builds(lambda fn, n, dtype: {"kind": "elementwise", "fn": fn,
                                                  "elements": n, "dtype": dtype},
                            st.sampled_from(["add", "exp", "copy"]),
                            st.sampled_from([1, 64, 1000, 4096, 65536]),
                            st.sampled_from(dtypes))
    attention = st.builds(lambda heads, d, q, kv, causal: {
        "kind": "attention", "heads": heads, "kv_heads": heads, "head_dim": d, "q_len": q,
        "kv_len": max(q, kv), "causal": causal, "dtype": attention_dtype},
        st.sampled_from([1, 2, 8]), st.sampled_from([64, 128]), st.sampled_from([1, 16, 128]),
        st.sampled_from([16, 128, 512]), st.booleans())
    return st.lists(st.one_of(gemm, elementwise, attention), min_size=1, max_size=10)


_SETTINGS = settings(max_examples=40, derandomize=True, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])


def _below_under_every_runtime(roofline: str, detailed: str, ops: list[dict]) -> None:
    """Under every runtime the hostless roofline's run ends no later than the detailed
    target's, and each op's end too (the bound holds op by op, not only in total); its
    own run is the same whatever the runtime (no host)."""
    bound = _latency(ops, "library", roofline)
    for runtime in RUNTIMES:
        if runtime != "library":
            other = _latency(ops, runtime, roofline)
            assert other.totals["latency_s"] == bound.totals["latency_s"]
        rep = _latency(ops, runtime, detailed)
        assert bound.totals["latency_s"] <= rep.totals["latency_s"] * (1 + 1e-12), runtime
        for mine, theirs in zip(bound.rows, rep.rows):
            if mine["count"] == 1 and theirs["count"] == 1:
                assert (mine["start_s"] + mine["latency_s"]
                        <= (theirs["start_s"] + theirs["latency_s"]) * (1 + 1e-12)), \
                    (runtime, mine["name"])


@pytest.mark.parametrize("roofline,detailed,host", PAIRS)
@_SETTINGS
@given(ops=_graphs(["fp16", "fp32"], "fp16"))
def test_the_hostless_roofline_is_below_its_detailed_target_under_every_runtime(
        roofline, detailed, host, ops):
    """Random chains of small GEMMs, elementwise ops and attentions, on the V100 and the
    910B: the roofline below the detailed target under every runtime, op by op."""
    _below_under_every_runtime(roofline, detailed, ops)


@_SETTINGS
@given(ops=_graphs(["fp32"], "fp32"))
def test_the_cpu_roofline_is_below_the_kunpeng_920_under_every_runtime(ops):
    """The same on the Kunpeng 920, whose roofline charges each op armv8's least: its
    call, 384.6 ns, whole (a CPU's call hides behind nothing). At 2 us a fork/join per
    op the roofline was above armv8's whole tiny op (0.41-0.68 us)."""
    _below_under_every_runtime(CPU[0], CPU[1], ops)
