"""V100 batched GEMMs of many small products: the batched-small kernel (issue 13, item 2)."""

from __future__ import annotations

import dataclasses

import pytest
from physics import violations

import hwsim
from hwsim.accelerators.volta import batched, gemm
from hwsim.accelerators.volta.dtypes import element_bytes
from hwsim.accelerators.volta.gpu import Gpu
from hwsim.targets import resolve
from hwsim.workload import workload_from_dict

SXM2 = resolve("volta-v100-sxm2").spec
GPU = Gpu(SXM2)

SMALL = [(100_000, 16, 16, 16), (100_000, 8, 8, 8), (81_920, 4, 4, 4), (100_000, 2, 2, 2),
         (20_000, 32, 32, 32), (4096, 64, 64, 64), (50_000, 16, 8, 24), (30_000, 12, 20, 6)]


def best_tile_s(g: gemm.Gemm) -> float:
    """The fastest block-tile configuration of ``g`` (the path before this kernel)."""
    return min(gemm.estimate(GPU, gemm.build(GPU, g, t, s)) for t, s in gemm.configs(GPU, g))


@pytest.mark.parametrize("dtype", ["fp16", "fp32", "fp64"])
@pytest.mark.parametrize("b,m,n,k", [(100_000, 16, 16, 16), (100_000, 8, 8, 8),
                                     (81_920, 4, 4, 4), (100_000, 2, 2, 2)])
def test_small_batches_take_the_batched_kernel_and_beat_the_tiles(dtype, b, m, n, k):
    """A batch of products of 16 or less: the selector picks the batched-small kernel,
    several products to a block, and it beats the best tile (8 x 8 and less: by 2x or
    more, the tiles paying a padded block and its turnover per product)."""
    g = gemm.Gemm(b, m, n, k, dtype, dtype)
    ks = gemm.kernels(GPU, g)
    assert len(ks) == 1 and ks[0].notes["variant"] == "batched-small"
    assert ks[0].notes["per_block"] >= 1
    t, tiles = gemm.estimate(GPU, ks), best_tile_s(g)
    assert t <= tiles
    if m <= 8:
        assert t * 2 < tiles
        assert ks[0].notes["per_block"] > 1  # several products share a block


@pytest.mark.parametrize("b,m,n,k", [(1, 16, 16, 16), (4, 128, 128, 128), (8, 16, 16, 512),
                                     (2, 1024, 1024, 64), (64, 65, 64, 64)])
def test_large_or_unbatched_products_keep_the_tiles(b, m, n, k):
    """One product, or any of M, N and K over 64: no batched-small kernel."""
    g = gemm.Gemm(b, m, n, k, "fp16", "fp16")
    assert batched.kernel(GPU, g, True) is None
    assert all(kk.notes.get("variant") != "batched-small" for kk in gemm.kernels(GPU, g))


def test_fp64_operands_over_the_shared_memory_limit_have_no_kernel():
    """64 x 64 x 64 in fp64: A and B take 64 KiB, over a block's 48 KiB."""
    assert batched.kernel(GPU, gemm.Gemm(1000, 64, 64, 64, "fp64", "fp64"), False) is None
    assert batched.kernel(GPU, gemm.Gemm(1000, 64, 64, 32, "fp64", "fp64"), False) is not None


def test_fp16_runs_on_the_tensor_cores_padded_to_16_or_on_hfma2_unaligned():
    """Aligned fp16 (dimensions multiples of 8): tensor cores, M, N and K padded to the
    wmma 16; unaligned (K = 6, A's stored rows): the CUDA cores, the product's FLOPs
    exactly."""
    k = batched.kernel(GPU, gemm.Gemm(1000, 8, 8, 8, "fp16", "fp16"), True)
    assert k.tensor and k.total().tensor_flops == 1000 * 2 * 16 ** 3
    g = gemm.Gemm(1000, 8, 8, 6, "fp16", "fp16")
    assert not gemm.tensor_aligned(g)
    ks = gemm.kernels(GPU, g)
    assert not ks[0].tensor and ks[0].notes["variant"] == "batched-small"
    assert ks[0].total().cuda_flops == 1000 * 2 * 8 * 8 * 6


@pytest.mark.parametrize("dtype", ["fp16", "fp32", "fp64"])
@pytest.mark.parametrize("b,m,n,k", SMALL)
def test_physics_peaks_and_compulsory_bytes(dtype, b, m, n, k):
    """Never above the peak compute of its pipe or the HBM peak; every product's
    operands read from HBM at least once and its output written once (remainder
    blocks included: the batch need not divide into blocks)."""
    g = gemm.Gemm(b, m, n, k, dtype, dtype)
    ks = batched.kernel(GPU, g, gemm.tensor_aligned(g))
    if ks is None:
        return
    t = gemm.estimate(GPU, [ks])
    total = ks.total()
    e = element_bytes(dtype)
    assert total.hbm_read >= b * (m * k + k * n) * e * (1 - 1e-12)
    assert total.hbm_write >= b * m * n * e * (1 - 1e-12)
    assert (total.hbm_read + total.hbm_write) / t <= SXM2.dram_peak_bw_bytes_per_s
    s = SXM2
    if ks.tensor:
        peak = s.tensor_flops_per_cycle_per_sm["fp16"] * s.sms * s.clock_hz
        assert total.tensor_flops / t <= peak
    else:
        peak = s.cuda_flops_per_cycle_per_sm[ks.dtype] * s.sms * s.clock_hz
        assert total.cuda_flops == pytest.approx(2.0 * b * m * n * k, rel=1e-12)
        assert total.cuda_flops / t <= peak


@pytest.mark.parametrize("change", [{"sms": 160}, {"clock_hz": 1.9e9},
                                    {"dram_bw_bytes_per_s": 1.5e12},
                                    {"l2_bw_bytes_per_s": 4.3e12}])
@pytest.mark.parametrize("dtype", ["fp16", "fp32"])
def test_a_bigger_gpu_is_never_slower(change, dtype):
    big = Gpu(dataclasses.replace(SXM2, **change))
    for b, m, n, k in SMALL:
        g = gemm.Gemm(b, m, n, k, dtype, dtype)
        tensor = gemm.tensor_aligned(g)
        base = gemm.estimate(GPU, [batched.kernel(GPU, g, tensor)])
        assert gemm.estimate(big, [batched.kernel(big, g, tensor)]) <= base * (1 + 1e-12)
        picked = gemm.estimate(GPU, gemm.kernels(GPU, g))
        assert gemm.estimate(big, gemm.kernels(big, g)) <= picked * (1 + 1e-12)


@pytest.mark.parametrize("dtype", ["fp16", "fp32", "fp64"])
def test_the_selector_keeps_the_fastest_candidate(dtype):
    """Over small and not-so-small batched shapes the pick is never slower than any
    candidate, the batched kernel included (and is it wherever it is strictly faster)."""
    for b, m, n, k in SMALL + [(64, 64, 64, 64), (256, 48, 64, 32), (12, 64, 64, 64)]:
        g = gemm.Gemm(b, m, n, k, dtype, dtype)
        t = gemm.estimate(GPU, gemm.kernels(GPU, g))
        cands = [gemm.estimate(GPU, ks) for ks in gemm.candidates(GPU, g)]
        assert t == min(cands)
        small = batched.kernel(GPU, g, gemm.tensor_aligned(g))
        if small is not None and gemm.estimate(GPU, [small]) < best_tile_s(g):
            assert gemm.kernels(GPU, g)[0].notes.get("variant") == "batched-small"


def test_a_batch_shared_weight_is_read_once():
    """Many small products against one B (a small expert's weight): B from HBM once."""
    g = gemm.Gemm(10_000, 16, 16, 16, "fp16", "fp16", b_shared=True)
    k = batched.kernel(GPU, g, True)
    total = k.total()
    assert total.hbm_read == pytest.approx((10_000 * 16 * 16 + 16 * 16) * 2, rel=1e-12)
    assert total.l2_bytes >= 10_000 * 2 * 16 * 16 * 2  # every product's loads cross L2


def test_a_per_head_attention_bmm_runs_through_the_whole_target():
    """A workload's bmm of 12 heads x 512 sequences of 16 tokens (head 64): the report
    names the kernel and obeys the physics checks in both fidelities."""
    wl = workload_from_dict({"name": "t", "dtype": "fp16",
                             "ops": [{"kind": "matmul", "batch": 12 * 512, "m": 16, "n": 16,
                                      "k": 64}]}, "<test>")
    for fidelity in ("event", "analytical"):
        r = hwsim.simulate(wl, "volta-v100-sxm2", fidelity=fidelity)
        assert violations(r) == []
        assert "batched_s884gemm" in r.ops.iloc[0].detail
