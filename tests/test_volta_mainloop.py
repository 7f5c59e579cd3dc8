"""A V100 GEMM main loop's efficiency from its instruction mix (issue 13, item 2).

The single fitted ``mma_efficiency`` gave way to: the loop's issue slots per tile
(:mod:`hwsim.accelerators.volta.mainloop`), the HMMA pipe's microbenchmarked rate
(``hmma_pipe_efficiency``) and the clock the board holds under the load
(``tensor_clock_hz``), each a number of its own."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from hwsim.accelerators.volta import gemm, mainloop
from hwsim.accelerators.volta.gemm import Tile
from hwsim.accelerators.volta.gpu import Gpu, Kernel, Work
from hwsim.api import simulate
from hwsim.errors import InputError
from hwsim.targets import resolve

SXM2 = resolve("volta-v100-sxm2").spec
GPU = Gpu(SXM2)
SHIPPED = gemm.TENSOR_TILES + gemm.SIMT_TILES + gemm.IGEMM_TILES


def eff(tile: Tile, compute: str = "fp16", ea: float = 2, eb: float = 2) -> float:
    return mainloop.loop_efficiency(SXM2, tile, compute, ea, eb)


def test_the_mix_of_cuBLAS_largest_volta_tile():
    """256x128x32, 8 warps of 64x64: per warp and K step 512 HMMA.884 steps (64x64x32
    multiply-adds over 256), 32 LDS.128 (twice the 4 KiB of A and B fragments a warp
    uses: the quad pairs load their own copies), 6 LDG.128 and 6 STS.128 (24 KiB of
    stage over 256 threads), 14 of loop overhead; 2 clocks of the tensor pipe each."""
    mix = mainloop.loop_mix(gemm.TENSOR_TILES[0], "fp16", 2, 2, 1024)
    assert (mix.mma, mix.lds, mix.ldg, mix.sts, mix.overhead) == (512, 32, 6, 6, 14)
    assert mix.mma_cycles == 2.0
    assert mix.pipe == 1024 and mix.issued == 570
    assert mainloop.issue_efficiency(mix) == 1.0  # the pipe, not issue, limits


def test_sgemm_mix_and_pipe_clocks_per_instruction():
    """128x128x8 SGEMM (CUTLASS's SIMT default, 8x8 outputs a thread): 64 FFMA per k,
    16 floats of fragments (4 LDS.128); FFMA and HFMA2 take 2 clocks of 16 lanes,
    DFMA 4 (8 FP64 lanes a partition), IDP4A 2."""
    mix = mainloop.loop_mix(gemm.SIMT_TILES[0], "fp32", 4, 4, 128)
    assert (mix.mma, mix.lds, mix.ldg, mix.sts) == (512, 32, 2, 2)
    rates = SXM2.cuda_flops_per_cycle_per_sm
    assert [mainloop.pipe_cycles(rates[c], c, False) for c in ("fp32", "fp16", "fp64", "int8")] \
        == [2.0, 2.0, 4.0, 2.0]
    assert mainloop.pipe_cycles(1024, "fp16", True) == 2.0


def test_shipped_tiles_are_consistent_and_pipe_bound():
    """Every tile's warps cover it exactly, once a K slice (warps x wm x wn = tm x tn
    x slices), and at the tiles cuBLAS ships the matrix pipe leaves enough free slots
    for the loop's other instructions: the structure costs them nothing (the finding
    the docs state)."""
    for tile in SHIPPED:
        assert tile.warps * tile.wm * tile.wn == tile.tm * tile.tn * tile.slices, tile
        compute = "fp16" if tile.tensor else "int8" if tile in gemm.IGEMM_TILES else "fp32"
        e = 1 if compute == "int8" else 2 if tile.tensor else 4
        assert eff(tile, compute, e, e) == 1.0, tile


@pytest.mark.parametrize("tensor,compute,e", [(True, "fp16", 2), (False, "fp32", 4),
                                              (False, "fp64", 8)])
def test_efficiency_falls_with_the_k_step_and_the_warp_tile(tensor, compute, e):
    """Fewer multiply-adds per iteration leave the fixed loop overhead and the stage's
    loads fewer pipe clocks to hide in: the efficiency never rises as the K step or
    the warp tile shrinks, and falls below 1 at the smallest (for fp64 too at a K step
    of 1: DFMA's 4 clocks leave three free slots each, so it holds out longest)."""
    warps = 4
    sizes = (64, 32, 16) if tensor else (64, 32, 16, 8)  # an HMMA warp tile is >= 16x16
    for w in sizes:
        seq = [eff(Tile(2 * w, 2 * w, tk, warps, 128, w, w, tensor=tensor), compute, e, e)
               for tk in (32, 16, 8, 4)]
        assert all(a >= b for a, b in zip(seq, seq[1:])), (w, seq)
    by_warp = [eff(Tile(2 * w, 2 * w, 4, warps, 128, w, w, tensor=tensor), compute, e, e)
               for w in sizes]
    assert all(a >= b for a, b in zip(by_warp, by_warp[1:])), by_warp
    w = sizes[-1]
    smallest = eff(Tile(2 * w, 2 * w, 1 if compute == "fp64" else 4, warps, 128, w, w,
                        tensor=tensor), compute, e, e)
    assert 0 < smallest < 1.0
    assert smallest <= by_warp[-1]


def test_efficiency_bounds_and_monotone_in_the_pipe():
    """Never above 1 nor at or below 0, over a grid of tiles; a slower pipe (DFMA's 4
    clocks against FFMA's 2) leaves more free issue slots, so it is never less
    efficient on the same tile; wider operands (more LDS/LDG) never help."""
    for w, tk, warps in itertools.product((16, 32, 64), (4, 8, 16, 32), (1, 2, 4, 8)):
        tile = Tile(w * warps, w, tk, warps, 128, w, w, tensor=False)
        f32, f64 = eff(tile, "fp32", 4, 4), eff(tile, "fp64", 8, 8)
        assert 0 < f32 <= 1 and 0 < f64 <= 1
        assert eff(tile, "fp64", 4, 4) >= f32  # same bytes, twice the pipe clocks
        assert f64 <= eff(tile, "fp64", 4, 4)  # same pipe, more bytes
        t16 = dataclasses.replace(tile, tensor=True)
        assert 0 < eff(t16) <= 1
        assert eff(t16, "fp16", 2, 1) >= eff(t16)  # a narrow B: fewer loads


def test_the_kernel_carries_its_loop_efficiency_into_the_pipe_time():
    """The SM's matrix time of a compute-bound group scales as 1 / loop_efficiency:
    the efficiency is the kernel's, not a global factor."""
    work = Work(tensor_flops=1e9)
    full = Kernel("k", "t", 256, 128, 0, [(80, work)])
    half = dataclasses.replace(full, loop_efficiency=0.5)
    t_full = GPU._pipes(full, work, 1)[0] - GPU.turnover_s
    t_half = GPU._pipes(half, work, 1)[0] - GPU.turnover_s
    assert t_half == pytest.approx(2 * t_full, rel=1e-12)
    small = dataclasses.replace(gemm.TENSOR_TILES[-1], tk=4, wm=16, wn=16, tm=16, tn=16)
    g = gemm.Gemm(1, 4096, 4096, 4096, "fp16", "fp16")
    k = gemm.build(GPU, g, small, 1)[0]
    assert k.loop_efficiency == eff(small) < 1.0
    shipped = gemm.build(GPU, g, gemm.TENSOR_TILES[0], 1)[0]
    assert shipped.loop_efficiency == 1.0
    # the pruned selector's floor reads the same efficiency (never above the estimate)
    assert gemm.lower_bound(GPU, g, small, 1, GPU.dram_latency_s) <= gemm.estimate(GPU, [k])


def test_efficiency_is_memoised_per_tile_and_type():
    """Worked out once per (tile, type, widths, pipe rate), not per task or kernel."""
    g = gemm.Gemm(1, 2048, 2048, 2048, "fp16", "fp16")
    gemm.kernels(GPU, g)
    before = mainloop._efficiency.cache_info()
    for _ in range(3):
        gemm.kernels(GPU, g)
    after = mainloop._efficiency.cache_info()
    assert after.misses == before.misses and after.hits > before.hits


def test_tensor_rate_is_structure_times_clock_under_load():
    """The fp16 rate is peak x base clock x HMMA pipe rate x the tile's efficiency: the
    8192^3 GEMM comes out at the product less its waves' tail, below the sustained
    peak and within 5 % of it; the clock is a number of its own (scaling it scales the
    rate), and the energy table does not set the rate (a cheaper FLOP leaves it)."""
    wl = {"ops": [{"kind": "matmul", "m": 8192, "n": 8192, "k": 8192}], "dtype": "fp16"}
    flops = 2 * 8192 ** 3
    sustained = SXM2.sms * 1024 * SXM2.tensor_clock_hz * SXM2.hmma_pipe_efficiency
    assert SXM2.tensor_clock_hz < SXM2.clock_hz
    rate = flops / simulate(wl, "volta-v100-sxm2").totals["latency_s"]
    assert 0.95 * sustained < rate <= sustained
    cheap = ["target.tensor_pj_per_flop.fp16=1.0"]
    low = flops / simulate(wl, "volta-v100-sxm2", sets=cheap).totals["latency_s"]
    slow = flops / simulate(wl, "volta-v100-sxm2",
                            sets=cheap + ["target.tensor_clock_hz=1.0e9"]).totals["latency_s"]
    assert low >= rate
    assert slow / low == pytest.approx(1.0e9 / SXM2.tensor_clock_hz, rel=0.02)


def test_fragment_loads_are_twice_the_operands_a_warp_uses():
    """sm_70 has no ldmatrix: each quad pair loads its own A and B fragments, so a
    warp's LDS bytes are twice its tile's operand bytes (CUDA cores: r + c per k)."""
    for tile in gemm.TENSOR_TILES:
        used = (tile.wm * 2 + tile.wn * 2) * tile.tk
        assert 32 * mainloop.fragment_bytes_per_thread(tile, 2, 2) == 2 * used
    sgemm = gemm.SIMT_TILES[0]  # 8x8 outputs a thread: 16 floats per k
    assert mainloop.fragment_bytes_per_thread(sgemm, 4, 4) == 16 * 4 * sgemm.tk


@pytest.mark.parametrize("field,value", [("tensor_clock_hz", 2e9),
                                         ("hmma_pipe_efficiency", 1.2),
                                         ("cuda_pipe_efficiency", 0.0)])
def test_bad_loop_numbers_are_refused(field, value):
    """A tensor clock above the boost clock, an efficiency outside (0, 1]: one error
    naming the field."""
    with pytest.raises(InputError) as err:
        resolve("volta-v100-sxm2", {field: value})
    assert field in str(err.value)


def test_small_warp_tiles_lose_on_the_shared_memory_pipe():
    """What issue slots do not cost, the fragment loads' bandwidth does: with each quad
    pair loading its own fragments, a 32x32 warp tile moves as many shared-memory bytes
    per FLOP as the 128 B/clock pipe serves in the tensor cores' time and more, while
    the 64x64 warp tiles of the large blocks keep it about half busy."""
    def smem_over_tensor(tile: Tile) -> float:
        smem_s = gemm._smem_wavefront_bytes(tile, 2, 2, tile.tk) / GPU.smem_bw_sm
        tensor_s = 2.0 * tile.tm * tile.tn * tile.tk / GPU.tensor_rate_sm("fp16")
        return smem_s / tensor_s

    big, mid, small, tiny = (smem_over_tensor(gemm.TENSOR_TILES[i]) for i in (0, 2, 5, 8))
    assert big < 0.6  # 256x128, 64x64 warps: 0.50
    assert big < mid < small < tiny  # 128x128 (64x32 warps), 64x64 and 32x32 (32x32)
    assert small > 1.0  # the 64x64 block is bound by its fragment loads (1.06)


GEMMS = [(8192, 8192, 8192), (2048, 2048, 2048), (1024, 1024, 1024), (128, 4096, 4096),
         (64, 64, 4096), (32, 32, 65536), (4096, 11008, 4096)]


def _rate(m, n, k, dtype, sets=()):
    wl = {"ops": [{"kind": "matmul", "m": m, "n": n, "k": k}], "dtype": dtype}
    return 2.0 * m * n * k / simulate(wl, "volta-v100-sxm2", sets=list(sets)).totals["latency_s"]


@pytest.mark.parametrize("m,n,k", GEMMS)
def test_no_gemm_beats_its_pipes_sustained_peak(m, n, k):
    """Useful FLOPs over latency stay under the sustained peak of the pipe that runs
    them: tensor cores at the clock under load x the HMMA pipe's rate (fp16), CUDA
    cores at the boost clock x the FFMA pipe's rate (fp32)."""
    tensor = SXM2.sms * 1024 * SXM2.tensor_clock_hz * SXM2.hmma_pipe_efficiency
    cuda = SXM2.sms * 128 * SXM2.clock_hz * SXM2.cuda_pipe_efficiency
    assert _rate(m, n, k, "fp16") <= tensor
    assert _rate(m, n, k, "fp32") <= cuda


@pytest.mark.parametrize("m,n,k", GEMMS[1:5])
def test_faster_pipes_and_clocks_never_slow_a_gemm(m, n, k):
    """A higher clock under load or a higher sustained pipe rate never makes a GEMM
    slower (the selector may pick another tile, never a slower result); fp32 does not
    read the tensor clock at all."""
    for field, values in (("tensor_clock_hz", (1.1e9, 1.29e9, 1.53e9)),
                          ("hmma_pipe_efficiency", (0.8, 0.902, 1.0))):
        rates = [_rate(m, n, k, "fp16", [f"target.{field}={v}"]) for v in values]
        assert all(a <= b * (1 + 1e-12) for a, b in zip(rates, rates[1:])), (field, rates)
    assert _rate(m, n, k, "fp32", ["target.tensor_clock_hz=1.0e9"]) == _rate(m, n, k, "fp32")
