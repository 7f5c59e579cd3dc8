"""Ops on streams (hwsim.engine.streams, hwsim.overlap, hwsim.simulate.schedule_streams):
nodes wait for their inputs, their stream and their issue; tiling-AllReduce cuts the
chains that lead to an all-reduce into row blocks whose all-reduces run on the comm
stream under the next blocks' compute, on every multi-device target."""

from __future__ import annotations

import random

import pytest

import hwsim
from hwsim import engine, overlap
from hwsim.engine import Task
from hwsim.engine.streams import Node, exposed_s, run_streams
from hwsim.report.chrome import chrome_events
from hwsim.simulate import prepare
from hwsim.workload import load_workload

TP = "workloads/ascend-llama2-7b-prefill-8npu.yaml"


# ---------------------------------------------------------------- the scheduler
def _in_engine(nodes, overlaps):
    """The reference: the host's issues and the nodes as engine tasks."""
    tasks = []
    for i, node in enumerate(nodes):
        host_deps = ((2 * i - 2,) if i else ()) + ((2 * i - 1,) if i and not overlaps else ())
        tasks.append(Task("host", node.host_s, deps=host_deps, bound="latency"))
        prev = [2 * j + 1 for j in range(i) if nodes[j].stream == node.stream][-1:]
        deps = {2 * i, *prev, *(2 * d + 1 for d in node.deps)}
        tasks.append(Task(node.stream, node.duration_s, deps=tuple(sorted(deps))))
    sched = engine.run_events(tasks)
    return list(sched.starts_s[1::2]), list(sched.ends_s[1::2]), list(sched.ends_s[0::2])


@pytest.mark.parametrize("overlaps", [True, False])
def test_streams_are_the_event_engines_schedule_to_the_last_bit(overlaps):
    """Random graphs over three streams with cross-stream reads, zero-length issues
    and nodes, equal times: the direct pass gives the engine's floats."""
    rng = random.Random(18)
    pick = [0.0, 1e-6, 3e-6, 7.3e-6, 2.5e-5, 1e-3]
    for _ in range(200):
        n = rng.randint(1, 40)
        nodes = []
        for i in range(n):
            deps = tuple(sorted(rng.sample(range(i), k=min(i, rng.randint(0, 2)))))
            nodes.append(Node(rng.choice(["compute", "comm", "copy"]),
                              rng.choice(pick) * rng.choice([1.0, rng.random()]), deps,
                              rng.choice(pick) * rng.choice([1.0, rng.random()])))
        got = run_streams(nodes, overlaps=overlaps)
        starts, ends, issues = _in_engine(nodes, overlaps)
        assert got.start_s == starts and got.end_s == ends and got.issue_end_s == issues
        assert got.latency_s == max(ends)


def test_independent_streams_overlap_and_dependent_work_waits():
    s = run_streams([Node("compute", 3.0), Node("comm", 2.0, (0,)), Node("compute", 3.0),
                     Node("compute", 1.0, (1,))])
    assert s.start_s == [0.0, 3.0, 3.0, 6.0]  # the all-reduce runs under the second node
    assert s.latency_s == 7.0
    assert exposed_s([(3.0, 5.0)], [(0.0, 3.0), (3.0, 6.0)]) == 0.0
    assert exposed_s([(5.0, 8.0)], [(0.0, 3.0), (3.0, 6.0)]) == 2.0
    with pytest.raises(ValueError, match="earlier node"):
        run_streams([Node("compute", 1.0, (0,))])


# ---------------------------------------------------------------- the cut
def _graph(seq_len=4096, devices=8):
    wl = load_workload(TP, [("seq_len", seq_len), ("devices", devices)])
    return prepare(wl)[0]


def test_chains_run_from_the_attention_and_the_down_projection_to_their_all_reduce():
    g = _graph(2048)
    chains = overlap.chains(g)
    assert len(chains) == 2 * 32
    kinds = {tuple(g.ops[i].kind for i in chain) for chain in chains.values()}
    assert kinds == {("attention", "elementwise", "matmul", "allreduce"),
                     ("matmul", "allreduce")}


def test_blocks_share_the_rows_and_a_causal_block_reads_the_keys_before_its_end():
    g = _graph(1000)
    chain = next(c for c in overlap.chains(g).values() if g.ops[c[0]].kind == "attention")
    blocks = overlap.cut(g, chain, 3)
    att = [block[0][0].attrs for block in blocks]
    assert [a["q_len"] for a in att] == [334, 333, 333]
    assert [a["kv_len"] for a in att] == [334, 667, 1000]
    mms = [block[2][0].attrs["m"] for block in blocks]
    ars = [block[3][0].attrs["elements"] for block in blocks]
    whole = g.ops[chain[-1]].attrs["elements"]
    assert mms == [334, 333, 333] and sum(ars) == whole
    for block in blocks:  # each block's graph is a valid graph of its pieces
        assert block[0][1].verify() == []


# ---------------------------------------------------------------- on the targets
@pytest.mark.parametrize("target", ["ascend", "volta"])
def test_tiling_allreduce_hides_most_of_the_all_reduce_on_the_timeline(target):
    """Llama-2-7B prefill on 8 devices: the Chrome trace's comm-stream events run under
    compute-stream events; most of the all-reduce time is hidden, and the gain over one
    all-reduce after each projection is reported and real."""
    sets = ["seq_len=8192"]
    tiled = hwsim.simulate(TP, target, sets=sets, fidelity="event")
    plain = hwsim.simulate(TP, target, sets=sets + ["tiling.tiling_allreduce=false"],
                           fidelity="event")
    events = chrome_events(tiled)
    names = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    comm = [(e["ts"], e["ts"] + e["dur"]) for e in events
            if e["ph"] == "X" and names.get(e["tid"]) == "ops (comm stream)"]
    compute = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                     if e["ph"] == "X" and e["tid"] == 1)
    assert len(comm) > 64  # every all-reduce is cut into blocks
    total = sum(b - a for a, b in comm)
    hidden = total - exposed_s(comm, compute)
    assert hidden > 0.5 * total
    ta = tiled.streams["tiling_allreduce"]
    assert ta["hidden_share"] == pytest.approx(hidden / total, rel=1e-6)
    assert ta["ring_latency_s"] == pytest.approx(plain.totals["latency_s"], rel=1e-9)
    assert tiled.totals["latency_s"] < plain.totals["latency_s"]
    assert ta["gain_s"] == pytest.approx(plain.totals["latency_s"] - tiled.totals["latency_s"],
                                         rel=1e-6)
    # the comm stream's busy time is the all-reduce rows' time, and it ran beside compute
    assert tiled.streams["busy_s"]["comm"] == pytest.approx(ta["allreduce_s"], rel=1e-9)
    assert tiled.totals["latency_s"] < sum(tiled.streams["busy_s"].values())
    assert tiled.to_dict()["streams"]["tiling_allreduce"]["chains"] == 64


def test_one_block_per_chain_is_the_run_without_tiling(monkeypatch):
    """Cut into one block (the chain as it was), the streams change nothing: the same
    ops, one after another, at the same times."""
    monkeypatch.setattr(overlap, "CHUNKS", (1,))
    for target in ("roofline", "ascend", "volta"):
        one = hwsim.simulate(TP, target, sets=["seq_len=2048"], fidelity="analytical")
        plain = hwsim.simulate(TP, target, sets=["seq_len=2048", "tiling.tiling_allreduce=false"],
                               fidelity="analytical")
        assert one.totals["latency_s"] == pytest.approx(plain.totals["latency_s"], rel=1e-12)
        assert one.totals["energy_j"] == pytest.approx(plain.totals["energy_j"], rel=1e-9)
        assert list(one.ops["start_s"]) == pytest.approx(list(plain.ops["start_s"]), rel=1e-12)
        assert one.totals["dram_read_bytes"] == plain.totals["dram_read_bytes"]


@pytest.mark.parametrize("seq_len", [1024, 3000, 4096, 4224])
@pytest.mark.parametrize("devices", [2, 8])
def test_tiling_never_loses(seq_len, devices):
    """On the roofline: tiling is never slower than the plain chain (one block is a
    candidate), and rows that do not divide evenly hide about as much."""
    sets = [f"seq_len={seq_len}", f"devices={devices}"]
    tiled = hwsim.simulate(TP, "roofline", sets=sets, fidelity="analytical")
    plain = hwsim.simulate(TP, "roofline", sets=sets + ["tiling.tiling_allreduce=false"],
                           fidelity="analytical")
    assert tiled.totals["latency_s"] <= plain.totals["latency_s"] * (1 + 1e-12)
    assert tiled.streams["tiling_allreduce"]["hidden_share"] > 0.3


@pytest.mark.parametrize("target", ["ascend", "volta"])
def test_static_power_is_drawn_once_under_overlapping_streams(target):
    """The device's static energy is its static power over the run (the compute
    stream's time, its waits, and the all-reduce time compute does not cover), not
    twice where the streams overlap."""
    r = hwsim.simulate(TP, target, sets=["seq_len=3000"], fidelity="analytical")
    static_w = r.target.spec.static_power_w
    assert static_w > 0
    assert r.ops["energy_static_j"].sum() == pytest.approx(static_w * r.totals["latency_s"],
                                                           rel=1e-9)


def test_the_timeline_plot_draws_a_lane_per_stream(tmp_path):
    from hwsim.plot import timeline

    r = hwsim.simulate(TP, "ascend", sets=["seq_len=2048"], fidelity="analytical")
    fig = timeline(r, ops=slice(9, 14))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["stream comm", "stream compute"]
