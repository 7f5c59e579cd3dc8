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

**The analytical fidelity makes no task of a walk.** It reads only what the tasks
add up to: bytes, actions, each unit's busy time per bound, the task count and the
critical path. :func:`_walk_sums` takes them from the same steps: per step the
numbers the tasks would carry, summed per unit (the same byte integers and count;
sums and actions within :data:`ANALYTICAL_RTOL`, the terms associated differently),
and the critical path as each stage's end step by step, the walk's dependencies
without a task (a lower bound of the event schedule: the proof is there). A fused
attention adds its blocks' actions once per op, each distinct tile's sum times the
walks that run it (:func:`add_tile_actions`).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from itertools import accumulate
from operator import attrgetter, itemgetter

from hwsim.engine import Accumulator, compiled

from .chip import _NO_BYTES, HBM_UNIT, Builder, clean_deps
from .pipeline import store_split

# The analytical walk's numbers in C (hwsim/accelerators/ascend/_cwalk.c, built by an
# install; docs/architecture.md, "The analytical attention walk has an optional compiled
# core") where it is built and not switched off by the environment's HWSIM_PURE_PYTHON=1;
# False: the Python walk (_step_fields, _walk_numbers), the reference, always. The
# numbers are the same either way, to the last bit.
_cwalk = compiled.optional("hwsim.accelerators.ascend._cwalk", 1)
COMPILED = _cwalk is not None and not compiled.PURE_PYTHON
# _WalkSums.add_to's C twin where the build has it (a build from before has not: Python's)
_C_ADD_TO = getattr(_cwalk, "add_to", None)

MAX_STEPS = 16  # steps per core at most (tasks per core about 10 x this)
EDGE_STEPS = 2  # blocks alone at each end of a core's walk (pipeline fill and drain)


@dataclass(slots=True)
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
    """Ranges of a core's ``n`` blocks: the edges alone, the middle in equal groups
    (made once per ``n`` and shared: the callers only read them)."""
    key = (n, MAX_STEPS, EDGE_STEPS)  # (the constants too: a study may set them)
    got = _STEPS.get(key)
    if got is None:
        if len(_STEPS) > 10_000:  # (bounded)
            _STEPS.clear()
        got = _STEPS[key] = _make_steps(n)
    return got


_STEPS: dict[tuple[int, int, int], list[tuple[int, int]]] = {}


def _make_steps(n: int) -> list[tuple[int, int]]:
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
    walk of the tile): the term a step that covers the whole tile adds. The range
    covers every run whole, so :func:`_sums` adds each run's products in order, as
    :func:`_total` does without the range's bookkeeping (the same floats: ``x * 1`` is
    ``x``; a test holds the two equal)."""
    return _total(runs)


def _total(terms: list[tuple[Block, int]], with_actions: bool = True) -> Block:
    """The sum of ``terms`` (block, multiple), added in order (:func:`_sums`' body);
    ``with_actions=False`` leaves the actions out (an empty dict), the other fields the
    same floats."""
    return Block(*_total_fields(terms, with_actions))


# a Block's fields in the order its constructor takes them (what _total_fields returns)
_FIELDS = attrgetter("qk_s", "fix_s_s", "softmax_s", "pv_s", "fix_o_s", "update_s", "final_s",
                     "load_hbm", "load_l2", "load_l2_slow", "mask_hbm", "pad_hbm", "pad_l2",
                     "store_bytes", "actions", "load_v")


def _total_fields(terms: list[tuple[Block, int]], with_actions: bool = True) -> tuple:
    """:func:`_total` as a tuple of the :class:`Block`'s fields in its constructor's
    order (the analytical walk reads them so, no :class:`Block` made per step)."""
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
            if with_actions:
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
        if with_actions:
            for name, v in blk.actions.items():
                acts[name] = acts.get(name, 0.0) + v * k
    return (qk, fs, sm, pv, fo, up, fi, lh, l2, ls, mk, ph, pl, sb, acts, lv)


def _tile_sums(tiles: list[tuple[list[tuple[Block, int]], Block, int]],
               ranges: list[tuple[int, int]], with_actions: bool = True) -> list[Block]:
    """:func:`_sums` with a tile's blocks as one term: per range [a, b) of the walk's
    blocks, given as ``tiles`` (the tile's runs, their :func:`tile_sum`, its block
    count) in order, a tile wholly inside the range adds its sum once; a tile the
    range cuts adds its overlapping runs as :func:`_sums` does.

    Not the same floats as :func:`_sums` (the terms associate differently): within
    :data:`TILE_SUM_RTOL` of it, field by field (a test holds the bound).
    ``with_actions=False``: the steps without their actions (:func:`_total`)."""
    return [_total(terms, with_actions) for terms in _step_terms(tiles, ranges)]


def _step_terms(tiles: list[tuple[list[tuple[Block, int]], Block, int]],
                ranges: list[tuple[int, int]]) -> list[list[tuple[Block, int]]]:
    """Per range of :func:`_tile_sums`, its terms in order: (a tile's sum, 1) for a
    tile wholly inside it, (a block, its overlap) for each run of a tile it cuts."""
    out = []
    r, start = 0, 0  # the tile at the cursor and the index of its first block
    n_tiles = len(tiles)
    for a, b in ranges:
        while r < n_tiles and start + tiles[r][2] <= a:  # tiles wholly before the range
            start += tiles[r][2]
            r += 1
        out.append(_range_terms(tiles, r, start, a, b))
    return out


def _range_terms(tiles: list[tuple[list[tuple[Block, int]], Block, int]], r: int,
                 start: int, a: int, b: int) -> list[tuple[Block, int]]:
    """The terms of range [a, b) (:func:`_step_terms`), its first tile ``tiles[r]``,
    whose first block is the walk's ``start``-th."""
    terms: list[tuple[Block, int]] = []
    i, s = r, start
    n_tiles = len(tiles)
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
    return terms


class StepSums:
    """An op's step sums for :func:`_memo_tile_sums`: ``sums`` (key -> (the step's
    :class:`Block`, the tiles its key names)), and the steps looked up and found so far.
    Only the speed depends on whether they are looked up (the same floats either way):
    :meth:`worth` stops the lookups for the rest of the op when few were found in its
    first walks (a key costs about a third of the sum it saves: the Llama-2-7B
    distinct-layer prefill's attentions find 2-17 % of their first 64 steps and 30 % of
    all, the Llama-3.1-70B 32K flash prefill's 25-70 % and 69 %)."""

    __slots__ = ("sums", "steps", "found")

    PROBE_STEPS = 64  # the steps looked up before the share found decides
    MIN_FOUND = 0.2  # the share found below which the lookups stop

    def __init__(self) -> None:
        self.sums: dict = {}
        self.steps = self.found = 0

    def worth(self) -> bool:
        """Whether the op's next walk looks its steps up."""
        return self.steps < self.PROBE_STEPS or self.found >= self.MIN_FOUND * self.steps


def _memo_tile_sums(tiles: list[tuple[list[tuple[Block, int]], Block, int]],
                    ranges: list[tuple[int, int]], memo: StepSums) -> list[Block]:
    """:func:`_tile_sums` with each step's sum kept in ``memo`` (:class:`StepSums`, one
    for an op's walks) and looked up by what its terms are made of: the tiles the
    step touches, in order and by identity (so ``memo`` holds the tiles it names), and
    how far it cuts into the first and the last of them (only those can be cut). The
    same key is the same terms in the same order (:func:`_range_terms` reads nothing
    else), so the same floats; a step of one core's walk that another core's covers
    alike (the op's tiles dealt to the cores in the same order head after head: 69 %
    of a 32K flash prefill's steps) is summed once. The steps found share their
    :class:`Block` (the walk's tasks only read it)."""
    out = []
    ids = list(map(id, tiles))
    ends = list(accumulate([t[2] for t in tiles]))  # each tile's end (block index)
    sums = memo.sums
    get = sums.get
    made = len(sums)
    for a, b in ranges:
        r = bisect_right(ends, a)  # the first tile that ends after a
        i = bisect_left(ends, b) + 1  # past the first tile that ends at b or later
        start = ends[r - 1] if r else 0
        key = (a - start, ends[i - 1] - b, *ids[r:i])
        got = get(key)
        if got is None:
            got = sums[key] = (_total(_range_terms(tiles, r, start, a, b)), tiles[r:i])
        out.append(got[0])
    memo.steps += len(ranges)
    memo.found += len(ranges) - (len(sums) - made)
    return out


def _step_fields(tiles: list[tuple[list[tuple[Block, int]], Block, int]],
                 ranges: list[tuple[int, int]]) -> list[tuple]:
    """``[_total_fields(terms, False) for terms in _step_terms(tiles, ranges)]`` with
    the terms added as they are found (no list of terms per step, no call per step),
    the actions None: the analytical walk's steps (:func:`_walk_sums`, whose caller
    adds the actions by tile). The same terms in the same order, so the same floats (a
    test holds the two equal)."""
    out = []
    r, start = 0, 0  # the tile at the cursor and the index of its first block
    n_tiles = len(tiles)
    one = ((None, 1),)
    for a, b in ranges:
        while r < n_tiles and start + tiles[r][2] <= a:  # tiles wholly before the range
            start += tiles[r][2]
            r += 1
        qk = fs = sm = pv = fo = up = fi = lh = l2 = ls = mk = ph = pl = sb = lv = 0.0
        i, s = r, start
        while i < n_tiles and s < b:
            runs, whole, n = tiles[i]
            if s >= a and s + n <= b:  # the tile's sum, one term
                terms = one
            else:  # the range cuts the tile: its runs that overlap, block counts
                terms = []
                t = s
                for blk, k in runs:
                    overlap = (b if b < t + k else t + k) - (a if a > t else t)
                    if overlap > 0:
                        terms.append((blk, overlap))
                    t += k
            for blk, k in terms:
                if blk is None:
                    blk = whole
                if k == 1:  # (x * 1 is x: the product skipped, as _total_fields skips it)
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
            s += n
            i += 1
        out.append((qk, fs, sm, pv, fo, up, fi, lh, l2, ls, mk, ph, pl, sb, None, lv))
    return out


# the largest relative difference of a step's field (a time, bytes, an action) between
# _tile_sums and _sums: the floats of a sum of at most a few thousand positive terms
# associated differently (n terms: n * 2**-53 each way at most, about 1e-13 for 1,000);
# held by the tests over many walk shapes
TILE_SUM_RTOL = 1e-12


# the key in emit_cv_pipeline's ``memo`` of the op's StepSums (_memo_tile_sums)
_STEP_SUMS = "step sums"
# and of its steps' load fields (K's, V's), by step, and its stores' by their bytes
_STEP_LOADS, _STORES = "step loads", "stores"
# and of its blocks' fields as the compiled walk reads them (_cwalk.Fields)
_FIELDS_KEY = "block fields"


def emit_cv_pipeline(bld: Builder, blocks: list[Block] | list[tuple[Block, int]] | None, *,
                     core: int, vecs: list[int],
                     preload: int, sync_s: float, store_bw: float,
                     store_hbm_fraction: float = 1.0, deps=(), label: str = "attention",
                     memo: dict | None = None, tiles: list | None = None,
                     actions_by_tile: bool = False, after_s: float = 0.0) -> tuple[int, ...]:
    """Emit one cube core's walk (``blocks`` in order, or as runs ``(block, count)`` of
    equal ones) with its vector cores ``vecs``; returns the tasks its end waits for.

    ``tiles`` (optional): the same walk as its tiles, (the tile's runs, their
    :func:`tile_sum`, its block count) in order, the runs' concatenation ``blocks``:
    a step then adds a tile it covers as one term (:func:`_tile_sums`).

    At the analytical fidelity (:func:`closed_form`) no task is made: the walk goes to
    the accumulator in closed form (:func:`_walk_sums`), and returns one task index
    standing for its end. ``memo`` (a dict the caller keeps for one op's cores): a core
    whose walk is another's (the same tiles or block objects, team shape and
    parameters) adds that walk's sums again; a task build with ``tiles`` keeps the op's
    step sums there (:func:`_memo_tile_sums`). ``actions_by_tile`` (with ``tiles``): the
    closed form leaves the blocks' actions to the caller, which adds them for the whole
    op at once (:func:`add_tile_actions`); the task build ignores it. ``after_s``: a
    chain of the op's tasks that follows the walk's end (a split-KV combine's flag),
    for the closed form's tails (:func:`_k_load_parts`); the task build ignores it.

    With ``tiles``, a build (event or analytical) reads only them: ``blocks`` may then
    be None (a 32K walk's runs, thousands a core, not gathered for nothing)."""
    if not blocks and not tiles:
        return ()
    chip = bld.chip
    deps = tuple(deps)
    teams = bld.groups(list(vecs))
    if closed_form(bld):
        return _walk_summary(bld.sink, chip, blocks, teams, vecs, core, preload, sync_s,
                             store_bw, store_hbm_fraction, deps, bld.copies, memo, tiles,
                             actions_by_tile and tiles is not None, after_s)
    runs = None if blocks is None else [(b, 1) if isinstance(b, Block) else b for b in blocks]
    step_sums = None
    if memo is not None and tiles is not None:
        step_sums = memo.get(_STEP_SUMS)
        if step_sums is None:
            step_sums = memo[_STEP_SUMS] = StepSums()
    # (the walk's steps are an op's shared objects when looked up: see loads_of below)
    shared = step_sums is not None and step_sums.worth()
    steps, inner_flags = _walk_steps(runs, preload, sync_s, tiles, step_sums)
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

    # (the tasks Builder.put would make, their ten fields gathered in ``made`` and
    # handed over at the walk's end, Builder.put_all: a task's index is ``n0`` plus
    # the tasks made so far. Their dependencies sorted here, durations clamped at 0 as
    # Builder.add clamps them, no bytes or actions the empty mapping; ``serial`` is
    # put's ``k > 1 and unit == HBM_UNIT``: False but on the hbm unit)
    made: list[tuple] = []
    mk = made.append
    n0 = bld.next_index() - 1
    k1 = bld.copies
    hbm_serial = k1 > 1
    walk_deps = clean_deps(deps)
    labels = bld.sink is None  # (an analytical build reads no label)
    lb_qk = lb_qk if labels else ""
    lb_pv = lb_pv if labels else ""
    lb_flag_p = lb_flag_p if labels else ""
    sync = sync_s if sync_s > 0.0 else 0.0

    hbm_stream_bw, l2_read_bw, hbm_bw = chip.hbm_stream_bw, chip.l2_read_bw, chip.hbm_bw
    lb_mte2 = {(p, m): (f"{lb_load_v if p else lb_load} ({'HBM' if m else 'L2'})"
                        if labels else "") for p in (0, 1) for m in (False, True)}
    lb_hbm = f"{lb_load} (HBM read)" if labels else ""

    def load_fields(st: Block, part: int) -> tuple | None:
        """What a step's K (``part`` 0) or V (1) load's tasks are made of, whatever the
        core: the MTE2 pipe's duration, bytes, actions, bound and label, and for the K
        load the ``hbm`` unit's duration and bytes for the step's misses, K's and V's
        (:func:`split_load`; None when none miss); None for a V part with no rows of
        its own."""
        hbm, l2b, slow, mask, pad_hbm, pad_l2 = split_load(st, part)
        if part and not (hbm or l2b or slow or pad_hbm or pad_l2):
            return None  # no V rows of their own (PV waits for nothing more)
        hbm = hbm if hbm > 0.0 else 0.0
        hbm_s = (hbm + (pad_hbm + slow)) / hbm_stream_bw
        l2_s = (l2b + pad_l2) / l2_read_bw
        l2_moved = (l2b if l2b > 0.0 else 0.0) + slow
        memory = hbm_s >= l2_s and hbm_s > 0
        d = hbm_s + l2_s
        pipe = (d if d > 0.0 else 0.0,
                {"l2_read": int(round(l2_moved))} if l2_moved > 0 else _NO_BYTES,
                {"hbm_byte": hbm, "l2_byte": hbm + l2_moved, "l1_byte": hbm + l2_moved},
                "memory" if memory else "onchip", lb_mte2[part, memory])
        miss = st.load_hbm if st.load_hbm > 0.0 else 0.0  # K's and V's
        if part or miss <= 0:
            return pipe, None
        dram = {"dram_read": int(round(miss))}
        if mask:
            dram["mask_dram_read"] = int(round(mask))
        return pipe, (miss / hbm_bw, dram)

    # a step's loads' fields by the step (its Block, kept with them so that an id names
    # one object): the op's cores share the steps they cover alike (_memo_tile_sums),
    # so a step's loads are worked out once (the tasks share their byte and action
    # mappings, which no one changes); a walk whose steps were summed for it alone
    # works them out as it goes
    loads_of = memo.setdefault((_STEP_LOADS, label, labels), ({}, {})) if shared else None

    def emit_load(s: int, part: int) -> None:
        """Builder.load's two tasks, made here (thousands per op): the MTE2 pipe's, and
        the ``hbm`` unit's for the step's misses, K's and V's together with the K load
        (:func:`split_load`); the V load is its pipe's task alone."""
        st = steps[s]
        if loads_of is None:
            fields = load_fields(st, part)
        else:
            cache = loads_of[part]
            got = cache.get(id(st))
            if got is None or got[0] is not st:
                got = cache[id(st)] = (st, load_fields(st, part))
            fields = got[1]
        if fields is None:
            return  # no V rows of their own (PV waits for nothing more)
        # (the walk's deps, cleaned once, come before every task of the walk: the
        # buffer's reader appended keeps the tuple sorted, without repeats)
        dd = walk_deps + ((pv if part else qk)[s - KV_BUFFERS],) if s >= KV_BUFFERS \
            else walk_deps
        (d, nb, acts, bound, lb), miss = fields
        mk((mte2, d, nb, acts, dd, bound, "", lb, k1, False))
        pipe = n0 + len(made)
        if part:
            load_v[s] = (pipe,)
            return
        if miss is None:
            load[s] = (pipe,)
            return
        mk((HBM_UNIT, miss[0], miss[1], _NO_BYTES, dd, "memory", "", lb_hbm, k1, hbm_serial))
        load[s] = (pipe, pipe + 1)

    def to_vectors(src: int, fix_s: float, what: str, vec_s: float, work: str) -> list[int]:
        """FixPipe writes ``what`` out after the cube task ``src``, a flag tells the
        vector cores, each then runs ``work`` in its program order; their tasks."""
        mk((fix, fix_s if fix_s > 0.0 else 0.0, _NO_BYTES, _NO_BYTES, (src,), "onchip", "",
            lb_out[what] if labels else "", k1, False))
        out = n0 + len(made)
        mk((c_flag, sync, _NO_BYTES, _NO_BYTES, (out,), "latency", "",
            lb_flag[what] if labels else "", k1, False))
        flag = out + 1
        tasks = []
        d = vec_s if vec_s > 0.0 else 0.0
        lb = lb_work[work] if labels else ""
        for team in teams:
            before = last_vec[team[0]]
            # (``before`` is the team's one task before, made before ``flag``: the
            # pair in order, as clean_deps would give it)
            mk((vec_unit[team[0]], d, _NO_BYTES, _NO_BYTES,
                (before[0], flag) if before else (flag,), "compute", "", lb, len(team), False))
            t = n0 + len(made)
            tasks.append(t)
            last_vec[team[0]] = [t]
        return tasks

    def emit_qk(s: int) -> None:
        st = steps[s]
        slot = sm[s - preload - 1] if s - preload - 1 >= 0 else []
        d = st.qk_s
        # (in program order the vectors' slot was made before the cube's last task,
        # and that before this step's K load: in that order, sorted, without repeats)
        mk((cube, d if d > 0.0 else 0.0, _NO_BYTES, st.actions or _NO_BYTES,
            (*slot, *last_cube, *load[s]), "compute", "", lb_qk, k1, False))
        qk[s] = n0 + len(made)
        last_cube[:] = [qk[s]]
        sm[s] = to_vectors(qk[s], st.fix_s_s, "S", st.softmax_s + inner_flags[s], "softmax")

    def emit_pv(s: int) -> None:
        st = steps[s]
        flags = []
        for team, t in zip(teams, sm[s]):
            mk((vflag_unit[team[0]], sync, _NO_BYTES, _NO_BYTES, (t,), "latency", "",
                lb_flag_p, len(team), False))
            flags.append(n0 + len(made))
        d = st.pv_s + inner_flags[s]
        # (the cube's last task came before this step's V load, the load before the
        # flags just made: in that order, sorted, without repeats)
        mk((cube, d if d > 0.0 else 0.0, _NO_BYTES, _NO_BYTES,
            (*last_cube, *load_v[s], *flags), "compute", "", lb_pv, k1, False))
        pv[s] = n0 + len(made)
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
    lanes = store_lanes(chip, teams, k1)
    lb_st = {m: (f"{lb_store} (HBM)" if m else f"{lb_store} (L2)") if labels else ""
             for m in (False, True)}
    lb_st_hbm = f"{lb_store} (HBM write)" if labels else ""

    def store_fields(nbytes: float) -> tuple:
        """What a store of ``nbytes`` by one AIV is made of, whatever the core: the MTE3
        lane's duration, bytes, actions, bound and label, and the ``hbm`` unit's
        duration and bytes (None when nothing goes to HBM)."""
        hbm = float(nbytes) * st_frac
        l2b = float(nbytes) - hbm
        hbm_s = hbm / st_hbm_bw
        l2_s = l2b / st_l2_bw
        memory = hbm_s >= l2_s and hbm_s > 0
        d = hbm_s + l2_s
        dw = hbm / hbm_bw
        return ((d if d > 0.0 else 0.0,
                 {"l2_write": int(round(l2b)) if l2b > 0 else 0} if l2b > 0 else _NO_BYTES,
                 {"ub_byte": nbytes, "l2_byte": nbytes, "hbm_byte": hbm},
                 "memory" if memory else "onchip", lb_st[memory]),
                None if hbm <= 0 else (dw if dw > 0.0 else 0.0,
                                       {"dram_write": int(round(hbm))}))

    # the stores' fields by their bytes (a walk's tiles of equal rows store alike)
    stores_of = memo.setdefault((_STORES, st_frac, st_bw, label, labels), {}) \
        if memo is not None else {}

    def store_rows(team: list[int], t: int, nbytes: float) -> None:
        """:meth:`Builder.store` of ``nbytes`` by each AIV of ``team`` after task ``t``
        (on the lanes of :func:`store_lanes`)."""
        got = stores_of.get(nbytes)
        if got is None:
            got = stores_of[nbytes] = store_fields(nbytes)
        (d, nb, acts, bound, lb), to_hbm = got
        dd = (t,)
        for lane, k in lanes[team[0]]:
            mk((lane, d, nb, acts, dd, bound, "", lb, k, False))
            ends.append(n0 + len(made))
            if to_hbm is not None:
                mk((HBM_UNIT, to_hbm[0], to_hbm[1], _NO_BYTES, dd, "memory", "", lb_st_hbm,
                    k, k > 1))
                ends.append(n0 + len(made))

    program_order(n, preload, emit_load, emit_qk, emit_pv)
    bld.put_all(made)
    return tuple(ends) + tuple(t for team in teams for t in last_vec[team[0]])


# True: a team of AIVs (their tasks one with copies, Builder.groups) stores its rows as
# one task on the team's MTE3 lane and one on the hbm unit, their shares one after
# another there (serial), as Builder.store stores a group's; False: each AIV its own
# two tasks (the reference of the tests, which hold the two to the same schedule)
STORES_BY_TEAM = True


def store_lanes(chip, teams: list[list[int]], k1: int) -> dict[int, list[tuple[str, int]]]:
    """Per team (keyed by its first AIV), the lanes its stores take and the copies each
    stands for: the team's MTE3 lane with all its AIVs (:data:`STORES_BY_TEAM`), or each
    AIV's own; ``k1`` the builder's copies (cores with the same walk).

    Each AIV's MTE3 lane runs only its own stores, equal to its teammates' and made at
    the same time, so the team's lane runs them as each AIV's would, to the last bit.
    On the shared hbm unit the AIVs' writes, woken by the one update task one after
    another, queue back to back (no other request comes between: the wake-ups in
    between touch no other lane): one serial task holds the unit as long, its end
    ``s + 2d`` where two tasks end at ``(s + d) + d``, the one rounding apart."""
    if STORES_BY_TEAM:
        return {team[0]: [(chip.aiv_group(team, "mte3"), k1 * len(team))] for team in teams}
    return {team[0]: [(chip.aiv(v, "mte3"), k1) for v in team] for team in teams}


def _walk_steps(runs: list[tuple[Block, int]], preload: int, sync_s: float,
                tiles: list | None = None, memo: StepSums | None = None
                ) -> tuple[list[Block], list[float]]:
    """The walk's steps (:func:`_steps`, each the sum of its blocks: by tile with
    ``tiles``, looked up in ``memo`` when given and worth it, :func:`_memo_tile_sums`)
    and the flag
    waits inside a step of several blocks when the cube does not run ahead."""
    # (with ``tiles`` the same count: their runs are the walk's, in order)
    ranges = _steps(sum([t[2] for t in tiles]) if tiles is not None else
                    sum(k for _, k in runs))
    sums = _sums(runs, ranges) if tiles is None else _tile_sums(tiles, ranges) \
        if memo is None or not memo.worth() else _memo_tile_sums(tiles, ranges, memo)
    return sums, [(b - a - 1) * sync_s if preload == 0 else 0.0
                                 for a, b in ranges]


DIRECT_SUMMARY = True  # False: an analytical walk goes through Builder.put (the tests' reference)

# the closed-form walk (_walk_sums) against its tasks' summary (summarize of lower):
# every unit's busy time and time per bound, every action and the critical path, so
# the analytical latency and energy, within this relative difference (the same terms
# associated differently: n non-negative terms within (n - 1) * 2**-53 of exact, under
# 1e-12 up to some 4,500 terms a sum); bytes, the task count and the bound the same
ANALYTICAL_RTOL = 1e-12


def closed_form(bld: Builder) -> bool:
    """Whether ``bld`` takes :func:`emit_cv_pipeline`'s walks in closed form (the
    analytical fidelity's accumulator), so that a caller passing ``actions_by_tile``
    adds the blocks' actions itself (:func:`add_tile_actions`)."""
    return DIRECT_SUMMARY and type(bld.sink) is Accumulator


def add_tile_actions(acc: Accumulator, uses, copies: int = 1) -> None:
    """The actions of an op's walks, added once for all its cores: ``uses`` the op's
    distinct tiles as (their :func:`tile_sum`, how many walks run them). Each block's
    actions are a tile's share, so the walks' actions are the tiles' sums times their
    counts: the same terms as the steps' sums, associated differently (within
    :data:`ANALYTICAL_RTOL`)."""
    actions = acc.actions
    for whole, n in uses:
        k = n * copies
        for name, v in whole.actions.items():
            actions[name] = actions.get(name, 0.0) + v * k


class _WalkSums:
    """One core's walk at the analytical fidelity: what its tasks add to the
    accumulator, without the tasks (:func:`_walk_sums` makes it, :meth:`add_to` adds
    it; the cores of an op that walk the same tiles share one).

    ``busy`` per role of the walk's units (MTE2, the HBM, cube, FixPipe, the cube's
    flag, a team's vector lane and flag, an AIV's MTE3): (seconds, [(bound, seconds)]
    in the order the walk first uses each bound), added to each unit of the role (every
    team's vector lane, every AIV's MTE3: they run the same tasks); ``nbytes`` and
    ``actions``: (key, total) of the walk's copies; ``count``: its tasks; ``path_s``:
    its critical path from its start (the stages' ends step by step); ``heads``: per
    role, the earliest critical-path start of its tasks from the walk's start (a role
    not in it: the start itself), each unit's head in the op's summary
    (:class:`~hwsim.engine.Accumulator`'s ``head``); ``hbm_parts``: the K loads' tasks
    on the hbm unit in parts (:func:`_k_load_parts`), each (its tasks' earliest start
    from the walk's start, their seconds, the least chain of the walk after any of
    them), parts of the unit (:meth:`~hwsim.engine.Accumulator.add_part`)."""

    __slots__ = ("busy", "nbytes", "actions", "count", "path_s", "heads", "held",
                 "hbm_parts")

    def __init__(self, busy, nbytes, actions, count, path_s, heads, held, hbm_parts=()):
        self.busy, self.nbytes, self.actions = busy, nbytes, actions
        self.count, self.path_s, self.heads = count, path_s, heads
        self.held = held  # (the tiles or blocks the memo's key names by id, kept alive)
        self.hbm_parts = hbm_parts

    def add_to(self, acc: Accumulator, units: dict, start_s: float,
               after_s: float = 0.0) -> tuple[int, ...]:
        """Add the walk to ``acc`` (``units``: role -> the unit names of this core),
        started at ``start_s``, followed by a chain of at least ``after_s`` (the op's
        tasks after the walk: added to its hbm parts' tails); returns the one task its
        end waits for.

        The walk's tasks get indices as if they were added (the op's later tasks count
        on it); their finish times are lower bounds of theirs in the event schedule:
        the start for each, the start plus :attr:`path_s` for the last, which stands
        for the walk's end (its stores and last vector tasks, of which the latest ends
        no earlier: :func:`_walk_sums`).

        ``acc`` an :class:`~hwsim.engine.Accumulator` exactly (:func:`closed_form`'s):
        where built (:data:`COMPILED`), ``_cwalk.add_to`` adds the same, the same Python
        operations on the same objects in the same order, its ``entry`` and
        ``add_part`` inline (a walk's few dozen dict updates were some 60,000
        instructions in bytecode)."""
        if COMPILED and _C_ADD_TO is not None:
            return _C_ADD_TO(acc, self, units, start_s, after_s, HBM_UNIT)
        entry, heads = acc.entry, self.heads
        for role, seconds, bounds in self.busy:
            h = start_s + heads.get(role, 0.0)  # (the tasks' earliest start on the unit)
            for unit in units[role]:
                e = entry(unit, h)
                e[0] += seconds
                by = e[1]
                for b, v in bounds:
                    by[b] = by.get(b, 0.0) + v
        nbytes, actions = acc.nbytes, acc.actions
        for key, v in self.nbytes:
            nbytes[key] = nbytes.get(key, 0) + v
        for key, v in self.actions:
            actions[key] = actions.get(key, 0.0) + v
        for h, seconds, tail in self.hbm_parts:
            acc.add_part(HBM_UNIT, start_s + h, seconds, tail + after_s)
        finish = acc.finish
        finish.extend([start_s] * (self.count - 1))
        finish.append(start_s + self.path_s)
        acc.count += self.count
        return (acc.count - 1,)


def _walk_summary(acc: Accumulator, chip, blocks: list,
                  teams: list[list[int]], vecs: list[int], core: int, preload: int,
                  sync_s: float, store_bw: float, store_hbm_fraction: float, deps: tuple,
                  k1: int, memo: dict | None, tiles: list | None, actions_by_tile: bool,
                  after_s: float = 0.0) -> tuple[int, ...]:
    """The analytical fidelity's walk: :func:`_walk_sums` of the core's steps added to
    the accumulator, no task made; a core whose walk another core of the op made
    (``memo``: the same tiles or blocks, the same parameters) adds that one's sums.
    ``blocks`` and ``tiles`` as :func:`emit_cv_pipeline` takes them; the tiles are
    compared by identity (an op hands equal tiles the same tuple)."""
    runs = None if tiles is not None else \
        [(b, 1) if isinstance(b, Block) else b for b in blocks]
    start = acc.ready_s(deps)
    units = _walk_units(chip, core, teams)
    key = None
    if memo is not None:
        key = (tuple(map(id, tiles)) if tiles is not None
               else tuple((id(b), k) for b, k in runs),
               preload, sync_s, store_bw, store_hbm_fraction, k1,
               tuple(map(len, teams)), len(vecs), actions_by_tile)
        got = memo.get(key)
        if got is not None:
            return got.add_to(acc, units, start, after_s)
    fields = None
    if memo is not None and COMPILED:  # the op's blocks' fields, read once (_cwalk.Fields)
        fields = memo.get(_FIELDS_KEY)
        if fields is None:
            fields = memo[_FIELDS_KEY] = _cwalk.Fields()
    got = _walk_sums(chip, runs, tiles, teams, len(vecs), preload, sync_s, store_bw,
                     store_hbm_fraction, k1, not actions_by_tile, fields)
    if key is not None:
        memo[key] = got
    return got.add_to(acc, units, start, after_s)


def _walk_units(chip, core: int, teams: list[list[int]]) -> dict[str, tuple[str, ...]]:
    """Per role of a walk's units (:class:`_WalkSums`), the unit names of cube core
    ``core`` and its vector ``teams``: made once per core and teams and kept on the
    chip (every attention op's walks on the core name the same units)."""
    memo = chip.__dict__.setdefault("_walk_units", {})
    key = (core, tuple(map(tuple, teams)))
    got = memo.get(key)
    if got is None:
        got = memo[key] = {
            "mte2": (chip.aic(core, "mte2"),), "hbm": (HBM_UNIT,),
            "cube": (chip.aic(core, "cube"),), "fix": (chip.aic(core, "fixpipe"),),
            "cflag": (chip.aic(core, "flag"),),
            "vec": tuple(chip.aiv_group(team, "vector") for team in teams),
            "vflag": tuple(chip.aiv_group(team, "flag") for team in teams),
            "mte3": tuple(lane for lanes in store_lanes(chip, teams, 1).values()
                          for lane, _ in lanes)}
    return got


def _walk_sums(chip, runs: list[tuple[Block, int]] | None, tiles: list | None,
               teams: list[list[int]], n_vecs: int, preload: int, sync_s: float,
               store_bw: float, store_hbm_fraction: float, k1: int, with_actions: bool,
               fields=None) -> _WalkSums:
    """A core's walk without its tasks, from its steps (:func:`_walk_steps`): per step
    the numbers its tasks would carry (the same durations, bound labels, rounded bytes
    and task count as :func:`emit_cv_pipeline`'s), summed per unit, and its critical
    path as the stages' ends step by step; no task, no finish time per task.

    The numbers come from :func:`_walk_numbers`, or, by tile without the actions and
    where the module is built (:data:`COMPILED`), from its C twin ``_cwalk.walk``, the
    same to the last bit; ``fields``: the op's ``_cwalk.Fields`` (its blocks' fields
    read once for all its walks; None: a table for this walk alone).

    **Sums.** Each unit's busy time is the sum of its tasks' durations (the cube's QK
    and PV of every step, the vector lane's softmax and update, the MTE2's K and V
    loads, ...), each byte count the same integers (a task rounds its step's bytes
    once, and so does this), the task count the same. The unit sums, the steps'
    actions (or none, ``with_actions=False``: the caller adds the op's, see
    :func:`add_tile_actions`) and the loads' and stores' byte actions are the same
    terms associated differently: within :data:`ANALYTICAL_RTOL` of the tasks' sums.

    **Critical path, a lower bound of the event schedule.** The event schedule runs
    the same tasks with the same dependencies, so each task ends no earlier than its
    start plus the longest chain of dependencies that leads to it. ``path_s`` is the
    longest chain through the walk's dependencies, from its start, kept as each
    stage's end in program order (:func:`program_order`): a K load (its MTE2 task and,
    with misses, its ``hbm`` task side by side) ends its time after the QK of the
    block two back (the buffer it reuses, :data:`KV_BUFFERS`), a V load after the PV
    two back; a QK starts at the latest of its K load, the cube's last task (program
    order is a dependency) and, beyond the run-ahead, the softmax ``preload`` + 1
    steps back (its FIFO slot); its S out (FixPipe) and flag follow, then its softmax
    at the later of the flag and the vector lane's last task; a PV at the latest of
    its V load, the cube's last task and its softmax's flag back; its O out, flag and
    update likewise; each tile end's stores after the update. The walk's end (its
    stores and its lane's last task, which the op's later tasks wait for) is the
    latest of these, so no earlier in the event schedule: each end here is a chain of
    tasks the event run must run in that order, and resources shared with other tasks
    only delay it there. This is the path the task-by-task walk took, from its start
    (the same floats up to the start's addition: within :data:`ANALYTICAL_RTOL`).

    Why step by step and not a formula of the whole walk (its fill, the cube's or the
    lane's total work, its drain): the steps are unequal (a step covers whole tiles,
    a causal walk's tiles differ in length), so the side that waits changes from step
    to step. Such a formula's three chains (the first load and QK, then the cube's
    whole work and the last PV's O out, flag, update and store; the first QK's S out
    and flag, then the lane's whole work and the last store; the cycle QK, S out, flag,
    softmax, flag, PV through every ``preload`` + 1-th step), each a true lower bound,
    came to 0.82-0.92 of the event schedule on the Llama-2-7B distinct-layer prefill's
    attentions (0.976-0.998 before); the cube's and the lane's ends step by step
    without the loads and slot waits, to 0.960-0.990; with them, to the walk's
    0.976-0.998, at about 40 float operations a step (with the sums, about half the
    time the tasks' walk took, its sums in locals already)."""
    hbm_stream_bw, l2_read_bw, hbm_bw = chip.hbm_stream_bw, chip.l2_read_bw, chip.hbm_bw
    serial = k1 if k1 > 1 else 1  # a member's share on the shared hbm unit (Builder.put)
    sync = sync_s if sync_s > 0.0 else 0.0
    frac = min(1.0, max(0.0, store_hbm_fraction))
    unit_bw = store_bw / n_vecs
    n_lanes = len(teams) if STORES_BY_TEAM else n_vecs  # a store's tasks each (store_lanes)
    st_hbm_rate, st_l2_rate = min(unit_bw, hbm_stream_bw), min(unit_bw, chip.l2_write_bw)
    # a step's stores of b bytes: _store_terms(b, *store_args)
    store_args = (n_vecs, frac, st_hbm_rate, st_l2_rate, hbm_bw, serial)

    # each step's fields (Block's, in its constructor's order) as a tuple: no Block made
    got = None
    if tiles is not None:
        ranges = _steps(sum(map(itemgetter(2), tiles)))
        if not with_actions and COMPILED:  # the same numbers in C (_cwalk.walk), or None
            got = _cwalk.walk(tiles, ranges, _cwalk.Fields() if fields is None else fields,
                              preload, sync_s, sync, hbm_stream_bw, l2_read_bw, hbm_bw,
                              serial, _store_terms, store_args, WALK_PARTS, KV_BUFFERS)
        if got is None:
            steps = [_total_fields(terms, True) for terms in _step_terms(tiles, ranges)] \
                if with_actions else _step_fields(tiles, ranges)
    else:
        ranges = _steps(sum(map(itemgetter(1), runs)))
        steps = list(map(_FIELDS, _sums(runs, ranges)))
    if got is None:
        got = _walk_numbers(steps, ranges, preload, sync_s, sync, hbm_stream_bw, l2_read_bw,
                            hbm_bw, serial, store_args, with_actions)
    (m2, m2_first, u2_mem, m2_mem, u2_chip, m2_chip, m3, m3_first, u3_mem, m3_mem, u3_chip,
     m3_chip, hbm_t, cube, fix, vec, l2_read, u_l2r, dram_read, u_dr, mask_read, u_mdr,
     l2_write, u_l2w, dram_write, u_dw, a_hbm, a_l2, a_ub, n_v, n_k, n_st, n_st_hbm, path,
     heads, h_hbm, h_store, hbm_parts, acts) = got
    n = len(ranges)
    # the tasks: per step its K load, QK, S out, flag, softmax, PV, O out, flag, update
    # and the flags (one of each per team); a V load with rows of its own; an hbm task
    # per K load with misses; per tile end a store per lane, and its hbm task with DRAM
    # bytes
    count = n * (7 + 3 * len(teams)) + n_v + n_k + n_lanes * (n_st + n_st_hbm)
    if h_hbm < math.inf:
        heads["hbm"] = h_hbm
    if h_store < math.inf:
        heads["mte3"] = h_store
    busy = [("mte2", m2, _by_bound(m2_first, u2_mem, m2_mem, u2_chip, m2_chip))]
    if u_dr or u_dw:
        busy.append(("hbm", hbm_t, [("memory", hbm_t)]))
    busy += [("cube", cube, [("compute", cube)]), ("fix", fix, [("onchip", fix)]),
             ("cflag", 2 * n * sync, [("latency", 2 * n * sync)]),
             ("vec", vec, [("compute", vec)]), ("vflag", n * sync, [("latency", n * sync)])]
    if m3_first:
        busy.append(("mte3", m3, _by_bound(m3_first, u3_mem, m3_mem, u3_chip, m3_chip)))
    k = k1
    nbytes = [(key, v * k) for key, v, u in (
        ("l2_read", l2_read, u_l2r), ("dram_read", dram_read, u_dr),
        ("mask_dram_read", mask_read, u_mdr), ("l2_write", l2_write, u_l2w),
        ("dram_write", dram_write, u_dw)) if u]
    actions = [("hbm_byte", a_hbm * k), ("l2_byte", (a_l2 + a_ub) * k),
               ("l1_byte", a_l2 * k)]
    if a_ub:
        actions.append(("ub_byte", a_ub * k))
    actions += [(name, x * k) for name, x in acts.items()]
    return _WalkSums(busy, nbytes, actions, count, path, heads, (runs, tiles), hbm_parts)


def _walk_numbers(steps: list[tuple], ranges: list[tuple[int, int]], preload: int,
                  sync_s: float, sync: float, hbm_stream_bw: float, l2_read_bw: float,
                  hbm_bw: float, serial: int, store_args: tuple, with_actions: bool) -> tuple:
    """The numbers of :func:`_walk_sums` from the walk's ``steps`` (each a tuple of a
    :class:`Block`'s fields) over ``ranges``: the units' sums, bytes, task counts,
    critical path, heads and hbm parts, as a tuple in the order :func:`_walk_sums`
    reads it (with ``sync`` the flags' seconds, at least 0; ``serial`` a member's share
    on the hbm unit; a step's stores of b bytes :func:`_store_terms` (b, *``store_args``)).
    ``_cwalk.walk`` (hwsim/accelerators/ascend/_cwalk.c) computes the same tuple from
    the tiles to the last bit: this is its reference."""
    # the MTE2's and one AIV's MTE3's seconds per bound (memory, on chip), whether the
    # walk uses each bound, and which it uses first (the order of the bounds' entries)
    m2_mem = m2_chip = m3_mem = m3_chip = 0.0
    u2_mem = u2_chip = u3_mem = u3_chip = False
    m2_first = m3_first = ""
    m2 = m3 = hbm_t = cube = fix = vec = 0.0
    l2_read = dram_read = mask_read = l2_write = dram_write = 0
    # which byte keys the walk's tasks name (a key the tasks name counts, even at 0)
    u_l2r = u_dr = u_mdr = u_l2w = u_dw = False
    a_hbm = a_l2 = a_ub = 0.0  # the byte actions: HBM, the loads' L2 (and L1), the stores'
    acts: dict[str, float] = {}
    n_v = 0  # the steps whose V load is a task of its own
    n = len(steps)
    kd, vd, qk, fs, sm, pv, fo, up, store = ([0.0] * n for _ in range(9))
    # the steps whose K load has an hbm task, whose tile end stores, and whose stores
    # have hbm tasks (for the units' heads: a task of no time starts somewhere too)
    k_miss, stores, st_hbm = [False] * n, [False] * n, [False] * n
    flash = preload == 0
    inner = 0.0  # the flags inside a flash step of several blocks
    k_hbm = [0.0] * n  # each step's K load's seconds on the hbm unit (part of hbm_t)
    k_start = [0.0] * n  # ... and its start on the walk's critical path
    st_memo: dict[float, tuple] = {}  # a step's stores by its bytes (_store_terms)
    st_get = st_memo.get
    for s, (qk_s, fix_s_s, softmax_s, pv_s, fix_o_s, update_s, final_s, lh, ll, slow, mask,
            pad_h, pad_l, store_bytes, st_acts, load_v) in enumerate(steps):
        if flash:
            a, b = ranges[s]
            inner = (b - a - 1) * sync_s
        # the K load (with the step's misses on the hbm unit) and the V load, as
        # split_load splits the step's bytes (the same floats: the bytes round alike)
        data = lh - mask + ll + slow
        fv = load_v / data if data > 0.0 and load_v > 0.0 else 0.0
        fv = 1.0 if fv > 1.0 else fv
        if fv <= 0.0:
            hb, l2b, sl, pad_hbm, pad_l2 = lh, ll, slow, pad_h, pad_l
            v_part = None
        else:
            fk = 1.0 - fv
            hb, l2b, sl, pad_hbm, pad_l2 = (mask + (lh - mask) * fk, ll * fk, slow * fk,
                                            pad_h * fk, pad_l * fk)
            v_part = ((lh - mask) * fv, ll * fv, slow * fv, pad_h * fv, pad_l * fv)
        is_v = False
        while True:  # the K part, then the V part if it has rows of its own
            hb = hb if hb > 0.0 else 0.0
            hbm_s = (hb + (pad_hbm + sl)) / hbm_stream_bw
            l2_s = (l2b + pad_l2) / l2_read_bw
            l2b = (l2b if l2b > 0.0 else 0.0) + sl
            if l2b > 0:
                l2_read += round(l2b)  # (round of a float is an int)
                u_l2r = True
            d = hbm_s + l2_s
            d = d if d > 0.0 else 0.0
            a_hbm += hb
            a_l2 += hb + l2b
            m2 += d
            if hbm_s >= l2_s and hbm_s > 0:
                m2_mem += d
                u2_mem = True
                if not m2_first:
                    m2_first = "memory"
            else:
                m2_chip += d
                u2_chip = True
                if not m2_first:
                    m2_first = "onchip"
            if is_v:
                vd[s] = d
                n_v += 1
                break
            miss = lh if lh > 0.0 else 0.0  # K's and V's, with the K load
            if miss > 0:
                dram_read += round(miss)
                u_dr = True
                if mask:
                    mask_read += round(mask)
                    u_mdr = True
                dh = miss / hbm_bw
                hbm_t += dh * serial
                k_hbm[s] = dh * serial
                k_miss[s] = True
                d = d if d > dh else dh  # the QK waits for both tasks of its K load
            kd[s] = d
            if v_part is None:
                break
            hb, l2b, sl, pad_hbm, pad_l2 = v_part
            if not (hb or l2b or sl or pad_hbm or pad_l2):
                break  # no V rows of their own
            is_v = True
        if with_actions and st_acts:
            for name, x in st_acts.items():
                acts[name] = acts.get(name, 0.0) + x
        qk[s] = q = qk_s if qk_s > 0.0 else 0.0
        x = pv_s + inner
        pv[s] = x = x if x > 0.0 else 0.0
        cube += q + x
        fs[s] = q = fix_s_s if fix_s_s > 0.0 else 0.0
        fo[s] = x = fix_o_s if fix_o_s > 0.0 else 0.0
        fix += q + x
        q = softmax_s + inner
        sm[s] = q = q if q > 0.0 else 0.0
        x = update_s + final_s
        up[s] = x = x if x > 0.0 else 0.0
        vec += q + x
        if store_bytes:  # each AIV stores its rows (Builder.store), side by side
            got = st_get(store_bytes)
            if got is None:
                got = st_memo[store_bytes] = _store_terms(store_bytes, *store_args)
            d, memory, ub, hbm, l2w, dw, dh, end_d = got
            m3 += d
            if memory:
                m3_mem += d
                u3_mem = True
                m3_first = m3_first or "memory"
            else:
                m3_chip += d
                u3_chip = True
                m3_first = m3_first or "onchip"
            a_ub += ub
            a_hbm += hbm
            stores[s] = True
            if l2w is not None:
                l2_write += l2w
                u_l2w = True
            if dw is not None:
                dram_write += dw
                u_dw = True
                hbm_t += dh
                st_hbm[s] = True
            d = end_d
            store[s] = d  # (one of no time ends no later than the lane, which the path holds)
    # the critical path: each stage's end in program order (relative to the start); and
    # the earliest start of the hbm unit's tasks, the cube flag's and the stores' (the
    # other units' first tasks start first: each later one waits for the one before it,
    # or, on the FixPipe, for a later cube task)
    qk_end, pv_end, soft = [0.0] * n, [0.0] * n, [0.0] * n
    c = v = end = 0.0  # the cube's last end, the vector lane's, the stores' latest
    h_hbm = h_flag = h_store = math.inf
    for s in range(-preload, n):  # (s < 0: the QKs the cube runs ahead, program_order)
        j = s + preload
        if j < n:  # QK(j) after its K load, the cube and the FIFO slot; S out, flag, softmax
            f = qk_end[j - KV_BUFFERS] if j >= KV_BUFFERS else 0.0
            if k_miss[j] and f < h_hbm:
                h_hbm = f
            k_start[j] = f
            f += kd[j]
            c = c if c > f else f
            if j > preload:
                f = soft[j - preload - 1]
                c = c if c > f else f
            c += qk[j]
            qk_end[j] = c
            f = c + fs[j]
            h_flag = h_flag if h_flag < f else f
            f += sync
            v = (v if v > f else f) + sm[j]
            soft[j] = v
        if s < 0:
            continue
        # PV(s) after its V load, its softmax's flag and the cube; O out, flag, update(s)
        f = (pv_end[s - KV_BUFFERS] if s >= KV_BUFFERS else 0.0) + vd[s]
        c = c if c > f else f
        f = soft[s] + sync
        c = (c if c > f else f) + pv[s]
        pv_end[s] = c
        f = c + fo[s]
        h_flag = h_flag if h_flag < f else f
        f += sync
        v = (v if v > f else f) + up[s]
        if stores[s]:
            h_store = h_store if h_store < v else v
            if st_hbm[s] and v < h_hbm:
                h_hbm = v
            if store[s]:
                f = v + store[s]
                end = end if end > f else f
    path = v if v > end else end
    # each role's head: the cube's first task is QK(0), after its K load; the FixPipe's
    # its S out; the vector lane's softmax(0) after its flag; the P flags' the first
    # one, after softmax(0)
    heads = {"cube": kd[0], "fix": qk_end[0], "cflag": h_flag, "vec": qk_end[0] + fs[0] + sync,
             "vflag": soft[0]}
    hbm_parts = _k_load_parts(k_miss, k_start, k_hbm, preload, qk, fs, sm, pv, fo, up,
                              store, sync) if any(k_miss) else ()
    return (m2, m2_first, u2_mem, m2_mem, u2_chip, m2_chip, m3, m3_first, u3_mem, m3_mem,
            u3_chip, m3_chip, hbm_t, cube, fix, vec, l2_read, u_l2r, dram_read, u_dr,
            mask_read, u_mdr, l2_write, u_l2w, dram_write, u_dw, a_hbm, a_l2, a_ub, n_v,
            k_miss.count(True), stores.count(True), st_hbm.count(True), path, heads, h_hbm,
            h_store, hbm_parts, acts)


def _store_terms(store_bytes: float, n_vecs: int, frac: float, hbm_rate: float,
                 l2_rate: float, hbm_bw: float, serial: int) -> tuple:
    """What a step's stores of ``store_bytes`` add in :func:`_walk_sums` (each AIV its
    share, :func:`store_split`): (the MTE3's seconds, memory-bound?, the UB bytes, the
    HBM bytes, the L2 bytes written (an int) or None, the DRAM bytes written or None,
    the hbm unit's seconds (with DRAM bytes), the stores' end on the critical path).
    A function of its arguments only: a walk's steps store a few distinct byte counts
    (the tiles' rows that end in them), so the walk keeps each count's terms, the same
    floats as made step by step."""
    nb = store_bytes / n_vecs
    hbm, l2b, d, memory = store_split(nb, frac, hbm_rate, l2_rate)
    l2w = round(l2b) * n_vecs if l2b > 0 else None
    dw = dh = None
    end = d
    if not hbm <= 0:
        dw = round(hbm) * n_vecs
        dh = hbm / hbm_bw
        dh = dh if dh > 0.0 else 0.0
        end = d if d > dh else dh
        dh = dh * serial * n_vecs
    return d, memory, nb * n_vecs, hbm * n_vecs, l2w, dw, dh, end


def _k_load_parts(k_miss: list, k_start: list, k_hbm: list, preload: int, qk: list, fs: list,
                  sm: list, pv: list, fo: list, up: list, store: list,
                  sync: float) -> tuple:
    """The walk's K loads' tasks on the hbm unit (the steps with ``k_miss``: their
    critical-path starts ``k_start``, their seconds ``k_hbm``) in at most
    :data:`WALK_PARTS` parts, each (the least start, the seconds, the least tail of
    its loads): the steps cut into runs of about equal count, in order (an earlier
    step's load is followed by more of the walk: the runs are about the loads in
    order of their tails; any subset with its least start and tail is a sound part,
    and fewer parts leave less to sort per op). A load's tail is the longest chain of
    the walk's tasks after it: a lower bound of the task's tail
    (:func:`hwsim.engine.summary.task_tails`), the walk's part of it.

    One backward pass over the walk's tasks in reverse program order (each task's
    successors come later in it), along the dependencies :func:`emit_cv_pipeline`
    gives them and :func:`_walk_sums`' forward pass takes: a QK is followed by the
    next cube task and by its S out, flag and softmax; a softmax by the next vector
    task, by its flag back and PV, and by the QK whose FIFO slot it frees (``preload``
    + 1 steps on); a PV by the next cube task and by its O out, flag and update; an
    update by the next vector task and its store. (The loads' buffer waits, a K or V
    load after the QK or PV two steps back, are left out: a shorter chain, still a
    lower bound.) A K load's task on the hbm unit is followed by its QK, which waits
    for it. The op's tasks after the walk (a split-KV combine) are the caller's
    (``after_s`` of :func:`emit_cv_pipeline`).
    ``store``: each step's stores' seconds, 0 where the step ends no tile.

    Why: a decode-like split-KV attention has few tiles per K/V head, so every core
    loads from the one hbm unit at once; the unit's head + busy time ends with the
    last load, and that core's walk still runs its steps from that load's QK on
    (0.62-0.80 of the event schedule without it). The unit's own least tail is no
    help there: a store's or the combine's task on it is followed by almost nothing."""
    n = len(qk)
    t_qk = [0.0] * n
    t_pv = [0.0] * n
    cut = -(-n // WALK_PARTS)  # steps per part
    parts = []
    h = w = 0.0
    q = inf = math.inf  # the part being gathered (from its last step back): start, seconds, tail
    cube_next = vec_next = 0.0  # the next cube (vector) task's time + its tail
    for s in range(n - 1, -preload - 1, -1):  # (_walk_sums' iterations, reversed)
        if s >= 0:  # PV(s), O out, flag, update(s), store
            u = store[s]  # (0 where the step stores nothing)
            u = u if u > vec_next else vec_next
            vec_next = up[s] + u
            x = fo[s] + sync + vec_next
            x = x if x > cube_next else cube_next
            t_pv[s] = x
            cube_next = pv[s] + x
        j = s + preload
        if j < n:  # QK(j), S out, flag, softmax(j)
            x = sync + pv[j] + t_pv[j]  # its flag back, PV(j)
            x = x if x > vec_next else vec_next
            f = j + preload + 1  # the QK that waits for its FIFO slot
            if f < n:
                y = qk[f] + t_qk[f]
                x = x if x > y else y
            vec_next = sm[j] + x
            x = fs[j] + sync + vec_next
            x = x if x > cube_next else cube_next
            t_qk[j] = x
            cube_next = x = qk[j] + x  # (the K load's tail: its QK waits for it)
            if k_miss[j]:
                if q == inf:  # (the part's first load met)
                    h = k_start[j]
                elif k_start[j] < h:
                    h = k_start[j]
                w += k_hbm[j]
                q = q if q < x else x
            if j % cut == 0 and q < inf:  # the part's first step: it is whole
                parts.append((h, w, q))
                w, q = 0.0, inf
    return tuple(parts)


# the most parts a walk's K loads make on the hbm unit (_k_load_parts). Measured on
# nine split-KV decodes on the 910B (tests/test_ascend_attention.py's and
# test_invariants.py's): one part (the walk's least tail) gave 0.823-0.988 of the event
# schedule, two parts and a part per step alike 0.832-0.988; four keep a walk's
# parts few (a core's at most 4 to sort per op) with room for longer walks
WALK_PARTS = 4


def _by_bound(first: str, u_mem: bool, mem_s: float, u_chip: bool, chip_s: float
              ) -> list[tuple[str, float]]:
    """A unit's seconds per bound as the walk's tasks add them: an entry per bound used
    (``memory``, ``onchip``), in the order of first use."""
    out = [("memory", mem_s)] if u_mem else []
    if u_chip:
        out.insert(0 if first == "onchip" else len(out), ("onchip", chip_s))
    return out
