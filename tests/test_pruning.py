"""The pruning library: schedules per method, machinery sized from the papers, errors,
composition, the papers' FLOPs convention, and the report's pruning section."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml
from conftest import ROOT, dump_yaml, run_hwsim

import hwsim
from hwsim.errors import InputError
from hwsim.ir import Graph
from hwsim.ir.scores import Scores, write_scores
from hwsim.pruning import PASSES, apply, paper_flops, paper_flops_ratio
from hwsim.pruning.heads import scale_heads
from hwsim.pruning.layers import default_dropped
from hwsim.pruning.schedules import (
    read_schedule,
    resample,
    threshold_schedule,
    token_importance,
    write_schedule,
)
from hwsim.workload import build_graph, load_workload, workload_from_dict

LLAVA = {"model": "llava-1.5-7b", "seq_len": 640}
GPT2 = {"model": "gpt2", "seq_len": 64,
        "segments": {"text": [0, 8], "visual": [8, 56], "question": [56, 64]}}
GPT2_DECODE = {"model": "gpt2", "phase": "decode", "seq_len": 1, "kv_len": 255}
LLAMA_DECODE = {"model": "llama-2-7b", "phase": "decode", "seq_len": 1, "kv_len": 4095}


def pruned(base: dict, *steps: dict, source: str = "<workload>"):
    """(dense graph, pruned graph) of ``base`` with ``steps``, the workload read as if from
    ``source`` (errors name it); the pruned graph verifies."""
    wl = workload_from_dict({**base, "pruning": list(steps)}, source)
    dense = build_graph(wl)
    graph = apply(dense, wl.pruning, wl.source)
    assert graph.verify() == []
    return dense, graph


def machinery(graph: Graph, method: str) -> list:
    return [op for op in graph.ops if op.attrs.get("pruning") == method]


def kinds(ops) -> dict[str, int]:
    out: dict[str, int] = {}
    for op in ops:
        out[op.kind] = out.get(op.kind, 0) + 1
    return out


def layer_attention(graph: Graph) -> dict[int, dict]:
    return {op.layer: op.attrs for op in graph.ops if op.kind == "attention"}


# ---------------------------------------------------------------------------- token methods
def test_fastv_prunes_half_the_visual_tokens_after_layer_k():
    dense, g = pruned(LLAVA, {"method": "fastv", "at_layer": 2, "keep": 0.5,
                              "segment": "visual"})
    (rec,) = g.header["pruning"]
    assert rec["tokens_per_layer"] == [640] * 2 + [352] * 30  # 35 + 288 + 29
    assert rec["kv_per_layer"] == rec["tokens_per_layer"]
    assert rec["stack"] == "language" and rec["first_layer"] == 24
    att = layer_attention(g)
    assert att[25]["q_len"] == 640 and att[26]["q_len"] == 352 and att[55]["kv_len"] == 352
    assert all(att[layer]["q_len"] == 577 for layer in range(24))  # the CLIP tower is dense
    ops = machinery(g, "fastv")
    # the last query's scores against layer 1's 640 keys, per head, and the selection
    scores = next(op for op in ops if op.kind == "matmul")
    assert (scores.attrs["batch"], scores.attrs["m"], scores.attrs["n"], scores.attrs["k"]) == (
        32, 1, 640, 128)
    mean = next(op for op in ops if op.kind == "reduce")
    assert (mean.attrs["elements"], mean.attrs["out_elements"]) == (32 * 576, 576)
    (topk,) = [op for op in ops if op.kind == "topk"]
    assert (topk.attrs["n"], topk.attrs["k"]) == (576, 288)
    gathers = [op for op in ops if op.kind == "gather"]
    assert gathers and all(op.layer == 26 for op in ops)  # residual stream + rotary tables
    assert rec["overhead_ops"] == len(ops)
    assert g.flops() < dense.flops()


def test_hawk_and_divprune_prune_before_the_language_model():
    _, g = pruned(LLAVA, {"method": "hawk", "keep": 0.198, "segment": "visual"})
    assert g.header["pruning"][0]["tokens_per_layer"] == [35 + 114 + 29] * 32
    ops = machinery(g, "hawk")
    weighting = [op for op in ops if op.kind == "elementwise"]
    assert weighting and weighting[0].attrs["fn"] == "mul"  # head-importance weighting
    assert weighting[0].attrs["elements"] == 32 * 576
    assert {op.layer for op in ops} == {24}

    _, g = pruned(LLAVA, {"method": "divprune", "keep": 0.098, "segment": "visual"})
    assert g.header["pruning"][0]["tokens_per_layer"] == [35 + 56 + 29] * 32
    ops = machinery(g, "divprune")
    # as released: the whole 576 x 576 similarity once, then 55 picks re-reducing the
    # rows picked so far (a gather of i x 576 and its column minimum), O(n² d + k² n)
    (sim,) = [op for op in ops if op.kind == "matmul"]
    assert (sim.attrs["m"], sim.attrs["n"], sim.attrs["k"]) == (576, 576, 4096)
    rows = [op for op in ops if op.name == "divprune.picked_rows"]
    assert [op.attrs["elements"] for op in rows] == [i * 576 for i in range(1, 56)]
    assert kinds(ops)["reduce"] == 1 + 56 + 55  # norms, an argmax per pick, the minima
    _, g = pruned(LLAVA, {"method": "divprune", "keep": 0.098, "segment": "visual",
                          "algorithm": "incremental"})
    ops = machinery(g, "divprune")
    steps = [op for op in ops if op.kind == "matmul"]
    assert len(steps) == 56  # one greedy step per kept token: O(n k d) in all
    assert all((op.attrs["m"], op.attrs["n"], op.attrs["k"]) == (1, 576, 4096) for op in steps)
    assert kinds(ops)["reduce"] == 56 + 1  # an argmax per step, the norms once
    assert sum(op.attrs["n"] * op.attrs["k"] * 2 for op in steps) == 2 * 576 * 56 * 4096


def test_topv_costs_its_sinkhorn_iterations_and_shrinks_the_kv_cache():
    _, g = pruned(LLAVA, {"method": "topv", "keep": 0.222, "segment": "visual",
                          "iterations": 7})
    rec = g.header["pruning"][0]
    assert rec["tokens_per_layer"][:2] == [640, 640] and rec["tokens_per_layer"][2] == 192
    kv_writes = [op for op in g.ops if op.kind == "kv_write" and op.layer == 26]
    assert all(op.attrs["elements"] == 192 * 4096 for op in kv_writes)
    ops = machinery(g, "topv")
    sinkhorn = [op for op in ops if op.name.startswith("topv.sinkhorn_K")]
    assert len(sinkhorn) == 2 * 7
    cost = next(op for op in ops if op.name == "topv.cost")
    assert (cost.attrs["m"], cost.attrs["n"], cost.attrs["k"]) == (576, 64, 4096)


def test_spatten_cascade_keeps_layer_zero_dense_and_ranks_by_accumulated_attention():
    _, g = pruned(GPT2, {"method": "spatten", "keep": 0.5})
    rec = g.header["pruning"][0]
    assert rec["tokens_per_layer"] == [64] + [32] * 11
    ops = machinery(g, "spatten")
    imp = next(op for op in ops if op.name == "spatten.importance")
    assert imp.attrs["elements"] == 12 * 64 * 64 and imp.layer == 1  # layer 0's probabilities
    assert {op.layer for op in ops if op.kind == "topk"} == {1}


def test_spatten_in_decode_prunes_the_cache_every_step():
    _, g = pruned(GPT2_DECODE, {"method": "spatten",
                                "keep": [0.9, 0.7] + [0.2] * 4 + [0.1] * 6})
    rec = g.header["pruning"][0]
    assert rec["tokens_per_layer"] == [230, 179] + [51] * 4 + [26] * 6
    att = layer_attention(g)
    assert [att[layer]["kv_len"] for layer in range(12)] == [t + 1 for t in
                                                            rec["tokens_per_layer"]]
    assert len([op for op in machinery(g, "spatten") if op.kind == "topk"]) == 12


def test_lazyllm_prunes_progressively_with_an_auxiliary_cache():
    _, g = pruned(GPT2, {"method": "lazyllm", "keep": 0.5, "layers": [3, 6, 9]})
    assert g.header["pruning"][0]["tokens_per_layer"] == [64] * 3 + [32] * 3 + [16] * 3 + [8] * 3
    ops = machinery(g, "lazyllm")
    aux = [op for op in ops if op.kind == "kv_write"]
    assert [op.attrs["elements"] for op in aux] == [32 * 768, 16 * 768, 8 * 768]
    _, g = pruned(GPT2_DECODE, {"method": "lazyllm", "keep": [1.0] * 6 + [0.5] * 6})
    assert layer_attention(g)[11]["kv_len"] == 128 + 1


def test_zero_tprune_iterates_pagerank_on_the_vit():
    _, g = pruned({"model": "deit-small", "seq_len": 197},
                  {"method": "zero-tprune", "keep": 0.72, "layers": [3, 6, 9], "iterations": 30})
    assert g.header["pruning"][0]["tokens_per_layer"] == [197] * 3 + [142] * 3 + [102] * 3 + \
        [74] * 3
    steps = [op for op in machinery(g, "zero-tprune") if op.name == "zero-tprune.pagerank_step"]
    assert len(steps) == 3 * 30
    assert steps[0].attrs["n"] == steps[0].attrs["k"] == 197  # the attention graph of layer 2


# ---------------------------------------------------------------------------- heads, layers
def test_static_head_removal_narrows_projections_and_kv_cache():
    dense, g = pruned({"model": "llama-2-7b", "seq_len": 32},
                      {"method": "heads", "keep": 0.75, "layers": [1]})
    att = layer_attention(g)
    assert att[1]["heads"] == att[1]["kv_heads"] == 24 and att[0]["heads"] == 32
    proj = {op.module.rsplit(".", 1)[-1]: op for op in g.ops if op.layer == 1
            and op.kind == "matmul"}
    assert proj["q_proj"].attrs["n"] == proj["k_proj"].attrs["n"] == 3072
    assert proj["o_proj"].attrs["k"] == 3072 and proj["gate_proj"].attrs["k"] == 4096
    assert g.tensors[proj["q_proj"].inputs[1]].numel == 3072 * 4096
    assert machinery(g, "heads") == []  # decided offline
    assert g.param_bytes() < dense.param_bytes()


def test_heads_of_a_fused_qkv_projection_and_of_the_decode_cache():
    _, g = pruned(GPT2_DECODE, {"method": "spatten-heads", "keep": 0.5})
    att = layer_attention(g)
    assert [att[layer]["heads"] for layer in range(12)] == [6] * 12
    c_attn = [op for op in g.ops if op.module.endswith("attn.c_attn")]
    assert all(op.attrs["n"] == 3 * 6 * 64 for op in c_attn)  # q, k and v of 6 heads
    cache = [g.tensors[op.inputs[1]] for op in g.ops if op.kind == "kv_write"]
    assert all(t.shape == (1, 6, 255, 64) for t in cache)
    ops = machinery(g, "spatten-heads")
    assert kinds(ops)["topk"] == 12 and ops[0].name == "spatten.head_magnitude"


def test_grouped_query_attention_keeps_whole_groups():
    g = Graph({"name": "gqa"})
    x = g.add_tensor([1, 8, 64], "fp16", "input")
    outs = []
    for name, n in (("q", 64), ("k", 32), ("v", 32)):
        w = g.add_tensor([n, 64], "fp16", "param")
        o = g.add_tensor([8, n], "fp16")
        g.add_op("matmul", [x, w], [o], dict(batch=1, m=8, n=n, k=64), layer=0,
                 module=f"l.0.{name}_proj")
        outs.append(o)
    a = g.add_tensor([1, 4, 8, 16], "fp16")
    g.add_op("attention", outs, [a], dict(batch=1, heads=4, kv_heads=2, head_dim=16, q_len=8,
                                          kv_len=8, causal=True), layer=0, module="l.0.attn")
    wo = g.add_tensor([64, 64], "fp16", "param")
    y = g.add_tensor([8, 64], "fp16")
    g.add_op("matmul", [a, wo], [y], dict(batch=1, m=8, n=64, k=64), layer=0, module="l.0.o")
    out = scale_heads(g, 0, 3)  # 3 of 4 heads is not whole groups of 2: keeps 2
    assert out.verify() == []
    att = next(op for op in out.ops if op.kind == "attention")
    assert (att.attrs["heads"], att.attrs["kv_heads"]) == (2, 1)
    assert [op.attrs["n"] for op in out.ops[:3]] == [32, 16, 16] and out.ops[-1].attrs["k"] == 32


def test_layer_drop_removes_blocks_and_rewires_the_residual():
    dense, g = pruned({"model": "llama-2-7b", "seq_len": 16}, {"method": "layer-drop",
                                                                "keep": 0.75})
    assert default_dropped(32, 0.75) == list(range(22, 30))
    assert g.header["pruning"][0]["dropped_layers"] == list(range(22, 30))
    assert {op.layer for op in g.ops} - {None} == set(range(22)) | {30, 31}
    assert g.flops() == pytest.approx(dense.flops() * 0.75, rel=0.01)
    _, g = pruned({"model": "llama-2-7b", "seq_len": 16}, {"method": "layer-drop",
                                                            "layers": [0, 5]})
    assert g.header["pruning"][0]["tokens_per_layer"][:6] == [None, 16, 16, 16, 16, None]


# ---------------------------------------------------------------------------- KV, sparse, quant
def test_kv_budget_reads_a_quarter_of_the_keys_with_eviction_per_head():
    dense, g = pruned(LLAMA_DECODE, {"method": "h2o", "keep": 0.25})
    assert all(a["kv_len"] == 1025 for a in layer_attention(g).values())
    topk = [op for op in machinery(g, "h2o") if op.kind == "topk"]
    assert len(topk) == 32 and topk[0].attrs == {"rows": 32, "n": 1025, "k": 1024,
                                                 "pruning": "h2o"}
    kv = [t for t in g.tensors.values() if t.kind == "kv_cache"]
    assert sum(t.bytes for t in kv) == pytest.approx(
        0.25 * sum(t.bytes for t in dense.tensors.values() if t.kind == "kv_cache"), rel=0.01)
    _, g = pruned(LLAMA_DECODE, {"method": "h2o", "tokens": 512, "per_head": False})
    topk = [op for op in machinery(g, "h2o") if op.kind == "topk"]
    assert topk[0].attrs["rows"] == 1 and topk[0].attrs["k"] == 512
    _, g = pruned(LLAMA_DECODE, {"method": "kvcrush", "keep": 0.25})
    signatures = [op for op in machinery(g, "kvcrush") if op.name == "kvcrush.binary_signature"]
    assert len(signatures) == 32 and signatures[0].attrs["fn"] == "compare"


def test_topk_attention_scores_every_key_and_attends_to_k():
    dense, g = pruned(LLAMA_DECODE, {"method": "topk-attention", "k": 256})
    layer0 = [op for op in g.ops if op.layer == 0 and op.module.endswith("self_attn")]
    names = [op.name for op in layer0 if op.kind in ("matmul", "topk", "attention")]
    assert names == ["topk-attention.scores", "topk-attention.topk", "sparse_attention"]
    att = next(op for op in layer0 if op.kind == "attention")
    assert (att.attrs["sparse_keys"], att.attrs["sparse_block"]) == (256, 1)
    # it reads K and V where they lie: no gathered copy, one cache per layer
    dense_att = next(op for op in dense.ops if op.layer == 0 and op.kind == "attention")
    assert att.inputs == dense_att.inputs
    assert g.op_read_bytes(att) <= g.op_read_bytes(dense_att)
    assert g.op_flops(att) == 2 * 32 * 1 * 256 * (128 + 128)


def test_hip_selects_hierarchically_in_log_iterations():
    _, g = pruned({"model": "llama-2-7b", "seq_len": 4096}, {"method": "hip", "k": 512,
                                                              "block": 32, "layers": [0]})
    ops = machinery(g, "hip")
    assert len([op for op in ops if op.kind == "topk"]) == math.ceil(math.log2(4096 / 512))
    scores = next(op for op in ops if op.kind == "matmul")
    assert (scores.attrs["batch"], scores.attrs["m"], scores.attrs["n"]) == (32 * 128, 32, 1024)
    att = layer_attention(g)
    assert (att[0]["batch"], att[0]["q_len"], att[0]["kv_len"]) == (1, 4096, 4096)
    assert (att[0]["sparse_keys"], att[0]["sparse_block"]) == (512, 32)
    assert "sparse_keys" not in att[1] and att[1]["kv_len"] == 4096


def test_quant_stores_the_kv_cache_narrow():
    dense, g = pruned(GPT2_DECODE, {"method": "quant", "tensors": {"key": 6, "value": 6}})
    cache = [t for t in g.tensors.values() if t.kind == "kv_cache"]
    assert cache and all(t.dtype == "fix6" for t in cache)
    att_reads = sum(g.op_read_bytes(op) for op in g.ops if op.kind == "attention")
    dense_reads = sum(dense.op_read_bytes(op) for op in dense.ops if op.kind == "attention")
    assert att_reads / dense_reads == pytest.approx(6 / 16, rel=0.01)
    casts = machinery(g, "quant")
    assert {op.attrs["fn"] for op in casts} == {"cast"} and len(casts) == 24
    _, g = pruned(GPT2_DECODE, {"method": "quant", "tensors": {"kv": 8}, "refetch": 0.1})
    lsb = [op for op in machinery(g, "quant") if op.kind == "gather"]
    assert len(lsb) == 12 and g.tensors[lsb[0].outputs[0]].dtype == "int4"


# ---------------------------------------------------------------------------- composition
def test_steps_compose_in_order_and_passes_chain_as_graph_functions():
    hawk = {"method": "hawk", "keep": 0.5, "segment": "visual"}
    fastv = {"method": "fastv", "at_layer": 2, "keep": 0.5, "segment": "visual"}
    _, g = pruned(LLAVA, hawk, fastv)
    recs = g.header["pruning"]
    assert [r["method"] for r in recs] == ["hawk", "fastv"]
    assert recs[0]["tokens_per_layer"] == [35 + 288 + 29] * 32
    assert recs[1]["tokens_per_layer"] == [352] * 2 + [35 + 144 + 29] * 30
    dense = build_graph(workload_from_dict(LLAVA))
    chained = PASSES["fastv"](PASSES["hawk"](dense, hawk), fastv)
    assert [op.line(chained) for op in chained.ops] == [op.line(g) for op in g.ops]
    _, g2 = pruned(LLAVA, hawk, fastv, {"method": "layer-drop", "layers": [30, 31]},
                   {"method": "heads", "keep": 0.5, "layers": [5]})
    assert g2.header["pruning"][-1]["heads_per_layer"][5] == 16
    assert len(machinery(g2, "fastv")) == len(machinery(g, "fastv"))


def test_concrete_traces_take_structural_methods_but_not_resizing(tiny_trace, tmp_path):
    def wl(step):
        return load_workload(dump_yaml(tmp_path / "t.yaml", {"trace": str(tiny_trace),
                                                             "seq_len": 8, "pruning": [step]}))

    for step in ({"method": "heads", "keep": 0.5}, {"method": "layer-drop", "layers": [0]},
                 {"method": "quant", "tensors": {"kv": 8}}):
        w = wl(step)
        g = apply(build_graph(w), w.pruning, w.source)
        assert g.verify() == []
    w = wl({"method": "spatten", "keep": 0.5})
    with pytest.raises(InputError, match="concrete trace, not a size template"):
        apply(build_graph(w), w.pruning, w.source)


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("base, step, field, needle", [
    (LLAVA, {"method": "fastv", "at_layer": 2, "keep": 1.5}, "pruning.0.keep",
     "must be a fraction in (0, 1]"),
    (LLAVA, {"method": "fastv", "at_layer": 32, "keep": 0.5}, "pruning.0.at_layer",
     "past the model's last layer (31)"),
    (LLAVA, {"method": "fastv", "at_layer": 2, "keep": 0.5, "segment": "visul"},
     "pruning.0.segment", "unknown segment 'visul'"),
    (LLAVA, {"method": "heads", "keep": 0.5, "layers": [40]}, "pruning.0.layers",
     "outside 0..31"),
    (LLAVA, {"method": "spatten", "keep": [0.5] * 3}, "pruning.0.keep", "has 3 entries"),
    (LLAVA, {"method": "quant", "tensors": {"keys": 6}}, "pruning.0.tensors.keys",
     "unknown tensor class"),
    (LLAVA, {"method": "h2o"}, "pruning.0.keep", "needs one of keep, tokens"),
    (LLAVA, {"method": "hip", "k": 0}, "pruning.0.k", "must be a positive integer"),
])
def test_wrong_parameters_are_errors_when_loading(write_workload, base, step, field, needle):
    with pytest.raises(InputError) as e:
        load_workload(write_workload({**base, "pruning": [step]}))
    (p,) = e.value.problems
    assert p.field == field and needle in p.message


@pytest.mark.parametrize("base, step, field, needle", [
    (LLAVA, {"method": "fastv", "at_layer": 0, "keep": 0.5}, "pruning.0.at_layer",
     "K must be >= 1"),
    (LLAMA_DECODE, {"method": "snapkv", "tokens": 500}, "pruning.0", "use phase: generate"),
    (LLAMA_DECODE, {"method": "h2o", "tokens": 500, "keep": 0.5}, "pruning.0.tokens",
     "not both"),
    (LLAMA_DECODE, {"method": "fastv", "at_layer": 2, "keep": 0.5}, "pruning.0",
     "decode step"),
    (GPT2, {"method": "spatten", "keep": [0.5] * 12}, "pruning.0.keep", "keep[0] must be 1"),
    (GPT2, {"method": "spatten", "keep": [1.0, 0.5, 0.7] + [0.5] * 9}, "pruning.0.keep",
     "do not come back"),
    (GPT2, {"method": "layer-drop", "layers": list(range(12))}, "pruning.0.layers",
     "every layer"),
    (GPT2, {"method": "spatten", "schedule": "nowhere.json"}, "", "schedule file not found"),
])
def test_wrong_parameters_are_errors_when_pruning(write_workload, base, step, field, needle):
    wl = load_workload(write_workload({**base, "pruning": [step]}))
    with pytest.raises(InputError) as e:
        apply(build_graph(wl), wl.pruning, wl.source)
    (p,) = e.value.problems
    assert p.field == field and needle in p.message, str(e.value)


def test_cli_reports_a_bad_step_in_one_line(write_workload):
    path = write_workload({**LLAVA, "pruning": [{"method": "fastv", "at_layer": 40,
                                                 "keep": 0.5}]})
    r = run_hwsim("simulate", str(path))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "pruning.0.at_layer: 40 is past the model's last layer" in r.stderr


# ---------------------------------------------------------------------------- papers' FLOPs
def test_paper_formula_by_hand():
    # LLaVA-1.5-7B, FastV K=3 R=50 % on 611 tokens: 3 layers at 611, 29 at 323
    d, m = 4096, 11008

    def f(n):
        return 4 * n * d * d + 2 * n * n * d + 2 * n * d * m

    assert paper_flops([611] * 3 + [323] * 29, d, m) == 3 * f(611) + 29 * f(323)
    assert paper_flops([611, None], d, m) == f(611)  # a dropped layer costs nothing
    _, g = pruned({"model": "llava-1.5-7b", "seq_len": 611},
                  {"method": "fastv", "at_layer": 3, "keep": 0.5, "segment": "visual"})
    assert paper_flops_ratio(g) == pytest.approx((3 * f(611) + 29 * f(323)) / (32 * f(611)))


def test_exact_count_is_the_sum_of_dense_layers_at_their_token_counts():
    """The validation case's exact ratio, derived again without the pruning pass."""
    from hwsim import zoo

    tmpl = zoo.template("llava-1.5-7b", "prefill")

    def by_layer(n):
        g = tmpl.instantiate(batch=1, seq_len=n)
        out: dict = {}
        for op in g.ops:
            out[op.layer] = out.get(op.layer, 0) + g.op_flops(op)
        return out

    full, small = by_layer(619), by_layer(331)
    expected = sum(full[layer] for layer in range(24 + 3)) + \
        sum(small[layer] for layer in range(27, 56))
    # outside the blocks: the vision embeddings and projector (no seq_len in their sizes)
    # and the final norm and LM head on the 331 tokens left
    assert full[None] > small[None]
    expected += small[None]
    dense, g = pruned({"model": "llava-1.5-7b", "seq_len": 619},
                      {"method": "fastv", "at_layer": 3, "keep": 0.5, "segment": "visual"})
    head = [op for op in g.ops if op.layer is None and op.module in ("lm_head",
                                                                     "model.language_model.norm")]
    assert all(op.attrs.get("m", op.attrs.get("rows")) == 331 for op in head)
    overhead = sum(g.op_flops(op) for op in machinery(g, "fastv"))
    assert g.flops() == expected + overhead
    assert g.flops() / dense.flops() == pytest.approx(0.5919, abs=5e-5)  # pruning.yaml


# ---------------------------------------------------------------------------- schedules
def _toy_attention() -> np.ndarray:
    """2 layers, 1 head, 4 tokens; everyone attends mostly to tokens 0 and 1."""
    row = np.array([0.5, 0.3, 0.15, 0.05])
    return np.tile(row, (2, 1, 4, 1))


def test_threshold_schedule_keeps_the_mass_of_the_alive_tokens():
    att = _toy_attention()
    assert token_importance(att)[0].tolist() == pytest.approx([2.0, 1.2, 0.6, 0.2])
    assert threshold_schedule(att, 0.9) == [1.0, 0.75]  # 0.5 + 0.3 + 0.15 >= 0.9
    assert threshold_schedule(att, 0.5) == [1.0, 0.25]
    assert resample([1.0, 0.5], 4) == [1.0, 1.0, 0.5, 0.5]


def test_spatten_takes_a_schedule_file_or_a_scores_file(tmp_path, write_workload):
    write_schedule(tmp_path / "s.json", [1.0, 0.5])
    assert read_schedule(tmp_path / "s.json") == [1.0, 0.5]
    wl = load_workload(write_workload({**GPT2, "pruning": [{"method": "spatten",
                                                            "schedule": "s.json"}]}))
    g = apply(build_graph(wl), wl.pruning, wl.source)
    rec = g.header["pruning"][0]
    assert rec["tokens_per_layer"] == [64] * 6 + [32] * 6
    assert "stretched to 12" in rec["schedule"]
    # scores are of one model: a 2-layer file is not GPT-2's (tests/test_scores_files.py)
    write_scores(tmp_path / "scores.npz", Scores(_toy_attention(), ("a", "b", "c", "d"),
                                                 "gpt2"))
    wl = load_workload(write_workload({**GPT2, "pruning": [
        {"method": "spatten", "scores": "scores.npz", "mass": 0.5}]}))
    with pytest.raises(InputError, match="layers 2, expected 12"):
        apply(build_graph(wl), wl.pruning, wl.source)


def test_the_shipped_scores_schedule_is_a_cascade():
    keep = read_schedule(ROOT / "workloads/schedules/minilm-l6-mass90.json")
    assert keep[0] == 1.0 and all(b <= a for a, b in zip(keep, keep[1:])) and keep[-1] < 0.5


# ---------------------------------------------------------------------------- report
def test_report_shows_kept_tokens_overhead_share_and_change_vs_unpruned():
    wl = workload_from_dict({**GPT2, "pruning": [{"method": "fastv", "at_layer": 2, "keep": 0.5,
                                                  "segment": "visual"}]})
    r = hwsim.simulate(wl, "roofline", baseline=True)
    doc = json.loads(r.to_json())
    p = doc["pruning"]
    assert p["steps"][0]["tokens_per_layer"] == [64, 64] + [40] * 10
    o = p["overhead"]
    marked = [op for op in doc["ops"] if op.get("pruning") == "fastv"]
    assert o["ops"] == len(marked) > 0
    assert o["latency_s"] == pytest.approx(sum(op["latency_s"] for op in marked))
    assert o["latency_share"] == pytest.approx(o["latency_s"] / doc["totals"]["latency_s"])
    assert o["energy_share"] == pytest.approx(o["energy_j"] / doc["totals"]["energy_j"])
    v = p["vs_unpruned"]
    assert v["flops"]["unpruned"] == doc["baseline"]["totals"]["flops"] == r.dense_flops
    assert v["latency_s"]["ratio"] == pytest.approx(
        doc["totals"]["latency_s"] / doc["baseline"]["totals"]["latency_s"])
    assert all("pruning" not in op for op in doc["ops"] if op not in marked)
    text = r.table()
    assert "tokens/layer  L0-1 64, L2-11 40" in text and "unpruned" in text and "ratio" in text


def test_cli_baseline_prints_both_side_by_side():
    r = run_hwsim("simulate", "workloads/llama2-7b-decode-h2o.yaml", "--baseline", "--top", "0",
                  "--fidelity", "analytical")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    header = next(i for i, x in enumerate(lines) if x.split() == ["unpruned", "pruned", "ratio"])
    row = lines[header + 1:lines.index("", header)]
    assert [x.split()[0] for x in row] == ["latency", "energy", "flops", "dram", "dram"]
    assert float(row[0].split()[-1]) < 1  # pruned over unpruned latency
    assert "h2o(keep=0.25, per_head=True)" in r.stdout and "tokens/layer  L0-31 1024" in r.stdout


# ---------------------------------------------------------------------------- shipped workloads
PRUNING_WORKLOADS = [  # the pruning scenarios of docs/pruning.md
    "llava-1.5-7b-fastv.yaml", "llava-1.5-13b-fastv.yaml", "llava-1.5-7b-hawk.yaml",
    "llava-1.5-7b-divprune.yaml", "llava-1.5-7b-topv.yaml", "llama2-7b-fastv.yaml",
    "llama2-7b-decode-h2o.yaml", "llama2-7b-decode-kvcrush.yaml", "llama2-7b-lazyllm.yaml",
    "deit-small-zero-tprune.yaml", "llama2-7b-layer-drop.yaml", "gpt2-small-spatten.yaml",
    "bert-base-spatten.yaml", "minilm-l6-spatten-scores.yaml", "llama2-7b-prefill-hip.yaml",
    "llama2-7b-decode-topk.yaml", "llama2-7b-heads.yaml", "mixtral-8x7b-experts.yaml",
    "deit-small-tome.yaml", "llava-1.5-7b-fastervlm.yaml", "llama2-7b-flap.yaml",
    "llama3.1-8b-minference.yaml", "llama3.1-8b-decode-mustafar.yaml",
    "llava-onevision-7b-holitom.yaml", "llama3.2-1b-prefill-deltallm.yaml",
    "llama3.2-1b-decode-deltallm.yaml"]


GENERATION_WORKLOADS = [  # KV policies over a whole request (docs/generation.md)
    "llama2-7b-generate-h2o.yaml", "llama2-7b-generate-streamingllm.yaml",
    "llama2-7b-generate-snapkv.yaml"]


def test_every_method_has_a_shipped_workload():
    methods = set()
    for name in PRUNING_WORKLOADS + GENERATION_WORKLOADS:
        methods |= {s["method"] for s in yaml.safe_load((ROOT / "workloads" / name).read_text())[
            "pruning"]}
    assert methods == set(hwsim.pruning.METHODS)


@pytest.mark.parametrize("name", PRUNING_WORKLOADS)
def test_shipped_pruning_workloads_apply_and_verify(name):
    wl = load_workload(ROOT / "workloads" / name)
    dense = build_graph(wl)
    g = apply(dense, wl.pruning, wl.source)
    assert g.verify() == []
    assert [r["method"] for r in g.header["pruning"]] == [s["method"] for s in wl.pruning]
    # quantization and Mustafar's compressed cache save bytes, not FLOPs (Mustafar's kernel
    # expands the kept values and computes dense: tests/test_pruning_kv_methods.py)
    assert g.flops() < dense.flops() or any(s["method"] in ("quant", "mustafar")
                                            for s in wl.pruning)


@pytest.mark.parametrize("name", GENERATION_WORKLOADS)
def test_shipped_generation_workloads_read_and_hold_less_than_dense(name):
    g = hwsim.simulate(ROOT / "workloads" / name, "roofline", baseline=True,
                       fidelity="analytical")
    t, d = g.totals, g.baseline.totals
    assert t["tpot_s"] < d["tpot_s"] and t["kv_cache_bytes"] < d["kv_cache_bytes"]
    assert t["dram_bytes_per_token"] < d["dram_bytes_per_token"]
    assert g.pruning["overhead"]["ops"] > 0 or "streamingllm" in name


@pytest.mark.parametrize("method, names", [
    ("h2o", {"h2o.prompt_scores", "h2o.evict_topk"}),
    ("kvcrush", {"kvcrush.prompt_scores", "kvcrush.evict_topk", "kvcrush.hamming_distance"}),
    ("snapkv", {"snapkv.window_scores", "snapkv.window_softmax", "snapkv.select_topk",
                "snapkv.gather_keys", "snapkv.gather_values"}),
])
def test_kv_policies_in_a_prefill_cost_the_selection_at_the_prompts_end(write_workload, method,
                                                                         names):
    """The prompt's attention runs over all of it; at its end each layer selects what
    the cache keeps (the first step of a generation starts from it)."""
    budget = {"tokens": 256}
    wl = load_workload(write_workload({"model": "tinyllama-1.1b", "seq_len": 1024,
                                       "pruning": [{"method": method, **budget}]}))
    g = apply(build_graph(wl), wl.pruning, wl.source)
    att = [op for op in g.ops if op.kind == "attention"]
    assert all(op.attrs["q_len"] == 1024 and op.attrs["kv_len"] == 1024 for op in att)
    assert names <= {op.name for op in g.ops}
    per_layer = {op.layer for op in g.ops if op.attrs.get("pruning") == method}
    assert len(per_layer) == len(att)
    # a prompt within the budget selects nothing
    small = load_workload(write_workload({"model": "tinyllama-1.1b", "seq_len": 200,
                                          "pruning": [{"method": method, **budget}]}))
    g = apply(build_graph(small), small.pruning, small.source)
    assert not any(op.attrs.get("pruning") for op in g.ops)


def test_a_decode_budget_above_the_cache_accumulates_without_evicting(write_workload):
    wl = load_workload(write_workload({**LLAMA_DECODE, "pruning": [
        {"method": "h2o", "tokens": LLAMA_DECODE["kv_len"] + 10}]}))
    g = apply(build_graph(wl), wl.pruning, wl.source)
    att = [op for op in g.ops if op.kind == "attention"]
    assert all(op.attrs["kv_len"] == LLAMA_DECODE["kv_len"] + 1 for op in att)
    kinds = {op.kind for op in g.ops if op.attrs.get("pruning") == "h2o"}
    assert "elementwise" in kinds and "topk" not in kinds
