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

The closed form is checked by :func:`simulate_requests` (an exact
command-level schedule of the same requests, used by the tests to hold the
closed form within a stated tolerance). Four more things, in both:

**Refresh** (``timing.refresh = "all-bank"``). JEDEC JESD235 (HBM2) has every
bank refreshed once per ``tREFI``; an all-bank ``REF`` blocks the
pseudo-channel's banks for ``tRFC`` after they are precharged. Ramulator 2's
``HBM2_2Gbps`` set (``src/dram/impl/HBM2.cpp``): ``nREFI`` = 3900 cycles of 1
ns, ``tRFC`` 350 ns for 8 Gb dies (160 / 260 / 450 ns for 2 / 4 / 16 Gb). The
closed form stretches a pattern's time by ``tREFI / (tREFI - lost)``, ``lost =
tRTP + tRP + tRFC + tRCD`` per refresh (drain, refresh, reopen): the expectation
over where the refreshes fall (a pattern shorter than ``tREFI`` meets one or
none); each refresh closes the row a pattern hits, one more activation per
pseudo-channel.

**Per-bank refresh** (``timing.refresh = "per-bank"``). JESD235's ``REFSB``
refreshes one bank; Ramulator 2's ``PerBank`` manager sends them to the banks in
turn (bank fastest, then bank group), one every ``tREFI / banks`` per
pseudo-channel, so every bank still once per ``tREFI``; HBM2_2Gbps: ``nRFCSB``
160, ``nRREFD`` 8 (a ``REFsb`` to an ``ACT`` of another bank). The refreshing
bank is blocked for ``tRFC_SB``; the controller serves the other banks'
requests meanwhile (the schedule gives a request behind a refresh the first free
bus slot after it, and later requests to other banks the slots before), so a
pattern loses time where nothing else is queued: (a) at its end, its last
requests to a bank refreshed meanwhile wait out the drain, ``tRFC_SB`` and the
reopening (``lost_sb = tRTP + tRP + tRFC_SB + tRCD``); the closed form gives that
apart (``DramCost.tail_s``: ``lost_sb`` times the chance that one of the lanes'
refreshes meets such a bank, ``1 - exp(-time x lanes / tREFI)``), a latency like
the first access's that a caller streaming pattern after pattern hides; (b) with
``n`` requests in flight, the
window's rows (``max(1, n / run)`` of them) are in few banks, and a refresh of
one of them stalls the share ``min(1, run / n)`` of the window
(:func:`_bank_refresh_stretch`). (b) takes refreshes to meet rows at random; a
stream's rows (bank group fastest under RoBaRaCoCh) meet Ramulator's round-robin
order (bank fastest) less often: its schedule loses 2 % where a shuffled order
loses 12-14 % and the closed form 11-19 %.

**Read/write turnaround** (``gather_cost(..., write=True)``). On a
pseudo-channel a write follows a read ``tCL + burst + tRTW - tCWL`` after it and
a read a write ``tCWL + burst + tWTR`` (Ramulator 2's HBM2 constraints), so a
read-write-read round trip costs ``tCL + tRTW + tWTR_S`` beyond the bursts. A
controller drains writes in batches (Ramulator 2's generic controller: a write
buffer of 32, into write mode above 80 % and back below 20 %: about 20 writes);
a write stream is charged one round trip per ``write_batch`` of its bursts in a
pseudo-channel. Reads carry none of it.

**Requests in flight** (``geometry.outstanding``). A channel that holds at most
``n`` requests (SpAtten's RTL: 16 per channel) takes them in address order, so
its window of ``n`` consecutive requests lies in few rows: with RoBaRaCoCh a
stream's 16 are 16 columns of one 1 KB row, all in one pseudo-channel, and the
other idles until the window reaches the next row. And a request holds its
slot for its latency (``tCL`` + burst, plus ``tRP + tRCD`` while its row
opens), so by Little's law a pseudo-channel holding ``k`` of them serves at
most ``k / latency``. The closed form (:func:`_window_time`) averages the
window's rate over where in a row it starts and over which pseudo-channels
the rows fall in; it is the time of the busiest channel's requests at that
rate, a fourth term beside the bus, the activations and the banks. What it
leaves out: the FR-FCFS queue is taken to issue in address order.
"""

from __future__ import annotations

import bisect
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
    outstanding: int = 0  # requests a channel holds in flight (0: unlimited)
    write_batch: int = 20  # writes a channel drains per read/write turnaround

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
    refresh: str = "none"  # "all-bank" (REFab every tREFI), "per-bank" (REFsb) or "none"
    trefi_s: float = 0.0  # refresh interval (every bank once per tREFI; 0: none)
    trfc_s: float = 0.0  # all-bank refresh: the pseudo-channel's banks blocked
    tcwl_s: float = 0.0  # write command to data
    twtrs_s: float = 0.0  # write data to read command, other bank group
    twtrl_s: float = 0.0  # write data to read command, same bank group
    trtw_s: float = 0.0  # read data to write data: the bus's turnaround bubble
    trfcsb_s: float = 0.0  # per-bank refresh: its bank blocked
    trrefd_s: float = 0.0  # per-bank refresh to an ACT of another bank

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
    bound: str  # "bus", "activate", "bank" or "outstanding"
    tail_s: float = 0.0  # after the last burst: requests waiting out a per-bank refresh

    @property
    def slowdown(self) -> float:
        """Time over the peak-bandwidth time (1 for a pattern at peak)."""
        return self.time_s / self.bus_s if self.bus_s > 0 else 1.0


ZERO = DramCost(0.0, 0.0, 0.0, 0.0, 0.0, "bus")


def gather_cost(geometry: DramGeometry, timing: DramTiming, pattern: Gather,
                write: bool = False) -> DramCost:
    """The closed-form cost of reading (or, ``write``, writing) ``pattern`` (see the
    module docstring)."""
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
    if write and g.write_batch > 0:  # each drained batch: read -> write -> read
        bus += bursts_lane / g.write_batch * (t.tcl_s + t.trtw_s + t.twtrs_s)
    act = max(0.0, acts_lane - 1.0) * t.act_interval_s(g)
    bank = max(0.0, acts_lane / g.banks - 1.0) * t.trc_s
    terms = {"bus": bus, "activate": act, "bank": bank}
    if g.outstanding > 0:
        # the busiest channel's requests, at most `outstanding` in flight: a window of
        # that many consecutive requests feeds the pseudo-channels its rows lie in, each
        # serving min(its service rate, its requests / their latency) (Little's law)
        bursts_ch, acts_ch = bursts_lane * pch, min(bursts_lane, acts_lane) * pch
        miss = acts_ch / bursts_ch if bursts_ch > 0 else 0.0
        service = t.burst_s + (1.0 - miss) * max(0.0, t.tccdl_s - t.burst_s)
        # requests per activated row: a full row's kept records (a partial row at the
        # array's end is one row more, not shorter rows everywhere), at most the channel's
        m_row = cols / per_chan
        run = min(bursts_ch, m_row * p / _touched(p, m_row) * per_chan if per_chan <= cols
                  else float(cols))
        # a row is opened (tRP + tRCD) when its first request enters; the requests of
        # its run that enter meanwhile (about one per service time) wait for it too
        # (without tRP where the bank is closed: its first row, and after each refresh)
        shut = g.banks * (1.0 + (max(terms.values()) / t.trefi_s
                                 if t.refresh == "all-bank" and t.trefi_s > 0 else 0.0))
        opening = t.trcd_s + t.trp_s * max(0.0, 1.0 - shut / max(1e-300, acts_lane))
        waiting = min(run, 1.0 + opening / service)
        latency = ((t.tcwl_s if write else t.tcl_s) + t.burst_s
                   + waiting * (opening - (waiting - 1.0) * service / 2.0) / run)
        unlimited = max(terms.values())  # the pattern's time with any number in flight
        terms["outstanding"] = bursts_ch * _window_time(g.outstanding, pch, run, min(1.0, q),
                                                        service, latency)
        if t.refresh == "per-bank" and t.trefi_s > 0:
            terms["outstanding"] *= _bank_refresh_stretch(
                g, t, run, unlimited / max(1e-300, bursts_ch))
    bound = max(terms, key=terms.get)
    time = terms[bound]
    refreshes = 0.0
    if t.refresh == "all-bank" and t.trefi_s > 0:
        # every tREFI the pseudo-channel drains (tRTP, tRP), refreshes (tRFC) and opens
        # its row again (tRCD): the expectation over where the refreshes fall
        lost = t.trfc_s + t.trp_s + t.trtp_s + t.trcd_s
        if lost >= t.trefi_s:
            raise ValueError(f"tRFC {t.trfc_s:g} s leaves nothing of tREFI {t.trefi_s:g} s")
        time *= t.trefi_s / (t.trefi_s - lost)
        refreshes = time / t.trefi_s
    tail = 0.0
    if t.refresh == "per-bank" and t.trefi_s > 0:
        # a refreshing bank blocks only its own requests; the controller serves the
        # other banks', so beyond the window's stalls (above) the pattern loses time only
        # at its end, when its last requests to a bank refreshed meanwhile wait out the
        # drain, tRFC_SB and the reopening: a tail, like the first access's latency,
        # that a caller streaming pattern after pattern hides. The chance that one of
        # the lanes' refreshes (banks per tREFI, to its banks in turn) meets such a
        # bank: about one per tREFI of the pattern's time per lane
        refreshes = 1.0 - math.exp(-time * lanes / t.trefi_s)
        tail = refreshes * (t.trfcsb_s + t.trp_s + t.trtp_s + t.trcd_s)
        refreshes /= lanes  # that refresh closes the row one lane was hitting
    bus_peak = bursts / lanes * t.burst_s
    total_acts = acts * g.channels
    # a refresh closes the row a pattern was hitting: it is opened again
    total_acts += refreshes * lanes * max(0.0, 1.0 - total_acts / bursts)
    total_acts = min(total_acts, bursts)
    return DramCost(time, bus_peak, bursts, total_acts, max(0.0, bursts - total_acts), bound,
                    tail)


def _window_time(n: int, lanes: int, run: float, touched: float, service: float,
                 latency: float) -> float:
    """Mean time per request of a channel holding ``n`` requests in flight, taken in
    address order. They come in runs of ``run`` per activated row, a run in one of
    ``lanes`` pseudo-channels; the next run is in another pseudo-channel always for
    adjacent rows (``touched``, the share of rows activated, = 1) and with
    probability ``1 - 1/lanes`` for rows far apart. A pseudo-channel holding ``k``
    of the window's requests serves ``min(1 / service, k / latency)`` per second (its
    bus, or Little's law: each request holds its slot for its latency), and each one
    that leaves lets the next in, so the window slides over the runs. Averaged over
    where in a run the window starts (exact for the runs; the pseudo-channels' rates
    are averaged over which one each run lands in before they are inverted)."""
    def rate(k: float) -> float:
        return min(1.0 / service, max(0.0, k) / latency)

    if lanes <= 1:
        return 1.0 / rate(n)
    u = 1.0 - touched
    stay = touched * u ** (lanes - 1) / (1.0 - u ** lanes) if 0 < touched < 1 else (
        0.0 if touched >= 1 else 1.0 / lanes)
    run = max(1.0, run)
    points = min(8, max(1, round(run)))  # where in a run the window starts
    total = 0.0
    for i in range(points):
        first = run - (i + 0.5) * run / points if points > 1 else run  # left in its run
        segments = []
        left = float(n)
        size = min(left, max(first, 1e-9))
        while left > 1e-9:
            segments.append(size)
            left -= size
            size = min(left, run)
        # lane A's share of the window over which lane each run lands in: (in A?, count)
        dist = {(True, segments[0]): 1.0 / lanes, (False, 0.0): 1.0 - 1.0 / lanes}
        for seg in segments[1:]:
            nxt: dict[tuple[bool, float], float] = {}
            for (in_a, k), w in dist.items():
                to_a = stay if in_a else (1.0 - stay) / (lanes - 1)
                for now_a, pw in ((True, to_a), (False, 1.0 - to_a)):
                    if pw > 0:
                        key = (now_a, k + seg if now_a else k)
                        nxt[key] = nxt.get(key, 0.0) + w * pw
            dist = nxt
        if lanes == 2:  # the other lane holds the rest: the time per request exactly
            total += sum(w / (rate(k) + rate(n - k)) for (_, k), w in dist.items())
        else:  # the lanes' rates averaged before they are inverted
            total += 1.0 / (lanes * sum(w * rate(k) for (_, k), w in dist.items()))
    return total / points


def _bank_refresh_stretch(g: DramGeometry, t: DramTiming, run: float,
                          per_request: float) -> float:
    """How much per-bank refreshes stretch a channel that holds ``g.outstanding``
    requests in address order, in runs of ``run`` per row, at most one per
    ``per_request`` (the pattern's other limits: bus, activations, banks).

    The window spans ``w = max(1, n / run)`` rows, each at least ``D = run x
    per_request`` long (so that a wider window, which passes its rows no faster than
    that, never meets more refreshes per row: more in flight is never slower).
    A refresh of a bank (``channels' pseudo-channels x banks`` of them per tREFI, the
    banks in turn) meets the window when one of its rows is in it as the refresh
    starts (``w`` rows): that row's requests wait out the drain, ``tRFC_SB`` and the
    reopening (``L``); or when a row enters while it lasts (``R / D`` rows): they wait
    the rest of it, ``R / 2`` on average. Rows fall on the ``pseudo-channels x banks``
    banks of the channel at random, so each refresh meets ``(w + R / D) / banks`` of
    them. Meanwhile the window runs on its other slots: the blocked row holds the
    share ``run / n`` of them (all when a row fills the window), and a window bound by
    its requests' latency (Little's law) loses that share of its rate. The time lost
    per tREFI stretches the window's term."""
    n = float(g.outstanding)
    lost = t.trfcsb_s + t.trp_s + t.trtp_s + t.trcd_s
    rows = n / run if run < n else 1.0
    dwell = max(1e-300, run * per_request)
    arriving = t.trfcsb_s / dwell
    met = min(float(g.pseudo_channels * g.banks), rows + arriving)

    share = min(1.0, run / n)
    stall = (rows * lost + arriving * t.trfcsb_s / 2.0) / (rows + arriving)
    loss = min(0.9 * t.trefi_s, met * share * stall)
    return t.trefi_s / (t.trefi_s - loss)


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


def simulate_requests(geometry: DramGeometry, timing: DramTiming, addresses, writes=None,
                      refresh_offset_s: float = 0.0) -> tuple[float, int, int]:
    """Schedule transactions at ``addresses`` (in order) command by command.

    Open-page policy; per pseudo-channel, activations in request order within
    ``tRRD`` and ``tFAW``; per bank, ``tRC``, ``tRAS``, ``tRP``, ``tRTP`` and
    ``tRCD``; column commands in request order on the pseudo-channel's data bus
    (``burst_s`` apart, ``tCCD_L`` within a bank group). ``writes`` (booleans,
    one per address; default all reads) makes some of them writes: a write after
    a read waits ``tCL + burst + tRTW - tCWL`` after it, a read after a write
    ``tCWL + burst + tWTR`` (``tWTR_L`` in the same bank group, ``tWTR_S``
    otherwise), on the same pseudo-channel (Ramulator 2's HBM2 constraints).

    **Outstanding requests** (``geometry.outstanding``, 0: unlimited): a channel
    accepts a request only while it holds fewer than that many; one leaves when
    its data has crossed the bus (a read ``tCL + burst`` after its column
    command, a write ``tCWL + burst``), and the next one of that channel enters
    then. Nothing of a request (not its precharge, activation or column
    command) is issued before it enters. Unlimited, activations may run ahead of
    the column reads (an FR-FCFS controller with a deep queue).

    **Refresh** (``timing.refresh == "all-bank"``): every pseudo-channel gets a
    ``REFab`` every ``tREFI``, the first at ``refresh_offset_s`` (as Ramulator's
    refresh manager sends them, never postponed): its open banks are precharged
    first (not before ``tRAS``, ``tRTP``; then ``tRP``; and ``tRC`` after the last
    activation), and none activates within ``tRFC`` after it, so every row is
    opened again. A refresh falls before a request when it is due by the time
    the request could start (its entry or its pseudo-channel's bus, whichever is
    later). ``"per-bank"``: a ``REFsb`` every ``tREFI / banks`` to the banks in
    turn (:func:`_refresh_bank_due`); a request to a bank still refreshing when
    the bus is free (or to the row opened after it, before it is ready) is
    *deferred*: it takes the first free bus slot once its row is open, its
    activation is not rationed against the others, and the requests after it go
    on in order in the slots around it, holding their places in flight as any.

    Returns (the last channel's time from the first command to its last data
    beat less the first access's ``tRCD`` and burst, activations, row hits):
    the quantity :func:`gather_cost` gives in closed form (its ``time_s + tail_s``).
    A plain loop, for tests and small checks: thousands of requests, not millions.
    """
    import heapq  # noqa: PLC0415

    g, t = geometry, timing
    refresh = t.refresh if t.trefi_s > 0 else "none"
    ref_every = {"all-bank": t.trefi_s, "per-bank": t.trefi_s / g.banks}.get(refresh,
                                                                             math.inf)
    # (ch, pc, bg, ba) -> [row, act_t, last_cas_t, free_t, deferred]: free_t, when a refresh
    # lets it activate again; deferred, its row was opened behind a per-bank refresh
    bank_state: dict[tuple, list] = {}
    pch_state: dict[tuple, dict] = {}
    inflight: dict[int, list[float]] = {}  # channel -> completion times (a heap)
    chan_end: dict[int, float] = {}
    acts = hits = 0
    kinds = iter(writes) if writes is not None else None
    for addr in addresses:
        is_write = bool(next(kinds)) if kinds is not None else False
        ch, pc, bg, ba, row = decode(g, int(addr))
        entry = 0.0
        if g.outstanding > 0:
            q = inflight.setdefault(ch, [])
            if len(q) >= g.outstanding:
                entry = heapq.heappop(q)
        ps = pch_state.get((ch, pc))
        if ps is None:
            ps = pch_state[(ch, pc)] = {"acts": [], "last_act": -math.inf, "last_act_bg": -1,
                                        "bus": 0.0, "cas_bg": {}, "last_cas": -math.inf,
                                        "last_write": False, "last_cas_bg": -1,
                                        "next_ref": refresh_offset_s % ref_every
                                        if ref_every < math.inf else math.inf,
                                        "act_block": -math.inf, "ref_bank": 0,
                                        "reserved": []}
        now = max(entry, ps["bus"])
        if refresh == "per-bank":
            _refresh_bank_due(g, t, ps, bank_state, ch, pc, now)
        else:
            _refresh_due(g, t, ps, bank_state, ch, pc, now)
        bs = bank_state.setdefault((ch, pc, bg, ba), _closed_bank())
        # behind a per-bank refresh (its bank still refreshing when the bus is free, or
        # its row opened after one and not yet ready): the controller serves the
        # pseudo-channel's other banks meanwhile and this request takes a later slot
        deferred = refresh == "per-bank" and (
            (bs[0] != row and bs[3] > now) or (bs[0] == row and bs[4]
                                                and bs[1] + t.trcd_s > now))
        if bs[0] == row:
            hits += 1
            ready = max(bs[1] + t.trcd_s, entry)
        else:
            acts += 1
            earliest = max(entry, bs[3], -math.inf if deferred else ps["act_block"])
            if bs[0] is not None:  # precharge the open row first
                pre = max(bs[1] + t.tras_s, bs[2] + t.trtp_s, entry)
                earliest = max(earliest, pre + t.trp_s)
            earliest = max(earliest, bs[1] + t.trc_s)
            if not deferred:  # a deferred activation is not rationed against the others
                gap = t.trrdl_s if ps["last_act_bg"] == bg else t.trrds_s
                earliest = max(earliest, ps["last_act"] + gap)
                if len(ps["acts"]) >= 4:
                    earliest = max(earliest, ps["acts"][-4] + t.tfaw_s)
                ps["acts"].append(earliest)
                if len(ps["acts"]) > 4:
                    ps["acts"].pop(0)
                ps["last_act"], ps["last_act_bg"] = earliest, bg
            act_t = earliest
            bs[0], bs[1] = row, act_t
            ready = act_t + t.trcd_s
        bs[4] = deferred
        reserved = ps["reserved"]
        if deferred:  # the first free slot of the bus at or after it is ready
            cas = _free_slot(reserved, ready, t.burst_s)
            bisect.insort(reserved, cas)
        else:
            cas = max(ready, ps["bus"],
                      ps["cas_bg"].get(bg, -math.inf) + max(t.tccdl_s, t.burst_s))
            if is_write != ps["last_write"] and ps["last_cas"] > -math.inf:
                if is_write:  # read -> write: the read's data leaves the bus first
                    cas = max(cas, ps["last_cas"] + t.tcl_s + t.burst_s + t.trtw_s - t.tcwl_s)
                else:  # write -> read: the write's data is in the array first
                    wtr = t.twtrl_s if ps["last_cas_bg"] == bg else t.twtrs_s
                    cas = max(cas, ps["last_cas"] + t.tcwl_s + t.burst_s + wtr)
            if reserved:
                cas = _free_slot(reserved, cas, t.burst_s)
                del reserved[:bisect.bisect_right(reserved, cas)]
            ps["bus"] = cas + t.burst_s
            ps["cas_bg"][bg] = cas
            ps["last_cas"], ps["last_write"], ps["last_cas_bg"] = cas, is_write, bg
        bs[2] = max(bs[2], cas)
        if g.outstanding > 0:
            heapq.heappush(inflight[ch], cas + (t.tcwl_s if is_write else t.tcl_s) + t.burst_s)
        chan_end[ch] = max(chan_end.get(ch, 0.0), cas + t.burst_s)
    if not chan_end:
        return 0.0, 0, 0
    fill = t.trcd_s + t.burst_s  # the first access's activation and burst ...
    return max(0.0, max(chan_end.values()) - fill), acts, hits  # ... are latency, not rate


def _closed_bank() -> list:
    return [None, -math.inf, -math.inf, -math.inf, False]


def _free_slot(reserved: list[float], t0: float, burst_s: float) -> float:
    """The first burst slot at or after ``t0`` that overlaps none of the ``reserved``
    bursts (sorted start times)."""
    i = bisect.bisect_left(reserved, t0 - burst_s)
    while i < len(reserved) and reserved[i] < t0 + burst_s:
        if reserved[i] > t0 - burst_s:
            t0 = reserved[i] + burst_s
        i += 1
    return t0


def _refresh_due(g: DramGeometry, t: DramTiming, ps: dict, bank_state: dict, ch: int,
                 pc: int, now: float) -> None:
    """Issue the all-bank refreshes of pseudo-channel (``ch``, ``pc``) due by ``now``."""
    while ps["next_ref"] <= now:
        due = ps["next_ref"]
        ps["next_ref"] += t.trefi_s
        ready = due
        for bg in range(g.bank_groups):
            for ba in range(g.banks_per_group):
                bs = bank_state.get((ch, pc, bg, ba))
                if bs is not None and bs[0] is not None:  # precharge it first
                    ready = max(ready, max(bs[1] + t.tras_s, bs[2] + t.trtp_s) + t.trp_s)
        ready = max(ready, ps["last_act"] + t.trc_s)  # Ramulator: ACT to REFab >= tRC
        done = ready + t.trfc_s
        for bg in range(g.bank_groups):
            for ba in range(g.banks_per_group):
                bs = bank_state.setdefault((ch, pc, bg, ba), _closed_bank())
                bs[0], bs[3] = None, done
        ps["act_block"] = max(ps["act_block"], done)


def _refresh_bank_due(g: DramGeometry, t: DramTiming, ps: dict, bank_state: dict, ch: int,
                      pc: int, now: float) -> None:
    """Issue the per-bank refreshes (``REFsb``) of pseudo-channel (``ch``, ``pc``) due
    by ``now``: one every ``tREFI / banks``, to its banks in turn (the bank fastest, then
    the bank group, as Ramulator 2's ``PerBank`` manager walks them), so that every bank
    is refreshed once per ``tREFI``. The bank is precharged first (not before ``tRAS``
    after its activation, ``tRTP`` after its last column command; then ``tRP``) and
    blocked for ``tRFC_SB``; the pseudo-channel's other banks activate no sooner than
    ``tRREFD`` after it (JESD235's REFSB-to-ACT of another bank, as Ramulator 2's HBM2
    constrains it), and nothing else waits."""
    while ps["next_ref"] <= now:
        due = ps["next_ref"]
        ps["next_ref"] += t.trefi_s / g.banks
        k = ps["ref_bank"]
        ps["ref_bank"] = (k + 1) % g.banks
        bs = bank_state.setdefault((ch, pc, k // g.banks_per_group, k % g.banks_per_group),
                                   _closed_bank())
        ready = max(due, bs[3], ps["last_act"] + t.trrds_s)
        if bs[0] is not None:  # precharge it first
            ready = max(ready, max(bs[1] + t.tras_s, bs[2] + t.trtp_s) + t.trp_s)
        bs[0], bs[3], bs[4] = None, ready + t.trfcsb_s, False
        ps["act_block"] = max(ps["act_block"], ready + t.trrefd_s)


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
