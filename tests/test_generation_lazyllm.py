"""LazyLLM over a generation, and the decode step of several new tokens it needs.

LazyLLM (Fu et al. 2024, arXiv 2407.14057) prunes the prompt progressively in the
prefill and selects again in every decode step, reviving pruned tokens from its
auxiliary cache (``revive`` per step and pruning layer): those are computed from
their pruning layer on, as extra query rows, so a step is a multi-token decode step
at some layers (the model's ``extend`` template, :mod:`hwsim.trace.template`)."""

from __future__ import annotations

from pathlib import Path

import pytest

import hwsim
from hwsim import generation as gen
from hwsim.errors import InputError
from hwsim.ir import flops
from hwsim.ir.kinds import executed_flops, visible_scores
from hwsim.simulate import device_graph, model_graphs, run_graph
from hwsim.targets import resolve
from hwsim.workload import workload_from_dict
from hwsim.workload.build import build_graph

TINY = {"name": "gen", "model": "tinyllama-1.1b", "phase": "generate", "dtype": "fp16"}
LLAMA = {"name": "gen", "model": "llama-2-7b", "phase": "generate", "dtype": "fp16"}
TARGETS = ["roofline", "volta", "ascend", "armv8", "spatten"]
POINTS = (6, 11, 16)  # TinyLlama's 22 layers: LazyLLM prunes a quarter, half, three quarters in


def wl(base=TINY, **fields):
    return workload_from_dict({**base, **fields}, "<test>")


def lazy(keep=0.5, **extra):
    return [{"method": "lazyllm", "keep": keep, **extra}]


def attention_sizes(report):
    """(q_len, kv_len) of each layer's attention in a step's graph, in layer order."""
    return [(op.attrs["q_len"], op.attrs["kv_len"]) for op in report.graph.ops
            if op.kind == "attention"]


def per_layer_step(w, kv, cache, target):
    """A decode step over ``cache`` tokens per layer and no selection: the same step
    without LazyLLM's machinery."""
    step = gen.phase_workload(w, "decode", 1, kv, [])
    return run_graph(device_graph(model_graphs(step, cache_tokens=cache)[0], step),
                     resolve(target), step)


# ------------------------------------------------------------- revive = 0, all targets
@pytest.mark.parametrize("target", TARGETS)
def test_a_lazyllm_generation_is_its_prefill_then_growing_caches_and_the_selection(target):
    """TTFT is the LazyLLM prefill alone; each step's layers cache what the prefill
    computed there plus one token a step; every step pays the selection at each
    pruning layer; and a step costs the same step without selection plus exactly the
    selection's ops (a step where the selection is free, or missing, fails)."""
    P, w = 256, wl(seq_len=256, new_tokens=5, exact=True, pruning=lazy())
    g = hwsim.simulate(w, target)
    pre = hwsim.simulate(workload_from_dict({**TINY, "phase": "prefill", "seq_len": P,
                                             "pruning": lazy()}, "<t>"), target)
    assert g.totals["ttft_s"] == pytest.approx(pre.totals["latency_s"], rel=1e-12)
    prompt = gen.prompt_cache(pre.graph)
    assert prompt[:6] == [P] * 6 and prompt[6] == P // 2 and prompt[-1] == P // 8
    assert list(g.steps["revived_tokens"]) == [0] * 4
    for j, kv in enumerate(sorted(g.points), start=1):
        rep = g.points[kv]
        assert kv == P + j - 1
        assert attention_sizes(rep) == [(1, n + j) for n in prompt]  # cache + the new token
        sel = rep.ops[rep.ops["name"].str.startswith("lazyllm.")]
        assert sorted(set(sel["layer"])) == list(POINTS)
        assert set(sel["kind"]) == {"matmul", "softmax", "reduce", "topk"}
        assert (sel["latency_s"] > 0).all() and (sel["energy_j"] > 0).all()
        topk = rep.graph.ops[int(sel[sel["kind"] == "topk"].iloc[0]["id"])]
        # over layer 5's tokens (its cache and the new one), half kept, rounded up
        assert topk.attrs["n"] == P + j and topk.attrs["k"] == (P + j + 1) // 2
        bare = per_layer_step(w, kv, [n + j - 1 for n in prompt], target)
        extra = rep.totals["latency_s"] - bare.totals["latency_s"]
        if target == "ascend":  # each op also waits for its lanes' synchronisation
            assert extra >= sel["latency_s"].sum() > 0
        else:
            assert extra == pytest.approx(sel["latency_s"].sum(), rel=1e-9)
        assert rep.totals["flops"] - bare.totals["flops"] == sel["flops"].sum()
    assert g.step(0)["latency_s"] == pytest.approx(g.points[P].totals["latency_s"], rel=1e-12)


@pytest.mark.parametrize("target", ["volta", "ascend"])
def test_revive_zero_tpot_lies_between_the_dense_cache_and_the_bare_per_layer_cache(target):
    """Llama-2-7B, 2,048-token prompt, batch 8 (the KV cache is most of a step's bytes):
    the per-layer caches without selection are the fastest step, the dense cache the
    slowest, and LazyLLM in between (its selection costs less than the keys it no
    longer reads)."""
    P = 2048
    w = wl(LLAMA, seq_len=P, new_tokens=3, batch=8, exact=True, pruning=lazy())
    g = hwsim.simulate(w, target, baseline=True)
    prompt = gen.prompt_cache(g.prefill.graph)
    for j, kv in enumerate(sorted(g.points), start=1):
        bare = per_layer_step(w, kv, [n + j - 1 for n in prompt], target).totals["latency_s"]
        step = g.step(j - 1)["latency_s"]
        dense = g.baseline.step(j - 1)["latency_s"]
        assert bare < step < dense
    assert g.totals["tpot_s"] < 0.9 * g.baseline.totals["tpot_s"]


# ------------------------------------------------------------------- revive > 0
def test_revived_tokens_are_extra_rows_until_the_pruned_tokens_run_out():
    """revive 8 on a 64-token prompt (keep 0.5 at layers 6, 11, 16: 32, 16 and 8 tokens
    pruned there): each pruning layer revives 8 tokens a step while its pool lasts,
    computed from that layer on (q_len grows by 8 at each), every layer's cache grows
    by its rows; no layer ever computes a token twice (its cache and rows stay within
    the prompt plus the generated tokens), and once every pool is empty each layer
    caches what the first does, P + j - 1."""
    P, r, steps = 64, 8, 8
    g = hwsim.simulate(wl(seq_len=P, new_tokens=steps + 1, exact=True,
                          pruning=lazy(revive=r)), "roofline")
    cache = gen.prompt_cache(g.prefill.graph)
    pools = {at: cache[at - 1] - cache[at] for at in POINTS}
    assert pools == {6: 32, 11: 16, 16: 8}
    revived = []
    for j, kv in enumerate(sorted(g.points), start=1):
        sizes = attention_sizes(g.points[kv])
        rows = [q for q, _ in sizes]
        assert [k - q for q, k in sizes] == cache  # the cache before this step, per layer
        take = {at: min(r, pools[at]) for at in POINTS}
        expect, q = [], 1
        for layer in range(22):
            q += take.get(layer, 0)
            expect.append(q)
        assert rows == expect
        assert all(c + q <= P + j for c, q in zip(cache, rows))  # each token once per layer
        names = set(g.points[kv].ops["name"])
        assert ("lazyllm.aux_cache_read" in names) == (sum(take.values()) > 0)
        revived.append(sum(take.values()))
        cache = [c + q for c, q in zip(cache, rows)]
        pools = {at: pools[at] - take[at] for at in POINTS}
    assert revived == [24, 16, 8, 8, 0, 0, 0, 0]
    assert list(g.steps["revived_tokens"]) == revived
    assert cache == [P + steps] * 22  # every pruned token came back once


@pytest.mark.parametrize("target", TARGETS)
def test_reviving_costs_more_than_not_and_then_the_same_as_the_dense_cache(target):
    """With revive 4 the steps compute more rows and read larger caches than with 0,
    so each costs more (strictly, while tokens revive); once the pools are empty the
    step is the dense cache's plus the selection."""
    base = dict(seq_len=48, new_tokens=16, exact=True)
    none = hwsim.simulate(wl(**base, pruning=lazy()), target)
    some = hwsim.simulate(wl(**base, pruning=lazy(revive=4)), target, baseline=True)
    for i, r in enumerate(some.step_rows):
        zero = none.step(i)
        assert r["flops"] > zero["flops"] if r["revived_tokens"] else r["flops"] >= zero["flops"]
        if r["revived_tokens"]:
            assert r["latency_s"] > zero["latency_s"]
    assert some.totals["tpot_s"] > none.totals["tpot_s"]
    last = some.points[max(some.points)]
    assert some.step(-1)["revived_tokens"] == 0
    dense = some.baseline.step(-1)
    sel = last.ops[last.ops["name"].str.startswith("lazyllm.")]
    assert last.totals["flops"] == dense["flops"] + sel["flops"].sum()


def test_revival_steps_are_bracketed_within_their_runs():
    """A bracketed LazyLLM generation with revival simulates a few steps per run of
    equal rows and matches the exact one within its stated bound."""
    fields = dict(seq_len=128, new_tokens=40, pruning=lazy(revive=3))
    exact = hwsim.simulate(wl(**fields, exact=True), "volta")
    fast = hwsim.simulate(wl(**fields, step_error=0.01), "volta")
    assert fast.totals["simulated_steps"] < exact.totals["simulated_steps"] == 39
    for a, b in zip(exact.step_rows, fast.step_rows):
        assert a["revived_tokens"] == b["revived_tokens"]
        assert b["latency_s"] == pytest.approx(a["latency_s"], rel=0.01)
    assert fast.totals["tpot_s"] == pytest.approx(exact.totals["tpot_s"], rel=0.01)


def test_max_batch_reads_lazyllms_per_layer_caches():
    """The largest batch of a LazyLLM generation fits its last step's per-layer caches:
    at least the dense cache's, as its layers past the pruning hold fewer tokens."""
    w = wl(LLAMA, seq_len=3072, new_tokens=512, pruning=lazy())
    assert gen.max_batch(w, "volta") >= gen.max_batch(wl(LLAMA, seq_len=3072,
                                                         new_tokens=512), "volta")


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("revive", [-1, 2.5, True, "4", 2 ** 20 + 1])
def test_revive_out_of_range_is_one_line(revive):
    with pytest.raises(InputError) as e:
        wl(seq_len=64, new_tokens=4, pruning=lazy(revive=revive))
    (p,) = e.value.problems
    assert p.field == "pruning.0.revive" and "integer in 0..1,048,576" in p.message
    assert "\n" not in str(e.value)


def test_revive_in_a_single_decode_step_says_to_generate():
    step = workload_from_dict({**TINY, "phase": "decode", "seq_len": 1, "kv_len": 300,
                               "pruning": lazy(revive=2)}, "<t>")
    with pytest.raises(InputError, match="phase: generate") as e:
        hwsim.simulate(step, "roofline")
    assert e.value.problems[0].field == "pruning.0.revive"


def test_serving_refuses_lazyllm_in_one_line():
    from hwsim.serving import serve

    with pytest.raises(InputError, match="simulate the generation") as e:
        serve(wl(seq_len=64, new_tokens=4, pruning=lazy()), "roofline",
                            rate_per_s=1.0, requests=2)
    assert e.value.problems[0].field == "pruning.0.method"


# ------------------------------------------------- a decode step of several tokens
def decode(base, seq_len, kv_len, **fields):
    return workload_from_dict({**base, "phase": "decode", "seq_len": seq_len,
                               "kv_len": kv_len, **fields}, "<t>")


@pytest.mark.parametrize("base", [TINY, LLAMA])
def test_a_decode_step_of_several_tokens_grows_its_attention_as_expected(base):
    """Verifying 4 speculated tokens over a cache of K: every projection runs 4 rows,
    the attention reads K + 4 keys with 4 queries: its dense FLOPs are the one-token
    step's times 4 (K + 4) / (K + 1), and those a causal kernel executes times
    (4K + 10) / (K + 1) (query i sees K + i + 1 keys)."""
    K = 1000
    one, four = build_graph(decode(base, 1, K)), build_graph(decode(base, 4, K))
    assert four.header["template_ref"]["phase"] == "extend"
    att1 = [op for op in one.ops if op.kind == "attention"]
    att4 = [op for op in four.ops if op.kind == "attention"]
    assert len(att1) == len(att4) and {(o.attrs["q_len"], o.attrs["kv_len"]) for o in att4} \
        == {(4, K + 4)}
    for a, b in zip(att1, att4):
        assert flops(b) * (K + 1) == flops(a) * 4 * (K + 4)
        assert executed_flops(b) * (K + 1) == executed_flops(a) * (4 * K + 10)
        assert visible_scores(4, K + 4, True) == 4 * K + 10
    q1 = [op for op in one.ops if op.name == "q_proj"]
    q4 = [op for op in four.ops if op.name == "q_proj"]
    assert [flops(b) for b in q4] == [4 * flops(a) for a in q1]
    rep = hwsim.simulate(decode(base, 4, K), "volta")
    assert rep.totals["latency_s"] > hwsim.simulate(decode(base, 1, K), "volta"
                                                    ).totals["latency_s"]


@pytest.mark.parametrize("target", ["volta", "armv8"])
def test_the_extend_template_at_one_row_costs_what_the_decode_template_does(target):
    """At seq_len 1 the extend template drops its layout copies (views at one row) and
    is the one-token decode step op for op: the same cost to the last bit."""
    from hwsim import zoo
    from hwsim.ir.layered import instantiate_layers

    step = decode(TINY, 1, 777)
    ext = instantiate_layers(zoo.template("tinyllama-1.1b", "extend"),
                             {"batch": 1, "seq_len": 1, "kv_len": 777})
    one = build_graph(step)
    assert len(ext.ops) == len(one.ops)
    assert [(o.kind, o.name, o.attrs) for o in ext.ops] == [(o.kind, o.name, o.attrs)
                                                            for o in one.ops]
    a, b = (run_graph(g, resolve(target), step).totals for g in (ext, one))
    assert a["latency_s"] == b["latency_s"] and a["dram_read_bytes"] == b["dram_read_bytes"]


def test_the_shipped_extend_template_equals_a_fresh_trace():
    """The shipped template, instantiated at a size it was not fitted or checked at,
    is identical to a trace made there; at one row it is the one-row trace op for op."""
    pytest.importorskip("torch")
    from hwsim import zoo
    from hwsim.trace import trace
    from hwsim.trace.template import compare, compare_ops

    tmpl = zoo.template("tinyllama-1.1b", "extend")
    assert tmpl.header["template"]["one_row_views"] == 22  # one layout copy per layer
    at = {"batch": 2, "seq_len": 5, "kv_len": 37}
    assert compare(tmpl.instantiate(**at),
                   trace("tinyllama-1.1b", phase="decode", dtype="fp16", **at)) == []
    one = {**at, "seq_len": 1}
    assert compare_ops(tmpl.instantiate(**one),
                       trace("tinyllama-1.1b", phase="decode", dtype="fp16", **one)) == []


def test_a_model_without_an_extend_template_and_no_torch_is_one_line(monkeypatch, tmp_path):
    """A model whose extend template is not shipped, without torch (and nothing in
    the trace cache): a decode step of several tokens says what to do, in one line."""
    import sys

    from hwsim import zoo

    shipped = zoo.shipped_path
    monkeypatch.setattr(zoo, "shipped_path", lambda model, phase, tag="": None
                        if phase == "extend" else shipped(model, phase, tag))
    monkeypatch.setenv("HWSIM_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "hwsim.trace.cache", None)  # import fails: no torch
    zoo.extend_template.cache_clear()
    try:
        with pytest.raises(InputError) as e:
            hwsim.simulate(decode({**TINY, "model": "gpt2"}, 3, 50), "roofline")
    finally:
        zoo.extend_template.cache_clear()
    (p,) = e.value.problems
    assert p.field == "seq_len" and "--phases extend" in p.message and "torch" in p.message
    assert "\n" not in str(e.value)


def test_a_one_row_decode_template_file_refuses_several_tokens(tmp_path):
    """A user's decode template traced at one row cannot grow rows: one line that
    names the extend template."""
    import shutil

    from hwsim import zoo

    path = tmp_path / "t.json.gz"
    shutil.copy(zoo.shipped_path("tinyllama-1.1b", "decode"), path)
    w = workload_from_dict({"name": "t", "trace": str(path), "phase": "decode", "seq_len": 3,
                            "kv_len": 40}, str(tmp_path / "w.yaml"))
    with pytest.raises(InputError, match="extend") as e:
        build_graph(w)
    assert e.value.problems[0].field == "seq_len"


EXTENDS = sorted(p.name[:-len(".extend.json.gz")] for p in
                 (Path(__file__).resolve().parents[1] / "traces").glob("*.extend.json.gz"))


@pytest.mark.parametrize("model", EXTENDS)
def test_every_shipped_extend_template_is_its_decode_template_at_one_row(model):
    """Each shipped extend template, at one row, is its model's one-token decode
    template op for op (kinds, names, layers, attributes, operand shapes), and at four
    rows every attention runs four queries over the cache and them."""
    from hwsim import zoo
    from hwsim.trace.template import compare_ops

    size = {"batch": 2, "seq_len": 1, "kv_len": 50}
    ext, one = zoo.template(model, "extend"), zoo.template(model, "decode")
    assert ext.header["template"]["one_row_views"] > 0
    assert compare_ops(ext.instantiate(**size), one.instantiate(**size)) == []
    four = ext.instantiate(**{**size, "seq_len": 4})
    assert {(op.attrs["q_len"], op.attrs["kv_len"]) for op in four.ops
            if op.kind == "attention"} == {(4, 54)}


@pytest.mark.parametrize("target, bigger", [
    ("roofline", "target.dram_bw_bytes_per_s=1.8e12"),
    ("volta", "target.dram_bw_bytes_per_s=1.5e12"),
    ("ascend", "target.dram_bw_bytes_per_s=3.2e12"),
    ("armv8", "target.dram_transfers_per_s=5.866e9"), ("spatten", "target.dram_channels=32")])
def test_revival_steps_obey_the_machines_physics_and_a_bigger_machine(target, bigger):
    """Steps of several query rows (the extend template) stay under peak compute, DRAM
    bandwidth and power and read their compulsory bytes (tests/physics.py), and more DRAM
    bandwidth never lengthens TTFT or TPOT."""
    from physics import op_violations

    w = wl(seq_len=256, new_tokens=40, pruning=lazy(revive=8))
    g = hwsim.simulate(w, target, fidelity="analytical")
    assert any(r > 0 for r in g.steps["revived_tokens"])  # several rows were run
    assert op_violations(g.prefill) == []
    for point in g.points.values():
        assert op_violations(point) == []
    big = hwsim.simulate(w, target, fidelity="analytical", sets=[bigger]).totals
    assert big["ttft_s"] <= g.totals["ttft_s"] * (1 + 1e-9)
    assert big["tpot_s"] <= g.totals["tpot_s"] * (1 + 1e-9)
