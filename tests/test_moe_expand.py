"""Expanding moe_experts into permute / per-expert GEMMs / combine, and costing it.

Sizes are those of tests/test_moe_model.py: 16 tokens, hidden 64, ffn 128, 8
experts, top-2, fp16, two layers (attention + MoE)."""

from __future__ import annotations

import pytest
from physics import violations
from test_moe_model import BYTES, HD, HEADS, E, F, H, K, T, moe_workload, tiny_moe

import hwsim
from hwsim.ir.kinds import FN_FLOPS, flops, read_bytes
from hwsim.moe import expand
from hwsim.simulate import prepare
from hwsim.targets import registry
from hwsim.workload import workload_from_dict

EXPERT_BYTES = 3 * F * H * BYTES  # gate, up and down projections of one expert
TARGETS = sorted(registry())
CAPACITY = {"roofline": "dram_bytes", "ascend": "dram_bytes", "volta": "dram_bytes",
            "armv8": None, "spatten": "dram_bytes"}


def _wl(tmp_path, routing=None, **kw):
    data = moe_workload(tmp_path, **kw)
    if routing:
        data["routing"] = routing
    return workload_from_dict(data, str(tmp_path / "w.yaml"))


def _moe_ops(g, layer=0):
    return [op for op in g.ops if op.layer == layer and op.module.endswith("mlp.experts")]


def test_expansion_is_the_grouped_gemm_kernel_sequence():
    g = expand(tiny_moe(layers=1))
    assert g.verify() == []
    ops = _moe_ops(g)
    kinds = [op.kind for op in ops]
    # permute, then per expert: rows view, w_in view, up GEMM, SwiGLU, w_out view, down GEMM
    assert kinds == ["gather"] + ["view", "view", "matmul", "elementwise", "view",
                                  "matmul"] * E + ["elementwise", "reduce"]
    assert [op.name for op in ops[:8]] == [
        "experts.permute", "experts.e0.rows", "experts.e0.w_in", "experts.e0.up",
        "experts.e0.act", "experts.e0.w_out", "experts.e0.down", "experts.e1.rows"]
    assert all(op.layer == 0 and op.module == "model.layers.0.mlp.experts" for op in ops)
    ups = [op for op in ops if op.name.endswith(".up")]
    # balanced: 32 rows, 4 per expert; each GEMM [4, 64] x [64, 256]
    assert [(op.attrs["m"], op.attrs["n"], op.attrs["k"]) for op in ups] == [(4, 2 * F, H)] * E
    assert [op.attrs["note"] for op in ups] == [f"expert {e}" for e in range(E)]
    # the combine writes the op's own output tensor, so later ops read it unchanged
    moe = next(op for op in tiny_moe(layers=1).ops if op.kind == "moe_experts")
    assert ops[-1].outputs == moe.outputs
    assert g.header["moe"]["tokens_per_expert"] == {"0": {str(e): 4 for e in range(E)}}


def test_expanded_flops_are_the_ops_plus_the_combine():
    dense = tiny_moe()
    g = expand(dense)
    moe_flops = T * K * (2 * H * 2 * F + 2 * F * H + FN_FLOPS["swiglu"] * F)
    combine = 2 * T * K * H  # routing-weight mul, then the sum over top-2
    assert g.flops() == dense.flops() + 2 * combine
    for layer in (0, 1):
        ops = _moe_ops(g, layer)
        assert sum(flops(op) for op in ops) == moe_flops + combine
        gemm = sum(flops(op) for op in ops if op.kind == "matmul")
        assert gemm == T * K * (2 * H * 2 * F + 2 * F * H) == 32 * 49152


def test_each_expert_gemm_reads_only_its_own_weights():
    """A view of one expert's slice is charged the slice (Graph.stored_bytes)."""
    g = expand(tiny_moe(layers=1))
    for op in g.ops:
        if op.kind == "matmul" and op.name.endswith(".up"):
            n = op.attrs["m"]
            assert read_bytes(op, g) == n * H * BYTES + 2 * F * H * BYTES
        if op.kind == "matmul" and op.name.endswith(".down"):
            n = op.attrs["m"]
            assert read_bytes(op, g) == n * F * BYTES + H * F * BYTES


def test_decode_one_token_top2_reads_exactly_two_experts(tmp_path):
    wl = _wl(tmp_path, tokens=1, phase="decode", kv_len=31, layers=1)
    r = hwsim.simulate(wl, "roofline")
    ops = r.ops[r.ops["module"] == "model.layers.0.mlp.experts"]
    gemms = ops[ops["kind"] == "matmul"]
    assert len(gemms) == 2 * 2  # two experts, up and down
    # weights of two experts, plus what each expert's GEMMs read of the token: its hidden
    # row (up) and its activated ffn row (down)
    acts = 2 * (H + F) * BYTES
    assert int(gemms["dram_read_bytes"].sum()) == 2 * EXPERT_BYTES + acts
    # ... while memory holds all 8 experts, the router and the attention weights
    layer = (H * HEADS * HD + HEADS * HD * H + E * H) * BYTES + E * EXPERT_BYTES
    assert r.memory["weights_bytes"] == layer


def test_capacity_counts_every_expert_once(tmp_path):
    """Views of the expert weights hold nothing: two layers of 8 experts, counted once."""
    g, _ = prepare(_wl(tmp_path))
    per_layer = (H * HEADS * HD + HEADS * HD * H + E * H) * BYTES + E * EXPERT_BYTES
    assert g.param_bytes() == 2 * per_layer
    r = hwsim.simulate(_wl(tmp_path), "volta")
    assert r.memory["weights_bytes"] == 2 * per_layer


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_every_target_costs_an_expanded_moe_layer(tmp_path, target, phase):
    kw = dict(tokens=64, hidden=256, ffn=512) if phase == "prefill" else dict(
        tokens=1, phase="decode", kv_len=127, hidden=256, ffn=512)
    for routing in (None, {"mode": "skew", "alpha": 1.2}):
        r = hwsim.simulate(_wl(tmp_path, routing, **kw), target)
        assert violations(r) == []
        ops = r.ops[r.ops["module"].str.endswith("mlp.experts")]
        costed = ops[ops["kind"] != "view"]
        assert (costed["latency_s"] > 0).all()
        assert r.totals["latency_s"] > 0
        # every routed row is computed: the GEMMs' FLOPs are the hand count
        rows = kw["tokens"] * K
        gemm = ops[ops["kind"] == "matmul"]["flops"].sum()
        assert gemm == 2 * rows * (2 * 256 * 2 * 512 + 2 * 512 * 256)


def test_skew_costs_at_least_balanced_on_the_roofline(tmp_path):
    """With every expert active, each expert op's roofline time is max(compute, memory)
    of affine functions of its rows: convex and symmetric in the per-expert counts, so
    the balanced split is the minimum (Jensen). Other targets quantize rows into tiles
    and cores, which is not convex: a skew can even pack better (see docs/workloads.md)."""
    kw = dict(tokens=256, hidden=1024, ffn=2048, layers=1)
    bal = hwsim.simulate(_wl(tmp_path, **kw), "roofline").totals["latency_s"]
    for alpha in (0.5, 1.2, 2.0):
        skew = hwsim.simulate(_wl(tmp_path, {"mode": "skew", "alpha": alpha}, **kw),
                              "roofline").totals["latency_s"]
        assert skew >= bal * (1 - 1e-12), alpha


@pytest.mark.parametrize("target", ["volta", "ascend", "roofline", "armv8", "spatten"])
def test_the_most_loaded_expert_costs_at_least_a_balanced_one(tmp_path, target):
    """What every target guarantees: a GEMM on more rows of the same weights takes no
    less time, so the skewed layer's largest expert takes at least as long as any
    expert of the balanced layer (and it is the op a per-layer report shows on top)."""
    kw = dict(tokens=256, hidden=512, ffn=1024, layers=1)
    lat = {}
    for name, routing in (("balanced", None), ("skew", {"mode": "skew", "alpha": 1.2})):
        r = hwsim.simulate(_wl(tmp_path, routing, **kw), target)
        ups = r.ops[r.ops["name"].str.endswith(".up")]
        lat[name] = dict(zip(ups["name"], ups["latency_s"]))
    assert len(lat["skew"]) == len(lat["balanced"]) == E
    assert lat["skew"]["experts.e0.up"] >= max(lat["balanced"].values())
    assert lat["skew"]["experts.e0.up"] == max(lat["skew"].values())


def test_tensor_parallel_experts_shard_ffn_and_all_reduce(tmp_path):
    data = {**moe_workload(tmp_path), "devices": 2}
    wl = workload_from_dict(data, "w.yaml")
    g, _ = prepare(wl)
    whole_model, _ = prepare(wl, split=False)
    assert g.verify() == []
    gate = next(op for op in g.ops if op.module == "model.layers.0.mlp.gate"
                and op.kind == "matmul")
    assert gate.attrs["n"] == E  # the router stays replicated
    ups = [op for op in _moe_ops(g) if op.name.endswith(".up")]
    downs = [op for op in _moe_ops(g) if op.name.endswith(".down")]
    assert {(op.attrs["m"], op.attrs["n"], op.attrs["k"]) for op in ups} == {(4, F, H)}
    assert {(op.attrs["m"], op.attrs["n"], op.attrs["k"]) for op in downs} == {(4, H, F // 2)}
    # the combine's output is a partial sum: all-reduced like a dense MLP's down projection
    names = [op.name for op in g.ops if op.layer == 0]
    combine = names.index("experts.combine")
    assert g.ops[[op.id for op in g.ops if op.layer == 0][combine + 1]].kind == "allreduce"
    # one device holds half of every expert and half of the attention, all of the router
    per_layer = (H * HEADS * HD // 2 + HEADS * HD * H // 2 + E * H) * BYTES \
        + E * EXPERT_BYTES // 2
    assert g.param_bytes() == 2 * per_layer
    # the GEMMs of one device are half of the whole model's
    whole = sum(flops(op) for op in whole_model.ops if op.kind == "matmul"
                and op.module.endswith("mlp.experts"))
    mine = sum(flops(op) for op in g.ops if op.kind == "matmul"
               and op.module.endswith("mlp.experts"))
    assert 2 * mine == whole
    r = hwsim.simulate(wl, "volta")
    assert violations(r) == []
