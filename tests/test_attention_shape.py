"""The shared attention shape (:class:`hwsim.ir.AttentionShape`), against values
worked out by hand from the attribute definitions in :mod:`hwsim.ir.kinds`."""

from __future__ import annotations

import dataclasses

import pytest

from hwsim.ir import AttentionShape, Graph, flops, read_bytes


def shape(**attrs) -> AttentionShape:
    a = dict(batch=1, heads=8, kv_heads=8, head_dim=128, causal=False)
    a.update(attrs)
    return AttentionShape.from_attrs(a)


def attention_graph(q_len, kv_len, heads=8, kv_heads=8, d=128, dv=None, kv_dtype="fp16",
                    kv_store_heads=None, mask=False, **attrs):
    """One attention op; K and V broadcast (a ``view``) from ``kv_store_heads`` heads
    when set, and an explicit ``q_len x kv_len`` mask as a fourth input when ``mask``."""
    dv = dv or d
    g = Graph({"name": "att"})
    q = g.add_tensor([1, heads, q_len, d], "fp16", "input")
    if kv_store_heads:
        k0 = g.add_tensor([1, kv_store_heads, kv_len, d], kv_dtype, "input")
        v0 = g.add_tensor([1, kv_store_heads, kv_len, dv], kv_dtype, "input")
        k = g.add_tensor([1, kv_heads, kv_len, d], kv_dtype)
        v = g.add_tensor([1, kv_heads, kv_len, dv], kv_dtype)
        g.add_op("view", [k0], [k])
        g.add_op("view", [v0], [v])
    else:
        k = g.add_tensor([1, kv_heads, kv_len, d], kv_dtype, "kv_cache")
        v = g.add_tensor([1, kv_heads, kv_len, dv], kv_dtype, "kv_cache")
    ins = [q, k, v]
    if mask:
        ins.append(g.add_tensor([q_len, kv_len], "fp16", "input"))
    o = g.add_tensor([1, heads, q_len, dv], "fp16")
    a = dict(batch=1, heads=heads, kv_heads=kv_heads, head_dim=d, q_len=q_len, kv_len=kv_len,
             causal=False)
    if dv != d:
        a["v_head_dim"] = dv
    a.update(attrs)
    g.add_op("attention", ins, [o], a)
    return g, g.ops[-1]


def test_gqa_causal_prefill_uses_every_row():
    sh = shape(heads=32, kv_heads=8, q_len=2048, kv_len=2048, causal=True)
    assert sh.group == 4  # 32 query heads over 8 K/V heads
    assert (sh.keys, sh.values) == (2048, 2048)
    assert (sh.key_rows, sh.value_rows) == (2048, 2048)
    assert sh.v_head_dim == 128 and sh.v_len == 2048  # defaults: head_dim, kv_len
    assert (sh.sparse_keys, sh.sparse_block, sh.window) == (0, 1, 0)
    assert sh.masked and not sh.sparse and not sh.selects_values
    assert sh.q_offset == 0


def test_multi_query_group_is_every_head():
    sh = shape(heads=16, kv_heads=1, q_len=1, kv_len=512, causal=True)
    assert sh.group == 16 and sh.q_offset == 511  # the decode query sits on the last key


def test_causal_window_over_a_cache_reads_only_the_band():
    # queries at 4700..4999 see keys pos-699..pos: 4001..4999, 999 distinct rows
    sh = shape(q_len=300, kv_len=5000, causal=True, window=700)
    assert sh.q_offset == 4700
    assert (sh.key_rows, sh.value_rows) == (999, 999)
    assert sh.keys == 5000  # a mask cuts executed, not counted, work
    assert sh.masked


def test_symmetric_window_is_clipped_at_the_last_key():
    # queries at 1792..2047, |pos - key| < 300: keys 1493..2047 (none exist past 2047)
    sh = shape(q_len=256, kv_len=2048, window=300)
    assert (sh.key_rows, sh.value_rows) == (555, 555)
    assert sh.masked and not sh.causal


def test_block_sparse_rows_are_the_selections_when_fewer_than_kv_len():
    # 64 queries in blocks of 32: 2 blocks x 4 query heads x 256 keys = 2048 of 4096 rows
    sh = shape(heads=32, kv_heads=8, q_len=64, kv_len=4096, sparse_keys=256, sparse_block=32)
    assert sh.sparse and (sh.keys, sh.values) == (256, 256)
    assert (sh.key_rows, sh.value_rows) == (2048, 2048)
    # 1024 queries select 32 x 4 x 256 = 32768 > 4096: every row may be used
    sh = shape(heads=32, kv_heads=8, q_len=1024, kv_len=4096, sparse_keys=256,
               sparse_block=32)
    assert (sh.key_rows, sh.value_rows) == (4096, 4096)


def test_value_pruning_selects_fewer_values_than_keys():
    # a decode step of a 4-head group: 4 rows x top-256 values = 1024 of 4096 value rows
    sh = shape(heads=16, kv_heads=4, q_len=1, kv_len=4096, causal=True, v_len=256)
    assert (sh.keys, sh.values) == (4096, 256)
    assert (sh.key_rows, sh.value_rows) == (4096, 1024)
    assert sh.selects_values


def test_v_len_beyond_the_selected_keys_selects_nothing():
    sh = shape(q_len=512, kv_len=2048, sparse_keys=128, sparse_block=4, v_len=256)
    assert (sh.keys, sh.values) == (128, 128) and not sh.selects_values
    assert sh.v_len == 256


def test_defaults_and_clipping():
    sh = shape(q_len=4, kv_len=100, sparse_keys=500, sparse_block=0, v_len=1000)
    assert (sh.sparse_keys, sh.sparse_block, sh.v_len) == (100, 1, 100)
    assert AttentionShape.from_attrs(sh.attrs) == sh  # normalized attributes round-trip
    assert sh.dtype is None and sh.k_bytes is None  # no graph: no operands


def test_frozen():
    sh = shape(q_len=4, kv_len=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sh.heads = 2


def test_operands_of_a_view_and_a_mask():
    # K, V: [1, 4, 2048, 128] fp16 views of one stored head (2048*128*2 = 524,288 B);
    # the mask: 512 x 2048 fp16 = 2,097,152 B; Q and O: 8*512*128*2 = 1,048,576 B
    g, op = attention_graph(512, 2048, heads=8, kv_heads=4, kv_store_heads=1, mask=True)
    sh = AttentionShape.of(op, g)
    assert (sh.q_bytes, sh.k_bytes, sh.v_bytes, sh.o_bytes) == (1048576, 524288, 524288,
                                                                1048576)
    assert sh.extra_bytes == 2097152
    assert sh.dtype == "fp16" and sh.group == 2
    assert read_bytes(op, g) == sh.q_bytes + sh.k_bytes + sh.v_bytes + sh.extra_bytes


def test_operands_of_a_quantized_cache_and_v_head_dim():
    # int8 K [1, 8, 4096, 128] = 4 MiB, V [1, 8, 4096, 64] = 2 MiB; fp16 queries
    g, op = attention_graph(1, 4096, heads=32, kv_heads=8, dv=64, kv_dtype="int8",
                            causal=True, v_len=512)
    sh = AttentionShape.of(op, g)
    assert (sh.dtype, sh.k_dtype, sh.v_dtype, sh.o_dtype) == ("fp16", "int8", "int8", "fp16")
    assert (sh.k_bytes, sh.v_bytes, sh.o_bytes) == (4194304, 2097152, 32 * 64 * 2)
    assert sh.v_head_dim == 64 and sh.extra_bytes == 0
    assert (sh.keys, sh.values, sh.key_rows, sh.value_rows) == (4096, 512, 4096, 2048)
    # the counted FLOPs are the two GEMMs over the keys and values each query uses
    assert flops(op) == 2 * 32 * 1 * (4096 * 128 + 512 * 64)


@pytest.mark.parametrize("preset", ["armv8-kunpeng920", "volta-v100-sxm2", "ascend-910b",
                                    "spatten"])
def test_targets_read_the_rows_of_a_symmetric_window_chunk(preset):
    """128 queries at 3968..4095 of 4,096 keys, a symmetric window of 200, 64 keys
    gathered per 8 queries: only keys 3769..4095 (327 rows) are in any window, and
    16 blocks x 64 keys could cover 1,024, so 327 rows of K and V are the compulsory
    read. Every target reads them from DRAM once (they fit on chip); Ascend counted
    ``q + 2·window - 2`` = 526 rows (keys past the last one) before it took the rows
    from the shared shape: 1.51x the compulsory bytes."""
    import hwsim
    from hwsim.targets import resolve
    from hwsim.workload import workload_from_dict

    attrs = dict(heads=8, head_dim=64, q_len=128, kv_len=4096, causal=False, window=200,
                 sparse_keys=64, sparse_block=8)
    sh = shape(**attrs)
    assert sh.key_rows == sh.value_rows == 327
    wl = workload_from_dict({"name": "sws", "dtype": "fp16",
                             "ops": [{"kind": "attention", **attrs}]}, "test")
    r = hwsim.simulate(wl, resolve(preset), fidelity="analytical")
    g = r.graph
    need = read_bytes(g.ops[0], g)
    assert need == 8 * 128 * 64 * 2 + 2 * 8 * 327 * 64 * 2  # Q, then K and V rows
    assert need <= r.totals["dram_read_bytes"] <= 1.05 * need
