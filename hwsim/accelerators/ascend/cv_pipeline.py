"""A fused attention's tile loop as engine tasks: the cube and its vector cores hand blocks over.

A cube core (AIC) of the 910B and its two vector cores (AIV) run a query
tile's walk over its key/value blocks as four stages per block, on separate
units that wait for one another through flags (the FlashAttention kernels of
CANN and of the open PTO kernel, hw-native-sys/pto-isa
``kernels/manual/common/flash_atten/README.md``, "Inter Cube Core and Vector
Core pipelines"):

==========  ===================  =============================================
stage       unit                 work
==========  ===================  =============================================
K load      ``core3.mte2``       K of the block (with Q and the mask tile at a
                                 walk's start) GM to L1, before its QK
V load      ``core3.mte2``       V of the block GM to L1, before its PV
QK          ``core3.cube``       S = Q·Kᵀ (MMADs, MTE1 L1 to L0A/L0B)
S out       ``core3.fixpipe``    S (fp32) L0C to the GM workspace (in L2)
softmax     ``vec6.vector``,     each AIV its half of the rows: S in from L2,
            ``vec7.vector``      online softmax (scale, max, exp, sum), P out
PV          ``core3.cube``       O_j = P·V (P in from L2, MMADs)
O out       ``core3.fixpipe``    O_j (fp32) to the workspace
update      ``vec6.vector``, …   O = O·exp(m_old - m_new) + O_j; at a tile's
                                 end O / l, to fp16
store       ``vec6.mte3``, …     O out to GM
==========  ===================  =============================================

Each hand-off between the AIC and an AIV is a cross-core flag: a task of
``cv_sync_s`` on the lane ``core3.flag`` (cube to vector) or ``vec6.flag``
(vector to cube) between the producer's task and the consumer's, so the wait
is visible on the timeline.

**Preload.** The cube's program order is what makes the overlap. With
``preload`` = p the cube issues QK for p blocks before the first PV, then
alternates QK(j + p), PV(j) (FastAttention's "the cube runs one block ahead",
p = 1; the PTO kernel's ``qkPreloadNum``, 4 by default, the workload's
``tiling.qk_preload``); the vectors alternate softmax(j + p), update(j). The
S/P workspace is a FIFO of p + 1 slots: QK(j) waits until the softmax of
block j - p - 1 has freed its slot. (The program order already implies it: QK(j) is
issued after PV(j - p - 1), which waits for that softmax; so a deeper FIFO, such
as the 12 slots of the kernel's first version, pto-isa@6cc68238, changes no
run. That version's periodic consumption wait, QK(t) for t >= 12 and t a
multiple of 6 on the load of tile t - 1, is not modelled: docs/targets/ascend.md,
"Per-core check".) One-level flash (p = 0) has no run-ahead:
QK(j + 1) follows PV(j), which waits for softmax(j); so the cube idles while
the vectors work and the other way round, and every hand-off's flag is on the
critical path. Both come out of the run.

**K and V buffers.** As the PTO kernel keeps them (``kMatTile`` and
``vMatTile``, two each, ping-pong: ``compute_qk`` loads its K tile after the
MTE1 has read the one two tiles back, ``compute_pv`` its V tile likewise), K
and V have two L1 buffers each (:data:`KV_BUFFERS`): the K load of block j
waits for QK(j - 2) to have read the buffer it reuses, the V load for
PV(j - 2). So the next blocks' K streams in while the cube works and the V
of a block while its QK and softmax run; the loads reach the cube's path only
where the MTE2 is the slower side. (One K+V buffer freed by the PV, as before,
put every load between a PV and the next QK: with run-ahead the cube cannot
reorder around it.) A step's misses go to the ``hbm`` unit once, with its K
load; the V load is its pipe's time alone.

**Aggregation (events are steps, not blocks).** A core's blocks (of all the
tiles it runs, one after another: the loop goes on from tile to tile without
draining) are grouped into at most ``MAX_STEPS`` steps: the first
``EDGE_STEPS`` blocks and the last ``EDGE_STEPS`` alone (the fill and the
drain), the middle ones in about equal groups of consecutive blocks. A step's
tasks carry the sum of its blocks' work: a tile the step covers whole added as
its one pre-summed term (:func:`tile_sum`, made once per distinct tile of an
op), so not the floats of adding the blocks one by one but within
:data:`TILE_SUM_RTOL` of them (:func:`_tile_sums`). In the steady state the stages of
consecutive blocks repeat, so a group of r blocks overlaps like one block r
times longer; what aggregation loses is the flags inside a group: with
run-ahead (p ≥ 1) they are hidden by the overlap, without it (one-level
flash) each costs its latency on the critical path, so the grouped softmax
and PV tasks of a flash step carry the ``(r - 1)`` inner flags in their time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hwsim.engine import Accumulator

from .chip import HBM_UNIT, Builder, clean_deps
from .pipeline import store_split

MAX_STEPS = 16  # steps per core at most (tasks per core about 10 x this)
EDGE_STEPS = 2  # blocks alone at each end of a core's walk (pipeline fill and drain)


@dataclass
class Block:
    """One key/value block of a query tile on one core (times in seconds)."""

    qk_s: float  # cube: S = Q·Kᵀ
    fix_s_s: float  # FixPipe: S out
    softmax_s: float  # one AIV's online softmax of its rows
    pv_s: float  # cube: P·V (P in from L2 included)
    fix_o_s: float  # FixPipe: O_j out
    update_s: float  # one AIV's rescale-and-add of O_j
    final_s: float = 0.0  # one AIV's O / l at the tile's end (0 elsewhere)
    load_hbm: float = 0.0  # bytes into L1 missing L2
    load_l2: float = 0.0  # bytes hitting L2
    load_l2_slow: float = 0.0  # L2 hits moved at one HBM stream's rate (see Builder.load)
    mask_hbm: float = 0.0
    pad_hbm: float = 0.0
    pad_l2: float = 0.0
    store_bytes: float = 0.0  # O (or the split-KV partial) written at the tile's end
    actions: dict = field(default_factory=dict)
    load_v: float = 0.0  # of the data loaded (load_hbm - mask_hbm + load_l2 + load_l2_slow): V's



def program_order(n: int, preload: int, emit_load, emit_qk, emit_pv) -> None:
    """The walk's issue order, shared by the task build and the analytical sums, as the
    kernel's scalar unit issues it (hw-native-sys/pto-isa ``compute_qk`` loads its K
    tile, ``compute_pv`` its V tile): the cube ``preload`` blocks ahead of the vectors,
    each QK after its K load, each PV after its V load; per step the next block's K
    load and QK, then this step's V load and PV. ``emit_load(s, part)``: part 0 is the
    block's K (with Q at a tile's start and mask rows), part 1 its V."""
    for s in range(min(n, preload)):
        emit_load(s, 0)
        emit_qk(s)
    for s in range(n):
        if s + preload < n:
            emit_load(s + preload, 0)
            emit_qk(s + preload)
        emit_load(s, 1)
        emit_pv(s)


# L1 buffers of K and of V each (the kernel's ping-pong tiles): a block's K (V) load reuses
# the buffer of the block KV_BUFFERS earlier, free once that block's QK (PV) has read it
KV_BUFFERS = 2


def split_load(st: Block, part: int) -> tuple[float, float, float, float, float, float]:
    """The K part (0: with Q and the mask rows) or the V part (1) of a step's load:
    (hbm, l2, l2_slow, mask_hbm, pad_hbm, pad_l2) bytes. V's share of the data is
    ``load_v``; the pads (whole bursts) are shared in the same proportion."""
    data = st.load_hbm - st.mask_hbm + st.load_l2 + st.load_l2_slow
    fv = st.load_v / data if data > 0.0 and st.load_v > 0.0 else 0.0
    fv = 1.0 if fv > 1.0 else fv
    if part:
        if fv <= 0.0:
            return (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        return ((st.load_hbm - st.mask_hbm) * fv, st.load_l2 * fv, st.load_l2_slow * fv, 0.0,
                st.pad_hbm * fv, st.pad_l2 * fv)
    if fv <= 0.0:
        return (st.load_hbm, st.load_l2, st.load_l2_slow, st.mask_hbm, st.pad_hbm, st.pad_l2)
    fk = 1.0 - fv
    return (st.mask_hbm + (st.load_hbm - st.mask_hbm) * fk, st.load_l2 * fk,
            st.load_l2_slow * fk, st.mask_hbm, st.pad_hbm * fk, st.pad_l2 * fk)


def _steps(n: int) -> list[tuple[int, int]]:
    """Ranges of a core's ``n`` blocks: the edges alone, the middle in equal groups."""
    if n <= MAX_STEPS:
        return [(i, i + 1) for i in range(n)]
    head = [(i, i + 1) for i in range(EDGE_STEPS)]
    tail = [(n - EDGE_STEPS + i, n - EDGE_STEPS + i + 1) for i in range(EDGE_STEPS)]
    lo, hi = EDGE_STEPS, n - EDGE_STEPS
    k = MAX_STEPS - 2 * EDGE_STEPS
    cuts = [lo + round(i * (hi - lo) / k) for i in range(k + 1)]
    mid = [(cuts[i], cuts[i + 1]) for i in range(k) if cuts[i + 1] > cuts[i]]
    return head + mid + tail


def _add(out: Block, b: Block, k: int) -> None:
    """``out`` += ``k`` blocks ``b``."""
    out.qk_s += b.qk_s * k
    out.fix_s_s += b.fix_s_s * k
    out.softmax_s += b.softmax_s * k
    out.pv_s += b.pv_s * k
    out.fix_o_s += b.fix_o_s * k
    out.update_s += b.update_s * k
    out.final_s += b.final_s * k
    out.load_hbm += b.load_hbm * k
    out.load_l2 += b.load_l2 * k
    out.load_l2_slow += b.load_l2_slow * k
    out.mask_hbm += b.mask_hbm * k
    out.pad_hbm += b.pad_hbm * k
    out.pad_l2 += b.pad_l2 * k
    out.store_bytes += b.store_bytes * k
    out.load_v += b.load_v * k
    acts = out.actions
    for a, v in b.actions.items():
        acts[a] = acts.get(a, 0.0) + v * k


def _sums(runs: list[tuple[Block, int]], ranges: list[tuple[int, int]]) -> list[Block]:
    """Per range [a, b) of the walk's blocks (given as runs of equal blocks), their sum.

    :func:`_sums_by_add` with the running sums in locals: the same products added in
    the same order (a test holds the two equal)."""
    out = []
    r, start = 0, 0  # the run at the cursor and the index of its first block
    n_runs = len(runs)
    for a, b in ranges:
        while r < n_runs and start + runs[r][1] <= a:  # runs wholly before the range
            start += runs[r][1]
            r += 1
        qk = fs = sm = pv = fo = up = fi = lh = l2 = ls = mk = ph = pl = sb = lv = 0.0
        acts: dict = {}
        i, s = r, start
        while i < n_runs and s < b:
            blk, k = runs[i]
            overlap = (b if b < s + k else s + k) - (a if a > s else s)
            if overlap > 0:
                qk += blk.qk_s * overlap
                fs += blk.fix_s_s * overlap
                sm += blk.softmax_s * overlap
                pv += blk.pv_s * overlap
                fo += blk.fix_o_s * overlap
                up += blk.update_s * overlap
                fi += blk.final_s * overlap
                lh += blk.load_hbm * overlap
                l2 += blk.load_l2 * overlap
                ls += blk.load_l2_slow * overlap
                mk += blk.mask_hbm * overlap
                ph += blk.pad_hbm * overlap
                pl += blk.pad_l2 * overlap
                sb += blk.store_bytes * overlap
                lv += blk.load_v * overlap
                for name, v in blk.actions.items():
                    acts[name] = acts.get(name, 0.0) + v * overlap
            s += k
            i += 1
        out.append(Block(qk, fs, sm, pv, fo, up, fi, lh, l2, ls, mk, ph, pl, sb, acts, lv))
    return out


def _sums_by_add(runs: list[tuple[Block, int]], ranges: list[tuple[int, int]]
                 ) -> list[Block]:
    """:func:`_sums` block run by block run with :func:`_add` (its definition)."""
    out = []
    r, start = 0, 0
    for a, b in ranges:
        acc = Block(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        while r < len(runs) and start + runs[r][1] <= a:
            start += runs[r][1]
            r += 1
        i, s = r, start
        while i < len(runs) and s < b:
            blk, k = runs[i]
            overlap = min(b, s + k) - max(a, s)
            if overlap > 0:
                _add(acc, blk, overlap)
            s += k
            i += 1
        out.append(acc)
    return out


def tile_sum(runs: list[tuple[Block, int]]) -> Block:
    """A tile's blocks (runs of equal ones) summed once (:func:`_sums` over the whole
    walk of the tile): the term a step that covers the whole tile adds."""
    return _sums(runs, [(0, sum(k for _, k in runs))])[0]


def _total(terms: list[tuple[Block, int]]) -> Block:
    """The sum of ``terms`` (block, multiple), added in order (:func:`_sums`' body)."""
    qk = fs = sm = pv = fo = up = fi = lh = l2 = ls = mk = ph = pl = sb = lv = 0.0
    acts: dict = {}
    for blk, k in terms:
        if k == 1:  # (a tile's sum: x * 1 is x, the product skipped)
            qk += blk.qk_s
            fs += blk.fix_s_s
            sm += blk.softmax_s
            pv += blk.pv_s
            fo += blk.fix_o_s
            up += blk.update_s
            fi += blk.final_s
            lh += blk.load_hbm
            l2 += blk.load_l2
            ls += blk.load_l2_slow
            mk += blk.mask_hbm
            ph += blk.pad_hbm
            pl += blk.pad_l2
            sb += blk.store_bytes
            lv += blk.load_v
            for name, v in blk.actions.items():
                acts[name] = acts.get(name, 0.0) + v
            continue
        qk += blk.qk_s * k
        fs += blk.fix_s_s * k
        sm += blk.softmax_s * k
        pv += blk.pv_s * k
        fo += blk.fix_o_s * k
        up += blk.update_s * k
        fi += blk.final_s * k
        lh += blk.load_hbm * k
        l2 += blk.load_l2 * k
        ls += blk.load_l2_slow * k
        mk += blk.mask_hbm * k
        ph += blk.pad_hbm * k
        pl += blk.pad_l2 * k
        sb += blk.store_bytes * k
        lv += blk.load_v * k
        for name, v in blk.actions.items():
            acts[name] = acts.get(name, 0.0) + v * k
    return Block(qk, fs, sm, pv, fo, up, fi, lh, l2, ls, mk, ph, pl, sb, acts, lv)


def _tile_sums(tiles: list[tuple[list[tuple[Block, int]], Block, int]],
               ranges: list[tuple[int, int]]) -> list[Block]:
    """:func:`_sums` with a tile's blocks as one term: per range [a, b) of the walk's
    blocks, given as ``tiles`` (the tile's runs, their :func:`tile_sum`, its block
    count) in order, a tile wholly inside the range adds its sum once; a tile the
    range cuts adds its overlapping runs as :func:`_sums` does.

    Not the same floats as :func:`_sums` (the terms associate differently): within
    :data:`TILE_SUM_RTOL` of it, field by field (a test holds the bound)."""
    out = []
    r, start = 0, 0  # the tile at the cursor and the index of its first block
    n_tiles = len(tiles)
    for a, b in ranges:
        while r < n_tiles and start + tiles[r][2] <= a:  # tiles wholly before the range
            start += tiles[r][2]
            r += 1
        terms: list[tuple[Block, int]] = []
        i, s = r, start
        while i < n_tiles and s < b:
            runs, whole, n = tiles[i]
            if s >= a and s + n <= b:
                terms.append((whole, 1))
            else:  # the range cuts the tile: its runs that overlap, block counts
                t = s
                for blk, k in runs:
                    overlap = (b if b < t + k else t + k) - (a if a > t else t)
                    if overlap > 0:
                        terms.append((blk, overlap))
                    t += k
            s += n
            i += 1
        out.append(_total(terms))
    return out


# the largest relative difference of a step's field (a time, bytes, an action) between
# _tile_sums and _sums: the floats of a sum of at most a few thousand positive terms
# associated differently (n terms: n * 2**-53 each way at most, about 1e-13 for 1,000);
# held by the tests over many walk shapes
TILE_SUM_RTOL = 1e-12


def emit_cv_pipeline(bld: Builder, blocks: list[Block] | list[tuple[Block, int]] | None, *,
                     core: int, vecs: list[int],
                     preload: int, sync_s: float, store_bw: float,
                     store_hbm_fraction: float = 1.0, deps=(), label: str = "attention",
                     memo: dict | None = None, tiles: list | None = None
                     ) -> tuple[int, ...]:
    """Emit one cube core's walk (``blocks`` in order, or as runs ``(block, count)`` of
    equal ones) with its vector cores ``vecs``; returns the tasks its end waits for.

    ``tiles`` (optional): the same walk as its tiles, (the tile's runs, their
    :func:`tile_sum`, its block count) in order, the runs' concatenation ``blocks``:
    a step then adds a tile it covers as one term (:func:`_tile_sums`).

    ``memo`` (a dict the caller keeps for one op's cores, analytical fidelity only):
    a core whose walk is another's (the same block objects, counts, vector team shape
    and start) replays that walk's record instead of walking again (:class:`_Record`).

    With ``tiles``, an event build (no sink) reads only them: ``blocks`` may then be
    None (a 32K walk's runs, thousands a core, not gathered for nothing)."""
    if not blocks and not tiles:
        return ()
    runs = None if blocks is None else [(b, 1) if isinstance(b, Block) else b for b in blocks]
    chip = bld.chip
    deps = tuple(deps)
    teams = bld.groups(list(vecs))
    if DIRECT_SUMMARY and type(bld.sink) is Accumulator:
        return _walk_summary(bld.sink, chip, runs, teams, vecs, core, preload, sync_s,
                             store_bw, store_hbm_fraction, deps, bld.copies, memo, tiles)
    steps, inner_flags = _walk_steps(runs, preload, sync_s, tiles)
    n = len(steps)
    mte2, cube, fix = chip.aic(core, "mte2"), chip.aic(core, "cube"), chip.aic(core, "fixpipe")
    c_flag = chip.aic(core, "flag")
    load: list[tuple[int, ...]] = [()] * n  # the K loads
    load_v: list[tuple[int, ...]] = [()] * n  # the V loads
    qk = [0] * n
    pv = [0] * n
    sm: list[list[int]] = [[] for _ in range(n)]
    last_cube: list[int] = []
    # the AIVs of the core run the same program on their halves of the rows: one group
    # (their tasks with copies; each has its own lanes, so nothing changes) unless the
    # builder keeps one lane per core
    last_vec: dict[int, list[int]] = {team[0]: [] for team in teams}
    ends: list[int] = []
    # unit names and labels, made once for the walk (hundreds of tasks use them)
    vec_unit = {team[0]: chip.aiv_group(team, "vector") for team in teams}
    vflag_unit = {team[0]: chip.aiv_group(team, "flag") for team in teams}
    lb_load, lb_load_v = f"{label} K load", f"{label} V load"
    lb_qk, lb_pv = f"{label} QK", f"{label} PV"
    lb_out = {w: f"{label} {w} out" for w in ("S", "O")}
    lb_flag = {w: f"{label} flag {w}" for w in ("S", "O")}
    lb_work = {w: f"{label} {w}" for w in ("softmax", "update")}
    lb_flag_p, lb_store = f"{label} flag P", f"{label} O store"

    # (tasks go in through Builder.put: their dependencies cleaned here, durations
    # clamped at 0 as Builder.add clamps them; the same tasks as add would make)
    put = bld.put
    k1 = bld.copies
    labels = bld.sink is None  # (an analytical build reads no label)
    lb_qk = lb_qk if labels else ""
    lb_pv = lb_pv if labels else ""
    lb_flag_p = lb_flag_p if labels else ""
    sync = sync_s if sync_s > 0.0 else 0.0

    hbm_stream_bw, l2_read_bw, hbm_bw = chip.hbm_stream_bw, chip.l2_read_bw, chip.hbm_bw
    lb_mte2 = {(p, m): (f"{lb_load_v if p else lb_load} ({'HBM' if m else 'L2'})"
                        if labels else "") for p in (0, 1) for m in (False, True)}
    lb_hbm = f"{lb_load} (HBM read)" if labels else ""

    def emit_load(s: int, part: int) -> None:
        """Builder.load's two tasks, made here (thousands per op): the MTE2 pipe's, and
        the ``hbm`` unit's for the step's misses, K's and V's together with the K load
        (:func:`split_load`); the V load is its pipe's task alone."""
        st = steps[s]
        hbm, l2b, slow, mask, pad_hbm, pad_l2 = split_load(st, part)
        if part and not (hbm or l2b or slow or pad_hbm or pad_l2):
            return  # no V rows of their own (PV waits for nothing more)
        free = ((pv if part else qk)[s - KV_BUFFERS],) if s >= KV_BUFFERS else ()
        dd = clean_deps((*deps, *free))
        hbm = hbm if hbm > 0.0 else 0.0
        hbm_s = (hbm + (pad_hbm + slow)) / hbm_stream_bw
        l2_s = (l2b + pad_l2) / l2_read_bw
        l2_moved = (l2b if l2b > 0.0 else 0.0) + slow
        memory = hbm_s >= l2_s and hbm_s > 0
        d = hbm_s + l2_s
        pipe = put(mte2, d if d > 0.0 else 0.0,
                   {"l2_read": int(round(l2_moved))} if l2_moved > 0 else None,
                   {"hbm_byte": hbm, "l2_byte": hbm + l2_moved, "l1_byte": hbm + l2_moved}, dd,
                   "memory" if memory else "onchip", lb_mte2[part, memory], k1)
        if part:
            load_v[s] = (pipe,)
            return
        miss = st.load_hbm if st.load_hbm > 0.0 else 0.0  # K's and V's
        if miss <= 0:
            load[s] = (pipe,)
            return
        dram = {"dram_read": int(round(miss))}
        if mask:
            dram["mask_dram_read"] = int(round(mask))
        load[s] = (pipe, put(HBM_UNIT, miss / hbm_bw, dram, None, dd, "memory", lb_hbm, k1))

    def to_vectors(src: int, fix_s: float, what: str, vec_s: float, work: str) -> list[int]:
        """FixPipe writes ``what`` out after the cube task ``src``, a flag tells the
        vector cores, each then runs ``work`` in its program order; their tasks."""
        out = put(fix, fix_s if fix_s > 0.0 else 0.0, None, None, (src,), "onchip",
                  lb_out[what] if labels else "", k1)
        flag = put(c_flag, sync, None, None, (out,), "latency",
                   lb_flag[what] if labels else "", k1)
        tasks = []
        d = vec_s if vec_s > 0.0 else 0.0
        lb = lb_work[work] if labels else ""
        for team in teams:
            before = last_vec[team[0]]
            t = put(vec_unit[team[0]], d, None, None,
                    clean_deps((flag, *before)) if before else (flag,), "compute", lb,
                    len(team))
            tasks.append(t)
            last_vec[team[0]] = [t]
        return tasks

    def emit_qk(s: int) -> None:
        st = steps[s]
        slot = sm[s - preload - 1] if s - preload - 1 >= 0 else []
        d = st.qk_s
        qk[s] = put(cube, d if d > 0.0 else 0.0, None, st.actions or None,
                    clean_deps((*load[s], *last_cube, *slot)), "compute", lb_qk, k1)
        last_cube[:] = [qk[s]]
        sm[s] = to_vectors(qk[s], st.fix_s_s, "S", st.softmax_s + inner_flags[s], "softmax")

    def emit_pv(s: int) -> None:
        st = steps[s]
        flags = []
        for team, t in zip(teams, sm[s]):
            flags.append(put(vflag_unit[team[0]], sync, None, None, (t,), "latency",
                             lb_flag_p, len(team)))
        d = st.pv_s + inner_flags[s]
        pv[s] = put(cube, d if d > 0.0 else 0.0, None, None,
                    clean_deps((*flags, *load_v[s], *last_cube)), "compute", lb_pv, k1)
        last_cube[:] = [pv[s]]
        updates = to_vectors(pv[s], st.fix_o_s, "O", st.update_s + st.final_s, "update")
        if st.store_bytes:  # each AIV stores its rows (its own transfer on the hbm unit)
            for team, t in zip(teams, updates):
                store_rows(team, t, st.store_bytes / n_vecs)

    # Builder.store's tasks for each AIV's rows, made here (the walk's stores share
    # their rates and names): the same tasks, in the same order
    n_vecs = len(vecs)
    st_bw = store_bw / n_vecs
    st_frac = min(1.0, max(0.0, store_hbm_fraction))
    st_hbm_bw, st_l2_bw = min(st_bw, chip.hbm_stream_bw), min(st_bw, chip.l2_write_bw)
    mte3 = {v: chip.aiv(v, "mte3") for v in vecs}
    lb_st = {m: (f"{lb_store} (HBM)" if m else f"{lb_store} (L2)") if labels else ""
             for m in (False, True)}
    lb_st_hbm = f"{lb_store} (HBM write)" if labels else ""

    def store_rows(team: list[int], t: int, nbytes: float) -> None:
        """:meth:`Builder.store` of ``nbytes`` by each AIV of ``team`` after task ``t``."""
        hbm = float(nbytes) * st_frac
        l2b = float(nbytes) - hbm
        hbm_s = hbm / st_hbm_bw
        l2_s = l2b / st_l2_bw
        memory = hbm_s >= l2_s and hbm_s > 0
        d = hbm_s + l2_s
        d = d if d > 0.0 else 0.0
        bound, lb = "memory" if memory else "onchip", lb_st[memory]
        l2_int = int(round(l2b)) if l2b > 0 else 0
        dw = hbm / hbm_bw
        dw = dw if dw > 0.0 else 0.0
        hbm_int = int(round(hbm))
        dd = (t,)
        for v in team:
            ends.append(put(mte3[v], d, {"l2_write": l2_int} if l2b > 0 else None,
                            {"ub_byte": nbytes, "l2_byte": nbytes, "hbm_byte": hbm}, dd, bound,
                            lb, k1))
            if not hbm <= 0:
                ends.append(put(HBM_UNIT, dw, {"dram_write": hbm_int}, None, dd, "memory",
                                lb_st_hbm, k1))

    program_order(n, preload, emit_load, emit_qk, emit_pv)
    return tuple(ends) + tuple(t for team in teams for t in last_vec[team[0]])


def _walk_steps(runs: list[tuple[Block, int]], preload: int, sync_s: float,
                tiles: list | None = None) -> tuple[list[Block], list[float]]:
    """The walk's steps (:func:`_steps`, each the sum of its blocks: by tile with
    ``tiles``) and the flag waits inside a step of several blocks when the cube does
    not run ahead."""
    # (with ``tiles`` the same count: their runs are the walk's, in order)
    ranges = _steps(sum([t[2] for t in tiles]) if tiles is not None else
                    sum(k for _, k in runs))
    sums = _tile_sums(tiles, ranges) if tiles is not None else _sums(runs, ranges)
    return sums, [(b - a - 1) * sync_s if preload == 0 else 0.0
                                 for a, b in ranges]


DIRECT_SUMMARY = True  # False: an analytical walk goes through Builder.put (the tests' reference)


def _walk_summary(acc: Accumulator, chip, runs: list[tuple[Block, int]],
                  teams: list[list[int]], vecs: list[int], core: int, preload: int,
                  sync_s: float, store_bw: float, store_hbm_fraction: float, deps: tuple,
                  k1: int, memo: dict | None = None, tiles: list | None = None
                  ) -> tuple[int, ...]:
    """The analytical fidelity's walk: what :func:`emit_cv_pipeline` hands the
    accumulator through :meth:`Builder.put` (its ``load``, ``store`` and hand-offs),
    added here directly, task by task in the same order: the same bytes, actions,
    finish times and unit sums, the same floats (a test holds the two equal), without
    a call and a dependency tuple per task. Returns the same task indices.

    With ``memo``, the walk is recorded (:class:`_Record`) under what it depends on,
    and a later core with the same key replays the record."""
    finish = acc.finish
    append = finish.append
    busy = acc.busy
    nbytes, actions = acc.nbytes, acc.actions
    off = acc.count - len(finish)  # (0: the accumulator appends one finish per task)
    hbm_stream_bw, l2_read_bw, hbm_bw = chip.hbm_stream_bw, chip.l2_read_bw, chip.hbm_bw
    l2_write_bw = chip.l2_write_bw
    # the walk's units by position, in an order that depends only on the team shape:
    # the cube core's pipes, the HBM, per team its vector and flag lanes, per AIV its MTE3
    units = [chip.aic(core, "mte2"), chip.aic(core, "cube"), chip.aic(core, "fixpipe"),
             chip.aic(core, "flag"), HBM_UNIT]
    for team in teams:
        units += [chip.aiv_group(team, "vector"), chip.aiv_group(team, "flag")]
    for team in teams:
        units += [chip.aiv(v, "mte3") for v in team]
    start0 = after_of(finish, deps)
    key = None
    if memo is not None:
        key = (tuple((id(b), k) for b, k in runs), preload, sync_s, store_bw,
               store_hbm_fraction, start0, k1, tuple(len(t) for t in teams), len(vecs),
               tuple(id(t[1]) for t in tiles) if tiles is not None else None)
        rec = memo.get(key)
        if rec is not None and all(b is r for (b, _), (r, _) in zip(runs, rec.runs)):
            return rec.replay(acc, units)
    log: list | None = [] if key is not None else None  # (unit or dict, key, value)
    steps, inner_flags = _walk_steps(runs, preload, sync_s, tiles)
    if key is None and LEAN_WALK:
        got = _walk_lean(acc, chip, steps, inner_flags, teams, units, preload, sync_s,
                         store_bw, store_hbm_fraction, start0, k1)
        if got is not None:
            return got
    first = len(finish)
    entries: list = [None] * len(units)

    def entry(i: int) -> list:
        e = entries[i]
        if e is None:
            e = busy.get(units[i])
            if e is None:
                e = busy[units[i]] = [0.0, {}]
            entries[i] = e
        return e

    def add(dct: dict, items, k: int, zero) -> None:  # Accumulator.add's sums of bytes/actions
        if k == 1:
            for key, v in items:
                dct[key] = dct.get(key, zero) + v
                if log is not None:
                    log.append((dct is nbytes, key, v))
        else:
            for key, v in items:
                dct[key] = dct.get(key, zero) + v * k
                if log is not None:
                    log.append((dct is nbytes, key, v * k))

    def task(i: int, d: float, start: float, bound: str, seconds: float) -> float:
        """One task on the walk's unit ``i``; returns its finish."""
        f = start + d
        append(f)
        e = entries[i] or entry(i)
        e[0] += seconds
        by = e[1]
        by[bound] = by.get(bound, 0.0) + seconds
        if log is not None:
            log.append((i, bound, seconds))
        return f

    hbm_serial = k1 > 1  # a member's share on the shared hbm unit (Builder.put)
    sync = sync_s if sync_s > 0.0 else 0.0
    n = len(steps)
    names = {team[0]: (5 + 2 * j, 6 + 2 * j) for j, team in enumerate(teams)}
    load_f = [0.0] * n  # the K loads' latest finish
    loadv_f = [0.0] * n  # the V loads'
    qk_f = [0.0] * n
    pv_f = [0.0] * n
    sm: list[list[tuple[int, float]]] = [[] for _ in range(n)]  # (index, finish) per team
    last_cube_f = None  # finish of the cube's last task (None: none yet)
    last_vec: dict[int, float | None] = {team[0]: None for team in teams}
    last_vec_i: dict[int, int] = {}
    ends: list[int] = []

    def emit_load(s: int, part: int) -> None:
        st = steps[s]
        lh, ll, slow, mask, pad_hbm, pad_l2 = split_load(st, part)
        if part and not (lh or ll or slow or pad_hbm or pad_l2):
            return
        start = start0
        if s >= KV_BUFFERS:
            fr = (pv_f if part else qk_f)[s - KV_BUFFERS]
            if fr > start:
                start = fr
        out = loadv_f if part else load_f
        hbm_bytes = max(0.0, lh)
        hbm_s = (hbm_bytes + (pad_hbm + slow)) / hbm_stream_bw
        l2_s = (ll + pad_l2) / l2_read_bw
        l2_bytes = max(0.0, ll) + slow
        if l2_bytes > 0:
            add(nbytes, (("l2_read", int(round(l2_bytes))),), k1, 0)
        memory = hbm_s >= l2_s and hbm_s > 0
        d = hbm_s + l2_s
        d = d if d > 0.0 else 0.0
        moved = hbm_bytes + l2_bytes
        add(actions, (("hbm_byte", hbm_bytes), ("l2_byte", moved), ("l1_byte", moved)), k1,
            0.0)
        f = task(0, d, start, "memory" if memory else "onchip", d)
        miss = st.load_hbm if st.load_hbm > 0.0 else 0.0  # K's and V's, with the K load
        if part or miss <= 0:
            out[s] = f
            return
        dram = [("dram_read", int(round(miss)))]
        if mask:
            dram.append(("mask_dram_read", int(round(mask))))
        add(nbytes, dram, k1, 0)
        d = miss / hbm_bw
        f2 = task(4, d, start, "memory", d * k1 if hbm_serial else d)
        out[s] = f if f > f2 else f2

    def to_vectors(src_f: float, fix_s: float, vec_s: float) -> list[tuple[int, float]]:
        f = task(2, fix_s if fix_s > 0.0 else 0.0, src_f if src_f > 0.0 else 0.0,
                 "onchip", fix_s if fix_s > 0.0 else 0.0)
        flag_f = task(3, sync, f if f > 0.0 else 0.0, "latency", sync)
        d = vec_s if vec_s > 0.0 else 0.0
        out = []
        for team in teams:
            lead = team[0]
            start = flag_f if flag_f > 0.0 else 0.0
            before = last_vec[lead]
            if before is not None and before > start:
                start = before
            tf = task(names[lead][0], d, start, "compute", d)
            last_vec[lead] = tf
            last_vec_i[lead] = off + len(finish) - 1
            out.append((off + len(finish) - 1, tf))
        return out

    def emit_qk(s: int) -> None:
        nonlocal last_cube_f
        st = steps[s]
        start = load_f[s] if load_f[s] > 0.0 else 0.0
        if last_cube_f is not None and last_cube_f > start:
            start = last_cube_f
        if s - preload - 1 >= 0:
            for _, f in sm[s - preload - 1]:
                if f > start:
                    start = f
        if st.actions:
            add(actions, st.actions.items(), k1, 0.0)
        d = st.qk_s if st.qk_s > 0.0 else 0.0
        f = task(1, d, start, "compute", d)
        last_cube_f = f
        qk_f[s] = f
        sm[s] = to_vectors(f, st.fix_s_s, st.softmax_s + inner_flags[s])

    def emit_pv(s: int) -> None:
        nonlocal last_cube_f
        st = steps[s]
        start = loadv_f[s] if loadv_f[s] > 0.0 else 0.0
        for team, (_, tf) in zip(teams, sm[s]):
            lead = team[0]
            ff = task(names[lead][1], sync, tf if tf > 0.0 else 0.0, "latency", sync)
            if ff > start:
                start = ff
        if last_cube_f is not None and last_cube_f > start:
            start = last_cube_f
        d = st.pv_s + inner_flags[s]
        d = d if d > 0.0 else 0.0
        f = task(1, d, start, "compute", d)
        last_cube_f = f
        pv_f[s] = f
        updates = to_vectors(f, st.fix_o_s, st.update_s + st.final_s)
        if st.store_bytes:  # each AIV stores its rows (Builder.store)
            store(st.store_bytes / n_vecs, updates)

    # the AIVs' stores: Builder.store's numbers, the same for each AIV of a step, made
    # once per step (the unit names once per walk)
    n_vecs = len(vecs)
    mte3 = {v: 5 + 2 * len(teams) + j for j, v in enumerate(v for team in teams for v in team)}
    unit_bw = store_bw / n_vecs
    frac = min(1.0, max(0.0, store_hbm_fraction))
    hbm_rate, l2_rate = min(unit_bw, hbm_stream_bw), min(unit_bw, l2_write_bw)

    def store(nb: float, updates) -> None:
        hbm, l2b, d, memory = store_split(nb, frac, hbm_rate, l2_rate)
        written = (("l2_write", int(round(l2b))),) if l2b > 0 else ()
        moved = (("ub_byte", nb), ("l2_byte", nb), ("hbm_byte", hbm))
        bound = "memory" if memory else "onchip"
        dram = (("dram_write", int(round(hbm))),)
        d_hbm = hbm / hbm_bw
        d_hbm = d_hbm if d_hbm > 0.0 else 0.0
        s_hbm = d_hbm * k1 if hbm_serial else d_hbm
        for team, (_, tf) in zip(teams, updates):
            start = tf if tf > 0.0 else 0.0
            for v in team:
                if written:
                    add(nbytes, written, k1, 0)
                add(actions, moved, k1, 0.0)
                task(mte3[v], d, start, bound, d)
                ends.append(off + len(finish) - 1)
                if hbm <= 0:
                    continue
                add(nbytes, dram, k1, 0)
                task(4, d_hbm, start, "memory", s_hbm)
                ends.append(off + len(finish) - 1)

    program_order(n, preload, emit_load, emit_qk, emit_pv)
    acc.count = off + len(finish)
    out = tuple(ends) + tuple(last_vec_i[team[0]] for team in teams if team[0] in last_vec_i)
    if key is not None:
        base = off + first
        memo[key] = _Record(runs, log, finish[first:], tuple(j - base for j in out))
    return out


LEAN_WALK = True  # False: every analytical walk task by task (_walk_summary; the tests' reference)


def _walk_lean(acc: Accumulator, chip, steps: list[Block], inner_flags: list[float],
               teams: list[list[int]], units: list[str], preload: int, sync_s: float,
               store_bw: float, store_hbm_fraction: float, start0: float, k1: int
               ) -> tuple[int, ...] | None:
    """:func:`_walk_summary`'s walk with its sums kept in locals and added to the
    accumulator once, at the end: the same tasks, finishes and returned tasks, every
    sum (a unit's busy time and its time per bound, a byte or action count) the same
    sequence of terms from the same start, so the same floats (a test holds the two
    equal on random walks).

    Where that would not hold it returns None, having changed nothing, and the caller
    walks task by task: more than one vector team (the ungrouped reference build),
    two of the walk's units one lane (a 910A core's flags), the ``hbm`` unit not yet
    in the accumulator, or a byte or action key the accumulator lacks (a key's place
    in its dict is where the walk first adds to it; the op's first walk puts them
    there). A unit of the core met for the first time enters the busy dict in the
    order the walk first meets it, the same for every walk: the MTE2, the cube, the
    FixPipe, the cube's flag, the AIVs' vector lane, their flag, their MTE3s."""
    if len(teams) != 1 or len(set(units)) != len(units):
        return None
    busy, actions, nbytes = acc.busy, acc.actions, acc.nbytes
    e_hbm = busy.get(HBM_UNIT)
    if e_hbm is None:
        return None
    n = len(steps)
    tn = len(teams[0])
    any_store = False
    keys = {"hbm_byte", "l2_byte", "l1_byte"}
    for st in steps:
        if st.actions:
            keys.update(st.actions)
        if st.store_bytes:
            any_store = True
    if any_store:
        keys.add("ub_byte")
    la = {}
    for key in keys:
        v = actions.get(key)
        if v is None:
            return None
        la[key] = v
    hbm_stream_bw, l2_read_bw, hbm_bw = chip.hbm_stream_bw, chip.l2_read_bw, chip.hbm_bw
    hbm_serial = k1 > 1
    one = k1 == 1
    sync = sync_s if sync_s > 0.0 else 0.0

    def entry(i: int) -> tuple[float, dict]:
        e = busy.get(units[i])
        return (e[0], e[1]) if e is not None else (0.0, {})

    # the units' sums from where they stand: total and per bound
    m2_t, m2_by = entry(0)
    m2_mem, m2_onc = m2_by.get("memory", 0.0), m2_by.get("onchip", 0.0)
    m2_first = None  # the MTE2's bound first used (its key's place, if new)
    m2_used_mem = m2_used_onc = False
    cu_t, by = entry(1)
    cu_b = by.get("compute", 0.0)
    fx_t, by = entry(2)
    fx_b = by.get("onchip", 0.0)
    cf_t, by = entry(3)
    cf_b = by.get("latency", 0.0)
    hb_t, hb_b = e_hbm[0], e_hbm[1].get("memory", 0.0)
    hb_used = False
    vc_t, by = entry(5)
    vc_b = by.get("compute", 0.0)
    vf_t, by = entry(6)
    vf_b = by.get("latency", 0.0)
    m3 = []  # per AIV of the team: [total, memory, onchip]
    for j in range(tn):
        t, by = entry(7 + j)
        m3.append([t, by.get("memory", 0.0), by.get("onchip", 0.0)])
    m3_first = None
    m3_used_mem = m3_used_onc = False
    nb_l2r = nb_dr = nb_mdr = nb_l2w = nb_dw = 0  # whole bytes: any order, times k1 at the end
    used_l2r = used_dr = used_mdr = used_l2w = used_dw = False

    # the AIVs' stores (Builder.store's numbers, as _walk_summary makes them)
    n_vecs = tn
    frac = min(1.0, max(0.0, store_hbm_fraction))
    unit_bw = store_bw / n_vecs
    hbm_rate, l2_rate = min(unit_bw, hbm_stream_bw), min(unit_bw, chip.l2_write_bw)

    base = acc.count
    fl: list[float] = []
    ap = fl.append
    load_f = [0.0] * n
    loadv_f = [0.0] * n
    qk_f = [0.0] * n
    pv_f = [0.0] * n
    sm_f = [0.0] * n  # the team's softmax finish per step
    last_cube_f = None
    last_vec = None
    last_vec_i = -1
    ends: list[int] = []
    order = [(False, s) for s in range(min(n, preload))]  # program_order: (PV side?, step)
    for s in range(n):
        if s + preload < n:
            order.append((False, s + preload))
        order.append((True, s))
    for pv_side, s in order:
        st = steps[s]
        lh, ll, slow, mask, pad_hbm, pad_l2 = split_load(st, 1 if pv_side else 0)
        if not pv_side or lh or ll or slow or pad_hbm or pad_l2:
            # the K (V) load: the MTE2's task, and with the K load the hbm unit's
            start = start0
            if s >= KV_BUFFERS:
                fr = (pv_f if pv_side else qk_f)[s - KV_BUFFERS]
                if fr > start:
                    start = fr
            hbm_bytes = lh if lh > 0.0 else 0.0
            hbm_s = (hbm_bytes + (pad_hbm + slow)) / hbm_stream_bw
            l2_s = (ll + pad_l2) / l2_read_bw
            l2_bytes = (ll if ll > 0.0 else 0.0) + slow
            if l2_bytes > 0:
                nb_l2r += int(round(l2_bytes))
                used_l2r = True
            d = hbm_s + l2_s
            d = d if d > 0.0 else 0.0
            moved = hbm_bytes + l2_bytes
            if one:
                la["hbm_byte"] += hbm_bytes
                la["l2_byte"] += moved
                la["l1_byte"] += moved
            else:
                la["hbm_byte"] += hbm_bytes * k1
                la["l2_byte"] += moved * k1
                la["l1_byte"] += moved * k1
            f = start + d
            ap(f)
            m2_t += d
            if hbm_s >= l2_s and hbm_s > 0:
                m2_mem += d
                m2_used_mem = True
                if m2_first is None:
                    m2_first = "memory"
            else:
                m2_onc += d
                m2_used_onc = True
                if m2_first is None:
                    m2_first = "onchip"
            miss = st.load_hbm if st.load_hbm > 0.0 else 0.0
            if pv_side or miss <= 0:
                (loadv_f if pv_side else load_f)[s] = f
            else:
                nb_dr += int(round(miss))
                used_dr = True
                if mask:
                    nb_mdr += int(round(mask))
                    used_mdr = True
                d = miss / hbm_bw
                f2 = start + d
                ap(f2)
                sec = d * k1 if hbm_serial else d
                hb_t += sec
                hb_b += sec
                hb_used = True
                load_f[s] = f if f > f2 else f2
        if pv_side:  # PV after the flags of the softmax
            lf = loadv_f[s]
            start = lf if lf > 0.0 else 0.0
            tf = sm_f[s]
            ff = (tf if tf > 0.0 else 0.0) + sync
            ap(ff)
            vf_t += sync
            vf_b += sync
            if ff > start:
                start = ff
            if last_cube_f is not None and last_cube_f > start:
                start = last_cube_f
            d = st.pv_s + inner_flags[s]
            fix_d, vec_d = st.fix_o_s, st.update_s + st.final_s
        else:  # QK after its K load, the cube's last task and the slot's softmax
            lf = load_f[s]
            start = lf if lf > 0.0 else 0.0
            if last_cube_f is not None and last_cube_f > start:
                start = last_cube_f
            if s - preload - 1 >= 0:
                f = sm_f[s - preload - 1]
                if f > start:
                    start = f
            if st.actions:
                if one:
                    for name, v in st.actions.items():
                        la[name] += v
                else:
                    for name, v in st.actions.items():
                        la[name] += v * k1
            d = st.qk_s
            fix_d, vec_d = st.fix_s_s, st.softmax_s + inner_flags[s]
        d = d if d > 0.0 else 0.0
        f = start + d
        ap(f)
        cu_t += d
        cu_b += d
        last_cube_f = f
        (pv_f if pv_side else qk_f)[s] = f
        # to_vectors: FixPipe out, the flag, the team's vector work
        fix_d = fix_d if fix_d > 0.0 else 0.0
        f = (f if f > 0.0 else 0.0) + fix_d
        ap(f)
        fx_t += fix_d
        fx_b += fix_d
        f = (f if f > 0.0 else 0.0) + sync
        ap(f)
        cf_t += sync
        cf_b += sync
        vec_d = vec_d if vec_d > 0.0 else 0.0
        start = f if f > 0.0 else 0.0
        if last_vec is not None and last_vec > start:
            start = last_vec
        tf = start + vec_d
        ap(tf)
        vc_t += vec_d
        vc_b += vec_d
        last_vec = tf
        last_vec_i = base + len(fl) - 1
        if not pv_side:
            sm_f[s] = tf
            continue
        if not st.store_bytes:
            continue
        # each AIV stores its rows (Builder.store)
        nb = st.store_bytes / n_vecs
        hbm, l2b, d, memory = store_split(nb, frac, hbm_rate, l2_rate)
        d_hbm = hbm / hbm_bw
        d_hbm = d_hbm if d_hbm > 0.0 else 0.0
        s_hbm = d_hbm * k1 if hbm_serial else d_hbm
        start = tf if tf > 0.0 else 0.0
        fin = start + d
        fin_hbm = start + d_hbm
        if memory:
            m3_used_mem = True
            if m3_first is None:
                m3_first = "memory"
        else:
            m3_used_onc = True
            if m3_first is None:
                m3_first = "onchip"
        a_ub, a_hbm = (nb, hbm) if one else (nb * k1, hbm * k1)
        for acc3 in m3:
            if l2b > 0:
                nb_l2w += int(round(l2b))
                used_l2w = True
            la["ub_byte"] += a_ub
            la["l2_byte"] += a_ub
            la["hbm_byte"] += a_hbm
            ap(fin)
            ends.append(base + len(fl) - 1)
            acc3[0] += d
            if memory:
                acc3[1] += d
            else:
                acc3[2] += d
            if hbm <= 0:
                continue
            nb_dw += int(round(hbm))
            used_dw = True
            ap(fin_hbm)
            ends.append(base + len(fl) - 1)
            hb_t += s_hbm
            hb_b += s_hbm
            hb_used = True
    # ---- the sums into the accumulator (nothing changed before this point)
    new_bytes = [(k, v) for k, v, u in (
        ("l2_read", nb_l2r, used_l2r), ("dram_read", nb_dr, used_dr),
        ("mask_dram_read", nb_mdr, used_mdr), ("l2_write", nb_l2w, used_l2w),
        ("dram_write", nb_dw, used_dw)) if u]
    for k, _ in new_bytes:
        if k not in nbytes:
            return None
    for k, v in new_bytes:
        nbytes[k] += v if one else v * k1
    actions.update(la)

    def commit(i: int, total: float, bounds) -> None:
        e = busy.get(units[i])
        if e is None:
            e = busy[units[i]] = [0.0, {}]
        e[0] = total
        by = e[1]
        for b, v in bounds:
            by[b] = v

    def two(first, used_mem, used_onc, mem, onc):  # a unit's bounds in first-use order
        pair = [("memory", mem)] if used_mem else []
        if used_onc:
            pair.insert(0 if first == "onchip" else len(pair), ("onchip", onc))
        return pair

    commit(0, m2_t, two(m2_first, m2_used_mem, m2_used_onc, m2_mem, m2_onc))
    commit(1, cu_t, (("compute", cu_b),))
    commit(2, fx_t, (("onchip", fx_b),))
    commit(3, cf_t, (("latency", cf_b),))
    commit(5, vc_t, (("compute", vc_b),))
    commit(6, vf_t, (("latency", vf_b),))
    if hb_used:
        e_hbm[0] = hb_t
        e_hbm[1]["memory"] = hb_b
    if any_store:
        bounds = two(m3_first, m3_used_mem, m3_used_onc, 0.0, 0.0)
        for j, (t, mem, onc) in enumerate(m3):
            commit(7 + j, t, [(b, mem if b == "memory" else onc) for b, _ in bounds])
    acc.finish.extend(fl)
    acc.count = base + len(fl)
    return (*ends, last_vec_i)


def after_of(finish: list[float], idxs) -> float:
    """The start of a task waiting for the tasks ``idxs`` (their latest finish, 0 if none)."""
    start = 0.0
    for j in idxs:
        f = finish[j]
        if f > start:
            start = f
    return start


class _Record:
    """One analytical walk as the accumulator saw it, to replay on another core.

    The 24 cube cores of a 910B often walk the same blocks (a BERT point's heads and
    query tiles dealt evenly): their walks differ only in the units' names, so a
    walk's effect is recorded once, in order: each unit's busy time (a unit by its
    position in the walk's list, whose order depends only on the team shape), each
    byte and action sum, the finish times (the same, as the start is), the returned
    tasks relative to the walk's first. Each sum is kept as its own sequence of terms
    (a unit's busy time, its time per bound, a byte or action count), the sums in the
    order the walk first met them: :meth:`replay` adds each sequence in its order,
    one term at a time, so every sum is the same float as a fresh walk's and every
    unit and key enters its dict where the walk's would (a test holds the two
    equal); sums apart do not depend on each other's order."""

    __slots__ = ("runs", "log", "units", "nbytes", "actions", "finishes", "rel")

    def __init__(self, runs, log, finishes, rel):
        self.runs = runs  # (held: the memo's key names the blocks by id)
        self.log, self.finishes, self.rel = log, finishes, rel
        self.units = None  # the sums' terms, made on the first replay (most walks have none)

    def _terms(self) -> None:
        """The log (task and sum order) as each sum's terms, sums in first-use order."""
        units: dict[int, tuple[list, dict]] = {}
        sums: dict[bool, dict] = {True: {}, False: {}}
        for i, key, v in self.log:
            if i is True or i is False:
                sums[i].setdefault(key, []).append(v)
            else:
                u = units.get(i)
                if u is None:
                    u = units[i] = ([], {})
                u[0].append(v)
                u[1].setdefault(key, []).append(v)
        self.units = [(i, terms, list(by.items())) for i, (terms, by) in units.items()]
        self.nbytes, self.actions = list(sums[True].items()), list(sums[False].items())
        self.log = None

    def replay(self, acc: Accumulator, units: list[str]) -> tuple[int, ...]:
        if self.units is None:
            self._terms()
        busy, nbytes, actions = acc.busy, acc.nbytes, acc.actions
        for key, terms in self.nbytes:
            t = nbytes.get(key, 0)
            for v in terms:
                t = t + v
            nbytes[key] = t
        for key, terms in self.actions:
            t = actions.get(key, 0.0)
            for v in terms:
                t = t + v
            actions[key] = t
        for i, terms, by_bound in self.units:
            e = busy.get(units[i])
            if e is None:
                e = busy[units[i]] = [0.0, {}]
            t = e[0]
            for v in terms:
                t += v
            e[0] = t
            by = e[1]
            for bound, bterms in by_bound:
                t = by.get(bound, 0.0)
                for v in bterms:
                    t += v
                by[bound] = t
        finish = acc.finish
        base = acc.count
        finish.extend(self.finishes)
        acc.count = base + len(self.finishes)
        return tuple(base + j for j in self.rel)
