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
    operands are read in place: B's panels pull whole cache lines, which costs
    once the tile no longer fits in L1.
``autotsmm``
    For tall-and-skinny shapes (the small side of C at most 64 and the large one
    at least 8 times longer): the small operand is pre-packed once, cooperatively,
    the large one streams through the threads in place, and the inner kernel was
    chosen at install time for the small side. Other shapes take the OpenBLAS path.
``auto``
    The fastest of the three for each op (:func:`plan_gemm` estimates them all).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwsim.ir.dtypes import nbytes

from .ecm import Plan, Step, estimate, repeat, split
from .kernels import Kernel, checked_kernel, fastest_kernels, kernel_counts, kernel_cycles
from .placement import level_of, reread, resident
from .spec import Machine

STRATEGIES = ("openblas", "iaat", "autotsmm")
SMP_MNK = 65536 * 4  # OpenBLAS interface/gemm.c: SMP_THRESHOLD_MIN x GEMM_MULTITHREAD_THRESHOLD
TS_SMALL = 64  # AutoTSMM: the short side of C ...
TS_RATIO = 8  # ... and how much longer the long side is
PACK_PERMUTES = 2.0  # ZIP/TRN per packed vector: a 4x4 transpose is 8 permutes for 4 vectors
KERNEL_FIELD = {"fp32": "sgemm_kernel", "fp64": "dgemm_kernel", "fp16": "hgemm_kernel"}
PHASES = 4  # most (pack, barrier, kernels) phases of an OpenBLAS plan in the event run


@dataclass(frozen=True)
class Gemm:
    batch: int
    m: int
    n: int
    k: int
    dtype: str
    a_kind: str = "activation"
    b_kind: str = "param"
    c_kind: str = "activation"
    a_bytes: float = 0.0  # the whole tensor (all batch entries), for placement
    b_bytes: float = 0.0

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
    return Step(label,
                arith_cycles=max(perms / spec.fma_pipes, (2 * vecs + perms) / spec.issue_width),
                port_cycles=vecs / spec.load_ports + vecs / spec.store_ports,
                vop=2 * vecs + perms)


def run_kernels(step: Step, rows: list[tuple[int, int]], cols: list[tuple[int, int]],
                depth: int, lanes: int, mach: Machine) -> None:
    """Add every (rows x cols) kernel call of a tile, ``depth`` k-steps each."""
    spec = mach.spec
    for r, nr_ in rows:
        for c, nc_ in cols:
            calls = nr_ * nc_
            if not calls:
                continue
            ker = Kernel(r, c, lanes)
            step.arith_cycles += calls * kernel_cycles(ker, depth, spec)
            fmas, other = kernel_counts(ker, depth)
            step.vfma += calls * fmas
            step.vop += calls * other
            step.port_cycles += calls * (((ker.vecs + ker.bvecs) * depth + ker.accumulators)
                                         / spec.load_ports + ker.accumulators / spec.store_ports)


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
    tb = max(1, min(batch, threads))
    return tb, math.ceil(batch / tb), max(1, threads // tb)


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
    return max(1, tm), max(1, tn)


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
                 along_n: bool | None = None) -> tuple[Kernel, list, list, float, bool]:
    """The input-aware tiler: the main kernel (and its exact remainders) that runs an
    ``m_t x n_t`` tile in the fewest cycles, with its vectors along m, along n
    (``along_n``), or whichever is faster (None; a single row wants them along n).
    Returns the kernel, the row and column parts in the kernel's orientation, the
    cycles, and whether the vectors run along n."""
    best = None
    for swapped in ((False, True) if along_n is None else (along_n,)):
        rows_n, cols_n = (n_t, m_t) if swapped else (m_t, n_t)
        cap = -(-max(rows_n, 1) // lanes) * lanes
        for ker in fastest_kernels(lanes, mach.spec):
            if ker.rows > cap or ker.cols > max(cols_n, 1):
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
def openblas(g: Gemm, mach: Machine, max_threads: int) -> Plan:
    spec = mach.spec
    lanes, s = mach.lanes(g.dtype), g.s
    mr, nr = mach.kernel_shape(g.dtype)
    checked_kernel(mr, nr, lanes, spec, f"spec.{KERNEL_FIELD.get(g.dtype, 'sgemm_kernel')}")
    p, q, _ = mach.blocking(g.dtype)
    tb, per, avail = batch_split(g.batch, max_threads)
    mnk = g.m * g.n * g.k
    t_in = 1 if mnk <= SMP_MNK else max(1, min(avail, int(mnk // SMP_MNK)))
    tm, tn = openblas_grid(g.m, g.n, t_in, mach.switch_ratio(g.dtype))
    threads = tb * tm * tn
    m_t, n_t = -(-g.m // tm), -(-g.n // tn)
    rows, cols = power_parts(m_t, mr), power_parts(n_t, nr)
    a_lvl = level_of(g.a_kind, g.a_bytes, mach, threads)
    b_lvl = level_of(g.b_kind, g.b_bytes, mach, threads)
    c_lvl = level_of(g.c_kind, g.batch * g.m * g.n * s, mach, threads)
    min_i = m_block(m_t, p, mr)
    b_share = -(-n_t // tm)
    steps: list[Step] = []
    kcs = k_blocks(g.k, q)
    # consecutive k-blocks are merged into at most PHASES (pack, barrier, kernels)
    # phases of the event run; a merged phase stands for its k-blocks' barriers
    group = -(-len(kcs) // PHASES)
    pk_acc = kr_acc = None
    for idx, kc in enumerate(kcs):
        ea, eb = m_t * kc, kc * b_share
        pk = pack_step("pack A, B", ea + eb, lanes, mach)
        _shared_read(pk, a_lvl, ea * s, tn)  # the tn column groups each pack these rows
        pk.read(b_lvl, eb * s)
        a_home = resident(min_i * kc * s, mach, threads)
        pk.write(a_home, ea * s)
        pk.write("l2", eb * s)
        pk.barrier = tm * tn > 1
        kr = Step("kernels")
        run_kernels(kr, rows, cols, kc, lanes, mach)
        # the A block once per B micro-panel
        reread(kr, min_i * kc * s, -(-n_t // nr) * m_t * kc * s, mach, threads)
        b_total = kc * n_t * s
        kr.read("l3" if tm > 1 else "l2", b_total * (tm - 1) / tm if tm > 1 else b_total)
        if tm > 1:
            kr.read("l2", b_total / tm)
        c_bytes = m_t * n_t * s
        c_home = resident(c_bytes, mach, threads)
        if idx:
            kr.read(c_home, c_bytes)
        kr.write(c_lvl if idx == len(kcs) - 1 else c_home, c_bytes)
        if pk_acc is None:
            pk_acc, kr_acc = pk, kr
        else:
            pk_acc.add(pk)
            kr_acc.add(kr)
            pk_acc.rounds += 1
        if (idx + 1) % group == 0 or idx == len(kcs) - 1:
            steps += split(pk_acc, 2 if pk_acc.dram_read else 1)
            steps += split(kr_acc, 4 if kr_acc.dram_read or kr_acc.dram_write else 1)
            pk_acc = kr_acc = None
    steps = repeat(steps, per)
    return Plan("openblas", threads, steps, g.dtype, mach.call_s("openblas"), f"{mr}x{nr}",
                {"grid": f"{tb}x{tm}x{tn}", "kc": kcs, "mc": min_i,
                 "edge_rows": [r for r, _ in rows if r != mr],
                 "edge_cols": [c for c, _ in cols if c != nr]})


def _iaat_at(g: Gemm, mach: Machine, threads: int, along_n: bool) -> Plan:
    lanes, s = mach.lanes(g.dtype), g.s
    line = mach.spec.line_bytes
    tb, per, t_in = batch_split(g.batch, threads)
    tm, tn = square_grid(g.m, g.n, t_in)
    used = tb * tm * tn
    m_t, n_t = -(-g.m // tm), -(-g.n // tn)
    ker, rows, cols, _, swapped = tile_kernels(m_t, n_t, g.k, lanes, mach, along_n)
    st = Step("kernels (no packing)")
    run_kernels(st, rows, cols, g.k, lanes, mach)
    a = (m_t * g.k * s, level_of(g.a_kind, g.a_bytes, mach, used), tn)
    b = (g.k * n_t * s, level_of(g.b_kind, g.b_bytes, mach, used), tm)
    c_lvl = level_of(g.c_kind, g.batch * g.m * g.n * s, mach, used)
    # the operand along the kernel's vectors is re-streamed once per panel of the
    # broadcast operand; threads that share an operand's slice bring it from its
    # level once, the others find it in the last level
    (v_t, v_lvl, v_share), (w_t, w_lvl, w_share) = (b, a) if swapped else (a, b)
    width = m_t if swapped else n_t
    panels = -(-width // max(ker.cols, 1))
    _shared_read(st, v_lvl, v_t, v_share)
    if panels > 1:
        reread(st, v_t, (panels - 1) * v_t, mach, used, v_lvl)
    _shared_read(st, w_lvl, w_t, w_share)
    row_bytes = max(1, min(ker.cols, width) * s)
    if w_t > mach.spec.l1d_bytes / 2 and row_bytes < line and g.k * line * (line / row_bytes) > \
            mach.spec.l1d_bytes / 2:
        # a panel's rows share lines with the next panels, evicted before they come
        reread(st, w_t, (line / row_bytes - 1) * w_t, mach, used, w_lvl)
    st.write(c_lvl, m_t * n_t * s)
    steps = split(st, 4 if st.dram_read or st.dram_write else 1)
    steps = repeat(steps, per)
    return Plan("iaat", used, steps, g.dtype, mach.call_s("iaat"), ker.name(),
                {"grid": f"{tb}x{tm}x{tn}", "vectors_along": "n" if swapped else "m",
                 "tiles": {"rows": rows, "cols": cols}})


def iaat(g: Gemm, mach: Machine, max_threads: int) -> Plan:
    """The best thread count and kernel orientation (the operand re-streamed per
    panel is the one along the vectors, so the orientation decides the traffic)."""
    return _best([_iaat_at(g, mach, t, along_n) for t in thread_counts(max_threads)
                  for along_n in (False, True)], mach)


def is_tall_skinny(m: int, n: int) -> bool:
    small, large = min(m, n), max(m, n)
    return small <= TS_SMALL and large >= TS_RATIO * small


def _tsmm_at(g: Gemm, mach: Machine, threads: int) -> Plan:
    lanes, s = mach.lanes(g.dtype), g.s
    small_is_a = g.m <= g.n
    small, big = (g.m, g.n) if small_is_a else (g.n, g.m)
    tb, per, t_in = batch_split(g.batch, threads)
    t_in = max(1, min(t_in, -(-big // lanes)))
    used = tb * t_in
    big_t = -(-big // t_in)
    # kernel coordinates: rows along the long side (vectors), columns the short side
    ker, rows, cols, _, _ = tile_kernels(big_t, small, g.k, lanes, mach, along_n=False)
    big_kind, small_kind = (g.b_kind, g.a_kind) if small_is_a else (g.a_kind, g.b_kind)
    big_bytes, small_bytes = (g.b_bytes, g.a_bytes) if small_is_a else (g.a_bytes, g.b_bytes)
    big_lvl = level_of(big_kind, big_bytes, mach, used)
    small_lvl = level_of(small_kind, small_bytes, mach, used)
    c_lvl = level_of(g.c_kind, g.batch * g.m * g.n * s, mach, used)
    packed = small * g.k
    pre = pack_step("pre-pack", packed / used, lanes, mach)
    pre.read(small_lvl, packed * s / used)
    pre.write("l2", packed * s / used)
    pre.barrier = used > 1
    st = Step("kernels (streamed)")
    run_kernels(st, rows, cols, g.k, lanes, mach)
    big_panel = ker.rows * g.k * s
    col_panels = -(-small // max(ker.cols, 1))
    st.read(big_lvl, big_t * g.k * s)  # the long operand, once
    if col_panels > 1:
        reread(st, big_panel, (col_panels - 1) * big_t * g.k * s, mach, used)
    row_panels = -(-big_t // max(ker.rows, 1))
    st.read("l3" if used > 1 else resident(packed * s, mach), row_panels * packed * s)
    st.write(c_lvl, big_t * small * s)
    steps = [pre] + split(st, 4 if st.dram_read or st.dram_write else 1)
    steps = repeat(steps, per)
    return Plan("autotsmm", used, steps, g.dtype, mach.call_s("autotsmm"), ker.name(),
                {"threads_over": "n" if small_is_a else "m", "tiles": {"rows": rows, "cols": cols},
                 "prepacked": "A" if small_is_a else "B"})


def autotsmm(g: Gemm, mach: Machine, max_threads: int) -> Plan:
    if not is_tall_skinny(g.m, g.n):
        plan = openblas(g, mach, max_threads)
        plan.strategy = "autotsmm"
        plan.serial_s = mach.call_s("autotsmm")
        plan.detail["fallback"] = "openblas (not tall-and-skinny)"
        return plan
    return _best([_tsmm_at(g, mach, t) for t in thread_counts(max_threads)], mach)


def plan_gemm(g: Gemm, mach: Machine, strategy: str, max_threads: int) -> Plan:
    """The plan of ``strategy``; ``auto`` is the fastest of the three."""
    builders = {"openblas": openblas, "iaat": iaat, "autotsmm": autotsmm}
    if strategy in builders:
        return builders[strategy](g, mach, max_threads)
    plans = [builders[name](g, mach, max_threads) for name in STRATEGIES]
    best = _best(plans, mach)
    best.detail["auto_estimates_s"] = {p.strategy: estimate(p, mach) for p in plans}
    return best


def _best(plans: list[Plan], mach: Machine) -> Plan:
    return min(plans, key=lambda p: estimate(p, mach))


def _shared_read(step: Step, level: str, nbytes_: float, sharers: int) -> None:
    """``sharers`` threads read the same bytes: one fetch from ``level``, the rest
    from the last level (where the first brought them)."""
    if sharers <= 1 or level in ("l1", "l2", "l3"):
        step.read(level, nbytes_)
        return
    step.read(level, nbytes_ / sharers)
    step.read("l3", nbytes_ * (sharers - 1) / sharers)
