"""GEMM on the cube cores: a tiling search, then tiles in waves over the cores.

``C[m, n] = A[m, k] · B[k, n]`` (per batch) is cut into output tiles of
``om × on``, one tile per cube core at a time, in waves (tile ``t`` on core
``t mod cores``). For each tile the core streams the A row panel and the B
column panel through L1 in stages of ``tk`` (MTE2, double buffered), feeds the
cube from L1 through L0A/L0B in base blocks of ``bk`` (MTE1, double buffered),
accumulates in L0C and drains the tile through FixPipe.

The search picks ``(om, on, bk, tk)`` within the buffers::

    L0A: om·bk·bytes·2   L0B: bk·on·bytes·2   L0C: om·on·4   L1: (om + on)·tk·bytes·2

and minimises the estimated time of the busiest pipe over the waves, on the
busiest core: it loads ``waves`` tiles' panels at its own stream's rate, whatever
share of the tiles the other cores get (a partial last wave leaves them idle).
Cube time
is ``⌈om/16⌉·⌈on/16⌉·⌈k/kf⌉`` fractal cycles (kf = 16 for fp16, 32 for int8)
plus a start-up per MMAD instruction, so a 17-wide dimension costs what 32 does.

Re-reads of a panel by later tiles hit L2 (the B panel is re-read by every row
of tiles, the A panel by every column) when it is still resident
(:class:`~hwsim.accelerators.ascend.chip.L2`); first reads come from HBM.

Events are tiles, never cycles: each core's tiles go through
:func:`~hwsim.accelerators.ascend.pipeline.emit_pipeline` as a few segments of MTE2,
cube and FixPipe tasks (MTE1 is folded into the cube task: it overlaps the cube
through L0 double buffering, and when it is the slower the task is
``onchip``-bound). At the analytical fidelity an op's GEMM makes no task: each core
group's items go to :func:`~hwsim.accelerators.ascend.pipeline.closed_pipeline` as
:func:`_merge_tiles`' records. The core groups of a GEMM differ mostly in their L2
misses: what their items' shapes decide (:class:`_Chunks`, and what the pipelines make
of it, :func:`_pipeline_plan`) is made once per distinct sequence of tile shapes, and
at the event fidelity a load or store task made for one group is remade for the next
with that group's unit, deps and copies.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import accumulate, compress, groupby
from math import gcd, inf
from operator import sub

from hwsim.ir.dtypes import dtype_bits

from .chip import L2, Builder, Chip, cdiv, reuse_hit_fraction
from .pipeline import (
    SEGMENTS,
    Item,
    append,
    closed_pipeline,
    closed_static,
    emit_gemm_pipeline,
    emit_pipeline,
    gemm_plan,
    same_work,
    summed,
)

ACC_BYTES = 4  # L0C accumulates fp16/bf16 in fp32 and int8 in int32


@dataclass(frozen=True)
class GemmTiling:
    om: int
    on: int
    bk: int
    tk: int
    est_s: float


def dtype_bytes(dtype: str) -> float:
    return dtype_bits(dtype) / 8


def k_fractal(chip: Chip, dtype: str) -> int:
    """Reduction depth of one fractal: 32 bytes of k (16 fp16, 32 int8, 8 fp32)."""
    return max(1, int(32 // dtype_bytes(chip.cube_dtype(dtype))))


def cube_cycles(chip: Chip, rows: int, cols: int, k: int, dtype: str) -> float:
    """Cycles of the MMADs of a rows × cols × k block (dims rounded up to fractals)."""
    e = chip.spec.dim_align
    kf = k_fractal(chip, dtype)
    per_fractal = e * e * kf / chip.macs_per_cycle(dtype)
    return cdiv(rows, e) * cdiv(cols, e) * cdiv(k, kf) * per_fractal


def padded_macs(chip: Chip, rows: int, cols: int, k: int, dtype: str) -> int:
    e = chip.spec.dim_align
    kf = k_fractal(chip, dtype)
    return cdiv(rows, e) * e * cdiv(cols, e) * e * cdiv(k, kf) * kf


def _lcm(a: int, b: int) -> int:
    return a * b // gcd(a, b)


def _choices(limit: int, align: int) -> list[int]:
    out = [c for c in (16, 32, 64, 128, 256, 512, 1024) if c >= align and c < limit + align]
    return out or [align]


def search(chip: Chip, batch: int, m: int, n: int, k: int, dtype: str) -> GemmTiling:
    """The tiling with the least estimated time (see the module docstring); kept per
    chip and shape (the lowering and the detail line ask for the same one).

    :func:`_search` reads m only as its row tiles ``cdiv(m, om)`` and the choices of
    ``om`` (by m padded to the fractal, ``mp``); with a power-of-two fractal every
    ``om`` is a multiple of it, so ``cdiv(m, om) == cdiv(mp, om)`` and the shape is
    kept by ``mp``: a sweep's points 8 tokens apart share their searches."""
    memo = chip.__dict__.setdefault("_gemm_tilings", {})
    e = chip.spec.dim_align
    key = (batch, cdiv(m, e) * e if e & (e - 1) == 0 else -m, n, k, dtype)
    got = memo.get(key)
    if got is None:
        if len(memo) > 4096:  # a long sweep's shapes: bounded
            memo.clear()
        got = memo[key] = _search(chip, batch, m, n, k, dtype)
    return got


def _search(chip: Chip, batch: int, m: int, n: int, k: int, dtype: str,
            collect: list | None = None) -> GemmTiling:
    """The least estimated tiling; ``collect``, when given, receives every candidate as
    ``(rank key, tiling)`` (the tests run the best few in the engine)."""
    s = chip.spec
    b = dtype_bytes(dtype)
    e = s.dim_align
    kf = k_fractal(chip, dtype)
    mp, np_, kp = cdiv(m, e) * e, cdiv(n, e) * e, cdiv(k, kf) * kf
    bks = [c for c in (32, 64, 128, 256, 512) if c % kf == 0]
    align = max(1, int(s.transfer_align_bytes // b))
    # what depends on the k block alone, once per search: the block (at most kp), its
    # aligned stage step, the MMAD issue cycles
    blocks = []
    for bk in bks:
        bk = min(bk, kp)
        blocks.append((bk, _lcm(bk, align), s.cube_issue_cycles * cdiv(k, bk), cdiv(kp, bk) * bk))
    l2_read_bw = chip.l2_read_bw
    # what does not depend on m (nor the batch): per row-tile height, its candidates,
    # kept on the chip per (n, k, dtype) (a sweep's or a model's layers differ in m only)
    parts = chip.__dict__.setdefault("_gemm_search_parts", {})
    if len(parts) > 4096:
        parts.clear()
    best = None
    worse = inf  # an estimate above which a candidate cannot be the best
    # the tiles (om, on) in order, each with its place in it: a candidate's rank ends
    # with its place, so that the least rank is the first least key in this order
    # whatever order the tiles are tried in; the tile the last search of this (n, k,
    # dtype) picked is tried first (its estimate bounds the others' early)
    tiles_in_order = []
    for om in _choices(mp, e):
        key_om = (n, k, dtype, om)
        by_on = parts.get(key_om)
        if by_on is None:
            by_on = parts[key_om] = _search_parts(chip, om, n, k, dtype, np_, kp, blocks)
        tm = cdiv(m, om)
        for entry in by_on:
            tiles_in_order.append((len(tiles_in_order), om, tm, entry))
    hints = chip.__dict__.setdefault("_gemm_search_hints", {})
    if len(hints) > 4096:
        hints.clear()
    hint = hints.get((n, k, dtype)) if collect is None else None
    if hint is not None:
        at = next((i for i, x in enumerate(tiles_in_order) if (x[1], x[3][0]) == hint), 0)
        tiles_in_order.insert(0, tiles_in_order.pop(at))
    n_cube, hbm_stream_bw, hbm_bw, fixpipe_bw = (chip.n_cube, chip.hbm_stream_bw, chip.hbm_bw,
                                                 chip.fixpipe_bw)
    for place, om, tm, (on, b_t, out_t, cands, least) in tiles_in_order:
        # (cdiv and min inline: min(a, b) is b only where b < a)
        tn = -(-n // on)
        tiles = batch * tm * tn
        waves = -(-tiles // n_cube)
        cores = n_cube if n_cube < tiles else tiles
        # first reads share the HBM (at most one stream per core), re-reads hit L2
        rate = hbm_bw / cores
        if not rate < hbm_stream_bw:
            rate = hbm_stream_bw
        fix_s = out_t / (rate if rate < fixpipe_bw else fixpipe_bw)
        # (the candidates' loop without a builtin call: min and max as conditionals,
        # the same picks on ties; the products that do not depend on the k block
        # made once, the same floats)
        spread, fix_all = waves * cores / tiles, waves * fix_s
        if worse < inf and collect is None:
            # no candidate of this tile can rank: every estimate is at least the
            # busiest pipe's time at the least compute and the least A bytes of the
            # candidates (each step below rises with them, in floats too: products,
            # sums and quotients of positive numbers round monotonically) plus the
            # drain, since the fill is not negative
            a_t, compute = least
            loaded = tiles * (a_t + b_t)
            first = batch * (tm * a_t + tn * b_t)
            first = first if first < loaded else loaded
            low = (first / rate + (loaded - first) / l2_read_bw) / cores * spread
            most = waves * compute
            low = most if most > low else low
            low = fix_all if fix_all > low else low
            if low + fix_s > worse:
                continue
        for bk, tk, stages, a_t, compute in cands:
            loaded = tiles * (a_t + b_t)
            # first touches: each row panel of A and column panel of B once per batch
            # entry (whole bursts), at most every byte of the operands once
            first = batch * (tm * a_t + tn * b_t)
            first = first if first < loaded else loaded
            # the busiest core's loads: ``waves`` tiles, not the average share
            # (``tiles / cores``); a partial last wave leaves the other cores idle,
            # and a core's stream is capped (hbm_stream_bw) however idle the HBM is
            mte2_s = (first / rate + (loaded - first) / l2_read_bw) / cores * spread
            # the fill (a tile's first stage) and the drain (the last tile's store);
            # the slowest of the cube, the loads and the FixPipe in between
            fill = (a_t + b_t) / stages * (first / loaded) / rate
            most = waves * compute
            most = mte2_s if mte2_s > most else most
            most = fix_all if fix_all > most else most
            est = fill + most + fix_s
            if est > worse and collect is None:
                continue  # its rounded estimate is above the best's: not ranked
            key = (round(est, 12), -om * on, -tk)
            if collect is not None:
                collect.append((key, GemmTiling(om, on, bk, tk, est)))
            rank = (key, place)  # (a tile's candidates are tried in order)
            if best is None or rank < best[0]:
                best = (rank, GemmTiling(om, on, bk, tk, est))
                # an estimate above this rounds above the best's (the decimal
                # rounding to 1e-12 is monotonic, and two values more than one of
                # its steps apart, and apart by more than the doubles' spacing,
                # round to different doubles): the 0.5 us of round(est, 12) skipped
                worse = est + 2e-12 + abs(est) * 1e-9
    if best is not None:
        hints[(n, k, dtype)] = (best[1].om, best[1].on)
    if best is None:
        from hwsim.errors import InputError

        raise InputError(f"no GEMM tile fits the buffers (L0A {s.l0a_bytes:.0f} B, L0B "
                         f"{s.l0b_bytes:.0f} B, L0C {s.l0c_bytes:.0f} B, L1 {s.l1_bytes:.0f} B) "
                         f"for {dtype}", field="spec.l1_bytes")
    return best[1]


def _search_parts(chip: Chip, om: int, n: int, k: int, dtype: str, np_: int, kp: int,
                  blocks: list[tuple]) -> list[tuple]:
    """:func:`_search`'s candidates for row tiles of ``om``, what does not depend on m:
    per column tile ``on`` with a k block that fits (in order) its B and output bursts,
    per such k block (in order) ``(bk, tk, stages, A bytes per tile, compute seconds per
    tile)``, and the least A bytes and compute seconds of those."""
    s = chip.spec
    b = dtype_bytes(dtype)
    e = s.dim_align
    l0a, l0b, l0c, l1 = s.l0a_bytes, s.l0b_bytes, s.l0c_bytes, s.l1_bytes
    mte1_a, mte1_b = s.mte1_l0a_bytes_per_cycle, s.mte1_l0b_bytes_per_cycle
    cycle_s = chip.cycle_s
    a_whole = chip.burst(om, k * b, contiguous=True)  # A's row panel in one stage
    out = []
    for on in _choices(np_, e):
        if om * on * ACC_BYTES > l0c:
            continue
        # what does not depend on the k block (computed once per output tile)
        tk_max = int(l1 // ((om + on) * b * 2))
        cube_mmad = cube_cycles(chip, om, on, k, dtype)
        mte1 = (om * kp * b / mte1_a + kp * on * b / mte1_b)
        b_t = chip.burst(k, on * b, contiguous=on >= n or on % e == 0)
        out_t = chip.burst(om, on * b, contiguous=on >= n)
        cands = []
        for bk, step, issue, k_blocks in blocks:
            if om * bk * b * 2 > l0a or bk * on * b * 2 > l0b:
                continue
            if tk_max < step:
                step = bk  # the stage cannot hold an aligned burst per row
            tk = min((tk_max // step) * step, k_blocks)
            if tk < bk:
                continue
            cube = cube_mmad + issue
            # the bytes of one tile as emit_gemm moves them (bursts, NZ weight layout)
            stages = cdiv(kp, tk)
            a_t = a_whole if tk >= kp else stages * chip.burst(om, tk * b)
            compute = (cube if cube > mte1 else mte1) * cycle_s  # chip.cycles(max(...))
            cands.append((bk, tk, stages, a_t, compute))
        if cands:
            # the least A bytes and compute of the candidates (a bound of their estimates)
            out.append((on, b_t, out_t, cands, (min(c[3] for c in cands),
                                                min(c[4] for c in cands))))
    return out


def tile_order(chip: Chip, batch: int, m: int, n: int, k: int, dtype: str, t: GemmTiling):
    """Output tiles in issue order: row-major within groups of columns whose B panels
    fit in half the L2, so the B panel re-read by every row of tiles stays resident
    (the L2 blocking a good library does for large shapes)."""
    tm, tn = cdiv(m, t.om), cdiv(n, t.on)
    panel = k * t.on * dtype_bytes(dtype)
    group = max(1, min(tn, int(chip.spec.l2_bytes / 2 // max(panel, 1))))
    for bi in range(batch):
        for j0 in range(0, tn, group):
            for i in range(tm):
                for j in range(j0, min(tn, j0 + group)):
                    yield bi, i, j


def emit_gemm(bld: Builder, l2: L2, *, batch: int, m: int, n: int, k: int, dtype: str,
              out_dtype: str | None = None, a: str = "A", b: str = "B", out: str = "C",
              a_group: int = 1, b_group: int = 1, deps=(), label: str = "gemm",
              tiling: GemmTiling | None = None, keep_out_in_l2: bool = False,
              bias: str | None = None, bias_dtype: str | None = None, bias_full: bool = False,
              a_unique: float | None = None, b_unique: float | None = None,
              closed_form: bool = False) -> list[int]:
    """Tasks of a (batched) GEMM; returns the indices of each core's last tasks.

    ``a_group``/``b_group``: how many consecutive batch entries share one A/B
    matrix (``b_group = batch`` for a weight shared by the whole batch).
    ``keep_out_in_l2``: C is an intermediate the op's next kernel reads (the
    standard attention's scores), so the part of it that fits stays in L2; an
    op's output always goes to HBM. ``bias``: a row of n added to every row of C
    (FixPipe's bias add), read once per column tile; with ``bias_full`` a whole
    matrix added to C (``baddbmm``), read tile by tile with the output. ``a_unique``/``b_unique``:
    the bytes an operand's storage holds when it is a view (a broadcast or a
    strided view of a smaller tensor): HBM serves at most those once, re-reads
    of them hit L2 as far as they fit (:func:`~.chip.reuse_hit_fraction`).
    ``closed_form``: at the analytical fidelity each core group's pipeline is summed in
    closed form (:func:`~.pipeline.closed_pipeline`), not task by task.
    """
    chip = bld.chip
    s = chip.spec
    t = tiling or search(chip, batch, m, n, k, dtype)
    by = dtype_bytes(dtype)
    ob = dtype_bytes(out_dtype or dtype)
    e = s.dim_align
    kf = k_fractal(chip, dtype)
    kp = cdiv(k, kf) * kf
    stages = cdiv(kp, t.tk)
    out_hbm = 0.0 if out in l2.kept else 1.0 - (l2.write(out, batch * m * n * ob)
                                                  if keep_out_in_l2 else 0.0)
    cores = chip.n_cube
    issue = s.cube_issue_cycles * cdiv(k, t.bk)
    full_k = t.tk >= kp
    action = f"mac_{chip.cube_dtype(dtype)}"
    bias_by = dtype_bytes(bias_dtype or out_dtype or dtype)
    shapes: dict[tuple[int, int], tuple] = {}  # this GEMM's, in the order first made
    # a tile shape's numbers are a function of these and its rows and columns: kept
    # across GEMMs (a model's layers differ in m, so in their last row of tiles only)
    kept = _SHAPES.get((chip, k, n, dtype, ob, t.bk, t.tk, bool(bias), bias_full, bias_by))
    if kept is None or len(kept) > 4096:
        if len(_SHAPES) > 256:
            _SHAPES.clear()
        kept = _SHAPES[chip, k, n, dtype, ob, t.bk, t.tk, bool(bias), bias_full, bias_by] = {}

    def shape(rows: int, cols: int) -> tuple:
        got = shapes.get((rows, cols))
        if got is not None:
            return got
        got = kept.get((rows, cols))
        if got is None:
            mma = cube_cycles(chip, rows, cols, k, dtype) + issue
            rp, cp = cdiv(rows, e) * e, cdiv(cols, e) * e
            mte1 = (rp * kp * by / s.mte1_l0a_bytes_per_cycle
                    + kp * cp * by / s.mte1_l0b_bytes_per_cycle)
            a_bytes = chip.burst(rows, k * by, contiguous=True) if full_k else \
                stages * chip.burst(rows, t.tk * by)
            # the right operand is a weight, which CANN stores in the fractal NZ layout
            # (e x e blocks, 512 B in fp16): a tile of whole fractal columns is read
            # as whole bursts, not as k strided rows each rounded up to a burst
            b_bytes = chip.burst(k, cols * by, contiguous=cols == n or cols % e == 0)
            out_bytes = chip.burst(rows, cols * ob, contiguous=cols == n)
            bias_bytes = 0 if not bias else chip.burst(
                rows if bias_full else 1, cols * bias_by, contiguous=cols == n)
            macs = padded_macs(chip, rows, cols, k, dtype)
            fractals = macs / (e * e * kf)
            # L0: operand fractals read by the cube, MTE1 writes, L0C read-modify-write
            l0 = fractals * 2 * e * kf * by + (rp * kp + kp * cp) * by \
                + rp * cp * ACC_BYTES * 2 * cdiv(k, t.bk)
            actions = {action: macs, "l0_byte": l0, "l1_byte": (rp * kp + kp * cp) * by}
            got = kept[(rows, cols)] = (chip.cycles(max(mma, mte1)),
                                        "onchip" if mte1 > mma else "compute",
                                        a_bytes, b_bytes, out_bytes, actions, bias_bytes)
        shapes[(rows, cols)] = got
        return got

    tiles_per_batch = cdiv(m, t.om) * cdiv(n, t.on)
    cap = max(stages, cdiv(batch * tiles_per_batch, cores) * stages // 16)
    per_core: list[list[Item]] = [[] for _ in range(cores)]
    merged: list[list[int]] = []  # the cores in groups, where _merge_tiles made them
    # the cores' items as _merge_tiles' records (no Item made): summed in closed form
    # (analytical), or their tasks from the plan the core groups share
    records: dict = {}
    closed = summed(bld, closed_form)
    made: dict = {}  # the load and store tasks of the groups' pipelines, by their numbers
    a_b = m * k * by
    b_b = k * n * by
    if (batch == 1 or (a_b + b_b) * 4 > l2.capacity) and a_unique is None \
            and b_unique is None and a != b and (not bias or bias in l2.carried) \
            and a not in l2.resident and b not in l2.resident and b not in l2.carried:
        # the common case (B read block by block, A too or carried whole, no view, no
        # bias read): every tile's HBM bytes a whole number, so the items' sums come out
        # the same in any order, and a row that only re-reads its panels is a few moves
        hbm_all, shape_all = _tile_misses(chip, l2, batch, m, n, k, dtype, t, shape, a=a,
                                          b=b, a_group=a_group, b_group=b_group)
        # (every shape made is a tile's: shape is called for the tiles' rows and columns)
        merged = _merge_tiles(per_core, None, 1.0, 1.0, stages, cap,
                              leaders_only=bld.grouping,
                              whole=(hbm_all, shape_all, list(shapes.values())),
                              records=records)
    elif batch == 1 or (a_b + b_b) * 4 > l2.capacity:
        # tile by tile through the L2 model
        tiles = _tile_reads(chip, l2, batch, m, n, k, dtype, t, shape, a=a, b=b, bias=bias,
                            a_group=a_group, b_group=b_group, bias_full=bias_full)
        # an operand that is a view of a smaller tensor: HBM serves its storage once
        # (the sums only for a view: without one the factor is 1)
        ra = 1.0 if a_unique is None else _alias_scale(sum(x[1] for x in tiles), a_unique, l2)
        rb = 1.0 if b_unique is None else _alias_scale(sum(x[2] for x in tiles), b_unique, l2)
        # each core's items, what pipeline.append makes of its tiles (grouped: only each
        # group's first core gets them, the groups made there)
        merged = _merge_tiles(per_core, tiles, ra, rb, stages, cap, leaders_only=bld.grouping,
                              records=records)
    else:
        # small matrices per batch entry: each entry's panels are read from HBM the first
        # time and hit L2 after (an intermediate of the op: as far as it stayed there);
        # the cores' shares repeat, so sum them once per residue
        miss_a, miss_b = 1.0 - l2.hit_fraction(a), 1.0 - l2.hit_fraction(b)
        order = list(tile_order(chip, 1, m, n, k, dtype, t))
        rows_a = {i: shape(min(t.om, m - i * t.om), t.on)[2] for _, i, _ in order}
        cols_b = {j: shape(t.om, min(t.on, n - j * t.on))[3] for _, _, j in order}
        ra = _alias_scale(cdiv(batch, a_group) * sum(rows_a.values()) * miss_a, a_unique, l2)
        rb = _alias_scale(cdiv(batch, b_group) * sum(cols_b.values()) * miss_b, b_unique, l2)
        variants: dict[tuple[bool, bool, bool], list[Item]] = {}
        for bi in range(batch):
            key = (bi % a_group == 0, bi % b_group == 0, bi == 0 and bool(bias))
            sums = variants.get(key)
            if sums is None:
                a_first, b_first, x_first = key
                sums = variants[key] = [Item(0, streamed=True) for _ in range(cores)]
                seen_a, seen_b = set(), set()
                for loc, (_, i, j) in enumerate(order):
                    cube_s, bound, ab, bb, ob_, actions, bias_b = shape(
                        min(t.om, m - i * t.om), min(t.on, n - j * t.on))
                    hbm = (ab * miss_a * ra if a_first and i not in seen_a else 0.0) \
                        + (bb * miss_b * rb if b_first and j not in seen_b else 0.0) \
                        + (bias_b * (bias not in l2.carried)
                           if bias_full or (x_first and j not in seen_b) else 0.0)
                    seen_a.add(i)
                    seen_b.add(j)
                    sums[loc % cores].absorb(Item(stages, hbm, ab + bb + bias_b - hbm, 0.0,
                                                  cube_s, ob_, actions, bound))
            off = (bi * tiles_per_batch) % cores
            for c in range(cores):
                item = sums[(c - off) % cores]
                if item.stages:
                    append(per_core[c], item, cap)
    last: list[int] = []
    # cores with the same items (the same tiles, L2 hits and misses) run as one group
    groups = (merged or same_work(per_core)) if bld.grouping else \
        [[c] for c, it in enumerate(per_core) if it or (records and c in records)]
    before = bld.copies
    deps_t = tuple(deps)
    try:
        for members in groups:
            c = members[0]
            mte2, cube, fixpipe = chip.aic_group_pipes(members, "mte2", "cube", "fixpipe")
            bld.copies = len(members)  # (Builder.group's, without a generator per group)
            got = records.get(c) if records else None
            if got is not None:
                keys, plan, h, w = got
                if len(h) > 1 or plan.terms[0][0] > 1:
                    if closed:  # (whole bytes: the L2 bytes from the items' totals)
                        static, acts = _pipeline_plan(plan, keys, chip, out_hbm, True)
                        last.extend(closed_pipeline(
                            bld.sink, chip, bld.copies, static, h, w, acts, None,
                            load_unit=mte2, compute_unit=cube, store_unit=fixpipe,
                            deps=deps_t, dest="l1", src="l0",
                            totals=None if w is not None else (plan.nbytes, plan.run_nbytes)))
                    else:
                        last.extend(emit_gemm_pipeline(
                            bld, _pipeline_plan(plan, keys, chip, out_hbm, False), h,
                            _l2_bytes(plan, h) if w is None else w,
                            store_bw=chip.fixpipe_bw, store_hbm_fraction=out_hbm,
                            deps=deps, dest="l1", src="l0", label=label, memo=made,
                            load_unit=mte2, compute_unit=cube, store_unit=fixpipe))
                    continue
                # one tile of one stage: no pipeline (emit_pipeline's)
                if w is None:
                    w = _l2_bytes(plan, h)
                (n_st, _, cp, st, ac, bound, streamed), = plan.terms
                per_core[c] = [Item(n_st, h[0], w[0], 0.0, cp, st, dict(zip(keys, ac)),
                                    bound, streamed=streamed)]
            last.extend(emit_pipeline(
                bld, per_core[c], store_bw=chip.fixpipe_bw, store_hbm_fraction=out_hbm,
                deps=deps, dest="l1", src="l0", label=label, closed_form=closed_form,
                memo=made, load_unit=mte2, compute_unit=cube, store_unit=fixpipe))
    finally:
        bld.copies = before
    return last


def _pipeline_plan(plan: _Chunks, keys: list[str], chip: Chip, out_hbm: float,
                   closed: bool) -> tuple:
    """What the pipeline of a core group takes from its items but their loads, made once
    per :class:`_Chunks` (the GEMM's groups share it): at the analytical fidelity
    :func:`~.pipeline.closed_static` and the items' actions summed, else
    :func:`~.pipeline.gemm_plan`. Kept too by what it is a function of (the terms, the
    actions' keys, the chip, ``out_hbm``) across GEMMs (:data:`_PLANS`): the layers of a
    model mostly repeat one another's core items, their edge rows aside."""
    got = plan.memo.get(closed)
    if got is not None:
        return got
    key = (closed, out_hbm, chip, tuple(keys), plan.key)
    got = _PLANS.get(key)
    if got is None:
        terms = plan.terms
        if closed:
            n_st, _, cp, st, ac, bound, streamed = map(list, zip(*terms))
            got = (closed_static(chip, n_st, cp, st, streamed, bound,
                                 store_bw=chip.fixpipe_bw, store_hbm_fraction=out_hbm,
                                 segments=SEGMENTS, compute_bound=None),
                   dict(zip(keys, map(sum, zip(*ac)))))
        else:
            got = gemm_plan([Item(n_st, 0.0, 0.0, 0.0, cp, st, dict(zip(keys, ac)), bound,
                                  streamed=streamed)
                             for n_st, _, cp, st, ac, bound, streamed in terms], SEGMENTS)
        if len(_PLANS) > 4096:
            _PLANS.clear()
        _PLANS[key] = got
    plan.memo[closed] = got
    return got


_PLANS: dict[tuple, tuple] = {}  # _pipeline_plan's, by what it is a function of
# emit_gemm's tile shapes (their numbers; no one changes a shape's actions), by what they
# are a function of but their rows and columns
_SHAPES: dict[tuple, dict[tuple[int, int], tuple]] = {}


def _tile_reads_loop(chip: Chip, l2: L2, batch: int, m: int, n: int, k: int, dtype: str,
                     t: GemmTiling, shape, *, a: str, b: str, bias: str | None, a_group: int,
                     b_group: int, bias_full: bool) -> list[tuple]:
    """A GEMM's tiles in issue order through the L2 model, one :meth:`L2.read` per
    operand block (the definition :func:`_tile_reads` is held to): per tile its core,
    the HBM bytes of its A, B and bias blocks, its bytes in all, its shape's terms."""
    tiles = []
    cores = chip.n_cube
    for idx, (bi, i, j) in enumerate(tile_order(chip, batch, m, n, k, dtype, t)):
        sh = shape(min(t.om, m - i * t.om), min(t.on, n - j * t.on))
        ab, bb, bias_b = sh[2], sh[3], sh[6]
        tiles.append((idx % cores, l2.read(a, (bi // a_group, i), ab),
                      l2.read(b, (bi // b_group, j), bb),
                      l2.read(bias, (bi, i, j) if bias_full else j, bias_b) if bias
                      else 0.0, ab + bb + bias_b, sh))
    return tiles


def _tile_reads(chip: Chip, l2: L2, batch: int, m: int, n: int, k: int, dtype: str,
                t: GemmTiling, shape, *, a: str, b: str, bias: str | None, a_group: int,
                b_group: int, bias_full: bool) -> list[tuple]:
    """:func:`_tile_reads_loop` with the L2's LRU walked inline (a 32K-token GEMM has a
    million tiles): the same tiles, the same reads in the same order, and the L2 left
    as the reads leave it (a test holds the two equal). Within a GEMM the L2's
    intermediates do not change, so its limit is fixed, and each tile's shape is one
    of at most four (the last row and column of tiles may be shorter)."""
    cores = chip.n_cube
    om, on = t.om, t.on
    tm, tn = cdiv(m, om), cdiv(n, on)
    panel = k * on * dtype_bytes(dtype)
    group = max(1, min(tn, int(chip.spec.l2_bytes / 2 // max(panel, 1))))
    # the shapes of a row of tiles, by row height (every row but the last: the full one)
    row_shapes = _row_shapes(shape, m, n, om, on)
    resident = l2.resident
    carried = l2.carried
    lines = l2.lines
    move = lines.move_to_end
    pop = lines.popitem
    limit = l2._limit()
    used = l2.used

    def read(tensor: str, block, nbytes: float) -> float:  # L2.read, the L2 as locals
        nonlocal used
        if tensor in carried:
            return 0.0
        if tensor in resident:
            return float(nbytes) * (1.0 - resident[tensor])
        key = (tensor, block)
        if key in lines:
            move(key)
            return 0.0
        lines[key] = nbytes
        used += nbytes
        while used > limit and len(lines) > 1:
            _, old = pop(last=False)
            used -= old
        return float(nbytes)

    tiles = []
    append = tiles.append
    idx = 0
    inline = a not in resident and b not in resident and a not in carried and b not in carried
    # an operand the L2 holds whole (carried in by the op before, or an intermediate kept
    # there) is read without its blocks: read's first two cases, as a factor on its bytes
    # (0 when carried); the other operand's blocks walk the LRU inline
    a_held = b_held = None
    if not inline and a != b:
        a_held = 0.0 if a in carried else (1.0 - resident[a]) if a in resident else None
        b_held = 0.0 if b in carried else (1.0 - resident[b]) if b in resident else None
    for bi in range(batch):
        ga, gb = bi // a_group, bi // b_group
        for j0 in range(0, tn, group):
            j1 = min(tn, j0 + group)
            for i in range(tm):
                shapes = row_shapes[min(om, m - i * om)]
                a_key = (a, (ga, i))
                for j in range(j0, j1):
                    sh = shapes[j]
                    ab, bb, bias_b = sh[2], sh[3], sh[6]
                    if a_held is not None:  # A held whole; B's blocks (read's cases inline)
                        ha = 0.0 if a_held == 0.0 else float(ab) * a_held
                        if b_held is not None:
                            hb = 0.0 if b_held == 0.0 else float(bb) * b_held
                        else:
                            b_key = (b, (gb, j))
                            if b_key in lines:
                                move(b_key)
                                hb = 0.0
                            else:
                                lines[b_key] = bb
                                used += bb
                                while used > limit and len(lines) > 1:
                                    _, old = pop(last=False)
                                    used -= old
                                hb = float(bb)
                    elif inline:  # the common case, no call: read(a, ...), read(b, ...)
                        if a_key in lines:
                            move(a_key)
                            ha = 0.0
                        else:
                            lines[a_key] = ab
                            used += ab
                            while used > limit and len(lines) > 1:
                                _, old = pop(last=False)
                                used -= old
                            ha = float(ab)
                        b_key = (b, (gb, j))
                        if b_key in lines:
                            move(b_key)
                            hb = 0.0
                        else:
                            lines[b_key] = bb
                            used += bb
                            while used > limit and len(lines) > 1:
                                _, old = pop(last=False)
                                used -= old
                            hb = float(bb)
                    else:
                        ha = read(a, (ga, i), ab)
                        hb = read(b, (gb, j), bb)
                    hx = read(bias, (bi, i, j) if bias_full else j, bias_b) if bias else 0.0
                    append((idx % cores, ha, hb, hx, ab + bb + bias_b, sh))
                    idx += 1
    l2.used = used
    return tiles


def _tile_misses(chip: Chip, l2: L2, batch: int, m: int, n: int, k: int, dtype: str,
                 t: GemmTiling, shape, *, a: str, b: str, a_group: int, b_group: int
                 ) -> tuple[list[float], list[tuple]]:
    """:func:`_tile_reads` where B is read block by block, A too or carried whole
    (:mod:`hwsim.onchip`: every read a hit, no line), neither held as an
    intermediate, ``a != b``, and no bias is read: per tile in issue order its HBM
    bytes (whole numbers) and its shape, the L2 left as the reads leave it.

    Within a group of columns (:func:`tile_order`) the first row of tiles reads each
    B panel of the group; when those panels and two A panels fit in the L2's limit,
    no later row of the group evicts any of them (an LRU evicts the oldest first, and
    the only line newer than the group's first B panel that is not the group's is
    the previous row's A panel). So a later row's tiles all hit B, its A panel is one
    real read (a miss or not, and the evictions a miss makes), and the row leaves the
    LRU order its reads would (B panels by column, the A panel before the last): a
    row is a few moves, not a tile's reads each (with A carried, the B panels alone
    must fit, and the row makes no move: the row before left the LRU as its reads
    would). Other groups go tile by tile."""
    om, on = t.om, t.on
    tm, tn = cdiv(m, om), cdiv(n, on)
    panel = k * on * dtype_bytes(dtype)
    group = max(1, min(tn, int(chip.spec.l2_bytes / 2 // max(panel, 1))))
    row_shapes = _row_shapes(shape, m, n, om, on)
    heights = sorted(row_shapes)
    a_max = max(row_shapes[h][0][2] for h in heights)  # A's bytes depend on the rows only
    b_cols = row_shapes[heights[-1]]  # B's on the columns only
    lines = l2.lines
    move = lines.move_to_end
    pop = lines.popitem
    limit = l2._limit()
    used = l2.used
    hbm: list[float] = []
    shapes_out: list[tuple] = []
    put, put_all, put_shapes = hbm.append, hbm.extend, shapes_out.extend
    zeros = [0.0] * group
    a_carried = a in l2.carried
    for bi in range(batch):
        ga, gb = bi // a_group, bi // b_group
        for j0 in range(0, tn, group):
            j1 = min(tn, j0 + group)
            b_keys = [(b, (gb, j)) for j in range(j0, j1)]
            steady = sum(b_cols[j][3] for j in range(j0, j1)) \
                + (0 if a_carried else 2 * a_max) <= limit
            for i in range(tm):
                shapes = row_shapes[min(om, m - i * om)]
                a_key = (a, (ga, i))
                if i and steady and a_carried:  # the group's later rows: all hits
                    # and no move: the row before left them the LRU's newest, in this
                    # order (row 0 moved or added each in turn, evicting only older
                    # lines, as they fit), so moving each to the end in turn changes
                    # nothing (a 32K prefill's carried activations: a million moves);
                    # every row full but the last
                    rest = tm - i
                    put_all(zeros[:j1 - j0] * rest)
                    last = row_shapes[min(om, m - (tm - 1) * om)][j0:j1]
                    put_shapes(shapes[j0:j1] * (rest - 1))
                    put_shapes(last)
                    break
                if i and steady:  # the group's later rows re-read its B panels: all hits
                    used = _steady_rows(lines, used, limit, a, ga, i, tm, om, m, row_shapes,
                                        b_keys, put, put_all, put_shapes, zeros, j0, j1)
                    break
                if not lines:  # an empty L2 (the GEMM's first row): every read a miss
                    row = shapes[j0:j1]
                    bbs = [sh[3] for sh in row]
                    ab = 0 if a_carried else row[0][2]
                    # (whole bytes: the reads' running total in any order; below the
                    # limit at the row's end, below it after each read: no eviction)
                    if used + ab + sum(bbs) <= limit:
                        used = _first_row(lines, used, a_key, ab, b_keys, bbs, a_carried,
                                          put_all)
                        put_shapes(row)
                        continue
                for j in range(j0, j1):
                    sh = shapes[j]
                    if a_carried:
                        ha = 0.0
                    elif a_key in lines:
                        move(a_key)
                        ha = 0.0
                    else:
                        ab = sh[2]
                        lines[a_key] = ab
                        used += ab
                        while used > limit and len(lines) > 1:
                            _, old = pop(last=False)
                            used -= old
                        ha = float(ab)
                    b_key = b_keys[j - j0]
                    if b_key in lines:
                        move(b_key)
                        hb = 0.0
                    else:
                        bb = sh[3]
                        lines[b_key] = bb
                        used += bb
                        while used > limit and len(lines) > 1:
                            _, old = pop(last=False)
                            used -= old
                        hb = float(bb)
                    put(ha + hb)
                put_shapes(shapes[j0:j1])
    l2.used = used
    return hbm, shapes_out


def _row_shapes(shape, m: int, n: int, om: int, on: int) -> dict[int, list[tuple]]:
    """The shapes of a row of tiles (``shape(rows, cols)``, one object per value), by row
    height: every row full (``om``) but the last, every column full (``on``) but the
    last (what ``shape(min(om, m - i * om), min(on, n - j * on))`` gives tile by tile)."""
    tm, tn = cdiv(m, om), cdiv(n, on)
    last_h, last_w = m - (tm - 1) * om, n - (tn - 1) * on
    out = {}
    for h in ((last_h, om) if last_h < om else (om,)) if tm > 1 else (last_h,):
        out[h] = [shape(h, on)] * (tn - 1) + [shape(h, last_w)]
    return out


def _first_row(lines, used: float, a_key: tuple, ab: int, b_keys: list, bbs: list,
               a_carried: bool, put_all) -> float:
    """:func:`_tile_misses`' first row of tiles into an empty L2 whose limit holds its
    reads (``used`` the bytes held; returns them after): each tile's reads, in turn,
    are misses but the A panel's after the first tile (moved to the end), so the
    tiles' HBM bytes are the first tile's A and B panels, then each B panel, and the
    LRU ends ``[B panels but the last, the A panel, the last B panel]`` (A carried:
    no A line, each tile its B panel)."""
    if a_carried:
        put_all(map(float, bbs))  # (0.0 plus each: itself)
        lines.update(zip(b_keys, bbs))
        return used + sum(bbs)
    put_all([float(ab) + float(bbs[0]), *map(float, bbs[1:])])
    lines.update(zip(b_keys[:-1], bbs[:-1]))
    lines[a_key] = ab
    lines[b_keys[-1]] = bbs[-1]
    return used + ab + sum(bbs)


def _steady_rows(lines, used: float, limit: float, a: str, ga: int, i: int, tm: int, om: int,
                 m: int, row_shapes: dict, b_keys: list, put, put_all, put_shapes,
                 zeros: list, j0: int, j1: int) -> float:
    """:func:`_tile_misses`' rows ``i`` (1) to ``tm - 1`` of a column group whose B panels
    and two A panels fit in the L2's limit (``used`` the bytes held; returns them after):
    each row a read of its A panel, its B panels hits, without the B panels' moves row
    by row.

    Row by row, the reads leave the LRU ``[older lines, A panels of the rows before the
    last, B panels but the last, the last row's A panel, the last B panel]`` (each row's
    moves put the row before's A panel behind the B panels): a miss evicts the older
    lines first, then those A panels in row order, never a B panel or the two newest A
    panels (they fit). Here the B panels stay where row 0 left them, each A panel read
    goes to the end, an eviction takes the older lines from the front and then the
    A panels in row order by key, and the order is made at the end: those A panels, the
    B panels but the last, the last A panel, the last B panel, each moved to the end.
    The same lines in the same order, the same bytes (a test holds it to the reads)."""
    move = lines.move_to_end
    pop = lines.popitem
    ours = set(b_keys)  # the group's lines: its B panels and its rows' A panels
    prev = (a, (ga, i - 1))
    ours.add(prev)
    behind: deque = deque()  # the A panels behind the B panels, oldest first
    n_b = j1 - j0
    for r in range(i, tm):
        shapes = row_shapes[min(om, m - r * om)]
        a_key = (a, (ga, r))
        if a_key in lines:
            move(a_key)
            put(0.0)
        else:
            ab = shapes[j0][2]
            lines[a_key] = ab
            used += ab
            while used > limit and len(lines) > 1:
                if next(iter(lines)) in ours:  # the older lines gone: the A panels behind
                    used -= lines.pop(behind.popleft())
                else:
                    _, old = pop(last=False)
                    used -= old
            put(float(ab))
        ours.add(a_key)
        behind.append(prev)
        prev = a_key
        put_all(zeros[:n_b - 1])
        put_shapes(shapes[j0:j1])
    for key in behind:
        move(key)
    for key in b_keys[:-1]:
        move(key)
    move(prev)
    move(b_keys[-1])
    return used


class _Terms:
    """A :class:`_Chunks`' terms as a dict key, equal to another by their values (as
    their tuples are) and hashed once (a GEMM's core items are looked up by value
    twice, :func:`_merge_tiles`' ``distinct`` and :data:`_PLANS`), by their count and
    their first, middle and last terms: equal terms hash alike, and terms that differ
    elsewhere only compare unequal (a tuple of all of them would hash every float of
    every term, at every lookup)."""

    __slots__ = ("terms", "hash")

    def __init__(self, terms: list[tuple]):
        self.terms = terms
        n = len(terms)
        self.hash = hash((n, terms[0], terms[n // 2], terms[-1])) if n else 0

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other) -> bool:
        return type(other) is _Terms and self.terms == other.terms


class _Chunks:
    """A core's items as far as its tiles' shapes make them (kept per sequence of tile
    shapes, one object per distinct value, shared by the cores whose tiles have those
    shapes: a GEMM's cores differ mostly in their L2 misses): per item the tiles
    ``[a, b)`` of the core's list it sums (``spans``) and its ``terms``, ``(stages, the
    tiles' bytes in all, compute seconds, store bytes, actions' values, bound,
    streamed)``; ``memo``: what the pipelines make of these (:func:`_pipeline_plan`);
    ``key``: the terms as a dict key (:class:`_Terms`)."""

    __slots__ = ("spans", "item_of", "terms", "key", "nbytes", "run_nbytes", "memo")

    def __init__(self, spans: list[tuple[int, int]], terms: list[tuple]):
        self.spans = spans
        self.item_of: list[int] | None = None  # each tile's item (``item_sums``)
        self.terms = terms
        self.key = _Terms(terms)
        self.nbytes = [t[1] for t in terms]
        self.run_nbytes = [0.0, *accumulate(self.nbytes)]  # (closed_pipeline's totals)
        self.memo: dict = {}

    def item_sums(self, hs: list[float]) -> list[float]:
        """Per item the sum of its tiles' whole numbers ``hs`` (below 2**53, none
        negative): the tiles above 0 added to their items (mostly a few: a core's L2
        misses), every partial sum exact, so each item's is what summing its tiles
        gives, in any order (a tile of 0.0 adds nothing)."""
        of = self.item_of
        if of is None:
            of = self.item_of = [i for i, (a, b) in enumerate(self.spans) for _ in range(a, b)]
        h = [0.0] * len(self.spans)
        for t in compress(range(len(hs)), hs):
            h[of[t]] += hs[t]
        return h


def _chunks(shs: list, ids: tuple, per: int, stages: int, info: dict, alone: dict,
            runs: dict, by_runs: bool) -> _Chunks:
    """The :class:`_Chunks` of a core whose tiles have the shapes ``shs`` (in order; their
    ids ``ids``): the first tile alone (its terms in ``alone``, by shape id), then items
    of ``per`` tiles; their compute, store and actions
    sums as :func:`_merge_tiles` documents them (``by_runs``: a chunk of several shapes
    summed run by run, its store bytes and actions whole numbers). ``runs``: the GEMM's
    chunk sums by its shapes' ids; on a miss they come from :data:`_RUN_SUMS`, by the
    shapes' numbers (``info``'s values, hashable): the sums are a function of those
    numbers alone, and the layers of a model mostly tile alike."""
    n = len(shs)
    if per == 1:  # every tile alone
        return _Chunks([(a, a + 1) for a in range(n)], list(map(alone.__getitem__, ids)))
    spans = [(0, 1)]
    terms = [alone[ids[0]]]
    a = 1
    while a < n:
        b = a + per if a + per < n else n
        spans.append((a, b))
        if b - a == 1:
            terms.append(alone[ids[a]])
            a = b
            continue
        chunk = shs[a:b]
        first = chunk[0]
        # the chunk as runs of one shape (tile ids in order); one shape: one run, its
        # tiles added one by one. Its sums made once per GEMM (by the ids, ``runs``) and
        # across GEMMs (by the shapes' numbers, _RUN_SUMS)
        if chunk.count(first) == b - a:
            key = (id(first), b - a)
            by_id: tuple = (key,)
            whole = False
        else:
            key = by_id = tuple([(sid, len(list(grp))) for sid, grp in groupby(map(id, chunk))])
            whole = by_runs
        got = runs.get(key)
        if got is None:
            by_value = (whole, *[(info[sid], r) for sid, r in by_id])
            got = _RUN_SUMS.get(by_value)
            if got is None:
                got = _RUN_SUMS[by_value] = _run_sums(by_value[1:], whole)
            runs[key] = got
        nbytes, cp, st, ac, bound = got
        terms.append((stages * (b - a), nbytes, cp, st, ac, bound, True))
        a = b
    return _Chunks(spans, terms)


def _run_sums(chunk_runs: tuple[tuple[tuple, int], ...], by_runs: bool) -> tuple:
    """A chunk of tiles given as runs of one shape (each shape's numbers as
    :func:`_merge_tiles`' ``info`` has them, the run's length): its bytes in all,
    compute, store and actions sums and bound, as :func:`_chunks` documents them."""
    nbytes = sum([x[4] * r for x, r in chunk_runs])
    cp, st, ac, bound, _ = chunk_runs[0][0]
    ac = list(ac)
    for r_i, ((comp, store, acts, bd, _), r) in enumerate(chunk_runs):
        if not r_i:
            r -= 1  # the first tile is the start
        if by_runs:  # run by run: whole stores and actions
            # absorb's test, before a run's first tile; the run's others cannot switch
            # it (the same bound, or no longer than the sum)
            if r_i and bd != bound and comp > cp:
                bound = bd
            for _ in range(r):  # seconds: one add per tile, as absorb adds them
                cp += comp
            st += store * r  # whole numbers: the product is the adds' sum
            ac = [x + y * r for x, y in zip(ac, acts)]
        else:  # the tiles one by one, as absorb adds them
            for _ in range(r):
                if bd != bound and comp > cp:  # absorb's test, before the add
                    bound = bd
                cp += comp
                st += store
                ac = [x + y for x, y in zip(ac, acts)]
    return nbytes, cp, st, tuple(ac), bound


_RUN_SUMS: dict[tuple, tuple] = {}  # _chunks' sums of a chunk, by its runs' numbers


def _merge_tiles(per_core: list[list[Item]], tiles: list | None, ra: float, rb: float,
                 stages: int, cap: int, leaders_only: bool = False,
                 whole: tuple[list, list] | None = None,
                 records: dict | None = None) -> list[list[int]]:
    """What :func:`~.pipeline.append` makes of each core's tiles, in issue order (a
    32K-token GEMM has thousands of tiles per core), without an :class:`Item` per tile
    (the numbers as floats: integer byte and MAC counts, below 2**53, sum the same):
    a core's first tile alone, then items of ``cap // stages`` tiles, each the
    sequential sum of its tiles (the floats ``Item.absorb`` adds: one after another,
    in order), its bound switched as ``absorb`` switches it (by a
    later tile whose time exceeds the sum before it).

    What an item's tiles' shapes decide (compute, store and actions sums, its bytes in
    all) is made once per sequence of shapes (:func:`_chunks`: the cores of a GEMM
    mostly share one, and a run of tiles of one shape has the same sums wherever it
    is); the HBM and L2 bytes (hits and misses differ tile by tile) are summed core
    by core. Plain Python, no numpy: the loop is short, and numpy's import alone cost
    more than it (0.07 s of a first call's 0.2 s goal).

    Returns the cores in groups of equal items, as :func:`~.pipeline.same_work` groups
    them (compared by their numbers before any :class:`Item` is made: equal shapes'
    terms and equal loads); with ``leaders_only`` only each group's first core gets its
    items (the one a grouped build emits). With ``records`` (a dict) a core's items go
    there instead, ``records[core] = (actions' keys, its _Chunks, HBM bytes per item,
    L2 bytes per item)``, the L2 bytes None where the bytes are whole numbers
    (:func:`_l2_bytes`): what the pipelines read, no :class:`Item` made."""
    cores = len(per_core)
    per = max(1, cap // stages)
    if whole is None:
        # per tile: its HBM bytes (the operands' misses, scaled for views), its L2 hits
        hbm_all = [ha * ra + hb * rb + hx for _, ha, hb, hx, _, _ in tiles]
        l2_all = [float(t[4]) - h for t, h in zip(tiles, hbm_all)]
        shape_all = [t[5] for t in tiles]
        given = None
    else:
        # whole numbers of bytes (below 2**53): a run's sums are the same in any order,
        # and its L2 hits are its bytes less its misses
        hbm_all, shape_all, *given = whole
        given = given[0] if given else None
        l2_all = None
    keys = list(shape_all[0][5])  # the actions' keys (every tile has the same)
    # per shape (a GEMM's tiles share a few shape tuples; ``whole`` may name them): its
    # numbers as floats
    info = {}
    for sh in given or dict(zip(map(id, shape_all), shape_all)).values():
        info[id(sh)] = (float(sh[0]), float(sh[4]), tuple([float(sh[5][k]) for k in keys]),
                        sh[1], float(sh[2] + sh[3] + sh[6]))
    runs: dict[tuple, tuple] = {}  # a chunk's sums by its shapes' ids (_chunks)
    if len(_RUN_SUMS) > 4096:  # (by their numbers, across GEMMs: kept while not too many)
        _RUN_SUMS.clear()
    # every shape's store bytes and actions whole numbers (below 2**53): a run of r
    # tiles adds r times each, exactly (the seconds are still added one by one)
    by_runs = l2_all is None and all(
        float(v).is_integer() and abs(v) * len(hbm_all) < 2.0 ** 53
        for x in info.values() for v in (x[1], *x[2]))
    # a tile alone, its own item (a core's first tile, a chunk of one)
    alone = {sid: (stages, x[4], x[0], x[1], tuple(x[2]), x[3], False)
             for sid, x in info.items()}
    # the cores' tile shapes and their _Chunks, by count of tiles (a GEMM has a few: the
    # lists compared, the same shape objects told by identity, no hash per tile)
    plans: dict[int, list[tuple[list, _Chunks]]] = {}
    distinct: dict[_Terms, _Chunks] = {}  # by the terms' values: one object per value
    groups: dict[tuple, list[int]] = {}
    for core in range(min(cores, len(hbm_all))):
        hs = hbm_all[core::cores]
        shs = shape_all[core::cores]
        known = plans.get(len(shs))
        if known is None:
            known = plans[len(shs)] = []
        plan = None
        for other, c in known:
            if other == shs:
                plan = c
                break
        if plan is None:
            plan = _chunks(shs, tuple(map(id, shs)), per, stages, info, alone, runs, by_runs)
            plan = distinct.setdefault(plan.key, plan)
            known.append((shs, plan))
        if l2_all is None:  # whole numbers: the sums in any order, the L2 hits the rest
            # (a tile alone: sum([x]) is x, the bytes never -0.0)
            h = hs if per == 1 else plan.item_sums(hs)
            rec = (plan, h, None)
            gkey = (id(plan), tuple(h))
        else:  # one after another, as absorb adds them
            ws = l2_all[core::cores]
            h, w = [], []
            for a, b in plan.spans:
                x, y = hs[a], ws[a]
                for i in range(a + 1, b):
                    x += hs[i]
                    y += ws[i]
                h.append(x)
                w.append(y)
            rec = (plan, h, w)
            # (the items' bytes in all are not theirs here: equal items, whatever those)
            gkey = (tuple((t[0], *t[2:]) for t in plan.terms), tuple(h), tuple(w))
        # equal terms and loads are equal items: the cores in the groups same_work makes
        # (a core whose tiles are another's is found here too)
        members = groups.get(gkey)
        if members is None:
            groups[gkey] = [core]
        else:
            members.append(core)
            if leaders_only:
                continue
        if records is not None:  # (_give_items', inline)
            records[core] = (keys, *rec)
        else:
            _give_items(per_core, core, keys, rec, records)
    return list(groups.values())


def _give_items(per_core: list[list[Item]], core: int, keys: list[str], rec: tuple,
                records: dict | None) -> None:
    """:func:`_merge_tiles`' items of ``core``: its record (with whole numbers its L2
    bytes None: its items' bytes less its HBM bytes, :func:`_l2_bytes`), or
    :class:`Item` objects."""
    plan, h, w = rec
    if records is not None:
        records[core] = (keys, plan, h, w)
        return
    if w is None:
        w = _l2_bytes(plan, h)
    per_core[core].extend(Item(n_st, x, y, 0.0, cp, st, dict(zip(keys, ac)), bound,
                               streamed=streamed)
                          for (n_st, _, cp, st, ac, bound, streamed), x, y
                          in zip(plan.terms, h, w))


def _l2_bytes(plan: _Chunks, h: list[float]) -> list[float]:
    """A core's L2 bytes per item where its bytes are whole numbers: each item's bytes
    in all less its HBM bytes ``h``."""
    return list(map(sub, plan.nbytes, h))


def _alias_scale(hbm_bytes: float, unique: float | None, l2: L2) -> float:
    """Factor on an operand's HBM bytes when it is a view holding only ``unique`` bytes:
    those come from HBM once, the re-reads of them from L2 as far as they fit."""
    if unique is None or hbm_bytes <= unique or hbm_bytes <= 0:
        return 1.0
    hit = reuse_hit_fraction(unique, l2.reuse_bytes())
    return (unique + (hbm_bytes - unique) * (1.0 - hit)) / hbm_bytes
