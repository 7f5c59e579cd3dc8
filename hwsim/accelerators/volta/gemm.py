"""GEMM kernels as a cuBLAS-like library would pick them on Volta.

Tile shapes are those of the Volta kernels of cuBLAS and CUTLASS (names like
``volta_fp16_s884gemm_fp16_256x128_ldg8``): fp16 operands on the tensor cores
(HMMA.884, fp32 accumulation) with block tiles 256x128, 128x256, 128x128,
128x64, 64x128 and 64x64, K step 32, two shared-memory stages; fp32, tf32 and
bf16 (which sm_70 computes in fp32, :mod:`.dtypes`) and fp64 on the CUDA cores
with SGEMM tiles 128x128, 128x64 and 64x64, K step 8; int8 on the CUDA cores'
``dp4a`` with the same tiles, K step 32 (CUTLASS's SIMT ``igemm``). Narrow products
(M or N under 64) may also take tiles down to 32x32, and in fp32 (SGEMM) cuBLAS's
*sliced-K* tiles (``volta_sgemm_128x32_sliced1x4`` and smaller: four groups of warps
each take a quarter of every K step and add their partial tiles in shared memory),
which also serve a product whose 64x64 tiles would leave SMs without a block (the
SGEMM 4096x64x4096 of DeepBench: 64 such blocks for 80 SMs). A skinny product (M or
N of at most 16) may instead use a GEMV-like CUDA-core kernel, kept when it ties a
tile (it executes the product's FLOPs, a tile pads its rows). A batch of small
products (M, N and K at most 64) may run as the batched-small kernel (:mod:`.batched`,
several whole products a block), likewise kept on a tie.

fp16 runs on the tensor cores when cuBLAS 9-10 allows it: its leading dimensions (the
stored rows' lengths) multiples of 8 halves (:data:`TENSOR_ALIGN`); a row count that
is not (DeepBench's N = 9124) keeps the tensor path with a partly empty last tile.

For each candidate tile and split-K factor (1, 2, 4, 8, 16) the selector
estimates the kernel time from waves, occupancy and per-block work (the same
model the tasks use) and keeps the fastest, as cuBLAS's heuristics aim to.
Split-K writes fp32 partials and adds a reduction kernel; cuBLAS keeps them in
its workspace, 4 MiB by default before Hopper (cuBLAS documentation,
``cublasSetWorkspace``), so a split is a candidate only when its partials fit
there *and* in half the L2: they are then written to and read back from L2 by
the reduction kernel that follows at once, and never reach HBM. (A split whose
partials went through HBM would make a GEMM with fewer rows move more DRAM
bytes than one with more: pruning tokens would cost traffic.)

Operand layout (``trans_a`` / ``trans_b``, :mod:`hwsim.ir.kinds`): cuBLAS ships each of
its Volta GEMM kernels in the four storage orders (the NN/NT/TN/TT variants of
``cublasGemmEx``'s ``transa``/``transb``), and CUTLASS's Volta tiles load a tile with
128-bit vectors along whichever dimension is contiguous, into a shared-memory layout
made for it (its "congruous" and "crosswise" layouts), so a tile's global loads are
coalesced either way and the tile costs the same (M). In CUTLASS's sm70 defaults
(``default_mma_core_sm70.h``) a congruous operand (M- or N-contiguous) is loaded by
warps raked 8 accesses wide along its contiguous dimension (128 bytes of halves) and 4
deep in K, a crosswise one (K-contiguous) 4 wide along K (the whole 32-deep K step, 64
bytes) and 8 rows deep: every 32-byte sector fully used either way. What differs is
where the grid's loads land in DRAM at one K step: a whole stored row of the congruous
operand across its blocks, 64-byte pieces of many rows for the crosswise one;
:mod:`hwsim.dram`'s HBM2 model (with the SpAtten preset's HBM2 geometry and timings; the
V100 preset has none) prices 64 bytes per activation at 0.94 of a stream's rate, so the
row buffers do not explain DeepBench's 1.5-1.9x slower TN fp16 calls at N = 16-128
either (docs/targets/volta.md, Validation). The GEMV kernels exist in both orders too
(cuBLAS's ``gemv2N`` / ``gemv2T`` families): the streamed matrix is read with 128-bit
loads along its stored rows, along the output columns (B stored [k, n]) or along K (B
stored [n, k], a dot product per column whose partial sums a warp adds up), the same
bytes in flight either way. So on this target the layout names the kernel variant
(``notes["op"]``, cuBLAS's letters for A then B, "N" row-major as the math, "T"
transposed) and does not move time.

L2 reuse: the blocks of one wave walk K in step, so a wave reads each distinct
row panel of A and column panel of B from HBM once and the L2 (6 MiB) serves
the other blocks; successive waves re-read (an operand that fits in half the
L2 is read once in all). Blocks are launched M-tile fastest. Each operand's
bytes are those of its stored type; a bias is read once by the epilogue.
An operand that an earlier op left in the L2 (:mod:`hwsim.onchip`, ``a_onchip`` /
``b_onchip``) costs no HBM bytes at all, its re-reads included, and an output the
next op reads from the L2 (``out_onchip``) is not written to HBM.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache
from itertools import islice
from operator import attrgetter

from . import batched
from .dtypes import UNPACK_OPS_PER_ELEMENT, datapath, element_bytes
from .gpu import Gpu, Kernel, Work, cdiv, queued_start_s
from .mainloop import WARP, fragment_bytes_per_thread, loop_efficiency


@dataclass(frozen=True)
class Tile:
    """A thread block's tile of C (``tm`` x ``tn``, ``tk`` of K a main-loop step), its
    warps and registers a thread, its warp tile, the datapath (tensor cores or CUDA
    cores), the shared-memory stages, and the K slices of a sliced-K kernel."""

    tm: int
    tn: int
    tk: int
    warps: int
    regs: int
    wm: int  # warp tile: the block's warps tile it, warps x wm x wn = tm x tn
    wn: int
    tensor: bool = True
    stages: int = 2
    # sliced K: the block's warps form this many groups, each multiplying the whole
    # block tile over its own share of every K step; the groups add their partial
    # tiles through shared memory at the end (CUTLASS's "sliced-K", docs
    # efficient_gemm.md, "Parallelized Reductions"; cuBLAS's *_sliced1x4 kernels)
    slices: int = 1


TENSOR_TILES = (
    Tile(256, 128, 32, 8, 232, 64, 64),
    Tile(128, 256, 32, 8, 232, 64, 64),
    Tile(128, 128, 32, 8, 128, 64, 32),
    Tile(128, 64, 32, 4, 128, 64, 32),
    Tile(64, 128, 32, 4, 128, 32, 64),
    Tile(64, 64, 32, 4, 96, 32, 32),
    # small tiles for skinny products (cuBLAS's *_64x32 / 32x32 Volta kernels, S):
    # a warp tile of 32x32 per warp
    Tile(64, 32, 32, 2, 96, 32, 32),
    Tile(32, 64, 32, 2, 96, 32, 32),
    Tile(32, 32, 32, 1, 96, 32, 32),
)
SIMT_TILES = (
    Tile(128, 128, 8, 8, 128, 64, 32, tensor=False),
    Tile(128, 64, 8, 4, 128, 64, 32, tensor=False),
    Tile(64, 64, 8, 2, 128, 32, 64, tensor=False),
    # cuBLAS's small SGEMM tiles (sgemm_32x32 / 64x32 kernel families, S): 64 threads
    # of 4x8 or 4x4 outputs
    Tile(64, 32, 8, 2, 64, 32, 32, tensor=False),
    Tile(32, 64, 8, 2, 64, 32, 32, tensor=False),
    Tile(32, 32, 8, 2, 64, 16, 32, tensor=False),
    # cuBLAS's sliced-K SGEMMs for products too small to fill the SMs with whole tiles
    # (volta_sgemm_128x32_sliced1x4 and _32x32_sliced1x4 in public profiles of cuBLAS
    # 10-11 on V100, a 64x32_sliced1x4 on later GPUs; cuBLAS names M x N of its
    # column-major C, so its 128x32 is 32 rows x 128 columns here): four slices of 8
    # over a K step of 32. The 128x32 kernel runs 256 threads at 134 registers (CUPTI
    # in a public profile): two warps of 32x64 a slice; the smaller ones one warp a
    # slice, of 32x64 (64 accumulators a thread, as the 128x32's) or 32x32 (32, as the
    # small tiles' 64 registers above). M: the smaller kernels' threads and registers
    # are not published
    Tile(32, 128, 32, 8, 134, 32, 64, tensor=False, slices=4),
    Tile(32, 64, 32, 4, 134, 32, 64, tensor=False, slices=4),
    Tile(32, 32, 32, 4, 64, 32, 32, tensor=False, slices=4),
)
# cuBLAS 9-10 on sm_70 runs an fp16 GEMM on the tensor cores only when its leading
# dimensions lda, ldb and ldc are multiples of 8 halves (16 bytes, one 128-bit load per
# thread along a stored row; cuBLAS documentation for CUDA 9-10, "Tensor Core Usage" /
# "tensorop-restrictions"), otherwise the HFMA2 kernels on the CUDA cores. DeepBench's
# gemm_bench.cu (baidu-research/DeepBench, code/nvidia, PAD_KERNELS) encodes that rule from
# the same page: it pads exactly the dimensions that are leading dimensions in each storage
# order (cuBLAS's m and k for NN and TN, m and n for NT, all three for TT) and never the
# others. In the row-major terms here a leading dimension is a stored row's length: A's (k,
# or m when trans_a), B's (n, or k when trans_b) and C's (n); see tensor_aligned (S)
TENSOR_ALIGN = 8
# the tiles under 64 wide are candidates only when M or N is under this: cuBLAS's
# heuristic picks its 32-wide kernels for narrow products (M: no public rule; a square
# 1024^3 SGEMM runs 64x64-or-larger tiles in profiles)
SMALL_TILE_BELOW = 64
GEMV_INFLIGHT_BYTES = 64.0  # a GEMV thread's loads of B in flight: 4 x 128-bit, unrolled (M)
GEMV_MAX_ROWS = 16  # a product with at most this many rows (or columns) may run as GEMV
# dp4a consumes 4 int8 of K per instruction: the SIMT tiles with a K step of 32
IGEMM_TILES = tuple(Tile(t.tm, t.tn, 32, t.warps, t.regs, t.wm, t.wn, tensor=False)
                    for t in SIMT_TILES if t.slices == 1)
SPLITS = (1, 2, 4, 8, 16)
ELEM = {"fp16": 2, "bf16": 2, "fp32": 4, "tf32": 4, "fp64": 8, "int8": 1}
SPLITK_WORKSPACE_BYTES = 4 * 2**20  # cuBLAS default workspace before Hopper (cublasSetWorkspace)


@dataclass(frozen=True)
class Gemm:
    """A batched matrix product, ``batch`` products ``C[m, n] = A[m, k] B[k, n]``: the
    types of its operands and result, which operand is one for the whole batch, how A
    and B are stored, what the epilogue reads, and which operands are already in the
    L2 or leave C there (:mod:`hwsim.onchip`). The name only labels its kernels."""

    batch: int
    m: int
    n: int
    k: int
    dtype: str
    out_dtype: str
    a_shared: bool = False  # one A for every batch item
    b_shared: bool = False  # one B for every batch item (a weight)
    name: str = "gemm"
    b_dtype: str = ""  # stored type of B when it differs from A's (a narrow weight or key)
    extra_read: float = 0.0  # bytes the epilogue reads once (a bias)
    trans_a: bool = False  # A stored [k, m] (hwsim.ir.kinds)
    trans_b: bool = False  # B stored [n, k] (nn.Linear's weight)
    # carried between ops in the L2 (hwsim.onchip): A or B already there (read from the
    # L2, not HBM), C left there for the next op (not written to HBM)
    a_onchip: bool = False
    b_onchip: bool = False
    out_onchip: bool = False

    @property
    def op(self) -> str:
        """cuBLAS-style letters of the kernel variant: A's then B's storage (N or T)."""
        return ("T" if self.trans_a else "N") + ("T" if self.trans_b else "N")

    @property
    def a_bytes(self) -> float:
        return element_bytes(self.dtype)

    @property
    def b_bytes(self) -> float:
        return element_bytes(self.b_dtype or self.dtype)

    @property
    def out_bytes(self) -> float:
        return element_bytes(self.out_dtype)


# configurations picked, kept per GPU (:func:`kernels`); a long run starts afresh past this
PICKS_KEPT = 512
# a Gemm's fields but its name, as a tuple: the key its pick is kept by (two products
# with equal keys are equal but for their names; a tuple is made in well under a
# microsecond where ``replace(g, name="")``, a frozen dataclass built anew, took about 6)
_pick_key = attrgetter(*[f.name for f in fields(Gemm) if f.name != "name"])


def kernels(gpu: Gpu, g: Gemm) -> list[Kernel]:
    """The kernels of the fastest configuration for ``g``: the first, in
    :func:`candidates`' order, of those whose :func:`estimate` is least.

    The pick depends on every field of ``g`` but its name (which only labels the
    kernels) and on the GPU, so it is kept on the GPU by ``g``'s other fields: a
    GEMM met again (the same layer in the next point of a sweep, a BERT pooler at
    every sequence length, a K projection shaped as its Q one) has its picked
    configuration built under its own name, none searched again (the same kernels:
    :func:`build` and :func:`gemv` read nothing else; a test holds sweeps in both
    orders to fresh runs).
    """
    key = _pick_key(g)
    picks = gpu.__dict__.setdefault("_gemm_picks", {})
    pick = picks.get(key)
    if pick is not None:
        tile, split, j = pick
        if tile is not None:
            return build(gpu, g, tile, split)
        return next(islice(kernel_candidates(gpu, g), j, None))
    pick, ks = _search(gpu, g)
    if len(picks) >= PICKS_KEPT:
        picks.clear()
    picks[key] = pick
    return ks


def _search(gpu: Gpu, g: Gemm) -> tuple[tuple, list[Kernel]]:
    """:func:`kernels`, searched: ((tile, split, ``None``) or (``None``, ``None``, the
    place among :func:`kernel_candidates`), the kernels).

    The GEMV and batched-small kernels are estimated first (they come first in
    :func:`candidates`).
    Each tile configuration is built and estimated only when its :func:`lower_bound`
    could still beat the best estimate found so far: the configurations are visited
    by their bounds, least first; the visit skips one whose bound equals the best
    and comes after it in that order (a tie keeps the first), and stops at the first
    bound above the best. A bound never exceeds its configuration's estimate, so the
    pick is the exhaustive search's, to the last bit (a test holds the two equal)."""
    # the first load's latency: from HBM unless both operands are in the L2
    first_s = None if g.a_onchip and g.b_onchip else gpu.dram_latency_s
    best = None  # (estimate, place, kernels, pick)
    n = 0
    for j, ks in enumerate(kernel_candidates(gpu, g)):  # (first in candidates' order)
        t = estimate(gpu, ks)
        if best is None or t < best[0]:
            best = (t, n, ks, (None, None, j))
        n += 1
    plans = []  # (lower bound, place in candidates' order, tile, split)
    common = _bound_terms(gpu, g, first_s)
    for i, (tile, split) in enumerate(configs(gpu, g), start=n):
        plans.append((_bound(gpu, g, common, tile, split), i, tile, split))
    plans.sort(key=lambda p: (p[0], p[1]))
    for bound, i, tile, split in plans:
        if best is not None and bound >= best[0]:
            if bound > best[0]:
                break  # this configuration and every later one take longer than the best
            if i > best[1]:
                continue  # at best a tie, which the earlier one wins
        ks = build(gpu, g, tile, split)
        t = estimate(gpu, ks)
        if best is None or t < best[0] or (t == best[0] and i < best[1]):
            best = (t, i, ks, (tile, split, None))
    return best[3], best[2]


# the HBM floor of a bound is taken this much below its computed value: its bytes are
# summed in another order than the estimate's, so they may differ in the last bits
BOUND_MARGIN = 1e-9


def lower_bound(gpu: Gpu, g: Gemm, tile: Tile, split: int, first_s: float | None) -> float:
    """A floor under :func:`estimate` of ``build(gpu, g, tile, split)``, from the tile's
    grid and occupancy alone (no kernel built): the launch, then on the busiest SM
    each group's matrix or shared-memory time, whichever is longer (the tensor or
    CUDA cores at the rate its resident warps allow, :meth:`Gpu._terms`), after its
    first operands' load latency, plus one block turnover; or, if longer, the
    operands' least HBM bytes (each read once) or the blocks' L2 bytes at the
    achievable bandwidths. A split-K adds its reduction, queued after it: its groups'
    adds after their first load, or its partials' L2 reads, whichever is longer.
    Each term is one the estimate adds, computed by the same operations in the same
    order (its pipe time is the largest of its pipes after that latency, its group
    time never less; rounding is monotone), so the bound is at most the estimate, to
    the last bit (the HBM and L2 floors, summed otherwise, are taken
    :data:`BOUND_MARGIN` lower).
    ``first_s``: the first load's latency (from HBM; ``None``: both operands are in
    the L2, and a bias may still come from HBM: the lesser of the two). ``inf`` for
    a tile that does not fit on an SM (whose estimate is ``inf``)."""
    return _bound(gpu, g, _bound_terms(gpu, g, first_s), tile, split)


def _bound_terms(gpu: Gpu, g: Gemm, first_s: float | None) -> tuple:
    """What :func:`lower_bound` reads of ``g`` whatever the tile: the operands' bytes
    per element, the tensor and CUDA-core rates of its type, the first load's latency,
    the operands' least HBM bytes."""
    compute, _ = datapath(g.dtype, "matmul")
    if first_s is None:
        first_s = min(gpu.l2_latency_s, gpu.dram_latency_s)
    a = 0.0 if g.a_onchip else g.m * g.k * g.a_bytes * (1 if g.a_shared else g.batch)
    b = 0.0 if g.b_onchip else g.k * g.n * g.b_bytes * (1 if g.b_shared else g.batch)
    return (g.a_bytes, g.b_bytes, compute, first_s, (a + b) / gpu.hbm_bw)


def _bound(gpu: Gpu, g: Gemm, common: tuple, tile: Tile, split: int) -> float:
    """:func:`lower_bound`, with what does not depend on the tile worked out
    (:func:`_bound_terms`)."""
    spec = gpu.spec
    ea, eb, compute, first_s, hbm_s = common
    terms = _tile_terms(gpu, tile, split, g.k, ea, eb, compute)
    if terms is None:
        return float("inf")
    occ, kk, flops, wavefronts, rate, warps = terms
    grid = cdiv(g.m, tile.tm) * cdiv(g.n, tile.tn) * split * g.batch
    full, rest = divmod(cdiv(grid, spec.sms), occ)
    t = 0.0
    for n, reps in ((occ, full), (rest, 1 if rest else 0)):
        if reps:
            fill = min(1.0, n * warps / spec.warps_for_peak)
            busy = max(flops * n / (rate * fill), wavefronts * n / gpu.smem_bw_sm)
            t += reps * (busy + first_s + gpu.turnover_s)
    part_e = 4 if split > 1 else g.out_bytes
    l2 = grid * ((tile.tm * ea + tile.tn * eb) * kk
                 + tile.tm * tile.tn * part_e * (split > 1 or not g.out_onchip))
    floor_s = max(hbm_s, l2 / gpu.l2_bw) * (1.0 - BOUND_MARGIN)
    end = spec.kernel_launch_s + max(t, floor_s)
    if split == 1:
        return end
    # the split-K reduction after it (queued_start_s): its groups' adds on the CUDA
    # cores after their first load (from the L2, or HBM for a bias)
    elems = g.batch * g.m * g.n
    rblocks = cdiv(elems, 256 * 4)
    occ = gpu.occupancy(256, 32, 0).blocks_per_sm
    if occ < 1:
        return float("inf")
    full, rest = divmod(cdiv(rblocks, spec.sms), occ)
    adds = split * elems / rblocks
    first_s = gpu.dram_latency_s if g.extra_read / rblocks != 0 else gpu.l2_latency_s
    t = 0.0
    for n, reps in ((occ, full), (rest, 1 if rest else 0)):
        if reps:
            fill = min(1.0, n * 8 / spec.warps_for_peak)
            t += reps * (adds * n / (gpu.cuda_rate_sm("fp32") * fill) + first_s
                         + gpu.turnover_s)
    start = max(spec.kernel_launch_s + spec.kernel_launch_s, end) + spec.kernel_gap_s
    return start + max(t, split * 4 * elems / gpu.l2_bw * (1.0 - BOUND_MARGIN))


TILE_TERMS_KEPT = 4096  # _tile_terms entries a GPU keeps (a long sweep starts afresh)


def _tile_terms(gpu: Gpu, tile: Tile, split: int, k: int, ea: float, eb: float,
                compute: str) -> tuple | None:
    """What :func:`_bound` reads of a tile that does not depend on the product's M, N
    or batch: the occupancy (``None`` when the tile does not fit on an SM), the K per
    split, a block's matrix FLOPs and shared-memory bytes (:func:`build`'s), the pipe
    rate of its main loop and its warps. Kept on the GPU by the tile (the module's
    constants: by identity), split, K, widths and type: a model's layers and a
    sweep's points weigh the same tiles for the same K again."""
    kept = gpu.__dict__.setdefault("_tile_terms", {})
    key = (id(tile), split, k, ea, eb, compute)
    got = kept.get(key)
    if got is not None and got[0] is tile:
        return got[1]
    threads = tile.warps * 32
    smem = int(tile.stages * (tile.tm * ea + tile.tn * eb) * tile.tk)
    occ = gpu.occupancy(threads, tile.regs, smem).blocks_per_sm
    if occ < 1:
        terms = None
    else:
        kk = cdiv(k, split)
        eff = loop_efficiency(gpu.spec, tile, compute, ea, eb)
        terms = (occ, kk, 2.0 * (tile.tm * tile.tn * kk),  # one block's matrix work (build's)
                 _smem_wavefront_bytes(tile, ea, eb, kk),
                 gpu.tensor_rate_sm(compute, eff) if tile.tensor
                 else gpu.cuda_rate_sm(compute, eff), tile.warps)
    if len(kept) >= TILE_TERMS_KEPT:
        kept.clear()
    kept[key] = (tile, terms)
    return terms


def _smem_wavefront_bytes(tile: Tile, ea: float, eb: float, kk: int) -> float:
    """A block's shared-memory bytes (:func:`build`): its warps' fragment loads per K
    (:func:`.mainloop.fragment_bytes_per_thread`: on the tensor cores twice the
    operand bytes a warp uses, each quad pair loading its own copy; on the SIMT tiles
    each thread's r + c values per k) and its tile stores, per K."""
    loads = tile.warps * WARP * fragment_bytes_per_thread(tile, ea, eb) / tile.tk * kk
    stores = (tile.tm * ea + tile.tn * eb) * kk
    # sliced K: all but one slice store their fp32 partial tile and the last reads them
    sliced = 2 * (tile.slices - 1) * tile.tm * tile.tn * 4
    return loads + stores + sliced


def tensor_aligned(g: Gemm) -> bool:
    """Whether cuBLAS may take the tensor-core path on sm_70: every stored row (A's,
    B's and C's leading dimension) a multiple of :data:`TENSOR_ALIGN` elements. A row
    count is free: an M of 9,124 rows of 2,048 halves runs on the tensor cores (the
    last block tile is partly empty), a K of 4,100 does not (each row of A ends off a
    16-byte boundary)."""
    a_row = g.m if g.trans_a else g.k
    b_row = g.k if g.trans_b else g.n
    return all(d % TENSOR_ALIGN == 0 for d in (a_row, b_row, g.n))


@lru_cache(maxsize=8)
def _smallest_whole(tiles: tuple) -> Tile:
    """The smallest of ``tiles`` that is neither sliced nor under 64 wide."""
    whole = [t for t in tiles if t.slices == 1 and min(t.tm, t.tn) >= SMALL_TILE_BELOW]
    return min(whole, key=lambda t: t.tm * t.tn)


def configs(gpu: Gpu, g: Gemm):
    """The (tile, split-K factor) configurations the selector weighs for ``g``."""
    compute, tensor = datapath(g.dtype, "matmul")
    tensor = tensor and gpu.has_tensor(compute) and tensor_aligned(g)
    tiles = TENSOR_TILES if tensor else IGEMM_TILES if compute == "int8" else SIMT_TILES
    workspace = min(SPLITK_WORKSPACE_BYTES, gpu.spec.l2_bytes / 2)
    narrow = min(g.m, g.n) < SMALL_TILE_BELOW
    # a sliced-K tile is a candidate where the product is narrow, or where even the
    # smallest whole tile (64 x 64) leaves SMs without a block: slicing K inside the
    # block is what puts more warps on such a grid (M: cuBLAS's heuristic is not public;
    # its sliced1x4 kernels show up in profiles of narrow and small products, and a
    # square 1024^3 SGEMM, 256 such blocks, runs whole tiles)
    whole = _smallest_whole(tiles)
    underfilled = cdiv(g.m, whole.tm) * cdiv(g.n, whole.tn) * g.batch < gpu.spec.sms
    for tile in tiles:
        if tile.slices > 1:
            if compute != "fp32" or not (narrow or underfilled):
                continue  # (sliced-K kernels are known as cuBLAS's SGEMMs only)
        elif min(tile.tm, tile.tn) < 64 and not narrow:
            continue  # cuBLAS keeps its small tiles for narrow products (see SMALL_TILE_BELOW)
        for split in SPLITS:
            if split > 1 and (g.k // split < 4 * tile.tk
                              or split * g.batch * g.m * g.n * 4 > workspace):
                continue
            yield tile, split


def candidates(gpu: Gpu, g: Gemm):
    """Every configuration's kernels, in the order the selector ranks ties: the GEMV
    kernels (:func:`gemv_candidates`), then the tiles (:func:`configs`). A GEMV that
    ties a tile (both at the HBM floor, a skinny product's usual case) is kept: it
    executes the product's FLOPs, where a block tile pads its rows (a one-row product
    on a 64-row tensor-core tile executes 64 times them, and draws the energy)."""
    yield from kernel_candidates(gpu, g)
    for tile, split in configs(gpu, g):
        yield build(gpu, g, tile, split)


def kernel_candidates(gpu: Gpu, g: Gemm):
    """The configurations that are not block tiles, in the selector's order: the GEMV
    kernels (:func:`gemv_candidates`), then the batched-small kernel
    (:mod:`.batched`) of a batch of small products."""
    yield from gemv_candidates(gpu, g)
    compute, tensor = datapath(g.dtype, "matmul")
    small = batched.kernel(gpu, g, tensor and tensor_aligned(g))
    if small is not None:
        yield [small]


def gemv_candidates(gpu: Gpu, g: Gemm):
    """The GEMV-like kernels ``g`` may run as (a skinny product)."""
    if g.m <= GEMV_MAX_ROWS:
        yield [gemv(gpu, g)]
    if g.n <= GEMV_MAX_ROWS and not g.b_dtype:
        # few columns: the same kernel on the transposed product, C^T = B^T A^T, which
        # streams A once with the N columns of B held on chip
        # (C^T = B^T A^T: the operands swap roles and each one's stored order flips)
        yield [gemv(gpu, Gemm(g.batch, g.n, g.m, g.k, g.dtype, g.out_dtype,
                              a_shared=g.b_shared, b_shared=g.a_shared, name=g.name,
                              extra_read=g.extra_read, trans_a=not g.trans_b,
                              trans_b=not g.trans_a, a_onchip=g.b_onchip,
                              b_onchip=g.a_onchip, out_onchip=g.out_onchip))]


def estimate(gpu: Gpu, ks: list[Kernel]) -> float:
    """Seconds of ``ks``: the busiest SM's groups, or all HBM traffic at the achievable
    bandwidth, whichever is longer (the selector's estimate)."""
    spec = gpu.spec
    start = end = 0.0
    for j, k in enumerate(ks):
        occ = gpu.occupancy(k.threads, k.regs, k.smem).blocks_per_sm
        if occ < 1:
            return float("inf")
        grid = k.grid
        full, rest = divmod(cdiv(grid, spec.sms), occ)
        work = k.blocks[0][1]
        t = 0.0
        for n, reps in ((occ, full), (rest, 1 if rest else 0)):
            if reps:
                sm_s, _ = gpu.group_time(k, work.scaled(n), n)
                t += reps * sm_s
        floor_s, _ = gpu.kernel_floor(work.scaled(grid))
        start = queued_start_s(spec, start, end, j == 0)
        end = start + max(t, floor_s)
    return end


def _wave_traffic(g: Gemm, tile: Tile, split: int, wave_blocks: int,
                  l2_bytes: float) -> tuple[float, float]:
    """HBM bytes of A and B for one batch item (see the module docstring)."""
    gm, gn = cdiv(g.m, tile.tm), cdiv(g.n, tile.tn)
    kk = g.k / split
    ea, eb = g.a_bytes, g.b_bytes
    a_all, b_all = g.m * g.k * ea, g.k * g.n * eb
    grid = gm * gn
    a = b = 0.0
    start = 0
    while start < grid:
        end = min(grid, start + wave_blocks)
        dm = min(gm, end - start)
        dn = (end - 1) // gm - start // gm + 1
        a += min(dm * tile.tm, g.m) * kk * ea
        b += min(dn * tile.tn, g.n) * kk * eb
        start = end
    a, b = a * split, b * split
    if a_all <= l2_bytes / 2:
        a = a_all
    if b_all <= l2_bytes / 2:
        b = b_all
    return max(a, a_all), max(b, b_all)


def build(gpu: Gpu, g: Gemm, tile: Tile, split: int) -> list[Kernel]:
    spec = gpu.spec
    compute, _ = datapath(g.dtype, "matmul")
    ea, eb, eo = g.a_bytes, g.b_bytes, g.out_bytes
    gm, gn = cdiv(g.m, tile.tm), cdiv(g.n, tile.tn)
    blocks = gm * gn * split * g.batch
    kk = cdiv(g.k, split)
    threads = tile.warps * 32
    smem = int(tile.stages * (tile.tm * ea + tile.tn * eb) * tile.tk)
    occ = gpu.occupancy(threads, tile.regs, smem).blocks_per_sm
    wave = max(1, spec.sms * max(occ, 1))
    # HBM traffic: per batch item by waves, an operand shared by the batch read once
    per_item_wave = max(1, wave // max(1, min(g.batch, wave)))
    a_hbm, b_hbm = _wave_traffic(g, tile, split, per_item_wave if g.batch > 1 else wave,
                                 spec.l2_bytes)
    a_total = 0.0 if g.a_onchip else a_hbm if g.a_shared else a_hbm * g.batch
    b_total = 0.0 if g.b_onchip else b_hbm if g.b_shared else b_hbm * g.batch
    out_hbm = 0.0 if g.out_onchip else g.batch * g.m * g.n * eo
    part_e = 4 if split > 1 else eo  # split-K: fp32 partials (in L2, see the docstring)
    macs = tile.tm * tile.tn * kk
    w = Work()
    if tile.tensor:
        w.tensor_flops = 2.0 * macs
    else:  # (a sliced-K tile's partial tiles added at its end)
        w.cuda_flops = 2.0 * macs + (tile.slices - 1) * tile.tm * tile.tn
    if g.b_dtype and g.b_dtype != g.dtype and eb < ea:  # narrow B widened in registers
        w.cuda_flops += UNPACK_OPS_PER_ELEMENT * tile.tn * kk
    w.smem_bytes = w.smem_wavefront_bytes = _smem_wavefront_bytes(tile, ea, eb, kk)
    # the loads, and the stores bound for HBM (a kept output's are posted to L2 and left
    # out: the SM model counts the loads as L2 traffic less HBM writes, gpu.memory_time)
    w.l2_bytes = (tile.tm * ea + tile.tn * eb) * kk \
        + tile.tm * tile.tn * part_e * (split > 1 or not g.out_onchip)
    w.hbm_read = (a_total + b_total + (g.extra_read if split == 1 else 0.0)) / blocks
    w.hbm_write = out_hbm / blocks if split == 1 else 0.0
    kind = ("s884gemm" if tile.tensor else
            {"int8": "igemm", "fp64": "dgemm", "fp16": "hgemm"}.get(compute, "sgemm"))
    name = f"{g.name}:{kind}" + (f" splitK={split}" if split > 1 else "")
    # in flight: the next K step's A and B tiles, loaded (LDG) while this one computes
    stage_bytes = (tile.tm * ea + tile.tn * eb) * tile.tk
    main = Kernel(name, f"{tile.tm}x{tile.tn}x{tile.tk}", threads, tile.regs, smem,
                  [(blocks, w)], dtype=compute, tensor=tile.tensor,
                  notes={"m": g.m, "n": g.n, "k": g.k, "batch": g.batch, "split_k": split,
                         "op": g.op},
                  inflight_bytes_per_thread=stage_bytes / threads,
                  loop_efficiency=loop_efficiency(spec, tile, compute, ea, eb))
    if split == 1:
        return [main]
    main.detail = "fp32 partials in L2"
    # split-K reduction: read the fp32 partials from L2, write the output (and bias)
    elems = g.batch * g.m * g.n
    rblocks = cdiv(elems, 256 * 4)
    rw = Work(cuda_flops=split * elems / rblocks, hbm_read=g.extra_read / rblocks,
              hbm_write=out_hbm / rblocks,
              l2_bytes=(split * 4 + eo * (not g.out_onchip)) * elems / rblocks
              + g.extra_read / rblocks)
    red = Kernel(f"{g.name}:splitKreduce", "256x4", 256, 32, 0, [(rblocks, rw)],
                 dtype="fp32", tensor=False)
    return [main, red]


def gemv(gpu: Gpu, g: Gemm) -> Kernel:
    """A skinny product on the CUDA cores: each block owns 64 columns of B for all M rows."""
    compute, _ = datapath(g.dtype, "matmul")
    ea, eb, eo = g.a_bytes, g.b_bytes, g.out_bytes
    cols = 64
    blocks = cdiv(g.n, cols) * g.batch
    w = Work(cuda_flops=2.0 * g.m * cols * g.k,
             hbm_read=(g.k * g.n * eb * (1 if g.b_shared else g.batch) * (not g.b_onchip)
                       + g.m * g.k * ea * (1 if g.a_shared else g.batch) * (not g.a_onchip)
                       + g.extra_read) / blocks,
             hbm_write=g.batch * g.m * g.n * eo * (not g.out_onchip) / blocks)
    if g.b_dtype and g.b_dtype != g.dtype and eb < ea:
        w.cuda_flops += UNPACK_OPS_PER_ELEMENT * cols * g.k
    if g.a_onchip or g.b_onchip:  # an operand carried in the L2: loads that hit there
        w.l2_bytes = (g.k * g.n * eb * (1 if g.b_shared else g.batch)
                      + g.m * g.k * ea * (1 if g.a_shared else g.batch) + g.extra_read
                      ) / blocks + w.hbm_write + g.m * g.k * ea
    else:
        w.l2_bytes = w.hbm_read + w.hbm_write + g.m * g.k * ea
    w.smem_bytes = w.smem_wavefront_bytes = g.m * g.k * ea
    return Kernel(f"{g.name}:gemv", f"{g.m}x{cols}", 256, 64, int(min(g.m * g.k * ea, 48 * 1024)),
                  [(blocks, w)], dtype="int8" if compute == "int8" else "fp32", tensor=False,
                  notes={"m": g.m, "n": g.n, "k": g.k, "batch": g.batch, "split_k": 1,
                         "op": g.op,
                         # gemv2T: B read along K (dot products); gemv2N: along the columns
                         "variant": "gemv2T" if g.trans_b else "gemv2N"},
                  inflight_bytes_per_thread=GEMV_INFLIGHT_BYTES)
