"""GEMM on ARMv8 cores: the three library strategies as per-thread ECM work.

``C[m, n] = A[m, k] @ B[k, n]`` (``batch`` times). Each strategy decides how the
threads split C, which micro-kernels run (:mod:`.kernels`), what is packed, and
what each cache level must deliver:

``openblas``
    Goto's algorithm as OpenBLAS runs it (``driver/level3/level3_thread.c``):
    one thread when ``m n k <= 65536 x 4`` (``interface/gemm.c``), else a 2-D
    grid of threads chosen by ``SWITCH_RATIO``; per k-block of ``GEMM_Q``, each
    thread packs its rows of A (``GEMM_P`` x ``GEMM_Q``) and its share of B, the
    threads meet, and the 16x4 (fp32) / 8x4 (fp64) kernel runs N-outer, M-inner,
    streaming the packed A block once per 4-column B panel. Rows and columns left
    over run the power-of-two edge kernels (8, 4, 2, 1 rows; 2, 1 columns), whose
    few accumulators leave the FMA latency exposed. Packing costs loads, stores
    and transposes in the core, and its reads and writes in the caches.
``iaat``
    No packing: kernels of every size are generated at install time, and the
    input-aware tiler picks, for each thread's tile, the main kernel whose
    remainders run as exact-size kernels, so there are no boundary kernels. The
    operands are read in place, so a large GEMM pays what packing avoids: the
    operand along the vectors is walked at a stride of its leading dimension, a
    page-table walk per k-step once a walk's pages exceed the TLB, and lines lost
    to set conflicts before the next row tile uses their rest. ``auto`` considers
    it only for small GEMMs, its paper's domain (:func:`is_small`).
``autotsmm``
    For tall-and-skinny shapes (the small side of C at most 64 and the large one
    at least 8 times longer): the small operand is pre-packed once, cooperatively,
    the large one streams through the threads in place, and the inner kernel was
    chosen at install time for the small side. Other shapes run (and are named)
    the OpenBLAS path.
``auto``
    What a tuned library would pick: the fastest by the plan estimate among
    OpenBLAS, IAAT when the GEMM is small and AutoTSMM when C is tall and skinny.

Every operand arrives cold from DRAM and C is written back to DRAM
(:mod:`.placement`); no library call cost is modelled beyond a framework's
dispatch, the same for all three (none has a measured or counted source).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

from hwsim.ir.dtypes import nbytes

from .ecm import Plan, Step, estimate, fastest, materialize, repeat, tiles
from .kernels import (
    Kernel,
    checked_kernel,
    fastest_kernels,
    kernel_counts,
    kernel_cycles,
    kstep_cycles,
    tile_cycles,
)
from .placement import reread, reread_shares, resident, shared_read, strided_walk
from .spec import Machine

STRATEGIES = ("openblas", "iaat", "autotsmm")
SMP_MNK = 65536 * 4  # OpenBLAS interface/gemm.c: SMP_THRESHOLD_MIN x GEMM_MULTITHREAD_THRESHOLD
TS_SMALL = 64  # AutoTSMM: the short side of C ...
TS_RATIO = 8  # ... and how much longer the long side is
SMALL_MNK = 80 ** 3  # IAAT's domain, small GEMM: (m n k)^(1/3) <= 80 (see is_small)
PACK_PERMUTES = 2.0  # ZIP/TRN per packed vector: a 4x4 transpose is 8 permutes for 4 vectors
KERNEL_FIELD = {"fp32": "sgemm_kernel", "fp64": "dgemm_kernel", "fp16": "hgemm_kernel"}
PHASES = 4  # most (pack, barrier, kernels) phases of an OpenBLAS plan in the event run
TILES = 8  # a streaming kernel step as tiles, so that DRAM (prefetched a tile ahead) overlaps


@dataclass(frozen=True)
class Gemm:
    """A (batched) GEMM as the planners see it: ``batch`` products of an ``m x k`` A by a
    ``k x n`` B in ``dtype``; an operand shared by the whole batch is broadcast."""

    batch: int
    m: int
    n: int
    k: int
    dtype: str
    a_broadcast: bool = False  # one A (B) for every batch entry: read from DRAM once
    b_broadcast: bool = False

    @property
    def s(self) -> int:
        return nbytes(1, self.dtype)

    @property
    def flops(self) -> int:
        return 2 * self.batch * self.m * self.n * self.k


# ------------------------------------------------------------------ helpers
def pack_step(label: str, elems: float, lanes: int, mach: Machine,
              transpose: bool = True) -> Step:
    """Copying ``elems`` into panels: a load and a store per vector, and the
    permutes of a 4x4 transpose when the panel's layout is the source's transpose."""
    spec = mach.spec
    vecs = elems / lanes
    perms = PACK_PERMUTES * vecs if transpose else 0.0
    return Step(label, arith_cycles=pack_cycles(vecs, perms, spec),
                port_cycles=vecs / spec.load_ports + vecs / spec.store_ports,
                vop=2 * vecs + perms)


def pack_cycles(vecs: float, perms: float, spec) -> float:
    """:func:`pack_step`'s in-core cycles: its permutes on the FMA pipes, or its loads,
    stores and permutes through the front end, whichever is longer."""
    return max(perms / spec.fma_pipes, (2 * vecs + perms) / spec.issue_width)


def run_kernels(step: Step, rows: list[tuple[int, int]], cols: list[tuple[int, int]],
                depth: int, lanes: int, mach: Machine) -> None:
    """Add every (rows x cols) kernel call of a tile, ``depth`` k-steps each.

    One call's terms are kept per machine and kernel (:func:`_call_terms`): the same
    products are added in the same order."""
    terms = mach.__dict__.get("_call_terms")
    if terms is None or len(terms) > 8192:
        terms = mach.__dict__["_call_terms"] = {}
    for r, nr_ in rows:
        for c, nc_ in cols:
            calls = nr_ * nc_
            if not calls:
                continue
            key = (r, c, lanes, depth)
            got = terms.get(key)
            if got is None:
                got = terms[key] = _call_terms(r, c, lanes, depth, mach.spec)
            cycles, fmas, other, ports = got
            step.arith_cycles += calls * cycles
            step.vfma += calls * fmas
            step.vop += calls * other
            step.port_cycles += calls * ports


def _call_terms(r: int, c: int, lanes: int, depth: int, spec) -> tuple:
    """One call of the ``r x c`` kernel over ``depth`` k-steps: cycles, vector FMAs,
    other vector instructions, L1 port cycles."""
    ker = Kernel(r, c, lanes)
    fmas, other = kernel_counts(ker, depth)
    return (kernel_cycles(ker, depth, spec), fmas, other,
            ((ker.vecs + ker.bvecs) * depth + ker.accumulators) / spec.load_ports
            + ker.accumulators / spec.store_ports)


def kernels_step(label: str, rows: list[tuple[int, int]], cols: list[tuple[int, int]],
                 depth: int, lanes: int, mach: Machine) -> Step:
    """A new step holding :func:`run_kernels` of a tile, and nothing else.

    Its amounts depend only on the kernel calls, their depth and the core, so they
    are kept per machine (a planner asks for the same tiles again for every thread
    cap, k block and sweep point): the step is made from the kept sums, the floats
    :func:`run_kernels` gives a new step (a test holds the two equal)."""
    got = kernel_amounts(rows, cols, depth, lanes, mach)
    return Step(label, arith_cycles=got[0], port_cycles=got[1], vfma=got[2], vop=got[3])


def kernel_amounts(rows: list[tuple[int, int]], cols: list[tuple[int, int]], depth: int,
                   lanes: int, mach: Machine) -> tuple[float, float, float, float]:
    """The amounts of :func:`kernels_step` (arith and port cycles, vector FMAs, other
    vector instructions), kept per machine."""
    memo = mach.__dict__.setdefault("_kernel_steps", {})
    key = (tuple(rows), tuple(cols), depth, lanes)
    got = memo.get(key)
    if got is None:
        if len(memo) > 4096:  # a long sweep's tiles: bounded
            memo.clear()
        st = Step("")
        run_kernels(st, rows, cols, depth, lanes, mach)
        got = memo[key] = (st.arith_cycles, st.port_cycles, st.vfma, st.vop)
    return got


def power_parts(size: int, main: int) -> list[tuple[int, int]]:
    """OpenBLAS's split of ``size``: whole ``main`` blocks, then edge kernels of the
    powers of two below ``main`` that make up the rest (16: 8, 4, 2, 1)."""
    parts = [(main, size // main)] if size >= main else []
    rest = size % main
    e = 1 << (main.bit_length() - 1)
    if e == main:
        e >>= 1
    while e >= 1:
        if rest & e:
            parts.append((e, 1))
        e >>= 1
    return parts


def exact_parts(size: int, main: int) -> list[tuple[int, int]]:
    """IAAT's split: whole ``main`` blocks and one exact-size kernel for the rest."""
    parts = [(main, size // main)] if size >= main else []
    if size % main:
        parts.append((size % main, 1))
    return parts


def batch_split(batch: int, threads: int) -> tuple[int, int, int]:
    """(threads over the batch, GEMMs per such thread, threads left per GEMM)."""
    # (max(1, min(batch, threads)) and max(1, threads // tb) as tests: the same values,
    # without the calls of max() and min(), which parse their arguments as keywords too)
    tb = threads if threads < batch else batch
    tb = tb if tb > 1 else 1
    per = threads // tb
    return tb, math.ceil(batch / tb), per if per > 1 else 1


def openblas_grid(m: int, n: int, threads: int, ratio: int) -> tuple[int, int]:
    """nthreads_m x nthreads_n of OpenBLAS's level3_thread.c for ``threads``."""
    if threads <= 1:
        return 1, 1
    if m < 2 * ratio:
        tm = 1
    else:
        tm = threads
        while m < tm * ratio:
            tm //= 2
    if n < ratio * tm:
        tn = 1
    else:
        tn = -(-n // (ratio * tm))
        if tm * tn > threads:
            tn = threads // tm
        while tm % 2 == 0 and n * tm + m * tn > n * (tm // 2) + m * (tn * 2):
            tm //= 2
            tn *= 2
    # (max(1, tm), max(1, tn) as tests: the same values, without two calls of max())
    return (tm if tm > 1 else 1), (tn if tn > 1 else 1)


def k_blocks(k: int, q: int) -> list[int]:
    """OpenBLAS's k-steps: GEMM_Q while at least twice remains, else halves."""
    out, left = [], k
    while left > 0:
        kc = left
        if kc >= 2 * q:
            kc = q
        elif kc > q:
            kc = (kc + 1) // 2
        out.append(kc)
        left -= kc
    return out


def m_block(m_t: int, p: int, mr: int) -> int:
    if m_t >= 2 * p:
        return p
    if m_t > p:
        return ((m_t // 2 + mr - 1) // mr) * mr
    return m_t


def thread_counts(limit: int) -> list[int]:
    out, t = [], 1
    while t < limit:
        out.append(t)
        t *= 2
    out.append(limit)
    return out


def square_grid(m: int, n: int, threads: int) -> tuple[int, int]:
    """The tm x tn split of ``threads`` whose tiles are closest to square."""
    best = (1, threads)
    for tm in range(1, threads + 1):
        if threads % tm:
            continue
        tn = threads // tm
        if tm > max(1, m) or tn > max(1, n):
            continue
        if m / tm + n / tn < m / best[0] + n / best[1]:
            best = (tm, tn)
    return best


def tile_kernels(m_t: int, n_t: int, depth: int, lanes: int, mach: Machine,
                 along_n: bool | None = None, min_cols: int = 1
                 ) -> tuple[Kernel, list, list, float, bool]:
    """The input-aware tiler: the main kernel (and its exact remainders) that runs an
    ``m_t x n_t`` tile in the fewest cycles, with its vectors along m, along n
    (``along_n``), or whichever is faster (None; a single row wants them along n),
    among kernels of at least ``min_cols`` columns. Returns the kernel, the row and
    column parts in the kernel's orientation, the cycles, and whether the vectors
    run along n."""
    sp = mach.spec
    key = (m_t, n_t, depth, lanes, along_n, min_cols, sp.fma_pipes, sp.fma_latency_cycles,
           sp.load_ports, sp.store_ports, sp.issue_width, sp.vector_registers)
    hit = _TILER_CACHE.get(key)
    if hit is None:
        if len(_TILER_CACHE) > 100_000:  # a long sweep over many sizes
            _TILER_CACHE.clear()
        # every kernel at once on arrays once numpy is loaded; before, on the same
        # table in Python floats (the same choice and cycles: tests hold both to the
        # kernel-by-kernel definition), which costs less than importing numpy
        tiler = _tile_kernels if "numpy" in sys.modules else _tile_kernels_plain
        hit = _TILER_CACHE[key] = tiler(m_t, n_t, depth, lanes, mach, along_n, min_cols)
    return hit


_TILER_CACHE: dict = {}  # the tiler's choice depends only on the sizes and the core
_PLAIN_TABLES: dict = {}  # the same tables as lists, for the tiler without numpy
_TABLES: dict = {}  # per core: the candidate kernels and every shape's cycle terms


def _plain_table(lanes: int, mach: Machine):
    """The candidate kernels (:func:`fastest_kernels`, in order) and
    :func:`kstep_cycles` / :func:`tile_cycles` of every shape up to the largest, as
    lists of rows (index 0: no kernel, 0 cycles), kept per core."""
    sp = mach.spec
    key = (lanes, sp.fma_pipes, sp.fma_latency_cycles, sp.load_ports, sp.store_ports,
           sp.issue_width, sp.vector_registers)
    got = _PLAIN_TABLES.get(key)
    if got is None:
        kers = fastest_kernels(lanes, sp)
        n_r = max(k.rows for k in kers) + 1
        n_c = max(k.cols for k in kers) + 1
        ks = [[0.0] * n_c for _ in range(n_r)]
        tc = [[0.0] * n_c for _ in range(n_r)]
        for r in range(1, n_r):
            for c in range(1, n_c):
                k = Kernel(r, c, lanes)
                ks[r][c], tc[r][c] = kstep_cycles(k, sp), tile_cycles(k, sp)
        got = _PLAIN_TABLES[key] = (key, kers, ks, tc)
    return got


def _kernel_table(lanes: int, mach: Machine):
    """:func:`_plain_table` with the kernels' rows and columns and the cycle tables
    as arrays, kept per core."""
    import numpy as np  # noqa: PLC0415 (loaded on first need)

    key, kers, ks, tc = _plain_table(lanes, mach)
    got = _TABLES.get(key)
    if got is None:
        rows = np.array([k.rows for k in kers], dtype=np.int64)
        cols = np.array([k.cols for k in kers], dtype=np.int64)
        got = _TABLES[key] = (kers, rows, cols, np.array(ks), np.array(tc))
    return got


def _plain_at(lanes: int, mach: Machine, depth: int):
    """(the kernels grouped by rows, in :func:`fastest_kernels`' order, as
    ``(rows, [(cols, kernel), ...])``; the cycle tables ``ks`` and ``tc``; the rows of
    every shape's ``depth x kstep + tile`` cycles made so far, the element the
    arrays' ``depth * ks + tc`` holds), kept per core and depth: a sweep asks the
    tiler about many tiles of a few depths (a head dimension, a k). A row is made
    when a tile first needs it (a depth met once costs no whole table)."""
    key, kers, ks, tc = _plain_table(lanes, mach)
    got = _PLAIN_AT.get((key, depth))
    if got is None:
        if len(_PLAIN_AT) > 512:
            _PLAIN_AT.clear()
        groups: list = []
        for ker in kers:  # (rows outer, columns inner: the order kept)
            if not groups or groups[-1][0] != ker.rows:
                groups.append((ker.rows, []))
            groups[-1][1].append((ker.cols, ker))
        got = _PLAIN_AT[(key, depth)] = (groups, ks, tc, [None] * len(ks))
    return got


_PLAIN_AT: dict = {}  # per core and depth: _plain_at's kernels and cycle rows


def _tile_kernels_plain(m_t, n_t, depth, lanes, mach, along_n, min_cols):
    """:func:`_tile_kernels` kernel after kernel in Python floats: each kernel's
    cycles are the arrays' element (``depth x kstep + tile`` of each of its four
    part shapes, added in the same order; an int times a float is the same rounded
    product), and the first of the fastest is kept, as ``argmin`` keeps it. The
    kernels are met in the same order, those of one row count together (their row
    parts and cycle rows shared)."""
    if m_t <= 0 or n_t <= 0:
        return _tile_kernels_loop(m_t, n_t, depth, lanes, mach, along_n, min_cols)
    groups, ks, tc, at = _plain_at(lanes, mach, depth)
    best_cyc = best = None
    for swapped in ((False, True) if along_n is None else (along_n,)):
        rows_n, cols_n = (n_t, m_t) if swapped else (m_t, n_t)
        cap = -(-max(rows_n, 1) // lanes) * lanes
        top, low = max(cols_n, 1), min(min_cols, cols_n)
        for R, cols in groups:
            if R > cap:
                continue
            qr, rr = rows_n // R, rows_n % R
            atr, atq = at[R], at[rr]
            if atr is None:
                atr = at[R] = [depth * k + t for k, t in zip(ks[R], tc[R])]
            if atq is None:
                atq = at[rr] = [depth * k + t for k, t in zip(ks[rr], tc[rr])]
            for C, ker in cols:
                if C > top or C < low:
                    continue
                qc, cr = cols_n // C, cols_n % C
                cyc = (qr * qc) * atr[C]
                cyc = cyc + qr * atr[cr]
                cyc = cyc + qc * atq[C]
                cyc = cyc + atq[cr]
                if best_cyc is None or cyc < best_cyc:
                    best_cyc, best = cyc, (ker, swapped)
    if best is None:  # a tile narrower than a vector: one exact kernel
        return Kernel(m_t, n_t, lanes), [(m_t, 1)], [(n_t, 1)], 0.0, False
    ker, swapped = best
    rows_n, cols_n = (n_t, m_t) if swapped else (m_t, n_t)
    return (ker, exact_parts(rows_n, ker.rows), exact_parts(cols_n, ker.cols),
            float(best_cyc), swapped)


def _tile_kernels(m_t, n_t, depth, lanes, mach, along_n, min_cols):
    """Every candidate kernel's cycles for the tile at once: a kernel of ``R x C``
    runs ``exact_parts`` of the rows and columns, the terms added in the order
    :func:`_tile_kernels_loop` adds them (a missing part adds 0.0, which changes no
    sum), so the same floats and the same first fastest kernel."""
    import numpy as np  # noqa: PLC0415

    if m_t <= 0 or n_t <= 0:
        return _tile_kernels_loop(m_t, n_t, depth, lanes, mach, along_n, min_cols)
    kers, R, C, ks, tc = _kernel_table(lanes, mach)
    at = depth * ks + tc  # kernel_cycles of every shape at this depth
    options = (False, True) if along_n is None else (along_n,)
    cycs = []
    for swapped in options:
        rows_n, cols_n = (n_t, m_t) if swapped else (m_t, n_t)
        cap = -(-max(rows_n, 1) // lanes) * lanes
        ok = (R <= cap) & (C <= max(cols_n, 1)) & (C >= min(min_cols, cols_n))
        qr, rr = rows_n // R, rows_n % R
        qc, cr = cols_n // C, cols_n % C
        cyc = (qr * qc) * at[R, C]
        cyc = cyc + qr * at[R, cr]
        cyc = cyc + qc * at[rr, C]
        cyc = cyc + at[rr, cr]
        cycs.append(np.where(ok, cyc, np.inf))
    allc = np.concatenate(cycs)
    i = int(np.argmin(allc))  # the first of the fastest, as the loop keeps it
    if not np.isfinite(allc[i]):  # a tile narrower than a vector: one exact kernel
        return Kernel(m_t, n_t, lanes), [(m_t, 1)], [(n_t, 1)], 0.0, False
    swapped = options[i // len(kers)]
    ker = kers[i % len(kers)]
    rows_n, cols_n = (n_t, m_t) if swapped else (m_t, n_t)
    return (ker, exact_parts(rows_n, ker.rows), exact_parts(cols_n, ker.cols), float(allc[i]),
            swapped)


def _tile_kernels_loop(m_t, n_t, depth, lanes, mach, along_n, min_cols):
    """:func:`_tile_kernels` kernel by kernel (the definition; empty tiles use it)."""
    best = None
    for swapped in ((False, True) if along_n is None else (along_n,)):
        rows_n, cols_n = (n_t, m_t) if swapped else (m_t, n_t)
        cap = -(-max(rows_n, 1) // lanes) * lanes
        for ker in fastest_kernels(lanes, mach.spec):
            if ker.rows > cap or ker.cols > max(cols_n, 1) or ker.cols < min(min_cols, cols_n):
                continue
            rows, cols = exact_parts(rows_n, ker.rows), exact_parts(cols_n, ker.cols)
            cyc = sum(nr_ * nc_ * kernel_cycles(Kernel(r, c, lanes), depth, mach.spec)
                      for r, nr_ in rows for c, nc_ in cols)
            if best is None or cyc < best[3]:
                best = (ker, rows, cols, cyc, swapped)
    if best is None:  # a tile narrower than a vector: one exact kernel
        return Kernel(m_t, n_t, lanes), [(m_t, 1)], [(n_t, 1)], 0.0, False
    return best


# ---------------------------------------------------------------- strategies
def _cold(step: Step, nbytes_: float, sharers: int, reps: int, broadcast: bool, mach: Machine,
          threads: int) -> None:
    """A cold operand slice read once per repetition (batch entry) of a thread: from DRAM
    (``sharers`` threads reading the same slice bring it once), except that an operand
    broadcast over the batch comes from DRAM only once, later repetitions finding it in
    the last level at the sweep hit rate of all threads' slices."""
    if not broadcast or reps <= 1:
        shared_read(step, nbytes_, sharers)
        return
    shared_read(step, nbytes_ / reps, sharers)
    reread(step, nbytes_, nbytes_ * (reps - 1) / reps, mach, threads)


def openblas_threads(g: Gemm, max_threads: int) -> tuple[int, int, int]:
    """(threads over the batch, GEMMs per such thread, threads per GEMM) OpenBLAS uses
    when given ``max_threads``: all it decides the plan by (two caps with the same
    three give the same plan)."""
    tb, per, avail = batch_split(g.batch, max_threads)
    mnk = g.m * g.n * g.k
    return tb, per, 1 if mnk <= SMP_MNK else max(1, min(avail, int(mnk // SMP_MNK)))


def openblas(g: Gemm, mach: Machine, max_threads: int) -> Plan:
    spec = mach.spec
    lanes, s = mach.lanes(g.dtype), g.s
    mr, nr = mach.kernel_shape(g.dtype)
    checked_kernel(mr, nr, lanes, spec, f"spec.{KERNEL_FIELD.get(g.dtype, 'sgemm_kernel')}")
    p, q, _ = mach.blocking(g.dtype)
    tb, per, t_in = openblas_threads(g, max_threads)
    tm, tn = openblas_grid(g.m, g.n, t_in, mach.switch_ratio(g.dtype))
    threads = tb * tm * tn
    m_t, n_t = -(-g.m // tm), -(-g.n // tn)
    rows, cols = power_parts(m_t, mr), power_parts(n_t, nr)
    min_i = m_block(m_t, p, mr)
    b_share = -(-n_t // tm)
    steps: list[Step] = []
    runs: list[int] = []  # (tiles of each step: see ecm.tiles)
    kcs = k_blocks(g.k, q)
    # consecutive k-blocks are merged into at most PHASES (pack, barrier, kernels)
    # phases of the event run; a merged phase stands for its k-blocks' barriers
    group = -(-len(kcs) // PHASES)
    pk_acc = kr_acc = None
    last = len(kcs) - 1
    # a k-block's steps depend on its depth and on whether it is the first (no C to
    # read) or the last (C written back): made once per kind, then added as before;
    # the packing step and the kernels' reads of A and B depend on the depth alone,
    # so the kinds of one depth share them (made once per depth: _k_block)
    made: dict[tuple[int, bool, bool], tuple[Step, Step]] = {}
    by_depth: dict[int, tuple[Step, Step]] = {}
    for idx, kc in enumerate(kcs):
        kind = (kc, idx > 0, idx == last)
        got = made.get(kind)
        if got is None:
            base = by_depth.get(kc)
            if base is None:
                base = by_depth[kc] = _k_block(g, mach, kc, tn, tm, per, threads, m_t, n_t,
                                               rows, cols, min_i, b_share, lanes, s)
            got = made[kind] = _k_block_c(g, mach, base, idx, last, tm, tn, m_t, n_t,
                                          threads, s)
        pk, kr = got
        if pk_acc is None:
            # a phase of one k-block is that block's steps (a phase of several adds them
            # up in copies: x 1.0 is the same floats)
            pk_acc, kr_acc = (pk, kr) if group == 1 else (pk.scaled(1.0), kr.scaled(1.0))
        else:
            pk_acc.add(pk)
            kr_acc.add(kr)
            pk_acc.rounds += 1
        if (idx + 1) % group == 0 or idx == last:
            for acc, parts in ((pk_acc, 2 if pk_acc.dram_read else 1),
                               (kr_acc, TILES if kr_acc.dram_read or kr_acc.dram_write else 1)):
                st, parts = tiles(acc, parts)
                if st is got[0] or st is got[1]:  # a kept block's own step: a copy
                    st = st.scaled(1.0)
                steps.append(st)
                runs.append(parts)
            pk_acc = kr_acc = None
    steps = repeat(steps, per)  # (each tile repeated: the first tile of each run)
    return Plan("openblas", threads, steps, g.dtype, mach.call_s(), f"{mr}x{nr}",
                {"grid": f"{tb}x{tm}x{tn}", "kc": kcs, "mc": min_i,
                 "edge_rows": [r for r, _ in rows if r != mr],
                 "edge_cols": [c for c, _ in cols if c != nr]}, runs)


def _k_block(g: Gemm, mach: Machine, kc: int, tn: int, tm: int, per: int, threads: int,
             m_t: int, n_t: int, rows, cols, min_i: int, b_share: int, lanes: int,
             s: int) -> tuple[Step, Step]:
    """One k-block of :func:`openblas` of depth ``kc``: its packing step and its kernels
    step without C (:func:`_k_block_c` adds C's reads and writes, which depend on the
    block's place among the k-blocks; neither step is changed after it is made).

    Every thread runs the steps of the largest share of the grid (``m_t`` rows,
    ``n_t`` columns, ``b_share`` columns of B to pack: rounded up), which is what sets
    the time; the bytes a thread brings from DRAM and writes back to it are its
    average share (``m / tm`` rows, ``n / (tm tn)`` columns of B, ``m n / (tm tn)`` of
    C), so that the op's DRAM traffic is its operands' once, however unevenly the
    grid divides them (the same floats where it divides them evenly)."""
    nr = mach.kernel_shape(g.dtype)[1]
    ea, eb = m_t * kc, kc * b_share
    pk = pack_step("pack A, B", ea + eb, lanes, mach)
    # A and B arrive cold; the tn column groups each pack these rows of A
    _cold(pk, g.m / tm * kc * s, tn, per, g.a_broadcast, mach, threads)
    _cold(pk, kc * g.n / (tm * tn) * s, 1, per, g.b_broadcast, mach, threads)
    # the A block once per B micro-panel; between two sweeps of a line the thread
    # brings a B micro-panel and a C micro-tile through its L2, and every thread its
    # A block, B micro-panel and C micro-tile into the last level
    a_block = min_i * kc * s
    near = a_block + kc * nr * s + min_i * nr * s
    reuse = threads * near
    a_home = resident(a_block, mach, threads)
    if a_home in ("l1", "l2"):
        pk.write(a_home, ea * s)
    else:  # the packed lines stay in L2 as its re-reads find them (the rest: farther)
        in_l2 = reread_shares(a_block, mach, threads, reuse, near)[0]
        if in_l2 > 0:
            pk.write("l2", in_l2 * ea * s)
        pk.write(a_home, (1.0 - in_l2) * ea * s)
    pk.write("l2", eb * s)
    pk.barrier = tm * tn > 1
    kr = kernels_step("kernels", rows, cols, kc, lanes, mach)
    reread(kr, a_block, -(-n_t // nr) * m_t * kc * s, mach, threads, reuse, near)
    b_total = kc * n_t * s
    kr.read("l3" if tm > 1 else "l2", b_total * (tm - 1) / tm if tm > 1 else b_total)
    if tm > 1:
        kr.read("l2", b_total / tm)
    return pk, kr


def _k_block_c(g: Gemm, mach: Machine, base: tuple[Step, Step], idx: int, last: int, tm: int,
               tn: int, m_t: int, n_t: int, threads: int, s: int) -> tuple[Step, Step]:
    """The k-block ``idx`` (of ``0 .. last``) from its depth's :func:`_k_block`: the same
    packing step, and a copy of the kernels step (the same float objects) with C read
    (after the first block) and written (back to DRAM after the last): the same
    additions in the same order as one made for the block alone, so the same floats."""
    pk, kr = base
    kr = kr.copy()
    c_bytes = m_t * n_t * s
    c_home = resident(c_bytes, mach, threads)
    if idx:
        kr.read(c_home, c_bytes)
    # C is written back to DRAM after the last k-block (the thread's average share)
    if idx == last:
        kr.write("dram", g.m * g.n / (tm * tn) * s)
    else:
        kr.write(c_home, c_bytes)
    return pk, kr


def _iaat_at(g: Gemm, mach: Machine, threads: int, along_n: bool) -> Plan:
    """IAAT on ``threads`` threads (an output split of its single-threaded kernels) with
    the kernel's vectors along m or n (``along_n``).

    Operands are read in place, BLAS column-major: the operand along the vectors (V)
    gives each k-step a piece of one of its columns, ``ker.rows`` elements, the next
    k-step's piece one leading dimension (its full row count) further on; the
    broadcast operand (W) gives ``ker.cols`` elements that are consecutive along k in
    their own columns. The kernels run column panel by column panel of W, row tile by
    row tile of V, so V's tile is swept once per W panel (:func:`.placement.strided_walk`:
    its TLB and set-conflict costs) and each W panel is re-read by every row tile."""
    lanes, s = mach.lanes(g.dtype), g.s
    spec = mach.spec
    tb, per, t_in = batch_split(g.batch, threads)
    tm, tn = square_grid(g.m, g.n, t_in)
    used = tb * tm * tn
    m_t, n_t = -(-g.m // tm), -(-g.n // tn)
    ker, rows, cols, _, swapped = tile_kernels(m_t, n_t, g.k, lanes, mach, along_n)
    st = kernels_step("kernels (no packing)", rows, cols, g.k, lanes, mach)
    # V (along the vectors) and W (broadcast), in the kernel's orientation
    if swapped:
        v_rows, w_cols, v_ld, v_share, w_share = n_t, m_t, g.n, tm, tn
        v_bcast, w_bcast = g.b_broadcast, g.a_broadcast
    else:
        v_rows, w_cols, v_ld, v_share, w_share = m_t, n_t, g.m, tn, tm
        v_bcast, w_bcast = g.a_broadcast, g.b_broadcast
    calls = -(-v_rows // max(ker.rows, 1))
    panels = -(-w_cols // max(ker.cols, 1))
    w_panel = g.k * min(ker.cols, w_cols) * s
    v_tile = v_rows * g.k * s
    w_pages = min(ker.cols, w_cols) * math.ceil(g.k * s / spec.page_bytes)
    # threads sharing V's slice bring it from DRAM once; so does a batch sharing V
    walk = strided_walk(st, mach, k=g.k, stride_bytes=v_ld * s,
                        piece_bytes=min(ker.rows, v_rows) * s, tile_bytes=v_tile,
                        calls=calls, sweeps=panels,
                        other_pages=w_pages, home_reuse_bytes=used * (v_tile + w_panel),
                        threads=used,
                        cold_share=1 / v_share / (per if v_bcast else 1),
                        home_l2_reuse_bytes=v_tile + w_panel)
    _cold(st, w_cols * g.k * s, w_share, per, w_bcast, mach, used)
    if calls > 1:  # each row tile reads the W panel again, from where it stays
        # between two reads of a W line, one call's walk of V (a piece of whole lines
        # per k-step) and its C micro-tile pass through L2
        v_piece = g.k * -(-min(ker.rows, v_rows) * s // spec.line_bytes) * spec.line_bytes
        near = w_panel + v_piece + min(ker.rows, v_rows) * min(ker.cols, w_cols) * s
        reread(st, w_panel, panels * (calls - 1) * w_panel, mach, used, None, near)
    st.write("dram", m_t * n_t * s)
    first, parts = tiles(st, TILES if st.dram_read or st.dram_write else 1)
    steps = repeat([first], per)
    return Plan("iaat", used, steps, g.dtype, mach.call_s(), ker.name(),
                {"grid": f"{tb}x{tm}x{tn}", "vectors_along": "n" if swapped else "m",
                 "tiles": {"rows": rows, "cols": cols}, "walk": walk}, [parts])


def split_counts(limit: int, split) -> list[int]:
    """Every thread count from 1 to ``limit``, the smallest of each distinct
    ``split(count)`` (counts that split the work alike give the same plan). The
    candidates for a limit then include those of every smaller limit, so a planner
    that keeps the fastest is never slower with more threads (``tiling.threads``);
    the powers of two and the limit are no such set."""
    seen: dict = {}
    for t in range(1, max(1, limit) + 1):
        seen.setdefault(split(t), t)
    return list(seen.values())


def iaat(g: Gemm, mach: Machine, max_threads: int) -> Plan:
    """The best thread count (:func:`split_counts`: every count, once per output
    split) and kernel orientation (the operand walked in place along the vectors is
    the one whose stride costs TLB walks and conflicts)."""
    def split(t: int) -> tuple:
        tb, per, t_in = batch_split(g.batch, t)
        return tb, per, square_grid(g.m, g.n, t_in)

    return _best([_iaat_at(g, mach, t, along_n) for t in split_counts(max_threads, split)
                  for along_n in (False, True)], mach, die=True)


def is_small(g: Gemm) -> bool:
    """IAAT's domain, its paper's title: small GEMM. Small as the small-GEMM libraries
    define it, ``(m n k)^(1/3) <= 80`` per GEMM (LIBXSMM's documented threshold at
    IAAT's time), where OpenBLAS also runs one thread (``m n k <= 65536 x 4``,
    ``interface/gemm.c``)."""
    return g.m * g.n * g.k <= SMALL_MNK


def is_tall_skinny(m: int, n: int) -> bool:
    small, large = min(m, n), max(m, n)
    return small <= TS_SMALL and large >= TS_RATIO * small


def _tsmm_at(g: Gemm, mach: Machine, threads: int, span: bool) -> Plan:
    """AutoTSMM on ``threads`` threads; with ``span`` its inner kernel spans the whole
    short side (when the register budget allows), so the long operand streams once."""
    lanes, s = mach.lanes(g.dtype), g.s
    spec = mach.spec
    small_is_a = g.m <= g.n
    small, big = (g.m, g.n) if small_is_a else (g.n, g.m)
    tb, per, t_in = batch_split(g.batch, threads)
    t_in = max(1, min(t_in, -(-big // lanes)))
    used = tb * t_in
    big_t = -(-big // t_in)
    # kernel coordinates: rows along the long side (vectors), columns the short side
    widest = max(k_.cols for k_ in fastest_kernels(lanes, spec))
    ker, rows, cols, _, _ = tile_kernels(big_t, small, g.k, lanes, mach, along_n=False,
                                         min_cols=min(small, widest) if span else 1)
    small_bcast = g.a_broadcast if small_is_a else g.b_broadcast
    big_bcast = g.b_broadcast if small_is_a else g.a_broadcast
    packed = small * g.k  # one GEMM's short operand, packed by its t_in threads
    pre = pack_step("pre-pack", packed / t_in, lanes, mach)
    _cold(pre, packed * s / t_in, 1, per, small_bcast, mach, used)
    pre.write("l2", packed * s / t_in)
    pre.barrier = used > 1
    if small_is_a:
        return _tsmm_wide(g, mach, pre, t_in, used, per, big_t, packed, big_bcast)
    st = kernels_step("kernels (streamed)", rows, cols, g.k, lanes, mach)
    # the long operand streams in place: each thread walks its rows once per column
    # panel of the short side (usually one), a column piece per k-step
    col_panels = -(-small // max(ker.cols, 1))
    row_panels = -(-big_t // max(ker.rows, 1))
    panel_bytes = min(ker.cols, small) * g.k * s
    walk = strided_walk(st, mach, k=g.k, stride_bytes=big * s,
                        piece_bytes=min(ker.rows, big_t) * s, tile_bytes=big_t * g.k * s,
                        calls=row_panels,
                        sweeps=col_panels, other_pages=math.ceil(packed * s / spec.page_bytes),
                        home_reuse_bytes=used * (big_t * g.k * s + panel_bytes), threads=used,
                        cold_share=1 / (per if big_bcast else 1),
                        home_l2_reuse_bytes=big_t * g.k * s + panel_bytes)
    # the packed short operand: the other threads' shares from the last level, then
    # every row panel's kernel reads it again from where it stays; between two reads
    # of a line, one row panel's walk of the long operand (a piece of whole lines per
    # k-step) and its C rows pass through L2
    if t_in > 1:
        st.read("l3", packed * s * (t_in - 1) / t_in)
    piece = min(ker.rows, big_t)
    near = packed * s + g.k * -(-piece * s // spec.line_bytes) * spec.line_bytes \
        + piece * small * s
    reread(st, packed * s, max(0, row_panels - 1) * packed * s, mach, used, None, near)
    st.write("dram", big_t * small * s)
    first, parts = tiles(st, TILES if st.dram_read or st.dram_write else 1)
    steps = repeat([pre, first], per)
    return Plan("autotsmm", used, steps, g.dtype, mach.call_s(), ker.name(),
                {"threads_over": "n" if small_is_a else "m", "tiles": {"rows": rows, "cols": cols},
                 "prepacked": "A" if small_is_a else "B", "walk": walk}, [1, parts])


def _tsmm_wide(g: Gemm, mach: Machine, pre: Step, t_in: int, used: int, per: int,
               big_t: int, packed: int, big_bcast: bool) -> Plan:
    """AutoTSMM where the short side is m (C short and wide, a decode projection):
    the long operand is B, ``k x n`` in BLAS column-major, each of its columns
    contiguous along k. Its elements are the kernel's broadcast operand (IAAT's W),
    consecutive along k in their own columns, so B streams in place at unit stride,
    a few columns at once: no strided walk, no set conflicts, a page-table walk per
    page at most (as the packing paths, not charged). The kernel's vectors run along
    the short side over the pre-packed A (``m x k``), which every column panel of B
    reads again from where it stays (L2 for a decode projection's 16 x 4096)."""
    lanes, s = mach.lanes(g.dtype), g.s
    ker, rows, cols, _, _ = tile_kernels(g.m, big_t, g.k, lanes, mach, along_n=False)
    st = kernels_step("kernels (streamed)", rows, cols, g.k, lanes, mach)
    row_tiles = -(-g.m // max(ker.rows, 1))
    col_panels = -(-big_t // max(ker.cols, 1))
    b_panel = min(ker.cols, big_t) * g.k * s
    _cold(st, big_t * g.k * s, 1, per, big_bcast, mach, used)
    rows_t, cols_t = min(ker.rows, g.m), min(ker.cols, big_t)
    if row_tiles > 1:  # each row tile of A reads the B panel again (a row tile of the
        # packed A and a C micro-tile pass through L2 between two reads)
        near = b_panel + rows_t * g.k * s + rows_t * cols_t * s
        reread(st, b_panel, col_panels * (row_tiles - 1) * b_panel, mach, used, None, near)
    if t_in > 1:
        st.read("l3", packed * s * (t_in - 1) / t_in)
    # every column panel of B reads the packed A again (the panel and its C columns
    # pass through L2 between two reads)
    near = packed * s + b_panel + g.m * cols_t * s
    reread(st, packed * s, max(0, col_panels - 1) * packed * s, mach, used, None, near)
    st.write("dram", big_t * g.m * s)
    first, parts = tiles(st, TILES if st.dram_read or st.dram_write else 1)
    steps = repeat([pre, first], per)
    return Plan("autotsmm", used, steps, g.dtype, mach.call_s(), ker.name(),
                {"threads_over": "n", "tiles": {"rows": rows, "cols": cols},
                 "prepacked": "A", "walk": {"stream": "B at unit stride along k"}},
                [1, parts])


def autotsmm(g: Gemm, mach: Machine, max_threads: int) -> Plan:
    """AutoTSMM on a tall-and-skinny shape; on any other shape it is not what runs (its
    plans exist only for tall-and-skinny C), so the OpenBLAS path runs and is named."""
    if not is_tall_skinny(g.m, g.n):
        plan = openblas(g, mach, max_threads)
        plan.detail["requested"] = "autotsmm: not tall-and-skinny, the OpenBLAS path runs"
        return plan
    spans = (False,) if g.m <= g.n else (False, True)  # (the wide case has one kernel)
    lanes, big = mach.lanes(g.dtype), max(g.m, g.n)

    def split(t: int) -> tuple:  # (as _tsmm_at splits the batch and the long side)
        tb, per, t_in = batch_split(g.batch, t)
        return tb, per, max(1, min(t_in, -(-big // lanes)))

    return _best([_tsmm_at(g, mach, t, span) for t in split_counts(max_threads, split)
                  for span in spans], mach, die=True)


def plan_gemm(g: Gemm, mach: Machine, strategy: str, max_threads: int) -> Plan:
    """The plan of ``strategy``; ``auto`` picks as a tuned library would: the fastest of
    OpenBLAS, IAAT where the GEMM is small (its paper's domain) and AutoTSMM where C
    is tall and skinny (its paper's domain).

    A plan depends only on the GEMM, the machine (its spec, thread limit and
    placement), the strategy and the limit, so it is kept per machine: a model's
    layers repeat their GEMMs (Llama's q, k, v and o projections, gate and up), and
    each gets a plan of its own (its list of steps, its detail) whose steps are the
    kept plan's, cut into its tiles once (:func:`~.ecm.materialize`). Steps are not
    changed once planned: a caller that adds to one copies it first (the target's
    bias read; :func:`.target.carried` copies the steps it changes)."""
    memo = mach.__dict__.setdefault("_gemm_plans", {})
    key = (g, strategy, max_threads)
    got = memo.get(key)
    if got is None:
        if len(memo) > 4096:  # a long sweep's shapes: bounded
            memo.clear()
        got = _plan_gemm(g, mach, strategy, max_threads)
        copies: dict[int, Step] = {}  # (a step met twice stays one step)
        steps = []
        for st in got.steps:  # (copies: materialize cuts the runs in place)
            c = copies.get(id(st))
            if c is None:
                c = copies[id(st)] = st.scaled(1.0)
            steps.append(c)
        got = memo[key] = materialize(
            Plan(got.strategy, got.threads, steps, got.dtype, got.serial_s, got.kernel,
                 dict(got.detail), None if got.runs is None else list(got.runs),
                 got.write_share))
    return Plan(got.strategy, got.threads, list(got.steps), got.dtype, got.serial_s,
                got.kernel, dict(got.detail), write_share=got.write_share)


def _plan_gemm(g: Gemm, mach: Machine, strategy: str, max_threads: int) -> Plan:
    """:func:`plan_gemm`, planned (not yet cut into its tiles)."""
    builders = {"openblas": openblas, "iaat": iaat, "autotsmm": autotsmm}
    if strategy in builders:
        return builders[strategy](g, mach, max_threads)
    # OpenBLAS takes every thread it is given (its rule: m n k / 262144 of them); the
    # caller caps them (openblas_set_num_threads) at the count that runs fastest
    memo: dict = {}  # each plan estimated once
    plans = [_openblas_best(g, mach, openblas_caps(g, max_threads), memo)]
    if is_small(g):
        plans.append(iaat(g, mach, max_threads))
    if is_tall_skinny(g.m, g.n):
        plans.append(autotsmm(g, mach, max_threads))
    best = _best(plans, mach, memo)
    best.detail["auto_estimates_s"] = {p.strategy: memo[id(p)][1] for p in plans}
    return best  # (candidates are estimated uncut: ecm.tiles)


def _best(plans: list[Plan], mach: Machine, memo: dict | None = None,
          die: bool = False) -> Plan:
    return fastest(plans, mach, memo, die)


def openblas_floor_s(g: Gemm, mach: Machine, max_threads: int) -> float:
    """A lower bound on :func:`~.ecm.estimate` of :func:`openblas`'s plan for
    ``max_threads``, from its thread split alone: a thread's kernels issue at least
    ``m_t n_t k / lanes`` vector FMAs per GEMM of its share of the batch, at most
    ``fma_pipes`` a cycle (:func:`.kernels.kstep_cycles`), one tile after another, and
    the estimate is at least their sum (less a billionth for the rounding of the
    tiles' shares)."""
    tb, per, t_in = openblas_threads(g, max_threads)
    tm, tn = openblas_grid(g.m, g.n, t_in, mach.switch_ratio(g.dtype))
    m_t, n_t = -(-g.m // tm), -(-g.n // tn)
    fmas = per * g.k * m_t * n_t / mach.lanes(g.dtype)
    return fmas / mach.spec.fma_pipes * mach.cycle_s * (1.0 - 1e-9)


def openblas_bound_s(g: Gemm, mach: Machine, max_threads: int) -> float:
    """A lower bound on :func:`~.ecm.estimate` of :func:`openblas`'s plan for
    ``max_threads``, tighter than :func:`openblas_floor_s` (:func:`_bound_s`)."""
    tb, per, t_in = openblas_threads(g, max_threads)
    tm, tn = openblas_grid(g.m, g.n, t_in, mach.switch_ratio(g.dtype))
    return _bound_s(g, mach, tb, per, tm, tn, _k_kinds(g, mach))


def _k_kinds(g: Gemm, mach: Machine) -> list[tuple[int, int]]:
    """The distinct depths of :func:`k_blocks` and how many blocks have each."""
    kinds: dict[int, int] = {}
    for kc in k_blocks(g.k, mach.blocking(g.dtype)[1]):
        kinds[kc] = kinds.get(kc, 0) + 1
    return list(kinds.items())


def _bound_s(g: Gemm, mach: Machine, tb: int, per: int, tm: int, tn: int,
             kinds: list[tuple[int, int]]) -> float:
    """A lower bound on the estimate of :func:`openblas`'s plan on the grid ``tb x tm x
    tn`` (``per`` GEMMs a thread), from the terms of its k-blocks that cost no plan.

    :func:`~.ecm.estimate` starts a tile when the one before it ends and its data has
    come, so after the call and the fork it takes at least the sum of the tiles'
    times in cache, and at least the sum of their DRAM transfers; the join's barrier
    follows. The tiles of the packing steps and of the kernels steps are apart (the
    phases add k-blocks, the tiles and the batch split them, all in proportion), so
    the sum is at least the packing's in-core cycles (:func:`pack_cycles`) plus, for
    the kernels, the larger of their in-core cycles (:func:`kernel_amounts`) and their
    L3 term (:func:`~.ecm.l3_s`), of which two parts are counted: the packed A
    block's re-reads that miss L2 (:func:`.placement.reread_shares`: the L2's sweep,
    then the last level's, the misses from DRAM)
    and B's columns from the other row groups. The DRAM transfers are at least the
    operands' shares and C's, and those misses, each stretched by at least
    :meth:`~.spec.Machine.share_floor` (the rates not solved yet) or by the slowest
    thread's share (solved).
    Each part is what :func:`_k_block` adds, and the sums differ from the plan's only
    by rounding: the bound is less a billionth (a test holds it under the estimate
    on random GEMMs, presets and placements)."""
    lanes, s, mr, nr, p, pack_vec = _bound_consts(g, mach)
    threads = tb * tm * tn
    terms = _thread_terms(mach, threads)
    m_t, n_t = -(-g.m // tm), -(-g.n // tn)
    rows, cols = _parts(m_t, mr), _parts(n_t, nr)
    min_i = m_block(m_t, p, mr)
    b_share = -(-n_t // tm)
    panels = -(-n_t // nr)
    pack = kern = hits = misses = 0.0
    for kc, count in kinds:
        pack += count * (pack_vec * ((m_t * kc + kc * b_share) / lanes))
        kern += count * kernel_amounts(rows, cols, kc, lanes, mach)[0]
        a_block = min_i * kc * s
        if a_block > terms[4]:  # past L1: reread's shares of L2, the last level, DRAM
            near = a_block + kc * nr * s + min_i * nr * s
            in_l2, in_l3 = reread_shares(a_block, mach, threads, threads * near, near)
            if in_l2 < 1.0:
                total = panels * m_t * kc * s
                hits += count * (in_l3 * total)
                misses += count * ((1.0 - in_l2 - in_l3) * total)
        if tm > 1:
            hits += count * (kc * n_t * s * (tm - 1) / tm)
    cycle_s = mach.cycle_s
    l3 = hits / terms[0] + misses / mach.l3_bw
    kern_s = kern * cycle_s
    work = per * (pack * cycle_s + (kern_s if kern_s >= l3 else l3))
    mem = 0.0
    share = (mach.slot_bw / mach.slowest_rate(threads) if threads in mach._rates
             else terms[3])
    if kinds and share is not None:
        cells = tm * tn
        dram = (g.m * g.k * s / cells * (1 if g.a_broadcast and per > 1 else per)
                + g.k * g.n * s / cells * (1 if g.b_broadcast and per > 1 else per)
                + per * (g.m * g.n * s / cells) + per * misses)
        mem = share * (dram / mach.slot_bw)
    return (terms[2] + (work if work >= mem else mem)) * (1.0 - 1e-9)


def _bound_consts(g: Gemm, mach: Machine) -> tuple:
    """What :func:`_bound_s` needs of the dtype and the core: lanes, element bytes, the
    kernel's rows and columns, ``GEMM_P``, and :func:`pack_cycles` per packed vector
    (a transposing pack's: linear in the vectors)."""
    memo = mach.__dict__.setdefault("_bound_consts", {})
    got = memo.get(g.dtype)
    if got is None:
        mr, nr = mach.kernel_shape(g.dtype)
        got = memo[g.dtype] = (mach.lanes(g.dtype), g.s, mr, nr, mach.blocking(g.dtype)[0],
                               pack_cycles(1.0, PACK_PERMUTES, mach.spec))
    return got


def _thread_terms(mach: Machine, threads: int) -> tuple:
    """Per thread count, what :func:`_bound_s` reads of the machine: the L3 hits' rate,
    the last level the threads reach, the call, fork and join, the stretch's bound
    without a solve, and the largest block re-read from L1 (:func:`.placement.reread`)."""
    memo = mach.__dict__.setdefault("_bound_terms", {})
    got = memo.get(threads)
    if got is None:
        got = memo[threads] = (mach.l3_rate(threads), mach.llc_for(threads),
                               mach.call_s() + mach.fork_s(threads) + mach.barrier_s(threads),
                               mach.share_floor(threads), mach.spec.l1_bytes / 2)
    return got


def _parts(size: int, main: int) -> tuple:
    """:func:`power_parts` as a tuple, kept (a bound asks for the same tiles often)."""
    got = _PARTS.get((size, main))
    if got is None:
        if len(_PARTS) > 65536:
            _PARTS.clear()
        got = _PARTS[(size, main)] = tuple(power_parts(size, main))
    return got


_PARTS: dict = {}


def openblas_caps(g: Gemm, limit: int) -> list[int]:
    """The thread caps a caller may give OpenBLAS, up to ``limit``: every count from 1,
    each kept only where it changes OpenBLAS's thread split (the smallest cap of each
    split: caps with the same split give the same plan).

    Every count, not the powers of two: the candidates for a limit then include every
    candidate for a smaller one, so raising ``tiling.threads`` never makes ``auto``
    slower. The powers of two alone are not such a set, and the plans between them
    differ by more than their share of the work: OpenBLAS's grid of ``tm x tn``
    threads sets each thread's packed A block (``GEMM_P`` x ``GEMM_Q`` at most), and
    whether those blocks stay in L2, fit the die's L3 together, or thrash it (the
    sweep law, :mod:`.placement`) turns on the grid. On the Kunpeng 920, SGEMM 4096^3
    on 64 threads packed onto the dies (`compact`) runs an 8 x 8 grid of 2 MiB blocks,
    64 MiB that a die's 32 MiB L3 sweeps mostly from DRAM (425 ms), while 63 threads
    run 63 x 1 blocks of 66 rows (270 KB) whose re-reads all hit L2 (59.5 ms); 48 and
    24 threads beat 64 and 32 there. OpenBLAS asked by name (``tiling.gemm: openblas``) still takes
    every thread it is given, as the library does.

    Any fixed set cut at the limit would be nested too, but the whole-cluster ladder
    (1, 2, 3, 4, 8, ..., 64) loses: its counts factor into two-dimensional grids
    (2826 x 4096 x 4096 fp16: 59 threads, a 59 x 1 grid, 19.8 ms; 60, 15 x 4, 23.2 ms),
    and most of the Llama-2-7B prefill's picks are off it (its best a median 6 %
    slower on the 7B's GEMMs, 255 % while a block past half the L2 left it:
    docs/performance.md).

    The caps depend on the GEMM only through its batch and the threads OpenBLAS's
    rule allows it (:func:`openblas_threads`), so they are kept by those."""
    return list(_splits(g, limit)[0])


def _splits(g: Gemm, limit: int) -> tuple[tuple[int, ...], dict]:
    """:func:`openblas_caps` and each cap's :func:`openblas_threads`, kept by what they
    depend on: the batch, the limit and the threads the rule allows (at most ``limit``)."""
    mnk = g.m * g.n * g.k
    key = (g.batch, limit, 1 if mnk <= SMP_MNK else min(int(mnk // SMP_MNK), max(1, limit)))
    got = _SPLITS.get(key)
    if got is None:
        if len(_SPLITS) > 4096:
            _SPLITS.clear()
        seen: dict = {}
        for t in range(1, max(1, limit) + 1):
            split = openblas_threads(g, t)
            if split not in seen:
                seen[split] = t
        got = _SPLITS[key] = (tuple(seen.values()), {t: split for split, t in seen.items()})
    return got


_SPLITS: dict = {}  # openblas_caps by (batch, limit, threads the rule allows)


def _openblas_best(g: Gemm, mach: Machine, caps: list[int], memo: dict) -> Plan:
    """:func:`_best` of :func:`openblas` at each of ``caps``, without planning the caps
    that cannot win.

    Each cap has lower bounds on its plan's estimate, each dearer and tighter than the
    one before: the FMAs of the threads it allows if their split were perfect (no
    grid yet), :func:`openblas_floor_s` (the grid's largest tile), :func:`_bound_s`
    (the k-blocks' in-core, L3 and DRAM terms, no plan), and, once the plan is made
    on a thread count whose stream rates are not solved, its estimate at the fastest
    rates they allow (:meth:`~.spec.Machine.share_floor`: from the bandwidths, then
    from a bound on its most loaded die's rate that costs no solve; the thread count's
    own solve not yet asked for; that die's own solve is not asked for either: it cost
    about what the joint solves it spared, docs/performance.md). The caps
    wait in a heap by their latest bound; the least is taken and either refined to
    its next bound or, when it has no other, estimated; once the least bound exceeds
    the best estimate so far no cap can be faster. Caps whose grids are the same
    (``tb x tm x tn`` and GEMMs a thread) share one plan and its estimate. The plan
    kept is the first (in ``caps``' order) of the least estimate, as :func:`_best`
    keeps it: a cap whose bound equals the best so far is still looked at."""
    import heapq  # noqa: PLC0415

    lanes = mach.lanes(g.dtype)
    mr, nr = mach.kernel_shape(g.dtype)
    checked_kernel(mr, nr, lanes, mach.spec, f"spec.{KERNEL_FIELD.get(g.dtype, 'sgemm_kernel')}")
    ratio = mach.switch_ratio(g.dtype)
    std, splits = _splits(g, max(caps))
    if len(caps) != len(std) or tuple(caps) != std:  # (caps of the caller's own)
        splits = {cap: openblas_threads(g, cap) for cap in caps}
    # a thread's FMAs are at least its even share of the batch's: m n k / t_in each
    ideal = (g.m * g.n * g.k / lanes / mach.spec.fma_pipes * mach.cycle_s) * (1.0 - 2e-9)
    heap = [(ideal * per / t_in, i, 0, cap) for i, (cap, (_, per, t_in)) in
            enumerate((cap, splits[cap]) for cap in caps)]
    heapq.heapify(heap)
    kinds = None
    plans: dict[tuple, Plan] = {}  # grid -> plan
    ests: dict[tuple, float] = {}  # grid -> estimate
    best, best_s, best_i = None, 0.0, 0
    while heap:
        key, i, level, item = heapq.heappop(heap)
        if best is not None and (key > best_s or (key == best_s and i > best_i)):
            break
        if level == 0:  # the grid: the largest tile's FMAs
            tb, per, t_in = splits[item]
            tm, tn = openblas_grid(g.m, g.n, t_in, ratio)
            grid = (tb, per, tm, tn)
            fmas = per * g.k * (-(-g.m // tm)) * (-(-g.n // tn)) / lanes
            floor = fmas / mach.spec.fma_pipes * mach.cycle_s * (1.0 - 1e-9)
            heapq.heappush(heap, (floor if floor > key else key, i, 1, (item, grid)))
            continue
        cap, grid = item
        if grid in ests:
            got = ests[grid]
            plan = plans[grid]
        elif level == 1:  # the k-blocks' terms
            if kinds is None:
                kinds = _k_kinds(g, mach)
            bound = _bound_s(g, mach, *grid, kinds)
            heapq.heappush(heap, (bound if bound > key else key, i, 2, item))
            continue
        else:
            plan = plans.get(grid)
            if plan is None:
                plan = plans[grid] = openblas(g, mach, cap)
            if level < 4 and plan.threads not in mach._rates and mach.floor_share is not None:
                # no rates solved for its thread count: at the fastest they allow, first
                # from the bandwidths, then from its most loaded die's bound without a
                # solve
                bound = estimate(plan, mach, mach.share_floor(plan.threads, level >= 3,
                                                              False))
                heapq.heappush(heap, (bound if bound > key else key, i, level + 1, item))
                continue
            got = ests[grid] = estimate(plan, mach)
            memo[id(plan)] = (plan, got)
        if best is None or got < best_s or (got == best_s and i < best_i):
            best, best_s, best_i = plan, got, i
    return best
