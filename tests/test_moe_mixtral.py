"""Mixtral-8x7B's shipped template through routing, expansion and expert pruning.

Config values (Hugging Face mistralai/Mixtral-8x7B-v0.1, config.json):
hidden_size 4096, intermediate_size 14336, num_hidden_layers 32,
num_local_experts 8, num_experts_per_tok 2; fp16 weights (2 bytes)."""

from __future__ import annotations

import pytest
from physics import violations

import hwsim
from hwsim import zoo
from hwsim.simulate import prepare
from hwsim.workload import workload_from_dict

pytestmark = pytest.mark.skipif(not zoo.in_zoo("mixtral-8x7b"),
                                reason="Mixtral-8x7B is not in the zoo")

HIDDEN, FFN, LAYERS, EXPERTS, TOP_K = 4096, 14336, 32, 8, 2
EXPERT_BYTES = 3 * HIDDEN * FFN * 2  # w1 (gate), w3 (up), w2 (down) in fp16
GIB = 2**30


def _wl(**kw):
    return workload_from_dict({"model": "mixtral-8x7b", **kw}, "mixtral.yaml")


def _expert_gemms(g):
    return [op for op in g.ops if op.kind == "matmul" and op.module.endswith("experts")]


def test_expanded_prefill_gemm_flops_equal_the_hand_count():
    g, _ = prepare(_wl(seq_len=2048, routing={"mode": "skew", "alpha": 1.2}))
    # every token's 2 experts: up (hidden -> 2·ffn) and down (ffn -> hidden), per layer
    per_layer = 2048 * TOP_K * (2 * HIDDEN * 2 * FFN + 2 * FFN * HIDDEN)
    assert sum(g.op_flops(op) for op in _expert_gemms(g)) == LAYERS * per_layer
    rows = g.header["moe"]["tokens_per_expert"]
    assert len(rows) == LAYERS
    assert all(sum(c.values()) == 2048 * TOP_K and max(c.values()) <= 2048
               for c in rows.values())
    # Zipf 1.2 over 8: expert 0 gets 1 / (1 + 2^-1.2 + ... + 8^-1.2) = 1 / 2.3330 = 0.4286
    # of the 4,096 rows: 1,755.67, rounded up by the largest remainder
    assert rows["0"]["0"] == 1756


def test_decode_reads_two_experts_per_layer_and_holds_eight():
    r = hwsim.simulate(_wl(phase="decode", seq_len=1, kv_len=4095), "roofline",
                       sets=["target.dram_bytes=1e12"])
    gemms = r.ops[(r.ops["kind"] == "matmul") & r.ops["module"].str.endswith("experts")]
    acts = LAYERS * TOP_K * (HIDDEN + FFN) * 2  # the token's rows each expert GEMM reads
    assert int(gemms["dram_read_bytes"].sum()) == LAYERS * TOP_K * EXPERT_BYTES + acts
    assert r.memory["weights_bytes"] >= LAYERS * EXPERTS * EXPERT_BYTES
    assert violations(r) == []


def test_pruning_two_experts_fits_one_80gb_gpu():
    """Lu et al. 2024 (arXiv 2402.14800): Mixtral-8x7B pruned to 6 experts per layer
    loads on one 80 GB GPU; the dense model does not. 2 x 32 experts of 3 x 4096 x
    14336 fp16 weights leave: 21.0 GiB."""
    cap = ["target.dram_bytes=85899345920"]  # 80 GiB (an A100 80GB's 81,920 MiB)
    with pytest.raises(hwsim.InputError, match="does not fit"):
        hwsim.simulate(_wl(seq_len=512), "roofline", sets=cap)
    dense = hwsim.simulate(_wl(seq_len=512), "roofline", sets=["target.dram_bytes=1e12"])
    pruned = hwsim.simulate(_wl(seq_len=512, pruning=[{"method": "experts", "drop": 2}]),
                            "roofline", sets=cap)
    saved = dense.memory["weights_bytes"] - pruned.memory["weights_bytes"]
    assert saved == LAYERS * 2 * EXPERT_BYTES
    assert saved / GIB == pytest.approx(21.0)
    assert pruned.totals["flops"] == dense.totals["flops"]  # every token still runs 2


def test_top_1_decode_reads_one_expert_per_layer():
    r = hwsim.simulate(_wl(phase="decode", seq_len=1, kv_len=1023,
                           pruning=[{"method": "experts", "top_k": 1}]), "roofline",
                       sets=["target.dram_bytes=1e12"])
    gemms = r.ops[(r.ops["kind"] == "matmul") & r.ops["module"].str.endswith("experts")]
    assert int(gemms["dram_read_bytes"].sum()) == LAYERS * (EXPERT_BYTES
                                                            + (HIDDEN + FFN) * 2)


def test_tensor_parallel_mixtral_shards_experts_over_4_devices():
    g, _ = prepare(_wl(seq_len=256, devices=4))
    assert g.verify() == []
    ups = [op for op in _expert_gemms(g) if op.name.endswith(".up")]
    assert {op.attrs["n"] for op in ups} == {2 * FFN // 4}
    routers = [op for op in g.ops if op.kind == "matmul" and op.module.endswith("mlp.gate")]
    assert {op.attrs["n"] for op in routers} == {EXPERTS}
    expert_params = sum(t.bytes for t in g.tensors.values()
                        if t.kind == "param" and len(t.shape) == 3 and t.shape[0] == EXPERTS)
    assert expert_params == LAYERS * EXPERTS * EXPERT_BYTES // 4
