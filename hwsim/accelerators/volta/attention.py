"""Attention on Volta: three strategies, as kernels.

``standard``
    What eager PyTorch runs: a batched GEMM ``S = Q·Kᵀ`` that writes the scores
    to HBM, a softmax kernel over them (a causal or sliding-window mask applied
    there: the GEMMs compute every score), and a batched GEMM ``O = P·V``.
    Scores cost ``2·b·h·q·kv`` bytes of HBM each way.
``flash``
    A fused kernel as xformers' memory-efficient attention runs on sm_70 (the
    CUTLASS kernel PyTorch also ships; FlashAttention itself needs sm_80): one
    block per ``block_q`` query rows, looping over ``block_kv`` keys;
    ``kNumWarpsPerBlock = block_q·block_kv / 1024`` and at least
    ``12 / warps`` blocks per SM (its launch bounds). Default tiles: 64x64 for
    head_dim <= 64, else 32x128, the output kept in registers up to head_dim 128
    and beyond that accumulated through an fp32 buffer in global memory (its
    ``_gmem`` variant). Its warps split the *key* block (CUTLASS's 32x32 warp
    tile): the row statistics meet in shared memory, and P is stored there one
    element per instruction and read back by every warp as the A operand of
    P·V. Each key block runs two CUTLASS two-stage main loops whose prologue
    (the first 32-wide slice loaded, stored, a barrier) the block waits out, and
    Q is loaded again for every key block. Operands sit in CUTLASS's Volta
    layouts (``VoltaTensorOpMultiplicandCrosswise``: conflict-free, ``permuted``
    in :mod:`.smem`; ``flash_smem_layout`` in the preset).
``fastattention``
    FastAttention's Volta kernel, FlashAttention-2's flow on m8n8k4: its warps
    split the *query* rows, so a warp's scores stay in its registers and are
    reused there as P·V's A operand (only V's fragments come from shared
    memory), Q is loaded once per block, the next key block is loaded while this
    one computes, the operand layout is conflict-free, and for head_dim > 64 the
    query tile is larger (128x64, 8 warps), so K and V are re-read from L2 a
    quarter as often per query (tile sizes: M).

Both load each fragment for the next k step while the MMAs of this one run
(CUTLASS's ``warp_frag_A[2]`` in its main loops, FlashAttention-2's
``flash::gemm``), so a warp's shared-memory loads overlap its own MMAs. Every
m8n8k4 quad pair loads its own copy of the rows it shares with another, so a
warp's fragment loads are twice the operand bytes it uses (the GEMM counts
them so too: :func:`.mainloop.fragment_bytes_per_thread`).

**Grouped-query attention.** The fused kernels pack a KV head's query group
into the query tile, position-major (row ``r`` is query ``r // group`` of head
``r % group``), as flash-decoding and FlashAttention-2's GQA kernels do: one
block streams a KV head's K and V once for all ``heads / kv_heads`` query
heads, and a decode step's tile is the group's rows (not one row padded to 8).
The standard path does the same with its GEMMs: batch ``b·kv_heads``, ``M =
group·q``. So K and V cross L2 once per group, not once per query head.

**The tiles a kernel computes.** A query tile covers the query positions of
its rows; with a causal mask (bottom-right aligned when kv_len > q_len) or a
sliding ``window`` it visits only the key blocks that hold a key some row of
the tile sees, and computes each visited block whole. Those tiles are both
the kernel's time and its executed FLOPs (:func:`executed_flops`): a tile
skipped is neither timed nor counted, a diagonal tile is both, whole. Blocks
differ in length; they are scheduled greedily, as the hardware does.

**Block-sparse attention** (``sparse_keys`` per block of ``sparse_block``
queries: HiP, top-k attention): each query head has its own selection, so the
tile is one head's block of queries (rounded up to m8n8k4's 8 rows); it
gathers its ``sparse_keys`` K and V rows where they lie (whole rows, so no
sector is wasted for head_dim >= 16) in ``block_kv`` chunks. HBM reads the
distinct rows the selections cover; L2 serves the repeats.

**Local value pruning** (``v_len``: each query weights its ``v_len`` largest
probabilities, SpAtten): the selection needs every score of a row, so the
block holds whole rows (no split-KV) and finds each row's threshold by a radix
select on the fp16 scores: two 8-bit digit passes, each recomputing ``Q·Kᵀ``
and counting a histogram in shared memory (scores are never written out),
then a last pass forms the probabilities above the threshold and weights the
selected value rows on the CUDA cores (tensor cores cannot take a different
set of V rows per query row): streaming the tile's V blocks or gathering each
row's rows, whichever reads fewer bytes. The recomputations are time, not
executed FLOPs (each score is counted once, as tile padding is not counted).

HBM: the blocks of a KV head that run in the same wave share its K and V
through L2 (read once per wave that holds them: the rows the wave's tiles
visit); an op whose K and V fit in half the L2 reads them once. Q is read and
O written once; operands are counted at their stored width (a quantized KV
cache is read packed and widened to fp16 in registers: :mod:`.dtypes`).

With few query tiles (decoding), the key range is split across blocks
(split-KV) until the grid fills the SMs, and a small kernel combines the
partial results, which stay in L2 when they fit in half of it.

With ``host_kv_fraction`` > 0 (CPU-GPU cooperation), that fraction of the KV
cache lives in host memory. A dense attention is then split by
:mod:`hwsim.simulate` into the device's keys and host blocks copied in on the
copy stream (:func:`hwsim.overlap.split`), and its pieces are lowered here with
the whole cache on the device; a windowed or key-selecting one streams its host
entries in and its new entries out over PCIe inside the kernel, overlapped
with it (the ``pcie`` lane).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace

from hwsim.ir import AttentionShape

from .dtypes import UNPACK_OPS_PER_ELEMENT, attention_datapath, element_bytes
from .gemm import Gemm
from .gemm import kernels as gemm_kernels
from .gpu import Gpu, Kernel, Work, _fields, cdiv, estimate, estimate_busiest, queued_start_s
from .gpu import arrays as gpu_arrays
from .mainloop import WARP, fragment_bytes_per_thread
from .memops import _stream
from .smem import conflict_factor

STRATEGIES = ("standard", "flash", "fastattention")
ALU_FLOPS_PER_SCORE = 8  # scale, running max, subtract, rescale, sum, convert (online softmax)
SELECT_PASSES = 2  # radix select of fp16 scores: two 8-bit digits
SELECT_OPS_PER_SCORE = 4  # order-preserving key, shift, mask, compare with the prefix
HIST_SMEM_BYTES_PER_SCORE = 8  # one shared-memory atomic add: a 4-byte read and write
INDEX_BYTES = 4  # int32 key index
# a warp's scalar 2-byte stores of its scores (xformers' Volta accumToSmem) take one
# 128-B wavefront per instruction of 32 lanes: 4 B of wavefront per element stored
P_STORE_WAVEFRONT_BYTES = 128 / 32
MAX_CLASSES = 50_000  # block classes listed one by one (launch order); beyond, per tile


def default_tiles(strategy: str, d: int) -> tuple[int, int]:
    if strategy == "fastattention":
        return (64, 64) if d <= 64 else (128, 64)
    return (64, 64) if d <= 64 else (32, 128)


def choose(strategy: str, q_len: int, kv_len: int) -> str:
    """``auto``: the fused FastAttention kernel (it never loses on Volta)."""
    if strategy in STRATEGIES:
        return strategy
    return "fastattention"


# ---------------------------------------------------------------- the op
@dataclass(frozen=True)
class Shape(AttentionShape):
    """An attention op as the kernels see it: the shared shape
    (:class:`hwsim.ir.AttentionShape`, built with ``Shape.of(op, graph)``) and what
    Volta's datapath derives from its operands."""

    compute: str = field(init=False)  # what the kernel computes in
    tensor: bool = field(init=False)  # on the tensor cores
    eq: float = field(init=False)  # bytes per stored element of Q, K, V, O (aliases: the
    ek: float = field(init=False)  # bytes stored, spread over the elements they stand for)
    ev: float = field(init=False)
    eo: float = field(init=False)
    extra_read: float = field(init=False)  # other inputs (a mask), read once
    gathers: bool = field(init=False)  # a block-sparse selection of fewer than kv_len keys

    def __post_init__(self) -> None:
        super().__post_init__()
        put = object.__setattr__  # a frozen dataclass sets its own derived fields
        compute, tensor = attention_datapath(self.dtype)
        put(self, "compute", compute)
        put(self, "tensor", tensor)
        put(self, "eq", element_bytes(self.dtype))
        kv_rows = self.batch * self.kv_heads * self.kv_len
        put(self, "ek", self.k_bytes / max(1, kv_rows * self.head_dim))
        put(self, "ev", self.v_bytes / max(1, kv_rows * self.v_head_dim))
        put(self, "eo", element_bytes(self.o_dtype))
        put(self, "extra_read", float(self.extra_bytes))
        put(self, "gathers", self.sparse and self.keys < self.kv_len)


# ---------------------------------------------------------------- query tiles
@dataclass
class Tiles:
    """The query tiles of one *unit* (a KV head's packed group, or one query head of
    a block-sparse attention) and the keys each visits: lists of Python integers, a
    few dozen to a few thousand per unit. (They were numpy arrays; every sum of them
    is an integer sum, exact in either, so the lists give the same floats and spare a
    run numpy's import when nothing else needs it.)"""

    bq: int
    bkv: int
    units: int
    rows: list[int]  # real query rows of each tile
    iters: list[int]  # key blocks each tile visits
    width: list[int]  # keys each tile computes (its visited blocks, clipped)
    lo: list[int]  # first key each tile reads (block aligned)
    hi: list[int]  # one past the last key it reads


def tiles(s: Shape, bq: int, bkv: int) -> Tiles:
    if s.gathers:
        sb = min(s.sparse_block, s.q_len)
        rows = [r for b in range(cdiv(s.q_len, sb))
                for j in range(cdiv(sb, bq))
                if (r := min(bq, min(sb, s.q_len - b * sb) - j * bq)) > 0]
        n = len(rows)
        return Tiles(bq, bkv, s.batch * s.heads, rows, [cdiv(s.keys, bkv)] * n, [s.keys] * n,
                     [0] * n, [s.kv_len] * n)
    g = s.group
    total = g * s.q_len
    kv, window, causal = s.kv_len, s.window, s.causal
    off = kv - s.q_len  # bottom-right aligned positions
    rows, iters, width, los, his = [], [], [], [], []
    for r0 in range(0, total, bq):
        r1 = min(r0 + bq, total) - 1
        rows.append(r1 - r0 + 1)
        p0, p1 = r0 // g + off, r1 // g + off
        hi = min(kv - 1, p1) if causal else kv - 1
        lo = 0
        if window > 0:
            lo = max(0, p0 - window + 1)
            if not causal:
                hi = min(kv - 1, p1 + window - 1)
        if hi >= lo:
            b0, b1 = lo // bkv, hi // bkv
            first, last = b0 * bkv, min(kv, (b1 + 1) * bkv)
            iters.append(b1 - b0 + 1)
            width.append(last - first)
            los.append(first)
            his.append(last)
        else:  # no key visible to the tile
            iters.append(0)
            width.append(0)
            los.append(0)
            his.append(0)
    return Tiles(bq, bkv, s.batch * s.kv_heads, rows, iters, width, los, his)


def executed(s: Shape, t: Tiles) -> int:
    """FLOPs the fused kernel executes: each tile's rows against the keys it computes
    (whole visited blocks); value pruning weights ``values`` rows per query."""
    qk = float(sum([r * w for r, w in zip(t.rows, t.width)])) * 2 * s.head_dim
    values = s.values
    pv = float(sum([r * min(w, values) for r, w in zip(t.rows, t.width)])) * 2 * s.v_head_dim
    return int(round(t.units * (qk + pv)))


def _kv_rows_read(s: Shape, t: Tiles, chunk: int) -> tuple[float, float]:
    """K and V rows of one unit read from HBM when ``chunk`` consecutive query tiles
    share a wave (each wave reads the rows its tiles visit)."""
    n = len(t.rows)
    k = v = 0.0
    for c0 in range(0, n, chunk):
        vis = [i for i in range(c0, min(n, c0 + chunk)) if t.iters[i] > 0]
        if not vis:
            continue
        span = float(max([t.hi[i] for i in vis]) - min([t.lo[i] for i in vis]))
        k += span
        v += min(span, float(sum(t.rows[c0:c0 + chunk])) * s.values) if s.selects_values \
            else span
    # never below the rows some query uses (hwsim.ir.kinds.attention_rows)
    return max(k, float(s.key_rows)), max(v, float(s.value_rows))


def _selection_rows(s: Shape, t: Tiles, chunk: int, once: bool) -> tuple[float, float]:
    """Block-sparse: rows a KV head's gathers read from HBM (per query head's unit)."""
    n = len(t.rows)
    waves = 1 if once else cdiv(s.group * n, chunk)  # waves holding the KV head's tiles
    gathered = s.group * n * s.keys  # every tile's rows, were nothing shared
    k = min(gathered, s.key_rows * waves)
    v = min(gathered, s.value_rows * waves)
    return k / s.group, v / s.group


# ---------------------------------------------------------------- lowering
def lower(gpu: Gpu, op, graph, strategy: str, block_q: int, block_kv: int,
          host_fraction: float) -> list[Kernel]:
    s = Shape.of(op, graph)
    name = op.name or "attention"
    if strategy == "standard":
        ks = standard(gpu, s, name)
    else:
        ks = fused(gpu, s, name, strategy, block_q, block_kv)
    pcie = host_bytes(s, host_fraction)
    if pcie:
        ks[0].pcie_bytes += pcie
    return ks


def host_bytes(s: Shape, fraction: float) -> float:
    """PCIe bytes of the host-resident part of this call's KV cache."""
    if fraction <= 0:
        return 0.0
    per_token = s.batch * s.kv_heads * (s.head_dim * s.ek + s.v_head_dim * s.ev)
    old = max(0, s.kv_len - s.q_len)
    new = min(s.q_len, s.kv_len)
    return fraction * per_token * (old + new)


def executed_flops(gpu: Gpu, op, graph, strategy: str, block_q: int, block_kv: int) -> int:
    """The FLOPs the kernels of ``strategy`` execute for ``op`` (see the docstring)."""
    s = Shape.of(op, graph)
    if strategy == "standard":
        # the GEMMs compute every score (the mask is the softmax's); value pruning
        # weights v_len gathered rows, a sparse selection its gathered keys
        rows = s.batch * s.heads * s.q_len
        return int(2 * rows * (s.keys * s.head_dim + s.values * s.v_head_dim))
    geo = _geometry(gpu, s, strategy, block_q, block_kv)
    return executed(s, geo["tiles"])


def _geometry(gpu: Gpu, s: Shape, strategy: str, block_q: int, block_kv: int) -> dict:
    """Tiles, block shape, occupancy, split-KV and (for value pruning) the mode; kept
    for the GPU by the shape and tiles asked (the lowering and the executed FLOPs of an
    op ask for the same one; the dict and its arrays are only read)."""
    key = (s, strategy, block_q, block_kv)
    kept = gpu.__dict__.setdefault("_geometries", {})
    got = kept.get(key)
    if got is None:
        if len(kept) >= 64:  # (the last few ops' are the ones asked again)
            kept.clear()
        got = kept[key] = _geometry_of(gpu, s, strategy, block_q, block_kv)
    return got


def _geometry_of(gpu: Gpu, s: Shape, strategy: str, block_q: int, block_kv: int) -> dict:
    """:func:`_geometry`, worked out."""
    spec = gpu.spec
    bq0, bkv0 = default_tiles(strategy, s.head_dim)
    e = element_bytes(s.compute)  # operands in shared memory, widened to the compute type
    # a library shrinks the query tile to the rows there are (a decode step's packed
    # group; a sparse block) among the tiles it instantiates, 8 (m8n8k4's rows), 16,
    # 32, 64 and 128 rows (M), rather than padding to the default
    natural = min(s.sparse_block, s.q_len) if s.gathers else s.group * s.q_len
    bq = block_q or min(bq0, max(8, 1 << max(0, natural - 1).bit_length()))
    bkv = block_kv or bkv0
    mode = "dense"
    if s.selects_values:
        # the scores of every tile in an L2 buffer (fp16), when they fit in half of it
        t = tiles(s, bq, bkv)
        scores = sum([r * w for r, w in zip(t.rows, t.width)])
        buffered = t.units * float(scores) * 2 <= spec.l2_bytes / 2
        mode = "buffered" if buffered else "recompute"

    def smem_of(bq: int, bkv: int) -> int:
        # P plus a two-stage main loop over 32-wide slices of the reduction dim (Q and K
        # slices for S = QKᵀ, V slices for O += PV), as CUTLASS does; the recomputing
        # selection adds a 256-bin histogram of 16-bit counters per row
        return int(bq * bkv * e + 2 * max((bq + bkv) * 32, 32 * s.v_head_dim) * e + 2 * bq * 4
                   + (bq * 256 * 2 if mode == "recompute" else 0))

    # wider types (fp32, fp64) and the histogram get smaller tiles when the default
    # ones overflow an SM's shared memory
    while smem_of(bq, bkv) > spec.smem_per_sm_bytes and not (block_q and block_kv):
        if not block_q and bq > 8 and (bq >= bkv or block_kv or bkv <= 16):
            bq //= 2
        elif not block_kv and bkv > 16:
            bkv //= 2
        else:
            break
    warps = max(1, (bq * bkv) // 1024)
    threads = 32 * warps
    min_blocks = max(1, 12 // warps)  # xformers' launch bounds on sm_70
    regs = min(255, (spec.registers_per_sm // (min_blocks * threads)) // 8 * 8)
    smem = smem_of(bq, bkv)
    t = tiles(s, bq, bkv)
    occ = max(1, gpu.occupancy(threads, regs, smem).blocks_per_sm)
    splits = [1]
    if mode != "recompute":  # split-KV while the tiles cannot fill the GPU
        longest = max(t.iters) if t.iters else 0
        # the fp32 partial rows (and their statistics) must fit in half the L2, where
        # the combine reads them back: a split never sends traffic to HBM
        row_part = s.batch * s.heads * s.q_len * (s.v_head_dim * 4.0 + 8.0)
        fit = int(spec.l2_bytes / 2 // max(1.0, row_part))
        splits = split_candidates(t.units * len(t.rows), spec.sms * occ, longest,
                                  max_splits=max(1, min(128, fit)))
    return dict(bq=bq, bkv=bkv, bkv0=bkv0, warps=warps, threads=threads, regs=regs, smem=smem,
                e=e, tiles=t, occ=occ, splits=splits, mode=mode)


def split_candidates(blocks: int, slots: int, key_blocks: int, max_splits: int = 128
                     ) -> list[int]:
    """The split-KV factors worth estimating, as FlashAttention-2's heuristic counts
    them (``num_splits_heuristic``, flash_api.cpp): none when the query tiles already
    fill 80 % of the slots (SMs x resident blocks; FlashAttention's blocks fill an SM,
    the Volta kernels' are smaller), else each factor up to ``max_splits`` that
    changes the key blocks per split. Where FlashAttention then keeps the fewest
    splits within 85 % of the best wave efficiency, :func:`fused` keeps the one its
    own estimate says is fastest, so that a longer key range never picks a faster
    configuration than a shorter one could."""
    if blocks >= 0.8 * slots or key_blocks < 2 or max_splits < 2:
        return [1]
    top = min(max_splits, slots, key_blocks)
    return [n for n in range(1, top + 1)
            if n == 1 or cdiv(key_blocks, n) != cdiv(key_blocks, n - 1)]


def _kv_chunk(s: Shape, t: Tiles, spec, wave: int, split: int) -> tuple[int, bool]:
    """(query tiles of a unit whose K and V rows are read from HBM once, whether that
    is all of them). Those in one wave; all of them when the K and V of the units a
    wave holds fit in half the L2 (they then stay there while the unit's later
    waves run)."""
    n_qt = len(t.rows)
    units_in_wave = cdiv(wave, n_qt * split) + 1  # a wave may straddle one more unit
    span = float(max([h - lo for h, lo in zip(t.hi, t.lo)])) if t.hi else float(s.kv_len)
    rows = min(float(s.kv_len), max(span, float(s.key_rows)))
    if units_in_wave * rows * (s.head_dim * s.ek + s.v_head_dim * s.ev) <= spec.l2_bytes / 2:
        return max(1, n_qt), True
    return max(1, wave // split), False


def fused(gpu: Gpu, s: Shape, name: str, strategy: str, block_q: int, block_kv: int
          ) -> list[Kernel]:
    """The fused kernels of the split-KV candidate whose :func:`estimate` is least (the
    first, in :func:`split_candidates`' order, of those that tie).

    Each candidate is estimated only when its :func:`_split_bound` could still beat
    the best estimate so far: the candidates are visited by their bounds, least first,
    as the GEMM selector visits its tiles (:func:`.gemm.kernels`); one whose bound
    equals the best and comes after it in that order is skipped (a tie keeps the
    first), and the visit stops at the first bound above the best. A bound never
    exceeds its candidate's estimate, so the pick is the exhaustive search's (a test
    holds the two equal)."""
    geo = _geometry(gpu, s, strategy, block_q, block_kv)
    splits = geo["splits"]
    cands = [_fused_kernels(gpu, s, geo, split, name, strategy, block_kv) for split in splits]
    if len(cands) == 1:
        return cands[0]
    plans = sorted([(_split_bound(gpu, ks), i) for i, ks in enumerate(cands)])
    if any(b != b for b, _ in plans):  # (a NaN has no order: every candidate, in order)
        return _fused_exhaustive(gpu, cands)
    best = None  # (estimate, place)
    for bound, i in plans:
        if best is not None and bound >= best[0]:
            if bound > best[0]:
                break  # this candidate and every later one take longer than the best
            if i > best[1]:
                continue  # at best a tie, which the earlier one wins
        t = estimate(gpu, cands[i])
        if t != t:
            return _fused_exhaustive(gpu, cands)
        if best is None or t < best[0] or (t == best[0] and i < best[1]):
            best = (t, i)
    return cands[best[1]]


def _fused_exhaustive(gpu: Gpu, cands: list[list[Kernel]]) -> list[Kernel]:
    """:func:`fused`'s pick, every candidate estimated in order."""
    best = None
    for ks in cands:
        t = estimate(gpu, ks)
        if best is None or t < best[0]:
            best = (t, ks)
    return best[1]


# a block's time alone, taken this much lower in :func:`_split_bound`: the planner's
# SM time for a lone block is the same block's pipes through a ratio of group times
# (:func:`.gpu._shared_sm_time`), a few roundings away
SPLIT_BOUND_MARGIN = 1e-9


def _split_bound(gpu: Gpu, ks: list[Kernel]) -> float:
    """A floor under :func:`.gpu.estimate` of ``ks`` (a split-KV candidate's kernels),
    without planning the attention kernel: :func:`.gpu.estimate`'s own terms, in its
    order, with the attention kernel's busiest SM replaced by a floor under it (the
    combine kernel, a uniform grid, is planned as the estimate plans it). When the
    kernel's blocks are no more than the SMs and each costs more than nothing, the
    longest-first handout (:meth:`.gpu.Gpu.assign`) puts each on an SM of its own,
    where the planner's time is the block alone's (its pipes with one block
    resident), or that of a full group's share where that is less
    (:func:`.gpu._shared_sm_time` with one block); the floor is the largest of these
    over the blocks, taken :data:`SPLIT_BOUND_MARGIN` lower. Otherwise the floor is 0
    (the traffic floor and the launch still count). Rounding is monotone, so the
    bound is at most the estimate."""
    start = end = 0.0
    for j, k in enumerate(ks):
        occ = gpu.occupancy(k.threads, k.regs, k.smem).blocks_per_sm
        if occ < 1:
            return float("inf")
        busiest = _lone_blocks_floor(gpu, k, occ) if j == 0 else estimate_busiest(gpu, k, occ)
        floor_s, _ = gpu.traffic_floor(*k.traffic())
        start = queued_start_s(gpu.spec, start, end, j == 0)
        end = start + max(busiest, floor_s, k.pcie_bytes / gpu.spec.pcie_bw_bytes_per_s)
    return end


def _lone_blocks_floor(gpu: Gpu, k: Kernel, occ: int) -> float:
    """:func:`_split_bound`'s floor under ``k``'s busiest SM (0 when it has none)."""
    if sum([c for c, _ in k.blocks]) > gpu.spec.sms or not gpu.turnover_s > 0:
        return 0.0
    floor = 0.0
    seen = set()
    for _, w in k.blocks:
        if id(w) in seen:
            continue
        seen.add(id(w))
        f = tuple(_fields(w))
        alone = gpu._pipes_of(k, f, 1)[0]
        if occ > 1:  # a full group's share, stretched to the lone block's ratio
            alone = min(alone, gpu._pipes_of(k, tuple([x * occ for x in f]), occ)[0])
        if not math.isfinite(alone):
            return 0.0
        floor = max(floor, alone)
    return floor * (1.0 - SPLIT_BOUND_MARGIN)


def _fused_kernels(gpu: Gpu, s: Shape, geo: dict, split: int, name: str, strategy: str,
                   block_kv: int) -> list[Kernel]:
    spec = gpu.spec
    bq, bkv, warps, e, t = geo["bq"], geo["bkv"], geo["warps"], geo["e"], geo["tiles"]
    occ, mode = geo["occ"], geo["mode"]
    d, dv = s.head_dim, s.v_head_dim
    gmem_acc = strategy == "flash" and dv > geo["bkv0"] and not block_kv and d > 64
    layout = spec.flash_smem_layout if strategy == "flash" else "permuted"
    n_qt = len(t.rows)
    blocks_per_unit = n_qt * split
    # ---- per key block of one tile
    passes = 1 + (SELECT_PASSES if mode == "recompute" else 0)  # Q·Kᵀ per selection pass
    pv_dense = mode == "dense"
    if strategy == "flash":
        # xformers splits the key block over its warps (CUTLASS's 32x32 warp tile on
        # sm_70, kernel_forward.h): the warps of a row block share its rows, so each
        # loads the Q rows for its keys and, for P·V, all of P from shared memory, where
        # the scores were stored one element per instruction (B2bGemm's Volta
        # accumToSmem, mma_from_smem.h): a warp's 2-byte stores fill a wavefront each
        wm = min(bq, 32)
        qk_tile, pv_tile = (32, 32), (wm, max(1, (bq * dv) // (warps * wm)))
        p_store_wavefront_bytes = bq * bkv * P_STORE_WAVEFRONT_BYTES
    else:
        # FastAttention extends FlashAttention-2, which splits the query rows over the
        # warps (Dao, arXiv 2307.08691, section 3.3): a warp holds its rows' scores over
        # the whole key block, and P stays in its registers as the A operand of P·V
        # (gemm_rs in flash-attention's csrc/flash_attn/src/utils.h; FastAttention's
        # register reuse): only V's fragments come from shared memory
        rows = max(8, bq // warps)
        qk_tile, pv_tile = (rows, bkv), (rows, dv)
        p_store_wavefront_bytes = 0.0
    p_in_smem = strategy == "flash"
    f_qk = conflict_factor(layout, d)
    f_pv = conflict_factor(layout, max(bkv, dv))
    loads_qk = _fragment_loads(warps, *qk_tile, d, e, s.tensor) * passes
    stores_k = bkv * d * e * passes
    loads_pv = (_fragment_loads(warps, *pv_tile, bkv, e, s.tensor, a_in_regs=not p_in_smem)
                if pv_dense else 0.0)
    stores_v = bkv * dv * e if pv_dense else 0.0
    stores_p = bq * bkv * e if pv_dense and p_in_smem else 0.0
    if not pv_dense:
        p_store_wavefront_bytes = 0.0
    hist = HIST_SMEM_BYTES_PER_SCORE * bq * bkv * SELECT_PASSES if mode == "recompute" else 0.0
    # xformers (kernel_forward.h) builds Q·Kᵀ's operand iterators inside its key loop:
    # every key block (and selection pass) loads the Q tile from global memory into
    # shared memory again. The K and V blocks streamed meanwhile (64 KiB a key block at
    # head_dim 128) overflow the L1 that shared memory leaves, so the reload crosses L2.
    # FlashAttention-2, which FastAttention extends, loads Q once per block
    # (flash_fwd_kernel.h, before its key loop): counted once per tile below
    q_reload = bq * d * passes if strategy == "flash" else 0
    unpack = UNPACK_OPS_PER_ELEMENT * bkv * ((d * passes if s.ek < e else 0)
                                             + (dv if s.ev < e and pv_dense else 0))
    per_iter = Work(
        tensor_flops=2.0 * bq * bkv * (d * passes + (dv if pv_dense else 0)),
        cuda_flops=(ALU_FLOPS_PER_SCORE * bq * bkv + (2.0 * bq * dv if pv_dense else 0)
                    + (SELECT_OPS_PER_SCORE * bq * bkv * SELECT_PASSES
                       if mode == "recompute" else 0) + unpack),
        sfu_ops=float(bq * bkv),
        smem_bytes=loads_qk + loads_pv + stores_k + stores_v + stores_p + hist + q_reload * e,
        smem_wavefront_bytes=(loads_qk * f_qk + loads_pv * f_pv + stores_k + stores_v
                              + p_store_wavefront_bytes + hist + q_reload * e),
        l2_bytes=bkv * d * s.ek * passes + (bkv * dv * s.ev if pv_dense else 0)
        + (2 * bq * dv * 4 if gmem_acc else 0) + q_reload * s.eq)
    # ---- HBM: K and V per unit, by waves; Q and O per tile
    wave = spec.sms * occ
    chunk, once = _kv_chunk(s, t, spec, wave, split)
    if s.gathers:
        k_rows, v_rows = _selection_rows(s, t, chunk, once)
    else:
        k_rows, v_rows = _kv_rows_read(s, t, chunk)
    k_reads = 1
    if mode == "recompute" and not once:
        k_reads = passes  # K does not stay in L2: each selection pass streams it again
    kv_hbm_unit = k_rows * d * s.ek * k_reads + (v_rows * dv * s.ev if mode != "buffered" else 0)
    unit_iters = float(sum(t.iters))
    partials = (s.batch * s.heads * s.q_len * (dv * 4.0 + 8.0) * split
                if split > 1 and mode == "dense" else 0.0)
    partials_in_l2 = partials <= spec.l2_bytes / 2  # always, by the choice of split
    # the tiles' works on numpy arrays (_tile_works: the same floats) when the planner
    # will take them as arrays too (gpu.arrays), else one by one in the loop below,
    # which the recompute mode always takes (it weighs each tile's selected values)
    arrays = mode != "recompute" and gpu_arrays(t.units * n_qt * split)
    runs, matrix = ([], None) if not arrays else _tile_works(
        per_iter, t, split, unit_iters, blocks_per_unit, kv_hbm_unit, d, dv, s.eq, s.eo, bkv,
        mode, partials_in_l2, s.extra_read / max(1, t.units * len(t.rows) * split), s.tensor)
    works: list[Work] = []  # (the loop below fills it)
    for i in range(0 if arrays else n_qt):
        rows, n_i = int(t.rows[i]), int(t.iters[i])
        for n in _split_iters(n_i, split):
            w = per_iter.scaled(n)
            share = (n / unit_iters) if unit_iters else (1.0 / blocks_per_unit)
            w.hbm_read = kv_hbm_unit * share + rows * d * s.eq / split
            w.l2_bytes += rows * d * s.eq / split
            if mode == "buffered":  # fp16 scores and row statistics into the L2 buffer
                w.l2_bytes += rows * n * bkv * 2.0 + rows * 8.0
            elif split == 1:
                w.hbm_write = rows * dv * s.eo
                w.l2_bytes += rows * dv * s.eo
            else:
                part = rows * dv * 4.0 + rows * 8.0  # fp32 partial output and row stats
                w.l2_bytes += part
                if not partials_in_l2:
                    w.hbm_write = part
            if mode == "recompute" and n_i:  # weigh the selected values, once per tile
                _weigh_selected(w, s, rows, float(t.width[i]), e)
            if not s.tensor:  # no tensor cores: the matrix work on the CUDA cores
                w.cuda_flops += w.tensor_flops
                w.tensor_flops = 0.0
            works.append(w)
    units = t.units
    if matrix is None:  # (the tiles' own path added it, and the CUDA cores' share)
        extra = s.extra_read / max(1, units * len(works))
        for w in works:
            w.hbm_read += extra
    label = "fastattention" if strategy == "fastattention" else "xformers-fmha"
    matrix_flops = per_iter.tensor_flops if s.tensor else per_iter.cuda_flops
    if strategy == "flash":
        # xformers' key loop on sm_70 runs one CUTLASS two-stage main loop per product
        # (Q·Kᵀ per selection pass, then P·V): each starts with a prologue that loads
        # its first 32-wide slice from global memory, stores it to shared memory and
        # waits at a barrier before the first MMA (custom_mma_pipelined.h); V is
        # preloaded during the softmax only from sm_80 on (kPreloadV, kernel_forward.h).
        # In flight meanwhile: one slice of the two-stage loop (ThreadK = 32 on sm_70,
        # gemm_kernel_utils.h), not the next key block
        trips = passes + (1 if pv_dense else 0)
        inflight = max((bq + bkv) * 32 * e, 32 * dv * e if pv_dense else 0) / geo["threads"]
    else:
        # FastAttention loads the next key block while this one computes (no prologue
        # left on the path)
        trips = 0
        inflight = bkv * d * s.ek / geo["threads"]
    if mode == "buffered":
        label += " scores"
    k = Kernel(f"{name}:{label}", f"{bq}x{bkv}", geo["threads"], geo["regs"], geo["smem"],
               _classes(units, works, runs=runs if matrix is not None else None),
               dtype=s.compute, tensor=s.tensor, serial_operands=False,
               detail=_detail(s, t, split, bq, mode),
               notes={"strategy": strategy, "layout": layout, "bank_conflicts_qk": f_qk,
                      "bank_conflicts_pv": f_pv, "split_kv": split, "mode": mode,
                      "heads_per_tile": s.group if not s.gathers else 1,
                      "kv_reads_per_head": round(k_rows / max(1, s.kv_len), 3)},
               inflight_bytes_per_thread=inflight,
               exposed_trips_per_flop=trips / matrix_flops if matrix_flops else 0.0)
    if matrix is not None:  # the classes' rows, as Kernel.matrix would read them
        if len(k.blocks) == len(runs):
            k.__dict__["matrix"] = matrix
        elif len(k.blocks) == units * len(runs):  # the runs listed unit after unit
            import numpy as np  # noqa: PLC0415 (loaded already: the matrix is an array)

            k.__dict__["matrix"] = np.tile(matrix, (units, 1))
    ks = [k]
    if mode == "buffered":
        ks.append(_select_kernel(s, t, name, e, v_rows))
    elif split > 1:
        # flash-decoding's combine: one block per query row rescales and sums its
        # split partial rows (dv fp32 values and two row statistics each)
        cb = s.batch * s.heads * s.q_len
        part = split * (dv * 4.0 + 8.0)
        cw = Work(cuda_flops=3.0 * split * dv, sfu_ops=float(split),
                  hbm_read=0.0 if partials_in_l2 else part, hbm_write=dv * s.eo,
                  l2_bytes=part + dv * s.eo)
        ks.append(Kernel(f"{name}:combine", f"1 row x {dv}", min(1024, max(32, dv)), 32, 0,
                         [(cb, cw)], dtype="fp32", tensor=False,
                         detail="partials in L2" if partials_in_l2 else ""))
    return ks


def _fragment_loads(warps: int, wm: int, wn: int, k: int, e: float, tensor: bool,
                    a_in_regs: bool = False) -> float:
    """Bytes a block's warps load from shared memory for the operands of a product
    over ``k`` on ``wm x wn`` warp tiles. On the tensor cores every quad pair holds
    its own copy of the rows it shares with another (m8n8k4's fragments, PTX ISA), so
    a warp loads twice the operand bytes it uses
    (:func:`.mainloop.fragment_bytes_per_thread`, as the GEMM counts them), in the
    64-bit loads whose wavefronts :mod:`.smem` counts; on the CUDA cores lanes that
    read the same value share one broadcast, so the bytes used are the bytes loaded.
    ``a_in_regs``: the A operand is already in registers (loads only B's)."""
    ea = 0.0 if a_in_regs else e
    if tensor:
        tile = SimpleNamespace(tensor=True, wm=wm, wn=wn, tk=k)
        return warps * WARP * fragment_bytes_per_thread(tile, ea, e)
    return warps * (wm * ea + wn * e) * k


def _tile_works(per_iter: Work, t: Tiles, split: int, unit_iters: float, blocks_per_unit: int,
                kv_hbm_unit: float, d: int, dv: int, eq: float, eo: float, bkv: int, mode: str,
                partials_in_l2: bool, extra: float = 0.0, tensor: bool = True):
    """Each tile's (split part's) work, as :func:`_fused_kernels`' loop over tiles made it
    (the same floats: each count the same operations in the same order, on numpy
    arrays): a long causal attention has thousands of tiles. ``extra``: HBM bytes each
    tile reads besides (its share of the op's extra inputs); without tensor cores the
    matrix work moves to the CUDA cores. Returns the works and their matrix
    (:attr:`~hwsim.accelerators.volta.gpu.Kernel.matrix` rows)."""
    import numpy as np  # noqa: PLC0415 (loaded on first need)
    rows = np.asarray(t.rows, dtype=np.int64)
    iters = np.asarray(t.iters, dtype=np.int64)
    if split == 1:
        n, rows_n = iters, rows
    else:  # _split_iters: each tile's keys over split blocks, the first ones one longer
        base, longer = np.divmod(iters, split)
        k = np.arange(split)
        n = (base[:, None] + (k[None, :] < longer[:, None])).reshape(-1)
        rows_n = np.repeat(rows, split)
    nf = n.astype(float)
    share = nf / unit_iters if unit_iters else np.full(len(n), 1.0 / blocks_per_unit)
    q = rows_n * d * eq / split
    cols = {f: getattr(per_iter, f) * nf for f in
            ("tensor_flops", "cuda_flops", "sfu_ops", "smem_bytes", "smem_wavefront_bytes",
             "l2_bytes", "hbm_read", "hbm_write", "l1_bytes")}
    cols["hbm_read"] = kv_hbm_unit * share + q
    l2 = cols["l2_bytes"] + q
    if mode == "buffered":  # fp16 scores and row statistics into the L2 buffer
        l2 = l2 + (rows_n * n * bkv * 2.0 + rows_n * 8.0)
    elif split == 1:
        out = rows_n * dv * eo
        cols["hbm_write"] = out * 1.0
        l2 = l2 + out
    else:
        part = rows_n * dv * 4.0 + rows_n * 8.0  # fp32 partial output and row stats
        l2 = l2 + part
        if not partials_in_l2:
            cols["hbm_write"] = part
    cols["l2_bytes"] = l2
    cols["hbm_read"] = cols["hbm_read"] + extra
    if not tensor:
        cols["cuda_flops"] = cols["cuda_flops"] + cols["tensor_flops"]
        cols["tensor_flops"] = cols["tensor_flops"] * 0.0
    matrix = np.array([np.broadcast_to(cols[f], (len(n),)) for f in cols], dtype=float).T
    if not len(matrix):
        return [], matrix
    # runs of equal tiles (:func:`_runs`): a Work per run
    starts = np.flatnonzero(np.concatenate(([True], np.any(matrix[1:] != matrix[:-1], axis=1))))
    counts = np.diff(np.append(starts, len(matrix)))
    heads = matrix[starts]
    return [(c, Work(*vals)) for c, vals in zip(counts.tolist(), heads.tolist())], heads


def _weigh_selected(w: Work, s: Shape, rows: int, width: float, e: float) -> None:
    """Add to ``w`` the weighing of each row's selected value rows on the CUDA cores:
    the tile streams its V blocks or gathers each row's rows, whichever is fewer."""
    vals = min(width, s.values)
    touched = min(width, rows * vals)  # V rows the tile reads
    w.cuda_flops += 2.0 * rows * vals * s.v_head_dim
    w.l2_bytes += touched * s.v_head_dim * s.ev
    w.smem_bytes += touched * s.v_head_dim * e + rows * vals * s.v_head_dim * e
    w.smem_wavefront_bytes += touched * s.v_head_dim * e + rows * vals * s.v_head_dim * e
    if s.ev < e:
        w.cuda_flops += UNPACK_OPS_PER_ELEMENT * touched * s.v_head_dim


def _select_kernel(s: Shape, t: Tiles, name: str, e: float, v_rows: float) -> Kernel:
    """Value pruning over buffered scores: one block per query tile reads its rows'
    scores from L2 (two histogram passes and the pass that forms the selected
    probabilities), then weighs the selected value rows (:func:`_weigh_selected`)."""
    works = []
    v_total = float(sum(t.rows))
    for i in range(len(t.rows)):
        rows, width = int(t.rows[i]), float(t.width[i])
        scores = rows * width
        w = Work(cuda_flops=SELECT_OPS_PER_SCORE * scores * SELECT_PASSES
                 + ALU_FLOPS_PER_SCORE * rows * min(width, s.values),
                 sfu_ops=rows * min(width, s.values),
                 smem_bytes=HIST_SMEM_BYTES_PER_SCORE * scores * SELECT_PASSES,
                 smem_wavefront_bytes=HIST_SMEM_BYTES_PER_SCORE * scores * SELECT_PASSES,
                 l2_bytes=(scores * 2.0 * (1 + SELECT_PASSES) + rows * 8.0
                           + rows * s.v_head_dim * s.eo),
                 hbm_read=v_rows * s.v_head_dim * s.ev * rows / v_total,
                 hbm_write=rows * s.v_head_dim * s.eo)
        if t.iters[i]:
            _weigh_selected(w, s, rows, width, e)
        works.append(w)
    return Kernel(f"{name}:select", "tile x 256", 256, 64, 256 * 4 + 1024,
                  _classes(t.units, works), dtype="fp32", tensor=False,
                  detail=f"top-{s.values} values of buffered scores, "
                         f"{SELECT_PASSES} histogram passes")


def _classes(units: int, works: list[Work] | None = None, *,
             runs: list[tuple[int, Work]] | None = None) -> list[tuple[int, Work]]:
    """The kernel's block classes: a unit's tiles in launch order, unit after unit;
    equal tiles in a row (a causal walk's GQA-packed tiles) as one class of that many,
    which keeps the launch order and the LPT order (equal blocks in a row stay in a row)
    with fewer classes to plan. ``runs``: the tiles already as (how many, work)."""
    if runs is None:
        runs = _runs(works or [])
    n = sum(c for c, _ in runs)
    if len(runs) == 1:
        return [(units * n, runs[0][1])]
    if units * n <= MAX_CLASSES:
        return [run for _ in range(units) for run in runs]
    return [(units * c, w) for c, w in runs]


def _runs(works: list[Work]) -> list[tuple[int, Work]]:
    """Consecutive equal works as (how many, work)."""
    out: list[tuple[int, Work]] = []
    for w in works:
        if out and _same(out[-1][1], w):
            out[-1] = (out[-1][0] + 1, w)
        else:
            out.append((1, w))
    return out


def _split_iters(n: int, split: int) -> list[int]:
    """``n`` key blocks over ``split`` blocks, as evenly as whole blocks allow."""
    if split == 1:
        return [n]
    base, extra = divmod(n, split)
    return [base + 1] * extra + [base] * (split - extra)


def _same(a: Work, b: Work) -> bool:
    return a == b


def _detail(s: Shape, t: Tiles, split: int, bq: int, mode: str) -> str:
    parts = []
    if not s.gathers and s.group > 1:
        parts.append(f"{min(s.group, bq)} heads/tile" if s.group <= bq
                     else f"{s.group} heads over {cdiv(s.group, bq)} tiles")
    if s.window:
        parts.append(f"window {s.window}")
    if s.gathers:
        parts.append(f"gathers {s.keys} keys/{min(s.sparse_block, s.q_len)} queries")
    if mode == "recompute":
        parts.append(f"top-{s.values} values, {SELECT_PASSES} select passes recompute QK")
    elif mode == "buffered":
        parts.append("scores buffered in L2")
    longest = max(t.iters) if t.iters else 0
    if split > 1:
        parts.append(f"split-KV {split}")
        longest = cdiv(longest, split)
    parts.append(f"<={longest} key blocks")
    return ", ".join(parts)


# ---------------------------------------------------------------- standard
def standard(gpu: Gpu, s: Shape, name: str) -> list[Kernel]:
    """Eager PyTorch: GEMMs through HBM (GQA packed into the GEMMs' M)."""
    dt = s.dtype
    kdt, vdt = _stored(s.ek, dt), _stored(s.ev, dt)
    g = s.group
    ks: list[Kernel] = []
    rows = s.batch * s.heads * s.q_len
    if s.gathers:
        sb = min(s.sparse_block, s.q_len)
        nblk = cdiv(s.q_len, sb)
        items = s.batch * s.heads * nblk
        ks += _gather_rows(s, f"{name}.gatherK", items * s.keys, s.head_dim, s.ek, s.key_rows)
        if not s.selects_values:  # value pruning gathers its own value rows after the selection
            ks += _gather_rows(s, f"{name}.gatherV", items * s.keys, s.v_head_dim, s.ev,
                               s.value_rows)
        ks += gemm_kernels(gpu, Gemm(items, sb, s.keys, s.head_dim, dt, dt, name=f"{name}.QK",
                                     b_dtype=kdt, extra_read=s.extra_read))
        cols = s.keys
    else:
        ks += gemm_kernels(gpu, Gemm(s.batch * s.kv_heads, g * s.q_len, s.kv_len, s.head_dim, dt,
                                     dt, name=f"{name}.QK", b_dtype=kdt,
                                     extra_read=s.extra_read))
        cols = s.kv_len
    nbytes = rows * cols * s.eq
    if cols <= 1024:
        blocks, threads, tile = cdiv(rows, 4), 128, "4 rows x 1 warp"
    else:
        threads = 1024 if cols >= 8192 else 256
        blocks, tile = rows, f"1 row x {threads}"
    ks.append(_stream(f"{name}.softmax", tile, blocks, threads, 5.0 * rows * cols,
                      rows * cols, nbytes, nbytes, s.compute, smem=1024))
    if s.selects_values:
        ks += _select_and_weigh(s, name, rows, cols)
    elif s.gathers:
        sb = min(s.sparse_block, s.q_len)
        ks += gemm_kernels(gpu, Gemm(s.batch * s.heads * cdiv(s.q_len, sb),
                                     sb, s.v_head_dim, s.keys, dt, dt,
                                     name=f"{name}.PV", b_dtype=vdt))
    else:
        ks += gemm_kernels(gpu, Gemm(s.batch * s.kv_heads, g * s.q_len, s.v_head_dim, s.kv_len, dt,
                                     dt, name=f"{name}.PV", b_dtype=vdt))
    return ks


def _stored(e: float, dt: str) -> str:
    """A dtype name for a stored width (only its size matters to the GEMM's bytes)."""
    return dt if e == element_bytes(dt) else f"fix{int(round(e * 8))}"


def _gather_rows(s: Shape, name: str, n_rows: int, width: int, e: float,
                 distinct_rows: int) -> list[Kernel]:
    """Copy the selected rows of K or V into one contiguous tensor per query block:
    HBM reads each distinct row once (L2 serves the repeats), writes every copy."""
    elems = n_rows * width
    rd = s.batch * s.kv_heads * distinct_rows * width * e + n_rows * INDEX_BYTES
    wr = elems * e
    k = _stream(f"{name}", "256x8", cdiv(max(elems, 1), 2048), 256, 0.0, 0.0, rd, wr, "fp32")
    for _, w in k.blocks:
        w.l2_bytes = (elems * e + n_rows * INDEX_BYTES + wr) / k.grid
    return [k]


GATHER_UNROLL = 8  # selected rows a warp's gather loop keeps in flight (M)


def _select_and_weigh(s: Shape, name: str, rows: int, cols: int) -> list[Kernel]:
    """Value pruning after a softmax: a radix select per row over the probabilities
    (one block per row, the row in shared memory, two 8-bit passes), writing the
    ``v_len`` selected probabilities and indices; then one warp per query row weighs
    its selected V rows on the CUDA cores (gathered from L2; HBM reads the rows the
    selections cover)."""
    e = s.eq
    sel = rows * s.values * (e + INDEX_BYTES)
    topk = _stream(f"{name}.topv", "1 row x 256", rows, 256,
                   SELECT_OPS_PER_SCORE * SELECT_PASSES * rows * cols, 0.0,
                   rows * cols * e, sel, "fp32",
                   smem_bytes=(1 + SELECT_PASSES) * rows * cols * e,
                   smem=int(min(cols * e, 48 * 1024)) + 1024)
    v_hbm = s.batch * s.kv_heads * s.value_rows * s.v_head_dim * s.ev
    blocks = cdiv(rows, 8)
    w = Work(cuda_flops=2.0 * rows * s.values * s.v_head_dim / blocks,
             hbm_read=(sel + v_hbm) / blocks, hbm_write=rows * s.v_head_dim * s.eo / blocks,
             l2_bytes=(sel + rows * s.values * s.v_head_dim * s.ev
                       + rows * s.v_head_dim * s.eo) / blocks)
    # in flight: a warp's gather loop unrolled over 8 selected V rows (independent
    # loads; the unroll is the kernel's design, M), each row spread over its 32 lanes
    pv = Kernel(f"{name}.PVgather", "8 rows x 1 warp", 256, 64, 0, [(blocks, w)],
                dtype="fp32", tensor=False, detail=f"top-{s.values} values gathered",
                inflight_bytes_per_thread=GATHER_UNROLL * s.v_head_dim * s.ev / 32)
    return [topk, pv]


def standard_workspace(op, graph) -> float:
    """HBM the standard path needs beyond the op's tensors: scores and probabilities
    (and the gathered K and V of a sparse selection, the selected values of v_len)."""
    s = Shape.of(op, graph)
    rows = s.batch * s.heads * s.q_len
    if s.gathers:
        items = s.batch * s.heads * cdiv(s.q_len, min(s.sparse_block, s.q_len))
        cols = s.keys
        extra = items * s.keys * (s.head_dim * s.ek + s.v_head_dim * s.ev)
    else:
        cols = s.kv_len
        extra = 0.0
    if s.selects_values:
        extra += rows * s.values * (s.eq + INDEX_BYTES)
    return 2.0 * rows * cols * s.eq + extra
