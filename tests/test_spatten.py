"""The SpAtten target: presets, the top-k engine, attention stages and chunking, the
CSV reader, graph workloads with SpAtten's pruning, energy, and the two fidelities."""

from __future__ import annotations

import dataclasses
import math

import pytest
from conftest import ROOT, run_hwsim

import hwsim
from hwsim.accelerators.spatten import TARGET
from hwsim.accelerators.spatten import topk as topk_model
from hwsim.accelerators.spatten.energy import prices_pj
from hwsim.errors import InputError, UnsupportedOpError
from hwsim.ir.kinds import check
from hwsim.targets import resolve
from hwsim.workload import build_graph, load_workload, workload_from_dict
from hwsim.workload.spatten_csv import read as read_csv

WORKLOADS = ROOT / "workloads"

# SpAtten's quick-select top-k engine (mit-han-lab/spatten RTL: a pass costs ceil(n/P) + 3
# cycles): expected cycles at P = 16, random keys, mean of 200 trials (D)
TOPK_TABLE = [(64, 32, 36), (128, 64, 53), (256, 32, 75), (512, 64, 117), (1024, 128, 221),
              (1024, 512, 259), (2048, 64, 334), (4096, 32, 563)]

HEADER = ("iteration_id,layer_id,head_id,embedding_length_D,sentence_length_L,key_fetch_num,"
          "quant_key_bit,quant_query_bit,auto_requant_thres,if_requant,auto_requant_incre,"
          "value_fetch_num,quant_value_bit,if_accumulate_importance,"
          "if_rescale_previous_importance,if_topk,topk")
ROWS = [  # two steps, two layers, two heads; pruned, one re-fetch, one cascade top-k
    "0,0,0,64.0,100,100,6,16,0.05,True,4,20,6,True,False,False,-1",
    "0,0,1,64.0,100,100,6,16,0.05,False,4,20,6,True,False,True,50",
    "0,1,0,64.0,100,50,6,16,0.05,False,4,10,6,False,False,False,-1",
    "0,1,1,64.0,100,50,6,16,0.05,False,4,10,6,False,True,True,90",
    "1,0,0,64.0,101,90,6,16,0.05,False,4,18,6,True,False,False,-1",
    "1,0,1,64.0,101,90,6,16,0.05,False,4,18,6,True,False,True,50",
    "1,1,0,64.0,101,50,6,16,0.05,False,4,10,6,False,False,False,-1",
    "1,1,1,64.0,101,50,6,16,0.05,False,4,10,6,False,True,True,90",
    "configs/gpt2/run.yml,,,,,,,,,,,,,,,,",
]


def sim(ops, target="spatten", sets=(), fidelity="event", **extra):
    wl = workload_from_dict({"name": "t", "ops": ops, **extra}, "<test>")
    return hwsim.simulate(wl, target, sets=list(sets), fidelity=fidelity)


def spec(name="spatten", **sets):
    return resolve(name, sets).spec


@pytest.fixture
def small_csv(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="utf-8")
    return path


def csv_workload(tmp_path, csv_path, **extra):
    wl = tmp_path / "wl.yaml"
    lines = [f"trace: {csv_path.name}", "trace_format: spatten-csv", "dtype: fp32"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    wl.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return wl


# ---------------------------------------------------------------- presets
def test_presets_full_and_eighth():
    full, eighth = spec("spatten"), spec("spatten-eighth")
    assert (full.qk_multipliers, full.pv_multipliers, full.dram_channels) == (512, 512, 16)
    assert full.qk_lanes == 8  # 8 keys per cycle at D = 64
    assert full.dram_bw_bytes_per_s == pytest.approx(512e9)
    assert full.key_buffer_bytes == 196_608  # 2,048 x 64 x 12 bit
    assert (eighth.qk_multipliers, eighth.pv_multipliers, eighth.dram_channels) == (64, 64, 2)
    assert eighth.fetch_channels == 4 and eighth.topk_parallelism == full.topk_parallelism == 16
    assert "512+512" in TARGET.headline(full)


# ---------------------------------------------------------------- top-k engine
@pytest.mark.parametrize("n,k,cycles", TOPK_TABLE)
def test_topk_expected_cycles_match_the_table(n, k, cycles):
    s = spec()
    cost = topk_model.expected(n, k, s.topk_parallelism, s.topk_pass_overhead_cycles,
                               s.topk_final_latency_cycles, s.topk_trials, s.topk_seed)
    assert cost.select_cycles == pytest.approx(cycles, rel=0.10)
    assert cost.final_cycles == math.ceil(n / 16) + s.topk_final_latency_cycles


def test_topk_seeded_runs_the_algorithm_on_the_scores():
    scores = topk_model.random_scores(1024, 7)
    a = topk_model.run(scores, 128, 16, 3, 3, seed=1)
    assert a == topk_model.run(scores, 128, 16, 3, 3, seed=1)  # reproducible
    assert a.passes >= 1 and a.select_cycles >= math.ceil(1024 / 16) + 3
    ties = topk_model.run([5] * 1024, 128, 16, 3, 3, seed=1)  # all equal: the first pivot
    assert ties.passes == 1 and ties.select_cycles == 64 + 3
    assert topk_model.run(scores, 1024, 16, 3, 3).cycles == 0  # keeping all needs no engine


def test_topk_op_costs_the_engine_and_reports_it():
    r = sim([{"kind": "topk", "n": 1024, "k": 128}], dtype="fix12")
    row = r.ops.iloc[0]
    m = TARGET.metrics(r)
    assert m["topk_select_cycles"] == pytest.approx(221, rel=0.10)
    assert m["topk_cycles"] == pytest.approx(m["topk_select_cycles"] + 64 + 3)
    assert row["latency_s"] == pytest.approx(m["topk_cycles"] * 1e-9, rel=0.01)
    assert "quick-select" in row["detail"] and "P=16" in row["detail"]
    seeded = sim([{"kind": "topk", "n": 1024, "k": 128}], sets=["target.topk_mode=seeded"],
                 dtype="fix12")
    assert "seeded, random scores" in seeded.ops.iloc[0]["detail"]


# ---------------------------------------------------------------- attention
def test_one_generation_head_stages_and_bound():
    # 1,024 fp16 keys and values: 128 KiB each at 512 B/cycle = 256 cycles of HBM each at
    # peak, Q·K, softmax and prob·V 1,024 / 8 = 128 cycles: the op is bound by HBM;
    # the query comes from HBM and the result (the kernel study's output) goes back there.
    # Each stream takes its bytes' time at peak times its slowdown (hwsim.dram): 16
    # requests in flight per channel keep a stream in one pseudo-channel most of the
    # time (about 1.6x) and refresh takes 350 ns of every 3.9 us (1.10x)
    ops = [{"kind": "attention", "heads": 1, "head_dim": 64, "q_len": 1, "kv_len": 1024}]
    r = sim(ops)
    w = TARGET.work(r.graph.ops[0], r.graph, spec())
    assert w.unit_cycles() == {"qk": 128, "softmax": 128, "pv": 128}
    assert w.bytes_by_class() == {"dram_read_query": 128, "dram_read_key": 131072,
                                  "dram_read_value": 131072, "dram_write_act": 128}
    streams = [st for st in w.stages if not st.unit]
    at_peak = sum((st.read_bytes + st.write_bytes) * st.slowdown for st in streams) / 512e9
    assert r.totals["latency_s"] == pytest.approx(at_peak, rel=0.01)
    key = next(st for st in streams if st.name == "fetch_k")
    assert 1.6 < key.slowdown < 2.0
    assert r.ops.iloc[0]["bound"] == "memory"


def test_local_value_pruning_uses_the_topk_engine():
    # v_len comes from the CSV reader; a graph op with v_len < kv_len fetches fewer values
    # (the value operand is the whole cache; each query weights v_len of its rows)
    ops = [{"kind": "attention", "heads": 1, "head_dim": 64, "q_len": 1, "kv_len": 1024}]
    wl = workload_from_dict({"name": "t", "ops": ops}, "<test>")
    g = build_graph(wl)
    op = g.ops[0]
    g.ops[0] = dataclasses.replace(op, attrs={**op.attrs, "v_len": 128})
    assert check(g.ops[0], g) == []
    w = TARGET.work(g.ops[0], g, spec())
    assert w.bytes_by_class()["dram_read_value"] == 128 * 64 * 2
    assert w.unit_cycles()["pv"] == 16 and w.unit_cycles()["topk"] == pytest.approx(
        w.stats["topk_cycles"])
    assert "value top-k 128/1024" in "; ".join(w.notes)


@pytest.mark.parametrize("q,kv,passes", [(2048, 2048, 1), (4096, 4096, 4), (1, 4096, 1),
                                         (1024, 4096, 1), (1025, 4096, 2)])
def test_contexts_beyond_the_key_buffer_refetch_per_query_block(q, kv, passes):
    ops = [{"kind": "attention", "heads": 1, "head_dim": 64, "q_len": q, "kv_len": kv}]
    r = sim(ops, fidelity="analytical")
    m = TARGET.metrics(r)
    assert m["dram_read_key_bytes"] == passes * kv * 64 * 2
    assert m["dram_read_value_bytes"] == passes * kv * 64 * 2


def test_causal_prefill_scores_only_earlier_keys():
    base = {"kind": "attention", "heads": 2, "head_dim": 64, "q_len": 256, "kv_len": 256}
    full = TARGET.metrics(sim([base], fidelity="analytical"))
    causal = TARGET.metrics(sim([{**base, "causal": True}], fidelity="analytical"))
    assert causal["attention_ops"] < 0.6 * full["attention_ops"]


def test_lone_requests_pay_the_pipeline_depths():
    """A lone request pays every pipeline depth where compute is the longest chain (a
    DRAM with as many requests in flight as it likes, no refresh), and at least the
    first access's latency and the last stage's depth where the HBM is (the RTL's)."""
    ops = [{"kind": "attention", "heads": 1, "head_dim": 64, "q_len": 1, "kv_len": 512}]
    s = spec()
    for dram, depths in (
            (["target.dram_outstanding_per_channel=0", "target.dram_refresh=none"],
             s.dram_latency_cycles + s.qk_latency_cycles + s.softmax_latency_cycles
             + s.pv_latency_cycles),
            ([], s.dram_latency_cycles + s.pv_latency_cycles)):
        streamed = sim(ops, sets=dram, dtype="fix12").totals["latency_s"]
        lone = sim(ops, sets=["target.request_overlap=false", *dram],
                   dtype="fix12").totals["latency_s"]
        assert lone >= streamed + depths * 1e-9


# ---------------------------------------------------------------- other kinds
def test_projections_run_on_both_arrays_and_stream_weights():
    r = sim([{"kind": "matmul", "m": 512, "n": 768, "k": 768}], dtype="fix12")
    w = TARGET.work(r.graph.ops[0], r.graph, spec())
    assert w.unit_cycles() == {"qk": 512 * 768 * 12 / 2 / 8, "pv": 512 * 768 * 12 / 2 / 8}
    assert r.ops.iloc[0]["bound"] == "compute"
    gemv = sim([{"kind": "matmul", "m": 1, "n": 3072, "k": 768}], dtype="fix12")
    assert gemv.ops.iloc[0]["bound"] == "memory"  # generation streams the weights


def test_kinds_it_cannot_cost_are_errors():
    wl = workload_from_dict({"name": "t", "model": "gpt2", "phase": "decode", "seq_len": 1,
                             "kv_len": 63, "devices": 2}, "<test>")
    with pytest.raises(InputError, match="one chip"):
        hwsim.simulate(wl, "spatten")
    g = build_graph(workload_from_dict({"name": "t", "ops": [
        {"kind": "softmax", "rows": 4, "cols": 4}]}, "<test>"))
    bogus = dataclasses.replace(g.ops[0], kind="conv2d")
    with pytest.raises(UnsupportedOpError):
        TARGET.lower(bogus, g, spec(), None)


# ---------------------------------------------------------------- the CSV reader
def test_csv_rows_become_attention_ops_with_widths_on_tensors(small_csv):
    g = read_csv(str(small_csv), "fp32")
    att = [op for op in g.ops if op.kind == "attention"]
    assert len(att) == 8  # the config line is skipped
    first = att[0]
    q, k, v = (g.tensors[i] for i in first.inputs)
    assert (q.dtype, k.dtype, v.dtype) == ("fix16", "fix6", "fix6")
    assert k.shape == (1, 1, 100, 64) and v.shape == (1, 1, 100, 64)  # the cache; 20 rows fetched
    assert first.attrs["v_len"] == 20 and first.layer == 0 and first.module == "h.0.attn.head0"
    kinds = [op.name for op in g.ops if op.attrs.get("pruning")]
    assert kinds.count("quant.lsb_refetch") == 1
    assert kinds.count("spatten.topk") == 4 and kinds.count("spatten.rescale") == 2
    topks = [op for op in g.ops if op.kind == "topk"]
    assert (topks[1].attrs["n"], topks[1].attrs["k"]) == (100, 90)  # more than alive: sentence
    assert g.header["trace"]["rows"] == 8 and g.header["trace"]["refetch_rows"] == 1
    rec = {r["method"]: r for r in g.header["pruning"]}
    assert rec["spatten"]["tokens_per_layer"] == [90, 50]
    assert rec["spatten"]["values_per_layer"] == [18, 10]
    assert rec["quant"]["dtypes"] == {"query": "fix16", "key": "fix6", "value": "fix6"}
    assert g.verify() == []


def test_csv_uncompressed_width_is_the_workload_dtype(tmp_path):
    path = tmp_path / "dense.csv"
    path.write_text(HEADER + "\n0,0,0,64.0,10,10,-1,-1,-1,False,-1,10,-1,False,False,False,-1\n",
                    encoding="utf-8")
    for dtype in ("fp32", "fp16"):
        wl = load_workload(csv_workload(tmp_path, path, dtype=dtype))
        g = build_graph(wl)
        assert {g.tensors[i].dtype for i in g.ops[0].inputs} == {dtype}
        assert "pruning" not in g.header


def test_csv_problems_name_the_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(InputError, match="bad.csv: not a SpAtten trace: missing columns"):
        read_csv(str(bad))
    worse = tmp_path / "worse.csv"
    worse.write_text(HEADER + "\n0,0,0,64.0,10,ten,6,16,0.05,False,4,5,6,False,False,False,-1\n",
                     encoding="utf-8")
    with pytest.raises(InputError, match="line 2.key_fetch_num: expected a number"):
        read_csv(str(worse))


def test_cli_reports_dram_by_tensor_topk_and_refetch(tmp_path, small_csv):
    wl = csv_workload(tmp_path, small_csv)
    out = run_hwsim("simulate", str(wl), "--target", "spatten,spatten-eighth", "--top", "3")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "dram by tensor  key" in text and "lsb" in text and "query" in text
    assert "top-k engine" in text and "LSB re-fetch    1 heads, 100 keys" in text
    assert "tokens/layer  L0 90, L1 50" in text
    assert "spatten-eighth" in text


# ---------------------------------------------------------------- graph workloads
def test_gpt2_small_pruned_generation_on_spatten():
    r = hwsim.simulate(WORKLOADS / "spatten-gpt2-small-pruned.yaml", "spatten", baseline=True)
    m, dense = TARGET.metrics(r), TARGET.metrics(r.baseline)
    assert m["refetch_ops"] == 12  # one LSB re-fetch per layer (7 % of its keys)
    assert m["dram_read_lsb_bytes"] > 0 and dense["dram_read_lsb_bytes"] == 0
    assert m["dram_read_key_bytes"] < 0.1 * dense["dram_read_key_bytes"]
    assert m["dram_read_value_bytes"] < 0.05 * dense["dram_read_value_bytes"]
    assert m["topk_cycles"] > 0
    rec = r.graph.header["pruning"][0]
    assert rec["tokens_per_layer"][0] == 921 and rec["tokens_per_layer"][-1] == 102
    # the whole model streams its weights in generation: memory-bound either way
    assert m["memory_bound_share"] > 0.9 and m["attention_share"] < 0.1


def test_bert_summarization_is_compute_bound_and_pruning_saves_attention_time():
    r = hwsim.simulate(WORKLOADS / "spatten-bert-base-pruned.yaml", "spatten", baseline=True,
                       fidelity="analytical")
    m, dense = TARGET.metrics(r), TARGET.metrics(r.baseline)
    assert dense["attention_ops_per_s"] == pytest.approx(2.048e12, rel=0.01)
    assert m["attention_latency_s"] < 0.6 * dense["attention_latency_s"]
    assert m["kv_bits"] < 0.2 * dense["kv_bits"]
    assert r.ops["bound"].value_counts().idxmax() == "compute"


@pytest.mark.parametrize("wl", ["spatten-bert-base-pruned.yaml", "spatten-gpt2-small-pruned.yaml",
                                "spatten-gpt2-medium-pruned.yaml"])
def test_event_and_analytical_agree(wl):
    ev = hwsim.simulate(WORKLOADS / wl, "spatten-eighth", fidelity="event")
    an = hwsim.simulate(WORKLOADS / wl, "spatten-eighth", fidelity="analytical")
    assert ev.totals["latency_s"] == pytest.approx(an.totals["latency_s"], rel=0.02)
    assert ev.totals["dram_read_bytes"] == an.totals["dram_read_bytes"]
    lone = ["target.request_overlap=false"]
    ev = hwsim.simulate(WORKLOADS / wl, "spatten", sets=lone, fidelity="event")
    an = hwsim.simulate(WORKLOADS / wl, "spatten", sets=lone, fidelity="analytical")
    assert an.totals["latency_s"] <= ev.totals["latency_s"] * 1.0001  # a lower bound
    assert ev.totals["latency_s"] == pytest.approx(an.totals["latency_s"], rel=0.25)


def test_dram_by_tensor_adds_up_to_the_report():
    r = hwsim.simulate(WORKLOADS / "spatten-gpt2-medium-pruned.yaml", "spatten")
    m = TARGET.metrics(r)
    reads = sum(v for k, v in m.items() if k.startswith("dram_read_") and k.endswith("_bytes"))
    writes = sum(v for k, v in m.items() if k.startswith("dram_write_") and k.endswith("_bytes"))
    assert reads == r.totals["dram_read_bytes"] and writes == r.totals["dram_write_bytes"]


# ---------------------------------------------------------------- energy
def test_energy_prices_and_breakdown():
    p = prices_pj(spec())
    # 12-bit multiply 0.446 pJ + 24-bit add 0.077 pJ at 45 nm, x 0.89 for 40 nm
    assert p["mac"] == pytest.approx((0.446 + 0.0767) * 0.89, rel=0.01)
    # O'Connor et al. (MICRO 2017): 2.24 pJ/bit on-die movement + 0.3 pJ/bit I/O per byte,
    # 909 pJ per 1 KB row activation; their 3.97 pJ/bit held 1.21 pJ/bit of activation
    assert p["hbm_byte"] == pytest.approx((2.24 + 0.3) * 8)
    assert p["dram_act"] == pytest.approx(909.0)
    assert p["sram_kv_byte"] < p["sram_act_byte"]  # a bigger macro costs more per byte
    r = hwsim.simulate(WORKLOADS / "spatten-bert-base-pruned.yaml", "spatten",
                       fidelity="analytical")
    t = r.totals
    assert sum(t["energy_breakdown_j"].values()) == pytest.approx(t["energy_j"], rel=1e-9)
    assert t["energy_breakdown_j"]["static"] == pytest.approx(1.0 * t["latency_s"])
    assert all(v > 0 for v in t["energy_breakdown_j"].values())


def test_average_power_is_energy_over_time():
    """Bottom-up power (the 8.30 W comparison is a validation case on the released trace):
    compute-bound BERT-base summarization draws 2-5 W on chip, the HBM comes on top."""
    r = hwsim.simulate(WORKLOADS / "spatten-bert-base-pruned.yaml", "spatten",
                       fidelity="analytical")
    t, m = r.totals, TARGET.metrics(r)
    assert m["power_w"] == pytest.approx(t["energy_j"] / t["latency_s"])
    chip = t["energy_j"] - t["energy_breakdown_j"]["dram"]
    assert m["chip_power_w"] == pytest.approx(chip / t["latency_s"])
    assert 2.0 < m["chip_power_w"] < 5.0 and m["chip_power_w"] < m["power_w"] < 8.30


def test_an_experts_weight_slice_is_fetched_as_a_weight(tmp_path):
    """A mixture of experts' expert GEMM reads its weights through a view of the stacked
    expert tensor: SpAtten files those bytes as weights, not activations (regression)."""
    from test_moe_model import BYTES, F, H, moe_workload

    from hwsim.simulate import prepare

    g, _ = prepare(workload_from_dict(moe_workload(tmp_path), "w.yaml"), split=False)
    up = next(op for op in g.ops if op.kind == "matmul" and op.name.endswith(".up"))
    by = TARGET.work(up, g, spec()).bytes_by_class()
    assert by["dram_read_weight"] == H * 2 * F * BYTES  # one expert's gate and up rows
    assert "dram_read_act" not in by or by["dram_read_act"] < by["dram_read_weight"]
