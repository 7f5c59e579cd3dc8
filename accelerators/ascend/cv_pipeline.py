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
load K      ``core3.mte2``       K of the block (and Q at a tile's start) GM to
                                 L1, double buffered
load V      ``core3.mte2``       V of the block GM to L1, double buffered
QK          ``core3.cube``       S = Q·Kᵀ (MMADs, MTE1 L1 to L0A/L0B)
S out       ``core3.fixpipe``    S (fp32), all of it, L0C to the GM workspace
softmax     ``vec6.vector``,     each AIV its half of the rows: S in from L2,
            ``vec7.vector``      online softmax (scale, max, exp, sum), P out
load P      ``core3.mte2``       P (fp16) from the workspace into L1
PV          ``core3.cube``       O_j = P·V (MTE1, MMADs)
O out       ``core3.fixpipe``    O_j (fp32) to the workspace
update      ``vec6.vector``, …   O = O·exp(m_old - m_new) + O_j; at a tile's
                                 end O / l, to fp16
store       ``vec6.mte3``, …     O out to GM
==========  ===================  =============================================

Each hand-off between the AIC and an AIV is a cross-core flag: a task of
``cv_sync_s`` on the lane ``core3.flag`` (cube to vector) or ``vec6.flag``
(vector to cube) between the producer's task and the consumer's, so the wait
is visible on the timeline. Every copy into L1 (K, V, P; per block) starts
with ``mte2_l1_start_cycles`` (the ND-to-NZ copy start of CANN's cycle model).

**Preload.** The cube's program order is what makes the overlap. With
``preload`` = p the cube issues QK for p blocks before the first PV, then
alternates QK(j + p), PV(j) (FastAttention's "the cube runs one block ahead",
p = 1; the PTO kernel's ``qkPreloadNum``); the vectors alternate softmax(j + p),
update(j). The S/P workspace is a FIFO of p + 1 slots: QK(j) waits until the
softmax of block j - p - 1 has freed its slot. One-level flash (p = 0) has
no run-ahead: QK(j + 1) follows PV(j), which waits for softmax(j); so the
cube idles while the vectors work and the other way round, and every
hand-off's flag is on the critical path. Both come out of the run.

**K and V buffers.** The kernel keeps K and V apart in L1, each in ``nbuf``
slots of one second-level block (double buffered, ``max(2, p + 1)``; the L1
holds them, ``attention._check_blocks``): block j's K goes into the slot that
QK(j - nbuf) frees, its V into the one that PV(j - nbuf) frees; QK(j) waits
for its K only, PV(j) for its V. Keeping them apart is what hides the loads:
with p = 1 the cube runs QK(j), PV(j - 1), QK(j + 1), PV(j), QK(j + 2), so K(j + 2)
may stream from the end of QK(j), three cube stages before QK(j + 2) needs it,
and V(j + 2) from the end of PV(j), three before PV(j + 2). One slot for K and
V together, freed by PV(j - nbuf), would put the whole load between PV(j) and
QK(j + 2), where the cube has nothing else to do: a block would cost load + QK
+ PV on the cube's path (3.44 ms at 32K, one head, d = 128, against 2.32 ms with
the buffers apart, both before P went through MTE2 and all of S through FixPipe).

**Aggregation (events are steps, not blocks).** A core's blocks (of all the
tiles it runs, one after another: the loop goes on from tile to tile without
draining) are grouped into at most ``MAX_STEPS`` steps: the first
``EDGE_STEPS`` blocks and the last ``EDGE_STEPS`` alone (the fill and the
drain), the middle ones in about equal groups of consecutive blocks. A step's
tasks carry the sum of its blocks' work. In the steady state the stages of
consecutive blocks repeat, so a group of r blocks overlaps like one block r
times longer; what aggregation loses is the flags inside a group: with
run-ahead (p ≥ 1) they are hidden by the overlap, without it (one-level
flash) each costs its latency on the critical path, so the grouped softmax
and PV tasks of a flash step carry the ``(r - 1)`` inner flags in their time.

The buffers aggregate the same way: a step of r blocks takes the place of
one block r times longer, so its K (V) takes a slot that the QK (PV) of step
s - nbuf frees (the block rule with steps for blocks). Then a run of equal
steps is the block pipeline with every duration times r: the same overlap,
the same time per block. Releasing instead at the block grain, from the step
that holds block ``a_s - nbuf`` (a_s: the step's first block; in the middle of
a walk the previous step), would start the load on time, but the step's QK
still waits for all r of its blocks' K, which the kernel loads during that
QK: it would expose r - 1 blocks' loads each step (d = 256, 16K, one head:
1.707 ms against 1.622 ms without aggregation; this rule 1.641 ms). What the
steps still lose against the block pipeline is the ramp from the one-block
edges to the middle steps: the vectors wait for a whole middle step's QK
(and its load) before their first middle softmax, and the drain waits for a
whole step's PV. How much that costs grows with how balanced the lanes are: at
32K, one head, d = 128, 3.23 ms against 2.83 ms without aggregation (14 %; MTE2,
vectors, cube and FixPipe all busy 40-66 % of the walk). The exact rule (a
consumer's step starting on its producer's first block and ending one block
after its last, as head, body and tail tasks, and QK(j + 1) interleaved with
PV(j) on the cube inside a step) is not built yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .chip import Builder

MAX_STEPS = 16  # steps per core at most (tasks per core about 10 x this)
EDGE_STEPS = 2  # blocks alone at each end of a core's walk (pipeline fill and drain)


@dataclass
class Block:
    """One key/value block of a query tile on one core (times in seconds)."""

    qk_s: float  # cube: S = Q·Kᵀ
    fix_s_s: float  # FixPipe: S out
    softmax_s: float  # one AIV's online softmax of its rows
    pv_s: float  # cube: P·V (MTE1 and MMADs; P's copy into L1 is ``p_bytes`` on MTE2)
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
    k_share: float = 0.5  # of the load's bytes, the share that is K (and Q): d / (d + d_v)
    p_bytes: float = 0.0  # P copied from the L2 workspace into L1 (split cores), on MTE2
    copies: float = 1.0  # MTE2 copies into L1 per part (K, V, P): one each per block
    actions: dict = field(default_factory=dict)


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


def _sum(blocks: list[Block]) -> Block:
    out = Block(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, k_share=blocks[0].k_share,  # one op's walk
                copies=0.0)
    for b in blocks:
        for name in ("qk_s", "fix_s_s", "softmax_s", "pv_s", "fix_o_s", "update_s", "final_s",
                     "load_hbm", "load_l2", "load_l2_slow", "mask_hbm", "pad_hbm", "pad_l2",
                     "store_bytes", "p_bytes", "copies"):
            setattr(out, name, getattr(out, name) + getattr(b, name))
        for a, v in b.actions.items():
            out.actions[a] = out.actions.get(a, 0.0) + v
    return out


def emit_cv_pipeline(bld: Builder, blocks: list[Block], *, core: int, vecs: list[int],
                     preload: int, sync_s: float, store_bw: float,
                     store_hbm_fraction: float = 1.0, deps=(), label: str = "attention"
                     ) -> tuple[int, ...]:
    """Emit one cube core's walk (``blocks`` in order) with its vector cores ``vecs``;
    returns the tasks its end waits for."""
    if not blocks:
        return ()
    chip = bld.chip
    ranges = _steps(len(blocks))
    steps = [_sum(blocks[a:b]) for a, b in ranges]
    inner_flags = [(b - a - 1) * sync_s if preload == 0 else 0.0 for a, b in ranges]
    n = len(steps)
    nbuf = max(2, preload + 1)  # K and V buffers each in L1: double buffered, + run-ahead
    # step s's K (V) goes into the slot that step s - nbuf's QK (PV) frees (docstring)
    frees = [s - nbuf if s >= nbuf else None for s in range(n)]
    freed: dict[int, list[int]] = {}
    for t, f in enumerate(frees):
        if f is not None:
            freed.setdefault(f, []).append(t)
    mte2, cube, fix = chip.aic(core, "mte2"), chip.aic(core, "cube"), chip.aic(core, "fixpipe")
    c_flag = chip.aic(core, "flag")
    deps = tuple(deps)
    load: list[tuple[int, ...]] = [()] * n
    kload: list[tuple[int, ...]] = [()] * n
    qk = [0] * n
    fs = [0] * n
    pv = [0] * n
    fo = [0] * n
    sm: list[list[int]] = [[] for _ in range(n)]
    up: list[list[int]] = [[] for _ in range(n)]
    last_cube: list[int] = []
    last_vec: dict[int, list[int]] = {v: [] for v in vecs}
    ends: list[int] = []

    def emit_load(s: int, part: str) -> None:
        st, f = steps[s], frees[s]
        share = st.k_share if part == "K" else 1.0 - st.k_share
        free = () if f is None else (qk[f],) if part == "K" else (pv[f],)
        out = bld.load(mte2, st.load_hbm * share, st.load_l2 * share, deps=(*deps, *free),
                       dest="l1", label=f"{label} {part} load", mask_bytes=st.mask_hbm * share,
                       hbm_pad=(st.pad_hbm + st.load_l2_slow) * share,
                       l2_pad=st.pad_l2 * share, l2_counted=st.load_l2_slow * share,
                       copies=st.copies)
        if part == "K":
            kload[s] = out
        else:
            load[s] = out

    def emit_qk(s: int) -> None:
        st = steps[s]
        slot = [v_end for v_end in sm[s - preload - 1]] if s - preload - 1 >= 0 else []
        qk[s] = bld.add(cube, st.qk_s, deps=(*kload[s], *last_cube, *slot), label=f"{label} QK",
                        actions=st.actions)
        last_cube[:] = [qk[s]]
        for t in freed.get(s, ()):
            emit_load(t, "K")
        fs[s] = bld.add(fix, st.fix_s_s, deps=(qk[s],), bound="onchip", label=f"{label} S out")
        flag = bld.add(c_flag, sync_s, deps=(fs[s],), bound="latency", label=f"{label} flag S")
        for v in vecs:
            t = bld.add(chip.aiv(v, "vector"), st.softmax_s + inner_flags[s],
                        deps=(flag, *last_vec[v]), label=f"{label} softmax")
            sm[s].append(t)
            last_vec[v] = [t]

    def emit_pv(s: int) -> None:
        st = steps[s]
        flags = [bld.add(chip.aiv(v, "flag"), sync_s, deps=(t,), bound="latency",
                         label=f"{label} flag P") for v, t in zip(vecs, sm[s])]
        p_in = bld.load(mte2, 0.0, st.p_bytes, deps=flags, dest="l1", label=f"{label} P load",
                        copies=st.copies) if st.p_bytes else ()
        pv[s] = bld.add(cube, st.pv_s + inner_flags[s],
                        deps=(*flags, *p_in, *load[s], *last_cube), label=f"{label} PV")
        last_cube[:] = [pv[s]]
        for t in freed.get(s, ()):
            emit_load(t, "V")
        fo[s] = bld.add(fix, st.fix_o_s, deps=(pv[s],), bound="onchip", label=f"{label} O out")
        flag = bld.add(c_flag, sync_s, deps=(fo[s],), bound="latency", label=f"{label} flag O")
        for v in vecs:
            t = bld.add(chip.aiv(v, "vector"), st.update_s + st.final_s,
                        deps=(flag, *last_vec[v]), label=f"{label} update")
            up[s].append(t)
            last_vec[v] = [t]
            if st.store_bytes:
                ends.extend(bld.store(chip.aiv(v, "mte3"), st.store_bytes / len(vecs),
                                      store_bw / len(vecs), hbm_fraction=store_hbm_fraction,
                                      deps=(t,), src="ub", label=f"{label} O store"))

    # MTE2 runs ahead by its buffers (a load is emitted once the task freeing its slot
    # is); the cube and the vectors in program order
    for part in ("K", "V"):  # the cube's QKs of the run-ahead come before its first PV
        for s in range(n):
            if frees[s] is None:
                emit_load(s, part)
    for s in range(min(n, preload)):
        emit_qk(s)
    for s in range(n):
        if s + preload < n:
            emit_qk(s + preload)
        emit_pv(s)
    return tuple(ends) + tuple(t for v in vecs for t in last_vec[v])
