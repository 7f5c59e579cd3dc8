"""The V100 memory path against RRZE's microbenchmarks (issue 13).

RRZE-HPC/gpu-benches@1038c5d, a Tesla V100 PCIe: gpu-stream's read kernel
against occupancy and gpu-latency's single-warp pointer chase, reproduced by the
target's own kernels, Little's law and event run (hwsim/accelerators/volta/calibration.py).
The data is not shipped: these tests skip when the calibration folder is absent.
"""

from __future__ import annotations

import pytest

from hwsim.accelerators.volta import calibration
from hwsim.accelerators.volta.gpu import Gpu, Kernel, Work
from hwsim.calibrate import data_path
from hwsim.targets import resolve

PCIE = resolve("volta-v100-pcie")


def _cases(prefix: str, relpath: str):
    if data_path(relpath) is None:
        pytest.skip(f"calibration data {relpath} absent")
    cs = [c for c in PCIE.target.calibration_cases(PCIE.spec, PCIE.preset)
          if c.name.startswith(prefix)]
    assert cs
    return cs


def test_stream_read_bandwidth_against_occupancy_within_10_percent():
    """16 to 2,048 resident threads per SM: 19 GB/s to 867 GB/s measured; every point
    within 10 % (the worst, 7.4 %, where the measured curve flattens at 1,088-1,216
    threads and the model keeps rising to the HBM cap)."""
    cs = _cases("stream-read-", calibration.STREAM)
    assert len(cs) == 39
    worst = max(cs, key=lambda c: abs(c.error))
    assert abs(worst.error) <= 0.10, (worst.name, worst.measured, worst.modelled)
    by = {c.x["threads_per_sm"]: c for c in cs}
    # the per-SM draw grows with resident warps (no fixed share of bandwidth) ...
    assert by[16].modelled * 20 < by[512].modelled
    # ... and bends over before the cap: 32x the threads give less than 32x the bytes
    assert by[512].modelled < 32 * by[16].modelled * 0.85
    assert by[2048].modelled <= PCIE.spec.dram_bw_bytes_per_s * 1.0001


def test_pointer_chase_plateaus_within_10_percent():
    """L1 ~28, L2 ~212, DRAM ~434 cycles, each plateau from the level the working set
    falls in (transitions left out)."""
    cs = _cases("chase-", calibration.CHASE)
    levels = {c.name.split("-")[1] for c in cs}
    assert levels == {"l1", "l2", "dram"}
    for c in cs:
        assert abs(c.error) <= 0.10, (c.name, c.measured, c.modelled)


def test_other_presets_get_no_cases():
    sxm2 = resolve("volta-v100-sxm2")
    assert calibration.cases(sxm2.spec, sxm2.preset) == []


def test_littles_law_without_the_data():
    """Independent of the files: one block's bytes in flight over the DRAM latency."""
    gpu = Gpu(PCIE.spec)
    spec = PCIE.spec
    w = Work(l2_bytes=8 * 64 * 1024.0, hbm_read=8 * 64 * 1024.0)  # 1,024 rounds of 512 B
    k = Kernel("read", "64x1", 64, 32, 0, [(1, w)], dtype="fp64", tensor=False,
               inflight_bytes_per_thread=8.0)
    t, bound = gpu.memory_time(k, w, 1)
    one_trip = (spec.dram_latency_cycles / spec.clock_hz + 512 / spec.l2_bw_bytes_per_s)
    assert t == pytest.approx(1024 * one_trip, rel=1e-9)
    assert bound == "memory"
    # four times the threads in flight: four times the draw, less the queueing
    k4 = Kernel("read", "256x1", 256, 32, 0, [(1, w)], dtype="fp64", tensor=False,
                inflight_bytes_per_thread=8.0)
    t4, _ = gpu.memory_time(k4, w, 1)
    assert t / 4 < t4 < t / 3.9
    # the chase: one load at a time at the level's latency
    assert calibration.chase_latency_cycles(gpu, 4e3) == pytest.approx(
        spec.l1_latency_cycles)
    assert calibration.chase_latency_cycles(gpu, 1e6) == pytest.approx(
        spec.l2_latency_cycles, rel=1e-3)
    assert calibration.chase_latency_cycles(gpu, 1e9) == pytest.approx(
        spec.dram_latency_cycles, rel=1e-3)
