"""The fused attention's cube/vector pipeline as engine tasks: lanes that wait on each
other in the Chrome trace, run-ahead against one-level flash, the per-core microbenchmark."""

from __future__ import annotations

import json

import pytest

import hwsim
from accelerators.ascend.calibration import cases
from hwsim.calibrate import data_path
from hwsim.report.chrome import write_chrome_trace
from hwsim.targets import resolve


def one_head(tmp_path, n=4096, strategy="fastattention"):
    wl = tmp_path / f"fa-{n}-{strategy}.yaml"
    wl.write_text(f"name: fa\ndtype: fp16\ntiling: {{attention: {strategy}}}\nops:\n"
                  f"  - {{kind: attention, heads: 1, head_dim: 128, q_len: {n}, kv_len: {n},"
                  f" causal: false}}\n")
    return hwsim.simulate(str(wl), target="ascend-910b")


def test_chrome_trace_has_cube_and_vector_lanes_that_wait_on_each_other(tmp_path):
    path = tmp_path / "fa.json"
    write_chrome_trace(one_head(tmp_path), str(path))
    ev = json.loads(path.read_text())["traceEvents"]
    lane = {e["tid"]: e["args"]["name"] for e in ev if e["name"] == "thread_name"}
    spans: dict[str, list] = {}
    for e in ev:
        if e["ph"] == "X" and lane.get(e["tid"], "") in ("core3.cube", "vec6.vector",
                                                           "vec7.vector"):
            spans.setdefault(lane[e["tid"]], []).append((e["ts"], e["ts"] + e["dur"], e["name"]))
    assert set(spans) == {"core3.cube", "vec6.vector", "vec7.vector"}
    cube, vec = sorted(spans["core3.cube"]), sorted(spans["vec6.vector"])
    # the vector's first softmax starts after the cube's first QK has ended (it waits)
    assert vec[0][0] >= cube[0][1]
    # ... and the cube's first PV starts after that softmax has ended
    pv = [s for s in cube if "PV" in s[2]]
    assert pv and pv[0][0] >= vec[0][1]
    # bubbles: the cube is idle somewhere while the vectors work, and the other way round
    gaps = [(a[1], b[0]) for a, b in zip(cube, cube[1:]) if b[0] - a[1] > 1e-3]
    assert gaps and any(v[0] < g1 and v[1] > g0 for g0, g1 in gaps for v in vec)
    # overlap: some softmax runs while the cube computes (FastAttention's run-ahead)
    assert any(c[0] < v[1] and v[0] < c[1] for c in cube for v in vec)


def test_run_ahead_beats_one_level_flash(tmp_path):
    fa = one_head(tmp_path, 8192, "fastattention").totals["latency_s"]
    flash = one_head(tmp_path, 8192, "flash").totals["latency_s"]
    assert fa < flash


def test_k_and_v_loads_hide_behind_the_cube(tmp_path, monkeypatch):
    """K and V in their own double buffers, P copied in on the same MTE2: at 32K (one
    head, d=128) no lane waits for a load + QK + PV in a row (3.44 ms with one buffer
    for K and V, before P and the whole S went through MTE2 and FixPipe); the MTE2 and
    the vectors are the busiest lanes. The 16 steps a core's walk is aggregated into
    stay within 15 % of the walk block by block (3.20 against 2.84 ms: the ramp from
    the one-block edges to the middle steps and the drain, cv_pipeline's docstring)."""
    import accelerators.ascend.cv_pipeline as cv
    r = one_head(tmp_path, 32768)
    path = tmp_path / "fa32k.json"
    write_chrome_trace(r, str(path))
    ev = json.loads(path.read_text())["traceEvents"]
    lane = {e["tid"]: e["args"]["name"] for e in ev if e["name"] == "thread_name"}
    busy = {}
    for e in ev:
        if e["ph"] == "X" and lane.get(e["tid"]) in ("core3.cube", "vec6.vector", "core3.mte2",
                                                      "core3.fixpipe"):
            busy[lane[e["tid"]]] = busy.get(lane[e["tid"]], 0.0) + e["dur"]
    assert max(busy, key=busy.get) in ("core3.mte2", "vec6.vector")
    # K, V and P share the MTE2; FixPipe writes S and O_j (fp32) but at a higher rate
    assert busy["core3.mte2"] > busy["core3.cube"] > busy["core3.fixpipe"]
    aggregated = r.totals["latency_s"]
    monkeypatch.setattr(cv, "MAX_STEPS", 10**6)
    per_block = one_head(tmp_path, 32768).totals["latency_s"]
    assert per_block <= aggregated < 1.15 * per_block
    # the lanes' work bounds the walk from below: the busiest lane's time per core
    assert per_block * 1e6 > max(busy.values()) * 0.95


def test_per_core_flash_attention_microbenchmark():
    """fa_pto_percore (hw-native-sys/pto-isa@3186c38, see accelerators/ascend/calibration.py).
    Nothing is set from it. Modelled today (the kernel's tasks alone, 910B preset):
    18-81 us against 33-107 us measured, MAPE 33 %. From 4K keys on, 1-4 cores are
    within 9 %; 8 cores 25-28 % too fast: the model's rows are flat in the core count,
    the measured ones 44 % slower on 8 cores than on 1 at 8K. The 1K-2K rows are 33-72 % too fast, and they are not consistent
    with the same README's later table for the same kernel on a stated 910B2: 8 cores,
    S_q = S_kv = 1,024 took 63.7 us here and 20.96 us there (3.0x), and the model is
    within 7 % of the latter (hwsim/validate/cases/ascend-pto.yaml). These rows also
    fall from 2K to 4K keys on every core count, which no plan that grows with the work
    reproduces. The issue's 15 % is not met on this file; this test holds the present
    figures so that a change shows."""
    if data_path("ascend/fa_pto_percore.csv") is None:
        pytest.skip("calibration data absent")
    got = cases(resolve("ascend-910b").spec)
    assert len(got) == 16
    errs = [abs(c.error) for c in got]
    assert sum(errs) / len(errs) < 0.40
    assert max(errs) < 0.80
    big = [c for c in got if c.x["seq_kv"] >= 4096]
    assert max(abs(c.error) for c in big if c.x["cube_cores"] <= 4) < 0.10
    eight = [c for c in big if c.x["cube_cores"] == 8]
    assert all(-0.30 < c.error < 0 for c in eight)  # no multi-core slowdown in the model
