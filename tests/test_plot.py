"""hwsim.plot: Pareto fronts, breakdowns, rooflines, timelines, comparisons, trends.

Each figure is checked for what a reader needs: the points it should show, axis
labels with units, vector output that really is vector (PDF, SVG with text).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import KERNEL_OPS, ROOT

import hwsim
import hwsim.plot as hp
from hwsim.plot.style import label

BERT = str(ROOT / "workloads" / "bert-base.yaml")


@pytest.fixture(scope="module")
def sweep_df():
    spec = {"workload": BERT, "target": "roofline", "name": "bert",
            "axes": {"seq_len": [64, 128, 256], "batch": [1, 2],
                     "target.dram_bw_bytes_per_s": [3e11, 9e11]}}
    return hwsim.sweep(spec, workers=1, progress=False)


@pytest.fixture(scope="module")
def event_report(tmp_path_factory):
    import yaml

    path = tmp_path_factory.mktemp("wl") / "k.yaml"
    path.write_text(yaml.safe_dump({"name": "kernels", "ops": KERNEL_OPS}))
    return hwsim.simulate(path, "volta", fidelity="event")


def axis_labels(fig):
    return [(a.get_xlabel(), a.get_ylabel()) for a in fig.axes if a.get_xlabel()]


def test_labels_carry_units_with_fitting_prefixes():
    assert label("latency_s", [2e-4, 4e-2]) == ("latency (ms)", 1e3)
    assert label("dram_bytes", [3e9]) == ("DRAM traffic (GB)", 1e-9)
    assert label("energy_j", [5e-6])[0] == "energy (µJ)"
    assert label("latency_s", [120.0]) == ("latency (s)", 1.0)  # no kiloseconds
    assert label("seq_len", [4096]) == ("sequence length (tokens)", 1.0)
    assert label("target.dram_bw_bytes_per_s", [9e11])[0] == "dram bw (GB/s)"


def test_pareto_mask_minimizes_every_objective():
    df = pd.DataFrame({"a": [1, 2, 3, 1.5, 4], "b": [5, 3, 1, 5, 4]})
    assert hp.pareto_mask(df, ["a", "b"]).tolist() == [True, True, True, False, False]
    df3 = df.assign(c=[9, 9, 9, 0, 9])  # the 4th point wins on c
    assert hp.pareto_mask(df3, ["a", "b", "c"]).tolist() == [True, True, True, True, False]


def test_pareto_plot(sweep_df, tmp_path):
    fig = hp.pareto(sweep_df, ("latency_s", "energy_j", "dram_bytes"), hue="seq_len",
                    path=tmp_path / "p.pdf")
    assert len([a for a in fig.axes if a.get_xlabel()]) == 3
    assert ("latency (ms)", "energy (mJ)") in axis_labels(fig)
    data = tmp_path.joinpath("p.pdf").read_bytes()
    assert data.startswith(b"%PDF") and b"/FontFile2" in data  # TrueType embedded (type 42)


def test_breakdowns_from_reports_and_sweeps(sweep_df, tmp_path):
    reports = {t: hwsim.simulate(BERT, t, fidelity="analytical") for t in ("roofline", "volta")}
    table = hp.breakdown_table(reports, by="kind")
    for name, r in reports.items():
        assert table.loc[name].sum() == pytest.approx(r.totals["latency_s"], rel=1e-12)
    energy = hp.breakdown_table(reports, by="energy")
    assert energy.loc["volta"].sum() == pytest.approx(reports["volta"].totals["energy_j"])
    fig = hp.breakdown(reports, by="kind", path=tmp_path / "k.svg")
    assert fig.axes[0].get_ylabel() == "latency (ms)"
    svg = tmp_path.joinpath("k.svg").read_text()
    assert "<svg" in svg and "matmul" in svg  # text stays text
    sweep_table = hp.breakdown_table(sweep_df, by="kind", label="seq_len")
    first = sweep_df.iloc[0]
    assert sweep_table.iloc[0].sum() == pytest.approx(first["latency_s"], rel=1e-12)
    fig = hp.breakdown(sweep_df, by="energy", normalize=True)
    assert "share of energy (%)" in fig.axes[0].get_xlabel() + fig.axes[0].get_ylabel()


def test_roofline_places_ops_under_the_spec_ceilings(tmp_path):
    r = hwsim.simulate(BERT, "volta", fidelity="analytical")
    roofs = hp.ceilings(r.target.spec, "fp16")
    assert roofs["peak"][0][1] == pytest.approx(1024 * 80 * 1.53e9)  # tensor cores
    assert roofs["bandwidth"][0][1] == pytest.approx(r.target.spec.dram_bw_bytes_per_s)
    roof = hwsim.resolve("roofline").spec
    assert hp.ceilings(roof, "fp16")["peak"] == [("peak fp16", 125e12)]
    fig = hp.roofline(r, path=tmp_path / "roof.png")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "arithmetic intensity (FLOP/B)"
    assert ax.get_ylabel() == "achieved throughput (TFLOP/s)"
    placed = sum(len(c.get_offsets()) for c in ax.collections)
    assert placed == int(((r.ops["flops"] > 0) & (r.ops["dram_read_bytes"] +
                                                   r.ops["dram_write_bytes"] > 0)).sum())
    hp.roofline(hwsim.simulate(BERT, "ascend", fidelity="analytical"))  # macs-per-cycle spec


def test_timeline_lanes_from_the_event_engine(event_report):
    fig = hp.timeline(event_report, ops=slice(0, 3))
    ax = fig.axes[0]
    lanes = [t.get_text() for t in ax.get_yticklabels()]
    assert "stream" in lanes and len(lanes) <= 24
    assert ax.get_xlabel().startswith("time (")


def test_timeline_of_an_analytical_report_shows_ops():
    r = hwsim.simulate(BERT, "roofline", fidelity="analytical")
    fig = hp.timeline(r)
    assert "analytical fidelity" in fig.axes[0].get_title()
    assert {t.get_text() for t in fig.axes[0].get_yticklabels()} == set(r.ops["kind"])


def test_compare_targets_and_baseline(sweep_df):
    reports = {t: hwsim.simulate(BERT, t, fidelity="analytical") for t in ("roofline", "volta")}
    table = hp.compare_table(reports)
    assert table["latency_s"].tolist() == [reports[t].totals["latency_s"] for t in reports]
    fig = hp.compare(reports, baseline="roofline")
    assert fig.axes[0].get_ylabel() == "latency / roofline"
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="several rows"):
        hp.compare(sweep_df, by="seq_len")


def test_trend_and_heatmap(sweep_df, tmp_path):
    part = sweep_df[sweep_df["batch"] == 1]
    fig = hp.trend(part, x="seq_len", y="latency_s", hue="target.dram_bw_bytes_per_s")
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 and all(len(line.get_xdata()) == 3 for line in lines)
    fig = hp.heatmap(part, x="seq_len", y="target.dram_bw_bytes_per_s",
                     path=tmp_path / "h.pdf")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 6 and all(float(t) > 0 for t in texts)


def test_plot_results_writes_the_common_figures(sweep_df, tmp_path):
    paths = hp.plot_results(sweep_df, tmp_path / "figs", fmt="png")
    names = {p.rsplit("/", 1)[-1] for p in paths}
    assert {"pareto.png", "pareto-3d.png", "breakdown-kind.png", "breakdown-energy.png",
            "roofline.png", "trend-seq-len-latency.png"} <= names
    assert "compare.png" not in names  # one target only


def test_failed_points_are_left_out():
    df = pd.DataFrame({"latency_s": [1e-3, np.nan, 2e-3], "energy_j": [2.0, np.nan, 1.0],
                       "status": ["ok", "error", "ok"]})
    fig = hp.pareto(df)
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == 2
