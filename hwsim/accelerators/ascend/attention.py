"""Attention on Ascend: three strategies (workload ``tiling.attention``).

``standard``
    The unfused implementation, kernels one after another. A batched GEMM
    writes the scores ``S = Q·Kᵀ`` (fp16) to GM; a vector kernel scales them and
    adds the N × N mask read from GM (fp16, broadcast over heads; causal and
    sliding-window masks alike); a softmax kernel writes ``P``; a batched GEMM
    computes ``P·V``. Every block is computed. The intermediates stay in L2 as
    far as they fit (:class:`~hwsim.accelerators.ascend.chip.L2`: a smooth fraction),
    which is why short sequences suffer less than long ones. A block-sparse
    attention first gathers each query block's selected key (and value) rows
    into contiguous buffers; a value-pruned one (``v_len``) adds a top-k kernel
    over ``P`` and a kernel that gathers each row's selected value rows and
    weights them on the vector cores.

``flash``
    One-level FlashAttention-2: query blocks of ``block_q`` rows, key/value
    blocks of ``block_kv``, online softmax. On the split 910B the cube (AIC)
    and its two vector cores (AIV) hand each block over through a GM workspace
    (held in L2) with a cross-core flag per hand-off (``cv_sync_s``). Per block
    the two alternate: QKᵀ on the cube, softmax on the vectors, P·V on the
    cube, the rescale of the output on the vectors; the vector block must fit
    the UB, so blocks stay small and the flags are many.

``fastattention``
    FastAttention's two-level tiling (Lin et al., arXiv 2410.16663): first-level
    key/value blocks of ``block_kv`` for the cube, each cut into second-level
    blocks that fit the UB for the vector cores. One hand-off per first-level
    block, and the cube runs one block ahead (QKᵀ of block j+1 while the
    vectors do softmax j), so cube and vectors overlap. ``tiling.qk_preload``
    sets another run-ahead: a kernel such as the PTO FlashAttention kernel
    (``qkPreloadNum`` 4, 128 x 256-key tiles in 128-key cube subtiles) is this
    strategy with its blocks and preload given.

What the fused kernels share:

* **Grouped queries (GQA/MQA).** A key/value head serves ``heads / kv_heads``
  query heads. Their queries are packed into the cube's query tile, rows
  ordered position by position (FlashAttention-2's and flash-decoding's GQA
  packing; CANN's IncreFlashAttention does the same for decode): a tile holds
  ``block_q // group`` positions of all the group's heads, so the head's K and
  V stream through the cube once for the whole group. A decode step's tile is
  the group's ``group`` query rows.
* **Split-KV (flash-decoding).** When there are fewer query tiles than cube
  cores (a decode step, a short prompt on few heads), each tile's walk over
  its keys is cut into ``cores // tiles`` chunks on different cores; each
  writes a partial output with its row max and sum to a GM workspace (in L2),
  and after a cross-core flag the vector cores combine them and write O.
* **Masks.** With ``tiling_mask`` (default on) no N × N mask is in HBM: key
  blocks wholly under a causal or sliding-window mask are skipped, the blocks
  the mask crosses are masked on chip with one small mask tile (a ``select``
  per score); a walk starts and ends at the second-level block (``block_kv`` for
  one-level flash) holding the first and last key some query of the tile sees.
  Off: every block is computed and reads its mask rows from GM
  (mask bytes read from HBM are also counted under ``mask_dram_read``).
* **Sparse keys.** ``sparse_keys`` keys per block of ``sparse_block`` queries,
  each query head its own selection: a tile is one head's block of queries,
  walking its selected key rows, gathered where they lie in K and V (each row
  its own transfer: a row shorter than a 512-byte burst costs a burst's time).
* **Value pruning.** With ``v_len`` each query row weights only the ``v_len``
  values of its largest probabilities (SpAtten's local value pruning): the
  kernel walks the keys as usual (QKᵀ on the cube; scale, max, exp and sum and
  the sort unit's runs of 32 on the vector cores), then merges the runs into
  the row's top ``v_len`` (the cost of :func:`~.vector.topk_cycles`), gathers
  those value rows and weights them on the vector cores (the rows differ from
  query to query, so the cube has no GEMM to run).
* **K/V re-reads and the L2.** A head's keys and values come from HBM the first
  time (only the rows some query uses: the window's, the selected ones); the
  other tiles of the head re-read them, from L2 as far as the heads in flight
  fit in the half of the L2 kept for reuse: in flight are the heads the cube
  cores are working on, ``cores / tiles per head + 1`` of them (one for a
  one-head op); when they do not fit, the fraction that does is hit and the
  rest re-read from HBM (:func:`~.chip.reuse_hit_fraction`), so the traffic
  grows smoothly with the length instead of jumping. Which tile's read of a
  row is the first is a matter of timing (the tiles of a head run at once on
  many cores, the others waiting for that fetch), so each tile takes the
  head's share of the HBM bytes and moves all its rows at one HBM stream's
  rate: the L2 saves HBM traffic, not MTE2 time.
* **Order.** A head's tiles go longest first (LPT) to the least loaded cube
  core, heads one after another; with fewer tiles than cores, split-KV.

``auto`` is ``fastattention``, what the vendor's fused kernel does on Ascend.
Block sizes come from the workload (``block_q``, ``block_kv``) or from a search
over sizes that fit the buffers (by steady-state throughput, the same for every
length, as a library's tiling table is). A given size that does not fit is an
error naming the buffer.
"""

from __future__ import annotations

import functools
import heapq
import math
from collections import Counter
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter, sub
from typing import NamedTuple

from hwsim.engine.deal import deal
from hwsim.errors import InputError
from hwsim.ir import AttentionShape
from hwsim.ir.kinds import flops as op_flops

from .chip import L2, Builder, Chip, cdiv, reuse_hit_fraction
from .cv_pipeline import Block, add_tile_actions, closed_form, emit_cv_pipeline
from .gemm import cube_cycles, emit_gemm, padded_macs
from .pipeline import Item, append, emit_pipeline
from .vector import (
    ROW_TAIL_CYCLES,
    SOFTMAX,
    In,
    cycles_per_element,
    emit_vector_kernel,
    nbytes,
    topk_cycles,
)

STRATEGIES = ("standard", "flash", "fastattention")
# online softmax per score: scale, row max, subtract it, exp, row sum, to fp16
ONLINE_SOFTMAX = ("mul", "reduce", "sub", "exp", "reduce", "cast")
# value pruning: the same statistics, no P (the scores are sorted instead)
SCORE_STATS = ("mul", "reduce", "sub", "exp", "reduce")
UPDATE = ("mul", "add")  # O = O·exp(m_old - m_new) + P·V
FINAL = ("mul", "cast")  # O / l, to fp16
GATHER_FMA = ("cast", "fma")  # a gathered fp16 value row to fp32, times its probability
PROB = ("sub", "exp", "mul")  # a selected score to its probability
ACC = 4  # fp32 scores and accumulators
SORTED = 8  # one (score, index) pair of the sort unit
CAP_STAGES = 64  # identical consecutive tiles of a core are merged up to this many blocks


@dataclass(frozen=True)
class Blocks:
    bq: int  # query rows per block
    b1: int  # first-level key/value block (the cube's)
    b2: int  # second-level block (the vector cores'); b1 for one-level flash


def strategy_of(tiling) -> str:
    name = getattr(tiling, "attention", "auto") if tiling is not None else "auto"
    return "fastattention" if name == "auto" else name


def preload_of(tiling, two_level: bool) -> int:
    """How many key blocks the cube runs ahead of the vector cores: none for one-level
    flash; FastAttention's one (its cube "one block ahead"), or a kernel's own depth
    (``qk_preload`` of the workload's :class:`hwsim.workload.schema.Tiling`: the PTO
    kernel's ``qkPreloadNum``)."""
    if not two_level:
        return 0
    return max(1, int(getattr(tiling, "qk_preload", 0) or 1))


def tiling_mask_of(tiling) -> bool:
    return bool(getattr(tiling, "tiling_mask", True)) if tiling is not None else True


def lower_attention(bld: Builder, l2: L2, op, graph, tiling) -> None:
    _check_dtype(bld.chip, graph.tensors[op.inputs[0]].dtype)
    strategy = strategy_of(tiling)
    if strategy != "fastattention" and (getattr(tiling, "qk_preload", 0) or 0) > 0:
        raise InputError(f"the cube's run-ahead of the two-level fused attention "
                         f"(fastattention or auto); {strategy} has none",
                         source="workload", field="tiling.qk_preload")
    if strategy == "standard":
        _standard(bld, l2, op, graph)
    else:
        _fused(bld, l2, op, graph, tiling, two_level=strategy == "fastattention")



def _check_dtype(chip: Chip, dtype: str) -> None:
    chip.cube_dtype(dtype)  # raises for a type the cube has no mode for


def describe(chip: Chip, op, graph, tiling) -> str:
    """The strategy, block sizes, packing and split an attention op runs with."""
    strategy = strategy_of(tiling)
    att = AttentionShape.of(op, graph)
    extra = []
    if att.sparse_keys:
        extra.append(f"{att.sparse_keys} gathered keys per {att.sparse_block} queries")
    if att.selects_values:
        extra.append(f"top-{att.values} values per row")
    if strategy == "standard":
        kernels = "bmm, scale+mask, softmax, bmm" if att.masked and not att.sparse_keys else \
            "bmm, scale, softmax, bmm"
        if att.sparse_keys:
            kernels = "gather K, " + kernels.replace("softmax, bmm", "softmax, gather V, bmm")
        if att.selects_values:
            kernels = kernels.replace(", bmm", ", top-k, gather+weigh V").replace(
                "gather V, top-k", "top-k")
        return "; ".join([f"standard: {kernels}", *extra])
    plan = _plan(chip, att, tiling, strategy == "fastattention")
    blk = plan.blocks
    level2 = f"/{blk.b2}" if strategy == "fastattention" else ""
    parts = [f"{strategy}: blocks q {blk.bq} x kv {blk.b1}{level2}"]
    preload = preload_of(tiling, strategy == "fastattention")
    if preload > 1:
        parts.append(f"cube {preload} blocks ahead")
    if att.masked and not att.sparse_keys:
        parts.append("tiling-mask" if plan.skip else "N x N mask from HBM")
    if att.group > 1 and not att.sparse_keys:
        parts.append(f"{att.group} query heads per K/V head in one tile")
    if plan.split > 1:
        parts.append(f"split-KV over {plan.split} cores")
    rounds = cdiv(att.batch * att.kv_heads * len(plan.items), chip.n_cube)
    if rounds > 1:
        parts.append(f"{rounds} rounds of tiles on {chip.n_cube} cube cores")
    return "; ".join(parts + extra)


def executed_flops(chip: Chip, op, graph, tiling) -> int:
    """FLOPs the kernels execute: every element of each score block they compute.

    The standard kernels, and the fused ones without tiling-mask, compute every
    block (the counted FLOPs); with tiling-mask the fused kernels skip the key
    blocks wholly under a causal or sliding-window mask, at the granularity of
    their tiles (``block_q // group`` query positions by one second-level block of
    keys: a first-level block is computed up to the last second-level block some
    query of the tile sees, :func:`hwsim.ir.kinds.visible_scores`); value pruning weights
    ``min(v_len, keys walked)`` values per query row.
    """
    att = AttentionShape.of(op, graph)
    strategy = strategy_of(tiling)
    if strategy == "standard" or att.sparse_keys:
        return op_flops(op)
    plan = _plan(chip, att, tiling, strategy == "fastattention")
    if not plan.skip:
        return op_flops(op)
    # per K/V head: the score elements its tiles compute, and the values they weight
    scores = values = 0
    selects, v_len = att.selects_values, att.values
    for t in plan.tiles:
        walk = t.k1 - t.k0
        scores += t.rows * walk
        values += t.rows * (walk if not selects else min(v_len, walk))
    # (scores is att.group * visible_scores(q_len, kv_len, causal, window, plan.positions,
    # plan.blocks.b2): the IR's count of the same tiles; a test holds the two equal, a
    # check here imported numpy into a long prefill's run for its 2,000-block counts)
    return int(att.batch * att.kv_heads * (2 * scores * att.head_dim + 2 * values * att.v_head_dim))


# ---------------------------------------------------------------------- standard
def _standard(bld: Builder, l2: L2, op, graph) -> None:
    att = AttentionShape.of(op, graph)
    chip = bld.chip
    spec = chip.spec
    b, h, hk, d, dv = att.batch, att.heads, att.kv_heads, att.head_dim, att.v_head_dim
    q, kv, g = att.q_len, att.kv_len, att.group
    by = nbytes(att.dtype)
    name = op.name or "attention"
    _extra_inputs(bld, op, graph, deps=())
    rows = b * h * q
    if att.sparse_keys:  # each block of sb queries of a head scores its own sk gathered keys
        nblk = cdiv(q, att.sparse_block)
        start = bld.launch(label="launch gather K")
        ends = _gather_rows(bld, l2, att, "K", att.head_dim, att.sparse_keys, deps=(start,),
                            label=f"{name} gather K")
        start = bld.launch(deps=ends, label="launch bmm QK")
        ends = emit_gemm(bld, l2, batch=b * h * nblk, m=min(att.sparse_block, q),
                         n=att.sparse_keys, k=d,
                         dtype=att.dtype, a="Q", b="K'", out="S", deps=(start,),
                         label=f"{name} QK", keep_out_in_l2=True)
        l2.release("K'")
        cols = att.sparse_keys
    else:  # the group's query heads as the rows of one GEMM per K/V head
        start = bld.launch(label="launch bmm QK")
        ends = emit_gemm(bld, l2, batch=b * hk, m=g * q, n=kv, k=d, dtype=att.dtype, a="Q",
                         b="K", out="S", deps=(start,), label=f"{name} QK",
                         keep_out_in_l2=True)
        cols = kv
    start = bld.launch(deps=ends, label="launch scale+mask")
    ins = [In("S", cols * by)]
    fns: tuple[str, ...] = ("mul",)
    if att.masked and not att.sparse_keys:  # the N x N mask (causal and/or window), shared by heads
        ins.append(In("mask", kv * by, period=q, mask=True))
        fns = ("mul", "add")
    ends = emit_vector_kernel(bld, l2, units=rows, ins=ins, out="S2",
                              out_bytes_per_unit=cols * by,
                              cycles_per_unit=cycles_per_element(spec, fns, att.dtype) * cols,
                              ub_per_unit=cols * by * (len(ins) + 1), label=f"{name} scale+mask",
                              deps=(start,), reread_fraction=0.0, release=("S",),
                              keep_out_in_l2=True)
    start = bld.launch(deps=ends, label="launch softmax")
    per = cycles_per_element(spec, SOFTMAX, "fp32") * cols + 2 * ROW_TAIL_CYCLES
    ends = emit_vector_kernel(bld, l2, units=rows, ins=[In("S2", cols * by)], out="P",
                              out_bytes_per_unit=cols * by, cycles_per_unit=per,
                              ub_per_unit=cols * (2 * by + 2 * ACC), label=f"{name} softmax",
                              deps=(start,), reread_fraction=1.0, release=("S2",),
                              keep_out_in_l2=True)
    if att.selects_values:
        # the top v_len probabilities of each row (values and key indices) ...
        start = bld.launch(deps=ends, label="launch top-k")
        vl = att.values
        ends = emit_vector_kernel(bld, l2, units=rows, ins=[In("P", cols * by)], out="Ptop",
                                  out_bytes_per_unit=vl * (by + 4),
                                  cycles_per_unit=topk_cycles(spec, cols),
                                  ub_per_unit=cols * (by + SORTED), label=f"{name} top-k",
                                  deps=(start,), reread_fraction=1.0, release=("P",),
                                  keep_out_in_l2=True)
        # ... then each row gathers its v_len value rows and weighs them (vector FMAs)
        start = bld.launch(deps=ends, label="launch gather+weigh V")
        row = dv * by
        frac = _gather_hbm_fraction(l2, att, rows * vl * row, att.value_rows * row)
        per = vl * dv * cycles_per_element(spec, GATHER_FMA, "fp32") \
            + dv * cycles_per_element(spec, FINAL, "fp32")
        emit_vector_kernel(bld, l2, units=rows,
                           ins=[In("Ptop", vl * (by + 4)), In("V", vl * row, hbm_fraction=frac)],
                           out="O", out_bytes_per_unit=row, cycles_per_unit=per,
                           fixed_cycles_per_unit=vl * spec.gather_row_cycles,
                           ub_per_unit=vl * (by + 4) + 2 * row + dv * ACC,
                           label=f"{name} gather+weigh V", deps=(start,), release=("Ptop",),
                           pad_per_unit=vl * (chip.burst(1, row) - row))
        return
    if att.sparse_keys:
        start = bld.launch(deps=ends, label="launch gather V")
        ends = _gather_rows(bld, l2, att, "V", att.v_head_dim, att.sparse_keys, deps=(start,),
                            label=f"{name} gather V")
        start = bld.launch(deps=ends, label="launch bmm PV")
        emit_gemm(bld, l2, batch=b * h * cdiv(q, att.sparse_block), m=min(att.sparse_block, q),
                  n=dv, k=att.sparse_keys,
                  dtype=att.dtype, a="P", b="V'", out="O", deps=(start,), label=f"{name} PV")
        return
    start = bld.launch(deps=ends, label="launch bmm PV")
    emit_gemm(bld, l2, batch=b * hk, m=g * q, n=dv, k=kv, dtype=att.dtype, a="P", b="V",
              out="O", deps=(start,), label=f"{name} PV")


def _gather_hbm_fraction(l2: L2, att: AttentionShape, moved: float,
                         unique_per_head: float) -> float:
    """Fraction of ``moved`` gathered bytes that come from HBM: each head's distinct
    rows once, the re-reads from L2 as far as a head's rows fit."""
    heads = att.batch * att.kv_heads
    if moved <= 0:
        return 1.0
    unique = min(moved, heads * unique_per_head)
    hit = reuse_hit_fraction(unique_per_head, l2.reuse_bytes())
    return (unique + (moved - unique) * (1.0 - hit)) / moved


def _gather_rows(bld: Builder, l2: L2, att: AttentionShape, what: str, width: int, keys: int,
                 *, deps, label: str) -> list[int]:
    """A vector kernel copying each query block's selected rows of ``what`` (K or V)
    into a contiguous buffer (``what'``, kept in L2 as far as it fits)."""
    chip = bld.chip
    row = width * nbytes(att.dtype)
    units = att.batch * att.heads * cdiv(att.q_len, att.sparse_block) * keys
    unique = (att.key_rows if what == "K" else att.value_rows) * row
    frac = _gather_hbm_fraction(l2, att, units * row, unique)
    return emit_vector_kernel(bld, l2, units=units, ins=[In(what, row, hbm_fraction=frac)],
                              out=f"{what}'", out_bytes_per_unit=row, cycles_per_unit=0.0,
                              fixed_cycles_per_unit=chip.spec.gather_row_cycles,
                              ub_per_unit=row, label=label, deps=deps, keep_out_in_l2=True,
                              pad_per_unit=chip.burst(1, row) - row)


def _extra_bytes(op, graph) -> float:
    return float(sum(graph.stored_bytes(i) for i in op.inputs[3:]))


def _extra_inputs(bld: Builder, op, graph, deps) -> None:
    """Inputs beyond Q, K and V (an explicit mask): read once from HBM by core 0."""
    extra = _extra_bytes(op, graph)
    if extra:
        bld.load(bld.chip.aic(0, "mte2"), extra, 0.0, deps=deps, label="attention inputs")


# ---------------------------------------------------------------------- fused
@dataclass(frozen=True)
class _Costs:
    """Per-block costs of a fused attention on one chip, in seconds."""

    chip: Chip
    d: int
    dv: int
    dtype: str
    blocks: Blocks
    rows_per_vec: int
    memo: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def stage(self, name: str, *args) -> float:
        key = (name, *args)
        got = self.memo.get(key)
        if got is None:
            got = self.memo[key] = getattr(self, name)(*args)
        return got

    def block_times(self, rb: int, w: int, mask_op: str | None, final: bool) -> tuple:
        """A block's seven stage times (qk, fix_s, softmax, pv, fix_o, update, final;
        final 0 unless ``final``), each :meth:`stage`'s: one look-up for the seven (a
        tile's runs ask for them once each, thousands of times a model)."""
        key = ("block", rb, w, mask_op, final)
        got = self.memo.get(key)
        if got is None:
            st = self.stage
            got = self.memo[key] = (
                st("qk", rb, w), st("fix_s", rb, w), st("softmax", rb, w, mask_op),
                st("pv", rb, w), st("fix_o", rb), st("update", rb),
                st("final", rb) if final else 0.0)
        return got

    def qk(self, rb: int, w: int) -> float:
        c, s = self.chip, self.chip.spec
        mma = cube_cycles(c, rb, w, self.d, self.dtype) + s.cube_issue_cycles * cdiv(w, 128)
        mte1 = w * self.d * nbytes(self.dtype) / s.mte1_l0b_bytes_per_cycle
        return c.cycles(max(mma, mte1))

    def fix_s(self, rb: int, w: int) -> float:
        return rb * min(w, self.piece_cols()) * ACC / self.chip.fixpipe_bw

    def piece_cols(self) -> int:
        """Score columns L0C holds beside the P·V accumulator, a multiple of 16."""
        free = self.chip.spec.l0c_bytes - self.blocks.bq * self.dv * ACC
        return max(16, int(free // (self.blocks.bq * ACC)) // 16 * 16)

    def softmax(self, rb: int, w: int, mask_op: str | None, sort: bool = False) -> float:
        """One block's online softmax on one vector core (its share of the rows); with
        ``sort`` (value pruning) the statistics and the sort unit's runs of 32."""
        c, s = self.chip, self.chip.spec
        rv = cdiv(rb, c.vec_per_cube)
        fns = (SCORE_STATS if sort else ONLINE_SOFTMAX) + ((mask_op,) if mask_op else ())
        cpe = cycles_per_element(s, fns, "fp32")
        if sort:
            cpe += s.vector_cycles_per_repeat["sort32"] / 32
        out_bytes = SORTED if sort else nbytes(self.dtype)
        # the block in second-level pieces, double buffered: while piece k computes,
        # piece k + 1 comes in and piece k - 1 goes out (S in from the workspace, P out)
        # (``w // w2`` whole pieces and the rest: each piece's times made once per width)
        w2 = self.blocks.b2
        tail = 2 * ROW_TAIL_CYCLES * cdiv(rv, 8)
        ins, comps, outs = [], [], []
        full, rest = divmod(w, w2) if w > 0 else (0, 0)
        for ww, n in ((w2, full), (rest, 1 if rest else 0)):
            if n:
                ins += [rv * ww * ACC / c.l2_read_bw if c.split else 0.0] * n
                comps += [c.cycles(rv * ww * cpe + tail)] * n
                outs += [rv * ww * out_bytes / c.mte3_bw] * n
        m = len(comps)
        total = ins[0] + outs[-1] + sum(
            max(ins[k + 1] if k + 1 < m else 0.0, comps[k], outs[k - 1] if k else 0.0)
            for k in range(m))
        stats = c.cycles(4 * cdiv(rv, 64) * s.vector_cycles_per_repeat["exp"])
        return total + stats

    def pv(self, rb: int, w: int) -> float:
        c, s = self.chip, self.chip.spec
        by = nbytes(self.dtype)
        mma = cube_cycles(c, rb, self.dv, w, self.dtype) + s.cube_issue_cycles * cdiv(w, 128)
        mte1 = (w * self.dv * by / s.mte1_l0b_bytes_per_cycle
                + rb * w * by / s.mte1_l0a_bytes_per_cycle)
        p_load = rb * w * by / c.l2_read_bw if c.split else 0.0
        fill = rb * min(w, self.blocks.b2) * by / c.l2_read_bw if c.split else 0.0
        return max(c.cycles(max(mma, mte1)), p_load) + fill

    def fix_o(self, rb: int) -> float:
        return rb * self.dv * ACC / self.chip.fixpipe_bw

    def update(self, rb: int) -> float:
        c = self.chip
        rv = cdiv(rb, c.vec_per_cube)
        tin = rv * self.dv * ACC / c.l2_read_bw if c.split else 0.0
        return tin + c.cycles(rv * self.dv * cycles_per_element(c.spec, UPDATE, "fp32"))

    def final(self, rb: int) -> float:
        c = self.chip
        rv = cdiv(rb, c.vec_per_cube)
        return c.cycles(rv * self.dv * cycles_per_element(c.spec, FINAL, "fp32"))

    def vtail(self, rb: int, walk: int, values: int) -> float:
        """Value pruning after the walk, on one vector core's rows: merge the sorted
        runs of ``walk`` scores into the row's top ones, turn the ``values`` selected
        scores into probabilities, and weigh their gathered value rows."""
        c, s = self.chip, self.chip.spec
        rv = cdiv(rb, c.vec_per_cube)
        merge = topk_cycles(s, walk) - cdiv(walk, 32) * s.vector_cycles_per_repeat["sort32"]
        runs_in = rv * walk * SORTED / c.l2_read_bw if c.split else 0.0
        cyc = rv * (merge + values * cycles_per_element(s, PROB, "fp32")
                    + values * self.dv * cycles_per_element(s, GATHER_FMA, "fp32")
                    + values * s.gather_row_cycles)
        return runs_in + c.cycles(cyc)


def _costs_of(chip: Chip, d: int, dv: int, dtype: str, blk: Blocks, rv: int) -> _Costs:
    """The op's :class:`_Costs`, kept on the chip per equal fields: its stage times are
    pure functions of their arguments, so a model's layers (whose blocks differ in the
    last widths only) share the ones they have in common."""
    kept = chip.__dict__.setdefault("_attention_costs", {})
    key = (d, dv, dtype, blk, rv)
    got = kept.get(key)
    if got is None or len(got.memo) > 50_000:  # (bounded: a stage's key holds its widths)
        got = kept[key] = _Costs(chip, d, dv, dtype, blk, rv)
    return got


def _chain(costs: _Costs, rb: int, widths: tuple[int, ...], masked: tuple[str, ...],
           two_level: bool, warm: bool = False, finish: bool = True,
           vtail: tuple[int, int] | None = None) -> tuple[float, float, float]:
    """(latency, cube busy, vector busy) of one query tile's walk over its key blocks.

    With ``warm``, the tile follows another on the same core (the kernel's loop
    over tiles runs on without a break): the latency is the extra time over a
    full-width block alone, so the pipeline fill is paid once per core.
    ``finish``: the tile ends with O / l (a split-KV chunk leaves that to the
    combine). ``vtail`` = (keys walked, values weighted): value pruning, whose
    walk has no P·V on the cube and ends with the selection on the vectors.
    """
    if warm:
        b1 = costs.blocks.b1
        whole = _chain(costs, rb, (b1, *widths), ("", *masked), two_level, False, finish, vtail)
        key = ("alone", rb, two_level, finish, vtail is not None)
        alone = costs.memo.get(key)
        if alone is None:
            alone = costs.memo[key] = _chain(costs, rb, (b1,), ("",), two_level, False, finish,
                                             (0, 0) if vtail is not None else None)
        cube, vec = max(0.0, whole[1] - alone[1]), max(0.0, whole[2] - alone[2])
        # the added time is at least the added work of each engine (the block alone may
        # have left the cube idle where the longer walk fills it)
        return max(whole[0] - alone[0], cube, vec), cube, vec
    sync = costs.chip.spec.cv_sync_s
    J = len(widths)
    stage = costs.stage
    fin = stage("final", rb) if finish else 0.0
    # (each stage looked up once per distinct width: a walk has one or two)
    distinct = set(widths)
    qk = list(map({w: stage("qk", rb, w) for w in distinct}.__getitem__, widths))
    fs = list(map({w: stage("fix_s", rb, w) for w in distinct}.__getitem__, widths))
    if vtail is not None:
        sm = [stage("softmax", rb, w, m or None, True) for w, m in zip(widths, masked)]
        c_end = v_end = 0.0
        for j in range(J):
            if not two_level:  # one level: the cube waits for the vectors' block
                c_end = max(c_end, v_end)
            c_end += qk[j]
            v_end = max(v_end, c_end + fs[j] + sync) + sm[j]
        tail = stage("vtail", rb, *vtail)
        latency = v_end + tail + fin
        return latency, sum(qk) + sum(fs), sum(sm) + tail + fin
    sm_of = {wm: stage("softmax", rb, wm[0], wm[1] or None) for wm in set(zip(widths, masked))}
    sm = list(map(sm_of.__getitem__, zip(widths, masked)))
    pv = list(map({w: stage("pv", rb, w) for w in distinct}.__getitem__, widths))
    fo = stage("fix_o", rb)
    up = stage("update", rb)
    if not two_level:  # one level: strictly block after block (each block's QK, softmax,
        c = v = 0.0  # PV and update in turn, as run_qk, run_sm, run_pv, run_up below)
        for j in range(J):
            c = c + qk[j]
            qk_end_j = c + fs[j]
            v = max(v, qk_end_j + sync) + sm[j]
            c = max(c, v + sync) + pv[j]
            v = max(v, (c + fo) + sync) + up
        cube = sum(qk) + sum(pv) + sum(fs) + J * fo
        vec = sum(sm) + J * up + fin
        return max(v + fin, c), cube, vec
    st = {"c": 0.0, "v": 0.0}
    qk_end = [0.0] * J
    sm_end = [0.0] * J
    pv_end = [0.0] * J

    def run_qk(j):
        end = st["c"] + qk[j]
        st["c"] = end
        qk_end[j] = end + fs[j]

    def run_sm(j):
        sm_end[j] = st["v"] = max(st["v"], qk_end[j] + sync) + sm[j]

    def run_pv(j):
        end = max(st["c"], sm_end[j] + sync) + pv[j]
        st["c"] = end
        pv_end[j] = end + fo

    def run_up(j):
        st["v"] = max(st["v"], pv_end[j] + sync) + up

    # two levels: the cube runs one block ahead of the vector cores
    run_qk(0)
    if J > 1:
        run_qk(1)
    run_sm(0)
    run_pv(0)
    for j in range(1, J):
        run_sm(j)
        run_up(j - 1)
        if j + 1 < J:
            run_qk(j + 1)
        run_pv(j)
    run_up(J - 1)
    latency = st["v"] + fin
    cube = sum(qk) + sum(pv) + sum(fs) + J * fo
    vec = sum(sm) + J * up + fin
    return max(latency, st["c"]), cube, vec


def _check_blocks(chip: Chip, blk: Blocks, d: int, dv: int, dtype: str, mask_tile: bool,
                  two_level: bool) -> None:
    """Raise naming the buffer a block size does not fit."""
    s = chip.spec
    by = nbytes(dtype)
    rv = cdiv(blk.bq, chip.vec_per_cube)
    need = {
        "L1": blk.bq * d * by + 2 * blk.b2 * (d + dv) * by + 2 * blk.bq * blk.b2 * by,
        "L0A": blk.bq * d * by,
        "L0C": blk.bq * 16 * ACC + blk.bq * dv * ACC,  # a score piece beside the P·V block
        "UB": rv * (2 * blk.b2 * ACC + 2 * blk.b2 * by + 2 * dv * ACC)
              + (rv * blk.b2 * by if mask_tile else 0),
    }
    have = {"L1": s.l1_bytes, "L0A": s.l0a_bytes, "L0C": s.l0c_bytes, "UB": s.ub_bytes}
    for buf in ("UB", "L1", "L0C", "L0A"):
        if need[buf] > have[buf]:
            what = (f"block_q={blk.bq}, block_kv={blk.b1}" + (f" (second level {blk.b2})"
                                                               if two_level else ""))
            field = "tiling.block_kv" if buf in ("UB", "L1") else "tiling.block_q"
            raise InputError(f"attention tile {what} does not fit the {buf} buffer: needs "
                             f"{need[buf] / 1024:.0f} KiB, {buf} has {have[buf] / 1024:.0f} KiB",
                             source="workload", field=field)


def _fits(chip, blk, d, dv, dtype, mask_tile, two_level) -> bool:
    try:
        _check_blocks(chip, blk, d, dv, dtype, mask_tile, two_level)
    except InputError:
        return False
    return True


def _choose_blocks(chip: Chip, tiling, d: int, dv: int, dtype: str, two_level: bool,
                   mask_tile: bool) -> Blocks:
    """The workload's block sizes (checked), or the fitting ones of the best steady-state
    throughput. The choice does not depend on the lengths (a tiling table of a
    library), so a longer sequence runs the same tiles over more blocks."""
    key = (id(chip.spec), d, dv, dtype, two_level, mask_tile,
           getattr(tiling, "block_q", 0) or 0, getattr(tiling, "block_kv", 0) or 0)
    got = _BLOCKS.get(key)
    if got is not None and got[0] is chip.spec:
        return got[1]
    bq_given = getattr(tiling, "block_q", 0) or 0
    b1_given = getattr(tiling, "block_kv", 0) or 0
    bqs = [bq_given] if bq_given else [64, 128, 256]
    if two_level:
        b1s = [b1_given] if b1_given else [256, 512, 1024, 2048]
    else:
        b1s = [b1_given] if b1_given else [64, 128, 256]
    best = None
    for bq in bqs:
        for b1 in b1s:
            b2s = [x for x in (512, 256, 128, 64) if x <= b1 and b1 % x == 0] if two_level \
                else [b1]
            for b2 in b2s or [b1]:
                blk = Blocks(bq, b1, b2)
                if not _fits(chip, blk, d, dv, dtype, mask_tile, two_level):
                    continue
                est = _estimate(chip, blk, d, dv, dtype, two_level)
                if best is None or est < best[0]:
                    best = (est, blk)
                break  # the largest fitting second level
    if best is None:  # nothing fits: report the (first) given or smallest size
        blk = Blocks(bqs[0], b1s[0], b1s[0] if not two_level else min(128, b1s[0]))
        _check_blocks(chip, blk, d, dv, dtype, mask_tile, two_level)
        raise InputError("no attention block size fits the buffers", source="workload",
                         field="tiling.block_kv")
    if len(_BLOCKS) > 256:
        _BLOCKS.clear()
    _BLOCKS[key] = (chip.spec, best[1])
    return best[1]


_BLOCKS: dict = {}


def _estimate(chip, blk, d, dv, dtype, two_level) -> float:
    """Steady-state time per score element with these blocks (for the search)."""
    rv = cdiv(blk.bq, chip.vec_per_cube)
    costs = _Costs(chip, d, dv, dtype, blk, rv)
    w = blk.b1
    qk, sm, pv = costs.qk(blk.bq, w), costs.softmax(blk.bq, w, None), costs.pv(blk.bq, w)
    fs, fo, up = costs.fix_s(blk.bq, w), costs.fix_o(blk.bq), costs.update(blk.bq)
    sync = chip.spec.cv_sync_s
    if two_level:
        step = max(qk + pv + fs + fo, sm + up, (qk + fs + sync + sm + sync + pv + fo + sync) / 2)
    else:
        step = qk + fs + sync + sm + sync + pv + fo + sync + up
    return step / (blk.bq * w)


class Tile(NamedTuple):
    """One query tile of a K/V head (or one split-KV chunk of it). A named tuple: a
    long causal op has thousands of tiles per layer, made in a fifth of a frozen
    dataclass's time."""

    rows: int  # query rows in the cube's tile (positions x query heads)
    positions: int  # query positions they span (rows of the mask)
    heads: int  # query heads in the tile (runs of Q and O)
    k0: int  # its key range [k0, k1): whole key blocks of the walk
    k1: int
    widths: tuple[int, ...]  # key blocks walked
    masks: tuple[str, ...]  # on-chip mask op per block ("": none)
    gathered: bool  # the keys are selected rows (block-sparse), not a contiguous range
    first: bool  # the first chunk of its tile (it loads Q)
    mask_key: tuple  # identifies the mask rows it reads (shared by the group's heads)
    full: int  # keys the whole tile walks (a split-KV chunk walks part of them)
    need: tuple[int, int] = (0, 0)  # keys every query of the tile sees (unmasked blocks)


@dataclass(frozen=True)
class Plan:
    blocks: Blocks
    positions: int  # query positions per tile (0: block-sparse tiles)
    skip: bool  # key blocks wholly under the mask are skipped (tiling-mask)
    mask_from_gm: bool
    split: int  # split-KV chunks per tile
    tiles: tuple[Tile, ...]  # the tiles of one K/V head, before the split
    items: tuple[Tile, ...]  # the same after the split, in issue order


def _plan(chip: Chip, att: AttentionShape, tiling, two_level: bool) -> Plan:
    """The tiles of one K/V head (the lowering, the detail line and the executed FLOPs
    share one plan per op)."""
    key = (id(chip.spec), att, two_level, tiling_mask_of(tiling),
           getattr(tiling, "block_q", 0) or 0, getattr(tiling, "block_kv", 0) or 0)
    got = _PLANS.get(key)
    if got is not None and got[0] is chip.spec:
        return got[1]
    plan = _make_plan(chip, att, tiling, two_level)
    if len(_PLANS) > 64:
        _PLANS.clear()
    _PLANS[key] = (chip.spec, plan)
    return plan


_PLANS: dict = {}


def _make_plan(chip: Chip, att: AttentionShape, tiling, two_level: bool) -> Plan:
    mask_tile = tiling_mask_of(tiling)
    blk = _choose_blocks(chip, tiling, att.head_dim, att.v_head_dim, att.dtype, two_level,
                         mask_tile)
    skip = att.masked and mask_tile and not att.sparse_keys
    mask_from_gm = att.masked and not mask_tile and not att.sparse_keys
    mask_op = "select" if mask_tile else "add"
    tiles: list[Tile] = []
    if att.sparse_keys:  # each query head's blocks of sb queries, each its own selection of keys
        positions = 0
        nblk = cdiv(att.q_len, att.sparse_block)
        inner = "select" if att.causal and att.sparse_block > 1 else ""
        widths = _widths(0, att.sparse_keys, blk.b1)  # (every tile walks the same blocks)
        masks = (inner,) * len(widths)
        for hd in range(att.group):
            for qb in range(nblk):
                p_lo, p_hi = qb * att.sparse_block, min(att.q_len, (qb + 1) * att.sparse_block)
                for p0 in range(p_lo, p_hi, blk.bq):
                    n = min(blk.bq, p_hi - p0)
                    tiles.append(Tile(n, n, 1, 0, att.sparse_keys, widths, masks,
                                      True, True, (hd, qb, p0), att.sparse_keys))
    else:
        g = att.group
        if g <= blk.bq:
            positions, chunks = max(1, blk.bq // g), [g]
        else:
            positions, chunks = 1, [blk.bq] * (g // blk.bq) + ([g % blk.bq] if g % blk.bq else [])
        q_len, kv_len, b2, off = att.q_len, att.kv_len, blk.b2, att.q_offset
        npos = cdiv(q_len, positions)
        walks = (positions, tuple(chunks), off, blk.b1, b2, mask_op, att.masked)
        pi, keys = 0, []
        if PLAN_PREFIX and skip and att.causal and not att.window:
            # the positions no clip reaches (their last query, last key seen and that
            # key's block end all within the op's): the same tiles in every op of
            # these walks, whatever its length, made once and sliced
            pi = min(q_len // positions, (kv_len // b2 * b2 - off) // positions)
            pi = max(0, min(npos, pi))
            tiles, keys = _prefix_tiles(walks, att, skip, pi)  # (copies)
        start = len(tiles)
        _position_tiles(tiles, walks, att, skip, pi, npos)
        keys += [-t[0] * (t[4] - t[3]) for t in tiles[start:]]  # (_tile_order)
    # longest first (LPT: the cores' loads even out, and one more query position or key
    # can only put a longer tile into the first round), by position among equals (a
    # stable sort by _tile_order, its keys made once)
    if positions:
        tiles = list(map(tiles.__getitem__, sorted(range(len(tiles)), key=keys.__getitem__)))
    else:
        tiles.sort(key=_tile_order)
    n_tiles = att.batch * att.kv_heads * len(tiles)
    split = max(1, chip.n_cube // n_tiles) if 0 < n_tiles < chip.n_cube else 1
    items = tiles if split == 1 else [c for t in tiles for c in _split(
        t, split, blk, mask_op, att.masked)]
    split = split if split > 1 and any(not it.first for it in items) else 1
    return Plan(blk, positions, skip, mask_from_gm, split, tuple(tiles), tuple(items))


_new_tile = tuple.__new__
_K0, _K1 = itemgetter(3), itemgetter(4)  # (Tile.k0, Tile.k1 in C)
_FM = itemgetter(2)  # (a _first_touch entry's mask elements)

PLAN_PREFIX = True  # False: every plan's tiles made position by position (the tests' reference)


def _position_tiles(tiles: list, walks: tuple, att: AttentionShape, skip: bool, pi0: int,
                    pi1: int) -> None:
    """Append the tiles of query positions ``pi0`` to ``pi1`` (in groups of
    ``positions``) of a contiguous walk: ``walks`` = (positions, chunks, q_offset, b1, b2,
    mask op, masked)."""
    positions, chunks, off, b1, b2, mask_op, masked = walks
    q_len, kv_len = att.q_len, att.kv_len
    # _key_range inline without a window (a 32K causal op has thousands of positions)
    window, causal, last_key = att.window, att.causal, kv_len - 1
    lo = need_lo = 0
    hi = need_hi = last_key
    for pi in range(pi0, pi1):  # (min of two ints as a test: 400,000 calls at 32K)
        p0, p1 = pi * positions, (pi + 1) * positions
        p1 = q_len if q_len < p1 else p1
        if window:
            lo, hi, need_lo, need_hi = _key_range(att, p0, p1)
        elif causal:  # (_key_range's causal case)
            hi = off + p1 - 1
            hi = last_key if last_key < hi else hi
            need_hi = off + p0
            need_hi = last_key if last_key < need_hi else need_hi
        if skip:  # whole second-level blocks: the cube's block ends at the last one seen
            k0, k1 = lo // b2 * b2, (hi // b2 + 1) * b2
            k1 = kv_len if kv_len < k1 else k1
        else:
            k0, k1 = 0, kv_len
        if k1 <= k0:
            continue
        walk_key = (k0, k1, need_lo, need_hi, b1, mask_op, masked)
        got = _WALKS.get(walk_key)
        if got is None:
            if len(_WALKS) > 65_536:  # bounded: a walk's entry holds its blocks
                _WALKS.clear()
                _WALK_BLOCKS.clear()
            widths = _widths(k0, k1, b1)
            got = (widths, _masks(k0, widths, need_lo, need_hi, mask_op, masked))
            got = _WALKS[walk_key] = _WALK_BLOCKS.setdefault(got, got)
        widths, masks = got
        for c in chunks:  # (Tile's fields in order, without its Python constructor)
            tiles.append(_new_tile(Tile, ((p1 - p0) * c, p1 - p0, c, k0, k1, widths, masks,
                                          False, True, (pi,), k1 - k0, (need_lo, need_hi))))


def _prefix_tiles(walks: tuple, att: AttentionShape, skip: bool, n: int
                  ) -> tuple[list[Tile], list[int]]:
    """The tiles of a causal walk's first ``n`` query positions (whole ones, that no end
    of the op clips: :func:`_make_plan` checks) and their :func:`_tile_order` keys: the
    same in every op of these ``walks`` (a pruned model's layers keep different token
    counts; each one's tiles start alike), made once and sliced; lists the caller must
    copy before changing."""
    got = _PREFIXES.get(walks)
    if got is None:
        if len(_PREFIXES) > 16:  # bounded: an entry holds thousands of tiles
            _PREFIXES.clear()
        got = _PREFIXES[walks] = ([], [], [0])
    tiles, keys, made = got
    if made[0] < n:
        start = len(tiles)
        _position_tiles(tiles, walks, att, skip, made[0], n)
        keys += [-t[0] * (t[4] - t[3]) for t in tiles[start:]]
        made[0] = n
    per = len(walks[1])
    return tiles[:n * per], keys[:n * per]


# per contiguous causal walk (_prefix_tiles' ``walks``): its tiles, their sort keys and
# the query positions they cover
_PREFIXES: dict[tuple, tuple[list[Tile], list[int], list[int]]] = {}


def _tile_order(t: Tile) -> int:
    """The LPT order's key: the longest walk (rows by keys) first."""
    return -t[0] * (t[4] - t[3])  # (rows, k1, k0 by position: a named field is slower)


# a walk's blocks and mask ops by what they depend on (its key range, the keys every
# query sees, the block width, the mask): the layers of a model, and a causal op's
# query tiles, walk the same ranges again and again
_WALKS: dict[tuple, tuple[tuple[int, ...], tuple[str, ...]]] = {}
# the same (widths, masks) for equal ones: the tiles of a causal op that end in the same
# key block walk equal blocks from different keys (each its own first key every query
# sees), and _fused tells equal walks apart by their objects
_WALK_BLOCKS: dict[tuple, tuple[tuple[int, ...], tuple[str, ...]]] = {}


def _key_range(att: AttentionShape, p0: int, p1: int) -> tuple[int, int, int, int]:
    """Keys seen by query positions [p0, p1): (first, last) seen by some query, and
    (first, last) seen by every query (outside those, the mask crosses the block)."""
    off, kv, w = att.q_offset, att.kv_len, att.window
    first_pos, last_pos = off + p0, off + p1 - 1
    if att.causal:
        hi, need_hi = min(kv - 1, last_pos), min(kv - 1, first_pos)
    elif w:
        hi, need_hi = min(kv - 1, last_pos + w - 1), min(kv - 1, first_pos + w - 1)
    else:
        hi, need_hi = kv - 1, kv - 1
    if w:
        lo, need_lo = max(0, first_pos - w + 1), max(0, last_pos - w + 1)
    else:
        lo, need_lo = 0, 0
    return lo, hi, need_lo, need_hi


def _widths(k0: int, k1: int, b1: int, unit: int = 16) -> tuple[int, ...]:
    """The key blocks of a walk over [k0, k1): blocks of ``b1`` and the remainder as a
    last, thinner block, as a kernel's loop over its key tiles cuts them (the last
    tile holds what is left); a walk shorter than two blocks in two about equal
    halves (multiples of the cube's ``unit``), so that the cube runs ahead of the
    vectors within it (a one-block walk has nothing to overlap).

    The cut is monotone in the walk: a key more widens the last block or adds one,
    never re-cuts the walk into more, narrower blocks. Spreading a remainder over
    more blocks did: with the loads off the cube's path (:mod:`.cv_pipeline`) the
    narrower blocks fill and drain the pipeline sooner, so 4,097 keys in three blocks
    ran 9 % faster than 4,096 in two."""
    n = k1 - k0
    if n <= 0:
        return ()
    if n >= 2 * b1:
        full, rest = divmod(n, b1)
        return (b1,) * full + ((rest,) if rest else ())
    if n < 2 * unit:
        return (n,)
    w = min(b1, cdiv(cdiv(n, 2), unit) * unit)
    return (w, n - w) if n > w else (w,)


def _masks(k0: int, widths, need_lo: int, need_hi: int, mask_op: str,
           masked: bool) -> tuple[str, ...]:
    """The mask op of each block: blocks the mask crosses (all of them when the mask
    comes from GM: the kernel adds it to every block). A run of equal widths is
    crossed at its start (keys before ``need_lo``) and its end (after ``need_hi``),
    so each run is three runs of ops, counted, not walked block by block."""
    if not masked or mask_op == "add":
        return (mask_op if masked else "",) * len(widths)
    out: tuple[str, ...] = ()
    s = k0
    for w, c in _width_runs(widths):
        # blocks j of the run start at s + j w: crossed while s + j w < need_lo, and
        # from the first j with s + j w + w - 1 > need_hi
        head = min(c, max(0, -(-(need_lo - s) // w)))
        tail_from = max(head, min(c, (need_hi - w + 1 - s) // w + 1)) if need_hi - w + 1 - s >= 0 \
            else head
        out += (mask_op,) * head + ("",) * (tail_from - head) + (mask_op,) * (c - tail_from)
        s += c * w
    return out


@functools.lru_cache(maxsize=4096)
def _width_runs(widths: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """The runs of equal widths of a walk, as (width, count): a causal op's tiles walk
    the same few width tuples, each hundreds of blocks long."""
    return tuple((w, sum(1 for _ in g)) for w, g in groupby(widths))


def _masks_by_block(k0: int, widths, need_lo: int, need_hi: int, mask_op: str,
                    masked: bool) -> tuple[str, ...]:
    """:func:`_masks` block by block (the definition; a test holds the two equal)."""
    out, s = [], k0
    for w in widths:
        crosses = masked and (mask_op == "add" or s < need_lo or s + w - 1 > need_hi)
        out.append(mask_op if crosses else "")
        s += w
    return tuple(out)


def _split(t: Tile, split: int, blk: Blocks, mask_op: str, masked: bool) -> list[Tile]:
    """A tile's walk cut into at most ``split`` chunks of whole second-level blocks (the
    longest first), each walked in first-level blocks."""
    walk = t.k1 - t.k0
    chunk = cdiv(cdiv(walk, split), blk.b2) * blk.b2
    if chunk >= walk:
        return [t]
    out = []
    for s in range(t.k0, t.k1, chunk):
        e = min(t.k1, s + chunk)
        widths = _widths(s, e, blk.b1)
        masks = (t.masks[0],) * len(widths) if t.gathered else \
            _masks(s, widths, t.need[0], t.need[1], mask_op, masked)
        out.append(t._replace(k0=s, k1=e, widths=widths, masks=masks, first=s == t.k0,
                              mask_key=t.mask_key + (s,)))
    return out


def _fused(bld: Builder, l2: L2, op, graph, tiling, two_level: bool) -> None:
    chip = bld.chip
    att = AttentionShape.of(op, graph)
    by = nbytes(att.dtype)
    plan = _plan(chip, att, tiling, two_level)
    blk = plan.blocks
    costs = _costs_of(chip, att.head_dim, att.v_head_dim, att.dtype, blk,
                      cdiv(blk.bq, chip.vec_per_cube))
    name = op.name or "attention"
    start = bld.launch(label=f"launch {name}")
    heads = att.batch * att.kv_heads
    items = plan.items
    # ---- K/V traffic per K/V head: the first tile to need a row reads it from HBM, the
    # re-reads of the others hit L2 as far as the heads in flight fit (else HBM again)
    # K and V rows at their stored width: a quantized or bitmap-compressed cache
    # (Mustafar's format, hwsim.ir.dtypes) is read packed, expanded on chip
    k_row, v_row = att.head_dim * att.stored_width("k", by), \
        att.v_head_dim * att.stored_width("v", by)

    def values_of(t: Tile) -> float:  # value rows a tile (chunk) moves
        walk = t.k1 - t.k0
        return t.rows * min(att.values, t.full) * walk / max(1, t.full)

    vals = [values_of(t) for t in items] if att.selects_values else \
        list(map(sub, map(_K1, items), map(_K0, items)))  # (each walk's keys)
    first = _first_touch(att, plan, vals)
    unique_kv = sum(fk * k_row + fv * v_row for fk, fv, _ in first)
    mask_unique = sum(map(_FM, first)) * by
    in_flight = min(float(heads), chip.n_cube / max(1, len(items)) + 1.0)
    hit = reuse_hit_fraction(in_flight * unique_kv + mask_unique, l2.reuse_bytes())
    # which tile's read of a row is the first is a matter of timing (the tiles of a head
    # run at once on many cores): each tile takes the head's share of HBM bytes
    if att.selects_values or type(k_row) is not int or type(v_row) is not int:
        moved_kv = sum((t.k1 - t.k0) * k_row + nv * v_row for t, nv in zip(items, vals))
    else:  # (whole numbers: the same sum, factored)
        moved_kv = sum(vals) * (k_row + v_row)
    rho_kv = (unique_kv + (moved_kv - unique_kv) * (1.0 - hit)) / moved_kv if moved_kv else 1.0
    moved_mask = heads * sum(t.positions * (t.k1 - t.k0) for t in items) * by \
        if plan.mask_from_gm else 0  # (read only for a mask from GM)
    rho_mask = (mask_unique + (moved_mask - mask_unique) * (1.0 - hit)) / moved_mask \
        if moved_mask else 1.0
    # ---- the combine of split-KV chunks: partial O, row max and sum in a GM workspace
    split = plan.split > 1
    partial_row = (att.v_head_dim + 2) * ACC
    partial_rows = heads * sum(t.rows for t in items) if split else 0
    part_hbm = 1.0 - l2.write("partials", partial_rows * partial_row) if split else 1.0
    # ---- tiles to cores: the least loaded cube core takes the next tile
    # a tile's chain (its walk's pipeline and MACs) depends only on these and the
    # tile's rows, widths, masks and warmth: kept on the chip (one per equal spec) for
    # every attention op, so the layers of a model, whose tiles walk the same blocks,
    # compute each walk once
    chains = chip.__dict__.setdefault("_attention_chains", {})
    if len(chains) > 50_000:  # bounded: a walk's key holds its widths
        chains.clear()
    op_key = (att.head_dim, att.v_head_dim, att.dtype, att.selects_values, blk,
              costs.rows_per_vec, two_level, split)
    per_core: list[list[Item]] = [[] for _ in range(chip.n_cube)]
    per_core_blocks: list[list[tuple[Block, int]]] = [[] for _ in range(chip.n_cube)]
    # the same walks by tile: (its runs, their sum, its blocks), the sum made once per
    # distinct tile and added by a step that covers the tile as one term
    per_core_tiles: list[list[tuple]] = [[] for _ in range(chip.n_cube)]
    # the cores by load, least first (a heap of (load, core): no two equal); a core's
    # next load is the heap's least plus the tile's latency, as a list of loads added
    free = [(0.0, c) for c in range(chip.n_cube)]
    tile_seen: set[int] = set()
    macs_action = f"mac_{chip.cube_dtype(att.dtype)}"
    k_pad = chip.burst(1, k_row) - k_row
    v_pad = chip.burst(1, v_row) - v_row

    selects = att.selects_values
    # (what tile_values reads of the op, taken once: it runs once per distinct tile)
    d, dv = att.head_dim, att.v_head_dim
    mask_tile_bytes = blk.bq * blk.b2 * by
    out_row = att.v_head_dim * ACC
    work_row = out_row * 2 if chip.split else 0
    vec_per_cube, cycle_s = chip.vec_per_cube, chip.cycle_s
    q_pads: dict[tuple[int, int], int] = {}  # Q's burst padding by (heads, positions)
    # analytical: the walks leave their blocks' actions to the op, which adds each
    # distinct tile's sum times the walks that run it (cv_pipeline.add_tile_actions):
    # the blocks are made without theirs
    by_tile = TILE_SUMS and not selects and closed_form(bld)

    def tile_values(t: Tile, nv: float, warm: bool, mask_case: int):
        """A tile's chain, traffic, actions and stores: the same for every head (and
        every core of the same warmth and mask case)."""
        rows, positions, t_heads, k0, k1, widths, masks, gathered, first = t[:9]
        vt = None
        if selects:
            vt = (k1 - k0, math.ceil(nv / rows))
        key = (op_key, rows, widths, masks, warm, vt)
        ch = chains.get(key)
        if ch is None:  # (whole MAC counts: summed per distinct width)
            counts = Counter(widths)
            macs = sum(k * padded_macs(chip, rows, w, att.head_dim, att.dtype)
                       for w, k in counts.items())
            if not selects:
                macs += sum(k * padded_macs(chip, rows, att.v_head_dim, w, att.dtype)
                            for w, k in counts.items())
            ch = chains[key] = (*_chain(costs, rows, widths, masks, two_level, warm,
                                        not split, vt), macs)
        latency, cube_s, vec_s, macs = ch
        walk = k1 - k0
        kv_bytes = walk * k_row + nv * v_row
        # K/V (and mask) rows: the head's share comes from HBM, the rest hits L2; which
        # tile's read is the first is a matter of timing (a head's tiles run at once
        # on many cores, the others wait for that fetch), so every tile moves them at
        # one HBM stream's rate
        hbm = kv_bytes * rho_kv
        slow = kv_bytes - hbm
        q_bytes = rows * d * by
        q_pad = q_pads.get((t_heads, positions))
        if q_pad is None:
            q_pad = q_pads[t_heads, positions] = \
                chip.burst(t_heads, positions * d * by) - q_bytes
        l2b = 0.0
        if first:
            hbm += q_bytes
        else:  # a later split-KV chunk finds its Q in L2
            l2b += q_bytes
        pad = q_pad
        # what the walk's first block loads besides its keys: Q, and the mask tile below
        h_hbm, h_l2, h_mask = (q_bytes, 0.0, 0.0) if first else (0.0, q_bytes, 0.0)
        if gathered:
            pad += walk * k_pad + nv * v_pad
        elif selects:
            pad += nv * v_pad
        mask_hbm = 0.0
        if plan.mask_from_gm:  # this tile's rows of the N x N mask, shared by the heads
            mb = positions * walk * by
            mask_hbm = mb * rho_mask
            hbm += mask_hbm
            slow += mb - mask_hbm
        elif mask_case:  # the one small mask tile, once per core: from L2 or HBM
            if mask_case == 1:
                l2b += mask_tile_bytes
                h_l2 += mask_tile_bytes
            else:
                hbm += mask_tile_bytes
                mask_hbm = mask_tile_bytes
                h_hbm += mask_tile_bytes
                h_mask += mask_tile_bytes
        elems = rows * walk
        # (the workspace's ints in the order the sum was written: rows * dv * ACC * 2)
        workspace = elems * (ACC + by) * 2 + len(widths) * rows * work_row if chip.split else 0
        actions = {macs_action: macs,
                   "vector_cycle": vec_s / cycle_s * vec_per_cube,
                   "l0_byte": macs * 0.25 * by / 2 + elems * ACC,
                   "l1_byte": 2 * (kv_bytes + elems * by),
                   "ub_byte": elems * (ACC + by) * 2 + rows * out_row * 4,
                   "l2_byte": hbm + l2b + slow + workspace}
        moved = hbm + l2b + slow
        share = hbm / moved if moved else 1.0
        store = rows * partial_row if split else rows * dv * by
        if not selects:  # the walk's blocks and their sum, for the cube/vector pipeline
            return latency, _blocks(costs, t, not split, hbm, l2b, slow, mask_hbm, pad,
                                    share, store, actions, nv * v_row,
                                    (h_hbm, h_l2, h_mask, q_pad), not by_tile)
        bound = "latency" if latency > 1.15 * max(cube_s, vec_s) else "compute"
        # K and V reach L1 in second-level blocks, double buffered (the L1 holds two,
        # _check_blocks): the load of one overlaps the compute of the previous
        stages = sum(cdiv(w, blk.b2) for w in widths)
        return latency, Item(stages, hbm, l2b, mask_hbm, latency, store, actions, bound,
                             shadow_s=min(vec_s, latency), pad_hbm=pad * share,
                             pad_l2=pad * (1.0 - share), load_l2_slow=slow)

    memo: dict[tuple, tuple] = {}
    tile_ids, masked_items = _tile_numbers(items, vals)
    uses: dict[tuple, int] = {}
    # (the loop runs once per tile and head, 200,000 times on a 32K prefill's 80 layers:
    # its lookups in locals)
    mask_tile = not plan.mask_from_gm and plan.skip
    replace, get = heapq.heapreplace, memo.get
    # a build by tile, event or analytical, reads the cores' tiles only, not their
    # blocks' runs (emit_cv_pipeline: the steps and the walk's memo key from the tiles)
    keep_blocks = not TILE_SUMS

    def new_key(i: int, key: tuple) -> tuple:
        """The memo's entry for a key not met before: (latency, work, whole)."""
        latency, work = tile_values(items[i], vals[i], key[1], key[2])
        # (the runs cover the walk's blocks: their counts add up to its widths; _blocks
        # hands their tile_sum with them)
        whole = None if selects or not work[0] else (*work, len(items[i][5]))
        work = work if selects else work[0]
        got = memo[key] = latency, work, whole
        return got

    n_cube = chip.n_cube
    adds = [tiles.append for tiles in per_core_tiles]
    # once every core is warm and none can take the mask tile (it has it, or no tile is
    # masked), each head's tiles look up the same entries in the same order: the later
    # heads run from that list (the same dealing, the same appends), and the op's tile
    # uses are counted per head, each key first met in the same order as tile by tile
    masked_any = mask_tile and any(masked_items)
    # a core is warm once it has a tile's work: the items' (value pruning) or the walks'
    # tiles (the other is never appended to)
    worked = per_core if selects else per_core_tiles
    for h in range(heads):
        if h and DEAL_BY_HEAD and not selects and all(per_core_tiles) and \
                (not masked_any or len(tile_seen) == n_cube):
            hot_costs, hot_tiles, hot_keys = [], [], []
            for i, number in enumerate(tile_ids):
                key = (number, True, 0)
                got = get(key) or new_key(i, key)
                hot_costs.append(got[0])
                hot_tiles.append(got[2])
                if got[2] is not None:
                    hot_keys.append(key)
            if by_tile:
                for key in hot_keys:
                    uses[key] = uses.get(key, 0) + heads - h
            # this head and the ones after it, dealt in one pass (hwsim.engine.deal:
            # the least loaded core takes the next tile, as tile by tile below)
            if not keep_blocks:
                deal(free, hot_costs, hot_tiles, heads - h, per_core_tiles)
                break
            for latency, whole in zip(hot_costs * (heads - h), hot_tiles * (heads - h)):
                x, core = free[0]
                replace(free, (x + latency, core))
                if whole is not None:
                    adds[core](whole)
                    per_core_blocks[core].extend(whole[0])
            break
        for i, number in enumerate(tile_ids):
            x, core = free[0]  # the least loaded (loads with their core: no two equal)
            # a tile ran here before (a tile's work is appended with its blocks, if any)
            warm = bool(worked[core])
            mask_case = 0
            if mask_tile and masked_items[i] and core not in tile_seen:
                mask_case = 1 if tile_seen else 2  # another core fetched it, or this one
                tile_seen.add(core)
            key = (number, warm, mask_case)
            latency, work, whole = get(key) or new_key(i, key)
            replace(free, (x + latency, core))
            if selects:
                append(per_core[core], work, CAP_STAGES)
            elif whole is not None:
                adds[core](whole)
                if keep_blocks:
                    per_core_blocks[core].extend(work)
                if by_tile:
                    uses[key] = uses.get(key, 0) + 1
    _extra_inputs(bld, op, graph, deps=(start,))
    ends = []
    walks: dict = {}  # analytical: the cores' equal walks summed once (emit_cv_pipeline)
    preload, sync_s = preload_of(tiling, two_level), chip.spec.cv_sync_s
    after_s = sync_s if split else 0.0  # (_combine's flag)
    for c, core_items in enumerate(per_core):
        vecs = chip.vecs_of(c)
        if not selects:  # the cube/vector hand-offs as engine tasks
            ends.extend(emit_cv_pipeline(
                bld, per_core_blocks[c] if keep_blocks else None, core=c, vecs=vecs,
                preload=preload, sync_s=sync_s, store_bw=chip.mte3_bw * len(vecs),
                store_hbm_fraction=part_hbm, deps=(start,), label=name,
                memo=walks, tiles=per_core_tiles[c] if TILE_SUMS else None,
                actions_by_tile=by_tile, after_s=after_s))
            continue
        end = emit_pipeline(bld, core_items, load_unit=chip.aic(c, "mte2"),
                            compute_unit=chip.aic(c, "cube"),
                            store_unit=chip.aiv(vecs[0], "mte3"),
                            store_bw=chip.mte3_bw * len(vecs), store_hbm_fraction=part_hbm,
                            deps=(start,), dest="l1", src="ub", label=name,
                            shadow_units=tuple(chip.aiv(v, "vector") for v in vecs),
                            shadow_label=f"{name} softmax")
        ends.extend(end)
    if by_tile:
        add_tile_actions(bld.sink, ((memo[key][2][1], n) for key, n in uses.items()),
                         bld.copies)
    if split:
        _combine(bld, l2, att, plan, ends, partial_rows, name)


TILE_SUMS = True  # False: the steps summed block run by block run (the tests' reference)
DEAL_BY_HEAD = True  # False: every head's tiles dealt one by one (the tests' reference)


def _tile_numbers(items, vals) -> tuple[list[int], list[bool]]:
    """Per item, a number for what ``tile_values`` reads of it (equal numbers for equal
    rows, positions, heads, walk length, blocks, masks, first chunk, gathering and
    value rows: the consecutive tiles of a causal walk that end in the same key block
    share all of it), and whether a block of its walk is masked on chip.

    A head's tiles then look their work up by a small number, not by their block and
    mask tuples (hundreds long at 32K, hashed again for every tile of every head). The
    tuples are compared by content once per distinct pair of objects (:func:`_plan`
    hands equal walks the same objects; ``items`` keeps them alive, so an id names one
    object here): the same partition as keying by content (a test holds it)."""
    by_id: dict[tuple[int, int], int] = {}
    by_walk: dict[tuple, int] = {}
    by_tile: dict[tuple, int] = {}
    numbers: list[int] = []
    masked: list[bool] = []
    masked_walk: list[bool] = []
    last_widths = last_masks = None  # (the walk before: the LPT order keeps equal ones
    w = -1  # together, so most tiles are told by the identity of their walk's objects)
    last_key, number = None, -1
    for t, nv in zip(items, vals):
        rows, positions, heads, k0, k1, widths, masks, gathered, first = t[:9]
        if widths is not last_widths or masks is not last_masks:
            last_widths, last_masks = widths, masks
            w = by_id.get((id(widths), id(masks)))
            if w is None:
                w = by_id[id(widths), id(masks)] = by_walk.setdefault((widths, masks),
                                                                      len(by_walk))
                if w == len(masked_walk):
                    masked_walk.append(any(masks))
        masked.append(masked_walk[w])
        key = (rows, positions, heads, k1 - k0, w, first, gathered, nv)
        if key != last_key:  # (the LPT order keeps equal tiles together)
            last_key, number = key, by_tile.setdefault(key, len(by_tile))
        numbers.append(number)
    return numbers, masked


def _blocks(costs: _Costs, t: Tile, finish: bool, hbm: float, l2b: float, slow: float,
            mask_hbm: float, pad: float, share: float, store: float, actions: dict,
            v_bytes: float = 0.0, head: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0),
            block_actions: bool = True) -> tuple[list[tuple[Block, int]], Block | None]:
    """One tile's key/value blocks with their stage times (:class:`_Costs`, one AIV's
    share of the rows for the vector stages) and their share of the tile's loads (by
    width; Q and the mask tile, ``head`` = (hbm, l2, mask, pad) bytes, with the first
    block), as runs of equal blocks
    (block, how many): a 32K walk has a hundred blocks of one width and mask. A tile
    following another on its core continues that core's pipeline: its blocks are the
    same either way (only its chain, :func:`_chain`, tells the two apart).

    Returns the runs and their :func:`~.cv_pipeline.tile_sum` (None for no block), the
    sum added up as the blocks are made: the same terms in the same order as
    ``tile_sum`` adds them (each field from 0.0, run by run, ``x * 1`` skipped; each
    action ``a * f`` times the run's count), so the same floats (a test holds the two
    equal). ``block_actions=False``: the blocks carry no actions (an empty dict each),
    their sum still does: the analytical walk by tile, which reads the actions of the
    tiles' sums only (:func:`~.cv_pipeline.add_tile_actions`)."""
    rows, _, _, k0, k1, widths, masks = t[:7]
    walk = k1 - k0 if k1 - k0 > 1 else 1  # (max(1, walk))
    times = costs.block_times
    out: list[tuple[Block, int]] = []
    n = len(widths)
    if not n:
        return out, None
    # the keys' share of each load, by width; ``head`` on the first block
    h_hbm, h_l2, h_mask, h_pad = head
    hbm, l2b, mask_hbm, pad = hbm - h_hbm, l2b - h_l2, mask_hbm - h_mask, pad - h_pad
    keep = 1.0 - share
    # the tile's sum (cv_pipeline._total_fields' order and names)
    s_qk = s_fs = s_sm = s_pv = s_fo = s_up = s_fi = s_lh = s_l2 = s_ls = s_mk = s_ph = \
        s_pl = s_sb = s_lv = 0.0
    acts: dict = {}
    j = 0
    for (w, m), k in _block_runs(widths, masks):
        f = w / walk
        last = j + k == n
        x = 1.0 if j == 0 else 0.0
        j += k
        qk, fs, sm, pv, fo, up, fi = times(rows, w, m or None, last and finish)
        p = pad * f + h_pad * x
        lh, l2, ls, mk = hbm * f + h_hbm * x, l2b * f + h_l2 * x, slow * f, \
            mask_hbm * f + h_mask * x
        ph, pl, sb, lv = p * share, p * keep, store if last else 0.0, v_bytes * f
        # (Block's fields in its constructor's order: the seven stage times, then
        # load_hbm, load_l2, load_l2_slow, mask_hbm, pad_hbm, pad_l2, store_bytes,
        # actions, load_v)
        out.append((Block(qk, fs, sm, pv, fo, up, fi, lh, l2, ls, mk, ph, pl, sb,
                          {a: v * f for a, v in actions.items()} if block_actions else {},
                          lv), k))
        if k == 1:  # (x * 1 is x: the product skipped, as _total_fields skips it)
            s_qk += qk
            s_fs += fs
            s_sm += sm
            s_pv += pv
            s_fo += fo
            s_up += up
            s_fi += fi
            s_lh += lh
            s_l2 += l2
            s_ls += ls
            s_mk += mk
            s_ph += ph
            s_pl += pl
            s_sb += sb
            s_lv += lv
            for a, v in actions.items():
                acts[a] = acts.get(a, 0.0) + v * f
            continue
        s_qk += qk * k
        s_fs += fs * k
        s_sm += sm * k
        s_pv += pv * k
        s_fo += fo * k
        s_up += up * k
        s_fi += fi * k
        s_lh += lh * k
        s_l2 += l2 * k
        s_ls += ls * k
        s_mk += mk * k
        s_ph += ph * k
        s_pl += pl * k
        s_sb += sb * k
        s_lv += lv * k
        for a, v in actions.items():
            acts[a] = acts.get(a, 0.0) + v * f * k
    return out, Block(s_qk, s_fs, s_sm, s_pv, s_fo, s_up, s_fi, s_lh, s_l2, s_ls, s_mk, s_ph,
                      s_pl, s_sb, acts, s_lv)


def _block_runs(widths: tuple[int, ...], masks: tuple[str, ...]
                ) -> list[tuple[tuple[int, str], int]]:
    """A walk's runs of equal (width, mask) as (pair, count), its first and last blocks
    apart (the first loads Q and the mask tile; the last finishes the tile): kept by
    the walk's objects (:func:`_plan` hands equal walks the same ones; the entry holds
    them, so an id names one object while it is kept), which thousands of tiles share."""
    key = (id(widths), id(masks))
    got = _RUNS.get(key)
    if got is not None and got[0] is widths and got[1] is masks:
        return got[2]
    pairs = list(zip(widths, masks))
    n = len(pairs)
    runs = [(pairs[0], 1)] if n > 1 else []
    runs += [(wm, sum(1 for _ in g)) for wm, g in groupby(pairs[1:-1])]
    runs.append((pairs[-1], 1))
    if len(_RUNS) > 4096:  # bounded: an entry holds its walk
        _RUNS.clear()
    _RUNS[key] = (widths, masks, runs)
    return runs


_RUNS: dict[tuple[int, int], tuple[tuple, tuple, list]] = {}


def _first_touch(att: AttentionShape, plan: Plan,
                 vals: list[float]) -> list[tuple[float, float, float]]:
    """Per item (in issue order, the same for every K/V head): the key rows, value rows
    and mask elements it is the first to read. A contiguous walk reads the keys of
    its range not read before; a gathered one (block-sparse, value pruning) new
    rows until the head's distinct rows (``key_rows``, ``value_rows`` of
    :class:`hwsim.ir.AttentionShape`) are all read; the mask rows of a tile's
    positions are read by the first head."""
    covered: list[list[int]] = []  # disjoint key intervals already read
    k_left = float(att.key_rows) if att.sparse_keys else 0.0
    v_left = float(att.value_rows)
    seen_mask: set = set()
    out = []
    selects, mask_from_gm = att.selects_values, plan.mask_from_gm
    lo = hi = 0  # (the keys read so far while they are one interval: _cover's common case)
    for t, nv in zip(plan.items, vals):
        k0, k1 = t[3], t[4]
        walk = k1 - k0
        if t[7]:  # gathered
            fk = min(float(walk), k_left)
            k_left -= fk
        elif lo <= k0 and k1 <= hi and len(covered) == 1:
            fk = 0.0  # (all of it read before: nothing changes)
        else:
            fk = float(_cover(covered, k0, k1))
            if len(covered) == 1:
                lo, hi = covered[0]
        if not selects:  # the value rows of the keys walked
            fv = fk
        else:  # the selected value rows: new ones until the head's distinct ones are read
            fv = min(nv, v_left)
            v_left -= fv
        fm = 0.0
        if mask_from_gm and t.mask_key not in seen_mask:
            seen_mask.add(t.mask_key)
            fm = float(t.positions * walk)
        out.append((fk, fv, fm))
    return out


def _cover(covered: list[list[int]], a: int, b: int) -> int:
    """Add [a, b) to the sorted disjoint intervals ``covered``; returns the length of
    it that was not covered before."""
    if len(covered) == 1:  # the common case (a contiguous walk's keys read so far)
        lo, hi = covered[0]
        if lo <= a and b <= hi:  # all of it read before: nothing changes
            return 0
    new = b - a
    merged = [a, b]
    keep = []
    for lo, hi in covered:
        if hi < merged[0] or lo > merged[1]:
            keep.append([lo, hi])
            continue
        new -= max(0, min(hi, b) - max(lo, a))
        merged = [min(lo, merged[0]), max(hi, merged[1])]
    keep.append(merged)
    keep.sort()
    covered[:] = keep
    return max(0, new)


def _combine(bld: Builder, l2: L2, att: AttentionShape, plan: Plan, ends: list[int], rows: int,
             name: str) -> None:
    """Split-KV: after a cross-core flag, the vector cores rescale and add each row's
    partial outputs (``split`` of them at most) and write O to HBM; with value
    pruning they first merge the chunks' candidate lists into the row's top v_len."""
    chip = bld.chip
    spec = chip.spec
    sync = bld.add("launch", spec.cv_sync_s, deps=ends, bound="latency", label="split-KV flag")
    chunks = sum(1 for t in plan.items) / max(1, len(plan.tiles))
    per_row_in = chunks * (att.v_head_dim + 2) * ACC
    cyc = chunks * att.v_head_dim * cycles_per_element(spec, UPDATE, "fp32") \
        + att.v_head_dim * cycles_per_element(spec, FINAL, "fp32") + 2 * ROW_TAIL_CYCLES
    if att.selects_values:
        cyc += chunks * att.values * SORTED / spec.vector_bytes_per_cycle
    out_rows = att.batch * att.kv_heads * sum(t.rows for t in plan.tiles)
    emit_vector_kernel(bld, l2, units=out_rows, ins=[In("partials", per_row_in)], out="O",
                       out_bytes_per_unit=att.v_head_dim * nbytes(att.dtype), cycles_per_unit=cyc,
                       ub_per_unit=per_row_in + att.v_head_dim * (nbytes(att.dtype) + ACC),
                       label=f"{name} split-KV combine", deps=(sync,), release=("partials",))
