"""V100 GEMMs as cuBLAS picks them for skinny and unaligned shapes (issue 13)."""

from __future__ import annotations

import pytest

from hwsim.accelerators.volta import gemm
from hwsim.accelerators.volta.gpu import Gpu
from hwsim.targets import resolve

SXM2 = resolve("volta-v100-sxm2").spec
GPU = Gpu(SXM2)


def pick(m, n, k, dtype):
    g = gemm.Gemm(1, m, n, k, dtype, dtype)
    ks = gemm.kernels(GPU, g)
    return ks, gemm.estimate(GPU, ks)


def test_few_columns_stream_a_once_as_a_gemv():
    """fp32, N = 16, K = 4096: the transposed GEMV streams A (64 MiB) once, at close to
    the HBM rate; the tiled kernels (at least 32 columns) waste half their FLOPs."""
    ks, t = pick(4096, 16, 4096, "fp32")
    assert ks[0].name.endswith(":gemv")
    a_bytes = 4096 * 4096 * 4
    assert t >= a_bytes / SXM2.dram_bw_bytes_per_s
    assert a_bytes / t > 0.8 * SXM2.dram_bw_bytes_per_s
    tiled = min(gemm.estimate(GPU, gemm.build(GPU, gemm.Gemm(1, 4096, 16, 4096, "fp32", "fp32"),
                                              tile, split))
                for tile in gemm.SIMT_TILES for split in gemm.SPLITS)
    assert t < tiled


@pytest.mark.parametrize("m,n,k,trans_a", [(4096, 4096, 4100, False), (4095, 4096, 4096, True),
                                           (4096, 4092, 4096, False)])
def test_fp16_rows_off_by_8_leave_the_tensor_cores(m, n, k, trans_a):
    """A stored row (a leading dimension) whose length is not a multiple of 8 halves:
    K for A [m, k], M for A stored [k, m], N for B and C."""
    g = gemm.Gemm(1, m, n, k, "fp16", "fp16", trans_a=trans_a)
    assert not gemm.tensor_aligned(g)
    ks = gemm.kernels(GPU, g)
    t = gemm.estimate(GPU, ks)
    assert "s884gemm" not in ks[0].name and "hgemm" in ks[0].name
    aligned, t_aligned = pick(4096, 4096, 4096, "fp16")
    assert "s884gemm" in aligned[0].name
    # HFMA2 at 256 FLOP/clock/SM against HMMA at 1,024: about 4x slower
    assert 3.0 < t / t_aligned < 5.0


def test_fp16_row_count_off_by_8_keeps_the_tensor_cores():
    """DeepBench's 5124 x 9124 x 2048 NN (cuBLAS's N = 9124, the row count here) runs
    on the tensor cores (96 TFLOP/s measured); only its last row tiles are partly empty."""
    ks, t = pick(9124, 5128, 2048, "fp16")
    assert "s884gemm" in ks[0].name
    _, t8 = pick(9128, 5128, 2048, "fp16")
    assert t8 * 0.98 <= t <= t8


def test_small_tiles_for_narrow_products():
    """32 x 96 x 8192 fp32: 32-row tiles (none padded) beat 64-row ones (half padding);
    a square product keeps its large tiles."""
    ks, _ = pick(32, 96, 8192, "fp32")
    tm, tn = (int(x) for x in ks[0].tile.split("x")[:2])
    assert min(tm, tn) == 32
    big, _ = pick(1024, 1024, 1024, "fp32")
    assert min(int(x) for x in big[0].tile.split("x")[:2]) >= 64


def test_a_gemv_that_ties_a_tile_is_kept():
    """A one-row fp16 LM head (1 x 32000 x 4096, rows of 4,096 halves: the tensor path is
    allowed) streams its weight at the HBM floor as a GEMV and as a 64-row tensor-core
    tile alike; the GEMV is kept: it executes the product's FLOPs, the tile 64 times them."""
    g = gemm.Gemm(1, 1, 32000, 4096, "fp16", "fp16", trans_b=True)
    assert gemm.tensor_aligned(g)
    ks = gemm.kernels(GPU, g)
    assert ks[0].name.endswith(":gemv")
    t = gemm.estimate(GPU, ks)
    tiles = [gemm.estimate(GPU, gemm.build(GPU, g, tile, split))
             for tile, split in gemm.configs(GPU, g)]
    assert min(tiles) == t  # a tie, at the weight's bytes over the HBM rate
    assert t >= 32000 * 4096 * 2 / SXM2.dram_bw_bytes_per_s


def test_sliced_k_fills_the_sms_where_whole_tiles_cannot():
    """DeepBench's SGEMM 4096 x 64 x 4096 (64 rows here): 64 x 64 tiles give 64 blocks of
    2 warps for 80 SMs; cuBLAS's 128x32_sliced1x4 (32 x 128 here, 8 warps, four K
    slices) puts four times the warps on the same grid and runs near the FFMA rate
    (12.3 TFLOP/s measured), over 1.8x the whole tiles' best. A square 1024^3 (256
    blocks of 64 x 64) keeps its whole tiles."""
    g = gemm.Gemm(1, 64, 4096, 4096, "fp32", "fp32")
    ks = gemm.kernels(GPU, g)
    assert ks[0].tile == "32x128x32" and ks[0].threads == 256
    t = gemm.estimate(GPU, ks)
    whole = min(gemm.estimate(GPU, gemm.build(GPU, g, tile, split))
                for tile, split in gemm.configs(GPU, g) if tile.slices == 1)
    assert whole > 1.8 * t
    peak = SXM2.sms * SXM2.cuda_flops_per_cycle_per_sm["fp32"] * SXM2.clock_hz
    assert 0.6 * peak < 2 * 64 * 4096 * 4096 / t <= peak
    big, _ = pick(1024, 1024, 1024, "fp32")
    assert min(int(x) for x in big[0].tile.split("x")[:2]) >= 64


@pytest.mark.parametrize("m,n,k,dtype", [(1, 4096, 4096, "fp16"), (4096, 16, 4096, "fp32"),
                                         (4096, 4096, 4096, "fp16"), (128, 1024, 4096, "fp32")])
def test_operand_layout_names_the_variant_and_keeps_the_time(m, n, k, dtype):
    """cuBLAS has every GEMM and GEMV kernel in the NN/NT/TN/TT storage orders, each
    reading its operands coalesced along their stored rows: the layout picks the variant
    (notes["op"]) and leaves the time alone (M, see hwsim/accelerators/volta/gemm.py)."""
    times = {}
    for ta in (False, True):
        for tb in (False, True):
            g = gemm.Gemm(1, m, n, k, dtype, dtype, trans_a=ta, trans_b=tb)
            ks = gemm.kernels(GPU, g)
            times[g.op] = gemm.estimate(GPU, ks)
            if ks[0].name.endswith(":gemv") and m > gemm.GEMV_MAX_ROWS:
                # the transposed product C^T = B^T A^T: roles swap, stored orders flip
                assert ks[0].notes["op"] == ("N" if tb else "T") + ("N" if ta else "T")
            else:
                assert ks[0].notes["op"] == g.op
    assert max(times.values()) == pytest.approx(min(times.values()), rel=1e-12)


def test_linear_layout_reaches_the_kernel_from_a_workload():
    """An ops workload's trans_b reaches the GEMV as its gemv2T variant (B read along K)."""
    from hwsim.workload.build import build_graph
    from hwsim.workload.loader import workload_from_dict

    wl = workload_from_dict({"name": "linear", "dtype": "fp16", "ops": [
        {"kind": "matmul", "m": 1, "n": 4096, "k": 4096, "trans_b": True},
        {"kind": "matmul", "m": 1, "n": 4096, "k": 4096}]})
    g = build_graph(wl)
    vt = resolve("volta-v100-sxm2")
    (wt,), (w,) = (vt.target.kernels_of(op, g, vt.spec) for op in g.ops)
    assert (wt.notes["variant"], wt.notes["op"]) == ("gemv2T", "NT")
    assert (w.notes["variant"], w.notes["op"]) == ("gemv2N", "NN")
    assert gemm.estimate(GPU, [wt]) == pytest.approx(gemm.estimate(GPU, [w]), rel=1e-12)


def _exhaustive(g: gemm.Gemm):
    """The selector's plain definition: every candidate built and estimated, the first
    of the least estimate kept."""
    best = None
    for ks in gemm.candidates(GPU, g):
        t = gemm.estimate(GPU, ks)
        if best is None or t < best[0]:
            best = (t, ks)
    return best


def test_pruned_selector_picks_what_the_exhaustive_search_picks():
    """The selector skips configurations whose lower bound exceeds the best estimate so
    far (gemm.lower_bound): on random GEMMs of every dtype, layout, batch sharing and
    L2 carry, it picks the same kernels, with the same estimate to the last bit; each
    bound is at most its configuration's estimate, and the pruning skips some."""
    import random

    rng = random.Random(14)
    skipped = 0
    for _ in range(400):
        dt = rng.choice(["fp16", "fp16", "fp32", "int8", "bf16", "fp64"])
        g = gemm.Gemm(rng.choice([1, 2, 12, 32]),
                      rng.choice([1, 8, 16, 33, 64, 128, 512, 777, 4096]),
                      rng.choice([1, 16, 64, 768, 1000, 3072, 11008]),
                      rng.choice([8, 64, 768, 3072, 4096]), dt, dt,
                      a_shared=rng.random() < 0.2, b_shared=rng.random() < 0.5,
                      b_dtype=rng.choice(["", "int8"]) if dt == "fp16" else "",
                      extra_read=rng.choice([0.0, 4096.0]), trans_b=rng.random() < 0.5,
                      a_onchip=rng.random() < 0.2, b_onchip=rng.random() < 0.2,
                      out_onchip=rng.random() < 0.2)
        t, want = _exhaustive(g)
        got = gemm.kernels(GPU, g)
        assert [(k.name, k.tile, k.grid) for k in got] == [(k.name, k.tile, k.grid) for k in want]
        assert gemm.estimate(GPU, got) == t
        first_s = None if g.a_onchip and g.b_onchip else GPU.dram_latency_s
        for tile, split in gemm.configs(GPU, g):
            bound = gemm.lower_bound(GPU, g, tile, split, first_s)
            est = gemm.estimate(GPU, gemm.build(GPU, g, tile, split))
            assert bound <= est
            skipped += bound > t
    assert skipped > 1000
