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
    assert tiled.streams["busy_s"]["comm"] == pytest.approx(ta["comm_s"], rel=1e-9)
    assert tiled.totals["latency_s"] < sum(tiled.streams["busy_s"].values())
    assert tiled.to_dict()["streams"]["tiling_allreduce"]["chains"] == 64


def test_one_block_per_chain_is_the_run_without_tiling(monkeypatch):
    """Cut into one block (the chain as it was), the streams change nothing: the same
    ops, one after another, at the same times. (With cold caches: a cut chain's ops
    carry nothing on chip, hwsim.onchip.)"""
    monkeypatch.setattr(overlap, "CHUNKS", (1,))
    for target in ("roofline", "ascend", "volta"):
        cold = ["seq_len=2048", "onchip_carry=false"]
        one = hwsim.simulate(TP, target, sets=cold, fidelity="analytical")
        plain = hwsim.simulate(TP, target, sets=cold + ["tiling.tiling_allreduce=false"],
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
    # the least, 8 devices at 1,024 tokens, hides 0.28 of its ring (0.31 while each
    # hostless roofline op paid its whole launch: the compute blocks under the ring
    # are now 2.4 us a launch shorter, queued as on the V100); the rest 0.51-0.82
    assert tiled.streams["tiling_allreduce"]["hidden_share"] > 0.25


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


# ---------------------------------------------------------------- CPU-GPU cooperation
D256K = {"name": "d256k", "model": "llama-2-7b", "phase": "decode", "seq_len": 1,
         "kv_len": 262144, "devices": 8, "tiling": {"attention": "fastattention"}}
HALF = ["target.dram_bytes=16 GiB", "target.host_kv_fraction=0.5"]


def _have_llama():
    from hwsim import zoo

    if zoo.shipped_path("llama-2-7b", "decode") is None:
        pytest.skip("no shipped llama-2-7b decode template")


def test_256k_decode_streams_host_kv_under_attention_within_one_block_of_the_bound():
    """FastAttention's cooperative setting (256K tokens on 8 x 16 GB V100, half the KV
    cache in host memory), one decode step: the PCIe copies run on the copy stream
    beside the attention (the Chrome trace's copy lane overlaps the compute lane), and
    the step takes no more than the busier stream plus one block."""
    _have_llama()
    r = hwsim.simulate(D256K, "volta", sets=HALF, fidelity="event")
    events = chrome_events(r)
    names = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    copies = [(e["ts"], e["ts"] + e["dur"]) for e in events
              if e["ph"] == "X" and names.get(e["tid"]) == "ops (copy stream)"]
    attention = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                       if e["ph"] == "X" and e["tid"] == 1 and e["cat"] == "attention")
    assert len(copies) >= 32 * 2 and attention
    under = sum(b - a for a, b in copies) - exposed_s(copies, attention)
    assert under > 0  # copies run while attention computes
    busy = r.streams["busy_s"]
    pieces = [(s1 - s0) for row in r.streams["pieces"].values() for s0, s1, _ in row]
    latency = r.totals["latency_s"]
    assert max(busy.values()) <= latency * (1 + 1e-9)
    assert latency <= max(busy.values()) + max(pieces)
    hk = r.streams["host_kv"]
    assert hk["attentions"] == 32 and hk["host_kv_fraction"] == 0.5
    # what moved: half of each layer's cached keys and values, per device
    kv = 262144 * 2 * (4096 // 8) * 2
    assert hk["copy_s"] == pytest.approx(32 * 0.5 * kv / r.target.spec.pcie_bw_bytes_per_s,
                                         rel=0.02)


def test_copies_double_buffer():
    """The copy of host block g waits for the attention over block g-2 (two buffers)."""
    att = {"kind": "attention", "heads": 32, "head_dim": 128, "q_len": 2048,
           "kv_len": 65536, "causal": True}
    r = hwsim.simulate({"name": "t", "ops": [att, att]}, "volta",
                       sets=["target.host_kv_fraction=0.9"], fidelity="analytical")
    per_op = r.streams["host_kv"]["blocks"]
    assert sum(n * k for n, k in per_op.items()) >= 4  # enough blocks to need the buffers
    # each op's pieces: its copies in, then the new entries' write-back; on compute the
    # device's attention, the host blocks' attentions, the merge
    ins, host_blocks = [], []
    for row in sorted(r.streams["pieces"]):
        pieces = r.streams["pieces"][row]
        ins.extend([p for p in pieces if p[2] == "copy"][:-1])
        host_blocks.extend([p for p in pieces if p[2] == "compute"][1:-1])
    assert len(ins) == len(host_blocks) >= 4
    for g in range(2, len(ins)):
        assert ins[g][0] >= host_blocks[g - 2][1] - 1e-12
        assert host_blocks[g][0] >= ins[g][1] - 1e-12  # and each block after its copy


def test_the_break_even_host_fraction_comes_out_of_the_run():
    """A long-prompt attention: the copies hide under the GPU's work until the PCIe time
    of the host share passes the GPU time, and not beyond; the knee of the swept
    latency sits where the two cross."""
    att = {"kind": "attention", "heads": 32, "head_dim": 128, "q_len": 2048,
           "kv_len": 65536, "causal": True}
    fractions = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0]
    runs = [hwsim.simulate({"name": "t", "ops": [att]}, "volta",
                           sets=[f"target.host_kv_fraction={f}"], fidelity="analytical")
            for f in fractions]
    base = runs[0].totals["latency_s"]
    flat = [f for f, r in zip(fractions, runs) if r.totals["latency_s"] <= 1.01 * base]
    knee = max(flat)
    full = runs[-1].streams["host_kv"]["copy_s"]  # the whole cache over PCIe
    crossing = runs[-1].streams["busy_s"]["compute"] / full
    assert 0.2 < crossing < 0.6
    assert knee <= crossing + 0.1 and knee >= crossing - 0.15
    for f, r in zip(fractions[1:], runs[1:]):  # never below either stream's time
        busy = r.streams["busy_s"]
        assert r.totals["latency_s"] >= max(busy.values()) * (1 - 1e-9)
        assert r.streams["host_kv"]["copy_s"] == pytest.approx(f * full, rel=0.02)


def test_a_prefill_writes_its_host_share_back_beside_the_next_ops():
    att = {"kind": "attention", "heads": 32, "head_dim": 128, "q_len": 4096, "kv_len": 4096,
           "causal": True}
    mm = {"kind": "matmul", "m": 4096, "n": 4096, "k": 4096, "dtype": "fp16"}
    r = hwsim.simulate({"name": "t", "ops": [att, mm]}, "volta",
                       sets=["target.host_kv_fraction=0.5"], fidelity="analytical")
    pieces = r.streams["pieces"][0]
    assert [p[2] for p in pieces] == ["compute", "copy"]  # no old keys: only the write-back
    assert pieces[1][1] > r.rows[1]["start_s"]  # it runs under the matmul
    assert r.totals["latency_s"] < r.ops["latency_s"].sum() + (pieces[1][1] - pieces[1][0])



def test_the_html_page_draws_the_other_streams_under_the_run():
    from hwsim.report.html import to_html

    tp = hwsim.simulate(TP, "volta", sets=["seq_len=1024"], fidelity="event")
    att = {"kind": "attention", "heads": 32, "head_dim": 128, "q_len": 1, "kv_len": 32768,
           "causal": True}
    kv = hwsim.simulate({"name": "kv", "ops": [att, att]}, "volta",
                        sets=["target.host_kv_fraction=0.5"], fidelity="event")
    page = to_html([tp, kv])
    assert "ops (comm stream)" in page and "ops (copy stream)" in page
    assert "overlapping the compute stream" in page
