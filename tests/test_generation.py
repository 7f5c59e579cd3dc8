"""Whole requests (phase: generate): steps, KV policies over time, brackets, memory.

The checks of issue 15: a generation's steps are the single decode-step simulations
at the KV length each has (exactly, where simulated; within the stated bound where
bracketed); H2O's shorter TPOT and larger batch follow from the bytes it no longer
reads and holds."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import hwsim
from hwsim.errors import InputError
from hwsim.generation import bracket, interpolate, max_batch, policy_of
from hwsim.report.generation import percentile
from hwsim.workload import workload_from_dict

TINY = {"name": "gen", "model": "tinyllama-1.1b", "phase": "generate", "dtype": "fp16"}
LLAMA = {"name": "gen", "model": "llama-2-7b", "phase": "generate", "dtype": "fp16"}
LLAVA = {"name": "gen", "model": "llava-1.5-7b", "phase": "generate", "dtype": "fp16"}


def wl(base=TINY, **fields):
    return workload_from_dict({**base, **fields}, "<test>")


def decode_step(base, kv_len, pruning=(), **fields):
    data = {**base, "phase": "decode", "seq_len": 1, "kv_len": kv_len,
            "pruning": list(pruning), **fields}
    return workload_from_dict(data, "<test>")


# ---------------------------------------------------------------- steps are decode steps
@pytest.mark.parametrize("target", ["roofline", "volta", "ascend", "armv8", "spatten"])
def test_exact_steps_are_the_single_decode_steps(target):
    """Every step of an exact generation is the decode-step simulation at its cache
    (P + j - 1 tokens), and its prefill the prefill's: TTFT and TPOT follow."""
    g = hwsim.simulate(wl(seq_len=300, new_tokens=5, exact=True), target)
    pre = hwsim.simulate(workload_from_dict({**TINY, "phase": "prefill", "seq_len": 300},
                                            "<t>"), target)
    assert g.totals["ttft_s"] == pytest.approx(pre.totals["latency_s"], rel=1e-12)
    assert list(g.steps["kv_len"]) == [300, 301, 302, 303]
    singles = [hwsim.simulate(decode_step(TINY, kv), target).totals for kv in (300, 301, 302, 303)]
    for row, one in zip(g.step_rows, singles):
        for key in ("latency_s", "energy_j", "dram_read_bytes", "flops"):
            assert row[key] == pytest.approx(one[key], rel=1e-12), key
    assert g.totals["tpot_s"] == pytest.approx(
        sum(s["latency_s"] for s in singles) / 4, rel=1e-12)
    assert g.totals["latency_s"] == pytest.approx(
        pre.totals["latency_s"] + sum(s["latency_s"] for s in singles), rel=1e-12)
    assert g.totals["simulated_steps"] == 4 and g.totals["step_error"] == 0


def test_a_full_h2o_cache_makes_every_step_the_same_decode_step():
    """H2O with a budget below the prompt: the prompt's end cuts the cache to B, and
    each step attends to B + 1 keys and evicts one: one step simulated, TPOT equal to
    the decode workload of that cache within 1 %."""
    g = hwsim.simulate(wl(LLAMA, seq_len=4096, new_tokens=64,
                          pruning=[{"method": "h2o", "keep": 0.25}]), "volta")
    assert g.totals["simulated_steps"] == 1
    assert set(g.steps["kv_len"]) == {1024}
    one = hwsim.simulate(decode_step(LLAMA, 1024, [{"method": "h2o", "tokens": 1024}]), "volta")
    assert g.totals["tpot_s"] == pytest.approx(one.totals["latency_s"], rel=0.01)
    # the machinery runs: the prompt's selection in the prefill, accumulate and top-k per step
    assert {"h2o.prompt_scores", "h2o.evict_topk"} <= set(g.ops["name"])
    assert {"h2o.accumulate", "h2o.evict_topk"} <= set(g.points[1024].ops["name"])


# ---------------------------------------------------------------- brackets
@pytest.mark.parametrize("target, fidelity", [("volta", "event"), ("ascend", "analytical"),
                                              ("armv8", "analytical"), ("roofline", "event")])
def test_bracketed_steps_are_within_the_stated_bound(target, fidelity):
    """Steps between simulated ones are interpolated; checked against their own decode
    simulations at a spread of steps: each within step_error in latency, energy and
    DRAM bytes."""
    err = 0.01
    g = hwsim.simulate(wl(seq_len=64, new_tokens=1500, step_error=err), target,
                       fidelity=fidelity)
    rows = g.step_rows
    assert 2 < g.totals["simulated_steps"] < 60  # the cache grows 24x: brackets were cut
    probes = [r for r in rows if not r["simulated"]][::97]
    assert len(probes) >= 10
    for r in probes:
        one = hwsim.simulate(decode_step(TINY, r["kv_len"]), target, fidelity=fidelity).totals
        for key in ("latency_s", "energy_j"):
            assert abs(r[key] / one[key] - 1) <= err, (r["step"], key, r[key], one[key])
        dram, got = (one["dram_read_bytes"] + one["dram_write_bytes"],
                     r["dram_read_bytes"] + r["dram_write_bytes"])
        assert abs(got / dram - 1) <= err
    assert g.totals["step_error"] == err


def test_bracket_cuts_until_its_ends_agree():
    calls = []

    def f(n):
        calls.append(n)
        return {"latency_s": 1.0 + (n / 100.0) ** 2, "energy_j": 1.0, "dram_read_bytes": 1,
                "dram_write_bytes": 0}

    lengths = list(range(0, 1001))
    done = bracket(lengths, f, exact=False, step_error=0.02)
    simulated = len(set(calls))
    assert set(done) == set(calls) and {0, 1000} <= set(done)
    got = interpolate(np.array(lengths), done)
    for n in lengths:  # a convex, increasing figure: interpolation errs within the bound
        assert abs(got["latency_s"][n] / f(n)["latency_s"] - 1) <= 0.02
    assert got["dram_read_bytes"].dtype.kind == "i"
    assert simulated < len(lengths) / 2  # brackets of 2 % spread: ~1 in 3 simulated
    flat = bracket(lengths, lambda n: {"latency_s": 2.0, "energy_j": 1.0, "dram_read_bytes": 5,
                                       "dram_write_bytes": 5}, exact=False, step_error=0.01)
    assert sorted(flat) == [0, 1000]
    assert interpolate(np.array([500]), flat)["latency_s"][0] == 2.0
    exact_calls = []
    bracket([3, 4, 9], lambda n: exact_calls.append(n) or {"latency_s": n}, exact=True,
            step_error=0.01)
    assert exact_calls == [3, 4, 9]


def test_percentile_is_numpys_linear_method():
    np = pytest.importorskip("numpy")
    xs = [5.0, 1.0, 3.0, 2.0, 8.0, 13.0, 21.0]
    for q in (0, 10, 50, 90, 99, 100):
        assert percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)))


# ---------------------------------------------------------------- H2O against dense
def test_h2o_tpot_and_batch_follow_from_the_bytes_it_frees():
    """Llama-2-7B, a 4,096-token prompt and 1,024 new tokens on a V100 (SXM2, 32 GB):
    H2O at 25 % lowers TPOT by what the KV bytes it no longer reads cost at the
    step's DRAM rate, and raises the largest batch by the ratio of memory it frees."""
    fields = dict(seq_len=4096, new_tokens=1024)
    h2o = [{"method": "h2o", "keep": 0.25}]
    g = hwsim.simulate(wl(LLAMA, **fields, pruning=h2o), "volta", baseline=True)
    dense = g.baseline
    t, d = g.totals, dense.totals
    assert t["ttft_s"] > d["ttft_s"]  # the selection at the prompt's end reads its scores
    steps = len(g.step_rows)
    bytes_h2o = (t["dram_read_bytes"] + t["dram_write_bytes"]
                 - g.prefill.totals["dram_read_bytes"] - g.prefill.totals["dram_write_bytes"])
    bytes_dense = (d["dram_read_bytes"] + d["dram_write_bytes"]
                   - dense.prefill.totals["dram_read_bytes"]
                   - dense.prefill.totals["dram_write_bytes"])
    per_step_freed = (bytes_dense - bytes_h2o) / steps
    assert per_step_freed > 0
    # the dense step's own rate: its time per byte (a memory-bound decode step)
    rate = (bytes_dense / steps) / d["tpot_s"]
    saved = d["tpot_s"] - t["tpot_s"]
    # the time of the bytes H2O no longer moves, less what its machinery costs (its
    # accumulate and top-k ops are small and latency-bound): within 25 % of it
    assert 0.75 * per_step_freed / rate <= saved <= 1.02 * per_step_freed / rate
    assert 1.05 < d["tpot_s"] / t["tpot_s"] < 1.2
    # batch: the decode's KV per sequence drops from 5,119 to 1,024 tokens
    nb_dense = max_batch(wl(LLAMA, **fields), "volta")
    nb_h2o = max_batch(wl(LLAMA, **fields, pruning=h2o), "volta")
    kv_dense = dense.points[5118].memory["kv_cache_bytes"]
    kv_h2o = g.points[1024].memory["kv_cache_bytes"]
    free = (g.points[1024].memory["capacity_bytes"] - g.points[1024].memory["weights_bytes"])
    assert nb_dense == math.floor(free / kv_dense)
    # (H2O's own limit is the last admitted prompt's prefill: its scores read the
    # prompt's 1 GiB of probabilities, which the others' compressed caches leave room for)
    assert nb_h2o == pytest.approx(free / kv_h2o, rel=0.1)
    assert nb_h2o / nb_dense == pytest.approx(kv_dense / kv_h2o, rel=0.2)


# ---------------------------------------------------------------- the other policies
def test_streamingllm_keeps_sinks_and_window_and_rerotates_its_keys():
    """4 sinks + 1,020 recent tokens of a 4,096-token prompt: every step reads 1,025
    keys and re-rotates the 1,024 cached ones; at this length the KV bytes it saves
    outweigh the rotation (at a few hundred tokens they do not: tinyllama at 256
    tokens runs 2 % slower than dense)."""
    g = hwsim.simulate(wl(LLAMA, seq_len=4096, new_tokens=200,
                          pruning=[{"method": "streamingllm", "window": 1020}]), "volta",
                       baseline=True)
    assert set(g.steps["kv_len"]) == {1024}
    assert g.totals["ttft_s"] == pytest.approx(g.baseline.totals["ttft_s"], rel=1e-12)
    assert "streamingllm.rerotate_keys" in set(g.points[1024].ops["name"])
    assert g.totals["tpot_s"] < g.baseline.totals["tpot_s"]


def test_snapkv_selects_once_and_the_cache_grows_from_its_capacity():
    g = hwsim.simulate(wl(seq_len=1024, new_tokens=40,
                          pruning=[{"method": "snapkv", "tokens": 256}]), "roofline",
                       baseline=True)
    assert list(g.steps["kv_len"]) == [256 + j - 1 for j in range(1, 40)]
    names = set(g.ops["name"])
    assert {"snapkv.window_scores", "snapkv.select_topk", "snapkv.gather_keys"} <= names
    assert not any("snapkv" in n for p in g.points.values() for n in p.ops["name"])
    assert g.totals["ttft_s"] > g.baseline.totals["ttft_s"]
    assert g.totals["kv_cache_bytes"] < g.baseline.totals["kv_cache_bytes"]


def test_a_budget_above_the_cache_evicts_nothing_until_it_is_full():
    g = hwsim.simulate(wl(seq_len=100, new_tokens=20, exact=True,
                          pruning=[{"method": "h2o", "tokens": 110}]), "roofline")
    kv = list(g.steps["kv_len"])
    assert kv[:11] == list(range(100, 111)) and set(kv[11:]) == {110}
    early, full = g.points[105], g.points[110]
    assert "h2o.evict_topk" not in set(early.ops["name"])  # under budget: scores only
    assert "h2o.accumulate" in set(early.ops["name"])
    assert "h2o.evict_topk" in set(full.ops["name"])


# ---------------------------------------------------------------- report and errors
def test_report_json_steps_and_request_figures():
    g = hwsim.simulate(wl(seq_len=128, new_tokens=4, batch=2), "roofline")
    doc = json.loads(g.to_json())
    t = doc["totals"]
    assert t["tokens_per_s"] == pytest.approx(2 * 4 / t["latency_s"])
    assert t["energy_per_token_j"] == pytest.approx(t["energy_j"] / 8)
    assert len(doc["steps"]) == 3 and doc["steps"][0]["kv_len"] == 128
    assert doc["prefill"]["totals"]["latency_s"] == pytest.approx(t["ttft_s"])
    text = g.table()
    assert "TTFT" in text and "TPOT" in text and "the prefill" in text
    one = hwsim.simulate(wl(seq_len=128, new_tokens=1), "roofline")
    assert one.totals["tpot_s"] is None and one.totals["decode_steps"] == 0
    json.loads(one.to_json())


@pytest.mark.parametrize("fields, field, needle", [
    (dict(seq_len=64), "new_tokens", "1 to 1,048,576 tokens"),
    (dict(seq_len=64, new_tokens=2 ** 21), "new_tokens", "1 to 1,048,576 tokens"),
    (dict(seq_len=64, new_tokens=4, kv_len=5), "kv_len", "empty KV cache"),
    (dict(phase="prefill", seq_len=64, new_tokens=4), "new_tokens", "belongs to a generation"),
    (dict(seq_len=64, new_tokens=4, step_error=0.0), "step_error", "fraction"),
    (dict(seq_len=64, new_tokens=4, step_error=float("nan")), "step_error", "finite"),
])
def test_generation_fields_are_checked(fields, field, needle):
    with pytest.raises(InputError) as e:
        wl(**fields)
    assert any(p.field == field and needle in p.message for p in e.value.problems)


@pytest.mark.parametrize("pruning, field, needle", [
    ([{"method": "spatten", "keep": 0.5}, {"method": "h2o", "keep": 0.5}], "pruning.1.method",
     "differs per layer"),
    ([{"method": "lazyllm", "keep": 0.5}, {"method": "h2o", "keep": 0.5}], "pruning.0.method",
     "not modelled"),
    ([{"method": "fastv", "at_layer": 2, "keep": 0.5}, {"method": "h2o", "keep": 0.5}],
     "pruning.1.method", "differs per layer"),
    ([{"method": "h2o", "keep": 0.5}, {"method": "snapkv", "tokens": 100}], "pruning.1.method",
     "one KV policy"),
    ([{"method": "h2o", "keep": [0.5] * 22}], "pruning.0.keep", "one budget"),
])
def test_policies_a_generation_cannot_run_are_one_line_errors(pruning, field, needle):
    with pytest.raises(InputError) as e:
        policy_of(wl(seq_len=64, new_tokens=4, pruning=pruning))
    (p,) = e.value.problems
    assert p.field == field and needle in p.message


def test_snapkv_in_a_single_decode_step_says_to_generate():
    with pytest.raises(InputError, match="phase: generate"):
        hwsim.simulate(decode_step(TINY, 500, [{"method": "snapkv", "tokens": 100}]),
                       "roofline")


def test_a_prompt_pruning_leaves_each_layer_its_cache_and_the_steps_append():
    """FastV at layer 2 keeping half of LLaVA-1.5's 576 visual tokens: the first two
    layers cache the whole 640-token prompt, the others 352; every step appends one
    token to each, and FastV's selection does not run again."""
    g = hwsim.simulate(wl(LLAVA, seq_len=640, new_tokens=6, exact=True, pruning=[
        {"method": "fastv", "at_layer": 2, "keep": 0.5, "segment": "visual"}]), "roofline",
        baseline=True)
    for j, kv in enumerate(sorted(g.points), start=1):
        att = [op.attrs["kv_len"] for op in g.points[kv].graph.ops if op.kind == "attention"]
        assert len(att) == 32  # the language model's layers, in order
        assert att[0] == att[1] == 640 + j and set(att[2:]) == {352 + j}
        assert not any("fastv" in (op.name or "") for op in g.points[kv].graph.ops)
    assert "fastv" in "".join(g.ops["name"])
    assert g.totals["kv_cache_bytes"] < 0.6 * g.baseline.totals["kv_cache_bytes"]
    assert g.totals["tpot_s"] < g.baseline.totals["tpot_s"]
    assert g.totals["ttft_s"] < g.baseline.totals["ttft_s"]


def test_spattens_cascade_runs_in_the_prefill_and_in_every_step():
    """GPT-2 under SpAtten's cascade (keep 0.5): the prefill cuts the prompt from layer 1
    on; every step ranks its cache of P + j - 1 tokens and attends to half of it, the
    top-k costed each step."""
    base = {"name": "gen", "model": "gpt2", "phase": "generate", "dtype": "fp16"}
    g = hwsim.simulate(wl(base, seq_len=256, new_tokens=4, exact=True,
                          pruning=[{"method": "spatten", "keep": 0.5}]), "roofline",
                       baseline=True)
    assert sorted(g.points) == [256, 257, 258]
    for kv in g.points:
        ops = g.points[kv].graph.ops
        att = [op.attrs["kv_len"] for op in ops if op.kind == "attention"]
        assert set(att) == {(kv + 1) // 2 + 1}, att
        assert any(op.kind == "topk" and op.attrs.get("pruning") == "spatten" for op in ops)
    assert g.totals["kv_cache_bytes"] < g.baseline.totals["kv_cache_bytes"]
    # its top-k engine prices the per-step ranking low on SpAtten's own accelerator, which
    # then decodes faster than the dense cache; a GPU pays a few microseconds per op for
    # it, more than GPT-2's halved cache saves (roofline, volta: slower)
    long = dict(seq_len=1000, new_tokens=8, pruning=[{"method": "spatten", "keep": 0.5}])
    acc = hwsim.simulate(wl(base, **long), "spatten", baseline=True, fidelity="analytical")
    assert acc.totals["tpot_s"] < acc.baseline.totals["tpot_s"]


# ---------------------------------------------------------------- physics of a request


@pytest.mark.parametrize("target, bigger", [
    ("roofline", "target.dram_bw_bytes_per_s=1.8e12"),
    ("volta", "target.dram_bw_bytes_per_s=1.5e12"),
    ("ascend", "target.dram_bw_bytes_per_s=3.2e12"),
    ("armv8", "target.dram_transfers_per_s=5.866e9"), ("spatten", "target.dram_channels=32")])
def test_a_generation_obeys_each_forwards_physics_and_a_bigger_machine(target, bigger):
    """The prefill and every simulated step stay under the machine's peak compute, DRAM
    bandwidth and power and read their compulsory bytes (tests/physics.py); the request
    adds them up; more DRAM bandwidth never makes TTFT or TPOT longer."""
    from physics import op_violations

    workload = wl(seq_len=256, new_tokens=200, pruning=[{"method": "h2o", "keep": 0.5}])
    g = hwsim.simulate(workload, target, fidelity="analytical")
    assert op_violations(g.prefill) == []
    for point in g.points.values():
        assert op_violations(point) == []
    t = g.totals
    assert t["latency_s"] == pytest.approx(t["ttft_s"] + t["tpot_s"] * t["decode_steps"],
                                           rel=1e-9)
    assert t["dram_bytes_per_token"] * 200 == pytest.approx(
        t["dram_read_bytes"] + t["dram_write_bytes"], rel=1e-12)
    big = hwsim.simulate(workload, target, fidelity="analytical", sets=[bigger]).totals
    assert big["ttft_s"] <= t["ttft_s"] * (1 + 1e-9)
    assert big["tpot_s"] <= t["tpot_s"] * (1 + 1e-9)
