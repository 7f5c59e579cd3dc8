"""Invariants of ops on streams (issue 18) over random workloads: tiling-AllReduce on
every multi-device target, CPU-GPU cooperation on every Volta preset.

- overlap never makes a run slower than the same ops one after another, and a run
  never ends before its busiest stream's work;
- every row still obeys the machine's physics (tests/physics.py);
- a bigger machine (faster links, faster PCIe) is never slower;
- keeping the whole KV cache on the device is never slower than keeping part of it in
  host memory. (A smaller host share is not always faster: the device's and the host
  blocks' attention kernels change shape with it, and their tiles fill differently.)

CI runs a few derandomized examples; ``--runslow`` runs more.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from physics import violations

import hwsim
from hwsim import zoo
from hwsim.targets import all_presets

FAST = settings(max_examples=6, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
TP_PRESETS = sorted(p for p, (t, _) in all_presets().items()
                    if t.name in ("roofline", "volta", "ascend"))
VOLTA = sorted(p for p, (t, _) in all_presets().items() if t.name == "volta")
REL = 1e-9


def _tp(seq_len: int, devices: int, extra=()):
    return {"name": "tp", "model": "llama-2-7b", "phase": "prefill", "seq_len": seq_len,
            "devices": devices, "dtype": "fp16",
            "tiling": {"attention": "flash", "tiling_allreduce": True, **dict(extra)}}


@pytest.fixture(autouse=True)
def _llama():
    if zoo.shipped_path("llama-2-7b", "prefill") is None:
        pytest.skip("no shipped llama-2-7b template")


@pytest.mark.parametrize("preset", TP_PRESETS)
@FAST
@given(seq_len=st.sampled_from([128, 1000, 2048, 3000, 4096]),
       devices=st.sampled_from([2, 4, 8]))
def test_tiling_allreduce_never_loses_and_obeys_physics(preset, seq_len, devices):
    wl = _tp(seq_len, devices)
    if not hwsim.targets.resolve(preset).spec.link_bw_bytes_per_s:
        return  # a machine without links cannot all-reduce (a one-line error, tested)
    r = hwsim.simulate(wl, preset, fidelity="analytical")
    plain = hwsim.simulate(wl, preset, sets=["tiling.tiling_allreduce=false"],
                           fidelity="analytical")
    t = r.totals["latency_s"]
    assert t <= plain.totals["latency_s"] * (1 + REL)
    assert t >= max(r.streams["busy_s"].values()) * (1 - REL)
    assert 0.0 <= r.streams["tiling_allreduce"]["hidden_share"] <= 1.0
    assert violations(r) == []
    # faster links: never slower
    spec = r.target.spec
    fast = hwsim.simulate(wl, preset, sets=[f"target.link_bw_bytes_per_s="
                                            f"{2 * spec.link_bw_bytes_per_s}"],
                          fidelity="analytical")
    assert fast.totals["latency_s"] <= t * (1 + REL)


@st.composite
def offloaded_attention(draw):
    h = draw(st.sampled_from([8, 32]))
    q = draw(st.sampled_from([1, 1, 16, 512, 2048]))
    return {"kind": "attention", "heads": h, "kv_heads": draw(st.sampled_from([h, h // 8])),
            "head_dim": 128, "q_len": q, "kv_len": q + draw(st.sampled_from([0, 1000, 32768,
                                                                              131072])),
            "causal": True}


@pytest.mark.parametrize("preset", VOLTA)
@FAST
@given(op=offloaded_attention(), fraction=st.sampled_from([0.1, 0.3, 0.5, 0.9]))
def test_host_kv_never_beats_the_device_and_obeys_physics(preset, op, fraction):
    wl = {"name": "kv", "ops": [op, op], "dtype": "fp16"}
    r = hwsim.simulate(wl, preset, sets=[f"target.host_kv_fraction={fraction}"],
                       fidelity="analytical")
    t = r.totals["latency_s"]
    assert t >= max(r.streams["busy_s"].values()) * (1 - REL)
    assert violations(r) == []
    device = hwsim.simulate(wl, preset, fidelity="analytical").totals["latency_s"]
    assert device <= t * (1 + 1e-6)
    bw = r.target.spec.pcie_bw_bytes_per_s
    faster = hwsim.simulate(wl, preset, sets=[f"target.host_kv_fraction={fraction}",
                                              f"target.pcie_bw_bytes_per_s={2 * bw}"],
                            fidelity="analytical").totals["latency_s"]
    assert faster <= t * (1 + 1e-6)
