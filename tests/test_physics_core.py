"""Regression tests of issue 11's core fixes: executed FLOPs, sliding windows,
one memory account, logits for the last position, aliases, sparse attention
without phantom bytes."""

from __future__ import annotations

import math

import pytest
from physics import violations

import hwsim
from hwsim.errors import InputError
from hwsim.ir import Graph
from hwsim.ir.kinds import (
    attention_rows,
    executed_flops,
    flops,
    read_bytes,
    visible_scores,
    window_keys,
)
from hwsim.pruning import apply
from hwsim.workload import build_graph, workload_from_dict

GIB = 2.0**30


def ops_wl(ops, **extra):
    return workload_from_dict({"name": "t", "ops": ops, "dtype": "fp16", **extra}, "<test>")


def attention(**kw):
    base = {"kind": "attention", "heads": 32, "kv_heads": 32, "head_dim": 128, "q_len": 4096,
            "kv_len": 4096, "causal": False}
    return {**base, **kw}


# ---------------------------------------------------------------- executed FLOPs
@pytest.mark.parametrize("q,kv,causal,window,bq,bkv,expected", [
    (8, 8, True, 0, 1, 1, 36),            # the triangle with its diagonal: 8 * 9 / 2
    (8, 8, False, 0, 1, 1, 64),
    (8, 8, True, 4, 1, 1, 1 + 2 + 3 + 4 * 5),  # each row sees min(4, pos + 1) keys
    (8, 8, False, 2, 1, 1, 22),           # |pos - key| < 2
    (1, 100, True, 0, 1, 1, 100),         # a decode row sees the whole cache
    (1, 100, True, 4, 1, 1, 4),           # ... or its window
    (8, 8, True, 0, 4, 4, 48),            # 2x2 tiles: the upper-right one skipped
    (4096, 4096, True, 0, 128, 128, 32 * 33 // 2 * 128 * 128),
])
def test_visible_scores(q, kv, causal, window, bq, bkv, expected):
    assert visible_scores(q, kv, causal, window, bq, bkv) == expected


def _tiles_seen(q, kv, causal, window, bq, bkv):
    """The definition, element by element: a tile counts whole when one of its
    elements is visible (query i at position i + kv - q)."""
    def visible(i, k):
        pos = i + kv - q
        if causal and k > pos:
            return False
        if window > 0:
            return pos - k < window if causal else abs(pos - k) < window
        return True
    total = 0
    for r0 in range(0, q, bq):
        for c0 in range(0, kv, bkv):
            rows, cols = range(r0, min(r0 + bq, q)), range(c0, min(c0 + bkv, kv))
            if bq == bkv == 1 or any(visible(i, k) for i in rows for k in cols):
                total += len(rows) * len(cols) if bq * bkv > 1 else int(visible(r0, c0))
    return total


@pytest.mark.parametrize("bq,bkv", [(1, 1), (1, 3), (2, 1), (3, 2), (4, 4)])
def test_visible_scores_counts_by_the_definition(bq, bkv):
    """The closed form (single rows) and the block sum agree with counting every
    element, on short and long caches, square and decode-like shapes, all windows."""
    for q in range(1, 11):
        for kv in range(1, 13):
            for causal, window in ((True, 0), (True, 1), (True, 3), (True, 20), (False, 1),
                                   (False, 2), (False, 5)):
                assert visible_scores(q, kv, causal, window, bq, bkv) == \
                    _tiles_seen(q, kv, causal, window, bq, bkv), (q, kv, causal, window)


def test_visible_scores_many_row_blocks_agree_with_few():
    """Past the Python block loop's reach the array sum takes over: the same count."""
    import hwsim.ir.kinds as kinds  # noqa: PLC0415

    args = (3000, 5000, True, 700, 4, 64)
    many = visible_scores(*args)
    assert -(-3000 // 4) > kinds._PYTHON_BLOCKS
    saved, kinds._PYTHON_BLOCKS = kinds._PYTHON_BLOCKS, 10**9
    try:
        assert visible_scores(*args) == many
    finally:
        kinds._PYTHON_BLOCKS = saved


def test_a_causal_attention_executes_about_half_its_counted_flops():
    g = build_graph(ops_wl([attention(causal=True)]))
    op = g.ops[0]
    assert executed_flops(op) == pytest.approx(flops(op) * 4097 / 8192, rel=1e-9)
    # whole 128 x 128 diagonal tiles: a little more than the exact triangle
    assert executed_flops(op) < executed_flops(op, 128, 128) < flops(op)


def test_throughput_uses_executed_flops_and_stays_under_peak():
    wl = ops_wl([attention(heads=1, kv_heads=1, q_len=32768, kv_len=32768, causal=True)])
    r = hwsim.simulate(wl, "roofline")
    t = r.totals
    assert t["executed_flops"] == pytest.approx(t["flops"] / 2, rel=1e-3)
    assert t["executed_flops"] / t["latency_s"] <= 125e12 * (1 + 1e-9)
    assert "executed" in r.table() and r.to_dict()["ops"][0]["executed_flops"] > 0


# ---------------------------------------------------------------- sliding window
def test_a_window_reads_only_the_keys_some_query_sees():
    assert window_keys(1, 32768, 4096, True) == 4096
    assert window_keys(4096, 32768, 4096, True) == 8191
    # a symmetric window at the end of the sequence sees no keys past the last one
    assert window_keys(1, 1000, 256, False) == 256 == visible_scores(1, 1000, False, 256)
    assert window_keys(8, 8, 2, False) == 8
    g = build_graph(ops_wl([attention(q_len=1, kv_len=32768, causal=True, window=4096)]))
    full = build_graph(ops_wl([attention(q_len=1, kv_len=32768, causal=True)]))
    q = 32 * 128 * 2
    kv = 2 * 32 * 32768 * 128 * 2
    assert read_bytes(full.ops[0], full) == q + kv
    assert read_bytes(g.ops[0], g) == q + kv // 8
    assert executed_flops(g.ops[0]) == flops(g.ops[0]) // 8


def test_a_window_is_part_of_the_op_and_a_bad_one_is_refused():
    with pytest.raises(InputError, match="ops.0.window"):
        ops_wl([attention(window=-1)])
    g = build_graph(ops_wl([attention(window=256)]))
    assert g.ops[0].attrs["window"] == 256 and g.verify() == []


def tiny_mistral(tmp_path, monkeypatch, module: str, *, layers: int, window: int,
                 max_positions: int, seqs: tuple[int, int], extra: tuple = ()):
    """A small Mistral (hidden 64, FFN 128, 4 query heads over 2 KV heads, vocabulary 100,
    ``layers`` layers, sliding window ``window``), built from transformers' MistralConfig
    on the meta device by a factory module written to ``tmp_path`` as ``module``, traced
    at the 2x2 grid ``seqs`` x batch (1, 2) and at each ``(seq_len, batch)`` of
    ``extra``. Returns (the grid's fitted template, {(seq_len, batch): graph})."""
    import sys

    from hwsim.ir import fit_template
    from hwsim.trace import trace

    grid = [(s, b) for b in (1, 2) for s in seqs]
    (tmp_path / f"{module}.py").write_text(
        "import torch\n"
        "from transformers import MistralConfig, MistralForCausalLM\n"
        "def make(seq, batch):\n"
        f"    cfg = MistralConfig(hidden_size=64, intermediate_size=128, "
        f"num_hidden_layers={layers},\n"
        "                        num_attention_heads=4, num_key_value_heads=2, vocab_size=100,\n"
        f"                        sliding_window={window}, "
        f"max_position_embeddings={max_positions})\n"
        "    with torch.device('meta'):\n"
        "        m = MistralForCausalLM(cfg)\n"
        "    return m, {'input_ids': torch.zeros(batch, seq, dtype=torch.long)}\n"
        + "".join(f"def s{s}b{b}():\n    return make({s}, {b})\n" for s, b in grid + list(extra)))
    monkeypatch.syspath_prepend(str(tmp_path))
    graphs = {}
    try:
        for s, b in grid + list(extra):
            g = trace(f"{module}:s{s}b{b}", seq_len=s, batch=b)
            g.header.update(name="tiny-mistral", model="tiny-mistral")
            graphs[s, b] = g
    finally:
        sys.modules.pop(module, None)
    tmpl = fit_template([graphs[p] for p in grid],
                        [{"batch": b, "seq_len": s, "kv_len": 0} for s, b in grid])
    return tmpl, graphs


@pytest.mark.trace
def test_sliding_window_is_traced_from_the_config_and_kept_by_templates(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    tmpl, graphs = tiny_mistral(tmp_path, monkeypatch, "tiny_mistral", layers=2, window=4,
                                max_positions=64, seqs=(8, 16), extra=[(11, 2)])
    inst = tmpl.instantiate(batch=2, seq_len=11)
    for g in (graphs[8, 1], inst, graphs[11, 2]):
        att = [op for op in g.ops if op.kind == "attention"]
        assert len(att) == 2 and all(op.attrs["window"] == 4 for op in att)
        assert all(op.attrs["kv_heads"] == 2 for op in att)


# ---------------------------------------------------------------- memory account
LLAMA13_DECODE_32K = {"name": "t", "model": "llama-2-13b", "phase": "decode", "seq_len": 1,
                      "kv_len": 32767}


@pytest.mark.parametrize("devices,kv_gib", [(1, 25.0), (8, 25.0 / 8)])
def test_a_decode_steps_kv_cache_is_counted_once(devices, kv_gib):
    """The cache before a KV write and after it are one allocation (ascend used to
    count both), and tensor parallelism splits the cache the write appends to."""
    wl = workload_from_dict({**LLAMA13_DECODE_32K, "devices": devices}, "<t>")
    # (armv8 is one socket, no all-reduce across sockets; roofline-910b has no links)
    targets = ("ascend", "roofline-v100") if devices > 1 else ("ascend", "armv8", "roofline-910b")
    for target in targets:
        r = hwsim.simulate(wl, target, fidelity="analytical")
        assert r.memory["kv_cache_bytes"] / GIB == pytest.approx(kv_gib, rel=1e-3)
        # the blocks split; the embedding and LM head (2 x 32000 x 5120 fp16) are replicated
        outside = 2 * 32000 * 5120 * 2 / GIB
        assert r.memory["weights_bytes"] / GIB == pytest.approx(
            (24.24 - outside) / devices + outside, rel=0.01)


@pytest.mark.parametrize("target", ["roofline", "armv8", "spatten", "volta", "ascend"])
def test_every_target_checks_its_capacity(target):
    wl = workload_from_dict({**LLAMA13_DECODE_32K, "batch": 16}, "<t>")  # 400 GiB of cache
    with pytest.raises(InputError, match="does not fit in .* GiB .* KV cache 400.00 GiB"):
        hwsim.simulate(wl, target, fidelity="analytical")


def test_the_report_carries_the_memory_account():
    r = hwsim.simulate("workloads/llama2-7b-decode.yaml", "volta", fidelity="analytical")
    m = r.to_dict()["memory"]
    assert m["kv_cache_bytes"] == 2 * 32 * 4096 * 4096 * 2
    assert m["total_bytes"] == pytest.approx(
        m["weights_bytes"] + m["kv_cache_bytes"] + m["activations_bytes"])
    assert m["capacity_bytes"] == 32 * GIB
    assert "memory " in r.table()


# ---------------------------------------------------------------- logits
def test_a_prefill_computes_logits_for_the_last_position_by_default():
    wl = workload_from_dict({"name": "t", "model": "llama-2-7b", "seq_len": 2048}, "<t>")
    last = hwsim.simulate(wl, "roofline", fidelity="analytical")
    every = hwsim.simulate(wl, "roofline", sets=["logits=all"], fidelity="analytical")
    head = [op for op in last.graph.ops if op.module == "lm_head" and op.kind == "matmul"]
    assert [op.attrs["m"] for op in head] == [1]
    lm_flops = 2 * 2048 * 32000 * 4096  # seq x vocab x hidden
    assert every.totals["flops"] - last.totals["flops"] == lm_flops - lm_flops // 2048
    assert every.memory["activations_bytes"] >= last.memory["activations_bytes"]
    with pytest.raises(InputError, match="logits: expected one of last, all"):
        workload_from_dict({"name": "t", "model": "llama-2-7b", "logits": "some"}, "<t>")


def test_logits_last_leaves_a_decode_step_alone():
    wl = workload_from_dict({"name": "t", "model": "gpt2", "phase": "decode", "seq_len": 1,
                             "kv_len": 100}, "<t>")
    a = hwsim.simulate(wl, "roofline", fidelity="analytical")
    b = hwsim.simulate(wl, "roofline", sets=["logits=all"], fidelity="analytical")
    assert a.totals["flops"] == b.totals["flops"]


# ---------------------------------------------------------------- aliases and sparse attention
def test_a_view_is_an_alias_that_holds_no_bytes_of_its_own():
    g = Graph({"name": "alias"})
    k = g.add_tensor([1, 4, 1024, 64], "fp16", "kv_cache")
    wide = g.add_tensor([64, 64, 1024], "fp16")  # a strided view 16x the size of K
    g.add_op("view", [k], [wide], {"note": "strided view of K"})
    q = g.add_tensor([64, 8, 64], "fp16", "input")
    s = g.add_tensor([64, 8, 1024], "fp16")
    op = g.add_op("matmul", [q, wide], [s], {"batch": 64, "m": 8, "n": 1024, "k": 64})
    assert g.verify() == []
    assert g.root(wide) == k and g.stored_bytes(wide) == g.tensors[k].bytes
    assert read_bytes(op, g) == g.tensors[q].bytes + g.tensors[k].bytes


HIP = "workloads/llama2-7b-prefill-hip.yaml"


def test_hip_holds_one_kv_cache_and_reads_no_phantom_bytes():
    """HiP's block-sparse attention reads K and V where they lie: one 4 GiB cache at 8K
    (volta used to claim 137 GB), and no more compulsory bytes outside its
    machinery than dense attention (it used to read 9.3x)."""
    r = hwsim.simulate(HIP, "volta", baseline=True, fidelity="analytical")
    assert r.memory["kv_cache_bytes"] / GIB == pytest.approx(4.0)
    rr = hwsim.simulate(HIP, "roofline", baseline=True, fidelity="analytical")
    ops = rr.ops
    own = ops["pruning"].astype(str) != ""
    assert int(ops.loc[~own, "dram_read_bytes"].sum()) <= rr.baseline.totals["dram_read_bytes"]
    att = [op for op in rr.graph.ops if op.kind == "attention"]
    assert all(op.attrs["sparse_keys"] == 1024 and op.attrs["sparse_block"] == 32 for op in att)
    assert violations(rr) == []


@pytest.mark.parametrize("method", [{"method": "topk-attention", "keep": 0.25},
                                    {"method": "spatten", "keep": 1.0, "value_keep": 0.25}])
def test_query_selections_read_at_most_the_cache(method):
    wl = workload_from_dict({"name": "t", "model": "bert-base", "seq_len": 512,
                             "pruning": [method]}, "<t>")
    dense = build_graph(wl)
    g = apply(dense, wl.pruning, wl.source)
    att = [op for op in g.ops if op.kind == "attention" and op.layer == 0]
    (d_att,) = [op for op in dense.ops if op.kind == "attention" and op.layer == 0]
    assert att and read_bytes(att[0], g) <= read_bytes(d_att, dense)
    keys, values = attention_rows(att[0].attrs)
    assert keys == values == 512  # 512 queries x 128 rows cover the whole cache
    assert not [op for op in g.ops if op.kind == "gather" and op.layer == 0
                and op.attrs.get("pruning") != "spatten"]
    assert math.isclose(flops(att[0]) / flops(d_att), 0.25 if "value_keep" not in method
                        else 0.625, rel_tol=1e-2)


# ---------------------------------------------------------------- progressive quantization
def test_refetch_auto_leaves_the_decision_to_the_target():
    """refetch: auto puts the keys' low-bit plane beside the attention and lets the target
    decide per row from the probabilities (SpAtten reads its re-quantization threshold);
    the plane is held in memory, and no fixed-fraction gather is inserted."""
    base = {"name": "t", "model": "gpt2", "phase": "decode", "seq_len": 1, "kv_len": 511}
    quant = {"method": "quant", "tensors": {"kv": 6}}
    auto = workload_from_dict({**base, "pruning": [{**quant, "refetch": "auto"}]}, "<t>")
    fixed = workload_from_dict({**base, "pruning": [{**quant, "refetch": 0.1}]}, "<t>")
    g = apply(build_graph(auto), auto.pruning, auto.source)
    att = [op for op in g.ops if op.kind == "attention"]
    assert att and all(op.attrs["lsb_bits"] == 4 and len(op.inputs) == 4 for op in att)
    assert not [op for op in g.ops if op.name == "quant.lsb_refetch"]
    plane = g.tensors[att[0].inputs[3]]
    assert plane.kind == "kv_cache" and plane.dtype == "int4" and g.verify() == []
    r = hwsim.simulate(auto, "spatten", fidelity="analytical")
    assert "LSB re-fetch" in " ".join(r.ops["detail"])
    assert r.memory["kv_cache_bytes"] == 12 * 512 * 768 * (6 + 6 + 4) // 8
    rf = hwsim.simulate(fixed, "spatten", fidelity="analytical")
    assert [op for op in rf.graph.ops if op.name == "quant.lsb_refetch"]
    with pytest.raises(InputError, match="refetch: must be a fraction in \\[0, 1\\] or auto"):
        workload_from_dict({**base, "pruning": [{**quant, "refetch": "sometimes"}]}, "<t>")


def test_a_broadcast_of_a_slice_holds_no_more_than_the_slice():
    g = Graph({"name": "chain"})
    k = g.add_tensor([1, 4, 1024, 64], "fp16", "kv_cache")
    window = g.add_tensor([1, 4, 256, 64], "fp16")
    g.add_op("view", [k], [window], {"note": "slice"})
    group = g.add_tensor([1, 32, 256, 64], "fp16")
    g.add_op("view", [window], [group], {"note": "broadcast"})
    assert g.root(group) == k
    assert g.stored_bytes(group) == g.tensors[window].bytes < g.tensors[k].bytes


@pytest.mark.parametrize("target", ["roofline", "ascend", "volta", "armv8", "spatten"])
def test_every_elementwise_function_is_costed_on_every_target(target):
    """A function the IR counts (hwsim.ir.kinds.FN_FLOPS) is one every target prices: a
    new one (bilinear resampling came with LLaVA-OneVision) must reach each target's
    tables, never a KeyError; each takes time and obeys the physics checks."""
    from hwsim.ir.kinds import FN_FLOPS

    ops = [{"kind": "elementwise", "fn": fn, "elements": 1 << 20, "name": fn}
           for fn in sorted(FN_FLOPS)]
    dtype = "fp32" if target == "armv8" else "fp16"
    r = hwsim.simulate(ops_wl(ops, dtype=dtype), target, fidelity="analytical")
    assert len(r.ops) == len(ops)
    assert (r.ops["latency_s"] > 0).all(), r.ops.loc[r.ops["latency_s"] <= 0, "name"].tolist()
    assert violations(r) == []
