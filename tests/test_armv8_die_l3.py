"""The Kunpeng 920's L3 is one cache per die (``Machine.llc_for``,
hwsim/accelerators/armv8/spec.py), and its one-core rate and overlap come from lmbench.

What must hold:

- the measurements say so: one core's lmbench chase (pages local) leaves the L3
  between 16 and 24 MB, on a machine whose die holds 22.5 MiB of L3 and whose socket
  45 MiB (openeuler-mirror/wayca-scheduler ``tools/kp920.2P.6CCL``: 96 cores, four
  dies of six clusters; the logs behind kp920_lat_mem_rd.csv bind dies of 24 cores);
- a thread reaches its die's share: one thread, or threads on one die, one die's L3;
  threads spread evenly over the dies, all of them; the most crowded die sets it;
- machines of one node are unchanged (their L3 is the whole last level), and spreading
  threads over more dies never reaches less L3 than packing them;
- on two sockets, threads confined to one socket no longer reach the other's L3;
- a re-read block whose reuse fits two dies but not one comes partly from DRAM for a
  thread alone and from the L3 for threads spread over both dies;
- a strided walk's lines in the physically indexed L2 spread over its page colours
  (16 on TSV110's 512 KiB 8-way L2 with 4 KiB pages), never fewer sets than the
  virtual address would give;
- the one-chaser L3 row is the calibration point of ``l3_bytes_per_cycle``, and the
  L3 stream overlaps the L1/L2 transfers only where the spec says so and only for
  streams (a walk that crosses a page every access is demand misses, serial).
"""

from __future__ import annotations

import csv
import dataclasses

import pytest

from hwsim.accelerators.armv8.ecm import Step, times
from hwsim.accelerators.armv8.placement import reread, set_capacity_lines, sweep_hit
from hwsim.accelerators.armv8.spec import Machine
from hwsim.calibrate import data_path
from hwsim.targets import resolve

KP, KP2 = "armv8-kunpeng920", "armv8-kunpeng920-2s"
MiB = 2**20
LMBENCH = "kunpeng920/kp920_lat_mem_rd.csv"  # openeuler-mirror/wayca-scheduler tools/log*
# the measured machine (openeuler-mirror/wayca-scheduler@a4f5428
# tools/kp920.2P.6CCL/DUT_6CCL_8CCL_specs.pdf):
# 2 sockets, 4 dies of 24 cores (6 clusters of 4), "L3 cache: 22.5MB per Die (avg.
# 960KB per core)" = 24 x 960 KiB
MEASURED_DIE_L3 = 24 * 960 * 1024


def machine(preset=KP, placement="spread", **over):
    return Machine(dataclasses.replace(resolve(preset).spec, **over)).for_run(0, placement)


def one_core_curve():
    path = data_path(LMBENCH)
    if path is None:
        pytest.skip(f"{LMBENCH} absent (hwsim calibrate's data folder)")
    with path.open() as f:
        return {float(r["working_set_MB"]): float(r["latency_ns"]) for r in csv.DictReader(f)
                if r["command"].startswith("numactl --physcpubind=0 --membind=0 ")}


def test_one_core_leaves_the_l3_at_its_die_not_its_socket():
    lat = one_core_curve()
    l3 = sum(lat[w] for w in (3.0, 4.0)) / 2
    dram = sum(lat[w] for w in lat if w >= 96) / len([w for w in lat if w >= 96])
    mid = (l3 + dram) / 2
    inside = [w for w in lat if 1 <= w and lat[w] < mid]
    outside = [w for w in lat if 1 <= w and lat[w] >= mid]
    # the last working set still in the L3 and the first out of it (lmbench's MB: MiB)
    last_in, first_out = max(inside), min(outside)
    assert (last_in, first_out) == (16.0, 24.0)
    assert last_in * MiB <= MEASURED_DIE_L3 < first_out * MiB  # one die's L3
    assert 2 * MEASURED_DIE_L3 > 1.5 * first_out * MiB  # the socket's would hold 32 MB
    # the model: one thread of that machine reaches its die's L3, not the socket's
    spec = dataclasses.replace(resolve(KP).spec, cores=96, numa_nodes=4, dram_channels=16,
                               l3_bytes=4 * MEASURED_DIE_L3)
    m = Machine(spec).for_run(0, "spread")
    assert m.llc_for(1) == MEASURED_DIE_L3
    assert last_in * MiB <= m.llc_for(1) < first_out * MiB


@pytest.mark.parametrize("placement", ["spread", "compact", "interleave"])
def test_a_thread_reaches_its_dies_share(placement):
    m = machine(placement=placement)
    die = m.spec.l3_bytes / m.spec.numa_nodes
    assert die == 32 * MiB and m.llc_die_bytes == die
    assert m.llc_for(1) == die
    assert m.llc_for(64) == m.llc_bytes == 64 * MiB  # every core: every die, exactly
    if placement == "compact":  # one die up to 32 threads, then the most crowded one
        assert [m.llc_for(t) for t in (2, 16, 32)] == [die] * 3
        assert m.llc_for(33) == pytest.approx(die * 33 / 32)
    else:  # round-robin over the two dies
        assert m.llc_for(2) == m.llc_for(32) == 2 * die
        assert m.llc_for(3) == pytest.approx(die * 3 / 2)  # two on one die, one on the other


def test_one_node_machines_are_unchanged():
    for name in ("armv8-graviton2", "armv8-thunderx2", "armv8-ft2000plus"):
        for placement in ("spread", "compact", "interleave"):
            m = machine(name, placement)
            assert all(m.llc_for(t) == m.llc_bytes for t in (1, 2, 7, 16, m.spec.cores))


def test_spreading_over_the_dies_never_reaches_less_l3():
    for preset in (KP, KP2):
        spread, packed = machine(preset, "spread"), machine(preset, "compact")
        for t in range(1, spread.spec.cores + 1):
            assert spread.llc_for(t) >= packed.llc_for(t), (preset, t)
            assert packed.llc_for(t) <= packed.llc_bytes


def test_two_sockets_threads_on_one_socket_reach_its_l3_only():
    m = machine(KP2, "compact")
    assert m.llc_bytes == 128 * MiB
    assert m.llc_for(64) == 64 * MiB  # socket 0's two dies, not both sockets' L3
    assert m.llc_for(128) == 128 * MiB
    assert machine(KP2, "spread").llc_for(4) == 128 * MiB  # one thread on each die


def test_a_reuse_that_fits_two_dies_comes_partly_from_dram_for_one_thread():
    """48 MiB re-read: one thread holds it in its die's 32 MiB at the sweep law's hit
    rate; 16 threads of 3 MiB each, spread over both dies, hold all of it; packed on
    die 0 they do not."""
    st = Step("reread")
    reread(st, 48 * MiB, 96 * MiB, machine(), threads=1)
    assert st.dram_read == pytest.approx((1 - sweep_hit(48, 32)) * 96 * MiB)
    assert 0 < st.dram_read < 96 * MiB
    spread, packed = Step("spread"), Step("packed")
    reread(spread, 3 * MiB, 96 * MiB, machine(placement="spread"), threads=16)
    reread(packed, 3 * MiB, 96 * MiB, machine(placement="compact"), threads=16)
    assert spread.dram_read == 0 and packed.dram_read > 0


def test_the_one_chaser_l3_rate_is_the_calibration_point():
    from hwsim.accelerators.armv8.calibration import CALIBRATED, cases

    assert CALIBRATED["--physcpubind=0 --membind=0 L3"] == "l3_bytes_per_cycle"
    spec = resolve(KP).spec
    got = {c.name: c for c in cases(spec, KP)}
    if not got:
        pytest.skip(f"{LMBENCH} absent (hwsim calibrate's data folder)")
    point = got["lat_mem_rd --physcpubind=0 --membind=0 L3"]
    assert point.kind == "calibration" and point.parameter == "l3_bytes_per_cycle"
    assert point.modelled == pytest.approx(point.measured, rel=0.01)
    # the core alone is below its cluster's port: four a cluster are the port's
    m = Machine(spec)
    assert m.l3_bw < spec.cluster_bw_bytes_per_s
    four = got["lat_mem_rd --physcpubind=0-3 L3"]
    assert four.kind == "check" and four.modelled == pytest.approx(four.measured, rel=0.05)


def test_the_l3_stream_overlaps_only_where_the_spec_and_the_walk_allow():
    """An L3-bound step: with ``l3_overlaps`` its transfers are the longer of L1+L2 and
    L3; a step that crosses a page every access (``l3_stream`` False) and a spec
    without the flag keep the ECM sum."""
    on = Machine(resolve(KP).spec)
    off = Machine(dataclasses.replace(resolve(KP).spec, l3_overlaps=False))
    st = Step("stream", port_cycles=100.0)
    st.read("l3", 64e3)
    near = 100 * on.cycle_s + 64e3 / on.l2_bw
    assert times(st, on).transfers == max(near, 64e3 / on.l3_bw) == 64e3 / on.l3_bw
    assert times(st, off).transfers == pytest.approx(near + 64e3 / on.l3_bw)
    walk = dataclasses.replace(st, l3_stream=False)
    assert times(walk, on).transfers == pytest.approx(near + 64e3 / on.l3_bw)
    # the other presets keep the ECM rule
    for name in ("armv8-graviton2", "armv8-thunderx2", "armv8-ft2000plus"):
        assert not resolve(name).spec.l3_overlaps


def test_a_page_sized_stride_spreads_over_the_l2s_page_colours():
    """TSV110's L2: 512 KiB, 8 ways, 64 B lines: 1,024 sets, a way spans 64 KiB, 16
    pages of 4 KiB. By virtual address a 16 KiB or 256 KiB stride reaches 4 or 1 sets;
    by physical address the 4 index bits above the page offset are the frame's, so
    any stride of a page or more reaches 16 sets (128 lines), one of 1 KiB the 4
    offsets a page holds in each colour (64 sets)."""
    L2, L1, line, page = 512 * 1024, 64 * 1024, 64, 4096
    assert set_capacity_lines(16384, L2, 8, line) == 4 * 8
    assert set_capacity_lines(262144, L2, 8, line) == 1 * 8
    assert set_capacity_lines(16384, L2, 8, line, page) == 16 * 8
    assert set_capacity_lines(262144, L2, 8, line, page) == 16 * 8
    assert set_capacity_lines(1024, L2, 8, line, page) == 64 * 8
    assert set_capacity_lines(64, L2, 8, line, page) == 1024 * 8  # every set
    assert set_capacity_lines(48, L2, 8, line, page) == 1024 * 8  # not line-aligned
    # pages as large as a way (64 KiB granule): the frame adds no index bits
    assert set_capacity_lines(262144, L2, 8, line, 65536) == 1 * 8
    # the L1 (virtually indexed): a 16 KiB stride is one set of 4 ways
    assert set_capacity_lines(16384, L1, 4, line) == 4
    for stride in range(line, 1 << 21, line):
        assert (set_capacity_lines(stride, L2, 8, line, page)
                >= set_capacity_lines(stride, L2, 8, line)), stride


def test_the_measurements_rule_out_a_serial_l3_transfer():
    """Why ``l3_overlaps``: one chaser takes 3.1-3.6 ns a line from L2 (96-512 KiB) and
    4.15 ns from the L3 (3-4 MB). Were the L3 -> L2 transfer serial to the L2 -> L1
    one, it would take what is left, 1.04 ns a line at most: 61 GB/s or more, more than the
    core's whole cluster port carries from the L3 (four chasers on one cluster: 4 x
    64 B / 13.0 ns = 19.7 GB/s)."""
    lat = one_core_curve()
    l2 = [lat[w] for w in lat if 0.09 <= w <= 0.5]
    l3 = sum(lat[w] for w in (3.0, 4.0)) / 2
    assert 3.0 < min(l2) and max(l2) < 3.7 and l3 == pytest.approx(4.146, abs=0.01)
    serial_bw = 64 / ((l3 - min(l2)) * 1e-9)
    port = resolve(KP).spec.cluster_bw_bytes_per_s
    assert serial_bw > 2.5 * port
    assert resolve(KP).spec.l3_overlaps and resolve(KP2).spec.l3_overlaps
