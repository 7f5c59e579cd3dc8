"""Attention on Ascend: three strategies (workload ``tiling.attention``).

``standard``
    The unfused implementation: four kernels one after another. A batched GEMM
    writes the scores ``S = Q·Kᵀ`` (fp16) to GM; a vector kernel scales them and
    adds the N × N causal mask read from GM (fp16, broadcast over heads); a
    softmax kernel writes ``P``; a batched GEMM computes ``P·V``. Every causal
    block is computed. Intermediates that fit in half the L2 stay there
    (:class:`~accelerators.ascend.chip.L2`), which is why short sequences suffer
    less than long ones.

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
    vectors do softmax j), so cube and vectors overlap.

``tiling_mask`` (default on) applies to the fused strategies: no N × N mask in
HBM, fully masked blocks are skipped, and the diagonal blocks are masked on
chip with one small mask tile. With ``tiling_mask: false`` the kernel reads
the mask block of every block from GM and computes every block. Mask bytes
read from HBM are also counted under ``mask_dram_read``.

``auto`` is ``fastattention``, what the vendor's fused kernel does on Ascend.
Block sizes come from the workload (``block_q``, ``block_kv``) or from a search
over sizes that fit the buffers. A given size that does not fit is an error
naming the buffer.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from hwsim.errors import InputError

from .chip import L2, Builder, Chip, cdiv
from .gemm import cube_cycles, emit_gemm, padded_macs
from .pipeline import Item, emit_pipeline
from .vector import ROW_TAIL_CYCLES, SOFTMAX, In, cycles_per_element, emit_vector_kernel, nbytes

STRATEGIES = ("standard", "flash", "fastattention")
# online softmax per score: scale, row max, subtract it, exp, row sum, to fp16
ONLINE_SOFTMAX = ("mul", "reduce", "sub", "exp", "reduce", "cast")
UPDATE = ("mul", "add")  # O = O·exp(m_old - m_new) + P·V
FINAL = ("mul", "cast")  # O / l, to fp16
ACC = 4  # fp32 scores and accumulators


@dataclass(frozen=True)
class Blocks:
    bq: int  # query rows per block
    b1: int  # first-level key/value block (the cube's)
    b2: int  # second-level block (the vector cores'); b1 for one-level flash


def strategy_of(tiling) -> str:
    name = getattr(tiling, "attention", "auto") if tiling is not None else "auto"
    return "fastattention" if name == "auto" else name


def lower_attention(bld: Builder, l2: L2, op, graph, tiling) -> None:
    strategy = strategy_of(tiling)
    if strategy == "standard":
        _standard(bld, l2, op, graph)
    else:
        _fused(bld, l2, op, graph, tiling, two_level=strategy == "fastattention")


def describe(chip: Chip, op, graph, tiling) -> str:
    """The strategy and the block sizes an attention op runs with."""
    strategy = strategy_of(tiling)
    if strategy == "standard":
        return "standard: bmm, scale+mask, softmax, bmm"
    b, h, _, d, dv, q, kv, causal, dtype = _shape(op, graph)
    two = strategy == "fastattention"
    mask_tile = bool(getattr(tiling, "tiling_mask", True)) if tiling is not None else True
    skip = causal and mask_tile
    work = b * h * q * (kv if not skip else max(1, kv - q / 2))
    blk = _choose_blocks(chip, tiling, d, dv, q, kv, dtype, two, skip, work)
    level2 = f"/{blk.b2}" if two else ""
    mask = (", tiling-mask" if mask_tile else ", N x N mask from HBM") if causal else ""
    return f"{strategy}: blocks q {blk.bq} x kv {blk.b1}{level2}{mask}"


def _shape(op, graph):
    a = op.attrs
    d = a["head_dim"]
    return (a["batch"], a["heads"], a["kv_heads"], d, a.get("v_head_dim", d), a["q_len"],
            a["kv_len"], bool(a["causal"]), graph.tensors[op.inputs[0]].dtype)


# ---------------------------------------------------------------------- standard
def _standard(bld: Builder, l2: L2, op, graph) -> None:
    b, h, hk, d, dv, q, kv, causal, dtype = _shape(op, graph)
    spec = bld.chip.spec
    group = h // hk
    by = nbytes(dtype)
    name = op.name or "attention"
    start = bld.launch(label="launch bmm QK")
    ends = emit_gemm(bld, l2, batch=b * h, m=q, n=kv, k=d, dtype=dtype, a="Q", b="K",
                     out="S", b_group=group, deps=(start,), label=f"{name} QK")
    start = bld.launch(deps=ends, label="launch scale+mask")
    rows = b * h * q
    ins = [In("S", kv * by)]
    fns: tuple[str, ...] = ("mul",)
    if causal:
        ins.append(In("mask", kv * by, period=q, mask=True))
        fns = ("mul", "add")
    ends = emit_vector_kernel(bld, l2, units=rows, ins=ins, out="S2", out_bytes_per_unit=kv * by,
                              cycles_per_unit=cycles_per_element(spec, fns, dtype) * kv,
                              ub_per_unit=kv * by * (len(ins) + 1), label=f"{name} scale+mask",
                              deps=(start,), reread_fraction=0.0, release=("S",))
    start = bld.launch(deps=ends, label="launch softmax")
    per = cycles_per_element(spec, SOFTMAX, "fp32") * kv + 2 * ROW_TAIL_CYCLES
    ends = emit_vector_kernel(bld, l2, units=rows, ins=[In("S2", kv * by)], out="P",
                              out_bytes_per_unit=kv * by, cycles_per_unit=per,
                              ub_per_unit=kv * (2 * by + 2 * ACC), label=f"{name} softmax",
                              deps=(start,), reread_fraction=1.0, release=("S2",))
    start = bld.launch(deps=ends, label="launch bmm PV")
    emit_gemm(bld, l2, batch=b * h, m=q, n=dv, k=kv, dtype=dtype, a="P", b="V", out="O",
              b_group=group, deps=(start,), label=f"{name} PV")


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

    def softmax(self, rb: int, w: int, mask_op: str | None) -> float:
        """One block's online softmax on one vector core (its share of the rows)."""
        c, s = self.chip, self.chip.spec
        rv = cdiv(rb, c.vec_per_cube)
        fns = ONLINE_SOFTMAX + ((mask_op,) if mask_op else ())
        cpe = cycles_per_element(s, fns, "fp32")
        total = 0.0
        first_in = last_out = 0.0
        w2 = self.blocks.b2
        for lo in range(0, w, w2):
            ww = min(w2, w - lo)
            tin = rv * ww * ACC / c.l2_read_bw if c.split else 0.0
            comp = c.cycles(rv * ww * cpe + 2 * ROW_TAIL_CYCLES * cdiv(rv, 8))
            tout = rv * ww * nbytes(self.dtype) / c.mte3_bw
            total += max(tin, comp, tout)
            if lo == 0:
                first_in = tin
            last_out = tout
        stats = c.cycles(4 * cdiv(rv, 64) * s.vector_cycles_per_repeat["exp"])
        return first_in + total + last_out + stats

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


def _chain(costs: _Costs, rb: int, widths: tuple[int, ...], masked: tuple[str, ...],
           two_level: bool, warm: bool = False) -> tuple[float, float, float]:
    """(latency, cube busy, vector busy) of one query block's walk over its key blocks.

    With ``warm``, the block follows another on the same core (the kernel's loop
    over blocks runs on without a break): the latency is the extra time over a
    full-width block alone, so the pipeline fill is paid once per core.
    """
    if warm:
        b1 = costs.blocks.b1
        whole = _chain(costs, rb, (b1, *widths), ("", *masked), two_level)
        key = ("alone", rb, two_level)
        alone = costs.memo.get(key)
        if alone is None:
            alone = costs.memo[key] = _chain(costs, rb, (b1,), ("",), two_level)
        return whole[0] - alone[0], whole[1] - alone[1], whole[2] - alone[2]
    sync = costs.chip.spec.cv_sync_s
    J = len(widths)
    stage = costs.stage
    qk = [stage("qk", rb, w) for w in widths]
    fs = [stage("fix_s", rb, w) for w in widths]
    sm = [stage("softmax", rb, w, m or None) for w, m in zip(widths, masked)]
    pv = [stage("pv", rb, w) for w in widths]
    fo = stage("fix_o", rb)
    up = stage("update", rb)
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

    if two_level:  # the cube runs one block ahead of the vector cores
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
    else:  # one level: strictly block after block
        for j in range(J):
            run_qk(j)
            run_sm(j)
            run_pv(j)
            run_up(j)
    fin = stage("final", rb)
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


def _choose_blocks(chip: Chip, tiling, d: int, dv: int, q: int, kv: int, dtype: str,
                   two_level: bool, mask_tile: bool, work: float) -> Blocks:
    """The workload's block sizes (checked), or the best fitting ones by estimate."""
    bq_given = getattr(tiling, "block_q", 0) or 0
    b1_given = getattr(tiling, "block_kv", 0) or 0
    e = chip.spec.dim_align
    qmax = max(e, cdiv(q, e) * e)
    kvmax = max(e, cdiv(kv, e) * e)
    bqs = [bq_given] if bq_given else [x for x in (64, 128, 256) if x <= max(64, qmax)] or [64]
    if two_level:
        b1s = [b1_given] if b1_given else [x for x in (256, 512, 1024, 2048)
                                            if x <= max(256, kvmax)]
    else:
        b1s = [b1_given] if b1_given else [x for x in (64, 128, 256) if x <= max(64, kvmax)]
    best = None
    for bq in bqs:
        bq = min(bq, qmax) if not bq_given else bq
        for b1 in b1s:
            b1 = min(b1, kvmax) if not b1_given else b1
            b2s = [x for x in (512, 256, 128, 64) if x <= b1 and b1 % x == 0] if two_level \
                else [b1]
            for b2 in b2s or [b1]:
                blk = Blocks(bq, b1, b2)
                if not _fits(chip, blk, d, dv, dtype, mask_tile, two_level):
                    continue
                est = _estimate(chip, blk, d, dv, dtype, two_level, work)
                if best is None or est < best[0]:
                    best = (est, blk)
                break  # the largest fitting second level
    if best is None:  # nothing fits: report the (first) given or smallest size
        blk = Blocks(bqs[0], b1s[0], b1s[0] if not two_level else min(128, b1s[0]))
        _check_blocks(chip, blk, d, dv, dtype, mask_tile, two_level)
        raise InputError("no attention block size fits the buffers", source="workload",
                         field="tiling.block_kv")
    return best[1]


def _estimate(chip, blk, d, dv, dtype, two_level, work) -> float:
    """Steady-state time of ``work`` score elements with these blocks (for the search)."""
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
    return work / (blk.bq * w) * step / chip.n_cube


def _query_blocks(b: int, h: int, q: int, kv: int, blk: Blocks, causal: bool, skip: bool,
                  mask_op: str | None, mask_all: bool):
    """Query blocks in issue order: (batch, head, index, rows, key length, widths, masks).

    Heads one after another (their keys and values stay in L2 while in use);
    inside a head a zig-zag order (0, n-1, 1, n-2, ...) mixes long and short
    causal blocks. With ``skip`` the fully masked key blocks are left out.
    """
    off = kv - q  # query i sits at key position off + i
    nq = cdiv(q, blk.bq)
    order = []
    for i in range(cdiv(nq, 2)):
        order.append(i)
        if nq - 1 - i != i:
            order.append(nq - 1 - i)
    for bi in range(b):
        for hi in range(h):
            for qi in order:
                r0 = qi * blk.bq
                rb = min(blk.bq, q - r0)
                length = min(kv, max(0, off + r0 + rb)) if skip else kv
                if length <= 0:
                    continue
                widths = [blk.b1] * (length // blk.b1) + ([length % blk.b1] if length % blk.b1
                                                          else [])
                masks, lo = [], 0
                for w in widths:  # a block reaching past the first row's last key is masked
                    crosses = causal and lo + w > off + r0 + 1
                    masks.append(mask_op if (crosses or mask_all) else "")
                    lo += w
                yield bi, hi, qi, rb, length, tuple(widths), tuple(masks)


def _fused(bld: Builder, l2: L2, op, graph, tiling, two_level: bool) -> None:
    chip = bld.chip
    b, h, hk, d, dv, q, kv, causal, dtype = _shape(op, graph)
    by = nbytes(dtype)
    group = h // hk
    mask_tile = bool(getattr(tiling, "tiling_mask", True)) if tiling is not None else True
    skip = causal and mask_tile
    mask_from_gm = causal and not mask_tile
    work = b * h * q * (kv if not skip else max(1, kv - q / 2))
    blk = _choose_blocks(chip, tiling, d, dv, q, kv, dtype, two_level, skip, work)
    costs = _Costs(chip, d, dv, dtype, blk, cdiv(blk.bq, chip.vec_per_cube))
    name = op.name or "attention"
    start = bld.launch(label=f"launch {name}")
    mask_op = "select" if skip else ("add" if mask_from_gm else None)
    chains: dict[tuple, tuple[float, float, float, int]] = {}
    per_core: list[list[Item]] = [[] for _ in range(chip.n_cube)]
    load = [0.0] * chip.n_cube
    free = [(0.0, c) for c in range(chip.n_cube)]
    seen: dict[tuple[int, int], int] = {}  # (batch, kv head) -> keys already read into L2
    l2_ok = 4 * kv * (d + dv) * by <= l2.capacity / 2  # the heads in flight fit in L2
    mask_fits = 2 * q * kv * by <= l2.capacity / 2
    mask_seen: set[int] = set()
    tile_seen: set[int] = set()
    out_resident = l2.write("O", b * h * q * dv * by)
    macs_action = f"mac_{chip.cube_dtype(dtype)}"
    for bi, hi, qi, rb, length, widths, masks in _query_blocks(
            b, h, q, kv, blk, causal, skip, mask_op, mask_from_gm):
        core = heapq.heappop(free)[1]  # the least loaded cube core takes the block
        warm = bool(per_core[core])
        key = (rb, widths, masks, warm)
        ch = chains.get(key)
        if ch is None:
            macs = sum(padded_macs(chip, rb, w, d, dtype) + padded_macs(chip, rb, dv, w, dtype)
                       for w in widths)
            ch = chains[key] = (*_chain(costs, rb, widths, masks, two_level, warm), macs)
        latency, cube_s, vec_s, macs = ch
        load[core] += latency
        heapq.heappush(free, (load[core], core))
        # loads: the Q block from HBM; K/V blocks from HBM the first time a head's block
        # is read, from L2 after
        head = (bi, hi // group)
        kv_bytes = length * (d + dv) * by
        new = max(0, length - seen.get(head, 0)) * (d + dv) * by if l2_ok else kv_bytes
        seen[head] = max(seen.get(head, 0), length)
        hbm = chip.burst(1, rb * d * by) + new
        l2b = kv_bytes - new
        mask_hbm = 0.0
        if mask_from_gm:  # this block's rows of the N x N mask, shared by all heads
            mb = rb * length * by
            if qi in mask_seen and mask_fits:
                l2b += mb
            else:
                hbm += mb
                mask_hbm = mb
                mask_seen.add(qi)
        elif skip and core not in tile_seen:  # the one small mask tile, once per core
            tb = blk.bq * blk.b2 * by
            if tile_seen:
                l2b += tb
            else:
                hbm += tb
                mask_hbm = tb
            tile_seen.add(core)
        elems = rb * length
        workspace = elems * (ACC + by) * 2 + len(widths) * rb * dv * ACC * 2 if chip.split else 0
        actions = {macs_action: macs,
                   "vector_cycle": vec_s / chip.cycle_s * chip.vec_per_cube,
                   "l0_byte": macs * 0.25 * by / 2 + elems * ACC,
                   "l1_byte": 2 * (kv_bytes + elems * by),
                   "ub_byte": elems * (ACC + by) * 2 + rb * dv * ACC * 4,
                   "l2_byte": hbm + l2b + workspace}
        bound = "latency" if latency > 1.15 * max(cube_s, vec_s) else "compute"
        per_core[core].append(Item(len(widths), hbm, l2b, mask_hbm, latency,
                                   chip.burst(1, rb * dv * by), actions, bound, shadow_s=vec_s))
    for c, items in enumerate(per_core):
        vecs = chip.vecs_of(c)
        emit_pipeline(bld, items, load_unit=chip.aic(c, "mte2"), compute_unit=chip.aic(c, "cube"),
                      store_unit=chip.aiv(vecs[0], "mte3"), store_bw=chip.mte3_bw * len(vecs),
                      store_to_hbm=not out_resident, deps=(start,), dest="l1", src="ub",
                      label=name, shadow_units=tuple(chip.aiv(v, "vector") for v in vecs),
                      shadow_label=f"{name} softmax")
