"""The ARMv8 socket's parameters (:class:`ARMv8Spec`) and the rates derived from
them (:class:`Machine`).

A spec describes one core type and the socket around it: the NEON pipes and
ports of a core, its private caches, the shared last-level cache, and the DRAM
channels every core shares. Every number in a preset names its source; the
derived rates below (peak FLOP/s, bandwidths in bytes per second, the number of
concurrent DRAM streams) are formulas over those numbers, never new constants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwsim.errors import InputError
from hwsim.ir.dtypes import nbytes
from hwsim.spec import spec_field

from .memory import PLACEMENTS, Topology, stream_rates

# data types the NEON unit computes with; fp16 needs ARMv8.2 FP16 (spec.fp16_arith)
FLOAT_DTYPES = ("fp64", "fp32", "fp16")
INT_DTYPES = ("int64", "int32", "int16", "int8", "uint8", "bool")
DRAM_POOL = "dram"


@dataclass(frozen=True, kw_only=True)
class ARMv8Spec:
    """One ARMv8 machine as a preset describes it: its cores, caches, memory system and
    the measured constants the ECM model and the stream-rate network read (each
    field's ``help`` says what it is; a preset's comments give each value's source)."""

    core_name: str = spec_field(help="core microarchitecture, e.g. TaiShan v110")
    cores: int = spec_field(help="cores of the machine, every socket's (one thread each)",
                            minimum=1)
    clock_hz: float = spec_field(help="core clock", minimum=1.0)
    # ---- one core
    simd_bits: int = spec_field(128, help="NEON vector width", choices=(128,))
    fma_pipes: int = spec_field(help="vector FP pipes that execute FMLA", minimum=1)
    fma_latency_cycles: int = spec_field(
        help="FMLA latency: a k-step of a micro-kernel takes at least this long", minimum=1)
    issue_width: int = spec_field(help="instructions decoded per cycle", minimum=1)
    vector_registers: int = spec_field(32, help="architectural vector registers", minimum=4)
    load_ports: int = spec_field(help="128-bit vector loads per cycle from L1D", minimum=1)
    store_ports: int = spec_field(help="128-bit vector stores per cycle to L1D", minimum=1)
    fp16_arith: bool = spec_field(help="ARMv8.2 half-precision arithmetic (FMLA .8h)")
    vexp_instructions: float = spec_field(
        help="vector instructions of one vectorized exp (range reduction + polynomial)")
    # ---- caches
    line_bytes: int = spec_field(64, help="cache line", minimum=1)
    l1_bytes: int = spec_field(help="L1 data cache per core", minimum=1)
    l2_bytes: int = spec_field(help="L2 cache (per core, or per cluster of l2_shared_by)",
                               minimum=1)
    l2_shared_by: int = spec_field(1, help="cores sharing one L2", minimum=1)
    l1_ways: int = spec_field(help="L1 data cache associativity (ways): strided walks conflict "
                                   "in its sets",
                               minimum=1)
    l2_ways: int = spec_field(help="L2 associativity (ways)", minimum=1)
    l3_bytes: int = spec_field(help="last-level cache of the machine, every die's together: "
                                    "one L3 a node (die), split evenly, each holding "
                                    "its own cores' lines (Machine.llc_for; 0: none)")
    l2_bytes_per_cycle: float = spec_field(help="L2 -> L1 refill bandwidth per core",
                                           minimum=1e-9)
    l3_bytes_per_cycle: float = spec_field(
        help="last level (or a peer cache) -> L2 bandwidth per core", minimum=1e-9)
    l3_overlaps: bool = spec_field(
        False, help="the L3 -> L2 stream overlaps the L1 and L2 transfers (an L2 prefetcher "
                    "filling from L3 in the background): a step's time in cache is "
                    "max(T_OL, T_nOL + T_L2 + T_TLB, T_L3); false: the ECM rule, "
                    "max(T_OL, T_nOL + T_L2 + T_L3 + T_TLB)")
    # ---- address translation
    page_bytes: int = spec_field(4096, help="virtual-memory page (the OS's translation granule)",
                                 minimum=1)
    tlb_entries: int = spec_field(
        help="last-level data TLB entries: pages a core translates without a table walk",
        minimum=1)
    tlb_walk_s: float = spec_field(
        help="one page-table walk after a TLB miss (its leaf-entry load); walks do not overlap")
    core_to_core_latency_s: float = spec_field(
        help="latency of a cache line moving between two cores (barriers, flags)")
    # ---- DRAM
    dram_channels: int = spec_field(help="DDR channels of the machine, every socket's", minimum=1)
    dram_transfers_per_s: float = spec_field(
        help="DDR transfers per second per channel (DDR4-2933: 2.933e9, written '2933 MT/s')",
        minimum=1.0)
    dram_channel_bytes_per_transfer: int = spec_field(8, help="bytes per transfer per channel",
                                                      minimum=1)
    dram_efficiency: float = spec_field(
        help="sustained (STREAM-like) fraction of the channels' peak", minimum=1e-3)
    core_lines_in_flight: float = spec_field(
        help="cache-line misses one core keeps in flight to DRAM (miss buffers and "
             "prefetches): Little's law gives its bandwidth, lines x line / latency",
        minimum=1e-3)
    numa_latency_s: tuple[float, ...] = spec_field(
        help="effective DRAM stream latency from a core of node 0 to each node (entry 0: "
             "local); other nodes by symmetry", minimum=1e-12)
    # ---- dies and NUMA (hwsim/accelerators/armv8/memory.py)
    numa_nodes: int = spec_field(
        1, help="memory nodes: dies with their own DDR channels; cores and channels split "
                "evenly", minimum=1)
    dies_per_socket: int = spec_field(1, help="nodes (dies) per socket", minimum=1)
    cluster_cores: int = spec_field(
        1, help="cores sharing one port onto the die's interconnect", minimum=1)
    cluster_bw_bytes_per_s: float = spec_field(
        0.0, help="bandwidth of a cluster's port for the lines that leave it, DRAM lines and "
                 "L3 hits (0: not limited)")
    cluster_write_bw_bytes_per_s: float = spec_field(
        0.0, help="bandwidth of a cluster port's outbound lane, for the lines written back "
                 "(a line's data leaves the cluster on it while read lines come in on the "
                 "inbound lane at cluster_bw_bytes_per_s; 0: one lane carries both)")
    cluster_port_l3: bool = spec_field(
        False, help="the cluster's port carries its L3 hits too, shared by the cluster's "
                    "threads (memory.l3_rates; false: L3 hits do not queue at it)")
    die_link_bw_bytes_per_s: float = spec_field(
        0.0, help="link between two dies of a socket, for remote lines (0: not limited)")
    socket_link_bw_bytes_per_s: float = spec_field(
        0.0, help="link between two sockets, for remote lines (0: not limited)")
    dram_interference_s: float = spec_field(
        0.0, help="wait a line adds at a die's memory controller per unit of the other "
                  "threads' share of the node's bandwidth: tau x U_others / (1 - U) "
                  "(hwsim/accelerators/armv8/memory.py; 0: threads only share bandwidth)",
        minimum=0.0)
    dram_bytes: float = spec_field(0.0, help="DRAM installed, every socket's (0: not checked)")
    # ---- BLAS libraries
    sgemm_kernel: tuple[int, ...] = spec_field(
        help="OpenBLAS fp32 micro-kernel, rows x cols (GEMM_UNROLL_M, GEMM_UNROLL_N)")
    dgemm_kernel: tuple[int, ...] = spec_field(help="OpenBLAS fp64 micro-kernel")
    hgemm_kernel: tuple[int, ...] = spec_field(
        (32, 4), help="fp16 micro-kernel of the packed path (no NEON HGEMM in OpenBLAS)")
    gemm_p: dict[str, int] = spec_field(help="OpenBLAS GEMM_P (m-block) per dtype", minimum=1)
    gemm_q: dict[str, int] = spec_field(help="OpenBLAS GEMM_Q (k-block) per dtype", minimum=1)
    gemm_r: dict[str, int] = spec_field(help="OpenBLAS GEMM_R (n-block) per dtype", minimum=1)
    switch_ratio: dict[str, int] = spec_field(
        help="OpenBLAS SWITCH_RATIO: least rows (cols) per thread of the 2-D split", minimum=1)
    call_cycles: dict[str, float] = spec_field(
        help="fixed cost of dispatching one op (key op), the same for every GEMM library")
    # ---- energy
    power_limit_w: float = spec_field(
        help="socket power limit: the published TDP, which firmware holds the socket under "
             "(hwsim.simulate.power_capped_s)")
    core_static_power_w: float = spec_field(help="leakage and clock power of one core")
    uncore_static_power_w: float = spec_field(help="static power of the mesh, L3, DDR controllers")
    vfma_pj: dict[str, float] = spec_field(
        help="energy of one vector FMA instruction per dtype, with its share of the core")
    vop_pj: float = spec_field(help="energy of another vector instruction (load, store, ALU)")
    l1_pj_per_byte: float = spec_field(help="L1D access energy per byte")
    l2_pj_per_byte: float = spec_field(help="L2 access energy per byte")
    l3_pj_per_byte: float = spec_field(help="last-level cache and mesh energy per byte")
    dram_pj_per_byte: float = spec_field(help="DRAM energy per byte (device, PHY, controller)")


class Machine:
    """Rates derived from a spec: seconds per cycle, bytes per second, pool slots."""

    def __init__(self, spec: ARMv8Spec):
        self.spec = spec
        self.cycle_s = 1.0 / spec.clock_hz
        self.vbytes = spec.simd_bits // 8
        self.l2_bw = spec.l2_bytes_per_cycle * spec.clock_hz
        self.l3_bw = spec.l3_bytes_per_cycle * spec.clock_hz
        self.dram_peak = (spec.dram_channels * spec.dram_transfers_per_s
                          * spec.dram_channel_bytes_per_transfer)
        self.dram_bw = self.dram_peak * spec.dram_efficiency
        # DRAM: the nodes' controllers, each with its share of the channels; one core's
        # rate is Little's law over its lines in flight (memory.py), and the threads of
        # an op stream at the rates memory.stream_rates gives for their placement
        self.topology = Topology(spec)
        self.node_bw = self.dram_bw / spec.numa_nodes
        self.slot_bw = min(spec.core_lines_in_flight * spec.line_bytes
                           / spec.numa_latency_s[0], self.node_bw)
        self.cores = spec.cores  # threads an op may use (workload tiling.threads)
        self.placement = "spread"
        # the share of an op's DRAM lines written back (with_writes; memory.stream_rates)
        self.write_share = 0.0
        self._with_writes: dict[float, Machine] = {}
        self._rates: dict[int, tuple[float, ...]] = {}
        self._slowest: dict[int, float] = {}
        self._l3: dict[int, float] = {}
        self._share_floor: dict[tuple[int, int], float | None] = {}
        self._die_rates: dict[tuple[int, ...], float] = {}  # (share_floor)
        self._die_bounds: dict[tuple[int, int], float] = {}  # (share_floor)
        # no thread streams faster than Little's law at the least latency with no
        # queueing (memory.stream_rates: a line's wait is at least its latency, and
        # each server's residence at least its service, when a core keeps at least
        # one line in flight), plus a billionth for rounding; the planners' bound
        # (ecm.fastest) stretches transfers by at least floor_share (None: no bound)
        k = spec.core_lines_in_flight
        self.rate_ceiling = k * spec.line_bytes / min(spec.numa_latency_s) * (1.0 + 1e-9)
        self.floor_share = self.slot_bw / self.rate_ceiling if k >= 1.0 else None
        self.l2_per_core = spec.l2_bytes / spec.l2_shared_by
        # the shared level data produced by another core is found in: the L3, or on a
        # socket without one (FT-2000+) the other clusters' L2s, reached over the mesh
        self.llc_bytes = spec.l3_bytes or spec.l2_bytes * math.ceil(spec.cores / spec.l2_shared_by)
        # the L3 is one cache per die (node), each holding the lines its own cores
        # bring in: a thread reaches its die's share (llc_for)
        self.llc_die_bytes = (spec.l3_bytes / spec.numa_nodes if spec.l3_bytes
                              else self.llc_bytes)
        self._llc: dict[int, float] = {}
        self._lanes: dict[str, int] = {}  # (lanes: the planners ask 1,500 times a 7B run)
        for name, shape in (("sgemm_kernel", spec.sgemm_kernel),
                            ("dgemm_kernel", spec.dgemm_kernel),
                            ("hgemm_kernel", spec.hgemm_kernel)):
            if len(shape) != 2 or min(shape) < 1:
                raise InputError(f"expected [rows, cols], got {list(shape)}",
                                 field=f"spec.{name}")

    def lanes(self, dtype: str) -> int:
        """Elements of ``dtype`` in one vector register (at least one)."""
        got = self._lanes.get(dtype)
        if got is None:
            got = self._lanes[dtype] = max(1, self.vbytes // nbytes(1, dtype))
        return got

    def peak_flops(self, dtype: str) -> float:
        """Peak FLOP/s of one core: pipes x lanes x 2 (FMA) x clock."""
        return self.spec.fma_pipes * self.lanes(dtype) * 2 * self.spec.clock_hz

    def computes(self, dtype: str) -> bool:
        """Whether the NEON unit computes in ``dtype`` (a caller asks before it formats
        the op's line for :meth:`check_dtype`'s error)."""
        return (dtype in ("fp64", "fp32") or dtype in INT_DTYPES
                or (dtype == "fp16" and self.spec.fp16_arith))

    def check_dtype(self, dtype: str, what: str) -> None:
        """An op the NEON unit cannot compute in ``dtype`` is the user's error."""
        if self.computes(dtype):
            return
        why = ("has no ARMv8.2 FP16 arithmetic" if dtype == "fp16"
               else "has no arithmetic in this type")
        raise InputError(f"dtype {dtype!r} is not supported: {self.spec.core_name} {why}; "
                         f"needed by {what} (use dtype: fp32)", field="dtype")

    def kernel_shape(self, dtype: str) -> tuple[int, int]:
        s = self.spec
        shape = {"fp32": s.sgemm_kernel, "fp64": s.dgemm_kernel, "fp16": s.hgemm_kernel}
        return tuple(shape.get(dtype, s.sgemm_kernel))  # type: ignore[return-value]

    def blocking(self, dtype: str) -> tuple[int, int, int]:
        s = self.spec
        key = dtype if dtype in s.gemm_p else "fp32"
        return s.gemm_p[key], s.gemm_q[key], s.gemm_r[key]

    def switch_ratio(self, dtype: str) -> int:
        return int(self.spec.switch_ratio.get(dtype, self.spec.switch_ratio.get("fp32", 2)))

    def call_s(self) -> float:
        """A framework's dispatch of one op: the same for every kernel library (no
        per-library call cost is modelled: none has a measured or counted source)."""
        return self.spec.call_cycles.get("op", 0.0) * self.cycle_s

    def barrier_s(self, threads: int) -> float:
        """A tree barrier: arrive and release, one cache-line hop per level."""
        if threads <= 1:
            return 0.0
        return 2 * math.ceil(math.log2(threads)) * self.spec.core_to_core_latency_s

    def fork_s(self, threads: int) -> float:
        """Waking ``threads`` - 1 pooled workers: one hop per level of the wake-up tree."""
        if threads <= 1:
            return 0.0
        return math.ceil(math.log2(threads)) * self.spec.core_to_core_latency_s

    def for_run(self, threads: int, placement: str) -> "Machine":
        """This machine with an op's threads capped at ``threads`` (0: every core) and
        placed by ``placement`` (workload ``tiling.threads`` / ``tiling.placement``)."""
        if placement not in PLACEMENTS:
            raise InputError(f"unknown placement {placement!r}; expected one of "
                             f"{', '.join(PLACEMENTS)}", field="tiling.placement")
        cores = min(threads, self.spec.cores) if threads else self.spec.cores
        if cores == self.cores and placement == self.placement:
            return self
        other = Machine(self.spec)
        other.cores, other.placement = cores, placement
        return other

    def with_writes(self, share: float) -> "Machine":
        """This machine for an op of which ``share`` of the DRAM lines are written back.

        A cluster's port onto the ring has a lane each way: the lines read come in on
        one (``cluster_bw_bytes_per_s``), the lines written back leave on the other
        (``cluster_write_bw_bytes_per_s``), so a copy's reads and writes do not queue
        behind each other at the port (memory.stream_rates). The threads' rates then
        depend on the op's mix: the machine of each mix is kept, with its own solved
        rates, the share rounded to sixteenths (a few machines for the few mixes of a
        model's ops). Itself where the port has one lane (or none) or nothing is
        written."""
        s = self.spec
        q = round(share * 16) / 16
        if (q <= 0.0 or s.cluster_write_bw_bytes_per_s <= 0.0 or s.cluster_bw_bytes_per_s <= 0.0
                or self.topology.cluster_cores <= 1 or q == self.write_share):
            return self
        got = self._with_writes.get(q)
        if got is None:
            got = self._with_writes[q] = Machine(s)
            got.cores, got.placement, got.write_share = self.cores, self.placement, q
        return got

    def slowest_rate(self, threads: int) -> float:
        """The least of :meth:`thread_rates` (kept: a planner asks for it per plan)."""
        got = self._slowest.get(threads)
        if got is None:
            got = self._slowest[threads] = min(self.thread_rates(threads))
        return got

    def share_floor(self, threads: int, die: bool = False, solve: bool = True) -> float | None:
        """A lower bound on the stretch of a transfer among ``threads`` threads, ``slot_bw
        / slowest_rate(threads)``, without solving their rates (None: no bound).

        No thread streams faster than :attr:`rate_ceiling`; the threads whose lines a
        node's controllers serve carry no more than ``node_bw`` together (the solve's
        servers never carry more than their bandwidth: memory.stream_rates), so the
        slowest streams at most ``node_bw`` over the most loaded node's share of the
        threads' lines; and where every thread's pages are on its own die (``spread``,
        ``compact``), a die's threads meet no other die's at any server, so the
        slowest streams no faster than the slowest of the most loaded die's threads
        solved alone (:meth:`_die_rate`; with ``solve`` False, a bound on that rate
        without the solve, :meth:`_die_bound`, the one the planners ask for: on the
        Llama-2-7B prefill the die's solves cost more than the joint solves they
        spared, docs/performance.md). A
        thousandth is left on each for the solves' tolerance (utilisations found to
        1e-10, rates to a relative 1e-6 or better; a test holds every solved rate of
        the shipped presets, placements and thread counts under the bound). The die's
        bounds are asked for with ``die`` only (a planner first tries the bounds that
        cost least). A planner passes over a candidate on an
        unsolved thread count when its estimate at this stretch already exceeds the best
        (ecm.fastest)."""
        die = (2 if solve else 1) if die else 0
        got = self._share_floor.get((threads, die), 0.0)
        if got == 0.0:
            got = None
            if self.floor_share is not None:
                placed = self.topology.place(max(1, threads), self.placement)
                load: dict[int, float] = {}
                for th in placed:
                    for node, share in th.pages:
                        load[node] = load.get(node, 0.0) + share
                most = max(load.values())
                cap = min(self.rate_ceiling, self.node_bw * (1.0 + 1e-3) / most)
                if (die and len(placed) > 1
                        and all(th.pages == ((th.node, 1.0),) for th in placed)):
                    on = max(load, key=load.__getitem__)  # (the first most loaded)
                    mine = [th for th in placed if th.node == on]
                    cap = min(cap, (self._die_rate(mine) if die == 2 else self._die_bound(mine))
                              * (1.0 + 1e-3))
                got = self.slot_bw / cap
            self._share_floor[(threads, die)] = got
        return got

    def _die_rate(self, mine: list) -> float:
        """The slowest stream rate of ``mine``, one die's threads with their pages on it,
        solved alone (memory.stream_rates), kept by their clusters' occupancy."""
        per: dict[int, int] = {}
        for th in mine:
            per[th.cluster] = per.get(th.cluster, 0) + 1
        key = tuple(sorted(per.values()))
        got = self._die_rates.get(key)
        if got is None:
            got = self._die_rates[key] = min(stream_rates(self, mine))
        return got

    def _die_bound(self, mine: list) -> float:
        """A bound on :meth:`_die_rate` (the slowest stream rate of ``mine``, one die's
        threads with their pages on it), without solving their network, kept by their
        number and the fewest of them that share a cluster.

        In :func:`~.memory.stream_rates`' network each thread keeps ``k`` lines in
        flight, and a line's round trip is its delay (``think``: the latency less one
        service at each server), its residence at its cluster's port and at its node's
        controllers, and the controllers' interference wait. Let ``x`` be the slowest
        thread's rate (lines per second); every other thread streams at least at ``x``.
        A residence is ``D (1 + Q_all - Q_own / k)`` (Schweitzer), and a thread's queue
        at a server is its rate times its residence (Little), at least ``rate x D``: so
        with ``m`` threads at the server the slowest's residence is at least
        ``D (1 + (m - 1) x D) / (1 - x D (1 - 1 / k))``, ``m`` the die's ``n`` threads
        at the node and the fewest on a cluster at the port (the slowest is on some
        cluster). The node's utilisation is at least ``n x d`` (``d`` its service), so
        the interference wait, ``tau (U - x d) / (1 - U)``, is at least ``tau (n - 1)
        x d / (1 - n x d)``. Little's law over the thread's ``k`` lines, ``k = x
        (think + residences + wait)``, then holds with ``>=`` at the slowest rate, and
        the right side grows with ``x``: the rate where it equals ``k``, found by
        bisection, bounds the slowest. It is above the solve by 0.07-1 % on the
        Kunpeng 920's dies under ``spread`` (more on ``compact`` dies with unevenly
        filled clusters, up to 11 %, and on dies of a few threads, where the solve is
        cheap); the solve it is asked for before took 0.3-5 ms each, a few dozen per
        run of a model whose GEMMs search every thread cap
        (docs/performance.md). A test holds it over every solved rate of the shipped
        presets, placements and thread counts."""
        n = len(mine)
        per: dict[int, int] = {}
        for th in mine:
            per[th.cluster] = per.get(th.cluster, 0) + 1
        fewest = min(per.values())
        got = self._die_bounds.get((n, fewest))
        if got is None:
            spec, topo = self.spec, self.topology
            line = float(spec.line_bytes)
            k = float(spec.core_lines_in_flight)
            tau = float(spec.dram_interference_s) if n > 1 else 0.0
            d = line / self.node_bw
            servers = [(d, n)]
            if spec.cluster_bw_bytes_per_s > 0 and topo.cluster_cores > 1:
                w, out = self.write_share, spec.cluster_write_bw_bytes_per_s
                if w > 0.0 and out > 0.0:  # the port's two lanes (memory.stream_rates)
                    servers.append(((1.0 - w) * (line / spec.cluster_bw_bytes_per_s), fewest))
                    servers.append((w * line / out, fewest))
                else:
                    servers.append((line / spec.cluster_bw_bytes_per_s, fewest))
            node = mine[0].node
            think = max(0.0, topo.latency_s(node, node) - sum(dd for dd, _ in servers))
            own = 1.0 - 1.0 / k

            def lines(x: float) -> float:  # k = x * round trip, at the bound's terms
                trip = think
                for dd, m in servers:
                    trip += dd * (1.0 + (m - 1) * x * dd) / (1.0 - x * dd * own)
                if tau > 0.0:
                    trip += tau * (n - 1) * x * d / (1.0 - n * x * d)
                return x * trip

            # above: no queueing (k / think + services) and the node's bandwidth shared
            hi = min(k / (think + sum(dd for dd, _ in servers)), 1.0 / (n * d))
            lo = 0.0
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                if lines(mid) > k:
                    hi = mid
                else:
                    lo = mid
            got = self._die_bounds[(n, fewest)] = hi * line
        return got

    def l3_rate(self, threads: int) -> float:
        """L3 bytes per second of the slowest of ``threads`` threads placed by
        :attr:`placement` reading from the L3 together: the threads that share a
        cluster share its port onto the ring (memory.l3_rates). Every thread of an op
        is charged this rate: they run the same steps between barriers, so the most
        crowded cluster sets the pace. ``l3_bw`` exactly for one thread, or for
        threads on clusters of their own."""
        got = self._l3.get(threads)
        if got is None:
            from .memory import l3_rates  # noqa: PLC0415

            got = self._l3[threads] = min(
                l3_rates(self, self.topology.place(max(1, threads), self.placement)))
        return got

    def llc_for(self, threads: int) -> float:
        """The last-level bytes that ``threads`` threads placed by :attr:`placement`
        reach together: each die's L3 holds the lines its own cores bring in (one L3
        per die on the Kunpeng 920; one core's lmbench chase leaves the L3 between 16
        and 24 MB on a machine of 22.5 MB a die), so a die's threads share its
        ``llc_die_bytes``. An op's threads run the same steps, so the most crowded die
        sets the share: ``llc_die_bytes x threads / (threads on that die)``, one die's
        L3 for one thread or threads on one die, every die's for threads spread
        evenly over all of them (``llc_bytes`` on a one-die machine, exactly)."""
        got = self._llc.get(threads)
        if got is None:
            per: dict[int, int] = {}
            placed = self.topology.place(max(1, threads), self.placement)
            for th in placed:
                per[th.node] = per.get(th.node, 0) + 1
            got = self._llc[threads] = self.llc_die_bytes * len(placed) / max(per.values())
        return got

    def thread_rates(self, threads: int) -> tuple[float, ...]:
        """DRAM bytes per second of each of ``threads`` threads streaming together,
        placed by :attr:`placement` (memory.stream_rates)."""
        rates = self._rates.get(threads)
        if rates is None:
            placed = self.topology.place(threads, self.placement)
            rates = self._rates[threads] = tuple(stream_rates(self, placed))
        return rates
