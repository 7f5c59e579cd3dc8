"""Reports: the JSON schema of DESIGN.md, per-layer sums, CSV, Chrome trace, table."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from conftest import KERNEL_OPS, dump_yaml

import hwsim
from hwsim.report.chrome import chrome_events, write_chrome_trace

# DESIGN.md, "JSON report (--json)"
TOP_KEYS = {"schema", "workload", "target", "totals", "layers", "ops"}
# keys the report adds beyond DESIGN.md's list (run metadata, not figures)
TOP_EXTRAS = {"fidelity", "devices", "memory"}
TOTALS_KEYS = {"latency_s", "cycles", "flops", "dense_flops", "executed_flops", "dram_read_bytes",
               "dram_write_bytes", "energy_j", "energy_breakdown_j"}
BREAKDOWN_KEYS = {"compute", "onchip", "dram", "static", "interconnect"}
LAYER_KEYS = {"layer", "latency_s", "flops", "dram_read_bytes", "dram_write_bytes", "energy_j"}
OP_KEYS = {"id", "name", "kind", "layer", "start_s", "latency_s", "flops", "executed_flops",
           "dram_read_bytes",
           "dram_write_bytes", "energy_j", "bound"}
BOUNDS = {"compute", "memory", "onchip", "latency", "interconnect"}
REL = 1e-12  # sums of the same floats in another order


@pytest.fixture(scope="module")
def model_report(tmp_path_factory):
    """The tiny 2-layer model from a trace file, on roofline-v100."""
    from conftest import tiny_graph

    from hwsim.ir import save

    d = tmp_path_factory.mktemp("rep")
    save(tiny_graph(2, 64), d / "tiny.json.gz")
    wl = dump_yaml(d / "tiny.yaml", {"trace": "tiny.json.gz", "batch": 2, "seq_len": 64})
    return hwsim.simulate(wl, "roofline-v100")


@pytest.fixture(scope="module")
def kernel_report(tmp_path_factory):
    path = dump_yaml(tmp_path_factory.mktemp("k") / "kernels.yaml",
                     {"name": "kernels", "ops": KERNEL_OPS})
    return hwsim.simulate(path, "roofline")


@pytest.mark.parametrize("which", ["model_report", "kernel_report"])
def test_json_follows_the_schema(request, which):
    report = request.getfixturevalue(which)
    doc = json.loads(report.to_json())
    assert doc == report.to_dict()  # JSON-clean: no NaN, numpy types or tuples
    assert TOP_KEYS <= set(doc) <= TOP_KEYS | TOP_EXTRAS
    assert doc["schema"] == "hwsim.report/1"
    assert set(doc["totals"]) == TOTALS_KEYS
    assert set(doc["totals"]["energy_breakdown_j"]) == BREAKDOWN_KEYS
    assert set(doc["target"]) == {"name", "preset", "spec"}
    assert doc["target"]["name"] == "roofline"
    assert doc["target"]["preset"] == "roofline-v100"
    assert doc["target"]["spec"]["dram_bw_bytes_per_s"] == 900e9
    assert len(doc["ops"]) == len(report.ops)
    for op in doc["ops"]:
        assert set(op) == OP_KEYS
        assert op["bound"] in BOUNDS
        assert isinstance(op["id"], int) and isinstance(op["flops"], int)
        assert op["layer"] is None or isinstance(op["layer"], int)
    for layer in doc["layers"]:
        assert set(layer) == LAYER_KEYS
    assert [op["id"] for op in doc["ops"]] == list(range(len(doc["ops"])))


def test_json_workload_is_the_resolved_workload(model_report, kernel_report):
    wl = model_report.to_dict()["workload"]
    assert (wl["name"], wl["batch"], wl["seq_len"], wl["kv_len"], wl["phase"]) == (
        "tiny", 2, 64, 0, "prefill")
    assert wl["dtype"] == "fp16"
    assert wl["tiling"]["attention"] == "auto"
    assert wl["segments"] == {"text": [0, 2], "rest": [2, 64]}  # the model's
    assert kernel_report.to_dict()["workload"]["ops"] == KERNEL_OPS


def test_layers_sum_to_totals(model_report):
    doc = model_report.to_dict()
    layers, totals = doc["layers"], doc["totals"]
    assert [x["layer"] for x in layers] == [0, 1, None]  # ops outside any layer last
    for key in ("flops", "dram_read_bytes", "dram_write_bytes"):
        assert sum(x[key] for x in layers) == totals[key]
        assert sum(op[key] for op in doc["ops"]) == totals[key]
    for key in ("latency_s", "energy_j"):
        assert sum(x[key] for x in layers) == pytest.approx(totals[key], rel=REL)
    assert sum(totals["energy_breakdown_j"].values()) == pytest.approx(totals["energy_j"],
                                                                       rel=REL)
    # the two layers are identical blocks
    for key in LAYER_KEYS - {"layer"}:
        assert layers[0][key] == pytest.approx(layers[1][key], rel=REL)


def test_layer_rows_match_their_ops(model_report):
    doc = model_report.to_dict()
    for layer in doc["layers"]:
        ops = [op for op in doc["ops"] if op["layer"] == layer["layer"]]
        assert layer["flops"] == sum(op["flops"] for op in ops)
        assert layer["latency_s"] == pytest.approx(sum(op["latency_s"] for op in ops), rel=REL)


def test_totals_numbers(model_report):
    from conftest import tiny_graph

    t = model_report.totals
    g = tiny_graph(2, 64)
    assert t["flops"] == t["dense_flops"] == g.flops()
    assert t["dram_read_bytes"] == sum(g.op_read_bytes(op) for op in g.ops)
    assert t["dram_write_bytes"] == sum(g.op_write_bytes(op) for op in g.ops)
    assert t["cycles"] is None  # the roofline has no clock


def test_csv_one_row_per_op_with_unit_columns(model_report, tmp_path):
    path = tmp_path / "ops.csv"
    model_report.to_csv(path)
    df = pd.read_csv(path)
    assert len(df) == len(model_report.ops) == 23
    assert OP_KEYS <= set(df.columns)
    labels = {"id", "name", "kind", "layer", "module", "bound", "flops", "executed_flops", "detail",
              "count"}  # count: how many times the op ran (its repeat)
    for col in set(df.columns) - labels:
        assert col.endswith(("_s", "_bytes", "_j")), col
    assert {"energy_compute_j", "energy_dram_j", "energy_static_j"} <= set(df.columns)
    assert df["flops"].tolist() == model_report.ops["flops"].tolist()
    assert df["latency_s"].tolist() == pytest.approx(model_report.ops["latency_s"].tolist(),
                                                     rel=1e-15)
    assert df["kind"].tolist() == model_report.ops["kind"].tolist()
    assert df["layer"].isna().sum() == 3  # embedding, lm_head, sampler


@pytest.mark.parametrize("fidelity", ["event", "analytical"])
def test_chrome_trace(tmp_path, fidelity, tiny_trace, write_workload):
    report = hwsim.simulate(write_workload({"trace": str(tiny_trace)}), "roofline",
                            fidelity=fidelity)
    path = tmp_path / "trace.json"
    write_chrome_trace(report, str(path))
    doc = json.loads(path.read_text(encoding="utf-8"))
    events = doc["traceEvents"]
    assert events == json.loads(json.dumps(chrome_events(report)))
    lanes = {e["tid"]: e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "thread_name"}
    ops_tid = next(t for t, name in lanes.items() if name == "ops")
    op_events = [e for e in events if e["ph"] == "X" and e["tid"] == ops_tid]
    busy = report.ops[report.ops["latency_s"] > 0]
    assert len(busy) == len(report.ops) - 2  # the two views take no time
    assert len(op_events) == len(busy)
    assert [e["name"] for e in op_events] == busy["name"].tolist()
    ts = [e["ts"] for e in op_events]
    assert ts == sorted(ts)
    assert ts == pytest.approx((busy["start_s"] * 1e6).tolist(), rel=1e-12)
    assert [e["dur"] for e in op_events] == pytest.approx((busy["latency_s"] * 1e6).tolist(),
                                                          rel=1e-12)
    for e, op in zip(op_events, busy.itertuples()):
        assert e["args"]["flops"] == op.flops and e["args"]["bound"] == op.bound
        assert e["cat"] == op.kind
    task_events = [e for e in events if e["ph"] == "X" and e["tid"] != ops_tid]
    if fidelity == "analytical":
        assert task_events == []
    else:
        # the roofline runs each op as its launch on the "stream" lane, then its work on
        # the "chip" lane; without a host every op was queued at t = 0, so an op's launch
        # began launch_hidden_s before its start on the device lane (taken in behind the
        # op before, all but kernel_gap_s) and its work ends with the op; identical ops
        # share one simulation, whose tasks are drawn for the first only
        assert {lanes[e["tid"]] for e in task_events} == {"chip", "stream"}
        firsts = [o for o in op_events if "same_as" not in o["args"]]
        repeats = [o for o in op_events if "same_as" in o["args"]]
        assert repeats, "the tiny model repeats a layer: some ops share a timeline"
        first_ids = {o["args"]["id"] for o in firsts}
        assert all(o["args"]["same_as"] in first_ids for o in repeats)
        by_op: dict = {}
        for t in task_events:
            by_op.setdefault(t["args"]["op"], []).append(t)
        assert sorted(by_op) == sorted(o["args"]["id"] for o in firsts)
        hidden = dict(zip(report.ops["id"], report.ops["launch_hidden_s"]))
        gap = report.target.spec.kernel_gap_s
        for o in firsts:
            launch, work = sorted(by_op[o["args"]["id"]], key=lambda t: t["ts"])
            assert lanes[launch["tid"]] == "stream" and lanes[work["tid"]] == "chip"
            hid = hidden[o["args"]["id"]] * 1e6
            assert hid == (0.0 if o is op_events[0] else
                           pytest.approx(launch["dur"] - gap * 1e6, rel=1e-12))
            assert launch["ts"] == pytest.approx(o["ts"] - hid, rel=1e-12)
            assert work["ts"] == pytest.approx(launch["ts"] + launch["dur"], rel=1e-12)
            assert work["ts"] + work["dur"] == pytest.approx(o["ts"] + o["dur"], rel=1e-12)


def test_table(kernel_report):
    text = kernel_report.table(top=3)
    lines = text.splitlines()
    assert lines[0] == "kernels on roofline-v100 (roofline), 6 ops, fidelity event"
    assert lines[1].split()[:1] == ["latency"]
    # 155.68 us: the ops' work, one whole launch (2.9 us) and five gaps (0.5 us; the ops
    # queued by the ideal host, hwsim.simulate.issue_from_host); see test_roofline
    assert "156 µs" in lines[1]
    head = next(i for i, x in enumerate(lines) if x.startswith("  top 3 ops by latency:"))
    assert "6 distinct of 6 ops" in lines[head]
    assert lines[head + 1].split() == ["count", "kind", "layers", "each", "total", "share",
                                       "flops", "dram", "bound", "name"]
    rows = lines[head + 2:head + 5]
    assert [r.split()[1] for r in rows] == ["softmax", "attention", "elementwise"]
    assert [r.split()[0] for r in rows] == ["1", "1", "1"]
    assert "memory" in rows[0] and "compute" in rows[1]


def test_report_repr_and_by_kind(kernel_report):
    assert repr(kernel_report).startswith("<Report kernels on roofline-v100: 0.156 ms, 6 ops")
    by_kind = kernel_report.by_kind()
    assert by_kind.index[0] == "softmax"
    assert by_kind["flops"].sum() == kernel_report.totals["flops"]


def test_json_has_no_nan(kernel_report):
    def walk(v):
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, float):
            assert math.isfinite(v)

    walk(kernel_report.to_dict())
