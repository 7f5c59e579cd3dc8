"""A cluster's port has a lane each way: lines read come in on one, lines written back
leave on the other (hwsim/accelerators/armv8/memory.py ``stream_rates``,
``Machine.with_writes``; spec ``cluster_write_bw_bytes_per_s``).

What must hold:

- a read-only stream (the lmbench chases the inbound lane was solved from) is charged
  as before, bit for bit: the outbound lane only carries written lines;
- the four cores of one cluster copy (half the lines written) at more than one lane
  carries for reads and writes together, and neither lane carries more than its
  bandwidth; the die's controllers never carry more than their sustained bandwidth;
- more outbound bandwidth never makes a thread slower, and more threads of a copy
  never carry less;
- the planners' bounds (``Machine.share_floor``) still hold for every mix;
- a copy op's whole path (estimate, events, analytical summary, terms) uses its mix's
  rates; presets with one lane (``cluster_write_bw_bytes_per_s: 0``) are unchanged.
"""

from __future__ import annotations

import pytest

from hwsim.accelerators.armv8 import TARGET
from hwsim.accelerators.armv8.memory import stream_rates
from hwsim.accelerators.armv8.spec import Machine
from hwsim.targets import resolve

KP2 = "armv8-kunpeng920-2s"
NINETY_SIX = {"cores": 96}  # the machine the lmbench logs were taken on (24 cores a die)


def machine(over=None, share=0.0, placement="compact"):
    return Machine(resolve(KP2, {**NINETY_SIX, **(over or {})}).spec) \
        .for_run(0, placement).with_writes(share)


def test_read_only_streams_are_unchanged():
    one = machine({"cluster_write_bw_bytes_per_s": 0.0})
    two = machine()
    assert two.spec.cluster_write_bw_bytes_per_s > 0
    assert two.with_writes(0.0) is two and two.write_share == 0.0
    for cores in ([0], [0, 1, 2, 3], [0, 1, 4, 5], [0, 4, 8, 12], list(range(24))):
        assert stream_rates(two, two.topology.pinned(cores, [0])) == \
            stream_rates(one, one.topology.pinned(cores, [0]))


def test_one_cluster_copies_past_one_lane_within_each():
    single = machine({"cluster_write_bw_bytes_per_s": 0.0}).with_writes(0.5)
    duplex = machine(share=0.5)
    assert single.write_share == 0.0  # one lane: no mix to tell apart
    assert duplex.write_share == 0.5
    cluster = duplex.topology.pinned([0, 1, 2, 3], [0])
    spec = duplex.spec
    lone = sum(stream_rates(single, cluster))
    carried = sum(stream_rates(duplex, cluster))
    # one lane of 20.2 GB/s carries the copy's reads and writes together
    assert lone <= spec.cluster_bw_bytes_per_s * (1 + 1e-9)
    # two lanes carry more than one, each within its bandwidth
    assert carried > 1.3 * spec.cluster_bw_bytes_per_s
    assert carried / 2 <= spec.cluster_bw_bytes_per_s * (1 + 1e-9)
    assert carried / 2 <= spec.cluster_write_bw_bytes_per_s * (1 + 1e-9)
    # a die's controllers never carry more than their sustained bandwidth
    die = sum(stream_rates(duplex, duplex.topology.pinned(list(range(24)), [0])))
    assert die <= duplex.node_bw * (1 + 1e-9)


def test_more_outbound_bandwidth_or_threads_never_slower():
    last = 0.0
    for out in (5e9, 10e9, 17e9, 30e9):
        m = machine({"cluster_write_bw_bytes_per_s": out}, 0.5)
        rates = stream_rates(m, m.topology.pinned([0, 1, 2, 3], [0]))
        assert min(rates) >= last * (1 - 1e-9)
        last = min(rates)
    m = machine(share=0.5)
    carried = [sum(m.thread_rates(t)) for t in (1, 2, 3, 4, 6, 8, 12, 24, 48, 96)]
    assert all(b >= a * (1 - 1e-6) for a, b in zip(carried, carried[1:]))


@pytest.mark.parametrize("share", [0.25, 1 / 3, 0.5, 1.0])
@pytest.mark.parametrize("placement", ["spread", "compact"])
def test_planner_bounds_hold_for_every_mix(share, placement):
    m = Machine(resolve(KP2).spec).for_run(0, placement).with_writes(share)
    assert m.write_share == round(share * 16) / 16
    for t in (1, 2, 4, 6, 16, 33, 64, 128):
        assert max(m.thread_rates(t)) <= m.rate_ceiling
        stretch = m.slot_bw / m.slowest_rate(t)
        assert m.share_floor(t) <= m.share_floor(t, True, False) <= stretch
        assert m.share_floor(t, True) <= stretch


def test_a_copy_op_runs_at_its_mix_rates():
    from hwsim.accelerators.armv8.ecm import emit, estimate, summarize_plan  # noqa: PLC0415
    from hwsim.engine import summarize  # noqa: PLC0415
    from hwsim.workload.build import build_graph  # noqa: PLC0415
    from hwsim.workload.loader import workload_from_dict  # noqa: PLC0415

    wl = workload_from_dict({"ops": [{"kind": "elementwise", "fn": "copy", "elements": 1 << 24}],
                         "dtype": "fp64", "tiling": {"threads": 4, "placement": "compact"}})
    graph = build_graph(wl)
    spec = resolve(KP2, NINETY_SIX).spec
    op = graph.ops[0]
    plan = TARGET.plan(op, graph, spec, wl.tiling)
    assert plan.write_share == 0.5
    mach = TARGET.machine(spec, wl.tiling)
    mix = mach.with_writes(0.5)
    assert mix is mach.with_writes(plan.write_share)  # kept, its rates solved once
    # the terms charge the mix's rate: faster than one lane's for the same bytes
    dram_s = TARGET._terms(plan, mach)["dram_s"]
    moved = sum(s.dram_read + s.dram_write for s in plan.steps)
    assert dram_s == pytest.approx(moved / min(mix.thread_rates(plan.threads)), rel=1e-12)
    assert dram_s < moved / min(mach.thread_rates(plan.threads))
    # the events and their analytical summary agree; the planner estimated the plan
    # at the mix's rates, faster than at one lane's
    pools = TARGET.pools(spec)
    got, _ = summarize_plan(plan, mach, pools)
    assert got.analytical_latency_s == pytest.approx(
        summarize(emit(plan, mach, "copy"), pools, tails=True).analytical_latency_s, rel=1e-12)
    assert estimate(plan, mix) < estimate(plan, mach)


@pytest.mark.parametrize("preset", ["armv8-graviton2", "armv8-thunderx2", "armv8-ft2000plus"])
def test_one_lane_presets_are_unchanged(preset):
    m = Machine(resolve(preset).spec)
    assert m.with_writes(0.5) is m


def test_a_plan_copied_keeps_its_mix():
    """A plan copied field by field (the on-chip carry's, a shared GEMM plan's) keeps
    its write share, so the carried op is priced on its mix's lanes too: an add whose
    inputs a previous op left in the L3 reads less DRAM, at the same mix's rates."""
    from hwsim.accelerators.armv8.target import carried
    from hwsim.workload import build_graph, workload_from_dict

    wl = workload_from_dict({"name": "w", "dtype": "fp16", "ops": [
        {"kind": "elementwise", "fn": "add", "elements": 1 << 22}]}, "<test>")
    graph = build_graph(wl)
    op = graph.ops[0]
    spec = resolve("armv8-kunpeng920").spec
    plan = TARGET.plan(op, graph, spec, wl.tiling)
    assert 0.0 < plan.write_share < 1.0
    kept = carried(plan, 1 << 20, 0)
    assert kept.write_share == plan.write_share
    assert kept.steps[0].dram_read < plan.steps[0].dram_read
