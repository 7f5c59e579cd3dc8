"""The cluster's port onto the ring carries L3 hits as well as DRAM lines
(hwsim/accelerators/armv8/memory.py, ``l3_rates``; ``Machine.l3_rate``).

What must hold:

- the evidence is in the measurements: four lmbench chasers on the four cores of one
  Kunpeng 920 cluster are about as slow over sets that stay in the L3 as from DRAM,
  and four on four clusters are as fast as one alone;
- one thread alone, or threads each alone on their cluster, read the L3 at the
  core's own rate, bit for bit, whatever the port;
- more port bandwidth never makes a thread or an op slower;
- spreading threads over the clusters is never slower than packing them, for an
  L3-bound op as for the rates themselves;
- a port never carries more than its bandwidth (or one core's own L3 rate, if
  larger), and the op's whole path (estimate, events, analytical summary, terms)
  charges the same L3 rate, to the L3 hits only: lines on their way to or from DRAM
  queue at the port in the DRAM lane;
- off (``cluster_port_l3: false``), nothing changes; the Kunpeng 920 presets ship
  it on.
"""

from __future__ import annotations

import csv
import dataclasses

import pytest

from hwsim.accelerators.armv8 import TARGET
from hwsim.accelerators.armv8.ecm import Plan, Step, emit, estimate, l3_s, summarize_plan
from hwsim.accelerators.armv8.memory import l3_rates
from hwsim.accelerators.armv8.spec import Machine
from hwsim.calibrate import data_path
from hwsim.engine import summarize
from hwsim.targets import resolve

KP = "armv8-kunpeng920"
LMBENCH = "kunpeng920/kp920_lat_mem_rd.csv"  # openeuler-mirror/wayca-scheduler tools/log*


def spec(**over):
    """The Kunpeng 920 with the port carrying L3 hits (``cluster_port_l3``)."""
    return dataclasses.replace(resolve(KP).spec, **{"cluster_port_l3": True, **over})


def machine(placement="spread", **over):
    return Machine(spec(**over)).for_run(0, placement)


def l3_bound(threads):
    """An op whose threads only read from the L3 (a tile each, no DRAM, no barrier)."""
    return Plan("test", threads, [Step("read", l3_bytes=4e6)], "fp32")


def lmbench_l3(command_part):
    path = data_path(LMBENCH)
    if path is None:
        pytest.skip(f"{LMBENCH} absent (hwsim calibrate's data folder)")
    out = []
    with path.open() as f:
        for r in csv.DictReader(f):
            if (r["command"].split(" /")[0].endswith(command_part)
                    and 3.0 <= float(r["working_set_MB"]) <= 4.0):
                out.append(float(r["latency_ns"]))
    assert out, command_part
    return sum(out) / len(out)


def test_the_measurements_show_the_port_carries_l3_hits():
    packed, spread, alone = (lmbench_l3("--physcpubind=0-3"),
                             lmbench_l3("--physcpubind=0,4,8,12"),
                             lmbench_l3("--physcpubind=0 --membind=0"))
    assert packed > 3 * alone  # four on one cluster: the port, not the L3
    assert abs(spread - alone) < 0.05 * alone  # four on four clusters: as one alone
    # and the port carries about what it carries from DRAM (12.8 ns a line each)
    assert abs(packed - 12.8) < 0.05 * 12.8


def test_the_model_packs_and_spreads_as_the_measurements_do():
    m = Machine(spec())
    topo = m.topology
    packed = l3_rates(m, topo.pinned([0, 1, 2, 3], [0]))
    spread = l3_rates(m, topo.pinned([0, 4, 8, 12], [0]))
    assert all(r == m.l3_bw for r in spread)
    assert all(r < m.l3_bw / 3 for r in packed)
    # the four share the port: what they read together is its bandwidth
    assert sum(packed) == pytest.approx(max(m.spec.cluster_bw_bytes_per_s, m.l3_bw))


@pytest.mark.parametrize("port", [1e9, 5e9, 20.2e9, 100e9])
@pytest.mark.parametrize("placement", ["spread", "compact", "interleave"])
def test_a_thread_alone_reads_at_its_own_rate(port, placement):
    m = machine(placement, cluster_bw_bytes_per_s=port)
    assert m.l3_rate(1) == m.l3_bw
    if placement != "compact":  # 16 threads spread: one a cluster on the two dies
        assert m.l3_rate(16) == m.l3_bw
    plan = l3_bound(1)
    assert estimate(plan, m) == estimate(plan, machine(placement, cluster_bw_bytes_per_s=0.0))


@pytest.mark.parametrize("placement", ["spread", "compact", "interleave"])
def test_more_port_bandwidth_is_never_slower(placement):
    ports = [1e9, 5e9, 10e9, 20.2e9, 40e9, 200e9]
    for threads in (1, 2, 3, 4, 5, 8, 17, 32, 33, 64):
        rates = [machine(placement, cluster_bw_bytes_per_s=p).l3_rate(threads) for p in ports]
        assert rates == sorted(rates), (threads, rates)
        times = [estimate(l3_bound(threads), machine(placement, cluster_bw_bytes_per_s=p))
                 for p in ports]
        assert times == sorted(times, reverse=True), (threads, times)


def test_spreading_over_the_clusters_is_never_slower_than_packing():
    for threads in range(1, 65):
        packed, spread = machine("compact"), machine("spread")
        assert spread.l3_rate(threads) >= packed.l3_rate(threads), threads
        assert (estimate(l3_bound(threads), spread)
                <= estimate(l3_bound(threads), packed)), threads


def test_a_port_never_carries_more_than_its_bandwidth():
    m = Machine(spec())
    cap = max(m.spec.cluster_bw_bytes_per_s, m.l3_bw)
    for threads in (2, 3, 4, 7, 16, 40, 64):
        for placement in ("spread", "compact"):
            placed = m.topology.place(threads, placement)
            per: dict[int, float] = {}
            for th, r in zip(placed, l3_rates(m, placed)):
                per[th.cluster] = per.get(th.cluster, 0.0) + r
            assert max(per.values()) <= cap * (1 + 1e-12)


def test_presets_without_a_port_are_unchanged():
    for name in ("armv8-graviton2", "armv8-thunderx2", "armv8-ft2000plus"):
        m = Machine(dataclasses.replace(resolve(name).spec, cluster_port_l3=True))
        assert all(m.l3_rate(t) == m.l3_bw for t in (1, 4, 16, m.spec.cores))
    # the Kunpeng 920 ships the port on: one thread a cluster (16 spread over the 16
    # clusters) reads at its own rate, four a cluster at a quarter of the port
    m = Machine(resolve(KP).spec)
    assert m.spec.cluster_port_l3
    assert all(m.l3_rate(t) == m.l3_bw for t in (1, 4, 16))
    assert m.l3_rate(64) == pytest.approx(m.spec.cluster_bw_bytes_per_s / 4)
    assert m.l3_rate(64) < m.l3_bw
    # and off, every thread reads at its own rate
    m = Machine(dataclasses.replace(resolve(KP).spec, cluster_port_l3=False))
    assert all(m.l3_rate(t) == m.l3_bw for t in (1, 4, 16, 64))


def test_every_path_charges_the_op_the_same_l3_rate():
    """The event run, the analytical summary, the planner's estimate and the terms a
    report shows all take the port's rate: 64 threads, four a cluster, read the L3
    at a quarter of the port each."""
    m = machine("spread")
    plan = l3_bound(64)
    rate = m.l3_rate(64)
    assert rate == pytest.approx(max(m.spec.cluster_bw_bytes_per_s, m.l3_bw) / 4)
    tasks = emit(plan, m, "op")
    tiles = [t for t in tasks if t.unit.startswith("core")]
    assert tiles and all(t.duration_s == 4e6 / rate for t in tiles)
    assert TARGET._terms(plan, m)["l3_s"] == 4e6 / rate
    pools = TARGET.pools(m.spec)
    got, _ = summarize_plan(plan, m, pools)
    assert repr(got) == repr(summarize(tasks, pools, tails=True))
    assert estimate(plan, m) == pytest.approx(got.analytical_latency_s, rel=1e-12)


def test_only_the_l3_hits_share_the_port():
    """A step's ``l3_bytes`` also counts the lines crossing the L3 from DRAM; those keep
    the core's own rate in the in-cache term (their port queueing is the DRAM lane's)."""
    m = machine("spread")
    shared = m.l3_rate(64)
    streamed = Step("stream")
    streamed.read("dram", 1e6)
    assert l3_s(streamed, m.l3_bw, shared) == streamed.l3_bytes / m.l3_bw
    mixed = Step("mixed")
    mixed.read("dram", 1e6)
    mixed.read("l3", 3e5)
    mixed.write("l3", 1e5)
    assert l3_s(mixed, m.l3_bw, shared) == pytest.approx(4e5 / shared + 1e6 / m.l3_bw)
    assert l3_s(mixed, m.l3_bw, m.l3_bw) == mixed.l3_bytes / m.l3_bw


def test_the_switch_reaches_a_simulation():
    """The shipped port (``cluster_port_l3: true``) slows a 64-thread GEMM whose plan
    reads L3 hits (four threads a cluster share each port) against
    ``--set target.cluster_port_l3=false``; one core's is unchanged."""
    import hwsim  # noqa: PLC0415

    wl = {"ops": [{"kind": "matmul", "m": 16, "n": 4096, "k": 4096}], "dtype": "fp32",
          "tiling": {"gemm": "openblas"}}
    on, off = ["target.cluster_port_l3=true"], ["target.cluster_port_l3=false"]
    assert (hwsim.simulate(wl, KP, sets=on).totals["latency_s"]
            > hwsim.simulate(wl, KP, sets=off).totals["latency_s"])
    assert (repr(hwsim.simulate(wl, KP, sets=on).totals)
            == repr(hwsim.simulate(wl, KP).totals))
    one = ["target.cores=1"]
    assert (repr(hwsim.simulate(wl, KP, sets=[*one, *on]).totals)
            == repr(hwsim.simulate(wl, KP, sets=one).totals))
