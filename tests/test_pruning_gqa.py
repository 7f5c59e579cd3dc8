"""Grouped-query attention and sliding windows through every pruning pass (issue 12).

The GQA model is TinyLlama-1.1B, shipped as a template: 22 layers, hidden 2,048,
32 query heads over 4 key/value heads of 64 (TinyLlama/TinyLlama-1.1B-Chat-v1.0,
config.json on the Hugging Face hub: num_attention_heads 32, num_key_value_heads 4,
hidden_size 2048), so a group is 8 query heads sharing one key/value head.

Windows: the same template with every attention given ``window: 256`` (Mistral's
sliding window, 4,096 in Mistral-7B-v0.1, scaled to a 512-token prompt), saved as a
template file and used as a ``trace:`` workload; a small Mistral traced from
transformers' MistralConfig on the meta device checks the same on a traced model.

Each test below was written against the code before issue 12 and failed there,
except those marked "guard", which hold what already worked.
"""

from __future__ import annotations

import dataclasses

import pytest
from test_physics_core import tiny_mistral
from test_pruning import pruned

import hwsim
from hwsim import zoo
from hwsim.errors import InputError
from hwsim.ir import Graph, save
from hwsim.ir.kinds import executed_flops, visible_scores
from hwsim.ir.layered import instantiate_layers
from hwsim.targets import registry
from hwsim.workload import load_workload, workload_from_dict

FP16 = 2  # bytes
H, HK, D, LAYERS = 32, 4, 64, 22  # TinyLlama's query heads, KV heads, head_dim, layers
GROUP = H // HK
PREFILL = {"model": "tinyllama-1.1b", "seq_len": 512,
           "segments": {"text": [0, 32], "visual": [32, 480]}}
DECODE_4K = {"model": "tinyllama-1.1b", "phase": "decode", "seq_len": 1, "kv_len": 4095}
WINDOW = 256


def named(graph: Graph, name: str) -> list:
    return [op for op in graph.ops if op.name == name]


def attentions(graph: Graph) -> dict:
    return {op.layer: op for op in graph.ops if op.kind == "attention"}


def windowed_template(tmp_path, phase: str, **extra) -> str:
    """TinyLlama's shipped template with a sliding window on every attention, as a file."""
    t = zoo.template("tinyllama-1.1b", phase)
    ops = [dataclasses.replace(op, attrs={**op.attrs, "window": WINDOW, **extra})
           if op.kind == "attention" else op for op in t.ops]
    path = tmp_path / f"tinyllama-w{WINDOW}.{phase}.json.gz"
    save(Graph(dict(t.header), t.tensors.values(), ops), path)
    return str(path)


@pytest.fixture
def win_prefill(tmp_path):
    return {"trace": windowed_template(tmp_path, "prefill"), "seq_len": 512,
            "segments": {"text": [0, 32], "visual": [32, 480]}}


@pytest.fixture
def win_decode(tmp_path):
    return {"trace": windowed_template(tmp_path, "decode"), "phase": "decode", "seq_len": 1,
            "kv_len": 1023}


# ---------------------------------------------------------------- KV budgets per KV head
def test_h2o_keeps_one_selection_per_kv_head_scored_from_its_group():
    """H2O's budget is per key/value head: each KV head's cache keeps its own 1,024
    tokens, chosen by a top-k per KV head (4 rows, not 32: 32 per-query-head
    selections would each need their own rows of a cache the group shares)."""
    dense, g = pruned(DECODE_4K, {"method": "h2o", "keep": 0.25})
    budget = 1024  # round(0.25 x 4,095) cached tokens, plus the new one: 1,025 keys
    assert all(op.attrs["kv_len"] == budget + 1 and op.attrs["kv_heads"] == HK
               for op in attentions(g).values())
    topk = named(g, "h2o.evict_topk")
    assert len(topk) == LAYERS
    assert {(op.attrs["rows"], op.attrs["n"], op.attrs["k"]) for op in topk} == {
        (HK, budget + 1, budget)}
    # the running score is KV heads x keys; each KV head is scored from the first query
    # head of its group (H2O's Llama-3 port), a slice of the probabilities read in place
    acc = named(g, "h2o.accumulate")[0]
    assert acc.attrs["elements"] == HK * (budget + 1)
    first = named(g, "h2o.group_first_head")[0]
    assert first.kind == "view"
    assert g.tensors[first.inputs[0]].numel == H * (budget + 1)
    assert g.op_read_bytes(acc) == 2 * HK * (budget + 1) * FP16
    rec = g.header["pruning"][0]
    assert rec["selection"] == "per key/value head" and rec["selections_per_layer"] == [HK]
    assert rec["kv_heads_per_layer"] == [HK] * LAYERS
    # the cache held shrinks by the budget: 2 (K, V) x 4 heads x 1,025 rows x 64 x 2 B
    kv = sum(t.bytes for t in g.tensors.values() if t.kind == "kv_cache"
             and t.shape[2] == budget + 1)
    assert kv == LAYERS * 2 * HK * (budget + 1) * D * FP16


def test_h2o_group_score_sum_reduces_the_group_and_checks_its_value(write_workload):
    _, g = pruned(DECODE_4K, {"method": "h2o", "keep": 0.25, "group_score": "sum"})
    red = named(g, "h2o.group_sum")
    assert len(red) == LAYERS and red[0].attrs == {
        "fn": "sum", "elements": H * 1025, "out_elements": HK * 1025, "pruning": "h2o"}
    assert named(g, "h2o.evict_topk")[0].attrs["rows"] == HK
    assert g.header["pruning"][0]["group_score"] == "sum"
    # one selection per sequence: the sum over every query head, as before
    _, g = pruned(DECODE_4K, {"method": "h2o", "keep": 0.25, "per_head": False})
    assert named(g, "h2o.evict_topk")[0].attrs["rows"] == 1
    assert g.header["pruning"][0]["selection"] == "per sequence"
    path = write_workload({**DECODE_4K, "pruning": [{"method": "h2o", "keep": 0.25,
                                                     "group_score": "mean"}]})
    with pytest.raises(InputError, match="group_score"):
        load_workload(path)
    with pytest.raises(InputError, match="per_head: false"):
        pruned(DECODE_4K, {"method": "h2o", "keep": 0.25, "per_head": False,
                           "group_score": "sum"})


def test_kvcrush_and_the_spatten_cascade_select_per_sequence_from_every_query_head():
    """Guard: one selection shared by all KV heads, from all 32 query heads' probabilities."""
    _, g = pruned(DECODE_4K, {"method": "kvcrush", "keep": 0.25})
    assert named(g, "kvcrush.evict_topk")[0].attrs["rows"] == 1
    assert named(g, "kvcrush.binary_signature")[0].attrs["elements"] == H * 1025
    assert all(op.attrs["kv_len"] == 1025 for op in attentions(g).values())
    _, g = pruned(DECODE_4K, {"method": "spatten", "keep": 0.25})
    imp = named(g, "spatten.importance")[0]
    assert imp.attrs["elements"] == H * 1025 and named(g, "spatten.topk")[0].attrs["rows"] == 1


@pytest.mark.parametrize("target", ["roofline", "ascend", "volta", "armv8", "spatten"])
def test_h2o_quarter_budget_reads_4x_fewer_kv_bytes_on_every_target(target):
    """Issue 12's acceptance, on TinyLlama (GQA 32/4) decoding at 4K: H2O at 25 % reads
    about 4x fewer bytes in the attention and holds a 4x smaller cache.

    By hand, per layer: dense K and V are 2 x 4 heads x 4,096 rows x 64 x 2 B =
    4,194,304 B, pruned 2 x 4 x 1,025 x 64 x 2 = 1,049,600 B (4,096 / 1,025 = 3.996x);
    the one query (32 x 64 x 2 = 4,096 B) is read either way, so the attention's reads
    fall by 4,198,400 / 1,053,696 = 3.984x (3.996x on a target that keeps Q on chip).
    The bytes held before issue 12 too (the budget shrank ``kv_len``); what was wrong is
    the selection, per query head, which the tests above hold."""
    wl = workload_from_dict({**DECODE_4K, "pruning": [{"method": "h2o", "keep": 0.25}]},
                            "<acceptance>")
    r = hwsim.simulate(wl, target, baseline=True, fidelity="analytical")
    ops, base = r.ops, r.baseline.ops
    pruned_reads = ops.loc[ops["kind"] == "attention", "dram_read_bytes"].sum()
    dense_reads = base.loc[base["kind"] == "attention", "dram_read_bytes"].sum()
    kv_dense, kv_pruned = 2 * HK * 4096 * D * FP16, 2 * HK * 1025 * D * FP16
    q = H * D * FP16
    assert (kv_dense + q) / (kv_pruned + q) * 0.999 <= dense_reads / pruned_reads <= \
        kv_dense / kv_pruned * 1.001, target
    assert pruned_reads >= LAYERS * kv_pruned  # every kept K and V row is read
    assert r.memory["kv_cache_bytes"] == LAYERS * kv_pruned
    assert r.baseline.memory["kv_cache_bytes"] == LAYERS * kv_dense


# ---------------------------------------------------------------- token methods on GQA
@pytest.mark.parametrize("method,base,step,n", [
    ("fastv", PREFILL, {"at_layer": 2, "keep": 0.5, "segment": "visual"}, 512),
    ("lazyllm", PREFILL, {"keep": 0.5, "layers": [3]}, 512),
    ("lazyllm", {"model": "tinyllama-1.1b", "phase": "decode", "seq_len": 1, "kv_len": 1023},
     {"keep": 0.5, "layers": [3]}, 1024),
])
def test_last_query_scores_read_the_key_value_heads_keys_once(method, base, step, n):
    """The 32 query heads score the keys of 4 KV heads: one product per KV head whose 8
    rows are its group's query heads, reading Q (32 x 64) and K (4 x 64 x n) in fp16,
    not 32 copies of the keys. Same FLOPs as 32 one-row products: 2 x 32 x n x 64."""
    _, g = pruned(base, {"method": method, **step})
    mm = named(g, f"{method}.last_query_scores")[0]
    assert (mm.attrs["batch"], mm.attrs["m"], mm.attrs["n"], mm.attrs["k"]) == (HK, GROUP, n, D)
    assert g.op_flops(mm) == 2 * H * n * D
    assert g.op_read_bytes(mm) == (H * D + HK * D * n) * FP16
    assert named(g, f"{method}.last_query_softmax")[0].attrs["rows"] == H


def test_hawk_projects_the_segment_keys_to_the_key_value_heads():
    _, g = pruned(PREFILL, {"method": "hawk", "keep": 0.5, "segment": "visual"})
    keys = named(g, "hawk.segment_keys")[0]
    assert (keys.attrs["m"], keys.attrs["n"], keys.attrs["k"]) == (448, HK * D, 2048)
    scores = named(g, "hawk.text_guided_scores")[0]  # 64 text queries x 32 heads
    assert (scores.attrs["batch"], scores.attrs["m"], scores.attrs["n"]) == (HK, GROUP * 64, 448)
    assert g.op_flops(scores) == 2 * H * 64 * 448 * D
    assert g.op_read_bytes(scores) == (64 * H * D + 448 * HK * D) * FP16


# ---------------------------------------------------------------- heads: whole groups
def test_head_pruning_removes_whole_groups_and_ranks_groups():
    dense, g = pruned({**PREFILL, "seq_len": 256, "segments": {}},
                      {"method": "spatten-heads", "keep": 0.5})
    att = attentions(g)
    assert (att[0].attrs["heads"], att[0].attrs["kv_heads"]) == (H, HK)  # layer 0 dense
    assert all((att[x].attrs["heads"], att[x].attrs["kv_heads"]) == (16, 2)
               for x in range(1, LAYERS))
    # SpAtten's magnitudes per query head, summed per group, top 2 of the 4 groups
    score = named(g, "spatten.group_score")[0]
    assert (score.attrs["elements"], score.attrs["out_elements"]) == (H, HK)
    topk = named(g, "spatten.head_topk")[0]
    assert (topk.attrs["rows"], topk.attrs["n"], topk.attrs["k"]) == (1, HK, 2)
    k_proj = [op for op in g.ops if op.layer == 1 and op.module.endswith("k_proj")][0]
    assert k_proj.attrs["n"] == 2 * D  # the KV heads go with their groups
    rec = g.header["pruning"][0]
    assert rec["heads_per_layer"][1:] == [16] * 21 and rec["kv_heads_per_layer"][1:] == [2] * 21


@pytest.mark.parametrize("keep,groups", [(0.3, 1), (0.4, 2), (0.75, 3), (0.125, 1)])
def test_a_head_keep_rounds_to_whole_groups(keep, groups):
    """Guard: keep x 4 groups, rounded half up, whole groups of 8 query heads."""
    _, g = pruned({**PREFILL, "seq_len": 64, "segments": {}},
                  {"method": "heads", "keep": keep, "layers": [4]})
    a = attentions(g)[4].attrs
    assert (a["heads"], a["kv_heads"]) == (groups * GROUP, groups)


def test_a_head_keep_that_rounds_to_no_group_cannot_be_honoured():
    with pytest.raises(InputError, match=r"cannot be honoured.*at least 0\.125") as e:
        pruned({**PREFILL, "seq_len": 64, "segments": {}},
               {"method": "heads", "keep": 0.1, "layers": [4]}, source="wl.yaml")
    assert "wl.yaml: pruning.0.keep: heads: keep 0.1 of layer 4's 4 groups" in str(e.value)
    assert "8 query heads share each key/value head" in str(e.value)
    with pytest.raises(InputError, match="cannot be honoured"):
        pruned({**PREFILL, "seq_len": 64, "segments": {}},
               {"method": "spatten-heads", "keep": 0.1})


def test_head_steps_compose_in_whole_groups():
    """A second head step counts groups of the dense group size (8), not heads / kv_heads
    of what the first left: 3 groups x 0.5 rounds to 2 groups, 16 heads, in the record and
    in the graph alike."""
    _, g = pruned({**PREFILL, "seq_len": 64, "segments": {}},
                  {"method": "heads", "keep": 0.75, "layers": [4]},
                  {"method": "spatten-heads", "keep": 0.5})
    a = attentions(g)[4].attrs
    assert (a["heads"], a["kv_heads"]) == (16, 2)
    assert g.header["pruning"][-1]["heads_per_layer"][4] == 16
    for layer, op in attentions(g).items():
        rec = g.header["pruning"][-1]["heads_per_layer"][layer]
        assert op.attrs["heads"] == rec and op.attrs["heads"] % op.attrs["kv_heads"] == 0


# ---------------------------------------------------------------- sparse attention
def test_sparse_attention_selects_per_query_head_over_the_groups_keys_and_keeps_kv_heads():
    """Per query head selections over the group's K, read once (no copy): top-k
    attention's scores pack each group's 8 query heads as rows; HiP's representative
    keys are a broadcast view of the cache."""
    dense, g = pruned({**DECODE_4K, "kv_len": 1023}, {"method": "topk-attention", "k": 64})
    a = attentions(g)[0]
    assert (a.attrs["heads"], a.attrs["kv_heads"], a.attrs["sparse_keys"]) == (H, HK, 64)
    scores = named(g, "topk-attention.scores")[0]
    assert (scores.attrs["batch"], scores.attrs["m"]) == (HK, GROUP)
    assert g.op_read_bytes(scores) == (H * D + HK * 1024 * D) * FP16
    assert named(g, "topk-attention.topk")[0].attrs["rows"] == H
    assert a.inputs == attentions(dense)[0].inputs  # K and V read where they lie
    _, g = pruned({**PREFILL, "seq_len": 1024, "segments": {}},
                  {"method": "hip", "k": 128, "layers": [0]})
    expand = named(g, "expand_kv")[0]
    assert expand.kind == "view" and g.tensors[expand.outputs[0]].shape == (1, H, 1024, D)
    assert attentions(g)[0].attrs["kv_heads"] == HK


def test_sparse_attention_keeps_the_window_and_selects_among_its_keys(win_prefill):
    _, g = pruned(win_prefill, {"method": "hip", "keep": 0.25, "layers": [0]},
                  {"method": "topk-attention", "keep": 0.25, "layers": [1]})
    for layer in (0, 1):
        a = attentions(g)[layer].attrs
        # a query sees 256 keys of its window: a quarter of those, not of all 512
        assert (a["window"], a["kv_heads"], a["sparse_keys"]) == (WINDOW, HK, 64)
        assert a["sparse_block"] == (32 if layer == 0 else 1)
    # HiP refines over the window's span: ceil(log2(256 / 64)) = 2 iterations
    assert len(named(g, "hip.topk")) == 2
    assert g.header["pruning"][0]["keys_per_query"] == [64]


def test_topk_attention_in_a_windowed_decode_scores_only_the_window(win_decode):
    _, g = pruned(win_decode, {"method": "topk-attention", "k": 64, "layers": [0]})
    scores = named(g, "topk-attention.scores")[0]
    assert (scores.attrs["batch"], scores.attrs["m"], scores.attrs["n"]) == (HK, GROUP, WINDOW)
    assert named(g, "topk-attention.topk")[0].attrs == {"rows": H, "n": WINDOW, "k": 64,
                                                       "pruning": "topk-attention"}
    # the window's keys: a slice of each KV head's cache (the last 256 of 1,024 rows)
    assert g.op_read_bytes(scores) == (H * D + HK * WINDOW * D) * FP16
    a = attentions(g)[0].attrs
    assert (a["window"], a["sparse_keys"], a["kv_len"]) == (WINDOW, 64, 1024)


def test_value_pruning_keeps_a_fraction_of_the_window(win_prefill):
    _, g = pruned(win_prefill, {"method": "spatten", "keep": [1.0] + [0.75] * 21,
                                "value_keep": 0.5})
    att = attentions(g)
    assert att[0].attrs["v_len"] == WINDOW // 2  # 512 keys, a query sees 256
    assert att[1].attrs["kv_len"] == 384 and att[1].attrs["v_len"] == WINDOW // 2
    assert all(a.attrs["window"] == WINDOW for a in att.values())


# ---------------------------------------------------------------- windows through token passes
TOKEN_STEPS = [
    {"method": "fastv", "at_layer": 2, "keep": 0.3, "segment": "visual"},
    {"method": "hawk", "keep": 0.3, "segment": "visual"},
    {"method": "divprune", "keep": 0.3, "segment": "visual"},
    {"method": "topv", "keep": 0.3, "segment": "visual", "iterations": 2},
    {"method": "lazyllm", "keep": 0.4},
    {"method": "spatten", "keep": 0.4},
    {"method": "zero-tprune", "keep": 0.4, "iterations": 2},
    {"method": "layer-drop", "keep": 0.75},
    {"method": "heads", "keep": 0.5},
    {"method": "quant", "tensors": {"kv": "int8"}},
]


@pytest.mark.parametrize("step", TOKEN_STEPS, ids=lambda s: s["method"])
def test_token_passes_keep_window_and_gqa_and_a_short_sequence_is_causal(win_prefill, step):
    """Guard: re-instantiated layers keep window, causal and kv_heads; a layer whose pruned
    sequence is shorter than the window executes exactly the causal triangle."""
    dense, g = pruned(win_prefill, step)
    short = 0
    for op in attentions(g).values():
        a = op.attrs
        assert (a["window"], a["causal"]) == (WINDOW, True)
        assert a["heads"] % a["kv_heads"] == 0 and a["heads"] // a["kv_heads"] == GROUP
        n = a["q_len"]
        per_score = 2 * D + 2 * D  # Q·Kᵀ and P·V per visible score
        assert executed_flops(op) == a["heads"] * per_score * visible_scores(n, n, True, WINDOW)
        if n <= WINDOW:
            short += 1
            assert executed_flops(op) == a["heads"] * per_score * n * (n + 1) // 2
    assert len(attentions(g)) == len(attentions(dense)) - len(
        g.header["pruning"][0]["dropped_layers"])
    if step["method"] not in ("layer-drop", "heads", "quant"):
        assert short > 0  # the pruned layers run on fewer tokens than the window


def test_kv_methods_keep_the_window_of_a_decode(win_decode):
    """Guard: a budget of 256 cached tokens on a window of 256: the attention reads the
    257 keys' window (256), and the window stays."""
    _, g = pruned(win_decode, {"method": "h2o", "keep": 0.25},
                  {"method": "layer-drop", "layers": [5]})
    for op in attentions(g).values():
        assert (op.attrs["window"], op.attrs["kv_len"], op.attrs["kv_heads"]) == (WINDOW, 257, HK)
        k_read = g.op_read_bytes(op) - H * D * FP16
        assert k_read == 2 * HK * WINDOW * D * FP16


def test_instantiating_layers_caps_per_query_keys_at_the_pruned_kv_len(tmp_path):
    """A template whose attention carries ``v_len``/``sparse_keys`` (and a window) keeps them
    in layers that hold fewer tokens, capped at the keys there are."""
    t = zoo.template("tinyllama-1.1b", "prefill")
    ops = [dataclasses.replace(op, attrs={**op.attrs, "window": WINDOW, "v_len": 300,
                                          "sparse_keys": 300, "sparse_block": 1})
           if op.kind == "attention" else op for op in t.ops]
    tmpl = Graph(dict(t.header), t.tensors.values(), ops)
    g = instantiate_layers(tmpl, {"batch": 1, "seq_len": 512}, {3: {"seq_len": 200}}, [5])
    assert g.verify() == []
    att = {op.layer: op.attrs for op in g.ops if op.kind == "attention"}
    assert 5 not in att
    assert (att[2]["kv_len"], att[2]["v_len"], att[2]["sparse_keys"]) == (512, 300, 300)
    assert (att[3]["kv_len"], att[3]["v_len"], att[3]["sparse_keys"]) == (200, 200, 200)
    assert all(a["window"] == WINDOW and a["kv_heads"] == HK for a in att.values())


# ---------------------------------------------------------------- physics on a GQA model
PHYSICS = {
    "spatten": ("P", {"keep": 0.5}), "fastv": ("P", {"at_layer": 2, "keep": 0.5,
                                                     "segment": "visual"}),
    "hawk": ("P", {"keep": 0.5, "segment": "visual"}),
    "divprune": ("P", {"keep": 0.5, "segment": "visual"}),
    "topv": ("P", {"keep": 0.5, "segment": "visual", "iterations": 3}),
    "lazyllm": ("D", {"keep": 0.5}), "zero-tprune": ("P", {"keep": 0.5, "iterations": 3}),
    "spatten-heads": ("P", {"keep": 0.5}), "heads": ("D", {"keep": 0.5}),
    "layer-drop": ("P", {"keep": 0.75}), "h2o": ("D", {"keep": 0.25}),
    "kvcrush": ("D", {"keep": 0.25}), "topk-attention": ("D", {"k": 64}),
    "hip": ("P", {"k": 64}), "quant": ("D", {"tensors": {"kv": "int8"}}),
    "streamingllm": ("D", {"window": 124}), "snapkv": ("P", {"tokens": 128}),
    "tome": ("P", {"r": 4}), "flap": ("D", {"keep": 0.5}),
    "minference": ("P", {"vertical": 32, "slash": 64}), "mustafar": ("D", {"keep": 0.3}),
    "deltallm": ("D", {"window": 64}),
}
# what a method keeps beside the KV cache, in bytes, on TinyLlama's decode step over 512
# keys: DeltaLLM's state per layer and query head, the last score row (fp32) and the
# query memory (fp16): 22 layers x 32 heads x (512 x 4 + 64 x 2)
STATE_BYTES = {"deltallm": 22 * 32 * (512 * 4 + 64 * 2)}


def test_every_method_is_in_the_gqa_physics():
    from hwsim.pruning import METHODS

    # `experts` prunes a mixture of experts' FFNs, which TinyLlama has not: its physics on
    # every target are held in tests/test_moe_pruning.py and tests/test_pruning_targets.py;
    # `fastervlm` reads a vision tower's [CLS] attention, which TinyLlama has not (held in
    # tests/test_pruning_new_methods.py and tests/test_pruning_targets.py on LLaVA-1.5);
    # `holitom` merges a video's frames, which TinyLlama has not (held in
    # tests/test_pruning_holitom.py and tests/test_pruning_targets.py on LLaVA-OneVision)
    assert set(PHYSICS) == {m for m in METHODS if METHODS[m].acts_on != "experts"
                            and m not in ("fastervlm", "holitom")}


@pytest.mark.parametrize("target", sorted(registry()))
def test_pruning_a_gqa_model_reads_no_more_outside_its_machinery(target):
    """Guard: every method on TinyLlama (prefill of 256 tokens with segments, decode over
    511 cached): DRAM reads outside the method's own ops never exceed the unpruned
    run's, nor does the KV cache held, but for the state a method keeps beside it
    (DeltaLLM's, exactly). With cold caches (``onchip_carry: false``): a method's ops
    between a producer and its reader may evict a tensor the unpruned run carried in
    the L2 (hwsim.onchip), so with carrying the others can rightly read more."""
    bases = {"P": {"model": "tinyllama-1.1b", "seq_len": 256,
                   "segments": {"text": [0, 32], "visual": [32, 224]}},
             "D": {"model": "tinyllama-1.1b", "phase": "decode", "seq_len": 1, "kv_len": 511}}
    for method, (base, params) in PHYSICS.items():
        wl = workload_from_dict({**bases[base], "pruning": [{"method": method, **params}],
                                 "onchip_carry": False}, "<gqa>")
        r = hwsim.simulate(wl, target, baseline=True, fidelity="analytical")
        ops = r.ops
        own = ops["pruning"].astype(str) != ""
        outside = int(ops.loc[~own, "dram_read_bytes"].sum())
        assert outside <= r.baseline.totals["dram_read_bytes"] * (1 + 1e-9), (target, method)
        state = STATE_BYTES.get(method, 0)
        assert r.memory["kv_cache_bytes"] <= r.baseline.memory["kv_cache_bytes"] + state, method
        if state:
            assert r.memory["kv_cache_bytes"] == r.baseline.memory["kv_cache_bytes"] + state
        if method not in ("heads", "layer-drop"):  # offline methods run nothing
            assert own.any(), (target, method)


# ---------------------------------------------------------------- a traced Mistral
@pytest.mark.trace
def test_a_traced_mistral_keeps_its_window_through_pruning(tmp_path, monkeypatch):
    """A small Mistral (sliding window 8, 4 query heads over 2 KV heads) traced on the meta
    device at a 2x2 grid, fitted into a template and pruned."""
    pytest.importorskip("transformers")
    tmpl, _ = tiny_mistral(tmp_path, monkeypatch, "pruning12_tiny_mistral", layers=4, window=8,
                           max_positions=128, seqs=(16, 32))
    path = tmp_path / "tiny-mistral.prefill.json.gz"
    save(tmpl, path)
    base = {"trace": str(path), "seq_len": 40}
    for step in ({"method": "spatten", "keep": 0.5}, {"method": "layer-drop", "layers": [2]},
                 {"method": "heads", "keep": 0.5}, {"method": "hip", "k": 4, "block": 4}):
        _, g = pruned(base, step)
        att = attentions(g)
        assert att and all(op.attrs["window"] == 8 for op in att.values()), step
        assert all(op.attrs["heads"] // op.attrs["kv_heads"] == 2 for op in att.values())
    _, g = pruned(base, {"method": "spatten", "keep": 0.1})
    assert min(op.attrs["kv_len"] for op in attentions(g).values()) < 8  # shorter: causal
