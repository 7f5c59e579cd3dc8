"""Fused attention on the CPU: per-head GEMMs and a softmax, tiled to stay in L2.

``softmax(Q Kᵀ · scale + mask) V`` for ``heads`` query heads sharing ``kv_heads``
key/value heads. The query rows of the heads that share a K/V head are stacked,
position-major (a position's ``heads / kv_heads`` rows together), so one block of
query rows walks that K/V head once for the whole group (grouped-query and
multi-query attention read each K/V head once, prefill and decode alike; a decode
step's query tile is the group's rows).

``flash`` (``tiling.attention``: ``flash``, ``fastattention`` or ``auto``)
    FlashAttention-style: a block of ``block_q`` query rows walks the K/V blocks of
    ``block_kv`` keys; ``S = Q Kᵀ`` of the block, its online softmax (a vectorized
    exp per score, the running max and sum, the rescale of the output rows) and
    ``O += P V`` stay in L1/L2. Blocks are chosen (when the workload leaves them at
    0) as the largest that fit in half of a core's L2. Tiles that a causal or
    sliding-window mask hides entirely are skipped (a tile with one visible score
    is computed whole), so the executed FLOPs are the visible tiles'
    (:meth:`.target.ARMv8Target.executed_flops`); the op reads only the keys some
    query's window covers.
``standard``
    Unfused: ``S`` of every head over the visible keys is written out, read by the
    softmax, written as ``P`` and read again by ``P V``, from the level that holds
    it (the last level, or DRAM).

The attributes that prune inside the attention are costed for what they run:

``v_len`` (SpAtten's local value pruning)
    The scores pass is as above, with the row block's scores kept; then each query
    row selects its ``v_len`` largest probabilities (a quick-select over its
    visible scores: two passes of compare, select and count per vector, as the
    ``topk`` op) and weights only those value rows: a gathered matrix-vector
    product per row, one vector load per FMA. A row's selection needs all its
    scores, so the keys are not split across threads.
``sparse_keys`` / ``sparse_block`` (block-sparse attention: HiP, top-k attention)
    Each block of ``sparse_block`` query positions of one head attends to its
    ``sparse_keys`` selected keys, gathered row by row where they lie in K and V
    (a copy into a contiguous tile; a page-table walk per row once a block's rows
    span more pages than the TLB holds), then the same tiled GEMMs and softmax.

Data: Q is read from DRAM once, K and V once per row some query uses
(:func:`hwsim.ir.kinds.attention_rows`) and again, for every other query block
that walks them, from the nearest level that holds them by reuse distance; O is
written back to DRAM. Threads take (batch, K/V head, query block) units; with
fewer units than cores (decode) the keys are split too (split-K, flash-decoding
style) and the partial outputs merged after a barrier. The per-block GEMMs use
the workload's GEMM strategy: OpenBLAS kernels with their edge kernels and
packing of both operands, or IAAT/AutoTSMM exact-size kernels that only
transpose K.
"""

from __future__ import annotations

import functools
import math

from hwsim.ir import AttentionShape
from hwsim.ir.dtypes import nbytes

from .ecm import Plan, Step, estimate, materialize, tiles
from .gemm import (
    KERNEL_FIELD,
    STRATEGIES,
    pack_step,
    power_parts,
    run_kernels,
    thread_counts,
    tile_kernels,
)
from .kernels import checked_kernel
from .placement import reread, scratch
from .spec import Machine

BLOCK_Q = (256, 128, 64, 32, 16, 8, 4, 2, 1)
BLOCK_KV = (1024, 512, 256, 128, 64)
SOFTMAX_OPS = 5.0  # max, subtract, sum, the running-max rescale, a convert/select
SELECT_OPS, SELECT_PASSES = 3.0, 2.0  # quick-select: compare, select, count; two passes


def key_spans(q: int, kv: int, causal: bool, window: int, bq_pos: int, bkv: int):
    """Per block of ``bq_pos`` query positions that some key is visible to: its rows,
    the key blocks it computes and the keys those blocks hold (clipped at ``kv_len``),
    as three lists of integers. Queries are bottom-right aligned and masks read as in
    :func:`hwsim.ir.kinds.visible_scores`; a causal mask's blocks are aligned to
    ``block_kv`` (those above the diagonal skipped), a sliding window's start at the
    first key of the block's band, so the blocks a window needs never depend on where
    the band falls against a block boundary."""
    rows, blocks, width = [], [], []
    for first in range(0, q, bq_pos):
        got = _span(q, kv, causal, window, bkv, first, min(first + bq_pos, q) - 1)
        if got is not None:
            rows.append(got[0])
            blocks.append(got[1])
            width.append(got[2])
    return rows, blocks, width


def _span(q: int, kv: int, causal: bool, window: int, bkv: int, first: int, last: int):
    """:func:`key_spans` of the query positions ``first`` to ``last``: (rows, key
    blocks, keys), or None where no key is visible to them."""
    off = kv - q
    # (min() of two as a test where it runs for every block of rows: the same value)
    hi = kv - 1
    if causal and last + off < hi:
        hi = last + off
    lo = 0
    if window > 0:
        lo = max(0, first + off - window + 1)
        if not causal:
            hi = min(kv - 1, last + off + window - 1)
    if hi < lo:
        return None
    if window > 0:  # a band: its key blocks start where the band does
        blocks = (hi - lo + bkv) // bkv
        return last - first + 1, blocks, min(kv - lo, blocks * bkv)
    b0, b1 = lo // bkv, hi // bkv
    end = (b1 + 1) * bkv
    return last - first + 1, b1 - b0 + 1, (end if end < kv else kv) - b0 * bkv


@functools.lru_cache(maxsize=1024)
def _span_sums(q: int, kv: int, causal: bool, window: int, bq_pos: int, bkv: int,
               v_len: int = 0) -> tuple[float, float, float, float, int]:
    """What :func:`_plan` needs of :func:`key_spans`: the sums of the key blocks, of
    the keys scored (rows x width), of the rows and of the values weighed (rows x
    ``min(v_len, width)``), and the widest span (0 where no block sees a key).

    Without a window a block's keys start at the first: the full blocks of ``bq_pos``
    rows are summed at once, in closed form under a causal mask (:func:`_causal_sums`:
    a sum of floors), as one run without one, so a call costs neither the key blocks
    nor the query blocks (a 4K causal prefill asks of thousands of query blocks per
    option, and summed run by run, a run per key block, 288 calls took 3 ms of the
    7B distinct-layer prefill); the last, shorter block is taken alone. Spans only widen
    down the queries, so the widest is the last block's. A window's spans are summed
    as :func:`key_spans` lists them. Every sum is of integers, exact; a test holds
    all of it to the lists."""
    if window > 0 or q <= 0 or kv <= 0 or bq_pos <= 0:
        rows, blocks, width = key_spans(q, kv, causal, window, bq_pos, bkv)
        return (float(sum(blocks)), float(sum(r * w for r, w in zip(rows, width))),
                float(sum(rows)), float(sum(r * min(v_len, w) for r, w in zip(rows, width))),
                max(width, default=0))
    n_blocks = n_keys = n_rows = n_values = 0
    nb = -(-q // bq_pos)  # blocks of positions, the last maybe shorter
    off = kv - q
    last_key_block = (kv - 1) // bkv
    i = 0
    if causal:  # blocks no key is visible to: last + off < 0
        i = max(0, -((off - 1) // bq_pos) - 1)
        if i < nb - 1:  # the full blocks at once (_causal_sums), then the last
            n_blocks, n_keys, n_rows, n_values = _causal_sums(i, nb - 2, bq_pos, bkv, off,
                                                              kv, v_len)
            i = nb - 1
    while i < nb - 1:  # the full blocks, run by run
        hi = min(kv - 1, (i + 1) * bq_pos - 1 + off) if causal else kv - 1
        if hi < 0:  # (never met: the first block that sees a key was found above)
            i += 1
            continue
        b1 = hi // bkv
        if not causal or b1 == last_key_block:
            end = nb - 2  # every later block ends in the same key block
        else:  # the last block i' whose last + off stays below the next key block
            end = min(nb - 2, ((b1 + 1) * bkv - off) // bq_pos - 1)
        count = end - i + 1
        w = min(kv, (b1 + 1) * bkv)
        n_blocks += count * (b1 + 1)
        n_rows += count * bq_pos
        n_keys += count * bq_pos * w
        n_values += count * bq_pos * min(v_len, w)
        i = end + 1
    widest = 0
    got = _span(q, kv, causal, window, bkv, (nb - 1) * bq_pos, q - 1)
    if got is not None:
        r, b, w = got
        n_blocks += b
        n_rows += r
        n_keys += r * w
        n_values += r * min(v_len, w)
        widest = w
    return float(n_blocks), float(n_keys), float(n_rows), float(n_values), widest


def _causal_sums(first: int, last: int, bq_pos: int, bkv: int, off: int, kv: int,
                 v_len: int) -> tuple[int, int, int, int]:
    """:func:`_span_sums`' run-by-run sums over the full blocks ``first`` to ``last``
    of a causal mask without a window, in closed form: block ``i``'s last key is
    ``(i + 1) bq_pos - 1 + off`` (below ``kv - 1``: a full block ends before the
    last query), its key blocks ``b(i) + 1`` with ``b(i)`` that key over ``bkv``
    (floored), its width ``(b(i) + 1) bkv``, cut to ``kv`` in the last key block.
    The floors' sum is :func:`_floor_sum`; the blocks whose width reaches the last key
    block, or passes ``v_len``, start where ``b(i)`` reaches it (the widths only grow
    down the queries). Integers throughout: the same sums as the runs (a test holds
    them to :func:`key_spans`' lists)."""
    count = last - first + 1

    def floors(lo: int, hi: int) -> int:  # the sum of b(i) over lo..hi
        if hi < lo:
            return 0
        return _floor_sum(hi - lo + 1, bkv, bq_pos, bq_pos * (lo + 1) + off - 1)

    def from_block(b: int) -> int:  # the first block i >= first whose b(i) >= b
        return max(first, -(-(b * bkv + 1 - off) // bq_pos) - 1)

    n_blocks = floors(first, last) + count
    # the full blocks' widths: (b + 1) bkv, less what the last key block lacks of bkv
    top = from_block((kv - 1) // bkv)
    short = ((kv - 1) // bkv + 1) * bkv - kv
    widths = bkv * n_blocks - short * max(0, last - top + 1)
    values = 0
    if v_len > 0:
        if kv <= v_len:  # no width passes v_len
            values = widths
        else:  # the widths up to v_len, then v_len (a block past it is wider: b >= T)
            cut = min(last + 1, from_block(v_len // bkv))
            values = bkv * (floors(first, cut - 1) + (cut - first)) + v_len * (last + 1 - cut)
    return n_blocks, bq_pos * widths, bq_pos * count, bq_pos * values


def _floor_sum(n: int, m: int, a: int, b: int) -> int:
    """The sum of ``(a x + b) // m`` for ``x`` from 0 to ``n - 1`` (``m > 0``; the
    Euclidean-like reduction of ``a`` and ``b`` modulo ``m``, in integers)."""
    total = 0
    while True:
        if a >= m or a < 0:
            q_, a = divmod(a, m)
            total += q_ * n * (n - 1) // 2
        if b >= m or b < 0:
            q_, b = divmod(b, m)
            total += q_ * n
        y = a * n + b
        if y < m:
            return total
        n, b, m, a = y // m, y % m, a, m


@functools.lru_cache(maxsize=1024)
def _widest(q: int, kv: int, causal: bool, window: int, bq_pos: int) -> int:
    """The most keys a block of ``bq_pos`` query positions sees (key blocks of one
    key: :func:`key_spans`' widest, 0 where no block sees a key). Without a window
    spans only widen down the queries: the last block's, taken alone."""
    if window > 0 or q <= 0 or kv <= 0 or bq_pos <= 0:
        return max(key_spans(q, kv, causal, window, bq_pos, 1)[2], default=0)
    got = _span(q, kv, causal, window, 1, (-(-q // bq_pos) - 1) * bq_pos, q - 1)
    return got[2] if got is not None else 0


def block_options(rows: int, kv: int, d: int, dv: int, s: int, mach: Machine,
                  block_q: int = 0, block_kv: int = 0) -> list[tuple[int, int]]:
    """(block_q, block_kv) pairs to try: for each query block, the largest key block
    whose working set (Q, K, Kᵀ, V, S and O blocks) fits half a core's L2. Blocks
    the workload sets are taken as they are."""
    budget = mach.l2_per_core / 2
    out = []
    for bq in sorted({max(1, min(x, rows)) for x in ([block_q] if block_q else BLOCK_Q)}):
        # the largest key block that fits, whatever the key count (a block longer than
        # the keys is cut to them): one more key never changes the options
        fits = [x for x in ([block_kv] if block_kv else BLOCK_KV)
                if block_kv or s * (bq * d + x * (2 * d + dv) + bq * x + bq * dv) <= budget]
        if fits:
            out.append((bq, max(1, min(max(fits), kv))))
    return out or [(max(1, min(block_q or 1, rows)), max(1, min(block_kv or 64, kv)))]


def attention_plan(op, graph, mach: Machine, tiling, strategy: str) -> Plan:
    sh = AttentionShape.of(op, graph)
    if not mach.computes(sh.dtype):  # (the op's line only for the error)
        mach.check_dtype(sh.dtype, op.line(graph))
    mode = getattr(tiling, "attention", "auto") if tiling is not None else "auto"
    mode = "standard" if mode == "standard" and not sh.sparse_keys else "flash"
    bq_set = getattr(tiling, "block_q", 0) if tiling is not None else 0
    bkv_set = getattr(tiling, "block_kv", 0) if tiling is not None else 0
    strategies = STRATEGIES if strategy == "auto" else (strategy,)
    if sh.sparse_keys:  # a block of positions of one head over its gathered keys
        rows, keys = min(sh.sparse_block, sh.q_len), sh.sparse_keys
    else:
        rows, keys = sh.q_len * sh.group, sh.kv_len
    if mode == "standard":  # row blocks over the whole key range; S is materialized
        blocks = sorted({(max(1, min(x, rows)), keys)
                         for x in ([bq_set] if bq_set else BLOCK_Q)})
    else:
        blocks = block_options(rows, keys, sh.head_dim, sh.v_head_dim, nbytes(1, sh.dtype),
                               mach, bq_set, bkv_set)
    # the candidates, in the order the plain search meets them: each block pair, then
    # fewer key splits (and threads), which may finish first (fork, merge and join cost)
    # (the exact-size strategies run the same kernels: their candidates are the same
    # but for the name, made and estimated once)
    cands = []  # (strategy, block_q, block_kv, ways, head, what the plan depends on)
    heads: dict = {}

    def add(strat: str, bq: int, bkv: int, ways: int) -> tuple:
        key = (strat == "openblas", bq, bkv, ways)
        head = heads.get(key)
        if head is None:
            head = heads[key] = _head(mach, sh, mode, bq, bkv, strat, ways)
        cands.append((strat, bq, bkv, ways, head, key))
        return head

    for strat in strategies:
        for bq, bkv in blocks:
            most = add(strat, bq, bkv, 0)
            for ways in thread_counts(most[10])[:-1]:
                add(strat, bq, bkv, ways)
    best = _least(cands, mach, sh, mode)
    won = min(best.values(), key=lambda b: (b[1], b[2]))
    if won[0] is None:  # an estimate known from an equal candidate: made now
        strat, bq, bkv, ways, head, _ = cands[won[2]]
        won[0] = _plan(mach, sh, mode, bq, bkv, strat, ways, cut=False, head=head)
    plan = materialize(won[0])
    if strategy == "auto":
        # (the candidates passed over are slower than their strategy's least)
        plan.detail["auto_estimates_s"] = {st: best[st][1] for st in strategies}
    return plan


def _least(cands: list, mach: Machine, sh: AttentionShape, mode: str) -> dict:
    """Each strategy's least-estimated candidate (the first of equals) as
    ``{strategy: [plan, estimate, place]}``: what :func:`.ecm.fastest` keeps of the
    plans of every candidate, without making or estimating those that cannot win.
    A candidate equal to one estimated before but for its strategy's name (the same
    ``cands`` key: IAAT's and AutoTSMM's kernels are the same) takes that estimate,
    and its plan is None here (the caller makes the one it keeps).

    The candidates are met in the order of their :func:`lower_bound`; one whose bound
    exceeds its strategy's least estimate so far is slower than that one, so it is
    never made. As in :func:`.ecm.fastest`, a plan on a thread count whose stream
    rates are not solved yet is estimated last, and only when its estimate at the
    fastest rates (:meth:`~.spec.Machine.share_floor`) does not exceed its
    strategy's least. Every skip is of a plan slower than one kept, and ties go to
    the earlier place, so the plans kept are the plain search's."""
    known = mach._rates  # thread counts whose rates are solved
    floor_share = mach.floor_share
    bounds = [lower_bound(mach, c[4]) for c in cands]
    best: dict = {}
    ests: dict = {}  # estimates by what the plan depends on (equal candidates: once)
    later: list[int] = []

    def visit(i: int, deferred: bool) -> None:
        strat, bq, bkv, ways, head, key = cands[i]
        b = best.get(strat)
        if b is not None and bounds[i] > b[1]:
            return
        p = None
        est = ests.get(key)
        if est is None:
            if not deferred and floor_share is not None and head[19] not in known:
                later.append(i)  # its thread count's rates are not solved yet: last
                return
            p = _plan(mach, sh, mode, bq, bkv, strat, ways, cut=False, head=head)
            if deferred and b is not None and estimate(
                    p, mach, mach.share_floor(p.threads)) > b[1]:
                return  # slower than its strategy's best even at the fastest rates
            est = ests[key] = estimate(p, mach)
        if b is None or est < b[1] or (est == b[1] and i < b[2]):
            best[strat] = [p, est, i]

    for i in sorted(range(len(cands)), key=bounds.__getitem__):
        visit(i, False)
    for i in later:
        visit(i, True)
    return best


def executed_flops(plan: Plan) -> int:
    """FLOPs the plan's kernels execute (its ``detail``): every score of a computed
    tile, and for ``P V`` the values each row weights."""
    return int(round(plan.detail["executed_flops"]))


def _block_kernels(mach: Machine, sh: AttentionShape, bq_u: int, bkv: int, strategy: str,
                   pv: bool) -> tuple[Step, str, float]:
    """The in-core work of one (query block, key block) tile: ``S = Q Kᵀ``, its online
    softmax and, when ``pv``, ``O += P V``; with the operands each strategy packs.
    Returns the step, the kernel name and the elements of Q packed once per block."""
    spec = mach.spec
    lanes = mach.lanes(sh.dtype)
    if strategy == "openblas":
        mr, nr = mach.kernel_shape(sh.dtype)
        checked_kernel(mr, nr, lanes, spec, f"spec.{KERNEL_FIELD.get(sh.dtype, 'sgemm_kernel')}")
        qk_rows, qk_cols = power_parts(bq_u, mr), power_parts(bkv, nr)
        pv_rows, pv_cols = power_parts(bq_u, mr), power_parts(sh.v_head_dim, nr)
        kname = f"{mr}x{nr}"
        # K, P, V blocks
        packs = bkv * sh.head_dim + (bq_u * bkv + bkv * sh.v_head_dim if pv else 0)
        once = bq_u * sh.head_dim
    else:
        ker, qk_rows, qk_cols, _, _ = tile_kernels(bq_u, bkv, sh.head_dim, lanes, mach)
        kname = ker.name()
        if pv:
            pv_ker, pv_rows, pv_cols, _, _ = tile_kernels(bq_u, sh.v_head_dim, bkv, lanes, mach)
            kname = f"{ker.name()}/{pv_ker.name()}"
        packs = bkv * sh.head_dim  # Kᵀ of the block
        once = 0
    blk = Step("block")
    run_kernels(blk, qk_rows, qk_cols, sh.head_dim, lanes, mach)
    if pv:
        run_kernels(blk, pv_rows, pv_cols, bkv, lanes, mach)
    blk.add(pack_step("pack", packs, lanes, mach))
    # online softmax of the block and the rescale of the output rows
    sm_vecs = math.ceil(bq_u * bkv / lanes)
    sm_ops = (sm_vecs * (spec.vexp_instructions + SOFTMAX_OPS)
              + math.ceil(bq_u * sh.v_head_dim / lanes))
    blk.arith_cycles += max(sm_ops / spec.fma_pipes, (sm_ops + 2 * sm_vecs) / spec.issue_width)
    blk.port_cycles += sm_vecs * (1 / spec.load_ports + 1 / spec.store_ports)
    blk.vop += sm_ops + 2 * sm_vecs
    return blk, kname, once


def _select_and_weigh(mach: Machine, sh: AttentionShape, rows: float, keys: float,
                      values: float) -> Step:
    """``rows`` query rows each selecting ``values`` of ``keys`` scores (quick-select)
    and weighting those value rows: a gathered matrix-vector product per row."""
    spec = mach.spec
    lanes = mach.lanes(sh.dtype)
    st = Step("select and weigh values")
    vecs = rows * math.ceil(keys / lanes)
    ops = vecs * SELECT_PASSES * SELECT_OPS
    loads = vecs * SELECT_PASSES
    fmas = rows * values * math.ceil(sh.v_head_dim / lanes)  # one V vector loaded per FMA
    st.arith_cycles = max((ops + fmas) / spec.fma_pipes,
                          (ops + loads + 2 * fmas) / spec.issue_width)
    st.port_cycles = (loads + fmas) / spec.load_ports
    st.vfma = fmas
    st.vop = ops + loads + fmas
    return st


def _head(mach: Machine, sh: AttentionShape, mode: str, bq: int, bkv: int, strategy: str,
          ways: int = 0, memo: dict | None = None) -> tuple:
    """The first part of :func:`_plan`: the blocks, the split of the keys, the threads
    and a tile's kernels; what :func:`lower_bound` needs, without the plan's data,
    steps or tiles. Returned as one tuple, handed on to :func:`_plan` (``head``)."""
    bkv_asked = bkv
    s = nbytes(1, sh.dtype)  # bytes per element
    lanes = mach.lanes(sh.dtype)
    g = sh.group
    select = sh.selects_values  # rows weigh fewer values than keys
    if sh.sparse_keys:
        # problems: (batch, query head, block of positions), each over its own keys
        rows = min(sh.sparse_block, sh.q_len)
        problems = sh.batch * sh.heads * math.ceil(sh.q_len / rows)
        bq_u = rows if rows < bq else bq  # (max(1, min(bq, rows)): the same value)
        bq_u = bq_u if bq_u > 1 else 1
        bq_pos, sub = bq_u, 1
        nq = math.ceil(rows / bq_u)
        span_keys = sh.sparse_keys
    else:
        # problems: (batch, K/V head); its query rows, the group's stacked by position
        rows = sh.q_len * g
        problems = sh.batch * sh.kv_heads
        bq_u = rows if rows < bq else bq  # (max(1, min(bq, rows)): the same value)
        bq_u = bq_u if bq_u > 1 else 1
        bq_pos = bq_u // g
        bq_pos = bq_pos if bq_pos > 1 else 1  # (max(1, bq_u // g))
        sub = math.ceil(g / bq_u) if bq_u < g else 1  # blocks sharing one position
        nq = math.ceil(sh.q_len / bq_pos) * sub
        span_keys = _widest(sh.q_len, sh.kv_len, sh.causal, sh.window, bq_pos)
    units = problems * nq
    kv_split = 1
    if units < mach.cores and mode == "flash" and not select and span_keys > 1:
        kv_split = min(mach.cores // units, span_keys)
        kv_split = max(1, min(kv_split, ways) if ways else kv_split)
        bkv = min(bkv, math.ceil(span_keys / kv_split))
    if sh.sparse_keys:
        n_blocks, seen_qk, n_rows, seen_pv, _ = _span_sums(rows, sh.sparse_keys, False, 0,
                                                           bq_u, bkv, sh.v_len)
        pairs = n_blocks * problems  # tiles of the op
        # (seen_qk: keys scored per problem; seen_pv: values weighed)
        # the last block of positions of a head may hold fewer than `rows` queries
        frac = sh.q_len / (math.ceil(sh.q_len / rows) * rows)
        flops = 2.0 * problems * frac * (seen_qk * sh.head_dim + seen_pv * sh.v_head_dim)
    else:
        n_blocks, seen_qk, n_rows, seen_pv, _ = _span_sums(
            sh.q_len, sh.kv_len, sh.causal, sh.window, bq_pos, bkv, sh.v_len if select else 0)
        pairs = n_blocks * sub * problems
        # (seen_qk: keys scored per query head)
        seen_pv = seen_pv if select else seen_qk
        flops = 2.0 * sh.batch * sh.heads * (seen_qk * sh.head_dim + seen_pv * sh.v_head_dim)
    # (max() and min() of two as tests here: the values they keep, without the calls;
    # this head is made for each of an attention's candidate blocks)
    row_count = n_rows if n_rows > 1.0 else 1.0  # max(1.0, n_rows)
    keys_row = seen_qk / row_count  # keys a query row scores
    values_row = seen_pv / row_count
    # static chunks of the units: as many threads as the chunks need
    chunks = units * kv_split
    per_thread = math.ceil(chunks / (chunks if chunks < mach.cores else mach.cores))
    threads = math.ceil(units * kv_split / per_thread)
    share = per_thread / (units * kv_split)  # one thread's fraction of the op's work
    # the op-wide bytes (Q, K and V rows, O) are spread over the threads that run
    dshare = 1.0 / threads

    # a tile's kernels depend on its sizes, the head widths and the type, never on the
    # sequence: kept per machine for every op and sweep point (read, never changed)
    if memo is None:
        memo = mach.__dict__.setdefault("_block_kernels", {})
        if len(memo) > 4096:  # a long sweep's tiles: bounded
            memo.clear()
    # (the exact-size strategies, IAAT and AutoTSMM, run the same kernels)
    key = (bq_u, bkv, strategy == "openblas", not select, sh.dtype, sh.head_dim,
           sh.v_head_dim)
    got = memo.get(key)
    if got is None:
        got = memo[key] = _block_kernels(mach, sh, bq_u, bkv, strategy, pv=not select)
    blk, kname, once = got  # (blk is read, never changed)
    return (bkv, bkv_asked, s, lanes, select, rows, problems, bq_u, bq_pos, units, kv_split,
            n_rows, seen_qk, seen_pv, pairs, flops, keys_row, values_row, per_thread, threads,
            share, dshare, blk, kname, once)


def _plan(mach: Machine, sh: AttentionShape, mode: str, bq: int, bkv: int, strategy: str,
          ways: int = 0, memo: dict | None = None, cut: bool = True,
          head: tuple | None = None) -> Plan:
    """One (strategy, block_q, block_kv) choice, its keys split ``ways`` ways (0: as
    many as fill the cores): see the module docstring. ``memo``: where the tiles'
    kernels (:func:`_block_kernels`) are kept, by what they depend on (default: on
    ``mach``, for every op and sweep point that runs on it). ``cut=False``: a
    candidate, its steps not yet cut into tiles (:func:`.ecm.tiles`). ``head``: its
    :func:`_head`, where the caller has it already."""
    if head is None:
        head = _head(mach, sh, mode, bq, bkv, strategy, ways, memo)
    (bkv, bkv_asked, s, lanes, select, rows, problems, bq_u, bq_pos, units, kv_split,
     n_rows, seen_qk, seen_pv, pairs, flops, keys_row, values_row, per_thread, threads,
     share, dshare, blk, kname, once) = head
    spec = mach.spec
    st = Step("blocks")
    st.add(blk.scaled(pairs * share))
    if once:
        st.add(pack_step("pack Q", once, lanes, mach).scaled(per_thread))
    if select:  # each row picks its values and weighs them
        st.add(_select_and_weigh(mach, sh, units * bq_u * share * kv_split, keys_row,
                                 values_row))

    # ---- data. Q and a mask from DRAM once (split-K: the other splits find Q in L3)
    st.read("dram", (sh.q_bytes + sh.extra_bytes) * dshare)
    if kv_split > 1:
        st.read("l3", sh.q_bytes * dshare * (kv_split - 1))
    # K and V: the rows some query uses come from DRAM once; what the tiles touch
    # beyond them comes again from where it stays (reuse distance: the live heads' keys)
    heads = sh.batch * sh.kv_heads
    # K and V at their stored width (a quantized or bitmap-compressed cache is read
    # packed: Mustafar's format, hwsim.ir.dtypes), the query's when they share its type
    s_k, s_v = sh.stored_width("k", s), sh.stored_width("v", s)
    k_need = heads * sh.key_rows * sh.head_dim * s_k
    v_need = heads * sh.value_rows * sh.v_head_dim * s_v
    if sh.sparse_keys:
        # each problem gathers its keys' rows (and its rows' values) into tiles
        k_touch = problems * sh.sparse_keys * sh.head_dim * s
        v_touch = problems * (seen_pv if select else sh.sparse_keys) * sh.v_head_dim * s
        st.add(pack_step("gather K, V rows", (k_touch + v_touch) / s, lanes, mach,
                         transpose=False).scaled(share))
        # selected rows lie anywhere in their head
        band = sh.kv_len * (sh.head_dim + sh.v_head_dim) * s
        pages = min(sh.sparse_keys, sh.kv_len * sh.head_dim * s / spec.page_bytes) + min(
            sh.sparse_keys, sh.kv_len * sh.v_head_dim * s / spec.page_bytes)
        if pages > spec.tlb_entries:  # a block's rows span more pages than the TLB holds
            st.tlb_walks += (k_touch / (sh.head_dim * s) + v_touch / (sh.v_head_dim * s)) * share
    else:
        k_touch = pairs * bkv * sh.head_dim * s_k
        v_touch = (pairs * bkv if not select else sh.batch * sh.heads * seen_pv) * sh.v_head_dim \
            * s_v
        band = sh.key_rows * sh.head_dim * s_k + sh.value_rows * sh.v_head_dim * s_v
        if sh.window:  # one query block's band: its window and its own span
            band = min(band, (sh.window + bq_pos + bkv) * (sh.head_dim + sh.v_head_dim) * s)
    again = max(0.0, k_touch - k_need) + max(0.0, v_touch - v_need)
    st.read("dram", (k_need + v_need) * dshare)
    # between two reads of a band's line (the next query block) the thread passes that
    # query block, its score tile and its output block through L2 beside the band
    near = band + bq_u * (sh.head_dim + sh.v_head_dim + bkv) * s
    reread(st, band, again * share, mach, max(1, min(threads, heads)), None, near)
    # O: written back to DRAM (split-K: partial blocks to the last level, merged later)
    if kv_split == 1:
        st.write("dram", sh.o_bytes * dshare)
    else:
        st.write("l3", sh.o_bytes * dshare * kv_split)
    if mode == "standard":  # S written, read by the softmax, P written, read by P V
        s_all = sh.batch * sh.heads * seen_qk * s
        home = scratch(s_all, mach, threads)
        st.write(home, 2 * s_all * share)
        st.read(home, 2 * s_all * share)
    elif select:  # the row block's scores wait in cache (or spill) for the selection
        s_blk = bq_u * keys_row * s
        home = "l2" if s_blk <= mach.l2_per_core / 2 else scratch(s_blk * threads, mach, threads)
        st.write(home, units * s_blk * share * kv_split)
        st.read(home, units * s_blk * share * kv_split)
    # the L1 <-> L2 traffic of the working blocks (scores and the output rows)
    st.read("l2", pairs * share * (bq_u * sh.v_head_dim * s))
    first, parts = tiles(st, 4 if st.dram_read or st.dram_write else 1)
    steps, runs = [first], [parts]
    if kv_split > 1:  # each thread merges its share of the rows from every split
        merge = Step("merge partial outputs")
        out_elems = sh.o_bytes / s * dshare
        mv = math.ceil(out_elems * kv_split / lanes) * 3  # max, rescale, add
        merge.arith_cycles = mv / spec.fma_pipes
        merge.port_cycles = mv / spec.load_ports
        merge.vop = mv
        merge.read("l3", out_elems * kv_split * s)
        merge.write("dram", out_elems * s)
        first.barrier = True  # (the last tile's)
        steps.append(merge)
        runs.append(1)
    plan = Plan(strategy, threads, steps, sh.dtype, mach.call_s(), kname,
                {"mode": mode, "block_q": bq_u, "block_kv": bkv, "block_kv_asked": bkv_asked,
                 "kv_split": kv_split,
                 "units": units, "tiles": pairs, "executed_flops": flops,
                 **({"v_len": sh.v_len} if select else {}),
                 **({"sparse_keys": sh.sparse_keys} if sh.sparse_keys else {})}, runs)
    return materialize(plan) if cut else plan


def lower_bound(mach: Machine, head: tuple) -> float:
    """No less than :func:`.ecm.estimate` of the plan :func:`_plan` makes of ``head``
    (:func:`_head`): the in-core time of its tiles' kernels alone. The plan's first
    step holds those kernels' cycles plus other work (every amount is non-negative),
    its tiles run one after another on a thread, each for at least its in-core time,
    after a gate at or after 0; the estimate adds the same non-negative terms, so it
    is at least this product less its rounding (a few dozen roundings, each a part in
    2^53; the margin of a part in 10^9 covers them many times over)."""
    return head[22].arith_cycles * (head[14] * head[20]) * mach.cycle_s * (1.0 - 1e-9)
