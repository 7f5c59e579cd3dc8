"""DeltaLLM (Qi et al., arXiv 2507.19608): full attention in a local window of w keys and,
outside it, each score row updated from the previous one by the thresholded delta of the
query (issue 19 point 2, the temporal-delta attention for edge prefill and decode).

docs/pruning.md states the cost per head: the delta formed, thresholded, the memory
updated and the kept components compacted (O(q d) each), the sparse product (q x o x d'),
the accumulation and the softmax outside the window (O(q o)), the values outside it
(q x o x d_v), the merge (O(q d_v)) and the state written (o + d); here n is doubled and
every op must grow as stated, sparsity 0 must do the dense attention's work, a window
over every key must leave the attention dense, and the state must be held exactly.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pruning_util import method_ops, pruned

import hwsim
from hwsim import accuracy
from hwsim.capacity import footprint
from hwsim.errors import InputError
from hwsim.pruning import apply
from hwsim.workload import build_graph, load_workload, workload_from_dict

ROOT = Path(__file__).resolve().parents[1]
LAYER = 3
# TinyLlama-1.1B: 32 query heads over 4 key/value heads of 64, 22 layers
H, HK, D, L = 32, 4, 64, 22
G = H // HK


def _one(g, name: str):
    (op,) = [op for op in g.ops if op.layer == LAYER and op.name == name]
    return op


def _attention_flops(g) -> int:
    return sum(g.op_flops(op) for op in g.ops if op.layer == LAYER and op.kind == "attention")


def _layer_ops(g, n, phase, step):
    base = ({"model": "tinyllama-1.1b", "seq_len": n} if phase == "prefill" else
            {"model": "tinyllama-1.1b", "phase": "decode", "seq_len": 1, "kv_len": n - 1})
    return pruned(base, {"method": "deltallm", "layers": [LAYER], **step})


def _sizes(g, q, n, w, dz):
    """Each machinery op's size as the docstring's table states it, checked; its FLOPs."""
    o = n - w
    att = _one(g, "window_attention")
    assert (att.attrs["window"], att.attrs["sparse_keys"], att.attrs["sparse_block"]) == \
        (w, w, 1)
    for name in ("deltallm.delta_form", "deltallm.delta_threshold", "deltallm.delta_memory"):
        assert _one(g, name).attrs["elements"] == H * q * D
    assert _one(g, "deltallm.delta_compact").attrs["elements"] == H * q * dz
    s = _one(g, "deltallm.delta_scores").attrs
    assert (s["batch"], s["m"], s["n"], s["k"]) == (HK, G * q, o, dz)
    assert _one(g, "deltallm.delta_accumulate").attrs["elements"] == H * q * o
    sm = _one(g, "deltallm.delta_softmax").attrs
    assert (sm["rows"], sm["cols"]) == (H * q, o)
    v = _one(g, "deltallm.delta_values").attrs
    assert (v["batch"], v["m"], v["n"], v["k"]) == (HK, G * q, D, o)
    assert _one(g, "deltallm.delta_merge").attrs["elements"] == H * q * D
    assert _one(g, "deltallm.store_scores").attrs["elements"] == H * o
    assert _one(g, "deltallm.store_memory").attrs["elements"] == H * D
    mine = [op for op in method_ops(g, "deltallm") if op.layer == LAYER]
    assert len(mine) == 11  # the table's ops, nothing else marked as the method's
    assert all(g.op_flops(op) > 0 for op in mine if op.kind not in ("gather", "kv_write"))
    return {op.name: (g.op_flops(op), op.attrs.get("elements", 0)) for op in mine}


def test_prefill_machinery_grows_as_documented_when_the_prompt_doubles():
    cost = {}
    for n in (512, 1024):
        _, g = _layer_ops(n, n, "prefill", {"window": 64, "sparsity": 0.6})
        cost[n] = _sizes(g, n, n, 64, 26)  # ceil(0.4 x 64) = 26 components
    quad = (1024 * (1024 - 64)) / (512 * (512 - 64))  # q x o
    for name in ("deltallm.delta_form", "deltallm.delta_threshold", "deltallm.delta_memory",
                 "deltallm.delta_merge"):  # O(q d)
        assert cost[1024][name][0] == 2 * cost[512][name][0]
    assert cost[1024]["deltallm.delta_compact"][1] == 2 * cost[512]["deltallm.delta_compact"][1]
    for name in ("deltallm.delta_scores", "deltallm.delta_accumulate",
                 "deltallm.delta_softmax", "deltallm.delta_values"):  # O(q o)
        assert cost[1024][name][0] / cost[512][name][0] == pytest.approx(quad, rel=1e-12)
    assert cost[1024]["deltallm.delta_scores"][0] == 2 * H * 1024 * 960 * 26
    # the state written: the last row's o scores and the memory's d values
    assert cost[1024]["deltallm.store_scores"][1] == H * 960
    assert cost[1024]["deltallm.store_memory"][1] == cost[512]["deltallm.store_memory"][1]


def test_decode_machinery_grows_with_the_keys_outside_the_window():
    cost = {}
    for n in (512, 1024):
        _, g = _layer_ops(n, n, "decode", {"window": 64, "sparsity": 0.57})
        cost[n] = _sizes(g, 1, n, 64, 28)  # ceil(0.43 x 64) = 28
        # the previous call's state is read from memory: the last row and the memory
        state = [g.tensors[i] for op in method_ops(g, "deltallm") if op.layer == LAYER
                 for i in op.inputs if g.tensors[i].kind == "kv_cache"]
        assert {(t.shape, t.dtype) for t in state} == {((1, H, n), "fp32"), ((1, H, D), "fp16")}
    lin = (1024 - 64) / (512 - 64)
    for name in ("deltallm.delta_form", "deltallm.delta_threshold", "deltallm.delta_memory",
                 "deltallm.delta_merge"):  # one query: O(d), whatever the context
        assert cost[1024][name] == cost[512][name]
    for name in ("deltallm.delta_scores", "deltallm.delta_accumulate",
                 "deltallm.delta_softmax", "deltallm.delta_values"):  # O(o)
        assert cost[1024][name][0] / cost[512][name][0] == pytest.approx(lin, rel=1e-12)
    assert cost[1024]["deltallm.store_scores"][1] / cost[512]["deltallm.store_scores"][1] == \
        pytest.approx(lin)


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_sparsity_zero_does_the_dense_attention_work_and_sparsity_saves_the_score_product(
        phase):
    dense, g0 = _layer_ops(512, 512, phase, {"window": 64, "sparsity": 0.0})
    q = 512 if phase == "prefill" else 1
    dense_att = 2 * H * q * 512 * (D + D)
    assert _attention_flops(dense) == dense_att
    work = (_attention_flops(g0) + g0.op_flops(_one(g0, "deltallm.delta_scores"))
            + g0.op_flops(_one(g0, "deltallm.delta_values")))
    assert work == dense_att  # the window's keys, the delta over all d, the values
    assert _one(g0, "deltallm.delta_scores").attrs["k"] == D
    _, g6 = _layer_ops(512, 512, phase, {"window": 64, "sparsity": 0.6})
    s0, s6 = (g.op_flops(_one(g, "deltallm.delta_scores")) for g in (g0, g6))
    assert s6 / s0 == pytest.approx(math.ceil(0.4 * D) / D)  # (1 - s) of the product


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_a_window_over_every_key_leaves_the_attention_dense(phase):
    dense, g = _layer_ops(512, 512, phase, {"window": 512})
    assert not method_ops(g, "deltallm")
    assert [op.attrs for op in g.ops if op.kind == "attention"] == \
        [op.attrs for op in dense.ops if op.kind == "attention"]
    assert g.flops() == dense.flops()
    assert g.header["pruning"][0]["dense_layers"] == [LAYER]


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_the_state_is_held_beside_the_kv_cache_exactly(phase):
    """Memory-aware: per layer and query head, the last score row (n fp32 values) and the
    query memory (d fp16 values) stay for the next query."""
    base = ({"model": "tinyllama-1.1b", "seq_len": 512} if phase == "prefill" else
            {"model": "tinyllama-1.1b", "phase": "decode", "seq_len": 1, "kv_len": 511})
    dense, g = pruned(base, {"method": "deltallm"})
    extra = footprint(g).kv_cache_bytes - footprint(dense).kv_cache_bytes
    assert extra == L * H * (512 * 4 + D * 2)


def test_shipped_workloads_follow_the_abstract_and_save_attention_flops():
    for name, sparsity, dz in (("llama3.2-1b-prefill-deltallm", 0.6, 26),
                               ("llama3.2-1b-decode-deltallm", 0.57, 28)):
        wl = load_workload(ROOT / "workloads" / f"{name}.yaml")
        dense = build_graph(wl)
        g = apply(dense, wl.pruning, wl.source)
        assert g.verify() == []
        rec = g.header["pruning"][0]
        assert (rec["sparsity"], rec["window"], rec["delta_components"]) == (sparsity, 64, [dz])
        assert rec["keys_outside_window"] == [448] and rec["dense_layers"] == []
        assert rec["sparse_layers"] == list(range(16))
        # every layer: the window's attention over 64 keys, the rest by the delta
        att = [op for op in g.ops if op.kind == "attention"]
        assert len(att) == 16 and all(op.attrs["sparse_keys"] == 64 for op in att)
        assert g.flops() < dense.flops()


def test_generation_runs_the_delta_in_the_prefill_and_every_step():
    wl = workload_from_dict({"model": "tinyllama-1.1b", "phase": "generate", "seq_len": 256,
                             "new_tokens": 2, "pruning": [{"method": "deltallm"}]})
    r = hwsim.simulate(wl, "roofline", fidelity="analytical")
    assert r.pruning["overhead"]["ops"] > 0
    assert set(r.pruning["overhead"]["by_method"]) == {"deltallm"}


@pytest.mark.parametrize("step, match", [
    ({"sparsity": 1.0}, r"pruning\.0\.sparsity: must be a fraction in \[0, 1\)"),
    ({"sparsity": -0.1}, r"pruning\.0\.sparsity: must be a fraction in \[0, 1\)"),
    ({"window": 0}, r"pruning\.0\.window: must be a positive integer"),
    ({"threshold": 0.1}, r"pruning\.0\.threshold: unknown parameter of deltallm"),
])
def test_bad_parameters_are_errors_at_load(step, match):
    with pytest.raises(InputError, match=match):
        workload_from_dict({"model": "gpt2", "seq_len": 128,
                            "pruning": [{"method": "deltallm", **step}]})


def test_an_encoder_is_refused():
    with pytest.raises(InputError, match="a causal decoder's") as e:
        pruned({"model": "minilm-l6", "seq_len": 128}, {"method": "deltallm"})
    assert "\n" not in str(e.value)


def test_the_abstracts_squad_v2_number_is_shipped_with_its_setting():
    row = accuracy.published_quality(
        "deltallm", "bitnet-b1.58-2b-4t",
        {"keep": 1.0, "sparsity": 0.57, "stages": "prefill+decode"}, "squad_v2")
    assert row is not None and (row.score, row.dense_score) == (30.97, 29.63)
    assert "2507.19608" in row.source and "bstract" in row.locator
    # the prefill-only 60 % has no number in the abstract: no row, never interpolated
    assert accuracy.published_quality(
        "deltallm", "bitnet-b1.58-2b-4t",
        {"keep": 1.0, "sparsity": 0.6, "stages": "prefill"}, "squad_v2") is None


def test_a_llama_workloads_report_says_the_data_has_no_row_for_its_model():
    r = hwsim.simulate(ROOT / "workloads" / "llama3.2-1b-decode-deltallm.yaml", "roofline",
                       fidelity="analytical")
    q = accuracy.for_graph(r.graph.header)
    assert q["rows"] == []
    assert q["note"] == ("no published quality for deltallm on llama-3.2-1b: the shipped data "
                         "has none for this method and model")
