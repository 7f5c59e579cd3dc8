"""Issue 12's acceptance on the model it names: H2O with a 25 % budget on Llama-3.1-8B
decode reads about 4x fewer KV bytes on every target.

Llama-3.1-8B (config.json: 32 layers, 32 query heads over 8 key/value heads of 128)
decoding one token after 4,095 cached ones: the step attends over kv_len = 4,096 rows.
H2O (Zhang et al., NeurIPS 2023) keeps a quarter of them per key/value head:
``keep: 0.25`` of 4,096 is 1,024 cached tokens plus the new one, 1,025 rows.

By hand, per layer: dense K and V are 2 x 8 heads x 4,096 rows x 128 x 2 B = 16,777,216 B,
pruned 2 x 8 x 1,025 x 128 x 2 = 4,198,400 B (3.996x fewer); the query (32 x 128 x 2 =
8,192 B) is read either way, so the attention's reads fall by at least
16,785,408 / 4,206,592 = 3.990x and at most 3.996x (on a target that keeps Q on chip).
The four query heads of a group share one read of their K/V head (GQA).
"""

from __future__ import annotations

import pytest

import hwsim
from hwsim.workload import workload_from_dict

LAYERS, HK, D, FP16 = 32, 8, 128, 2
DECODE = {"model": "llama-3.1-8b", "phase": "decode", "seq_len": 1, "kv_len": 4095}
# SpAtten is one chip of 8 GiB HBM and Llama-3.1-8B's weights are 15 GiB: the design
# point simulated there has 32 GiB (tests/test_models_zoo.py REMEDY does the same).
SETS = {"spatten": ["target.dram_bytes=32 GiB"]}


@pytest.mark.parametrize("target", ["roofline", "ascend", "volta", "armv8", "spatten"])
def test_h2o_quarter_budget_on_llama31_8b_reads_4x_fewer_kv_bytes(target):
    wl = workload_from_dict({**DECODE, "pruning": [{"method": "h2o", "keep": 0.25}]},
                            "<acceptance>")
    r = hwsim.simulate(wl, target, baseline=True, fidelity="analytical",
                       sets=SETS.get(target, []))
    ops, base = r.ops, r.baseline.ops
    pruned = ops.loc[ops["kind"] == "attention", "dram_read_bytes"].sum()
    dense = base.loc[base["kind"] == "attention", "dram_read_bytes"].sum()
    kv_dense, kv_pruned = 2 * HK * 4096 * D * FP16, 2 * HK * 1025 * D * FP16
    q = 32 * D * FP16
    assert (kv_dense + q) / (kv_pruned + q) * 0.999 <= dense / pruned <= \
        kv_dense / kv_pruned * 1.001, (target, dense / pruned)
    assert pruned >= LAYERS * kv_pruned  # every kept K and V row is read
    assert r.memory["kv_cache_bytes"] == LAYERS * kv_pruned
    assert r.baseline.memory["kv_cache_bytes"] == LAYERS * kv_dense
