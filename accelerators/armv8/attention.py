"""Fused attention on the CPU: per-head GEMMs and a softmax, tiled to stay in L2.

``softmax(Q Kᵀ · scale + mask) V`` for ``heads`` query heads sharing
``kv_heads`` key/value heads. The queries of the heads that share a K/V head are
stacked (``q_len x group`` rows), so K and V are read once per group.

``flash`` (``tiling.attention``: ``flash``, ``fastattention`` or ``auto``)
    FlashAttention-style: a block of ``block_q`` query rows walks the K/V blocks
    of ``block_kv`` keys; ``S = Q Kᵀ`` of the block, its online softmax (a
    vectorized exp per score, the running max and sum, the rescale of the output
    rows) and ``O += P V`` stay in L1/L2. Blocks are chosen (when the workload
    leaves them at 0) as the largest that fit in half of a core's L2. A causal
    mask skips the blocks above the diagonal (FLOPs are still counted in full).
``standard``
    Unfused: ``S`` of every head for all keys is written out, read by the softmax,
    written as ``P`` and read again by ``P V``; the score matrices of all heads
    travel to the level that holds them (the last level, or DRAM).

Threads take (batch, K/V head, query block) units in head-major order, so the
blocks of one head share that head's K/V in their L2; when there are fewer units
than cores (decode), the keys are split too (split-K, flash-decoding style) and
the partial outputs merged after a barrier. The per-block GEMMs use the
workload's GEMM strategy: OpenBLAS kernels with their edge kernels and packing of
both operands, or IAAT/AutoTSMM exact-size kernels that only transpose K.
"""

from __future__ import annotations

import math

from hwsim.ir.dtypes import nbytes

from .ecm import Plan, Step, estimate, split
from .gemm import KERNEL_FIELD, STRATEGIES, pack_step, power_parts, run_kernels, tile_kernels
from .kernels import checked_kernel
from .placement import level_of, reread
from .spec import Machine

BLOCK_Q = (256, 128, 64, 32, 16, 8, 4, 2, 1)
BLOCK_KV = (1024, 512, 256, 128, 64)
SOFTMAX_OPS = 5.0  # max, subtract, sum, the running-max rescale, a convert/select


def block_options(rows: int, kv: int, d: int, dv: int, s: int, mach: Machine,
                  block_q: int = 0, block_kv: int = 0) -> list[tuple[int, int]]:
    """(block_q, block_kv) pairs to try: for each query block, the largest key block
    whose working set (Q, K, Kᵀ, V, S and O blocks) fits half a core's L2. Blocks
    the workload sets are taken as they are."""
    budget = mach.l2_per_core / 2
    out = []
    for bq in sorted({max(1, min(x, rows)) for x in ([block_q] if block_q else BLOCK_Q)}):
        fits = [max(1, min(x, kv)) for x in ([block_kv] if block_kv else BLOCK_KV)
                if block_kv or s * (bq * d + min(x, kv) * (2 * d + dv) + bq * min(x, kv)
                                    + bq * dv) <= budget]
        if fits:
            out.append((bq, max(fits)))
    return out or [(max(1, min(block_q or 1, rows)), max(1, min(block_kv or 64, kv)))]


def visible_pairs(q: int, kv: int, bq_pos: int, bkv: int, causal: bool) -> float:
    """(query block, key block) pairs a causal mask leaves work in, summed."""
    nq, nkv = math.ceil(q / bq_pos), math.ceil(kv / bkv)
    if not causal:
        return float(nq * nkv)
    off = kv - q  # queries are the last q of the kv positions
    total = 0
    for i in range(nq):
        last = min(q, (i + 1) * bq_pos) - 1 + off
        total += min(nkv, last // bkv + 1)
    return float(total)


def attention_plan(op, graph, mach: Machine, tiling, strategy: str) -> Plan:
    a = op.attrs
    t = graph.tensors
    qt, kt, vt = (t[i] for i in op.inputs[:3])
    ot = t[op.outputs[0]]
    dtype = qt.dtype
    mach.check_dtype(dtype, op.line(graph))
    b, h, hk, d = a["batch"], a["heads"], a["kv_heads"], a["head_dim"]
    dv = a.get("v_head_dim", d)
    q, kv, causal = a["q_len"], a["kv_len"], bool(a["causal"])
    mode = getattr(tiling, "attention", "auto") if tiling is not None else "auto"
    mode = "standard" if mode == "standard" else "flash"
    bq_set = getattr(tiling, "block_q", 0) if tiling is not None else 0
    bkv_set = getattr(tiling, "block_kv", 0) if tiling is not None else 0
    strategies = STRATEGIES if strategy == "auto" else (strategy,)
    rows, s = q * (h // hk), nbytes(1, dtype)
    if mode == "standard":  # row blocks over the whole key range; S is materialized
        blocks = sorted({(max(1, min(x, rows)), kv) for x in ([bq_set] if bq_set else BLOCK_Q)})
    else:
        blocks = block_options(rows, kv, d, dv, s, mach, bq_set, bkv_set)
    plans = [_plan(mach, dtype, b, h, hk, d, dv, q, kv, causal, mode, bq, bkv, strat,
                   (qt, kt, vt, ot)) for strat in strategies for bq, bkv in blocks]
    best = min(plans, key=lambda p: estimate(p, mach))
    if strategy == "auto":
        best.detail["auto_estimates_s"] = {
            st: min(estimate(p, mach) for p in plans if p.strategy == st) for st in strategies}
    return best


def _plan(mach: Machine, dtype: str, b, h, hk, d, dv, q, kv, causal, mode, bq, bkv,
          strategy: str, tensors) -> Plan:
    """One (strategy, block_q, block_kv) choice: see the module docstring."""
    qt, kt, vt, ot = tensors
    spec = mach.spec
    s = nbytes(1, dtype)
    lanes = mach.lanes(dtype)
    group = h // hk
    rows = q * group
    nq = math.ceil(rows / bq)
    units = b * hk * nq
    kv_split = 1
    if units < spec.cores and mode == "flash" and kv > 64:
        kv_split = min(math.ceil(spec.cores / units), math.ceil(kv / 64))
        bkv = min(bkv, math.ceil(kv / kv_split))
    threads = min(spec.cores, units * kv_split)
    per_thread = math.ceil(units * kv_split / threads)
    bq_pos = max(1, bq // group)  # query positions per block
    pairs = visible_pairs(q, kv, bq_pos, bkv, causal)  # per (batch, K/V head)
    blocks_per_unit = pairs / nq / kv_split
    rows_u = rows / nq
    bq_u = max(1, round(rows_u))

    st = Step("blocks")
    # ---- the two GEMMs of one (query block, key block)
    if strategy == "openblas":
        mr, nr = mach.kernel_shape(dtype)
        checked_kernel(mr, nr, lanes, spec, f"spec.{KERNEL_FIELD.get(dtype, 'sgemm_kernel')}")
        qk_rows, qk_cols = power_parts(bq_u, mr), power_parts(bkv, nr)
        pv_rows, pv_cols = power_parts(bq_u, mr), power_parts(dv, nr)
        kname = f"{mr}x{nr}"
        packs = bkv * d + bq_u * bkv + bkv * dv  # K block, P, V block (Q once per unit)
        once = bq_u * d
    else:
        ker, qk_rows, qk_cols, _, _ = tile_kernels(bq_u, bkv, d, lanes, mach)
        pv_ker, pv_rows, pv_cols, _, _ = tile_kernels(bq_u, dv, bkv, lanes, mach)
        kname = f"{ker.name()}/{pv_ker.name()}"
        packs = bkv * d  # Kᵀ of the block
        once = 0
    blk = Step("block")
    run_kernels(blk, qk_rows, qk_cols, d, lanes, mach)
    run_kernels(blk, pv_rows, pv_cols, bkv, lanes, mach)
    pk = pack_step("pack", packs, lanes, mach)
    blk.add(pk)
    # online softmax of the block and the rescale of the output rows
    sm_vecs = math.ceil(bq_u * bkv / lanes)
    sm_ops = sm_vecs * (spec.vexp_instructions + SOFTMAX_OPS) + math.ceil(bq_u * dv / lanes)
    blk.arith_cycles += max(sm_ops / spec.fma_pipes, (sm_ops + 2 * sm_vecs) / spec.issue_width)
    blk.port_cycles += sm_vecs * (1 / spec.load_ports + 1 / spec.store_ports)
    blk.vop += sm_ops + 2 * sm_vecs
    st.add(blk.scaled(blocks_per_unit * per_thread))
    if once:
        st.add(pack_step("pack Q", once, lanes, mach).scaled(per_thread))

    # ---- data: Q and O once per unit, K/V blocks per visible block
    q_lvl = level_of(qt.kind, qt.bytes, mach, threads)
    k_lvl = level_of(kt.kind, kt.bytes + vt.bytes, mach, threads)
    o_lvl = level_of(ot.kind, ot.bytes, mach, threads)
    st.read(q_lvl, per_thread * bq_u * d * s)
    kv_block = bkv * (d + dv) * s
    kv_reads = per_thread * blocks_per_unit * kv_block
    head_kv = kv * (d + dv) * s
    st.read(k_lvl, kv_reads * (1.0 / nq if kv_split == 1 else 1.0))
    if kv_split == 1 and nq > 1:
        heads_live = min(threads, b * hk)  # threads take units head-major
        reread(st, head_kv, kv_reads * (1 - 1.0 / nq), mach, heads_live, k_lvl)
    st.write(o_lvl, per_thread * bq_u * dv * s)
    if mode == "standard":  # S written, read by the softmax, P written, read by P V
        s_bytes = bq_u * kv * s
        s_home = level_of("activation", b * h * q * kv * s, mach, threads)
        st.write(s_home, 2 * per_thread * s_bytes)
        st.read(s_home, 2 * per_thread * s_bytes)
    # the L1 <-> L2 traffic of the working blocks (scores and the output rows)
    st.read("l2", per_thread * blocks_per_unit * (bq_u * dv * s))
    steps = split(st, 4 if st.dram_read or st.dram_write else 1)
    if kv_split > 1:
        merge = Step("merge partial outputs")
        elems = bq_u * dv  # kv_split partial blocks, merged by kv_split threads
        mv = math.ceil(elems / lanes) * 3
        merge.arith_cycles = mv / spec.fma_pipes
        merge.port_cycles = mv / spec.load_ports
        merge.vop = mv
        merge.read("l3", elems * s)
        steps[-1].barrier = True
        steps.append(merge)
    return Plan(strategy, threads, steps, dtype, mach.call_s("op"), kname,
                {"mode": mode, "block_q": bq, "block_kv": bkv, "kv_split": kv_split,
                 "units": units, "causal_blocks": pairs})
