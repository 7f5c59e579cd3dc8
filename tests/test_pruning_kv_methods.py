"""KV-cache methods whose machinery is new to the library (issue 19 point 2): Mustafar's
unstructured per-token sparsity of keys and values, stored bitmap-compressed and read
compressed by every decode step.

Mustafar's docs (docs/pruning.md, hwsim.pruning.kv) state what it costs: per decode step
and layer, the write of its own token, O(b·hk·D) whatever the cache; the attention reads
the compressed cache, O(n·D·B/16) bytes. Here the cache is doubled (the machinery must
not grow, the bytes read must double) and the head width is doubled (the machinery
must double); the shipped workload runs on every target, its machinery costs time and
energy and the run reads fewer bytes than the dense one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pruning_util import method_ops, pruned

import hwsim
from hwsim.capacity import footprint
from hwsim.errors import InputError
from hwsim.ir.dtypes import bitmap_format, nbytes
from hwsim.ir.kinds import read_bytes
from hwsim.pruning import apply
from hwsim.pruning.kv import mustafar_bits, mustafar_kept, mustafar_window
from hwsim.targets import registry, resolve
from hwsim.workload import build_graph, load_workload, workload_from_dict

ROOT = Path(__file__).resolve().parents[1]
TARGETS = sorted(registry())
WORKLOAD = ROOT / "workloads" / "llama3.1-8b-decode-mustafar.yaml"


def _graph(base: dict, step: dict):
    return pruned(base, step)


_ops = method_ops


def _attention_reads(g) -> int:
    return sum(read_bytes(op, g) for op in g.ops if op.kind == "attention")


def test_the_released_format_70_percent_sparse_fp16_is_7_5_bits_per_element():
    # kthvalue keeps D - int(0.7 D) + 1: 40 of 128, 21 of 64
    assert mustafar_kept(128, 0.3) == 40 and mustafar_kept(64, 0.3) == 21
    # a value tile: 64-bit bitmap + int32 count + 20 values padded to 24 fp16 = 480 bits
    assert mustafar_bits(128, 40, 16, "value") == (2 * 96 + 2 * 24 * 16) / 128 == 7.5
    assert mustafar_bits(128, 40, 16, "key") == 7.5
    # 50 %: 65 kept of 128 (32 + 33, padded 32 + 40): 10.5 bits
    assert mustafar_bits(128, mustafar_kept(128, 0.5), 16, "value") == 10.5
    # the dense window: 32 kept + up to 256 waiting; compressed after the step's attention
    assert mustafar_window(4096, 32) == 256 and mustafar_window(4128, 32) == 288
    assert mustafar_window(4129, 32) == 33 and mustafar_window(200, 32) == 200
    assert bitmap_format("bitmap16@7.5") == (16, 7.5) and nbytes(128, "bitmap16@7.5") == 120


def test_shipped_workload_halves_the_cache_and_every_step_writes_its_own_token():
    wl = load_workload(WORKLOAD)
    dense = build_graph(wl)
    g = apply(dense, wl.pruning, wl.source)
    rec = g.header["pruning"][0]
    assert rec["kept_per_row"] == {"key": 40, "value": 40}
    assert rec["dense_window"] == [256]
    # (3,840 x 7.5 + 256 x 16) / 4,096 bits per element
    assert rec["cache_dtypes"] == ["bitmap16@8.03125"]
    kv_dense, kv = footprint(dense).kv_cache_bytes, footprint(g).kv_cache_bytes
    assert kv / kv_dense == pytest.approx(8.03125 / 16)
    assert _attention_reads(g) / _attention_reads(dense) == pytest.approx(8.03125 / 16,
                                                                           rel=1e-3)
    # 32 layers x (keys, values) x 5 ops
    assert rec["overhead_ops"] == 32 * 2 * 5
    (topk,) = [op for op in _ops(g, "mustafar", "mustafar.key_threshold_topk")
               if op.layer == 0]
    assert (topk.attrs["rows"], topk.attrs["n"], topk.attrs["k"]) == (8 * 8, 128, 40)
    assert g.flops() > dense.flops()  # the dense attention's FLOPs, plus the write's


def test_machinery_is_constant_in_the_cache_and_linear_in_the_head_width():
    def run(kv_len, model="tinyllama-1.1b"):
        dense, g = _graph({"model": model, "phase": "decode", "seq_len": 1, "kv_len": kv_len},
                          {"method": "mustafar"})
        mach = _ops(g, "mustafar")
        elements = sum(op.attrs.get("elements", 0) + op.attrs.get("rows", 0) *
                       op.attrs.get("n", 0) for op in mach)
        return dense, g, mach, elements
    d1, g1, m1, e1 = run(8191)
    d2, g2, m2, e2 = run(16383)
    assert len(m1) == len(m2) > 0 and e1 == e2  # O(b hk D): the cache does not matter
    # the compressed cache read grows with n (the dense window is the same 256 tokens)
    r1, r2 = _attention_reads(g1), _attention_reads(g2)
    assert 1.95 < r2 / r1 < 2.0
    assert r1 < 0.55 * _attention_reads(d1)
    # Llama-2-7B: 32 layers of 32 KV heads of 128, TinyLlama: 22 layers of 4 of 64; per
    # KV-head row the write's elements double with D (4D + kept each: 277 -> 552)
    _, _, _, e3 = run(1023, "llama-2-7b")
    per_row_64, per_row_128 = e1 / (22 * 4), e3 / (32 * 32)
    assert per_row_64 == 2 * (4 * 64 + 21) and per_row_128 == 2 * (4 * 128 + 40)  # K and V


def test_mustafar_errors_name_the_field():
    with pytest.raises(InputError, match="decode step"):
        _graph({"model": "tinyllama-1.1b", "seq_len": 64}, {"method": "mustafar"})
    for step, match in (({"keep": 0}, "pruning.0.keep"),
                        ({"keep_values": 1.5}, "pruning.0.keep_values"),
                        ({"residual": -1}, "pruning.0.residual")):
        with pytest.raises(InputError, match=match):
            _graph({"model": "tinyllama-1.1b", "phase": "decode", "seq_len": 1,
                    "kv_len": 1023}, {"method": "mustafar", **step})


@pytest.mark.parametrize("target_name", TARGETS)
def test_shipped_workload_runs_on_every_target_reads_less_and_its_machinery_costs(
        target_name):
    path = WORKLOAD
    if target_name == "spatten":
        # Llama-3.1-8B's fp16 weights (15 GiB) do not fit the SpAtten target's 8 GiB of
        # HBM: a one-line capacity error; with int8 weights and a batch of 2 it runs
        with pytest.raises(InputError, match="does not fit") as e:
            hwsim.simulate(path, resolve(target_name), fidelity="analytical")
        assert "\n" not in str(e.value)
        wl = load_workload(path)
        path = workload_from_dict({"model": wl.model, "phase": "decode", "batch": 2,
                                   "seq_len": 1, "kv_len": 4095, "dtype": "int8",
                                   "pruning": wl.pruning})
    r = hwsim.simulate(path, resolve(target_name), fidelity="analytical", baseline=True)
    overhead = r.pruning["overhead"]
    assert set(overhead["by_method"]) == {"mustafar"}
    assert overhead["latency_s"] > 0 and overhead["energy_j"] > 0
    ops = r.ops
    for what in ("key", "value"):
        for part in ("magnitude", "threshold_topk", "mask", "bitmap", "pack"):
            rows = ops[ops["name"] == f"mustafar.{what}_{part}"]
            assert len(rows) > 0 and (rows["latency_s"] > 0).all(), (target_name, what, part)
    # every target reads the compressed cache
    assert r.totals["dram_read_bytes"] < r.baseline.totals["dram_read_bytes"]
    att = ops[ops["kind"] == "attention"]
    assert att["latency_s"].sum() > 0


@pytest.mark.parametrize("target_name", ["armv8", "ascend"])
def test_armv8_and_ascend_read_a_narrow_cache_at_its_stored_width(target_name):
    """Their fused attention priced K and V at the query's width; an int8 cache (quant)
    and Mustafar's compressed one now read fewer bytes, an fp16 one the same."""
    base = {"model": "tinyllama-1.1b", "phase": "decode", "seq_len": 1, "kv_len": 4095}

    def attention_dram(pruning):
        r = hwsim.simulate(workload_from_dict({**base, "pruning": pruning}),
                           resolve(target_name), fidelity="analytical")
        ops = r.ops
        return float(ops.loc[ops["kind"] == "attention", "dram_read_bytes"].sum())

    dense = attention_dram([])
    int8 = attention_dram([{"method": "quant", "tensors": {"kv": "int8"}}])
    sparse = attention_dram([{"method": "mustafar"}])
    # K and V are 22 x 2 x 4 x 4,096 x 64 x 2 B = 92 MB of the dense read; Q is 22 x 4 KB
    assert int8 == pytest.approx(dense / 2, rel=0.01)
    assert sparse == pytest.approx(dense * (3840 * 7.5 + 256 * 16) / 4096 / 16, rel=0.01)
