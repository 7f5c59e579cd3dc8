"""Two Kunpeng 920 sockets (preset ``armv8-kunpeng920-2s``): four NUMA nodes, the
Hydra socket link, and placement across the sockets (docs/targets/armv8.md, "DRAM").

What must hold:

- the machine is two one-socket presets side by side: the same core, per-node
  bandwidth and measured remote latencies, twice the channels, cores and TDP;
- a line from the other socket crosses the socket link, one server per direction
  between the two sockets (not one per pair of nodes): both dies of socket 0
  reading socket 1 share 90 GB/s, while socket 1 reading socket 0 at the same time
  has its own 90 GB/s;
- placement moves traffic across the sockets as documented: ``spread`` keeps
  pages local, ``interleave`` sends half of every thread's lines across the socket
  link, so one interleaved thread is slower on two sockets than on one (lmbench
  ``--interleave=0,1,2,3`` against ``0,1``);
- for the same thread count under ``spread`` or ``compact`` a second socket never
  makes an op slower (more nodes' channels, a larger last level, nothing lost).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_invariants import any_op, refused

import hwsim
from hwsim.accelerators.armv8 import TARGET
from hwsim.accelerators.armv8.memory import stream_rates
from hwsim.errors import InputError
from hwsim.targets import resolve
from hwsim.workload import workload_from_dict
from hwsim.workload.schema import Tiling

ONE, TWO = "armv8-kunpeng920", "armv8-kunpeng920-2s"


def machine(preset, placement="spread"):
    return TARGET.machine(resolve(preset).spec, Tiling(placement=placement))


def total(preset, placement, threads):
    return sum(machine(preset, placement).thread_rates(threads))


def test_two_sockets_are_two_one_socket_machines_joined_by_hydra():
    one, two = resolve(ONE).spec, resolve(TWO).spec
    assert (two.cores, two.numa_nodes, two.dies_per_socket) == (128, 4, 2)
    assert two.dram_channels == 2 * one.dram_channels
    assert two.power_limit_w == 2 * one.power_limit_w
    assert two.l3_bytes == 2 * one.l3_bytes
    m1, m2 = machine(ONE), machine(TWO)
    assert m2.topology.sockets == 2 and m1.topology.sockets == 1
    # a node (die) is the same on both: 4 channels x 2933 MT/s x 8 B x 0.75 = 70.4 GB/s
    assert m2.node_bw == pytest.approx(m1.node_bw) == pytest.approx(70.4e9, rel=1e-3)
    assert m2.topology.cores_per_node == m1.topology.cores_per_node == 32
    # three Hydra ports of 240 Gb/s: 90 GB/s between the two sockets
    assert two.socket_link_bw_bytes_per_s == pytest.approx(90e9)
    # the per-core numbers and measured latencies are the one-socket preset's
    for field in ("clock_hz", "core_lines_in_flight", "numa_latency_s", "cluster_bw_bytes_per_s",
                  "die_link_bw_bytes_per_s", "l1_bytes", "l2_bytes", "sgemm_kernel"):
        assert getattr(two, field) == getattr(one, field), field


def test_one_core_reading_the_other_socket_streams_at_the_measured_plateau():
    """Core 0 bound to node 2 (the other socket's first die): lmbench's 64 B-stride
    chase takes 13.61 ns a line (wayca-scheduler NUMA.1 log, membind=2); the
    calibration point of numa_latency_s[2], and one core is far from the link's
    bandwidth, so the two-socket machine gives what the one-socket calibration did."""
    m = machine(TWO)
    (rate,) = stream_rates(m, m.topology.pinned([0], [2]))
    assert 64 / rate == pytest.approx(13.54e-9, rel=0.002)
    assert 64 / rate == pytest.approx(13.61e-9, rel=0.01)


def test_the_socket_link_is_one_server_per_direction_between_the_sockets():
    m = machine(TWO)
    topo = m.topology
    socket0 = list(range(0, 64))    # nodes 0 and 1
    socket1 = list(range(64, 128))  # nodes 2 and 3
    link = resolve(TWO).spec.socket_link_bw_bytes_per_s
    # every core of socket 0 with its pages on socket 1: both dies' lines cross the
    # one link, which they fill (a server per pair of nodes would have let 2 x 2
    # pairs carry four times as much)
    away = sum(stream_rates(m, topo.pinned(socket0, [2, 3])))
    assert away <= link * (1 + 1e-9)
    assert away >= 0.97 * link
    # the same two halves of socket 0, each bound to one die of socket 1: still one link
    half = [th for c in socket0 for th in topo.pinned([c], [2 if c < 32 else 3])]
    assert sum(stream_rates(m, half)) == pytest.approx(away, rel=0.02)
    # both sockets reading each other at once: the lanes are full duplex, each
    # direction carries its own 90 GB/s
    both = stream_rates(m, topo.pinned(socket0, [2, 3]) + topo.pinned(socket1, [0, 1]))
    assert sum(both) == pytest.approx(2 * away, rel=1e-6)
    # and the link is what limits it: local pages give each socket its 140.8 GB/s
    local = sum(stream_rates(m, topo.place(128, "spread")))
    assert local > 2.5 * away


def test_placement_across_sockets_decides_remote_traffic_and_bandwidth():
    # spread: local pages on four nodes, up to the two sockets' 281.6 GB/s
    spread = [total(TWO, "spread", t) for t in (1, 16, 64, 128)]
    assert spread[0] == pytest.approx(64 / 5.09e-9, rel=0.01)
    # every core streaming: within 6 % of the channels' sustained bandwidth, never
    # past it (the controllers' interference wait grows without bound near it)
    assert 0.94 * 281.6e9 <= spread[-1] <= 281.6e9
    # compact fills socket 0 first: 64 threads draw one socket's bandwidth, the
    # second socket's channels only come with its cores
    assert total(TWO, "compact", 64) == pytest.approx(total(ONE, "compact", 64), rel=1e-12)
    assert total(TWO, "compact", 128) > 1.9 * total(TWO, "compact", 64)
    # interleave over four nodes: a quarter of each thread's lines local, a quarter
    # from the other die, half across the socket link, so one thread is slower than
    # on one socket (lmbench: 12.59 ns a line over nodes 0-3, 9.88 over 0-1)
    assert total(TWO, "interleave", 1) < total(ONE, "interleave", 1)
    m = machine(TWO, "interleave")
    (th,) = m.topology.place(1, "interleave")
    assert sorted(th.pages) == [(j, 0.25) for j in range(4)]
    # ... and never more than local pages give, at any thread count
    for t in (1, 8, 32, 64, 128):
        assert total(TWO, "interleave", t) <= total(TWO, "spread", t) * (1 + 1e-9), t
    # more threads never draw less, on any placement
    for placement in ("spread", "compact", "interleave"):
        last = 0.0
        for t in range(1, 129, 3):
            now = total(TWO, placement, t)
            assert now >= last * (1 - 1e-9), (placement, t)
            last = now


OPS = [
    {"kind": "elementwise", "fn": "copy", "elements": 1 << 24},
    {"kind": "matmul", "m": 1024, "n": 1024, "k": 1024},
    {"kind": "matmul", "m": 16, "n": 4096, "k": 4096},
    {"kind": "attention", "heads": 32, "kv_heads": 8, "head_dim": 128, "q_len": 1,
     "kv_len": 16384},
    {"kind": "softmax", "rows": 4096, "cols": 4096},
]


def run(op, preset, threads, placement):
    wl = workload_from_dict({"name": "t", "dtype": "fp32", "ops": [op],
                             "tiling": {"threads": threads, "placement": placement}}, "<t>")
    return hwsim.simulate(wl, preset).totals


@pytest.mark.parametrize("op", OPS, ids=lambda o: o["kind"])
def test_a_second_socket_is_never_slower_for_the_same_threads(op):
    """Same threads, spread or compact: the second socket adds channels and last
    level and takes nothing away (the per-die numbers are the same)."""
    for placement, counts in (("spread", (1, 8, 32, 64)), ("compact", (8, 64))):
        for threads in counts:
            one = run(op, ONE, threads, placement)
            two = run(op, TWO, threads, placement)
            assert two["latency_s"] <= one["latency_s"] * (1 + 1e-9), (placement, threads)
            # the same work moves the same bytes to and from DRAM ...
            assert two["flops"] == one["flops"]
    # ... and a bandwidth-bound copy on 32 spread threads gains from the second
    # socket's channels (8 threads a node instead of 16)
    if op["kind"] == "elementwise":
        assert (run(op, TWO, 32, "spread")["latency_s"]
                < 0.9 * run(op, ONE, 32, "spread")["latency_s"])
    # every core of both sockets is not slower than every core of one
    assert run(op, TWO, 0, "spread")["latency_s"] <= run(op, ONE, 0, "spread")["latency_s"] * (
        1 + 1e-9)


def test_interleaved_pages_on_two_sockets_cost_one_thread_more():
    """The physics the property above excludes: one thread whose pages are spread
    over four nodes waits on the far socket for half its lines."""
    op = {"kind": "elementwise", "fn": "copy", "elements": 1 << 24}
    assert run(op, TWO, 1, "interleave")["latency_s"] > run(op, ONE, 1, "interleave")["latency_s"]


def test_validate_counts_a_check_the_two_presets_share_once():
    """Both Kunpeng 920 presets reproduce the same lmbench runs with the same constants:
    `hwsim validate`'s microbenchmark line counts each such check once, so adding the
    two-socket preset does not double the checks (a check whose result differs between
    presets still counts for each)."""
    from dataclasses import replace

    from hwsim.calibrate import CalibrationCase, PresetRun
    from hwsim.validate.runner import microbenchmark_summary

    def case(name, modelled, kind="check"):
        return CalibrationCase(name=name, target="armv8", preset=ONE,
                               parameter="core_lines_in_flight", x={"threads": 1},
                               measured=10e-9, unit="s", modelled=modelled, source="lmbench",
                               kind=kind)

    a = [case("a", 11e-9), case("b", 12e-9), case("c", 10e-9, "calibration")]
    b = [replace(c, preset=TWO) for c in a[:2]] + [replace(a[2], preset=TWO, modelled=9e-9)]
    line = microbenchmark_summary([PresetRun("armv8", ONE, a, [], []),
                                   PresetRun("armv8", TWO, b, [], [])])["armv8"]
    assert "over 2 checks" in line and "over 2 calibration points" in line


@settings(max_examples=80, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(op=any_op, threads=st.sampled_from([1, 2, 3, 8, 16, 24, 32, 64]),
       placement=st.sampled_from(["spread", "compact"]), dtype=st.sampled_from(["fp32", "fp16"]))
def test_property_a_second_socket_is_never_slower_for_the_same_threads(op, threads, placement,
                                                                         dtype):
    """Random ops of the invariant tests (tests/test_invariants.py): with the threads
    capped and placed alike, the two-socket machine is never slower than one socket."""
    def go(preset):
        wl = workload_from_dict({"name": "p", "dtype": dtype, "ops": [op],
                                 "tiling": {"threads": threads, "placement": placement}}, "<p>")
        try:
            return hwsim.simulate(wl, preset).totals
        except InputError as e:
            if refused(e):
                return None
            raise

    one = go(ONE)
    if one is None:
        return
    two = go(TWO)
    assert two["latency_s"] <= one["latency_s"] * (1 + 1e-9), (op, threads, placement)
