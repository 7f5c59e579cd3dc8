"""DRAM banks, rows and timing: what an access pattern costs beyond its bytes.

A DRAM channel is not a pipe of fixed bandwidth. Each channel (here an HBM2
channel) is split into *pseudo-channels*, each with its own data bus, and each
pseudo-channel into *bank groups* of *banks*. A bank holds one *row* (a page,
1 KB in HBM2) open in its row buffer; reading a 32-byte column of the open row
is a *row hit* and costs only its burst on the data bus. Reading any other row
is a *miss*: the bank must be precharged (``tRP``, not before ``tRAS`` after it
was opened) and the new row activated (``ACT``; the column read may follow
``tRCD`` later), and one bank cannot activate twice within ``tRC``. Activations
are rationed per pseudo-channel too: two ``ACT`` commands at least ``tRRD``
apart (``tRRD_S`` between bank groups, ``tRRD_L`` within one), and at most four
in any ``tFAW`` window (the charge pumps' limit).

A sequential stream reads every column of a row before moving on, so one
activation serves ``row_bytes / transaction_bytes`` bursts (32 for 1 KB rows
and 32 B transactions), is hidden behind the data of the rows before it, and
the stream runs at the data buses' peak. A *gather* of a few records scattered
through an array reads a column here and there: almost every burst needs its
own activation, and the ``tRRD``/``tFAW`` ration caps the rate below the bus.
That is why a token-pruned key fetch is slower per byte than the dense one.

**Address mapping (RoBaRaCoCh).** A byte address splits, from the low bits,
into the byte within a transaction, the channel (every transaction to the next
channel, as SpAtten's crossbar interleaves on address bits 5 and up), the
column within a row (``Co``), the pseudo-channel (``Ra``: Ramulator treats a
pseudo-channel as a rank), the bank group and bank (``Ba``) and the row
(``Ro``). This is Ramulator 2's ``RoBaRaCoCh`` linear mapper (CMU-SAFARI/
ramulator2, ``src/addr_mapper/impl/linear_mappers.cpp``) applied inside each
channel, below the crossbar's channel bits, as SpAtten's RTL simulation wires
it (mit-han-lab/spatten, ``ramulator_config.yaml``: ``AddrMapper: RoBaRaCoCh``;
``SpAtten.scala``: ``Crossbar`` selects the channel with address bits 5-8 and
passes ``addr >> 9 << 5`` on). Consecutive rows of one channel therefore
alternate pseudo-channels, then bank groups, then banks.

**The access pattern, compactly** (:class:`Gather`): ``kept`` records of
``record_bytes`` each, chosen among ``records`` laid end to end from an
aligned base (a token's key or value row at ``base + index x record_bytes``,
as SpAtten's fetchers address them), visited in address order. ``kept ==
records`` is a sequential stream. Which records are kept is not known to a
cost model (it is the pruning's decision at run time), so the closed form
takes them as a uniformly random subset: each record kept with probability
``p = kept / records``. Records smaller than a transaction are grouped by
transaction, one read if any of its records is kept.

**The closed form** (:func:`gather_cost`). Per channel, the array's
transactions fill rows of ``T = row_bytes / transaction_bytes`` columns; a
record of ``R`` bytes puts ``r = max(1, R / (channels x transaction_bytes))``
transactions in one channel, so a row holds ``m = T / r`` distinct records
(fewer than ``T`` when a record spans several columns of one channel). A row
is activated when any of its ``m`` records is kept, with probability ``1 -
(1 - p)^m``; a partial row at the array's end the same with its own count.
Bursts are ``kept x R / transaction_bytes``; every burst that does not open a
row is a row hit. All pseudo-channels of all channels work in parallel, so
the pattern takes the time of the busiest one, the largest of three rates:

- the data bus: bursts x ``burst_s`` (a transaction's beats on one
  pseudo-channel: ``transaction_bytes x pseudo_channels`` over the channel's
  bytes per second), and for the row hits the excess of ``tCCD_L`` over the
  burst (a row's columns are in one bank group);
- the activation ration: activations after the first x ``max(tRRD, tFAW / 4)``;
- the banks: activations after the first, per bank, x ``tRC``.

The interleave spreads a stream evenly, but a random subset of records falls
unevenly on the ``L = channels x pseudo_channels`` lanes: each count (bursts,
activations) of the busiest lane is its mean plus ``sqrt(2 ln L)`` standard
deviations of the binomial count (the expected largest of ``L`` near-normal
counts), which matters for small fetches (a head's few hundred keys) and
vanishes for a stream. The first access's latency (``tRCD`` + ``tCL``) is not
part of this time: a caller that pipelines requests hides it, one that does
not adds it once (SpAtten's lone mode does).

What the closed form leaves out, checked by :func:`simulate_requests` (an
exact command-level schedule of the same requests, used by the tests to hold
the closed form within a stated tolerance): the controller is taken to see
enough requests to keep every pseudo-channel and bank busy (an FR-FCFS queue
deep enough to activate ahead), refresh (``tRFC`` every ``tREFI``: 350 ns of
every 3.9 us for 8 Gb dies at Ramulator's HBM2 values, up to 9 % of the time,
in neither), and read/write turnaround (a stream is all reads or all writes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class DramGeometry:
    """Channels, pseudo-channels, banks and rows of a DRAM, and its transaction size."""

    channels: int
    pseudo_channels: int
    bank_groups: int
    banks_per_group: int
    row_bytes: int  # one pseudo-channel's row (page)
    transaction_bytes: int  # one burst, and the channel-interleaving granularity
    channel_bytes_per_s: float  # one channel's peak (all its pseudo-channels)

    @property
    def columns(self) -> int:
        """Transactions in one row (``T``)."""
        return max(1, self.row_bytes // self.transaction_bytes)

    @property
    def banks(self) -> int:
        """Banks of one pseudo-channel."""
        return self.bank_groups * self.banks_per_group

    @property
    def peak_bytes_per_s(self) -> float:
        return self.channels * self.channel_bytes_per_s


@dataclass(frozen=True)
class DramTiming:
    """The bank and activation timings, in seconds (JEDEC names, ``t`` prefix)."""

    burst_s: float  # a transaction's beats on one pseudo-channel's data bus
    trcd_s: float  # ACT to column read
    trp_s: float  # precharge to ACT
    tras_s: float  # ACT to precharge
    trc_s: float  # ACT to ACT, same bank
    trrds_s: float  # ACT to ACT, different bank groups
    trrdl_s: float  # ACT to ACT, same bank group
    tfaw_s: float  # four ACTs per window
    tcl_s: float  # column read to data
    tccdl_s: float = 0.0  # column to column, same bank group (0: the burst)
    trtp_s: float = 0.0  # read to precharge

    def act_interval_s(self, geometry: DramGeometry) -> float:
        """Sustained time per activation in one pseudo-channel: ``tRRD`` (short when
        consecutive rows lie in different bank groups, as the mapping places them)
        or a quarter of ``tFAW``, whichever is longer."""
        trrd = self.trrds_s if geometry.bank_groups > 1 else self.trrdl_s
        return max(trrd, self.tfaw_s / 4.0)


@dataclass(frozen=True)
class Gather:
    """``kept`` records of ``record_bytes`` among ``records`` laid end to end."""

    records: float
    kept: float
    record_bytes: float

    @classmethod
    def stream(cls, nbytes: float, transaction_bytes: int) -> "Gather":
        """A sequential stream of ``nbytes`` (every transaction read)."""
        tx = math.ceil(nbytes / transaction_bytes) if nbytes > 0 else 0
        return cls(tx, tx, transaction_bytes)

    @property
    def density(self) -> float:
        return min(1.0, self.kept / self.records) if self.records > 0 else 0.0


@dataclass(frozen=True)
class DramCost:
    """What a pattern costs: time (one channel's, all channels working), bursts,
    activations (row misses) and row hits over all channels, and the limit."""

    time_s: float
    bus_s: float  # the data buses alone: the pattern's bytes at peak bandwidth
    transactions: float
    activations: float
    row_hits: float
    bound: str  # "bus", "activate" or "bank"

    @property
    def slowdown(self) -> float:
        """Time over the peak-bandwidth time (1 for a pattern at peak)."""
        return self.time_s / self.bus_s if self.bus_s > 0 else 1.0


ZERO = DramCost(0.0, 0.0, 0.0, 0.0, 0.0, "bus")


def gather_cost(geometry: DramGeometry, timing: DramTiming, pattern: Gather) -> DramCost:
    """The closed-form cost of ``pattern`` (see the module docstring)."""
    g, t = geometry, timing
    x = g.transaction_bytes
    if pattern.kept <= 0 or pattern.records <= 0 or pattern.record_bytes <= 0:
        return ZERO
    if pattern.record_bytes < x:  # several records share a transaction: read it if any is
        per = x / pattern.record_bytes
        grouped = pattern.records / per
        pattern = Gather(grouped, grouped * _touched(pattern.density, per), x)
    p = pattern.density
    r_tx = pattern.record_bytes / x  # transactions per record
    bursts = pattern.kept * r_tx
    # one channel: transactions of the whole array, and of one record
    per_chan = max(1.0, r_tx / g.channels)  # a record's transactions in a channel it touches
    array_tx = pattern.records * r_tx / g.channels  # the array's transactions in a channel
    cols = g.columns
    full, rest = divmod(array_tx, cols)
    acts = full * _touched(p, cols / per_chan) + (_touched(p, rest / per_chan) if rest > 0
                                                    else 0.0)
    if per_chan > cols:  # a record spans several rows of a channel: each one it covers
        acts = pattern.kept * min(g.channels, r_tx) / g.channels * per_chan / cols
    acts = min(acts, bursts / g.channels)  # never more activations than bursts
    pch = g.pseudo_channels
    lanes = g.channels * pch
    spread = math.sqrt(2.0 * math.log(lanes)) if lanes > 1 else 0.0
    # the busiest pseudo-channel: the mean plus the expected excess of the largest of
    # `lanes` counts with the pattern's variance (records kept independently)
    rec_lane = pattern.records * min(1.0, r_tx / g.channels) / pch  # records per lane
    bursts_lane = bursts / lanes + spread * per_chan * math.sqrt(rec_lane * p * (1 - p))
    rows_lane = array_tx / cols / pch
    q = acts / max(1e-300, full + (1.0 if rest > 0 else 0.0)) if per_chan <= cols else 1.0
    acts_lane = acts / pch + spread * math.sqrt(max(0.0, rows_lane * q * (1 - q)))
    # bursts after the first of a row visit read the same bank group: tCCD_L apart
    hits_lane = max(0.0, bursts_lane - acts_lane)
    bus = bursts_lane * t.burst_s + hits_lane * max(0.0, t.tccdl_s - t.burst_s)
    act = max(0.0, acts_lane - 1.0) * t.act_interval_s(g)
    bank = max(0.0, acts_lane / g.banks - 1.0) * t.trc_s
    time = max(bus, act, bank)
    bus_peak = bursts / lanes * t.burst_s
    bound = "bus" if time == bus else ("activate" if time == act else "bank")
    total_acts = acts * g.channels
    return DramCost(time, bus_peak, bursts, total_acts, max(0.0, bursts - total_acts), bound)


def _touched(p: float, m: float) -> float:
    """Probability that a row of ``m`` records holds a kept one (``p`` each)."""
    if m <= 0:
        return 0.0
    if p >= 1.0:
        return 1.0
    return 1.0 - (1.0 - p) ** m


# ---------------------------------------------------------------------------- reference
def decode(geometry: DramGeometry, addr: int) -> tuple[int, int, int, int, int]:
    """(channel, pseudo-channel, bank group, bank, row) of a byte address under the
    crossbar's channel interleave and RoBaRaCoCh inside the channel."""
    g = geometry
    tx = addr // g.transaction_bytes
    ch, local = tx % g.channels, tx // g.channels
    rest = local // g.columns  # past the column bits
    pc, rest = rest % g.pseudo_channels, rest // g.pseudo_channels
    bg, rest = rest % g.bank_groups, rest // g.bank_groups
    ba, row = rest % g.banks_per_group, rest // g.banks_per_group
    return ch, pc, bg, ba, row


def simulate_requests(geometry: DramGeometry, timing: DramTiming,
                      addresses) -> tuple[float, int, int]:
    """Schedule read transactions at ``addresses`` (in order) command by command.

    Open-page policy; per pseudo-channel, activations in request order within
    ``tRRD`` and ``tFAW``; per bank, ``tRC``, ``tRAS``, ``tRP``, ``tRTP`` and
    ``tRCD``; column reads in request order on the pseudo-channel's data bus
    (``burst_s`` apart, ``tCCD_L`` within a bank group). Activations may run
    ahead of the column reads (an FR-FCFS controller with a deep queue).
    Returns (the last channel's time from the first command to its last data
    beat less the first access's ``tRCD + tCL``, activations, row hits): the
    quantity :func:`gather_cost` gives in closed form. A plain loop, for tests
    and small checks: thousands of requests, not millions.
    """
    g, t = geometry, timing
    act_gap_same = t.trrdl_s
    act_gap_other = t.trrds_s
    bank_state: dict[tuple, list] = {}  # (ch, pc, bg, ba) -> [row, act_t, last_cas_t]
    pch_state: dict[tuple, dict] = {}
    chan_end: dict[int, float] = {}
    acts = hits = 0
    for addr in addresses:
        ch, pc, bg, ba, row = decode(g, int(addr))
        ps = pch_state.setdefault((ch, pc), {"acts": [], "last_act": -math.inf,
                                             "last_act_bg": -1, "bus": 0.0,
                                             "cas_bg": {}})
        bs = bank_state.setdefault((ch, pc, bg, ba), [None, -math.inf, -math.inf])
        if bs[0] == row:
            hits += 1
            ready = bs[1] + t.trcd_s
        else:
            acts += 1
            earliest = 0.0
            if bs[0] is not None:  # precharge the open row first
                pre = max(bs[1] + t.tras_s, bs[2] + t.trtp_s)
                earliest = pre + t.trp_s
            earliest = max(earliest, bs[1] + t.trc_s)
            gap = act_gap_same if ps["last_act_bg"] == bg else act_gap_other
            earliest = max(earliest, ps["last_act"] + gap)
            if len(ps["acts"]) >= 4:
                earliest = max(earliest, ps["acts"][-4] + t.tfaw_s)
            act_t = earliest
            ps["acts"].append(act_t)
            if len(ps["acts"]) > 4:
                ps["acts"].pop(0)
            ps["last_act"], ps["last_act_bg"] = act_t, bg
            bs[0], bs[1] = row, act_t
            ready = act_t + t.trcd_s
        cas = max(ready, ps["bus"], ps["cas_bg"].get(bg, -math.inf) + max(t.tccdl_s,
                                                                           t.burst_s))
        ps["bus"] = cas + t.burst_s
        ps["cas_bg"][bg] = cas
        bs[2] = cas
        chan_end[ch] = max(chan_end.get(ch, 0.0), cas + t.burst_s)
    if not chan_end:
        return 0.0, 0, 0
    fill = t.trcd_s + t.burst_s  # the first access's activation and burst ...
    return max(0.0, max(chan_end.values()) - fill), acts, hits  # ... are latency, not rate


def gather_addresses(pattern: Gather, transaction_bytes: int, seed: int = 0) -> list[int]:
    """Transaction addresses of ``pattern`` with a seeded random choice of the kept
    records (sorted: fetched in address order), for :func:`simulate_requests`."""
    import numpy as np  # noqa: PLC0415

    n, k, rb = int(pattern.records), int(pattern.kept), int(pattern.record_bytes)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(n, size=k, replace=False)) if k < n else np.arange(n)
    per = -(-rb // transaction_bytes)
    offs = np.arange(per, dtype=np.int64) * transaction_bytes
    return (chosen[:, None].astype(np.int64) * rb + offs[None, :]).ravel().tolist()
