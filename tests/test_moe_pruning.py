"""Pruning method ``experts``: dropped experts leave the model, reduced top-k runs fewer.

Sizes are those of tests/test_moe_model.py: 16 tokens, hidden 64, ffn 128, 8
experts, top-2, fp16, two layers."""

from __future__ import annotations

import pytest
from physics import violations
from test_moe_model import BYTES, HD, HEADS, E, F, H, K, T, moe_workload

import hwsim
from hwsim.errors import InputError
from hwsim.ir.kinds import flops
from hwsim.simulate import prepare
from hwsim.workload import workload_from_dict

EXPERT_BYTES = 3 * F * H * BYTES
EXPERT_ROW_FLOPS = 2 * H * 2 * F + 2 * F * H + 3 * F  # one routed row through one expert
OTHER_PARAMS = (H * HEADS * HD + HEADS * HD * H + E * H) * BYTES  # per layer: q, o, router


def _graphs(tmp_path, steps, routing=None, **kw):
    data = {**moe_workload(tmp_path, **kw), "pruning": steps}
    if routing:
        data["routing"] = routing
    return prepare(workload_from_dict(data, "w.yaml"), split=False)


def _experts(g, layer):
    return {op.attrs["note"].split()[1]: op.attrs["m"] for op in g.ops
            if op.layer == layer and op.kind == "matmul" and op.name.endswith(".up")}


def _moe_flops(g, layer):
    return sum(flops(op) for op in g.ops if op.layer == layer
               and op.module.endswith("mlp.experts"))


def test_drop_removes_the_weights_and_keeps_the_flops(tmp_path):
    g, dense = _graphs(tmp_path, [{"method": "experts", "drop": 2}])
    # balanced: every share equal, so the last ids go; 32 rows over 6 experts: 6,6,5,5,5,5
    assert _experts(g, 0) == {"0": 6, "1": 6, "2": 5, "3": 5, "4": 5, "5": 5}
    assert g.param_bytes() == dense.param_bytes() - 2 * 2 * EXPERT_BYTES
    assert g.param_bytes() == 2 * (OTHER_PARAMS + 6 * EXPERT_BYTES)
    # every token still runs 2 experts: the FLOPs do not change
    assert _moe_flops(g, 0) == _moe_flops(dense, 0) == T * K * EXPERT_ROW_FLOPS + 2 * T * K * H
    assert g.verify() == []
    rec = g.header["pruning"][0]
    assert rec["experts_per_layer"] == [6, 6]
    assert rec["kept_experts"] == {"0": [0, 1, 2, 3, 4, 5], "1": [0, 1, 2, 3, 4, 5]}


def test_frequency_drops_the_least_routed(tmp_path):
    hist = [5, 1, 4, 2, 8, 3, 7, 6]
    g, _ = _graphs(tmp_path, [{"method": "experts", "keep": 0.5}],
                   {"mode": "histogram", "shares": hist})
    # keep half: experts 4, 6, 7, 0 (shares 8, 7, 6, 5); their shares renormalized over
    # 26: 32 rows -> 9.85, 8.62, 7.38, 6.15 -> 10, 9, 7, 6 (largest remainders)
    assert _experts(g, 0) == {"0": 6, "4": 10, "6": 9, "7": 7}


def test_explicit_experts_are_dropped_per_layer(tmp_path):
    g, dense = _graphs(tmp_path, [{"method": "experts", "experts": {1: [0, 3, 5]}}])
    assert set(_experts(g, 0)) == {str(e) for e in range(E)}
    assert set(_experts(g, 1)) == {"1", "2", "4", "6", "7"}
    assert g.param_bytes() == dense.param_bytes() - 3 * EXPERT_BYTES


def test_top_k_1_halves_the_expert_flops_and_rows(tmp_path):
    g, dense = _graphs(tmp_path, [{"method": "experts", "top_k": 1}])
    assert _experts(g, 0) == {str(e): 2 for e in range(E)}  # 16 rows over 8 experts
    assert _moe_flops(g, 0) == T * 1 * EXPERT_ROW_FLOPS + 2 * T * 1 * H
    assert g.param_bytes() == dense.param_bytes()  # nothing leaves the model
    # per layer list: layer 0 keeps top-2, layer 1 runs top-1
    g, _ = _graphs(tmp_path, [{"method": "experts", "top_k": [2, 1]}])
    assert _moe_flops(g, 0) == T * 2 * EXPERT_ROW_FLOPS + 2 * T * 2 * H
    assert _moe_flops(g, 1) == T * 1 * EXPERT_ROW_FLOPS + 2 * T * 1 * H


def test_decode_top_k_1_reads_one_expert(tmp_path):
    data = {**moe_workload(tmp_path, tokens=1, phase="decode", kv_len=31, layers=1),
            "pruning": [{"method": "experts", "top_k": 1}]}
    r = hwsim.simulate(workload_from_dict(data, "w.yaml"), "roofline")
    gemms = r.ops[(r.ops["kind"] == "matmul") & r.ops["module"].str.endswith("experts")]
    assert int(gemms["dram_read_bytes"].sum()) == EXPERT_BYTES + (H + F) * BYTES
    assert violations(r) == []


def test_drop_and_top_k_compose(tmp_path):
    g, dense = _graphs(tmp_path, [{"method": "experts", "drop": 4, "layers": [0]},
                                  {"method": "experts", "top_k": 1, "layers": [0]}])
    assert _experts(g, 0) == {str(e): 4 for e in range(4)}
    assert _experts(g, 1) == {str(e): 4 for e in range(E)}
    assert g.param_bytes() == dense.param_bytes() - 4 * EXPERT_BYTES
    assert _moe_flops(g, 0) == T * EXPERT_ROW_FLOPS + 2 * T * H


@pytest.mark.parametrize("target", ["roofline", "volta", "ascend", "armv8", "spatten"])
def test_pruned_moe_runs_on_every_target(tmp_path, target):
    data = {**moe_workload(tmp_path, tokens=64, hidden=256, ffn=512),
            "pruning": [{"method": "experts", "drop": 2, "top_k": 1}]}
    wl = workload_from_dict(data, "w.yaml")
    r = hwsim.simulate(wl, target, baseline=True)
    assert violations(r) == [] and violations(r.baseline) == []
    assert r.totals["flops"] < r.baseline.totals["flops"]
    assert r.memory["weights_bytes"] < r.baseline.memory["weights_bytes"]
    assert r.pruning["overhead"]["ops"] == 0  # offline: no machinery


@pytest.mark.parametrize("step, field, message", [
    ({"drop": 0}, "pruning.0.drop", "must be a positive integer, got 0"),
    ({"drop": 2, "keep": 0.5}, "pruning.0.keep", "give one of drop, keep or experts"),
    ({"drop": 1, "by": "weight"}, "pruning.0.by", "expected frequency, got 'weight'"),
    ({"experts": {0: [1, 1]}}, "pruning.0.experts", "expected {layer: [distinct expert ids]}"),
    ({"top_k": 0}, "pruning.0.top_k", "must be a positive integer or a list of them, got 0"),
    ({}, "pruning.0.drop", "missing: experts needs one of drop, keep, experts, top_k"),
])
def test_bad_parameters_at_load(step, field, message):
    with pytest.raises(InputError) as e:
        workload_from_dict({"model": "gpt2", "pruning": [{"method": "experts", **step}]},
                           "w.yaml")
    assert f"w.yaml: {field}: {message}" in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("step, field, message", [
    ({"drop": 8}, "pruning.0.drop", "experts: layer 0 has 8 experts: dropping 8 leaves none"),
    ({"drop": 7}, "pruning.0.drop", "experts: layer 0 would keep 1 experts, fewer than the 2 "
                                    "each token runs"),
    ({"top_k": 3}, "pruning.0.top_k",
     "experts: layer 0's router picks top-2: a token cannot run 3"),
    ({"experts": {0: [9]}}, "pruning.0.experts.0", "experts: layer 0 has no expert 9 to drop"),
    ({"experts": {5: [1]}}, "pruning.0.experts.5", "experts: layer 5 has no mixture of experts"),
    # the load-time rules, run again against the graph's layers
    ({"top_k": [1, 1, 1]}, "pruning.0.top_k", "has 3 entries, the model has 2 layers"),
    ({"drop": 1, "layers": [4]}, "pruning.0.layers", "has a layer outside 0..1: [4]"),
])
def test_bad_parameters_against_the_graph(tmp_path, step, field, message):
    with pytest.raises(InputError) as e:
        _graphs(tmp_path, [{"method": "experts", **step}])
    assert f"w.yaml: {field}: {message}" in str(e.value)
    assert "\n" not in str(e.value)


def test_a_model_without_experts_is_told_so(tmp_path):
    wl = workload_from_dict({"model": "gpt2", "seq_len": 16,
                             "pruning": [{"method": "experts", "drop": 1}]}, "w.yaml")
    with pytest.raises(InputError, match="no mixture-of-experts layers"):
        prepare(wl)
