"""What one op asks of the machine, and how that becomes tasks on its units.

Lowering an op first produces a :class:`Work`: an ordered list of *stages*.
A stage is either compute on one unit (``qk``, ``softmax``, ``topk``, ``pv``,
``mover``; cycles, the unit's pipeline depth, priced actions) or a DRAM
*stream* (bytes of one tensor class read or written). Streams are cut into
``dram_transaction_bytes`` transactions, interleaved over the HBM channels the
way the crossbar maps addresses (every 32 B to the next channel), so each
channel gets its share as a task on its own queue (``hbm3``: one unit per
channel); reads also hold one of the ``fetch_channels`` fetchers (pool
``fetch``). A stream says how its bytes lie (a :class:`hwsim.dram.Gather`:
the kept tokens' rows among the stored ones, or one sequential run), and
:func:`hwsim.dram.gather_cost` turns that into the channels' time beyond the
bytes at peak (row activations rationed by ``tRRD``/``tFAW``, banks by
``tRC``, the ``dram_outstanding_per_channel`` requests a channel holds in flight,
all-bank refresh, and a write's read/write turnarounds) and the activations and row
hits, which the stage carries as the
``dram_act`` action (priced per activation) and as statistics. A tensor the
op neither reads nor writes because it stays on chip is noted with
:meth:`Work.keep` (which buffer, and why). The stage list and those notes are
what ``describe`` and the target's metrics read, so the per-op report and the
simulated bytes come from one place.

:meth:`Work.tasks` schedules the stages two ways (spec ``request_overlap``):

- **overlapped** (default): SpAtten streams requests (a head, a query block, a
  trace row) through its fetchers, Q·K array, softmax, top-k engine and prob·V
  array with FIFOs between them; with many requests in flight, one request costs
  its busiest stage and the pipeline depths are hidden behind its neighbours.
  Each stage is one task (one per channel for a stream), with no dependencies,
  so the op's latency is the busiest unit or channel, contention included.
- **lone** (``request_overlap: false``): one request alone; each stage is cut
  into tiles that stream into the next stage (tile *i* of Q·K waits for tile *i*
  of the key fetch), stages that need a whole result wait for it (the value
  top-k needs every probability), the first fetch waits for the DRAM latency,
  and each stage's last tile carries its pipeline depth.

At the ``analytical`` fidelity only the tasks' summary is read: :meth:`Work.summary`
takes it from the stages, without making the tasks (overlapped mode: the same sums
in the same order, so the same summary to the last bit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import reduce
from itertools import repeat
from operator import add

from hwsim.dram import DramCost, Gather, gather_cost
from hwsim.engine import Accumulator, Summary, Task, summarize

from .spec import SpattenSpec

LONE_TILES = 4  # tiles per streaming stage in lone mode
FETCH_POOL = "fetch"  # the pool of fetchers a read holds (spec ``fetch_channels``)


@dataclass
class Stage:
    name: str
    unit: str = ""  # compute unit; "" for a DRAM stream
    cycles: float = 0.0
    depth: int = 0  # pipeline latency (charged in lone mode)
    after: tuple[str, ...] = ()  # stages this one needs whole
    streams_from: tuple[str, ...] = ()  # stages this one consumes tile by tile
    actions: dict[str, float] = field(default_factory=dict)
    # DRAM streams
    cls: str = ""  # tensor class: key, value, query, lsb, weight, act
    read_bytes: int = 0
    write_bytes: int = 0
    slowdown: float = 1.0  # the stream's DRAM time over its bytes at peak (hwsim.dram)


class Work:
    """The stages of one op, and notes for its one-line description."""

    def __init__(self, spec: SpattenSpec, label: str):
        self.spec = spec
        self.label = label
        self.stages: list[Stage] = []
        self.notes: list[str] = []
        self.stats: dict[str, float] = {}  # numbers the target's metrics sum
        self.resident: list[tuple[str, float, str]] = []  # (tensor, bytes, where and why)

    # ------------------------------------------------------------ building
    def compute(self, name: str, unit: str, cycles: float, *, depth: int = 0,
                after: tuple[str, ...] = (), streams_from: tuple[str, ...] = (),
                actions: dict[str, float] | None = None) -> Stage:
        st = Stage(name, unit, float(cycles), depth, tuple(after), tuple(streams_from),
                   dict(actions or {}))
        self.stages.append(st)
        return st

    def read(self, name: str, cls: str, nbytes: int, *, after: tuple[str, ...] = (),
             sram: str = "", pattern: Gather | None = None) -> Stage | None:
        """Read ``nbytes`` of tensor class ``cls`` from DRAM (into buffer ``sram``),
        laid out as ``pattern`` (default: one sequential run)."""
        nbytes = self.round(nbytes)
        if nbytes <= 0:
            return None
        actions = {"hbm_byte": nbytes, "xbar_byte": nbytes}
        if sram:
            actions[f"sram_{sram}_byte"] = nbytes
        st = Stage(name, "", 0.0, 0, tuple(after), (), actions, cls, read_bytes=nbytes)
        self._price_rows(st, nbytes, pattern)
        self.stages.append(st)
        return st

    def write(self, name: str, cls: str, nbytes: int, *, after: tuple[str, ...] = ()) -> None:
        """Write ``nbytes`` of class ``cls`` to DRAM, one sequential run."""
        nbytes = self.round(nbytes)
        if nbytes > 0:
            st = Stage(name, "", 0.0, 0, tuple(after), (),
                       {"hbm_byte": nbytes, "xbar_byte": nbytes}, cls, write_bytes=nbytes)
            self._price_rows(st, nbytes, None, write=True)
            self.stages.append(st)

    def _price_rows(self, st: Stage, nbytes: int, pattern: Gather | None,
                    write: bool = False) -> None:
        """The stream's DRAM cost beyond its bytes: its slowdown over peak bandwidth,
        its activations (action ``dram_act``) and the row statistics."""
        cost = dram_cost(self.spec, pattern or Gather.stream(
            nbytes, self.spec.dram_transaction_bytes), write)
        st.slowdown = cost.slowdown
        st.actions["dram_act"] = cost.activations
        for k, v in (("dram_activations", cost.activations), ("dram_row_hits", cost.row_hits),
                     ("dram_transactions", cost.transactions)):
            self.stats[k] = self.stats.get(k, 0.0) + v

    def keep(self, what: str, nbytes: float, where: str) -> None:
        """Note that tensor ``what`` (``nbytes``) is neither read from nor written to
        DRAM by this op: it stays on chip (``where``: which buffer, and why)."""
        self.resident.append((what, float(nbytes), where))

    def round(self, nbytes: float) -> int:
        """Bytes rounded up to whole DRAM transactions."""
        tx = self.spec.dram_transaction_bytes
        return int(math.ceil(nbytes / tx) * tx) if nbytes > 0 else 0

    def add_actions(self, stage_name: str, actions: dict[str, float]) -> None:
        for st in self.stages:
            if st.name == stage_name:
                for a, n in actions.items():
                    st.actions[a] = st.actions.get(a, 0.0) + n
                return
        raise KeyError(stage_name)

    def has(self, name: str) -> bool:
        return any(st.name == name for st in self.stages)

    # ------------------------------------------------------------ reading
    def bytes_by_class(self) -> dict[str, int]:
        """``dram_read_<class>`` / ``dram_write_<class>`` totals."""
        out: dict[str, int] = {}
        for st in self.stages:
            if st.read_bytes:
                k = f"dram_read_{st.cls}"
                out[k] = out.get(k, 0) + st.read_bytes
            if st.write_bytes:
                k = f"dram_write_{st.cls}"
                out[k] = out.get(k, 0) + st.write_bytes
        return out

    def unit_cycles(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for st in self.stages:
            if st.unit:
                out[st.unit] = out.get(st.unit, 0.0) + st.cycles
        return out

    # ------------------------------------------------------------ scheduling
    def tasks(self) -> list[Task]:
        tasks = self._overlapped() if self.spec.request_overlap else self._lone()
        return self._refreshed(tasks)

    def summary(self, pools) -> tuple[Summary, int]:
        """``(summary, tasks)``: :func:`hwsim.engine.summarize` of :meth:`tasks` (with
        ``pools``) and how many there are, all that the ``analytical`` fidelity reads.

        Overlapped (the presets' mode), the tasks have a fixed shape (one per compute
        stage, one per channel a stream falls on, no dependencies), so the sums are
        taken from the stages without making a task, each in the order
        :func:`~hwsim.engine.summarize` takes them task by task: a float that several
        tasks add to is added to in task order (the same floats); the bytes are
        integers (each stream's exact count, as :func:`_fix_bytes` makes the tasks'
        shares add up); units, levels and actions are met in the tasks' order, the
        refreshes' action right after the first task's own (:meth:`_refreshed`). A
        test holds the result to the tasks' summary. Lone mode (tiles with
        dependencies) summarizes the tasks themselves."""
        s = self.spec
        if not s.request_overlap:
            tasks = self.tasks()
            return summarize(tasks, pools), len(tasks)
        cycle_s = s.cycle_s
        per_tx_cycles = s.dram_transaction_bytes / s.dram_channel_bytes_per_cycle
        tx_bytes = s.dram_transaction_bytes
        channels = s.dram_channels
        refresh = s.dram_refresh != "none" and s.dram_trefi_s > 0
        nbytes: dict[str, int] = {}
        actions: dict[str, float] = {}
        # the units' busy seconds: a compute unit's (its one bound: _bound), each
        # channel's and the fetchers' (bound "memory"); ``order``: the units and the pool
        # in the order the tasks first meet them (the summary's ties go to the first).
        # A stream's channel tasks start at the channel after the last one the stream
        # before it ended on, the first at channel 0, so the channels are met 0, 1, ...
        units: dict[str, float] = {}
        hbm = [0.0] * channels
        met = 0  # channels met so far (0 .. met - 1)
        pool = 0.0
        pool_key = None  # ("pool", FETCH_POOL) once a read is met
        order: list = []
        path = 0.0  # the critical path: the longest task (none waits for another)
        count = 0
        offset = 0
        for st in self.stages:
            acts = st.actions
            if st.unit:
                if not (st.cycles > 0 or acts):
                    continue
                d = st.cycles * cycle_s
                for a, v in acts.items():
                    actions[a] = actions.get(a, 0.0) + v
                unit = st.unit
                got = units.get(unit)
                if got is None:
                    order.append(unit)
                    got = 0.0
                units[unit] = got + d
                if d > path:
                    path = d
                count += 1
            else:
                read = st.read_bytes
                n_bytes = read or st.write_bytes
                tx = math.ceil(n_bytes / tx_bytes)
                # channel_split's tasks: from channel ``offset`` on, the first ``extra``
                # with base + 1 transactions, the others base (none where base is 0)
                base, extra = divmod(tx, channels)
                way = "dram_read" if read else "dram_write"
                nbytes[way] = nbytes.get(way, 0) + n_bytes
                key = f"{way}_{st.cls}"
                nbytes[key] = nbytes.get(key, 0) + n_bytes
                # each task's share of the actions, added one task after another (the
                # same floats: reduce adds left to right, as the tasks' sum does)
                s_more = (base + 1) / tx
                s_base = base / tx
                rest = channels - extra if base else 0
                for a, v in acts.items():
                    x = actions.get(a, 0.0)
                    if extra:
                        x = reduce(add, repeat(v * s_more, extra), x)
                    if rest:
                        x = reduce(add, repeat(v * s_base, rest), x)
                    actions[a] = x
                d_more = (base + 1) * per_tx_cycles * cycle_s * st.slowdown
                d_base = base * per_tx_cycles * cycle_s * st.slowdown
                o = offset % channels
                tasks = channels if base else extra
                if met < channels:  # the channels this stream meets first (from o = met)
                    first = (o + tasks) if o + tasks <= channels else channels
                    if read and pool_key is None:  # (the pool after the first read's unit)
                        pool_key = ("pool", FETCH_POOL)
                        order += (range(met, met + 1), pool_key, range(met + 1, first))
                    else:
                        order.append(range(met, first))
                    met = first
                if read and pool_key is None:  # (its first channel met before)
                    pool_key = ("pool", FETCH_POOL)
                    order.append(pool_key)
                # each channel's task (channels o, o + 1, ... around): extra of d_more,
                # then rest of d_base
                adds = [d_more] * extra + [d_base] * rest + [0.0] * (channels - tasks)
                if o:
                    adds = adds[channels - o:] + adds[:channels - o]
                hbm = list(map(add, hbm, adds))
                if read:
                    if extra:
                        pool = reduce(add, repeat(d_more, extra), pool)
                    if rest:
                        pool = reduce(add, repeat(d_base, rest), pool)
                d = d_more if extra else d_base
                if d > path:
                    path = d
                count += tasks
                offset += tx
            if refresh and count and "dram_refresh_bank" not in actions:
                actions["dram_refresh_bank"] = 0.0  # (its place: after the first task's)
        acc = Accumulator()
        if not count:
            return acc.summary(pools), 0
        # The busy units, in their order, but of the channels only the first of the
        # busiest: the others change neither the largest busy time nor the first
        # resource to reach it, all that the summary reads of them (its latency, its
        # work, its bound; no task waits, so no unit has a head), and a dozen more
        # entries cost a third of the summary.
        busy = acc.busy
        top = max(hbm)
        top_c = hbm.index(top)
        for key in order:
            if type(key) is range:  # (channels, met in ascending order)
                if top_c in key:
                    busy[f"hbm{top_c}"] = [top, {"memory": top}]
            elif type(key) is tuple:
                busy[key] = [pool, {"memory": pool}]
            else:
                v = units[key]
                busy[key] = [v, {_bound(key): v}]
        if refresh:  # (Work._refreshed: over the op's time alone, span_s)
            span = path
            for v in units.values():
                if v > span:
                    span = v
            if top > span:
                span = top
            banks = s.dram_channels * s.dram_pseudo_channels * s.dram_bank_groups \
                * s.dram_banks_per_group
            n = span * banks / s.dram_trefi_s
            if n > 0:
                actions["dram_refresh_bank"] = 0.0 + n
            else:
                del actions["dram_refresh_bank"]
        acc.nbytes = nbytes
        acc.actions = actions
        acc.finish = [path]
        acc.count = count
        return acc.summary(pools), count

    def _refreshed(self, tasks: list[Task]) -> list[Task]:
        """``tasks`` with the HBM's refreshes while they run (action
        ``dram_refresh_bank``, on the first task): every bank of every pseudo-channel
        once per ``tREFI``, busy or not, over the op's time alone (:func:`span_s`)."""
        s = self.spec
        if s.dram_refresh == "none" or s.dram_trefi_s <= 0 or not tasks:
            return tasks
        banks = s.dram_channels * s.dram_pseudo_channels * s.dram_bank_groups \
            * s.dram_banks_per_group
        n = span_s(tasks) * banks / s.dram_trefi_s
        if n <= 0:
            return tasks
        first = tasks[0]
        tasks[0] = first._replace(actions={**first.actions, "dram_refresh_bank": n})
        return tasks

    def channel_split(self, nbytes: int, offset: int) -> list[tuple[int, int]]:
        """(channel, transactions) of a stream starting at channel ``offset``."""
        s = self.spec
        tx = math.ceil(nbytes / s.dram_transaction_bytes)
        base, extra = divmod(tx, s.dram_channels)
        out = []
        for i in range(s.dram_channels):
            n = base + (1 if i < extra else 0)
            if n:
                out.append(((offset + i) % s.dram_channels, n))
        return out

    def _stream_tasks(self, st: Stage, nbytes: int, offset: int, deps: tuple[int, ...],
                      tasks: list[Task]) -> None:
        """Append one task per HBM channel the stream's transactions fall on."""
        s = self.spec
        per_tx_cycles = s.dram_transaction_bytes / s.dram_channel_bytes_per_cycle
        split = self.channel_split(nbytes, offset)
        total_tx = sum(n for _, n in split)
        out = []
        for ch, n in split:
            share = n / total_tx
            b = int(round(nbytes * share))
            if st.read_bytes:
                nb = {"dram_read": b, f"dram_read_{st.cls}": b}
            else:
                nb = {"dram_write": b, f"dram_write_{st.cls}": b}
            acts = {a: v * share for a, v in st.actions.items()}
            out.append(Task(f"hbm{ch}", n * per_tx_cycles * s.cycle_s * st.slowdown, nb, acts,
                            deps,
                            "memory", FETCH_POOL if st.read_bytes else "",
                            f"{self.label}:{st.name} {st.cls} {b} B"))
        tasks.extend(out)

    def _overlapped(self) -> list[Task]:
        s = self.spec
        tasks: list[Task] = []
        offset = 0
        for st in self.stages:
            if st.unit:
                if st.cycles > 0 or st.actions:
                    tasks.append(Task(st.unit, st.cycles * s.cycle_s, {}, dict(st.actions), (),
                                      _bound(st.unit), "", f"{self.label}:{st.name}"))
            else:
                nbytes = st.read_bytes or st.write_bytes
                self._stream_tasks(st, nbytes, offset, (), tasks)
                offset += math.ceil(nbytes / s.dram_transaction_bytes)
        return _fix_bytes(tasks, self)

    def _lone(self) -> list[Task]:
        s = self.spec
        tasks: list[Task] = []
        tiles: dict[str, list[list[int]]] = {}  # stage -> per tile, its task indices
        offset = 0
        latency_idx: int | None = None
        for st in self.stages:
            streaming = bool(st.streams_from)
            n_tiles = LONE_TILES if (streaming or _feeds_stream(self, st)) else 1
            per_tile: list[list[int]] = []
            whole = tuple(i for name in st.after for tile in tiles.get(name, [])
                          for i in tile)
            if not st.unit:
                nbytes = st.read_bytes or st.write_bytes
                deps_base = whole
                if st.read_bytes and latency_idx is None:
                    tasks.append(Task("hbm.latency", s.dram_latency_cycles * s.cycle_s, {}, {},
                                      (), "latency", "", f"{self.label}: DRAM latency"))
                    latency_idx = len(tasks) - 1
                if st.read_bytes:
                    deps_base = deps_base + (latency_idx,)
                chunks = _split_bytes(nbytes, n_tiles, s.dram_transaction_bytes)
                for i, b in enumerate(chunks):
                    deps = deps_base + _stream_deps(st, tiles, i, len(chunks))
                    start = len(tasks)
                    part = Stage(st.name, "", 0.0, 0, st.after, st.streams_from,
                                 {a: v * b / nbytes for a, v in st.actions.items()}, st.cls,
                                 b if st.read_bytes else 0, b if st.write_bytes else 0,
                                 st.slowdown)
                    self._stream_tasks(part, b, offset, deps, tasks)
                    offset += math.ceil(b / s.dram_transaction_bytes)
                    per_tile.append(list(range(start, len(tasks))))
            else:
                if st.cycles <= 0 and not st.actions and not st.depth:
                    continue
                for i in range(n_tiles):
                    deps = whole + _stream_deps(st, tiles, i, n_tiles)
                    cyc = st.cycles / n_tiles + (st.depth if i == n_tiles - 1 else 0)
                    acts = {a: v / n_tiles for a, v in st.actions.items()}
                    tasks.append(Task(st.unit, cyc * s.cycle_s, {}, acts, deps,
                                      _bound(st.unit), "", f"{self.label}:{st.name}"
                                      + (f" {i + 1}/{n_tiles}" if n_tiles > 1 else "")))
                    per_tile.append([len(tasks) - 1])
            tiles[st.name] = per_tile
        return _fix_bytes(tasks, self)


_COSTS: dict[int, tuple[SpattenSpec, dict[tuple[Gather, bool], DramCost]]] = {}


def dram_cost(spec: SpattenSpec, pattern: Gather, write: bool = False) -> DramCost:
    """:func:`hwsim.dram.gather_cost` on the spec's HBM (a read, or a ``write``:
    its read/write turnarounds), kept per spec and pattern (a
    model's ops repeat the same few patterns; the spec object is the key, as
    :func:`hwsim.targets.resolve` gives one object per spec, and is held so that its
    id is not reused)."""
    entry = _COSTS.get(id(spec))
    if entry is None or entry[0] is not spec:
        if len(_COSTS) >= 64:
            _COSTS.clear()
        entry = _COSTS[id(spec)] = (spec, {})
    costs = entry[1]
    key = (pattern, write)
    cost = costs.get(key)
    if cost is None:
        if len(costs) >= 65536:
            costs.clear()
        cost = costs[key] = gather_cost(spec.dram_geometry, spec.dram_timing, pattern, write)
    return cost


def span_s(tasks: list[Task]) -> float:
    """An op's time with its units to itself: the longer of its longest dependency
    chain and its busiest unit's work (the engine's schedule is never shorter)."""
    finish: list[float] = []
    busy: dict[str, float] = {}
    for t in tasks:
        finish.append(max((finish[d] for d in t.deps), default=0.0) + t.duration_s)
        busy[t.unit] = busy.get(t.unit, 0.0) + t.duration_s
    return max(max(finish, default=0.0), max(busy.values(), default=0.0))


def _bound(unit: str) -> str:
    return "onchip" if unit == "mover" else "compute"


def _feeds_stream(work: Work, st: Stage) -> bool:
    return any(st.name in other.streams_from for other in work.stages)


def _stream_deps(st: Stage, tiles: dict[str, list[list[int]]], i: int,
                 n: int) -> tuple[int, ...]:
    """Tile ``i`` of ``n`` waits for the matching tile of each stage it streams from."""
    out: list[int] = []
    for name in st.streams_from:
        src = tiles.get(name)
        if src:  # every source tile up to the matching one
            upto = ((i + 1) * len(src) - 1) // n
            for tile in src[:upto + 1]:
                out.extend(tile)
    return tuple(out)


def _split_bytes(nbytes: int, n: int, tx: int) -> list[int]:
    total_tx = math.ceil(nbytes / tx)
    n = max(1, min(n, total_tx))
    base, extra = divmod(total_tx, n)
    parts = [(base + (1 if i < extra else 0)) * tx for i in range(n)]
    parts[-1] -= sum(parts) - nbytes  # the stream's own byte count is exact
    return [p for p in parts if p > 0]


def _fix_bytes(tasks: list[Task], work: Work) -> list[Task]:
    """Make the per-channel byte shares add up exactly to each stream's bytes."""
    want = {"dram_read": 0, "dram_write": 0}
    for k, v in work.bytes_by_class().items():
        want[k] = v
        want["dram_read" if k.startswith("dram_read") else "dram_write"] += v
    have: dict[str, int] = {}
    last: dict[str, int] = {}
    for i, t in enumerate(tasks):
        for k, v in t.bytes.items():
            have[k] = have.get(k, 0) + v
            last[k] = i
    fixes: dict[int, dict[str, int]] = {}
    for k, v in want.items():
        if v != have.get(k, 0) and k in last:
            fixes.setdefault(last[k], {})[k] = v - have[k]
    if not fixes:
        return tasks
    out = list(tasks)
    for i, delta in fixes.items():
        t = out[i]
        nb = dict(t.bytes)
        for k, d in delta.items():
            nb[k] = nb.get(k, 0) + d
        out[i] = Task(t.unit, t.duration_s, nb, t.actions, t.deps, t.bound, t.pool, t.label)
    return out
