"""hwsim.dram: the closed form of a gather's DRAM time against a command-level schedule of
the same requests, and the invariants every DRAM model must keep."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.dram import (
    DramGeometry,
    DramTiming,
    Gather,
    decode,
    gather_addresses,
    gather_cost,
    simulate_requests,
)

NS = 1e-9
# SpAtten's HBM2: 16 channels of 32 B per 1 GHz cycle, Ramulator 2's HBM2_8Gb organization
# (2 pseudo-channels, 4 bank groups of 4 banks, 1 KB rows) and HBM2_2Gbps timing (tCK 1 ns)
HBM2 = DramGeometry(channels=16, pseudo_channels=2, bank_groups=4, banks_per_group=4,
                    row_bytes=1024, transaction_bytes=32, channel_bytes_per_s=32e9)
RAMULATOR = DramTiming(burst_s=2 * NS, trcd_s=7 * NS, trp_s=7 * NS, tras_s=17 * NS,
                       trc_s=19 * NS, trrds_s=2 * NS, trrdl_s=3 * NS, tfaw_s=15 * NS,
                       tcl_s=7 * NS, tccdl_s=2 * NS, trtp_s=3 * NS)
# a vendor part's slower array (DRAMSys configs/memspec/HBM2.json, tCK 1 ns)
DRAMSYS = DramTiming(burst_s=2 * NS, trcd_s=12 * NS, trp_s=14 * NS, tras_s=28 * NS,
                     trc_s=42 * NS, trrds_s=4 * NS, trrdl_s=6 * NS, tfaw_s=16 * NS,
                     tcl_s=17 * NS, tccdl_s=3 * NS, trtp_s=5 * NS)


def test_mapping_is_channel_then_column_then_pseudo_channel_bank_group_bank_row():
    """RoBaRaCoCh below the crossbar's 32-byte channel interleave (SpAtten RTL + Ramulator 2)."""
    assert decode(HBM2, 0) == (0, 0, 0, 0, 0)
    assert decode(HBM2, 32) == (1, 0, 0, 0, 0)  # next transaction: next channel
    assert decode(HBM2, 16 * 32) == (0, 0, 0, 0, 0)  # next column of the same row
    row_group = 16 * 1024  # one 1 KB row in every channel
    assert decode(HBM2, row_group) == (0, 1, 0, 0, 0)  # then the other pseudo-channel
    assert decode(HBM2, 2 * row_group) == (0, 0, 1, 0, 0)  # then a bank group
    assert decode(HBM2, 8 * row_group) == (0, 0, 0, 1, 0)  # then a bank
    assert decode(HBM2, 32 * row_group) == (0, 0, 0, 0, 1)  # then the row


@pytest.mark.parametrize("timing", [RAMULATOR, DRAMSYS], ids=["ramulator", "dramsys"])
@pytest.mark.parametrize("record_bytes,records", [(32, 65536), (96, 32768), (256, 16384)])
@pytest.mark.parametrize("density", [1.0, 0.5, 0.2, 0.05, 0.02])
def test_closed_form_matches_the_command_schedule(timing, record_bytes, records, density):
    """Token rows of 32 B (4-bit keys), 96 B (SpAtten's fused 6-bit pair) and 256 B (fp32),
    2-4 MB of stored rows, kept at random: the closed form's time is within 15 % of an exact
    command-level schedule (seeded choice of the kept rows; the busiest channel's time), and
    its activations within 3 %. A stream is at peak in both."""
    pattern = Gather(records, int(records * density), record_bytes)
    cost = gather_cost(HBM2, timing, pattern)
    runs = [simulate_requests(HBM2, timing, gather_addresses(pattern, 32, seed=seed))
            for seed in range(3)]
    time_s = sum(r[0] for r in runs) / len(runs)
    acts = sum(r[1] for r in runs) / len(runs)
    assert cost.time_s == pytest.approx(time_s, rel=0.15)
    assert cost.activations == pytest.approx(acts, rel=0.05)
    assert all(cost.transactions == a + h for _, a, h in runs)
    if density == 1.0:
        assert cost.activations == records * record_bytes / 1024  # one per 1 KB row
        assert time_s / cost.bus_s == pytest.approx(cost.slowdown, rel=0.01)
        # a row's columns share a bank group: at tCCD_L = 3 ns > the 2 ns burst (DRAMSys)
        # a stream runs at 2/3 of the bus; at Ramulator's tCCD_L = 2 ns at the bus's peak
        assert cost.slowdown == pytest.approx(max(1.0, 1 + 31 / 32 * (timing.tccdl_s / NS - 2)
                                                  / 2))


def test_scattered_small_rows_are_rationed_by_activations():
    """At 0.5 % of 32-byte rows kept almost every burst opens a row, and four ACTs per
    tFAW (15 ns) per pseudo-channel cap it below the bus's one burst per 2 ns."""
    cost = gather_cost(HBM2, RAMULATOR, Gather(1 << 20, 5243, 32))
    assert cost.bound == "activate"
    assert cost.activations > 0.9 * cost.transactions and cost.row_hits < 0.1 * cost.transactions
    assert cost.slowdown > 1.5


def test_zero_requests_cost_zero():
    for pattern in (Gather(0, 0, 32), Gather(1000, 0, 32), Gather(1000, 10, 0)):
        cost = gather_cost(HBM2, RAMULATOR, pattern)
        assert (cost.time_s, cost.transactions, cost.activations, cost.row_hits) == (0, 0, 0, 0)
    assert simulate_requests(HBM2, RAMULATOR, []) == (0.0, 0, 0)
    assert Gather.stream(0, 32).kept == 0


patterns = st.builds(lambda n, share, rb: (n, share, rb),
                     st.integers(1, 200_000), st.floats(0.0, 1.0),
                     st.sampled_from([16, 32, 48, 64, 96, 128, 256, 1024, 4096]))


def _gather(n, share, rb):
    return Gather(n, max(1, round(n * share)), rb)


@settings(max_examples=300, deadline=None)
@given(patterns)
def test_never_faster_than_peak_bandwidth(p):
    g = _gather(*p)
    cost = gather_cost(HBM2, RAMULATOR, g)
    assert cost.time_s >= g.kept * g.record_bytes / HBM2.peak_bytes_per_s * (1 - 1e-12)
    assert cost.slowdown >= 1.0


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 1 << 24))
def test_a_sequential_stream_runs_at_peak(nbytes):
    cost = gather_cost(HBM2, RAMULATOR, Gather.stream(nbytes, 32))
    assert cost.slowdown == pytest.approx(1.0)
    assert cost.bound == "bus"


@settings(max_examples=300, deadline=None)
@given(patterns, st.floats(0.0, 1.0))
def test_more_scattered_is_never_faster_per_byte(p, lower):
    """Of the same stored rows, keeping fewer never makes a byte cheaper."""
    n, share, rb = p
    many = _gather(n, share, rb)
    few = Gather(n, max(1, round(many.kept * lower)), rb)
    t_many = gather_cost(HBM2, RAMULATOR, many).time_s / many.kept
    t_few = gather_cost(HBM2, RAMULATOR, few).time_s / few.kept
    assert t_few >= t_many * (1 - 1e-9)


@settings(max_examples=300, deadline=None)
@given(patterns, st.sampled_from(["channels", "bank_groups", "banks_per_group"]),
       st.integers(0, 4))
def test_more_channels_or_banks_are_never_slower(p, what, log2):
    """(Pseudo-channels are not "more": they split one channel's bus, so a lone burst
    takes longer on each.)"""
    g = _gather(*p)
    small = dataclasses.replace(HBM2, **{what: 1 << log2})
    big = dataclasses.replace(HBM2, **{what: 2 << log2})
    assert gather_cost(big, RAMULATOR, g).time_s <= \
        gather_cost(small, RAMULATOR, g).time_s * (1 + 1e-9)


def test_slower_array_timings_cost_more_when_scattered_and_nothing_when_streaming():
    """The array timings (tRCD, tRP, tRAS, tRC, tRRD, tFAW) slow a gather, not a stream."""
    slow = dataclasses.replace(DRAMSYS, tccdl_s=RAMULATOR.tccdl_s)
    scattered, stream = Gather(65536, 1311, 32), Gather(65536, 65536, 32)
    assert gather_cost(HBM2, slow, scattered).time_s > \
        gather_cost(HBM2, RAMULATOR, scattered).time_s
    assert gather_cost(HBM2, slow, stream).time_s == gather_cost(HBM2, RAMULATOR, stream).time_s
