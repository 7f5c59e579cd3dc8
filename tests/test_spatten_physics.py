"""SpAtten obeys physics (issue 11): compulsory bytes or a named resident buffer, a
liveness-aware activation buffer, local value pruning that costs its selection and
reads no more than the dense run, progressive quantization decided from the attention
probabilities, what limits the 1/8 configuration, and sliding-window and block-sparse
attention costed for real."""

from __future__ import annotations

import csv
import dataclasses
import math

import numpy as np
import pytest
from conftest import ROOT
from physics import violations

import hwsim
from hwsim.accelerators.spatten import TARGET, requant
from hwsim.accelerators.spatten import topk as topk_model
from hwsim.accelerators.spatten.attention import executed_flops as attention_executed_flops
from hwsim.accelerators.spatten.context import ScoreSource
from hwsim.accelerators.spatten.residency import ACT
from hwsim.ir.kinds import attention_rows, check, read_bytes, visible_scores, write_bytes
from hwsim.simulate import _signature, run_graph
from hwsim.targets import resolve
from hwsim.workload import build_graph, workload_from_dict

DATA = ROOT.parent / "shared" / "data" / "spatten"
SMALL_PRUNED = DATA / "gpt2-small-wikitext2-pruned.csv"
WORKLOADS = ROOT / "workloads"
needs_trace = pytest.mark.skipif(not SMALL_PRUNED.exists(),
                                 reason=f"released SpAtten traces not in {DATA}")


def model(name, seq, pruning=(), phase="prefill", dtype="fp16", **extra):
    data = {"name": "t", "model": name, "phase": phase, "dtype": dtype,
            "seq_len": 1 if phase == "decode" else seq,
            "kv_len": seq if phase == "decode" else 0, "pruning": list(pruning), **extra}
    return workload_from_dict(data, "<test>")


def kernel(ops, dtype="fp16"):
    return workload_from_dict({"name": "t", "ops": ops, "dtype": dtype}, "<test>")


def spec(name="spatten", **sets):
    return resolve(name, sets).spec


# ---------------------------------------------------------------- 1. local value pruning
@pytest.mark.parametrize("keep", [1.0, 0.9])
def test_local_value_pruning_reads_no_more_than_the_unpruned_prefill(keep):
    """BERT-base at 512 tokens with value_keep 0.5: the value top-k runs inside the one
    attention (K and V hold all rows; each query weights 256 of its 512), so the value
    rows are read once, as unpruned (before the pass change: 3.79 vs 1.81 GB)."""
    wl = model("bert-base", 512, [{"method": "spatten", "keep": keep, "value_keep": 0.5}])
    r = hwsim.simulate(wl, "spatten", baseline=True, fidelity="analytical")
    assert r.totals["dram_read_bytes"] <= r.baseline.totals["dram_read_bytes"]
    m, dense = TARGET.metrics(r), TARGET.metrics(r.baseline)
    assert m["dram_read_value_bytes"] <= dense["dram_read_value_bytes"]
    # the top-k engine's value selection is costed: 12 heads x 512 rows per layer 0 attention
    att = r.ops[r.ops["kind"] == "attention"].iloc[0]
    assert "value top-k 256/512 x6144" in att["detail"]
    s = spec()
    per_row = topk_model.expected(512, 256, s.topk_parallelism, s.topk_pass_overhead_cycles,
                                  s.topk_final_latency_cycles, s.topk_trials, s.topk_seed)
    assert att["latency_s"] >= 6144 * per_row.cycles * s.cycle_s * (1 - 1e-9)
    assert m["topk_cycles"] >= 12 * 6144 * per_row.cycles * 0.5  # every layer selects
    assert violations(r) == [] and violations(r.baseline) == []


# ---------------------------------------------------------------- 2. progressive quantization
def test_expected_flat_fraction_follows_threshold_and_keys():
    f = requant.expected_flat_fraction
    assert f(20, 0.05) == 0.0  # 1/20: no row of 20 keys has a largest probability < 0.05
    assert f(102, 0.05) < 0.01 and f(993, 0.05) == pytest.approx(0.455, abs=0.005)
    assert f(500, 0.05) < f(1000, 0.05) < f(4000, 0.05)  # more keys, flatter rows
    assert f(1000, 0.02) < f(1000, 0.05) < f(1000, 0.1)  # the threshold is read


def test_flat_share_on_probability_rows():
    uniform = np.full((4, 100), 0.01)
    peaked = np.full((4, 100), 0.1 / 99)
    peaked[:, 0] = 0.9
    assert requant.flat_share(uniform, 100, 0.05) == 1.0  # largest 0.01
    assert requant.flat_share(peaked, 100, 0.05) == 0.0  # largest 0.9
    assert requant.flat_share(uniform, 10, 0.05) == 0.0  # stretched to 10 keys: 0.1
    tenth = np.full((1, 100), 0.9 / 99)
    tenth[0, 0] = 0.1
    assert requant.flat_share(tenth, 100, 0.05) == 0.0
    assert requant.flat_share(tenth, 1000, 0.05) == 1.0  # 0.1 spread over 10x the keys


@needs_trace
def test_expected_flat_model_is_the_trace_fit():
    """The expected distribution's two numbers are the maximum-likelihood probit fit of
    the released trace's if_requant on ln(threshold x keys); re-derive them."""
    rows = [r for r in csv.DictReader(SMALL_PRUNED.open()) if r["iteration_id"].isdigit()]
    x = np.log([float(r["auto_requant_thres"]) * int(r["key_fetch_num"]) for r in rows])
    y = np.array([r["if_requant"] == "True" for r in rows])
    erf = np.vectorize(math.erf)

    def nll(mu, sigma):
        p = np.clip(0.5 * (1 + erf((x - mu) / (sigma * math.sqrt(2)))), 1e-12, 1 - 1e-12)
        return -np.sum(np.where(y, np.log(p), np.log(1 - p)))

    grid = [(mu, sg) for mu in np.arange(3.80, 4.15, 0.005) for sg in np.arange(0.50, 0.76, 0.005)]
    mu, sigma = min(grid, key=lambda p: nll(*p))
    assert mu == pytest.approx(requant.LOG_RATIO_MEDIAN, abs=0.01)
    assert sigma == pytest.approx(requant.LOG_RATIO_SIGMA, abs=0.01)
    predicted = sum(requant.expected_flat_fraction(int(r["key_fetch_num"]), 0.05) for r in rows)
    assert predicted == pytest.approx(323, abs=8)


@needs_trace
def test_trace_replay_keeps_its_own_refetch_decisions():
    r = hwsim.simulate(WORKLOADS / "spatten-gpt2-small-trace-pruned.yaml", "spatten",
                       fidelity="analytical", sets=["target.requant_threshold=0.2"])
    assert TARGET.metrics(r)["refetch_ops"] == 323  # the trace says per row; not re-decided


def _lsb_attention(kv_len, lsb_bits=4):
    g = build_graph(kernel([{"kind": "attention", "heads": 4, "head_dim": 64, "q_len": 1,
                             "kv_len": kv_len}]))
    op = g.ops[0]
    g.ops[0] = dataclasses.replace(op, attrs={**op.attrs, "lsb_bits": lsb_bits})
    return g


@pytest.mark.parametrize("kv_len", [64, 1000, 4000])
def test_attention_with_lsb_bits_refetches_its_flat_rows(kv_len):
    """Target side of progressive quantization inside the attention: the expected share of
    flat rows re-fetch the 4-bit LSBs of their keys and recompute Q·K and the softmax."""
    g = _lsb_attention(kv_len)
    s = spec()
    w = TARGET.work(g.ops[0], g, s)
    p = requant.expected_flat_fraction(kv_len, s.requant_threshold)
    lsb = w.bytes_by_class().get("dram_read_lsb", 0)
    assert lsb == pytest.approx(p * 4 * kv_len * 64 * 4 / 8, abs=32)
    assert w.stats["refetch_ops"] == pytest.approx(4 * p)
    assert w.unit_cycles()["qk"] == pytest.approx((1 + p) * 4 * kv_len / 8, rel=0.01)
    stricter = TARGET.work(g.ops[0], g, spec(requant_threshold=0.01))
    assert stricter.bytes_by_class().get("dram_read_lsb", 0) <= lsb
    if kv_len == 64:  # 64 x 0.05 = 3.2: a row this short is almost never flat
        assert p < 1e-5 and lsb <= s.dram_transaction_bytes


def test_seeded_mode_decides_flat_rows_from_real_scores():
    """With real scores the share of flat rows is counted on them: a layer of uniform
    rows is all flat, a layer of one-hot rows never."""
    t = 64
    att = np.zeros((2, 3, t, t))
    att[0] = 1.0 / t  # layer 0: flat everywhere
    att[1, :, :, 0] = 1.0  # layer 1: every query looks at one key
    src = ScoreSource(att, first_layer=0, num_layers=2, label="synthetic")
    assert src.flat_fraction(0, 1000, 0.05) == 1.0
    assert src.flat_fraction(1, 1000, 0.05) == 0.0
    assert src.flat_fraction(0, 16, 0.05) == 0.0  # 16 keys: 1/16 > 0.05
    g = _lsb_attention(1000)
    s = spec(topk_mode="seeded")
    ctx = TARGET.context(g, s)
    ctx.scores = src
    op = dataclasses.replace(g.ops[0], layer=0)
    assert ctx.flat_fraction(op, 1000) == (1.0, "seeded, real scores")
    assert ctx.flat_fraction(dataclasses.replace(op, layer=1), 1000)[0] == 0.0
    ctx.scores = None
    assert ctx.flat_fraction(op, 1000) == (requant.expected_flat_fraction(1000, 0.05),
                                           "expected")


def test_the_pass_refetch_reports_the_targets_own_decision():
    r = hwsim.simulate(WORKLOADS / "spatten-gpt2-small-pruned.yaml", "spatten",
                       fidelity="analytical")
    lsb = r.ops[r.ops["name"] == "quant.lsb_refetch"]
    first, last = lsb.iloc[0]["detail"], lsb.iloc[-1]["detail"]
    assert "fixed 7.0 % of key rows" in first
    assert "expects 40.8 % of rows flat with 922 keys (expected)" in first
    assert "expects 0.0 % of rows flat with 103 keys" in last


# ---------------------------------------------------------------- 3. what limits the 1/8
@needs_trace
def test_eighth_on_the_pruned_trace_is_bound_by_its_hbm_requests_in_flight():
    """The 1/8's two channels each hold 16 requests in flight (the RTL's DPI driver), so
    a stream's window lies in one row, one pseudo-channel, most of the time, and refresh
    takes 350 ns of every 3.9 us (hwsim.dram): its HBM moves about 60 % of peak and
    limits most ops; the Q·K array (one 6-bit key per cycle needs 48 of the 64 B/cycle)
    the rest. So more channels help (1.35x), more multipliers do not (the HBM limits),
    both together nearly 2x. With as many requests in flight as it likes and no refresh
    (the DRAM model before) the same run is Q·K-bound and its HBM over 75 % busy. The
    bound column, memory_bound_share and the limiting units agree."""
    wl = WORKLOADS / "spatten-gpt2-small-trace-pruned.yaml"
    r = hwsim.simulate(wl, "spatten-eighth", fidelity="analytical")
    m = TARGET.metrics(r)
    assert 0.55 < m["dram_utilization"] < 0.7
    assert m["limiting_unit"] == "hbm" and 0.75 < m["limiting_unit_share"] < 0.95
    assert m["limiting_units"]["qk"] > 0.05
    assert m["memory_bound_share"] == pytest.approx(m["limiting_units"]["hbm"], rel=1e-6)
    t = r.totals["latency_s"]
    qk = ["target.qk_multipliers=128", "target.softmax_units=2"]

    def run(sets):
        rr = hwsim.simulate(wl, "spatten-eighth", fidelity="analytical", sets=sets)
        return t / rr.totals["latency_s"], TARGET.metrics(rr)

    wider, faster, both = run(["target.dram_channels=4"]), run(qk), run(
        ["target.dram_channels=4", *qk])
    assert 1.25 < wider[0] < 1.45 and wider[1]["limiting_unit"] == "qk"
    assert 1.0 <= faster[0] < 1.05 and faster[1]["limiting_unit"] == "hbm"
    assert both[0] > 1.6
    free = run(["target.dram_outstanding_per_channel=0", "target.dram_refresh=none"])
    assert free[0] > 1.2 and free[1]["limiting_unit"] == "qk"
    assert free[1]["dram_utilization"] > 0.75


@pytest.mark.parametrize("wl,target", [("spatten-gpt2-small-pruned.yaml", "spatten"),
                                       ("spatten-gpt2-small-dense.yaml", "spatten-eighth"),
                                       ("spatten-bert-base-pruned.yaml", "spatten")])
def test_limiting_units_agree_with_the_bound_column(wl, target):
    r = hwsim.simulate(WORKLOADS / wl, target, fidelity="analytical")
    m = TARGET.metrics(r)
    hbm = m["limiting_units"].get("hbm", 0.0) + m["limiting_units"].get("fetch", 0.0)
    assert hbm == pytest.approx(m["memory_bound_share"], abs=1e-9)
    assert sum(m["limiting_units"].values()) == pytest.approx(1.0, abs=1e-6)


# ---------------------------------------------------------------- 4. compulsory bytes
def _buffer_never_overbooked(r):
    """The activation-buffer tensors live across each op fit the buffer, every produced
    activation in HBM is written by its producer, and what an op does not move it names
    as resident, byte for byte."""
    g = r.graph
    s = r.target.spec
    res = TARGET.context(g, s).residency
    first, last = {}, {}
    for i, op in enumerate(g.ops):
        for o in op.outputs:
            first.setdefault(res.root(o), i)
        for x in op.inputs:
            last[res.root(x)] = i
    held = np.zeros(len(g.ops) + 1)
    for t, i in first.items():
        if res.place(t) == ACT:
            held[i] += g.tensors[t].bytes
            held[last.get(t, i) + 1] -= g.tensors[t].bytes
    assert np.cumsum(held).max(initial=0) <= s.act_buffer_bytes
    kept: dict = {}
    for op, row in zip(g.ops, r.ops.itertuples(index=False)):
        if op.kind == "view":
            continue
        spilled = (write_bytes(op, g) if op.kind == "kv_write" else  # the new entries
                   sum(g.tensors[o].bytes for o in op.outputs if res.dram(o)))
        assert row.dram_write_bytes >= spilled, op.line(g)
        key = (_signature(op, g), TARGET.cache_key(op, g, s))
        if key not in kept:
            kept[key] = sum(nbytes for _, nbytes, _ in TARGET.work(op, g, s).resident)
        assert row.dram_read_bytes >= read_bytes(op, g) - kept[key] - 64, op.line(g)
        assert row.dram_write_bytes >= write_bytes(op, g) - kept[key] - 64, op.line(g)


@pytest.mark.parametrize("wl", [
    model("bert-base", 128),  # 192 KiB activations: the buffer holds one at a time
    model("gpt2", 200),
    model("gpt2", 512, phase="decode"),
    model("tinyllama-1.1b", 64),
    model("bert-base", 128, [{"method": "spatten", "keep": 0.5, "value_keep": 0.5,
                              "heads_keep": 0.75}]),
    model("gpt2", 300, [{"method": "spatten", "keep": 0.3, "value_keep": 0.3},
                        {"method": "quant", "tensors": {"key": 6, "value": 6},
                         "refetch": 0.1}], phase="decode"),
])
@pytest.mark.parametrize("preset", ["spatten", "spatten-eighth"])
def test_every_op_moves_or_names_its_compulsory_bytes(wl, preset):
    r = hwsim.simulate(wl, preset)
    assert violations(r) == []
    _buffer_never_overbooked(r)


@needs_trace
@pytest.mark.parametrize("preset", ["spatten", "spatten-eighth"])
def test_released_trace_replay_obeys_physics(preset):
    """Every row of the released trace: queries read, results written (SpAtten returns
    the attention's output to HBM), machinery state on chip by name."""
    r = hwsim.simulate(WORKLOADS / "spatten-gpt2-small-trace-pruned.yaml", preset,
                       fidelity="analytical")
    assert violations(r) == []
    att = r.ops[r.ops["kind"] == "attention"]
    assert (att["dram_write_bytes"] >= 96).all()  # 64 results of 12 bits
    _buffer_never_overbooked(r)


def test_bert_128_activations_take_turns_in_the_buffer():
    """At 128 tokens every BERT-base activation is 192 KiB, the whole activation buffer:
    the layer's input stays there until the residual add, so Q, K, V and the attention's
    output go through HBM (they all read and wrote nothing before)."""
    r = hwsim.simulate(model("bert-base", 128), "spatten", fidelity="analytical")
    att = r.ops[r.ops["kind"] == "attention"].iloc[0]
    g = r.graph
    op = g.ops[int(att["id"])]
    assert att["dram_read_bytes"] >= read_bytes(op, g) == 3 * 196608
    assert att["dram_write_bytes"] >= write_bytes(op, g) == 196608
    ln = r.ops[r.ops["kind"] == "layernorm"].iloc[1]
    assert "resident: out 197 kB in the activation buffer" in ln["detail"]


def test_kernel_results_go_to_dram_and_are_timed():
    """A kernel study's result is written (the softmax of issue 11's counter-example),
    an output larger than the buffer too, and the write takes HBM time."""
    r = hwsim.simulate(kernel([{"kind": "softmax", "rows": 1, "cols": 64}]), "spatten")
    op, row = r.graph.ops[0], r.ops.iloc[0]
    assert row["dram_write_bytes"] >= write_bytes(op, r.graph) == 128
    big = hwsim.simulate(kernel([{"kind": "matmul", "m": 1024, "n": 1024, "k": 64}]),
                         "spatten")
    row = big.ops.iloc[0]
    s = spec()
    assert row["dram_write_bytes"] >= 1024 * 1024 * 2
    assert row["latency_s"] >= (row["dram_read_bytes"] + row["dram_write_bytes"]) \
        / s.dram_bw_bytes_per_s


def test_inline_machinery_executes_in_the_attention_not_above_peak():
    """spatten.importance sums 196,608 probabilities in one cycle of depth: its adds run
    beside the softmax lanes while the attention streams, so it executes no FLOPs of its
    own (was 196.6 TFLOP/s against a 2.048 TFLOP/s peak)."""
    r = hwsim.simulate(model("bert-base", 128, [{"method": "spatten", "keep": 0.1}]),
                       "spatten", fidelity="analytical")
    imp = r.ops[r.ops["name"] == "spatten.importance"].iloc[0]
    assert imp["executed_flops"] == 0 and imp["flops"] == 196608
    assert "in-line" in imp["detail"] and "resident" in imp["detail"]
    keep_all = hwsim.simulate(kernel([{"kind": "topk", "n": 13, "k": 13}]), "spatten")
    assert keep_all.ops.iloc[0]["latency_s"] > 0  # the scores still stream once
    assert violations(r) == [] and violations(keep_all) == []


# ---------------------------------------------------------------- 5. window, sparse, GQA
def _att(**kw):
    op = {"kind": "attention", "heads": 2, "kv_heads": 2, "head_dim": 64, "batch": 1,
          "causal": True}
    op.update(kw)
    return op


def _run(op, preset="spatten", **attrs):
    """Simulate one attention; ``attrs`` (sparse_keys, ...) are set on the op itself (a
    kernel study cannot name them)."""
    g = build_graph(kernel([op]))
    if attrs:
        g.ops[0] = dataclasses.replace(g.ops[0], attrs={**g.ops[0].attrs, **attrs})
        assert check(g.ops[0], g) == []
    r = run_graph(g, resolve(preset), fidelity="analytical")
    return r, TARGET.metrics(r), r.graph.ops[0]


def test_sliding_window_scores_and_fetches_only_its_band():
    r, m, op = _run(_att(q_len=4096, kv_len=4096, window=256))
    full, mf, _ = _run(_att(q_len=4096, kv_len=4096))
    seen = visible_scores(4096, 4096, True, 256)
    assert m["attention_ops"] == 2 * 2 * seen * 128  # Q·K and prob·V over the band
    assert r.ops.iloc[0]["executed_flops"] == attention_executed_flops(op) == 2 * 2 * seen * 128
    # 4 blocks of 1,024 queries each stream their band: 1,024 + 255 keys (the first 1,024)
    assert m["dram_read_key_bytes"] == 2 * (1024 + 3 * (1024 + 255)) * 64 * 2
    # without the window each causal block streams the keys up to its last query
    assert mf["dram_read_key_bytes"] == 2 * (1024 + 2048 + 3072 + 4096) * 64 * 2
    assert r.totals["latency_s"] < 0.2 * full.totals["latency_s"]
    assert violations(r) == [] and violations(full) == []


def test_windowed_decode_reads_the_last_window_of_keys():
    r, m, op = _run(_att(q_len=1, kv_len=32768, window=4096, heads=8, kv_heads=8))
    assert m["dram_read_key_bytes"] == m["dram_read_value_bytes"] == 8 * 4096 * 64 * 2
    assert read_bytes(op, r.graph) <= r.totals["dram_read_bytes"]
    assert r.totals["latency_s"] >= 8 * 4096 * 64 * 2 * 2 / spec().dram_bw_bytes_per_s


def test_block_sparse_attention_fetches_and_scores_the_selected_keys():
    op = _att(q_len=2048, kv_len=32768, causal=False)
    r, m, o = _run(op, sparse_keys=256, sparse_block=64)
    assert attention_rows(o.attrs)[0] == 32 * 256  # union of the 32 blocks' selections
    assert m["dram_read_key_bytes"] == 2 * 32 * 256 * 64 * 2  # each block's own rows
    w = TARGET.work(o, r.graph, spec())
    assert w.unit_cycles()["qk"] == 2 * 2048 * 256 / 8
    assert r.ops.iloc[0]["executed_flops"] == r.ops.iloc[0]["flops"]
    dense, _, _ = _run(op)
    assert r.totals["latency_s"] < 0.1 * dense.totals["latency_s"]
    decode, mdec, _ = _run(_att(q_len=1, kv_len=32768, causal=False), sparse_keys=512)
    assert mdec["dram_read_key_bytes"] == 2 * 512 * 64 * 2
    # causal: an early query selects at most the keys it sees
    causal, mc, oc = _run(_att(q_len=512, kv_len=512), sparse_keys=128, sparse_block=16)
    assert causal.ops.iloc[0]["executed_flops"] < causal.ops.iloc[0]["flops"]
    assert mc["attention_ops"] == attention_executed_flops(oc)
    assert violations(r) == [] and violations(decode) == [] and violations(causal) == []


def test_gqa_group_reads_its_keys_once():
    r, m, _ = _run(_att(q_len=1, kv_len=8192, heads=32, kv_heads=8, causal=False))
    assert m["dram_read_key_bytes"] == 8 * 8192 * 64 * 2
    pre, mp, _ = _run(_att(q_len=1024, kv_len=1024, heads=32, kv_heads=8, causal=False))
    assert mp["dram_read_key_bytes"] == 8 * 1024 * 64 * 2  # fits the buffer: once


# ---------------------------------------------------------------- 6. peaks and growth
@pytest.mark.parametrize("op", [
    _att(q_len=4096, kv_len=4096, window=256),
    _att(q_len=500, kv_len=16384, heads=8, kv_heads=2),
    _att(q_len=1, kv_len=32768, causal=False, window=4096),
    {"kind": "matmul", "m": 512, "n": 768, "k": 768},
])
@pytest.mark.parametrize("change", ["dram_channels=4", "clock_hz=1.25e9"])
def test_a_bigger_spatten_is_never_slower(op, change):
    base = hwsim.simulate(kernel([op]), "spatten-eighth")
    big = hwsim.simulate(kernel([op]), "spatten-eighth", sets=[f"target.{change}"])
    assert big.totals["latency_s"] <= base.totals["latency_s"] * (1 + 1e-9)
    assert violations(base) == [] and violations(big) == []


@pytest.mark.parametrize("op", [_att(q_len=2048, kv_len=2048), _att(q_len=1, kv_len=2048),
                                _att(q_len=1000, kv_len=4096, window=1024)])
def test_more_tokens_never_run_faster(op):
    t0 = hwsim.simulate(kernel([op]), "spatten").totals["latency_s"]
    step = dict(op, kv_len=op["kv_len"] + 64, q_len=op["q_len"] + (64 if op["q_len"] > 1 else 0))
    assert hwsim.simulate(kernel([step]), "spatten").totals["latency_s"] >= t0
