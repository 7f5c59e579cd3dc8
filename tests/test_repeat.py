"""A repeated op is one op with a count (issue 16: reports and lowering grow with
distinct ops, not with a repeated count).

An ``ops:`` entry with ``repeat: N`` is one op (:attr:`hwsim.ir.Op.repeat`) that
runs N times back to back, each run on its own operands. Its report row carries
``count`` and the figures of all its runs, so every total, breakdown and memory
account must equal those of the same entry written out N times: exactly for whole
numbers (FLOPs, bytes), to 1e-12 for seconds and joules (one product where the
written-out run adds N terms; the host's waits in closed form).
"""

from __future__ import annotations

import json
import math
import tracemalloc

import pytest
from physics import violations

import hwsim
from hwsim.errors import InputError
from hwsim.ir import Graph, flops, from_dict, to_dict
from hwsim.report.chrome import chrome_events, op_spans
from hwsim.report.groups import by_kind, group_ops
from hwsim.workload import build_graph, workload_from_dict

REL = 1e-12
TARGETS = ("roofline", "volta", "ascend", "armv8", "spatten")

# small ops of most kinds; the repeated ones own weights (layernorm), a KV cache
# (kv_write) and a working set (attention), which the memory account must count right
ENTRIES = [
    {"kind": "matmul", "m": 64, "n": 128, "k": 96, "repeat": 3},
    {"kind": "softmax", "rows": 64, "cols": 128},
    {"kind": "elementwise", "fn": "add", "elements": 4096, "repeat": 4},
    {"kind": "attention", "heads": 4, "kv_heads": 2, "head_dim": 64, "q_len": 16,
     "kv_len": 256, "causal": True, "repeat": 2},
    {"kind": "layernorm", "rows": 32, "cols": 768, "repeat": 2},
    {"kind": "rope", "elements": 2048, "repeat": 5},
    {"kind": "kv_write", "elements": 1024, "cache_elements": 8192, "repeat": 3},
    {"kind": "matmul", "m": 8, "n": 8, "k": 8},
]


def written_out(entries):
    """The same work with every repeat as that many entries of its own."""
    out = []
    for e in entries:
        one = {k: v for k, v in e.items() if k != "repeat"}
        out += [dict(one) for _ in range(e.get("repeat", 1))]
    return out


def run(entries, target, fidelity="event", **extra):
    wl = workload_from_dict({"name": "rep", "ops": entries, "dtype": "fp16", **extra}, "<rep>")
    return hwsim.simulate(wl, target, fidelity=fidelity)


def assert_same_totals(a, b):
    ta, tb = a.totals, b.totals
    for key in ("flops", "dense_flops", "executed_flops", "dram_read_bytes",
                "dram_write_bytes", "cycles"):
        if key == "cycles" and ta[key] is not None:  # rounded from the latency
            assert abs(ta[key] - tb[key]) <= 1, key
            continue
        assert ta[key] == tb[key], key
    for key in ("latency_s", "energy_j"):
        assert ta[key] == pytest.approx(tb[key], rel=REL, abs=1e-18), key
    for part, joules in ta["energy_breakdown_j"].items():
        assert joules == pytest.approx(tb["energy_breakdown_j"][part], rel=REL, abs=1e-18), part
    assert a.host_wait_s == pytest.approx(b.host_wait_s, rel=1e-9, abs=1e-15)
    for key in ("weights_bytes", "kv_cache_bytes", "activations_bytes", "total_bytes"):
        assert a.memory[key] == b.memory[key], key
    kinds_a = {k["kind"]: k for k in by_kind(a)}
    kinds_b = {k["kind"]: k for k in by_kind(b)}
    assert set(kinds_a) == set(kinds_b)
    for kind, k in kinds_a.items():
        assert k["ops"] == kinds_b[kind]["ops"]
        assert k["flops"] == kinds_b[kind]["flops"] and k["dram_bytes"] == kinds_b[kind][
            "dram_bytes"]
        assert k["latency_s"] == pytest.approx(kinds_b[kind]["latency_s"], rel=REL)


@pytest.mark.parametrize("fidelity", ["event", "analytical"])
@pytest.mark.parametrize("target", TARGETS)
def test_n_repeats_are_n_written_out_entries(target, fidelity):
    rep = run(ENTRIES, target, fidelity)
    out = run(written_out(ENTRIES), target, fidelity)
    assert_same_totals(rep, out)
    # one row per entry, with its count and the figures of all its runs
    assert len(rep.rows) == len(ENTRIES) and rep.runs == len(out.rows)
    assert [r["count"] for r in rep.rows] == [e.get("repeat", 1) for e in ENTRIES]
    i = 0
    for row in rep.rows:
        runs = out.rows[i:i + row["count"]]
        i += row["count"]
        assert {r["kind"] for r in runs} == {row["kind"]}
        for key in ("flops", "executed_flops", "dram_read_bytes", "dram_write_bytes"):
            assert row[key] == sum(r[key] for r in runs), key
        for key in ("latency_s", "energy_compute_j", "energy_dram_j", "host_s"):
            assert row[key] == pytest.approx(math.fsum(r[key] for r in runs), rel=REL), key
        assert row["start_s"] == pytest.approx(runs[0]["start_s"], rel=REL, abs=1e-18)
    assert violations(rep) == []
    # the grouped table counts runs: each entry's group is its count of identical ops
    groups = {g.ids[0]: g.count for g in group_ops(rep)}
    assert sum(groups.values()) == rep.runs


@pytest.mark.parametrize("runtime", ["eager", "graph", "fused"])
@pytest.mark.parametrize("target", ["volta", "ascend", "armv8"])
def test_the_host_issues_every_run(target, runtime):
    """The host issues each run (eager: host-bound small kernels wait between runs;
    a captured graph issues once; a fused engine folds repeated pointwise runs)."""
    rep = run(ENTRIES, target, runtime=runtime)
    out = run(written_out(ENTRIES), target, runtime=runtime)
    assert_same_totals(rep, out)
    # each op's bar ends where its last run ends: the next op starts after it, and the
    # last ends with the run
    ends = [r["start_s"] + span for r, span in zip(rep.rows, op_spans(rep))]
    assert ends[-1] == pytest.approx(rep.totals["latency_s"], rel=REL)
    assert all(r["start_s"] >= end * (1 - REL) for r, end in zip(rep.rows[1:], ends))
    lane = chrome_events(rep)
    host = [e for e in lane if e.get("cat") == "host"]
    assert all(e["dur"] > 0 for e in host)
    if runtime == "eager" and target != "armv8":  # the small kernels waited for the host
        assert rep.host_wait_s > 0
        assert any(" x" in e["name"] for e in host)


def test_devices_count_a_repeated_op_on_each():
    rep = run(ENTRIES, "volta", devices=2)
    out = run(written_out(ENTRIES), "volta", devices=2)
    assert_same_totals(rep, out)


def test_a_repeated_moe_layer_does_the_written_out_work():
    """A repeated moe_experts op expands into kernels that each run its count: the
    same FLOPs, bytes and device time (the host's issue order is the one difference).
    With cold caches: written out, each layer's gate feeds its experts through the L2
    (hwsim.onchip), while a repeated kernel's runs have operands of their own and
    carry nothing, so with carrying the written-out layers rightly read less."""
    moe = {"kind": "moe_experts", "tokens": 64, "hidden": 256, "ffn": 512, "experts": 4,
           "top_k": 2}
    rep = run([{**moe, "repeat": 3}], "volta", onchip_carry=False)
    out = run([moe] * 3, "volta", onchip_carry=False)
    for key in ("flops", "executed_flops", "dram_read_bytes", "dram_write_bytes"):
        assert rep.totals[key] == out.totals[key], key
    # the ops' own device time: a launch hidden behind the op before it
    # (launch_hidden_s, hwsim.runtime) depends on that issue order, so it is added back
    device = math.fsum(r["latency_s"] + r.get("launch_hidden_s", 0.0) for r in rep.rows)
    assert device == pytest.approx(math.fsum(r["latency_s"] + r.get("launch_hidden_s", 0.0)
                                             for r in out.rows), rel=REL)
    assert rep.memory["weights_bytes"] == out.memory["weights_bytes"]
    assert rep.runs == out.runs and len(rep.rows) * 3 == len(out.rows)


def test_report_forms_say_the_count(tmp_path):
    rep = run(ENTRIES, "volta")
    doc = rep.to_dict()
    counts = [op.get("count", 1) for op in doc["ops"]]
    assert counts == [e.get("repeat", 1) for e in ENTRIES]
    assert "count" not in doc["ops"][1]  # an op that ran once keeps DESIGN.md's keys
    json.dumps(doc, allow_nan=False)
    rep.to_csv(tmp_path / "ops.csv")
    import pandas as pd

    csv = pd.read_csv(tmp_path / "ops.csv")
    assert csv["count"].tolist() == counts
    assert csv["latency_s"].sum() == pytest.approx(math.fsum(r["latency_s"] for r in rep.rows))
    table = rep.table(top=None)
    assert f"{len(ENTRIES)} ops ({rep.runs} runs)" in table
    assert f"distinct of {rep.runs} ops" in table
    detail = rep.table(top=None, detail=True)
    assert "count" in detail.splitlines()[[i for i, line in enumerate(detail.splitlines())
                                          if "one row each" in line][0] + 1]
    # the timeline: one bar per entry, spanning its runs, its count in the label
    ops = [e for e in chrome_events(rep) if e["tid"] == 1 and e["ph"] == "X"]
    assert len(ops) == len(ENTRIES)
    mm = ops[0]
    assert mm["name"].endswith(" x3") and mm["args"]["count"] == 3
    assert mm["dur"] * 1e-6 >= rep.rows[0]["latency_s"] * (1 - REL)
    assert ops[1]["ts"] >= mm["ts"] + mm["dur"] * (1 - REL)  # the next op after its last run
    page = rep.to_html()
    assert f"{len(ENTRIES)} ops ({rep.runs} runs)" in page and "x3" in page


def test_a_large_repeat_is_two_rows_in_small_memory():
    """65,536 runs each of two entries (131,072 ops written out, past the 100,000 the
    expansion allowed) lower two ops and make two rows: the memory a run takes does
    not grow with the count."""
    entries = [{"kind": "matmul", "m": 64, "n": 64, "k": 64, "repeat": 65536},
               {"kind": "elementwise", "fn": "add", "elements": 4096, "repeat": 65536}]
    warm = run(entries[:1], "volta")  # the target's, pandas' imports are not the run's
    warm.table()
    warm.to_json()
    tracemalloc.start()
    try:
        rep = run(entries, "volta")
        rep.table()
        rep.to_json()
        chrome_events(rep)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(rep.rows) == 2 and rep.runs == 131072
    assert len(rep.graph.ops) == 2 and len(rep.graph.tensors) == 6
    assert peak < 5 << 20, peak  # written out, its ops and rows held ~160 MB
    one = run([{**e, "repeat": 1} for e in entries], "volta")
    assert rep.totals["flops"] == 65536 * one.totals["flops"]
    # each run's own device time, less the launches its runs hid behind the run before
    # (launch_hidden_s), plus the waits for the host
    own = math.fsum(r["latency_s"] + r.get("launch_hidden_s", 0.0) for r in one.rows)
    hidden = math.fsum(r.get("launch_hidden_s", 0.0) for r in rep.rows)
    assert rep.totals["latency_s"] == pytest.approx(
        65536 * own - hidden + rep.host_wait_s, rel=1e-9)
    assert rep.totals["latency_s"] == pytest.approx(
        math.fsum(r["latency_s"] for r in rep.rows) + rep.host_wait_s, rel=1e-9)


def test_the_bounds_follow_entries_not_runs():
    big = [{"kind": "rope", "elements": 8, "repeat": 2**30}]
    g = build_graph(workload_from_dict({"name": "b", "ops": big}, "<b>"))
    assert g.runs == 2**30 and g.flops() == 2**30 * flops(g.ops[0]) > 0
    with pytest.raises(InputError, match="ops.0.repeat: expected an integer from 1 to "
                                         "1,073,741,824"):
        workload_from_dict({"name": "b", "ops": [{"kind": "rope", "elements": 8,
                                                  "repeat": 2**30 + 1}]}, "<b>")
    report = hwsim.simulate(workload_from_dict({"name": "b", "ops": big}, "<b>"), "volta")
    t = report.totals
    assert all(math.isfinite(t[k]) for k in ("latency_s", "energy_j")) and t["latency_s"] > 0


def test_a_graph_file_keeps_its_repeats():
    g = build_graph(workload_from_dict({"name": "f", "ops": ENTRIES}, "<f>"))
    back = from_dict(json.loads(json.dumps(to_dict(g))))
    assert [op.repeat for op in back.ops] == [op.repeat for op in g.ops]
    assert back.flops() == g.flops() and back.verify() == []
    plain = to_dict(g)
    assert "repeat" not in plain["ops"][1]  # a file of ops that run once is unchanged
    plain["ops"][0]["repeat"] = 0
    with pytest.raises(InputError, match="ops.repeat"):
        from_dict(plain)
    plain["ops"][0]["repeat"] = "3"
    with pytest.raises(InputError, match="ops.repeat"):
        from_dict(plain)


def test_a_repeated_op_owns_its_tensors():
    """Each run has its own operands: a tensor of a repeated op is counted once per run,
    so it cannot also be a tensor of an op that runs a different number of times."""
    g = Graph()
    x = g.add_tensor([4, 4], "fp16", "input")
    w = g.add_tensor([4], "fp16", "param")
    y = g.add_tensor([4, 4], "fp16")
    g.add_op("layernorm", [x, w], [y], {"rows": 4, "cols": 4}, repeat=3)
    assert g.verify() == [] and g.param_bytes() == 3 * 8 and g.copies(w) == 3
    z = g.add_tensor([4, 4], "fp16")
    g.add_op("elementwise", [y], [z], {"fn": "exp", "elements": 16})
    assert any("repeated 3 times" in p for p in g.verify())
