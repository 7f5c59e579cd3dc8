"""Power: no op draws more than its board's power, and the V100's memory-bound
power matches the cuda-roofline measurement (RRZE-HPC/gpu-benches README,
4 x Tesla V100 PCIe 16GB, three arithmetic intensities).

The 0.125 FLOP/B point is the calibration point of ``dram_pj_per_byte`` (the
preset says so); 1.125 and 8.125 FLOP/B then check the compute side.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import dump_yaml

import hwsim
from hwsim.targets import resolve

ROOT = Path(__file__).resolve().parents[1]
POWER_CSV = ROOT.parent / "shared" / "calibration" / "v100" / "v100_rrze_roofline_power.csv"

# Datasheet power limits of presets whose spec has no power-limit field:
# Atlas 800T A2 910B module 400 W (Huawei's Atlas 800T A2 datasheet, S); Ascend 910 310 W,
# the maximum power Huawei gave at its launch (2019; S/M).
LIMITS_W = {"ascend-910b": 400.0, "ascend-910a": 310.0}
KERNELS = [
    {"kind": "matmul", "m": 4096, "n": 4096, "k": 4096},
    {"kind": "matmul", "m": 16, "n": 4096, "k": 4096},
    {"kind": "elementwise", "fn": "add", "elements": 1 << 26},
    {"kind": "attention", "heads": 8, "head_dim": 128, "q_len": 2048, "kv_len": 2048,
     "causal": True},
    {"kind": "softmax", "rows": 4096, "cols": 4096},
]
PRESETS = ["volta-v100-pcie", "volta-v100-sxm2", "ascend-910b", "armv8-kunpeng920", "spatten"]


@pytest.mark.parametrize("preset", PRESETS)
def test_no_op_draws_more_than_board_power(preset, tmp_path):
    resolved = resolve(preset)
    limit = resolved.target.power_limit_w(resolved.spec) or LIMITS_W.get(preset, 0.0)
    if preset == "spatten":  # the paper's 8.30 W is its average (S): its ops stay near it
        limit = 1.5 * resolved.spec.published_power_w
    assert limit > 0
    dtype = "fp32" if preset.startswith("armv8") else "fp16"
    wl = dump_yaml(tmp_path / "k.yaml", {"name": "k", "ops": [dict(k, dtype=dtype)
                                                               for k in KERNELS]})
    report = hwsim.simulate(wl, resolved)
    for r in report.ops.itertuples():  # an op's energy includes the idle wait before it
        assert r.energy_j / (r.latency_s + r.host_wait_s) <= limit * (1 + 1e-9), (preset, r.name)


def test_long_gemm_on_pcie_runs_at_its_power_cap(tmp_path):
    """The PCIe board (250 W) runs an fp16 GEMM at its cap, slower than the SXM2 (300 W)
    though both have the same silicon: the clock drops, as the power cap requires."""
    wl = dump_yaml(tmp_path / "g.yaml", {"name": "g", "ops": [
        {"kind": "matmul", "m": 8192, "n": 8192, "k": 8192, "dtype": "fp16"}]})
    pcie = hwsim.simulate(wl, "volta-v100-pcie").ops.iloc[0]
    sxm2 = hwsim.simulate(wl, "volta-v100-sxm2").ops.iloc[0]
    power = [o.energy_j / (o.latency_s + o.host_wait_s) for o in (pcie, sxm2)]
    assert power[0] == pytest.approx(250.0, rel=0.01)  # less the launch wait at idle power
    assert power[1] <= 300.0 * (1 + 1e-9)
    assert pcie.latency_s > sxm2.latency_s


def _measured():
    if not POWER_CSV.exists():
        pytest.skip(f"{POWER_CSV} absent")
    rows: dict[float, list] = {}
    with open(POWER_CSV, encoding="utf-8") as f:
        for r in csv.DictReader(f):
            rows.setdefault(float(r["flop_per_byte"]), []).append(r)
    return {i: (sum(float(r["dram_bw_GBps"]) for r in rs) / len(rs) * 1e9,
                sum(float(r["gflops"]) for r in rs) / len(rs) * 1e9,
                sum(float(r["power_W"]) for r in rs) / len(rs)) for i, rs in rows.items()}


@pytest.mark.parametrize("intensity", [0.125, 1.125, 8.125])
def test_v100_power_at_the_measured_rates(intensity):
    """The preset's energy table, at the rates the board ran (DRAM bytes through L2, fp64
    FLOPs: the kernel's GF/s near 7 TF at 8.125 F/B implies fp64), against its power."""
    bw, flops, measured = _measured()[intensity]
    resolved = resolve("volta-v100-pcie")
    table = resolved.target.energy_table(resolved.spec)
    dyn = table.dynamic_j({"hbm_byte": bw, "l2_byte": bw, "cuda_flop_fp64": flops})
    power = sum(dyn.values()) + table.static_j(1.0)
    assert power == pytest.approx(measured, rel=0.10)


def test_v100_streaming_power_from_the_models_own_kernel(tmp_path):
    """A memory-bound fp64 reduction (one FLOP per 8 B: the 0.125 F/B point) as the model
    runs it. The model streams at its preset's achievable bandwidth, not the 869 GB/s of
    the measured boards, so power is compared per byte moved: within 10 %."""
    bw, _, measured = _measured()[0.125]
    wl = dump_yaml(tmp_path / "s.yaml", {"name": "s", "ops": [
        {"kind": "reduce", "fn": "sum", "elements": 1 << 28, "out_elements": 1,
         "dtype": "fp64"}]})
    r = hwsim.simulate(wl, "volta-v100-pcie").ops.iloc[0]
    static = resolve("volta-v100-pcie").spec.static_power_w
    model_dyn_per_byte = (r.energy_j / r.latency_s - static) / (
        (r.dram_read_bytes + r.dram_write_bytes) / r.latency_s)
    assert model_dyn_per_byte == pytest.approx((measured - static) / bw, rel=0.10)
