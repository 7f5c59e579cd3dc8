"""Where a thread runs, where its memory lives, and how fast it streams from DRAM.

A core does not stream from DRAM at a fixed rate. It keeps a number of cache-line
misses in flight (its miss buffers and the prefetcher's requests,
``core_lines_in_flight``), and each line takes the memory latency to come back, so
by Little's law one core alone draws::

    bandwidth = lines in flight x line bytes / latency

On the Kunpeng 920 the lmbench ``lat_mem_rd`` chase at a 64 B stride measures
5.10 ns per line from local DRAM: the prefetcher runs ahead of the dependent loads,
so that figure is not the load-to-use latency but the latency divided by the lines
in flight, i.e. a core's streaming rate (64 B / 5.10 ns = 12.5 GB/s). With the
100 ns latency of a local line (M) that is 19.6 lines in flight. The same chase
bound to a remote node (another die, another socket) runs at 13.5-17.2 ns a line:
we keep the lines in flight and read the ratio as a longer effective latency
(``numa_latency_s``); the true remote load-to-use latency is lower and the
prefetcher keeps fewer lines in flight to it, which the data cannot tell apart.

**Where the lines queue.** Every line a core asks for passes shared servers:

- its *cluster*'s port onto the die's ring (``cluster_cores`` cores share it,
  ``cluster_bw_bytes_per_s``; four TSV110 cores per cluster on the Kunpeng 920). The
  port carries every line that leaves the cluster, L3 hits too: where the spec
  sets ``cluster_port_l3``, :func:`l3_rates` shares it among the threads that read
  the L3 (charged apart from their DRAM lines, :func:`.ecm.l3_s`). Where the spec
  sets ``cluster_write_bw_bytes_per_s`` the port has a lane each way: an op's read
  lines come in on the first, its written lines leave on the second, in the shares
  of its mix (``Machine.write_share``, :meth:`.spec.Machine.with_writes`);
- the *memory controllers of the node* that holds the page (a die's share of the
  DDR channels at their sustained bandwidth);
- the *link* a remote line crosses (:meth:`Topology.link`): the two dies of a
  socket share an on-package link; two sockets share the coherent socket link
  (on the Kunpeng 920 the Hydra ports), one server per direction, since its lanes
  are full duplex and a line travels from the page's socket to the core's. Every
  die of a socket reaches the other socket through that one link (a server per
  pair of nodes would multiply the socket link by the dies it joins). A line from
  the other socket's far die is charged the socket link only, not that socket's
  die link as well (where the Hydra ports sit on the package is not published).

**Interference at the controller.** A node's memory controller is more than a
bandwidth server. Four lmbench chasers on four clusters of one die (cores 0, 4, 8,
12, pages local) take 6.38 ns a line each, 25 % longer than one alone (5.10 ns),
while together they carry 40 GB/s, 57 % of the die's sustained 70.4 GB/s: a server
of that bandwidth would queue them by under 2 %. The cost is not the ring or the L3
tags: the same four chasers over working sets that stay in the L3 (1-4 MB each,
62 GB/s through the ring) take 4.09-4.18 ns a line, as one alone does (4.12-4.23 ns).
It sits past the L3, at the controller, and arises only between streams: a
stream's own lines come evenly and walk an open DRAM row; another stream's come at
random and close it. So each thread waits, per line it sends to node ``n``::

    dram_interference_s x U_others / (1 - U)

with ``U`` the node's utilisation (carried over sustained bandwidth) and
``U_others`` the other threads' part of it: Kingman's G/G/1 waiting time (J. F. C.
Kingman, "The single server queue in heavy traffic", Proc. Cambridge Phil. Soc.
57(4), 1961), in which only the others' random traffic adds variability. The
constant is set from that lmbench row (27.5 ns on the Kunpeng 920, about one DDR4
row conflict, tRP + tRCD); the rows with two chasers a cluster are checks. A thread
alone waits nothing more than before, so one thread's rate is unchanged; as threads
are added a node's bandwidth rises gradually towards its sustained figure without
passing it, since the wait grows without bound as ``U`` nears 1.

The threads of an op form a closed queueing network: each thread is a class of
``core_lines_in_flight`` customers that cycle between the latency (a delay) and
those servers, each visited by the share of the thread's lines that pass it.
:func:`stream_rates` solves it by approximate mean-value analysis (Schweitzer's
iteration, Lazowska et al., *Quantitative System Performance*, 1984, ch. 7): the
throughput of each thread follows from its loaded latency, the unloaded latency
plus the queueing at every server it visits and the interference wait above. The
bandwidth of a node therefore rises gradually as threads are added and approaches
the node's sustained bandwidth without passing it; threads that share a cluster or
a node slow each other, threads on separate dies with local pages do not.

**Placement** (workload ``tiling.placement``) decides the cores the threads run on
and the nodes their pages live on:

- ``compact``: threads fill the cores in order (a cluster, then the next, a die,
  then the next: ``OMP_PROC_BIND=close``); pages first-touched, so local;
- ``spread``: threads go round-robin over the nodes and, inside a node, share its
  clusters evenly, ``ceil(threads / clusters)`` a cluster (``OMP_PROC_BIND=spread``
  places; the Linux scheduler's load balancing also spreads unbound threads over
  the nodes); pages local. The default;
- ``interleave``: threads as ``spread``, pages interleaved over all nodes
  (``numactl --interleave=all``): a share ``1/nodes`` of every thread's lines is
  local, the rest crosses the links.

The rates are those of all the op's threads streaming together (every thread of
a plan runs the same steps); an op whose threads stream at different moments is
charged the loaded latency throughout, which over-states queueing for ops
whose DRAM traffic is a small share of their time.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hwsim.errors import InputError

if TYPE_CHECKING:
    import numpy as np

PLACEMENTS = ("spread", "compact", "interleave")


@dataclass(frozen=True)
class Thread:
    """One thread: the core it runs on and the share of its lines each node holds."""

    core: int
    node: int
    cluster: int
    pages: tuple[tuple[int, float], ...]  # (node, share of the thread's lines)


class Topology:
    """Cores, clusters, nodes (dies with their own DDR channels) and sockets of a spec."""

    def __init__(self, spec):
        self.spec = spec
        self.nodes = spec.numa_nodes
        if spec.dies_per_socket < 1 or self.nodes % spec.dies_per_socket:
            raise InputError(f"numa_nodes {self.nodes} is not a whole number of sockets of "
                             f"{spec.dies_per_socket} dies", field="spec.dies_per_socket")
        if len(spec.numa_latency_s) < self.nodes:
            raise InputError(f"needs {self.nodes} latencies (node 0 to each node), got "
                             f"{len(spec.numa_latency_s)}", field="spec.numa_latency_s")
        self.cores_per_node = math.ceil(spec.cores / self.nodes)
        self.cluster_cores = max(1, min(spec.cluster_cores, self.cores_per_node))
        self.clusters_per_node = math.ceil(self.cores_per_node / self.cluster_cores)
        self._placed: dict[tuple[int, str], list[Thread]] = {}
        self._threads: dict[bool, dict[int, Thread]] = {}  # (_place: per core)

    def node_of(self, core: int) -> int:
        return min(core // self.cores_per_node, self.nodes - 1)

    def cluster_of(self, core: int) -> int:
        return core // self.cluster_cores

    def socket_of(self, node: int) -> int:
        return node // self.spec.dies_per_socket

    @property
    def sockets(self) -> int:
        return self.nodes // self.spec.dies_per_socket

    def link(self, mem: int, node: int) -> tuple[tuple, float]:
        """The server a line from a page of node ``mem`` to a core of node ``node``
        crosses, and its bandwidth: the die link of their socket when both dies are
        in one socket (one server per pair of dies, both directions), else the socket
        link, one server per direction between two sockets (its lanes are full
        duplex: a line travels from the page's socket to the core's, so the two
        sockets' reads of each other's memory do not share one server)."""
        a, b = self.socket_of(mem), self.socket_of(node)
        if a == b:
            lo, hi = sorted((mem, node))
            return ("die_link", lo, hi), self.spec.die_link_bw_bytes_per_s
        return ("socket_link", a, b), self.spec.socket_link_bw_bytes_per_s

    def latency_s(self, node: int, mem: int) -> float:
        """Effective stream latency of a core of ``node`` to a page of ``mem``: the preset
        gives node 0's row; another node's follows by symmetry (``node XOR mem``)."""
        return float(self.spec.numa_latency_s[node ^ mem])

    def cores_of(self, threads: int, placement: str) -> list[int]:
        """The cores ``threads`` threads run on under ``placement``."""
        n = self.spec.cores
        threads = min(threads, n)
        if placement == "compact":
            return list(range(threads))
        if placement not in PLACEMENTS:
            raise InputError(f"unknown placement {placement!r}; expected one of "
                             f"{', '.join(PLACEMENTS)}", field="tiling.placement")
        # spread: round-robin over the nodes; inside a node the threads share the
        # clusters evenly (ceil(threads / clusters) a cluster, OpenMP's spread places)
        counts = [threads // self.nodes + (1 if j < threads % self.nodes else 0)
                  for j in range(self.nodes)]
        out: list[int] = []
        for node, count in enumerate(counts):
            first = node * self.cores_per_node
            cores = list(range(first, min(n, first + self.cores_per_node)))
            if not count or not cores:
                continue
            clusters = [cores[i:i + self.cluster_cores]
                        for i in range(0, len(cores), self.cluster_cores)]
            per = math.ceil(count / len(clusters))
            placed = 0  # (this node's threads placed so far)
            for cl in clusters:
                left = count - placed
                take = cl[:left if left < per else per]  # (min(per, left), without the call)
                out.extend(take)
                placed += len(take)
        return out

    def place(self, threads: int, placement: str) -> list[Thread]:
        """The threads ``threads`` threads are under ``placement`` (kept: a planner asks
        about a thread count for its L3 share, its rates and their bounds)."""
        got = self._placed.get((threads, placement))
        if got is None:
            got = self._placed[(threads, placement)] = self._place(threads, placement)
        return list(got)

    def _place(self, threads: int, placement: str) -> list[Thread]:
        # a core's thread is the same whatever the count (its pages: its node's, or
        # interleaved over all): made once per core and kept (threads are frozen)
        interleaved = placement == "interleave"
        made = self._threads.setdefault(interleaved, {})
        out = []
        for core in self.cores_of(threads, placement):
            th = made.get(core)
            if th is None:
                node = self.node_of(core)
                pages = (tuple((j, 1.0 / self.nodes) for j in range(self.nodes))
                         if interleaved else ((node, 1.0),))
                th = made[core] = Thread(core, node, self.cluster_of(core), pages)
            out.append(th)
        return out

    def pinned(self, cores: list[int], mem_nodes: list[int]) -> list[Thread]:
        """Threads bound to ``cores`` with pages interleaved over ``mem_nodes`` (numactl)."""
        share = 1.0 / len(mem_nodes)
        return [Thread(c, self.node_of(c), self.cluster_of(c),
                       tuple((j, share) for j in mem_nodes)) for c in cores]


def stream_rates(mach, threads: list[Thread], iterations: int = 500) -> list[float]:
    """Bytes per second each thread streams from DRAM when all stream together.

    Approximate mean-value analysis of the closed network described in the module
    docstring. One thread alone gets ``lines x line / latency`` (Little's law); the
    sum over the threads a server carries never exceeds its bandwidth.
    """
    if not threads:
        return []
    spec, topo = mach.spec, mach.topology
    line = float(spec.line_bytes)
    k = float(spec.core_lines_in_flight)
    stations: dict[tuple, int] = {}
    demand: list[dict[int, float]] = []
    think = [0.0] * len(threads)

    def station(key: tuple) -> int:
        return stations.setdefault(key, len(stations))

    # the share of the lines that are written back (the op's, Machine.write_share):
    # they leave the cluster on its outbound lane, the reads come in on the inbound
    w = float(mach.write_share)
    out_bw = float(spec.cluster_write_bw_bytes_per_s)
    for c, th in enumerate(threads):
        d: dict[int, float] = {}
        if spec.cluster_bw_bytes_per_s > 0 and topo.cluster_cores > 1:
            port = line / spec.cluster_bw_bytes_per_s
            if w > 0.0 and out_bw > 0.0:
                d[station(("cluster", th.cluster))] = (1.0 - w) * port
                d[station(("cluster_out", th.cluster))] = w * line / out_bw
            else:
                d[station(("cluster", th.cluster))] = port
        latency = 0.0
        for node, share in th.pages:
            latency += share * topo.latency_s(th.node, node)
            s = station(("node", node))
            d[s] = d.get(s, 0.0) + share * line / mach.node_bw
            if node != th.node:
                key, bw = topo.link(node, th.node)
                if bw > 0:
                    s = station(key)
                    d[s] = d.get(s, 0.0) + share * line / bw
        demand.append(d)
        # the unloaded latency includes one service at each server: the rest is delay
        rest = latency - sum(d.values())
        think[c] = rest if rest > 0.0 else 0.0  # (max(0.0, rest), without the call)
    # the demands, a row per thread and a column per station (0.0 where it never goes)
    D = [[0.0] * len(stations) for _ in threads]
    for row, d in zip(D, demand):
        for s, v in d.items():
            row[s] = v
    # the die's memory controller: lines of other threads' streams interleave with a
    # thread's own and cost it a wait of `dram_interference_s` per unit of their share
    # of the node's bandwidth (module docstring, "Interference at the controller")
    nodes = [s for key, s in stations.items() if key[0] == "node"]
    tau = float(spec.dram_interference_s)
    if tau > 0 and len(threads) > 1 and nodes:
        return _rates_with_interference(D, think, k, line, nodes, tau, iterations)
    if len(threads) == 1 and demand[0]:
        return [_one_rate(D[0], think[0], k, iterations) * line]
    return _plain_rates(D, think, k, line, iterations)


def _plain_rates(D: list[list[float]], think: list[float], k: float, line: float,
                 iterations: int) -> list[float]:
    """:func:`stream_rates`' network without the controllers' wait: Schweitzer's
    iteration on arrays (a row per thread)."""
    import numpy as np  # noqa: PLC0415 (loaded on first need)
    D, think = np.array(D, dtype=float), np.array(think, dtype=float)
    Q = D / np.maximum(D.sum(1, keepdims=True) + think[:, None], 1e-30) * k
    X = np.zeros(len(think))
    for _ in range(iterations):
        Qs = Q.sum(0)
        R = D * (1.0 + Qs[None, :] - Q / k)
        X_new = k / (think + R.sum(1))
        Q = X_new[:, None] * R
        if np.allclose(X_new, X, rtol=1e-10, atol=0.0):
            X = X_new
            break
        X = X_new
    # a server never carries more than its bandwidth (the iteration's fixed point
    # keeps utilisation below 1; this guards the arithmetic)
    util = (X[:, None] * D).sum(0)
    over = util.max(initial=0.0)
    if over > 1.0:
        X = X / over
    return [float(x * line) for x in X]


def _one_rate(d: list[float], think: float, k: float, iterations: int) -> float:
    """:func:`_plain_rates` for one thread, in Python floats: lines per second. Each
    step is numpy's on a row of one thread's demands: a row's sum is numpy's sum of
    the whole row (:func:`_row_tree`'s order of its nonzero numbers: the order matters once
    three numbers sit in it, as a port's two lanes and a node, or interleaved pages'
    nodes and links), a column's sum over one row is that row's number, and numpy's
    ``allclose`` test with ``atol=0`` is ``|new - old| <= rtol |old|``. Hence the same
    rate to the last bit (a test holds the two equal), and a sweep whose one-thread
    solves were its only use of numpy never loads it (its import, and OpenBLAS's
    worker thread spinning after it, cost more than the solves)."""
    # the row's nonzero numbers and the order numpy adds them in (its zeros add zeros)
    tree = _row_tree([s for s, v in enumerate(d) if v != 0.0], len(d))
    d = [v for v in d if v != 0.0]
    den = max(_tree_sum(tree, d) + think, 1e-30)
    Q = [v / den * k for v in d]
    X = 0.0
    for _ in range(iterations):
        R = [v * ((1.0 + q) - q / k) for v, q in zip(d, Q)]
        X_new = k / (think + _tree_sum(tree, R))
        Q = [X_new * r for r in R]
        if abs(X_new - X) <= 1e-10 * abs(X):
            X = X_new
            break
        X = X_new
    over = max((X * v for v in d), default=0.0)
    if over > 1.0:
        X = X / over
    return X


def _classes(D: list[list[float]], think: list[float]):
    """Threads with the same demands and delay as one class: the classes' demand rows,
    delays and sizes, in the order of their rows (``numpy.unique`` over the rows with
    the delay as a last column: the same sort, a row's numbers compared in turn), and
    each thread's class."""
    keyed = [(*row, th) for row, th in zip(D, think)]
    rows = sorted(set(keyed))
    at = {row: i for i, row in enumerate(rows)}
    back = [at[row] for row in keyed]
    count = [0.0] * len(rows)
    for b in back:
        count[b] += 1.0
    return [list(row[:-1]) for row in rows], [row[-1] for row in rows], count, back


def l3_rates(mach, threads: list[Thread]) -> list[float]:
    """Bytes per second each thread reads from the L3 when all pull lines together.

    A line that hits in the L3 still leaves the cluster: the L3 slices sit on the
    die's ring, and a cluster's cores reach them through the cluster's one port,
    the same port their DRAM lines cross (:func:`stream_rates`). lmbench shows it:
    four chasers on the four cores of one Kunpeng 920 cluster take 12.8-13.2 ns a
    line each over working sets of 3-4 MB (L3 hits), as from DRAM (12.8 ns), while
    four on four clusters take 4.1-4.2 ns, as one alone does; the cluster carries
    4 x 64 B / 13.1 ns = 19.5 GB/s from the L3 and 20.0 GB/s from DRAM: one server.

    The port is shared evenly (processor sharing) by the threads of the op on that
    cluster: ``c`` of them each get ``min(l3, port / c)``, ``l3`` a core's own L3
    rate (``l3_bytes_per_cycle``). The port carries at least what one core draws
    alone (``port`` is taken as the larger of ``cluster_bw_bytes_per_s`` and ``l3``),
    so a thread alone on its cluster reads at ``l3`` exactly, whatever the port,
    and a cluster's threads together never read less than one of them alone. The
    L3 lines and the DRAM lines of a cluster are charged at the port apart, each
    as if the other were absent: an op that streams both at once is charged too
    little at the port (docs/targets/armv8.md).

    These rates apply to a step's L3 hits only (:func:`.ecm.l3_s`), and only where
    the spec sets ``cluster_port_l3`` (the Kunpeng 920 presets); otherwise every
    thread reads at ``l3``."""
    l3 = float(mach.l3_bw)
    port = float(mach.spec.cluster_bw_bytes_per_s)
    if port <= 0 or mach.topology.cluster_cores <= 1 or not mach.spec.cluster_port_l3:
        return [l3] * len(threads)
    cap = max(port, l3)
    sharing: dict[int, int] = {}
    for th in threads:
        sharing[th.cluster] = sharing.get(th.cluster, 0) + 1
    # (min(l3, r) as a test: the value min() keeps; a call a thread otherwise)
    return [r if (r := cap / sharing[th.cluster]) < l3 else l3 for th in threads]


def _mva(D: np.ndarray, think: np.ndarray, k: float, iterations: int,
         Q: np.ndarray | None = None, extra=None,
         count: np.ndarray | None = None, X0: np.ndarray | None = None,
         rtol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Schweitzer's iteration (:func:`stream_rates`) with an optional extra delay per
    line, ``extra(X)``, that depends on the threads' own rates; returns X and Q. With
    ``count``, each row stands for that many identical threads (a class); ``X0``: the
    rates to start from; it stops when no rate changes by more than ``rtol`` of itself."""
    import numpy as np  # noqa: PLC0415 (loaded on first need)
    if Q is None:
        Q = D / np.maximum(D.sum(1, keepdims=True) + think[:, None], 1e-30) * k
    X = np.zeros(len(think)) if X0 is None else X0
    weight = count[:, None] if count is not None else None
    for _ in range(iterations):
        Qs = Q.sum(0) if weight is None else (weight * Q).sum(0)
        R = D * (1.0 + Qs[None, :] - Q / k)
        wait = think + R.sum(1)
        if extra is not None:
            wait = wait + extra(X if X.any() else k / wait)
        X_new = k / wait
        Q = X_new[:, None] * R
        # (np.allclose's test, without its overhead: a call per iteration)
        if (np.abs(X_new - X) <= rtol * np.abs(X)).all():
            return X_new, Q
        X = X_new
    return X, Q


def _rates_with_interference(D: list[list[float]], think: list[float], k: float, line: float,
                             nodes: list[int], tau: float, iterations: int) -> list[float]:
    """:func:`stream_rates` with the controller's interference wait: each thread of a
    node waits ``tau x U_others / (1 - U)`` a line there (weighted by the share of its
    lines the node holds). The wait grows without bound as a node's utilisation ``U``
    nears 1, which a plain fixed-point iteration overshoots into oscillation; instead
    each node's utilisation is a root found inside a bracket, each step solving the
    network (the iteration above) for the waits the assumed utilisations give. What
    the network then carries falls as the assumed utilisation rises, so ``carried - u``
    is positive at ``u = 0`` and tends to -1 at ``u = 1``: the next ``u`` is the
    false-position point of the bracket (Illinois variant, halving a stale end's
    value), or its midpoint when that point is too near an end. A node whose bracket
    another node's step left without a root is opened again. The utilisations are
    found to 1e-10; each step's network solve starts from the last step's rates and
    stops at a relative change of a thousandth of the residual (1e-6 to 1e-12): an
    inexact solve where the root is still far, five times fewer iterations than
    solving each step to 1e-12, for rates that differ from those by under 1e-6.
    The bracketing stops too where no node's next utilisation differs from its last
    one (a standstill): a node whose ``carried - u`` jumps across one float step
    (+2.4e-6 at one float and below zero at the next, seen at 57 and 59 threads on the
    Kunpeng 920: the inexact steps' solves are not continuous in ``u`` at that scale)
    can never come within 1e-10, and every further step only solves the same network
    again at the same utilisations (its inexact solve a little further on): the rates
    are the last step's, at most 2.6e-8 relative from those of all 200 steps on the
    Kunpeng 920's 1-64 threads, two placements, two read-write mixes (27 of those 256
    solves stop early; tests/test_armv8_interference.py holds them within 1e-7).
    Threads with the same demands are one class, solved once.

    The classes are found, and :class:`_Lumped` solves them, in Python floats; where it
    declines (pages interleaved over the nodes) the iteration runs on arrays."""
    # threads with the same demands and delay are one class (the placement repeats a
    # few patterns over many cores): solved once each, weighted by their number
    D, think, count, back = _classes(D, think)
    lumped = _Lumped.of(D, think, count, k, nodes, tau)
    if lumped is not None:  # the same iteration in scalars, twin classes computed once
        X = lumped.solve(iterations)
        return [X[b] * line for b in back]
    import numpy as np  # noqa: PLC0415 (loaded on first need)
    D, think, count = np.array(D), np.array(think), np.array(count)
    n_nodes = len(nodes)
    # a line's service at a node (line / node bandwidth): the same for every thread
    per_line = np.array([D[:, s].max() for s in nodes])
    share = D[:, nodes] / per_line[None, :]
    lo, hi = np.zeros(n_nodes), np.ones(n_nodes)
    f_lo, f_hi = np.full(n_nodes, np.nan), np.full(n_nodes, -1.0)
    side = np.zeros(n_nodes)  # the end the last step replaced: -1 lo, +1 hi
    u = np.zeros(n_nodes)  # first: no interference, which gives f_lo
    Q = None
    X = np.zeros(len(think))
    tol = 1e-6  # each network solve as tight as the utilisations need it (below)
    for _ in range(200):
        def extra(Xc, u=u):
            others = np.maximum(u[None, :] - Xc[:, None] * D[:, nodes], 0.0)
            return (share * tau * others / (1.0 - u)[None, :]).sum(1)
        X, Q = _mva(D, think, k, iterations, Q, extra, count, X if X.any() else None, tol)
        f = (count[:, None] * X[:, None] * D[:, nodes]).sum(0) - u
        if np.all(np.abs(f) <= 1e-10):
            break
        # an inexact solve far from the root, tighter as it nears (1e-6 to 1e-12)
        tol = min(1e-6, max(1e-12, 1e-3 * float(np.abs(f).max())))
        up = f > 0  # the root lies above u
        # a root left its bracket when another node moved: open the bracket again
        lost = (up & (u >= hi)) | (~up & (u <= lo))
        lo, f_lo = np.where(lost, 0.0, lo), np.where(lost, np.nan, f_lo)
        hi, f_hi = np.where(lost, 1.0, hi), np.where(lost, -1.0, f_hi)
        # Illinois: the end kept twice in a row has its value halved
        f_hi = np.where(up & (side == -1), 0.5 * f_hi, f_hi)
        f_lo = np.where(~up & (side == 1), 0.5 * f_lo, f_lo)
        lo, f_lo = np.where(up, u, lo), np.where(up, f, f_lo)
        hi, f_hi = np.where(up, hi, u), np.where(up, f_hi, f)
        side = np.where(up, -1.0, 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            guess = lo + (hi - lo) * f_lo / (f_lo - f_hi)
        width = hi - lo
        mid = lo + 0.5 * width
        ok = np.isfinite(guess) & (guess > lo + 1e-3 * width) & (guess < hi - 1e-3 * width)
        u_next = np.where(ok, guess, mid)
        if STOP_AT_STANDSTILL and np.array_equal(u_next, u):  # a standstill (the docstring above)
            break
        u = u_next
    return [float(X[b] * line) for b in back]


class _Lumped:
    """:func:`_rates_with_interference`'s iteration, step for step and float for float,
    in Python scalars over the classes' few stations, twin classes computed once.

    The network is sparse: with its pages on one node, a class visits two servers
    (its cluster's port and its node's controllers), so a row of the demands holds
    two numbers among a dozen or more zeros. Classes that differ only in which
    cluster they sit in (the placement fills the clusters of a node alike) are
    *twins*: the same demands, delay and size, each alone at its cluster, together
    at the same node. Twins take the same values at every step of the iteration,
    so each set is computed once. Every operation is the one numpy performs, in its
    order: an element-wise step is the same IEEE operation on a Python float; a sum
    over a row of two numbers and zeros is their one rounded sum whatever the order;
    the queue at a server, a sum over the classes down a column of a C-ordered
    array, is numpy's row after row, here class after class; what a node carries,
    a column of an array in Fortran order (the node columns taken by a list), is
    numpy's pairwise sum, here in :func:`_pairwise`'s order. Hence the same rates to the
    last bit (a test compares the two on five presets), in a fraction of the time: a
    solve near saturation takes 500 to 1,500 steps, of about 1.5 µs each in the
    step compiled for the network's shape (:meth:`_compiled`), against some 25 µs of
    numpy's on arrays of 16 x 18 (2 to 4 types of twins on the Kunpeng 920).

    A row of three numbers (a port with a lane each way, pages interleaved over two
    nodes) is summed in the order numpy's pairwise sum over the whole row gives it
    (:func:`_row_tree`: it depends on where the three sit), and classes are twins only
    if that order is the same too. Where a row has more (pages interleaved over four
    nodes) or the demands have a single column (numpy would sum the queues
    pairwise), :meth:`of` declines and the numpy iteration runs."""

    __slots__ = ("n", "k", "tau", "types", "type_of", "think", "count", "demand", "private",
                 "sharers", "node_terms", "node_classes", "n_nodes", "slot_w", "slot_d",
                 "slot_at", "slot_type", "seqs", "pairs", "terms", "node_trees")

    @classmethod
    def of(cls, D: list[list[float]], think: list[float], count: list[float], k: float,
           nodes: list[int], tau: float) -> "_Lumped | None":
        """The network of the classes (their demand rows, delays and sizes, as
        :func:`_classes` gives them), or None where the numpy iteration must run."""
        n, m = len(D), len(D[0])
        if n > 1 and m < 2:
            return None  # numpy would sum over the classes pairwise
        nonzero = [[(s, d) for s, d in enumerate(row) if d != 0.0] for row in D]
        if any(len(z) > 3 or not z for z in nonzero):
            return None
        # the order numpy adds a row's numbers in (its pairwise sum over the whole row,
        # zeros included, decides it once a row holds three): a class's part of its type
        trees = [_row_tree([s for s, _ in z], m) for z in nonzero]
        visitors = [0] * m
        for z in nonzero:
            for s, _ in z:
                visitors[s] += 1
        node_set = set(nodes)
        # a station visited by one class only is private: twins may sit at different ones
        signature: dict[tuple, int] = {}
        type_of = []
        for c, z in enumerate(nonzero):
            named = [(-1 if visitors[s] == 1 and s not in node_set else s, d) for s, d in z]
            # the order of the row's sum, its numbers named by station and demand: twins
            # add the same numbers in the same order (which two private lanes, or a
            # lane and the node, come first depends on where the stations sit); two
            # numbers have one sum in either order
            order = _tree_expr_of(trees[c], named) if len(z) > 2 else None
            key = (think[c], count[c], order, tuple(sorted(named)))
            type_of.append(signature.setdefault(key, len(signature)))
        self = cls()
        self.n, self.k, self.tau = n, k, tau
        self.type_of = type_of
        first = {}
        for c, t in enumerate(type_of):
            first.setdefault(t, c)
        reps = [first[t] for t in range(len(signature))]
        self.types = len(reps)
        self.think = [think[c] for c in reps]
        self.count = [count[c] for c in reps]
        self.demand = [[d for _, d in nonzero[c]] for c in reps]
        # per type, per slot: the shared station's index, or -1 (private)
        shared_ix: dict[int, int] = {}
        self.private = []
        for c in reps:
            slots = []
            for s, _ in nonzero[c]:
                if visitors[s] == 1 and s not in node_set:
                    slots.append(-1)
                else:
                    slots.append(shared_ix.setdefault(s, len(shared_ix)))
            self.private.append(slots)
        # per shared station: (type, slot, count) of the classes visiting it, in class order
        # (a twin's slot is its type's slot of the same shared station)
        self.sharers = [[] for _ in shared_ix]
        for c, z in enumerate(nonzero):
            t = type_of[c]
            for s, _ in z:
                if s in shared_ix:
                    j = self.private[t].index(shared_ix[s])
                    self.sharers[shared_ix[s]].append((t, j, count[c]))
        # the controllers' wait: per type, (node, share, demand) of each node it visits
        per_line = [max(row[s] for row in D) for s in nodes]
        self.n_nodes = len(nodes)
        self.node_terms = []
        for c in reps:
            terms = []
            for i, s in enumerate(nodes):
                d = D[c][s]
                if d != 0.0:
                    terms.append((i, d / per_line[i], d))
            self.node_terms.append(terms)
        # flat, slot by slot (a type's stations, type after type), for the iteration
        first_slot = []
        self.slot_w, self.slot_d, self.slot_at, self.slot_type = [], [], [], []
        for t in range(self.types):
            first_slot.append(len(self.slot_d))
            for d, at in zip(self.demand[t], self.private[t]):
                self.slot_w.append(self.count[t])
                self.slot_d.append(d)
                self.slot_at.append(at)
                self.slot_type.append(t)
        self.seqs = [[first_slot[t] + j for t, j, _ in members] for members in self.sharers]
        # per type: its delay, its first slot and the order its row is summed in
        self.pairs = [(self.think[t], first_slot[t], trees[reps[t]])
                      for t in range(self.types)]
        self.terms = [[(i, share * tau, d) for i, share, d in tt] for tt in self.node_terms]
        if any(not tt for tt in self.terms):
            return None  # (every thread's lines reach some node: never met)
        # per node: the distinct (type, count, demand) of the classes on it, and per class
        # the place of its own among them (-1: not on it); twins have the same three
        self.node_classes = []
        for s in nodes:
            distinct: dict[tuple, int] = {}
            places = [distinct.setdefault((type_of[c], count[c], D[c][s]), len(distinct))
                      if D[c][s] != 0.0 else -1 for c in range(n)]
            self.node_classes.append((list(distinct), places))
        # the order numpy adds a node's column in (its pairwise sum over the classes,
        # :func:`_pairwise`), over the distinct products: a twin's is added again where
        # it sits; the classes off the node add 0.0, which changes no sum of these
        # products (each is +0.0 or more, or NaN), and are dropped as _row_tree drops them
        self.node_trees = [_pairwise([p if p >= 0 else None for p in places], _add_terms, None)
                           for _, places in self.node_classes]
        return self

    def _compiled(self):
        """:func:`_mva` (with the controllers' wait as ``extra``) for this network,
        as straight-line Python: per slot (a type's station) and per type, each of
        numpy's element-wise steps on a local variable, each sum in numpy's order
        (:func:`_compile`). A solve near saturation runs the step 500 to 1,500 times,
        and list indexing and loops would be most of its time. The source is made
        from the network's shape (the types, their stations, the classes at each
        shared station), kept per shape, and takes the numbers as arguments."""
        key = (tuple(self.slot_at), tuple(self.slot_type), tuple(map(tuple, self.seqs)),
               tuple(len(tt) for tt in self.terms), tuple(self.pairs[t][1:] for t in
                                                         range(self.types)),
               tuple(tuple(t for t, _, _ in distinct) for distinct, _ in self.node_classes),
               tuple(self.node_trees))
        fn = _COMPILED.get(key)
        if fn is None:
            if len(_COMPILED) > 256:
                _COMPILED.clear()
            fn = _COMPILED[key] = _compile(self)
        consts = (self.k, tuple(self.slot_w), tuple(self.slot_d),
                  tuple(p[0] for p in self.pairs), tuple(tuple(tt) for tt in self.terms),
                  tuple(x for distinct, _ in self.node_classes for _, c, d in distinct
                        for x in (c, d)))
        return functools.partial(fn, consts)

    def solve(self, iterations: int) -> list[float]:
        """The rates of the classes (lines per second): the bracketing of
        :func:`_rates_with_interference`, node by node, in scalars."""
        k = self.k
        nn = self.n_nodes
        Q = []
        for t in range(self.types):
            dt = self.demand[t]
            denom = max(_tree_sum(self.pairs[t][2], dt) + self.think[t], 1e-30)
            Q += [d / denom * k for d in dt]
        lo, hi = [0.0] * nn, [1.0] * nn
        f_lo, f_hi = [math.nan] * nn, [-1.0] * nn
        side = [0.0] * nn
        u = [0.0] * nn
        X = None
        tol = 1e-6
        run = self._compiled()
        for _ in range(200):
            # the rates, the queues and what each node carries less its assumed
            # utilisation (the step's last lines: :func:`_compile`)
            X, Q, f = run(Q, X if X is not None else [0.0] * self.types,
                          X is not None and any(X), u, iterations, tol)
            for v in f:  # (all |f| <= 1e-10, without a generator: a round is short)
                if not abs(v) <= 1e-10:
                    break
            else:
                break
            # (min(1e-6, max(1e-12, t)) as tests: the values min() and max() keep)
            t = 1e-3 * max(map(abs, f))
            t = t if t > 1e-12 else 1e-12
            tol = t if t < 1e-6 else 1e-6
            moved = False
            for i in range(nn):
                # (node i's bracket in locals, stored back at the end: the same steps)
                fi, ui, lo_i, hi_i, flo, fhi = f[i], u[i], lo[i], hi[i], f_lo[i], f_hi[i]
                up = fi > 0
                if (up and ui >= hi_i) or (not up and ui <= lo_i):
                    lo_i, flo, hi_i, fhi = 0.0, math.nan, 1.0, -1.0
                if up:
                    if side[i] == -1:
                        fhi = 0.5 * fhi
                    lo_i, flo = ui, fi
                    side[i] = -1.0
                else:
                    if side[i] == 1:
                        flo = 0.5 * flo
                    hi_i, fhi = ui, fi
                    side[i] = 1.0
                width = hi_i - lo_i
                den = flo - fhi
                guess = lo_i + width * flo / den if den != 0.0 else math.nan
                mid = lo_i + 0.5 * width
                ok = (math.isfinite(guess) and guess > lo_i + 1e-3 * width
                      and guess < hi_i - 1e-3 * width)
                un = guess if ok else mid
                if un != ui:
                    moved = True
                u[i] = un
                lo[i], hi[i], f_lo[i], f_hi[i] = lo_i, hi_i, flo, fhi
            if not moved and STOP_AT_STANDSTILL:  # a standstill (the docstring above)
                break
        return [X[t] for t in self.type_of]


def _row_tree(positions: list[int], m: int):
    """The order in which numpy adds a row of ``m`` numbers whose nonzero ones sit at
    ``positions`` (ascending): ``0.0 +`` its pairwise sum over the whole row
    (:func:`_pairwise`), the zeros dropped (adding 0.0 changes no finite sum). The
    nonzero numbers are named by their rank among them: a rank, or a pair of trees
    added left to right, e.g. ``((0, 2), 1)`` when eight-wide blocks put the third
    number beside the first; None for a row of zeros."""
    rank = {p: i for i, p in enumerate(positions)}
    return _pairwise([rank.get(s) for s in range(m)], _add_terms, None)


def _add_terms(x, y):
    """The sum of two trees of :func:`_row_tree` (None: a zero)."""
    return y if x is None else x if y is None else (x, y)


def _tree_expr_of(tree, leaves: list):
    """``tree`` with each rank replaced by ``leaves[rank]`` (a hashable description)."""
    if isinstance(tree, tuple):
        return (_tree_expr_of(tree[0], leaves), _tree_expr_of(tree[1], leaves))
    return ("leaf", leaves[tree])


def _tree_sum(tree, values: list[float]) -> float:
    """The sum of ``values`` in the order ``tree`` (:func:`_row_tree`) says."""
    if isinstance(tree, tuple):
        return _tree_sum(tree[0], values) + _tree_sum(tree[1], values)
    return 0.0 if tree is None else values[tree]


def _tree_expr(tree, first: int, name: str = "r") -> str:
    """``tree``'s sum as source over ``{name}{first + rank}`` (the slots' residences)."""
    if isinstance(tree, tuple):
        return f"({_tree_expr(tree[0], first, name)} + {_tree_expr(tree[1], first, name)})"
    return f"{name}{first + tree}"


def _pairwise(a: list, add, zero):
    """numpy's ``pairwise_sum`` of its add reduction, with ``add`` and ``zero`` for its
    additions (floats, or :func:`_row_tree`'s trees of which number is added to which):
    eight running sums over blocks of eight, combined in a tree, the rest added one by
    one; halves of more than 128 summed apart; under eight, one by one from ``zero``."""
    n = len(a)
    if n < 8:
        res = zero
        for x in a:
            res = add(res, x)
        return res
    if n <= 128:
        r = a[:8]
        i, stop = 8, n - n % 8
        while i < stop:
            for j in range(8):
                r[j] = add(r[j], a[i + j])
            i += 8
        res = add(add(add(r[0], r[1]), add(r[2], r[3])), add(add(r[4], r[5]),
                                                              add(r[6], r[7])))
        for x in a[i:]:
            res = add(res, x)
        return res
    half = n // 2
    half -= half % 8
    return add(_pairwise(a[:half], add, zero), _pairwise(a[half:], add, zero))


# False: the bracketing runs its 200 steps through a standstill (the reference of the
# test that bounds what stopping there changes; see _rates_with_interference)
STOP_AT_STANDSTILL = True

_COMPILED: dict = {}  # the straight-line iteration per network shape (_Lumped._compiled)


def _compile(net: _Lumped):
    """:func:`_mva`'s step unrolled for ``net``'s shape, compiled: ``run(consts, Q, X,
    started, u, iterations, rtol)`` returns the rates per type, the queues per slot and,
    per node, what it carries less its assumed utilisation ``u``.

    Slot ``i``'s queue is ``q{i}`` (weighted by its class's size ``v{i}``: numpy's
    ``weight * Q``; its residence ``r{i}``: ``D * (1 + Qs - Q / k)``, where a shared
    station's ``Qs`` is ``s{j}``, the classes' ``v`` added class after class, and a
    private one's the class's own ``v``); type ``t``'s wait ``a{t}`` (``think +
    R.sum(1)``: at most two numbers), its controllers' wait ``e{t}`` at the rates
    ``y{t}`` (the last step's, or ``k / a`` at the first), its new rate ``n{t}``; it
    stops when every rate moved by at most ``rtol`` of itself, as :func:`_mva` does.
    What a node carries is then summed as :meth:`_Lumped.solve`'s bracketing needs it:
    numpy's sum down the node's column of ``count x rate x demand`` (an array in
    Fortran order, the demands' node columns taken by a list: its pairwise sum over
    the classes, ``net.node_trees``), each distinct product ``g{i}_{j}`` made once,
    then ``0.0 +`` it, less ``u``."""
    S, T = len(net.slot_d), net.types
    L = ["def run(consts, Q, X, started, u, iterations, rtol):",
         "    k, w, d, th, terms, carried = consts"]
    # (the constants unpacked a tuple at a time: fewer statements to compile)
    L.append("    " + ", ".join(f"w{i}" for i in range(S)) + ", = w")
    L.append("    " + ", ".join(f"d{i}" for i in range(S)) + ", = d")
    L.append("    " + ", ".join(f"th{t}" for t in range(T)) + ", = th")
    for t, tt in enumerate(net.terms):
        for m in range(len(tt)):
            L.append(f"    ni{t}_{m}, st{t}_{m}, dd{t}_{m} = terms[{t}][{m}]")
            L.append(f"    u{t}_{m} = u[ni{t}_{m}]; iv{t}_{m} = 1.0 - u{t}_{m}")
    L.append("    " + ", ".join(f"q{i}" for i in range(S)) + ", = Q")
    L.append("    " + ", ".join(f"x{t}" for t in range(T)) + ", = X")
    L.append("    for _ in range(iterations):")
    # a shared station's classes' weighted queues (a private one's is used once: below)
    body = [f"v{i} = w{i} * q{i}" for i in range(S) if net.slot_at[i] >= 0]
    for j, seq in enumerate(net.seqs):
        # the classes' queues added one after another from 0.0, as one expression
        # (the same sum, left to right: fewer statements to compile and to run)
        body.append(f"s{j} = " + "(" * len(seq) + "0.0"
                    + "".join(f" + v{i})" for i in seq))
    for i in range(S):
        at = net.slot_at[i]
        body.append(f"r{i} = d{i} * ((1.0 + {f's{at}' if at >= 0 else f'w{i} * q{i}'})"
                    f" - q{i} / k)")
    for t in range(T):
        _, first, tree = net.pairs[t]
        body.append(f"a{t} = th{t} + {_tree_expr(tree, first)}")
    for t, tt in enumerate(net.terms):
        # the controllers' wait at each node the type visits, added term after term,
        # and the new rate, as one expression (the same operations in the same order:
        # fewer statements to compile and to run)
        e = " + ".join(f"st{t}_{m} * (o if (o := u{t}_{m} - (x{t} if started else k / a{t})"
                       f" * dd{t}_{m}) > 0.0 else 0.0) / iv{t}_{m}" for m in range(len(tt)))
        body.append(f"n{t} = k / (a{t} + ({e}))")
    body += [f"q{i} = n{net.slot_type[i]} * r{i}" for i in range(S)]
    # numpy's test, |new - old| <= rtol |old|, without a call to abs() (a third of the
    # step's time where the types are few): the same comparisons, -0.0 and NaN included
    done = " and ".join(f"(c if (c := n{t} - x{t}) >= 0.0 else -c)"
                        f" <= rtol * (x{t} if x{t} >= 0.0 else -x{t})" for t in range(T))
    qs = "[" + ", ".join(f"q{i}" for i in range(S)) + "]"
    body.append(f"done = {done}")
    body += [f"x{t} = n{t}" for t in range(T)]
    body.append("if done:")
    body.append("    break")
    body.append("started = True")
    L += ["        " + line for line in body]
    # what each node carries, less its assumed utilisation (the rates are the x's:
    # the last step's, converged or not)
    at = 0
    f = []
    for i, (distinct, _) in enumerate(net.node_classes):
        for j, (t, _, _) in enumerate(distinct):
            L.append(f"    g{i}_{j} = carried[{at}] * x{t} * carried[{at + 1}]")
            at += 2
        tree = net.node_trees[i]
        f.append(f"(0.0 + {_tree_expr(tree, 0, f'g{i}_')}) - u[{i}]" if tree is not None
                 else f"0.0 - u[{i}]")
    L.append("    return [" + ", ".join(f"x{t}" for t in range(T)) + f"], {qs}, ["
             + ", ".join(f) + "]")
    scope: dict = {}
    exec(compile("\n".join(L), "<hwsim.armv8.memory network step>", "exec"), scope)  # noqa: S102
    return scope["run"]
