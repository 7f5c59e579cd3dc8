"""The terminal table people read: one formatter, identical ops grouped with their
count, latency by op kind and by layer, and what the fidelity means."""

from __future__ import annotations

import copy
import math

import pytest
from conftest import dump_yaml, run_hwsim

import hwsim
from hwsim.report import format_table
from hwsim.report.groups import (
    by_kind,
    by_layer,
    collapse_layers,
    compact_numbers,
    group_ops,
    name_pattern,
)
from hwsim.report.table import FIDELITY


@pytest.fixture(scope="module")
def model_report(tmp_path_factory):
    """The tiny model of four identical layers, from a trace file, on roofline-v100."""
    from conftest import tiny_graph

    from hwsim.ir import save

    d = tmp_path_factory.mktemp("tab")
    save(tiny_graph(2, 64, layers=4), d / "tiny.json.gz")
    wl = dump_yaml(d / "tiny.yaml", {"trace": "tiny.json.gz", "batch": 2, "seq_len": 64})
    return hwsim.simulate(wl, "roofline-v100")


# ------------------------------------------------------------------ the formatter
def test_format_table_pads_columns_and_aligns_them():
    text = format_table(["kind", "ops", "name"], [["matmul", 72, "q"], ["softmax", None, "a.b"]],
                        align="lrl")
    assert text.splitlines() == ["  kind     ops  name",
                                 "  matmul    72  q",
                                 "  softmax    -  a.b"]
    assert format_table(["a", "b"], [["x", 1]], indent="").splitlines() == ["a  b", "x  1"]
    assert not any(line.endswith(" ") for line in text.splitlines())


@pytest.mark.parametrize("align, row", [("lx", ["a", 1]), ("l", ["a", 1]), ("lr", ["a"])])
def test_format_table_refuses_mismatched_columns(align, row):
    with pytest.raises(ValueError):
        format_table(["a", "b"], [row], align=align)


# ------------------------------------------------------------------ grouping
def test_identical_ops_are_one_group_and_the_groups_are_maximal(model_report):
    r = model_report
    groups = group_ops(r)
    assert sum(g.count for g in groups) == len(r.rows)
    assert sorted(i for g in groups for i in g.ids) == [row["id"] for row in r.rows]
    ops = {op.id: op for op in r.graph.ops}
    rows = {row["id"]: row for row in r.rows}
    t = r.graph.tensors

    def work(i):
        op = ops[i]
        return (op.kind, sorted(op.attrs.items()), [t[x].shape for x in op.inputs],
                [t[x].shape for x in op.outputs])

    def cost(i):
        return tuple(rows[i][f] for f in ("latency_s", "flops", "dram_read_bytes",
                                          "dram_write_bytes", "energy_j", "bound"))

    for g in groups:  # one work and one cost inside a group ...
        assert len({repr(work(i)) for i in g.ids}) == 1
        assert len({cost(i) for i in g.ids}) == 1
        assert g.latency_s == rows[g.ids[0]]["latency_s"]
    firsts = [(repr(work(g.ids[0])), cost(g.ids[0])) for g in groups]
    assert len(set(firsts)) == len(firsts)  # ... and no two groups that should be one
    # four identical layers: each layer op's group holds one op per layer
    layered = [g for g in groups if g.layers[0] is not None]
    assert layered and all(g.count % 4 == 0 and g.layer_label == "0-3" for g in layered)
    assert math.fsum(g.total_latency_s for g in groups) == pytest.approx(
        r.totals["latency_s"] - r.host_wait_s, rel=1e-12)


def test_ops_of_equal_shapes_but_another_cost_stay_apart(model_report):
    r = copy.copy(model_report)
    r.rows = [dict(row) for row in model_report.rows]
    base = group_ops(model_report)
    big = max(base, key=lambda g: g.count)
    victim = next(row for row in r.rows if row["id"] == big.ids[-1])
    victim["latency_s"] *= 2  # as a data-dependent target could cost it
    groups = group_ops(r)
    assert len(groups) == len(base) + 1
    alone = next(g for g in groups if g.ids == [big.ids[-1]])
    assert alone.latency_s == 2 * big.latency_s


def test_ops_the_graph_does_not_hold_are_never_merged(model_report):
    r = copy.copy(model_report)
    r.graph = None
    assert len(group_ops(r)) == len(r.rows)


@pytest.mark.parametrize("names, expected", [
    (["layers.0.mlp.up", "layers.7.mlp.up"], "layers.*.mlp.up"),
    (["h.1.attn", "h.1.attn"], "h.1.attn"),
    (["m.layers.0.attn.q_proj", "m.layers.1.attn.q_proj", "m.layers.0.attn.k_proj"],
     "m.layers.*.attn.{q,k}_proj"),
    (["a.x", "b.x", "c.x", "d.x", "e.x"], "{a,b,c,+2 more}.x"),
    ([], ""),
])
def test_name_pattern(names, expected):
    assert name_pattern(names) == expected


def test_compact_numbers():
    assert compact_numbers([3, 0, 1, 2, 5, None, 7, 8]) == "0-3, 5, 7-8, -"
    assert compact_numbers([None]) == "-"


# ------------------------------------------------------------------ breakdowns
def test_by_kind_and_by_layer_add_up_to_the_run(model_report):
    r = model_report
    kinds = by_kind(r)
    assert [k["latency_s"] for k in kinds] == sorted((k["latency_s"] for k in kinds),
                                                     reverse=True)
    assert sum(k["ops"] for k in kinds) == len(r.rows)
    assert sum(k["flops"] for k in kinds) == r.totals["flops"]
    assert math.fsum(k["energy_j"] for k in kinds) == pytest.approx(r.totals["energy_j"])
    assert sum(k["dram_bytes"] for k in kinds) == (r.totals["dram_read_bytes"]
                                                   + r.totals["dram_write_bytes"])
    frame = r.by_kind()  # the pandas view agrees
    for k in kinds:
        assert k["latency_s"] == pytest.approx(frame.loc[k["kind"], "latency_s"], rel=1e-12)
    layers = by_layer(r)
    assert [x["layer"] for x in layers] == [0, 1, 2, 3, None]
    assert math.fsum(x["share"] for x in layers) == pytest.approx(1.0)
    for x, row in zip(layers, r.layers.itertuples(index=False)):
        assert x["latency_s"] == pytest.approx(row.latency_s, rel=1e-12)
        assert x["dram_bytes"] == row.dram_read_bytes + row.dram_write_bytes
    merged = collapse_layers(layers)
    assert [label for label, _ in merged] == ["0-3", "outside"]


def test_collapse_keeps_unequal_layers_apart():
    rows = [{"layer": i, "ops": 2, "latency_s": v, "flops": 1, "dram_bytes": 1, "energy_j": 1.0}
            for i, v in enumerate([1.0, 1.0, 2.0, 1.0])]
    assert [label for label, _ in collapse_layers(rows)] == ["0-1", "2", "3"]


# ------------------------------------------------------------------ the report's table
def test_table_groups_shows_breakdowns_and_explains_fidelity(model_report):
    text = model_report.table(top=5)
    lines = text.splitlines()
    assert "  by op kind:" in lines
    assert any(x.startswith("  by layer") for x in lines)
    head = next(i for i, x in enumerate(lines) if x.startswith("  top 5 ops by latency:"))
    rows = lines[head + 2:head + 7]
    counts = [int(x.split()[0]) for x in rows]
    assert max(counts) >= 4 and all(c % 4 == 0 for c in counts if c > 1)
    assert any("0-3" in x for x in rows)
    assert text.rstrip().endswith(".") and "fidelity event:" in text
    assert FIDELITY["event"] in " ".join(text.split())
    analytical = hwsim.simulate(model_report.workload, "roofline-v100", fidelity="analytical")
    assert "never above the event schedule" in " ".join(analytical.table().split())


def test_table_detail_lists_every_op_in_the_order_they_ran(model_report):
    lines = model_report.table(top=None, detail=True).splitlines()
    head = lines.index("  every op, one row each, in the order they ran:")
    ids = [int(x.split()[0]) for x in lines[head + 2:head + 2 + len(model_report.rows)]]
    assert ids == [row["id"] for row in model_report.rows]
    lines = model_report.table(top=3, detail=True).splitlines()
    head = lines.index("  the 3 longest ops, one row each, in the order they ran:")
    shown = [int(x.split()[0]) for x in lines[head + 2:head + 5]]
    longest = sorted(model_report.rows, key=lambda row: -row["latency_s"])[:3]
    assert sorted(shown) == sorted(row["id"] for row in longest) and shown == sorted(shown)


def test_cli_ops_all_prints_one_row_per_op(kernel_workload):
    r = run_hwsim("simulate", str(kernel_workload), "--ops", "all")
    assert r.returncode == 0, r.stderr
    assert "every op, one row each" in r.stdout and "distinct of" not in r.stdout
    assert FIDELITY["event"] in " ".join(r.stdout.split())
