"""The roofline target: per-op latency, bound and energy, exactly as its formula says.

Every expected number below is computed from the op's shape by hand (bytes are
each input read once and each output written once) and the preset's numbers,
so the tolerance is floating-point rounding only (rel 1e-12).

Without a host (``host: none``, every preset's default) every op was enqueued at
t = 0: the first op pays the device's whole ``kernel_launch_s``, each later one only
``kernel_gap_s`` (its launch taken in behind the op before it, as the V100 and Ascend
targets take a queued launch in), so the run is the least any host could give.
"""

from __future__ import annotations

import pytest
from conftest import KERNEL_OPS, V100, dump_yaml

import hwsim
from hwsim.errors import InputError, UnsupportedOpError
from hwsim.ir import Graph
from hwsim.simulate import run_graph
from hwsim.targets import resolve

EXACT = 1e-12

# (flops, dram_read_bytes, dram_write_bytes, dtype whose peak applies, bound) per
# KERNEL_OPS entry, worked out by hand on roofline-v100 with the workload dtype fp16.
EXPECTED = [
    # matmul 16x16x16 fp32: A, B and C are 16*16*4 = 1 KiB each
    (2 * 16**3, 2 * 1024, 1024, "fp32", "latency"),
    # attention: Q, K, V, O are 4096*128 fp16 = 1 MiB each; 2*4096*4096*(128+128) FLOP
    (2 * 4096 * 4096 * 256, 3 * 2**20, 2**20, "fp16", "compute"),
    # topk 1024 -> 128: reads 1024 fp16, writes 128 fp16 values and 128 int64 indices
    (1024, 2048, 128 * 2 + 128 * 8, "fp16", "latency"),
    # softmax 4096x4096 fp16: 32 MiB in, 32 MiB out, 5 FLOP per element
    (5 * 4096 * 4096, 2**25, 2**25, "fp16", "memory"),
    # exp over 2^20 fp16: 2 MiB in, 2 MiB out
    (2**20, 2**21, 2**21, "fp16", "memory"),
    # embedding: 128 rows of 4096 fp16 (not the 32000-row table) + 128 int64 ids
    (0, 128 * 4096 * 2 + 128 * 8, 128 * 4096 * 2, None, "latency"),
]


def roofline_latency(flops, nbytes, dtype, peak=None, bw=V100["bw"], overhead=V100["overhead"]):
    """An op's time on its own (or the first of a run): its work and the whole launch;
    an op queued behind another pays ``overhead=kernel_gap_s`` instead."""
    compute = flops / (peak or V100[dtype]) if flops else 0.0
    return max(compute, nbytes / bw) + overhead


def queued_latency(i, flops, nbytes, dtype, **kw):
    """Op ``i`` of a hostless run: the first pays the whole launch, the others the gap."""
    if i:
        kw["overhead"] = kw.pop("gap", V100["gap"])
    else:
        kw.pop("gap", None)
    return roofline_latency(flops, nbytes, dtype, **kw)


@pytest.fixture(scope="module")
def kernel_report(tmp_path_factory):
    path = dump_yaml(tmp_path_factory.mktemp("k") / "kernels.yaml",
                     {"name": "kernels", "ops": KERNEL_OPS})
    return hwsim.simulate(path, "roofline-v100")


def test_v100_preset_numbers():
    """The numbers the tests compute with are the preset's."""
    spec = resolve("roofline-v100").spec
    assert spec.peak_flops_per_s["fp16"] == V100["fp16"]
    assert spec.peak_flops_per_s["fp32"] == V100["fp32"]
    assert spec.peak_flops_per_s["int32"] == V100["int32"]
    assert spec.dram_bw_bytes_per_s == V100["bw"]
    assert spec.kernel_launch_s == pytest.approx(V100["overhead"], rel=EXACT)
    assert spec.pj_per_flop == {"fp16": V100["pj_fp16"], "fp32": V100["pj_fp32"],
                                "fp64": 4.6, "int32": V100["pj_int32"]}
    assert spec.dram_pj_per_byte == V100["pj_dram"]
    assert spec.static_power_w == 0.0
    assert resolve("roofline").preset == "roofline-v100"  # the default preset


@pytest.mark.parametrize("i", range(len(EXPECTED)),
                         ids=[op["kind"] for op in KERNEL_OPS])
def test_per_op_latency_bytes_and_bound(kernel_report, i):
    flops, rd, wr, dtype, bound = EXPECTED[i]
    row = kernel_report.ops.iloc[i]
    assert row["kind"] == KERNEL_OPS[i]["kind"]
    assert row["flops"] == flops
    assert row["dram_read_bytes"] == rd
    assert row["dram_write_bytes"] == wr
    assert row["latency_s"] == pytest.approx(queued_latency(i, flops, rd + wr, dtype), rel=EXACT)
    assert row["bound"] == bound
    # the launch taken in behind the op before: all of it but the gap
    assert row["launch_hidden_s"] == pytest.approx(
        V100["overhead"] - V100["gap"] if i else 0.0, rel=EXACT)


@pytest.mark.parametrize("i", range(len(EXPECTED)),
                         ids=[op["kind"] for op in KERNEL_OPS])
def test_per_op_energy(kernel_report, i):
    flops, rd, wr, dtype, _ = EXPECTED[i]
    row = kernel_report.ops.iloc[i]
    compute_j = flops * V100[f"pj_{dtype}"] * 1e-12 if flops else 0.0
    dram_j = (rd + wr) * V100["pj_dram"] * 1e-12
    assert row["energy_compute_j"] == pytest.approx(compute_j, rel=EXACT)
    assert row["energy_dram_j"] == pytest.approx(dram_j, rel=EXACT)
    assert row["energy_static_j"] == 0.0
    assert row["energy_j"] == pytest.approx(compute_j + dram_j, rel=EXACT)


def test_ops_run_back_to_back(kernel_report):
    ops = kernel_report.ops
    ends = (ops["start_s"] + ops["latency_s"]).tolist()
    assert ops["start_s"].iloc[0] == 0.0
    assert ops["start_s"].iloc[1:].tolist() == pytest.approx(ends[:-1], rel=EXACT)
    assert kernel_report.totals["latency_s"] == pytest.approx(ends[-1], rel=EXACT)


def test_totals_and_breakdown(kernel_report):
    t = kernel_report.totals
    assert t["flops"] == t["dense_flops"] == sum(e[0] for e in EXPECTED)
    assert t["dram_read_bytes"] == sum(e[1] for e in EXPECTED)
    assert t["dram_write_bytes"] == sum(e[2] for e in EXPECTED)
    want_latency = sum(queued_latency(i, f, r + w, d) for i, (f, r, w, d, _)
                       in enumerate(EXPECTED))
    # one whole launch, then a gap per op
    assert want_latency == pytest.approx(
        sum(roofline_latency(f, r + w, d, overhead=0.0) for f, r, w, d, _ in EXPECTED)
        + V100["overhead"] + (len(EXPECTED) - 1) * V100["gap"], rel=EXACT)
    assert t["latency_s"] == pytest.approx(want_latency, rel=EXACT)
    b = t["energy_breakdown_j"]
    assert sum(b.values()) == pytest.approx(t["energy_j"], rel=EXACT)
    assert b["compute"] == pytest.approx(
        sum(f * V100[f"pj_{d}"] for f, _, _, d, _ in EXPECTED if f) * 1e-12, rel=EXACT)
    assert b["dram"] == pytest.approx(
        sum(r + w for _, r, w, _, _ in EXPECTED) * V100["pj_dram"] * 1e-12, rel=EXACT)
    assert b["onchip"] == b["static"] == b["interconnect"] == 0.0


def test_event_and_analytical_fidelity_agree(tmp_path):
    path = dump_yaml(tmp_path / "k.yaml", {"ops": KERNEL_OPS})
    ev = hwsim.simulate(path, "roofline", fidelity="event")
    an = hwsim.simulate(path, "roofline", fidelity="analytical")
    assert ev.ops["latency_s"].tolist() == pytest.approx(an.ops["latency_s"].tolist(),
                                                         rel=EXACT)
    assert ev.totals["energy_j"] == pytest.approx(an.totals["energy_j"], rel=EXACT)


def test_other_presets(tmp_path):
    path = dump_yaml(tmp_path / "mm.yaml",
                     {"ops": [{"kind": "matmul", "m": 4096, "n": 4096, "k": 4096}],
                      "dtype": "fp32"})
    flops, nbytes = 2 * 4096**3, 3 * 4096 * 4096 * 4
    r = hwsim.simulate(path, "roofline-kunpeng920")
    assert r.totals["latency_s"] == pytest.approx(
        roofline_latency(flops, nbytes, None, peak=2.662e12, bw=187.7e9,
                         overhead=384.6e-9),
        rel=EXACT)
    assert r.ops["bound"].iloc[0] == "compute"
    r = hwsim.simulate(path, "roofline-910b")
    assert r.totals["latency_s"] == pytest.approx(
        roofline_latency(flops, nbytes, None, peak=11.06e12, bw=1.6e12, overhead=2.9e-6),
        rel=EXACT)
    # Ascend's fp32 runs on the vector units: 2.3 pJ/FLOP, HBM 31.2 pJ/B
    assert r.totals["energy_j"] == pytest.approx(
        (flops * 2.3 + nbytes * 31.2) * 1e-12, rel=EXACT)


def test_integer_ops_run_at_the_int32_rate(tmp_path):
    path = dump_yaml(tmp_path / "i.yaml", {"ops": [
        {"kind": "elementwise", "fn": "add", "elements": 2**26, "dtype": "int64"}]})
    r = hwsim.simulate(path, "roofline-v100", sets=["target.dram_bw_bytes_per_s=1e18"])
    row = r.ops.iloc[0]
    assert row["bound"] == "compute"
    assert row["latency_s"] == pytest.approx(
        max(2**26 / V100["int32"], 3 * 2**26 * 8 / 1e18) + V100["overhead"], rel=EXACT)
    assert row["energy_compute_j"] == pytest.approx(2**26 * V100["pj_int32"] * 1e-12,
                                                    rel=EXACT)


@pytest.mark.parametrize("dtype", ["bf16", "int8"])
def test_dtype_without_a_peak_is_an_error_never_zero(tmp_path, dtype):
    path = dump_yaml(tmp_path / "b.yaml", {"ops": [{"kind": "matmul", "m": 64, "n": 64,
                                                    "k": 64}], "dtype": dtype})
    with pytest.raises(InputError) as info:
        hwsim.simulate(path, "roofline-v100")
    msg = str(info.value)
    assert f"no peak_flops_per_s for dtype {dtype!r}" in msg
    assert "roofline-v100.yaml" in msg  # the preset that lacks it
    assert "matmul" in msg  # the op that needs it
    assert info.value.problems[0].field == "spec.peak_flops_per_s"


def test_bf16_runs_where_the_preset_has_a_peak(tmp_path):
    path = dump_yaml(tmp_path / "b.yaml", {"ops": [{"kind": "matmul", "m": 8192, "n": 8192,
                                                    "k": 8192}], "dtype": "bf16"})
    r = hwsim.simulate(path, "roofline-910b")
    flops = 2 * 8192**3
    assert r.totals["latency_s"] == pytest.approx(
        roofline_latency(flops, 3 * 8192 * 8192 * 2, None, peak=354e12, bw=1.6e12,
                         overhead=2.9e-6), rel=EXACT)


def test_zero_flop_ops_need_no_peak(tmp_path):
    path = dump_yaml(tmp_path / "e.yaml", {"ops": [{"kind": "embedding", "tokens": 16,
                                                    "dim": 64}], "dtype": "bf16"})
    r = hwsim.simulate(path, "roofline-v100")
    assert r.ops["latency_s"].iloc[0] == pytest.approx(
        (16 * 64 * 2 * 2 + 16 * 8) / V100["bw"] + V100["overhead"], rel=EXACT)


@pytest.mark.parametrize("value, bw", [("450e9", 450e9), ("1.8e12", 1.8e12),
                                       ("'450 GB/s'", 450e9), ("'3.6 TB/s'", 3.6e12)])
def test_set_dram_bandwidth_scales_memory_bound_latency(tmp_path, value, bw):
    path = dump_yaml(tmp_path / "s.yaml", {"ops": [KERNEL_OPS[3]]})  # the softmax
    base = hwsim.simulate(path, "roofline-v100").ops.iloc[0]
    r = hwsim.simulate(path, "roofline-v100", sets=[f"target.dram_bw_bytes_per_s={value}"])
    row = r.ops.iloc[0]
    assert r.target.spec.dram_bw_bytes_per_s == bw
    assert row["bound"] == "memory"
    assert row["latency_s"] - V100["overhead"] == pytest.approx(
        (base["latency_s"] - V100["overhead"]) * V100["bw"] / bw, rel=1e-9)
    assert row["dram_read_bytes"] == base["dram_read_bytes"]  # traffic is the op's


def test_set_overhead_and_peak(tmp_path):
    path = dump_yaml(tmp_path / "m.yaml", {"ops": [KERNEL_OPS[0]]})  # 16^3 fp32
    r = hwsim.simulate(path, "roofline", sets=["target.kernel_launch_s=0",
                                               "target.peak_flops_per_s={fp32: 1e6}"])
    row = r.ops.iloc[0]
    assert row["bound"] == "compute"
    assert row["latency_s"] == pytest.approx(2 * 16**3 / 1e6, rel=EXACT)


def test_static_power_and_a_hardware_file(tmp_path):
    hw = dump_yaml(tmp_path / "my-gpu.yaml", {
        "target": "roofline", "name": "my-gpu",
        "spec": {"peak_flops_per_s": {"fp16": "100e12"}, "dram_bw_bytes_per_s": "1 TB/s",
                 "kernel_launch_s": "2 us", "dram_pj_per_byte": 10,
                 "pj_per_flop": {"fp16": 0.5}, "static_power_w": "250 W"}})
    wl = dump_yaml(tmp_path / "w.yaml", {"ops": [KERNEL_OPS[1], KERNEL_OPS[3]]})
    r = hwsim.simulate(wl, str(hw))
    assert r.target.preset == str(hw)
    # no kernel_gap_s: the second op's launch hides whole behind the first op
    lat = [queued_latency(n, EXPECTED[i][0], EXPECTED[i][1] + EXPECTED[i][2], None,
                          peak=100e12, bw=1e12, overhead=2e-6, gap=0.0)
           for n, i in enumerate((1, 3))]
    assert r.ops["latency_s"].tolist() == pytest.approx(lat, rel=EXACT)
    b = r.totals["energy_breakdown_j"]
    assert b["static"] == pytest.approx(250 * sum(lat), rel=EXACT)
    assert b["compute"] == pytest.approx((EXPECTED[1][0] + EXPECTED[3][0]) * 0.5e-12, rel=EXACT)
    nbytes = sum(EXPECTED[i][1] + EXPECTED[i][2] for i in (1, 3))
    assert b["dram"] == pytest.approx(nbytes * 10e-12, rel=EXACT)
    assert r.totals["energy_j"] == pytest.approx(b["static"] + b["compute"] + b["dram"],
                                                 rel=EXACT)


def test_view_is_free(tiny_trace, write_workload):
    r = hwsim.simulate(write_workload({"trace": str(tiny_trace)}), "roofline")
    views = r.ops[r.ops["kind"] == "view"]
    assert len(views) == 2
    assert (views["latency_s"] == 0).all() and (views["energy_j"] == 0).all()
    assert (views["bound"] == "latency").all()


def test_unknown_kind_is_unsupported_not_zero():
    g = Graph({"name": "x"})
    a = g.add_tensor([4], "fp16", "input")
    y = g.add_tensor([4], "fp16")
    g.add_op("conv2d", [a], [y], {})
    with pytest.raises(UnsupportedOpError, match="cannot cost operator kind 'conv2d'"):
        run_graph(g, resolve("roofline"))


def test_zero_bandwidth_is_rejected_when_the_spec_is_built():
    with pytest.raises(InputError) as info:
        resolve("roofline", {"dram_bw_bytes_per_s": 0})
    p = info.value.problems[0]
    assert (p.source, p.field) == ("--set", "target.dram_bw_bytes_per_s")
