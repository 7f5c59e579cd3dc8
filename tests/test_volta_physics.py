"""The Volta target obeys physics (issue 11): regression tests, one group per defect.

1. GQA/MQA: a KV head's K and V cross L2 once for its whole query group.
2. Executed FLOPs come from the kernels' own tiles and stay under the peak.
3. Every data type either runs on a datapath sm_70 has, or is refused in one line.
4. DRAM bytes never fall when an op gets more rows (split-K and split-KV partials).
5. Sliding windows, block-sparse selections and value pruning are costed.
6. Compulsory bytes, peaks and bigger machines on a spread of ops.
"""

from __future__ import annotations

import dataclasses

import pytest
from physics import violations

import hwsim
from hwsim.accelerators.volta import TARGET
from hwsim.errors import InputError
from hwsim.ir.kinds import check, read_bytes, visible_scores
from hwsim.simulate import run_graph
from hwsim.targets import resolve
from hwsim.workload import build_graph, workload_from_dict

SXM2 = "volta-v100-sxm2"


def spec(preset=SXM2):
    return resolve(preset).spec


def workload(ops, dtype="fp16", **extra):
    return workload_from_dict({"name": "t", "ops": ops, "dtype": dtype, **extra}, "<test>")


def sim(ops, strategy="auto", preset=SXM2, dtype="fp16", sets=(), fidelity="event", **attrs):
    """Simulate ``ops``; ``attrs`` (window, sparse_keys, v_len, ...) are set on the first
    op itself, as pruning passes do (a kernel study cannot name them all)."""
    wl = workload(ops, dtype, tiling={"attention": strategy})
    if not attrs:
        return hwsim.simulate(wl, preset, sets=list(sets), fidelity=fidelity)
    g = build_graph(wl)
    g.ops[0] = dataclasses.replace(g.ops[0], attrs={**g.ops[0].attrs, **attrs})
    assert check(g.ops[0], g) == []
    return run_graph(g, resolve(preset), wl, fidelity=fidelity)


def attention(**kw):
    op = {"kind": "attention", "heads": 32, "head_dim": 128, "causal": False}
    op.update(kw)
    return op


STRATEGIES = ["fastattention", "flash", "standard"]


# ---------------------------------------------------------------- 1. GQA / MQA
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_gqa_decode_streams_the_kv_cache_once_at_hbm_speed(strategy):
    """Llama-shaped decode step: 32 heads, 8 KV heads, 32K context. The KV cache's bytes
    are read once (within 10 %) and take at most 1.3x their time at the achievable HBM
    bandwidth. Before issue 11 every query head re-read its group's K/V through L2 in
    its own block: 563 us, 3.1x the 179 us the bytes need."""
    r = sim([attention(kv_heads=8, q_len=1, kv_len=32768)], strategy)
    kv_bytes = 2 * 8 * 32768 * 128 * 2
    att = r.ops[r.ops.kind == "attention"]
    assert int(att.dram_read_bytes.sum()) == pytest.approx(kv_bytes, rel=0.10)
    assert r.totals["latency_s"] <= 1.3 * kv_bytes / spec().dram_bw_bytes_per_s
    assert violations(r) == []


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_fewer_kv_heads_make_a_decode_step_faster(strategy):
    lat = {hk: sim([attention(kv_heads=hk, q_len=1, kv_len=32768)], strategy)
           .totals["latency_s"] for hk in (32, 8, 1)}
    assert lat[8] < 0.35 * lat[32]  # a quarter of the bytes (plus launches)
    assert lat[1] < lat[8]


def _kv_l2_bytes(op):
    """L2 bytes of an attention's kernels less its Q reads and O writes."""
    wl = workload([op])
    g = build_graph(wl)
    ks = TARGET.kernels_of(g.ops[0], g, spec(), wl.tiling)
    qo = op["heads"] * op["q_len"] * op["head_dim"] * 2 * 2
    return sum(k.total().l2_bytes for k in ks[:1]) - qo, ks[0].notes["heads_per_tile"]


def test_gqa_decode_tile_holds_the_group_so_kv_crosses_l2_once():
    """A decode step's tile is the group's 4 query rows: the K/V tiles cross L2 once per
    KV head, a quarter of the traffic of one block per query head."""
    mha, mha_heads = _kv_l2_bytes(attention(kv_heads=32, q_len=1, kv_len=32768))
    gqa, gqa_heads = _kv_l2_bytes(attention(kv_heads=8, q_len=1, kv_len=32768))
    assert (mha_heads, gqa_heads) == (1, 4)
    assert gqa == pytest.approx(mha / 4, rel=0.02)


def test_gqa_prefill_reads_kv_heads_once_and_packs_positions():
    """In a prefill the packed tile covers 32 positions of 4 heads: its causal key range
    is finer and the K/V L2 traffic no larger. HBM reads a KV head once per wave that
    holds its tiles (two KV heads' 4 MB exceed half the L2): 1.6x its bytes here, a
    quarter of what 32 KV heads read."""
    op = attention(kv_heads=8, q_len=4096, kv_len=4096, causal=True)
    gqa, heads = _kv_l2_bytes(op)
    mha, _ = _kv_l2_bytes(dict(op, kv_heads=32))
    assert heads == 4 and gqa <= mha
    q_bytes = 32 * 4096 * 128 * 2
    kv_gqa = sim([op]).totals["dram_read_bytes"] - q_bytes
    kv_mha = sim([dict(op, kv_heads=32)]).totals["dram_read_bytes"] - q_bytes
    assert 8 * 4096 * 512 <= kv_gqa <= 2 * 8 * 4096 * 512
    assert kv_gqa < kv_mha / 2


# ---------------------------------------------------------------- 2. executed FLOPs
def test_causal_attention_executes_its_visited_tiles_under_the_peak():
    """A 32K causal attention printed 132 TFLOP/s on a 125 TFLOP/s V100 (full FLOPs
    over a latency that skipped the masked tiles). Executed FLOPs are now the
    fused kernel's tiles (128x64, diagonal tiles whole) and the rate stays under peak."""
    r = sim([attention(q_len=32768, kv_len=32768, causal=True)], fidelity="analytical")
    t = r.totals
    tiles = visible_scores(32768, 32768, True, 0, 128, 64)
    assert t["executed_flops"] == 32 * tiles * 2 * (128 + 128)
    assert tiles > 32768 * 32769 // 2  # diagonal tiles computed whole
    assert t["executed_flops"] / t["latency_s"] <= TARGET.peak_flops_per_s(spec(), "fp16")
    assert t["flops"] / t["latency_s"] > TARGET.peak_flops_per_s(spec(), "fp16") * 0.5


def test_standard_attention_executes_every_score():
    r = sim([attention(q_len=2048, kv_len=2048, causal=True)], "standard")
    assert r.totals["executed_flops"] == r.totals["flops"]  # its QKᵀ GEMM computes all


def test_gqa_causal_executed_flops_follow_the_packed_tiles():
    """With 4 heads per 128-row tile, a tile covers 32 query positions."""
    r = sim([attention(kv_heads=8, q_len=4096, kv_len=4096, causal=True)])
    tiles = visible_scores(4096, 4096, True, 0, 32, 64)
    assert r.totals["executed_flops"] == 32 * tiles * 2 * 256


# ---------------------------------------------------------------- 3. data types
@pytest.mark.parametrize("dtype", ["fp16", "bf16", "tf32", "fp32", "fp64", "int8", "fp8",
                                   "fix12", "fix6", "int4", "int32"])
@pytest.mark.parametrize("kind", ["matmul", "attention"])
def test_every_dtype_runs_or_is_refused_in_one_line(dtype, kind):
    """A bf16, int8, fp8 or tf32 op died with a KeyError (no energy price). Now it runs
    on a datapath sm_70 has, or is an InputError naming the type and what to use."""
    op = ({"kind": "matmul", "m": 1024, "n": 1024, "k": 1024} if kind == "matmul" else
          attention(heads=8, q_len=512, kv_len=512, causal=True))
    try:
        r = sim([op], dtype=dtype)
    except InputError as e:
        assert dtype in str(e) and "use fp16" in str(e) and "\n" not in str(e)
        assert dtype in ("fp8", "fix12", "fix6", "int4", "int32") or (
            dtype == "int8" and kind == "attention")
        return
    assert violations(r) == []


def test_bf16_and_tf32_run_at_the_fp32_rate_and_int8_on_dp4a():
    def rate(dtype):
        t = sim([{"kind": "matmul", "m": 4096, "n": 4096, "k": 4096}], dtype=dtype).totals
        return t["flops"] / t["latency_s"]

    fp32 = rate("fp32")
    assert rate("bf16") == pytest.approx(fp32, rel=0.05)  # no bf16 arithmetic on sm_70
    assert rate("tf32") == pytest.approx(fp32, rel=0.01)  # tf32 is an sm_80 format
    int8 = rate("int8")
    assert 3 * fp32 < int8 <= TARGET.peak_flops_per_s(spec(), "int8")
    assert TARGET.peak_flops_per_s(spec(), "int8") == pytest.approx(512 * 80 * 1.53e9)
    assert rate("fp16") > 1.5 * int8


def test_bert_base_runs_in_bf16():
    wl = workload_from_dict({"name": "b", "model": "bert-base", "dtype": "bf16",
                             "seq_len": 128}, "<t>")
    r = hwsim.simulate(wl, SXM2)
    assert violations(r) == []


def test_quantized_kv_cache_is_read_packed_under_an_fp16_query():
    """SpAtten's fixed point as storage: keys and values of 6 bits cost 6/16 of the
    fp16 bytes; the arithmetic stays fp16 (a fixed-point query is refused)."""
    def step(tensors):
        wl = workload_from_dict({"name": "q", "model": "gpt2", "phase": "decode",
                                 "seq_len": 1, "kv_len": 512,
                                 "pruning": [{"method": "quant", "tensors": tensors}]}, "<t>")
        return hwsim.simulate(wl, SXM2)

    r = step({"kv": 6})
    att = r.ops[r.ops.kind == "attention"].iloc[0]
    op = next(o for o in r.graph.ops if o.kind == "attention")
    assert att.dram_read_bytes == pytest.approx(read_bytes(op, r.graph), rel=0.01)
    q_bytes = 12 * 64 * 2
    kv_fp16 = 2 * 12 * 512 * 64 * 2
    assert att.dram_read_bytes - q_bytes == pytest.approx(kv_fp16 * 6 / 16, rel=0.02)
    assert violations(r) == []
    with pytest.raises(InputError, match="fix12"):
        step({"query": 12})


# ---------------------------------------------------------------- 4. bytes and tokens
def _gemm_bytes(m, n, k):
    r = sim([{"kind": "matmul", "m": m, "n": n, "k": k}], fidelity="analytical")
    return r.totals["dram_read_bytes"], r.totals["dram_write_bytes"], r.ops.detail.iloc[0]


def test_fewer_rows_never_read_more_through_split_k_partials():
    """TinyLlama's q_proj at 115 pruned tokens chose split-K=4 and read its fp32 partials
    back from HBM: 12.6 MB against 8.9 MB at 128 tokens. Partials now stay in cuBLAS's
    4 MiB workspace within half the L2."""
    small, large = _gemm_bytes(115, 2048, 2048), _gemm_bytes(128, 2048, 2048)
    assert small[0] <= large[0] and small[0] + small[1] <= large[0] + large[1]
    assert small[0] == pytest.approx(115 * 2048 * 2 + 2048 * 2048 * 2, rel=0.01)
    deep = sim([{"kind": "matmul", "m": 128, "n": 128, "k": 65536}], fidelity="analytical")
    assert "splitK" in deep.ops.detail.iloc[0] and "partials in L2" in deep.ops.detail.iloc[0]
    assert deep.totals["dram_write_bytes"] == 128 * 128 * 2


@pytest.mark.parametrize("n,k", [(2048, 2048), (256, 2048), (5632, 2048), (2048, 5632),
                                 (768, 768), (2304, 768)])
def test_gemm_bytes_grow_with_rows_for_the_same_kernel(n, k):
    """Within one kernel configuration (same detail), more rows never move fewer bytes;
    a different block tile may reuse more on chip (its detail names the tile)."""
    prev = None
    for m in range(8, 520, 9):
        rd, wr, detail = _gemm_bytes(m, n, k)
        if prev is not None and prev[2] == detail:
            assert rd >= prev[0] - 64 and rd + wr >= prev[0] + prev[1] - 64, (m, detail)
        assert rd >= m * k * 2 + k * n * 2 - 64  # compulsory: each operand once
        prev = (rd, wr, detail)


def test_pruned_tinyllama_prefill_reads_no_more_than_the_dense_run():
    wl = workload_from_dict({"name": "t", "model": "tinyllama-1.1b", "seq_len": 128,
                             "pruning": [{"method": "spatten", "keep": 0.9}]}, "<t>")
    r = hwsim.simulate(wl, SXM2, baseline=True, fidelity="analytical")
    own = r.ops["pruning"].astype(str) != ""
    assert int(r.ops.loc[~own, "dram_read_bytes"].sum()) <= r.baseline.totals["dram_read_bytes"]


def test_split_kv_partials_never_reach_hbm():
    """A prefill with few query tiles splits its keys only as far as the fp32 partial
    rows fit in half the L2 (11 heads of GPT-2 at 500 tokens split 8 ways sent 11 MB of
    partials to HBM, more than the 12 heads of the unpruned model)."""
    for heads in (11, 12):
        r = sim([attention(heads=heads, head_dim=64, q_len=500, kv_len=500, causal=True)])
        need = 3 * heads * 500 * 64 * 2
        assert r.totals["dram_read_bytes"] == pytest.approx(need, rel=0.01)


# ---------------------------------------------------------------- 5. new attributes
@pytest.mark.parametrize("strategy", ["fastattention", "flash"])
def test_sliding_window_decode_reads_the_last_window(strategy):
    full = sim([attention(q_len=1, kv_len=32768, causal=True)], strategy)
    win = sim([attention(q_len=1, kv_len=32768, causal=True, window=4096)], strategy)
    band = 2 * 32 * 4096 * 128 * 2
    assert win.totals["dram_read_bytes"] == pytest.approx(band, rel=0.01)
    assert win.totals["latency_s"] < 0.2 * full.totals["latency_s"]
    assert win.totals["executed_flops"] == pytest.approx(full.totals["executed_flops"] / 8,
                                                         rel=0.01)
    assert violations(win) == []


def test_sliding_window_prefill_skips_the_tiles_outside_its_band():
    full = sim([attention(q_len=4096, kv_len=4096, causal=True)])
    win = sim([attention(q_len=4096, kv_len=4096, causal=True, window=512)])
    tiles = visible_scores(4096, 4096, True, 512, 128, 64)
    assert win.totals["executed_flops"] == 32 * tiles * 2 * 256
    assert win.totals["latency_s"] < 0.35 * full.totals["latency_s"]
    # eager PyTorch computes every score and masks in the softmax
    std = sim([attention(q_len=2048, kv_len=2048, causal=True, window=512)], "standard")
    assert std.totals["executed_flops"] == std.totals["flops"]
    assert violations(win) == [] and violations(std) == []


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_block_sparse_attention_gathers_its_selection(strategy):
    """HiP-style: blocks of 64 queries attend to 512 keys each, gathered where they lie."""
    op = attention(q_len=4096, kv_len=4096)
    dense = sim([op], strategy)
    sparse = sim([op], strategy, sparse_keys=512, sparse_block=64)
    assert sparse.totals["executed_flops"] == sparse.totals["flops"]
    assert sparse.totals["flops"] == dense.totals["flops"] // 8
    assert sparse.totals["latency_s"] < dense.totals["latency_s"]
    assert violations(sparse) == []
    if strategy != "standard":  # the fused kernels read K and V where they lie
        assert sparse.totals["dram_read_bytes"] <= dense.totals["dram_read_bytes"]
    else:  # eager: the gathered copies go through HBM
        assert "gatherK" in sparse.ops.detail.iloc[0]


def test_topk_attention_decode_reads_only_the_selected_rows():
    op = attention(q_len=1, kv_len=32768, causal=True)
    r = sim([op], sparse_keys=2048)
    assert r.totals["dram_read_bytes"] == pytest.approx(2 * 32 * 2048 * 256, rel=0.01)
    assert violations(r) == []


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_value_pruned_decode_reads_only_the_selected_values(strategy):
    """v_len: a per-row top-k of the probabilities, then P·V over the selected rows.
    In a decode step the scores fit in an L2 buffer: K once, the selected V rows."""
    op = attention(q_len=1, kv_len=32768, causal=True)
    dense = sim([op], strategy)
    pruned = sim([op], strategy, v_len=4096)
    need = read_bytes(pruned.graph.ops[0], pruned.graph)
    assert need == 32 * 2 * 128 + 32 * 32768 * 256 + 32 * 4096 * 256
    assert pruned.totals["dram_read_bytes"] == pytest.approx(need, rel=0.02)
    assert pruned.totals["latency_s"] < dense.totals["latency_s"]
    assert pruned.totals["executed_flops"] <= pruned.totals["flops"]
    assert violations(pruned) == []


def test_value_pruned_prefill_pays_for_its_selection():
    """In a prefill the scores do not fit in L2: two radix-select passes recompute Q·Kᵀ
    and the selected values are weighed on the CUDA cores, so it costs more time than
    the dense kernel (what a GPU cannot exploit, SpAtten's engine can)."""
    op = attention(q_len=2048, kv_len=2048, causal=True)
    dense = sim([op])
    pruned = sim([op], v_len=512)
    assert "select passes" in pruned.ops.detail.iloc[0]
    assert pruned.totals["latency_s"] > dense.totals["latency_s"]
    assert pruned.totals["executed_flops"] <= pruned.totals["flops"]
    assert violations(pruned) == []


# ---------------------------------------------------------------- 6. physics
SPREAD = [
    {"kind": "matmul", "m": 1, "n": 4096, "k": 4096},
    {"kind": "matmul", "m": 115, "n": 2048, "k": 2048},
    {"kind": "matmul", "m": 100, "n": 100, "k": 65536, "batch": 4},
    {"kind": "softmax", "rows": 500, "cols": 64},
    {"kind": "elementwise", "fn": "gelu", "elements": 1 << 22},
    {"kind": "topk", "rows": 64, "n": 4096, "k": 16},
    {"kind": "gather", "elements": 64 * 1000, "rows": 64},
    {"kind": "kv_write", "elements": 128 * 64, "cache_elements": 128 * 64 * 8},
    attention(heads=4, kv_heads=2, q_len=7, kv_len=16384, causal=True),
    attention(heads=32, kv_heads=1, q_len=500, kv_len=4096, causal=True, window=256),
    attention(heads=8, q_len=4096, kv_len=4096, causal=True, batch=2),
]


@pytest.mark.parametrize("preset", [SXM2, "volta-v100-pcie"])
@pytest.mark.parametrize("dtype", ["fp16", "fp32"])
def test_a_spread_of_ops_obeys_peak_bandwidth_and_compulsory_bytes(preset, dtype):
    r = sim(SPREAD, preset=preset, dtype=dtype)
    assert violations(r) == []


@pytest.mark.parametrize("change", ["sms=96", "clock_hz=1.9e9", "l2_bytes=12582912",
                                    "dram_bw_bytes_per_s=1.5e12"])
def test_a_bigger_gpu_is_never_slower(change):
    base = sim(SPREAD)
    big = sim(SPREAD, sets=[f"target.{change}"])
    for (_, a), (_, b) in zip(base.ops.iterrows(), big.ops.iterrows()):
        assert b.latency_s <= a.latency_s * (1 + 1e-9), (change, a["name"], a.detail, b.detail)


def test_l2_and_hbm_are_units_the_sms_share():
    """The traffic of every SM queues on one ``hbm`` and one ``l2`` unit at their
    achievable rates; an SM alone is limited by its own draw (Little's law: its bytes
    in flight over the DRAM latency, at least one round trip)."""
    r = sim([{"kind": "elementwise", "fn": "copy", "elements": 2**26}])
    t = r.totals
    assert (t["dram_read_bytes"] + t["dram_write_bytes"]) / t["latency_s"] == pytest.approx(
        spec().dram_bw_bytes_per_s, rel=0.05)
    wl = workload([{"kind": "elementwise", "fn": "copy", "elements": 2**26}])
    g = build_graph(wl)
    units = {task.unit for task in TARGET.lower(g.ops[0], g, spec(), wl.tiling)}
    # the SMs in two groups of equal shares of the grid (a lane stands for its members')
    assert {"hbm", "l2", "stream", "sm0-47", "sm48-79"} <= units
    one = sim([{"kind": "elementwise", "fn": "copy", "elements": 2048}])  # one block
    sp = spec()
    nbytes = 2048 * 2  # read; the writes are posted
    inflight = 256 * 16  # 256 threads, 8 fp16 each
    assert one.totals["latency_s"] >= (max(1.0, nbytes / inflight) * sp.dram_latency_cycles
                                       / sp.clock_hz)
