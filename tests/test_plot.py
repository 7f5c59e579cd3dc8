"""hwsim.plot: Pareto fronts, breakdowns, rooflines, timelines, comparisons, trends.

Each figure is checked for what a reader needs: the points it should show, axis
labels with units, vector output that really is vector (PDF, SVG with text), and
that it says what it shows: readable configuration labels, each machine's own
ceilings, fronts only over points doing the same work, SI tick labels, and one
colour per method or target across panels.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import KERNEL_OPS, ROOT
from matplotlib.ticker import EngFormatter

import hwsim
import hwsim.plot as hp
from hwsim.plot.style import label

BERT = str(ROOT / "workloads" / "bert-base.yaml")
TARGETS = ["roofline", "volta", "ascend", "armv8", "spatten"]


@pytest.fixture(scope="module")
def sweep_df():
    spec = {"workload": BERT, "target": "roofline", "name": "bert",
            "axes": {"seq_len": [64, 128, 256], "batch": [1, 2],
                     "target.dram_bw_bytes_per_s": [3e11, 9e11]}}
    return hwsim.sweep(spec, workers=1, progress=False)


@pytest.fixture(scope="module")
def targets_df():
    """Every built-in target x SpAtten token pruning x two prompt lengths: the
    shape of a realistic cross-target sweep (a pruning axis of JSON steps, a
    work-changing axis, machines with different ceilings)."""
    spec = {"workload": BERT, "target": "roofline", "name": "targets",
            "fidelity": "analytical",
            "axes": {"target": TARGETS,
                     "pruning": [[], [{"method": "spatten", "keep": 0.5}],
                                 [{"method": "spatten", "keep": 0.8}]],
                     "seq_len": [64, 128]}}
    return hwsim.sweep(spec, workers=1, progress=False)


@pytest.fixture(scope="module")
def event_report(tmp_path_factory):
    import yaml

    path = tmp_path_factory.mktemp("wl") / "k.yaml"
    path.write_text(yaml.safe_dump({"name": "kernels", "ops": KERNEL_OPS}))
    return hwsim.simulate(path, "volta", fidelity="event")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


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


def tick_texts(fig):
    """Every tick label a reader sees, major and minor, after drawing."""
    fig.canvas.draw()
    out = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            out += [t.get_text() for t in axis.get_ticklabels(which="both") if t.get_text()]
    return out


def assert_si_axes(ax):
    for axis in (ax.xaxis, ax.yaxis):
        assert isinstance(axis.get_major_formatter(), EngFormatter)
        assert isinstance(axis.get_minor_formatter(), EngFormatter)


def test_pareto_plot(sweep_df, tmp_path):
    fig = hp.pareto(sweep_df, ("latency_s", "energy_j", "dram_bytes"), hue="seq_len",
                    path=tmp_path / "p.pdf")
    assert len([a for a in fig.axes if a.get_xlabel()]) == 3
    assert ("latency (s)", "energy (J)") in axis_labels(fig)
    for ax in fig.axes[:3]:
        assert_si_axes(ax)
    # latencies of a few ms read "2 m", not "0.002" or "2x10^-3"
    assert any(t.endswith(" m") for t in tick_texts(fig))
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
    assert fig.axes[0].get_ylabel() == "latency (s)"
    assert isinstance(fig.axes[0].yaxis.get_major_formatter(), EngFormatter)
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
    # the datasheet bandwidth the target states (and the physics tests hold it to)
    assert roofs["bandwidth"][0][1] == pytest.approx(r.target.spec.dram_peak_bw_bytes_per_s)
    roof = hwsim.resolve("roofline").spec
    assert hp.ceilings(roof, "fp16")["peak"] == [("peak fp16", 125e12)]
    fig = hp.roofline(r, path=tmp_path / "roof.png")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "arithmetic intensity (FLOP/B)"
    assert ax.get_ylabel() == "achieved throughput (FLOP/s)"
    assert_si_axes(ax)
    assert "volta" in ax.get_title()
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
    # cells in SI: "1.4 m" for 1.4 ms (the unit, s, on the colour bar)
    assert len(texts) == 6 and all(t[-2:] in (" m", " µ") and float(t[:-2]) > 0 for t in texts)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["300 GB/s", "900 GB/s"]


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


def test_log_ticks_are_si_or_plain_never_scientific():
    # a log axis spanning less than a decade: matplotlib's own formatter labels its
    # minor ticks "4x10^0"; here every tick reads as an SI or plain number
    df = pd.DataFrame({"seq_len": [1024, 2048, 4096], "latency_s": [3.1, 4.2, 5.9],
                       "status": "ok"})
    fig = hp.trend(df, x="seq_len", y="latency_s", logy=True)
    texts = tick_texts(fig)
    assert texts and not [t for t in texts if "10^" in t or "$" in t or "e+" in t]
    assert "4" in texts  # a minor tick labelled, as a number
    assert_si_axes(fig.axes[0])
    fig = hp.trend(df.assign(latency_s=df.latency_s * 1e-3), x="seq_len", y="latency_s",
                   logy=True)
    assert "4 m" in tick_texts(fig)  # 4 ms on an axis labelled in seconds


def test_describe_writes_the_shortest_distinguishing_label():
    def steps(method, **kw):
        return json.dumps([{"keep": 0.5, "method": method, "segment": "visual", **kw}])

    df = pd.DataFrame({"target": ["ascend", "ascend", "ascend", "volta"],
                       "pruning": ["[]", steps("hawk"), steps("fastv", at_layer=2), "[]"]})
    assert hp.describe(df, ["target", "pruning"]) == [
        "ascend, dense", "ascend, hawk", "ascend, fastv", "volta, dense"]
    two = pd.DataFrame({"pruning": [steps("hawk"), steps("hawk").replace("0.5", "0.25")]})
    assert hp.describe(two, "pruning") == ["hawk keep=0.5", "hawk keep=0.25"]
    bw = pd.DataFrame({"target.dram_bw_bytes_per_s": [3e11, 1.2e12], "batch": [1, 1]})
    assert hp.describe(bw, list(bw.columns)) == ["dram_bw=300 GB/s", "dram_bw=1.2 TB/s"]


def test_breakdown_bars_are_labelled_by_configuration(targets_df):
    part = targets_df[targets_df.seq_len == 128]
    fig = hp.breakdown(part, by="kind")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]  # 15 bars: laid horizontally
    assert len(labels) == len(set(labels)) == 15
    assert not [lab for lab in labels if set(lab) & set('{}[]"')]
    assert {"ascend, spatten keep=0.5", "volta, dense", "armv8, spatten keep=0.8"} <= set(labels)
    assert "seq_len=128" in ax.get_title()  # what every bar shares


def test_roofline_draws_each_machines_own_ceilings(targets_df, sweep_df):
    import matplotlib.colors as mcolors

    fig = hp.roofline(targets_df, hue="target")
    ax = fig.axes[0]
    lines = ax.get_lines()
    drawn = {(max(line.get_ydata()), line.get_ydata()[0] / line.get_xdata()[0]): line
             for line in lines}
    assert len(lines) == len(drawn) == len(TARGETS)
    for i, t in enumerate(sorted(TARGETS)):
        resolved = hwsim.resolve(t)
        peak = resolved.target.peak_flops_per_s(resolved.spec, "fp16")
        bw = resolved.target.peak_dram_bw_bytes_per_s(resolved.spec)
        line = next(v for (p, b), v in drawn.items()
                    if p == pytest.approx(peak) and b == pytest.approx(bw))
        # the roof is drawn in its points' colour (one marker per target, in order)
        points = ax.collections[i]
        assert len(points.get_offsets()) == int((targets_df.target == t).sum())
        assert mcolors.to_hex(points.get_facecolors()[0]) == mcolors.to_hex(line.get_color())
    # a bandwidth axis: one roof per bandwidth, not the preset's 900 GB/s for all
    fig = hp.roofline(sweep_df, hue="seq_len")
    bws = sorted(line.get_ydata()[0] / line.get_xdata()[0] for line in fig.axes[0].get_lines())
    assert bws == pytest.approx([3e11, 9e11])


def test_spatten_ceiling_is_its_hbm():
    # 16 HBM channels x 32 B per cycle x 1 GHz: not a field found by its name
    assert hp.ceilings(hwsim.resolve("spatten"))["bandwidth"][0][1] == 512e9
    four = hwsim.resolve("spatten", {"dram_channels": 4})
    assert hp.ceilings(four)["bandwidth"][0][1] == 128e9
    df = pd.DataFrame({"target": "spatten", "target.dram_channels": [4, 16, 16],
                       "target.topk_parallelism": [8, 8, 32]})
    m = hp.machines(df)
    assert m["dram_bw_bytes_per_s"].tolist() == [128e9, 512e9, 512e9]
    assert m["machine"].tolist() == ["spatten, dram_channels=4", "spatten, dram_channels=16",
                                     "spatten, dram_channels=16"]


def test_pareto_compares_only_points_doing_the_same_work(sweep_df):
    keys, names = hp.work_groups(sweep_df)
    assert len(names) == 6 and "seq_len=64, batch=1" in names.values()
    fig = hp.pareto(sweep_df, ("latency_s", "energy_j"))
    ax = fig.axes[0]
    fronts = [line for line in ax.get_lines() if line.get_drawstyle() == "steps-post"]
    assert len(fronts) == 6  # one front per sequence length x batch
    expected = set()
    for g in names:
        group = sweep_df[keys == g]
        expected |= set(map(tuple, group[hp.pareto_mask(group, ("latency_s", "energy_j"))]
                            [["latency_s", "energy_j"]].to_numpy()))
    highlighted = {tuple(p) for p in ax.collections[1].get_offsets()}
    assert highlighted == expected and len(highlighted) >= 6
    assert "one per seq_len x batch" in ax.get_title()
    # across all sizes the front would be the smallest workload alone
    assert len(hp.pareto(sweep_df, work=None).axes[0].collections[1].get_offsets()) == 1
    # every point a different workload: no front, and the figure says so
    one_bw = sweep_df[sweep_df["target.dram_bw_bytes_per_s"] == 9e11]
    fig = hp.pareto(one_bw)
    assert "no Pareto front" in fig.axes[0].get_title()
    assert len(fig.axes[0].collections[1].get_offsets()) == 0


def test_compare_says_which_configuration_it_shows(targets_df):
    fig = dict(hp.figures(targets_df, kinds=["compare"]))["compare"]
    title = fig._suptitle.get_text()
    assert "fastest configuration per target" in title
    assert "seq_len=64" in title  # the work every bar does
    pool = targets_df[targets_df.seq_len == 64]
    best = pool.loc[pool.groupby("target").latency_s.idxmin()]
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    heights = [p.get_height() for p in fig.axes[0].patches]
    for tick, height, (_, row) in zip(ticks, heights, best.iterrows()):
        steps = json.loads(row["pruning"])
        config = f"spatten keep={steps[0]['keep']}" if steps else "dense"
        assert tick.startswith(row["target"])
        assert tick.split("\n")[1] == config
        assert height == pytest.approx(row["latency_s"])


def test_one_colour_per_strategy_across_panels():
    import matplotlib.colors as mcolors

    df = pd.DataFrame({"strategy": ["standard", "flash", "fastattention"] * 2,
                       "seq_len": [1024] * 3 + [2048] * 3,
                       "latency_s": [3e-3, 2e-3, 1e-3, 9e-3, 5e-3, 3e-3],
                       "energy_j": [3.0, 2.5, 2.0, 9.0, 6.0, 5.0], "status": "ok"})

    def line_colors(fig):
        return {line.get_label(): mcolors.to_hex(line.get_color())
                for line in fig.axes[0].get_lines()}

    full = line_colors(hp.trend(df, x="seq_len", y="latency_s", hue="strategy"))
    assert len(set(full.values())) == 3
    # another panel: a subset, in another order
    sub = df[df.strategy != "standard"].iloc[::-1]
    assert line_colors(hp.trend(sub, x="seq_len", y="latency_s", hue="strategy")) == {
        k: v for k, v in full.items() if k != "standard"}
    fig = hp.compare(df[df.seq_len == 2048], ["latency_s", "energy_j"], by="seq_len",
                     hue="strategy")
    bars = {c.get_label(): mcolors.to_hex(c.patches[0].get_facecolor())
            for c in fig.axes[0].containers}
    assert bars == full
    fig = hp.pareto(df[df.seq_len == 1024], hue="strategy")
    for points in fig.axes[0].collections:
        for xy, color in zip(points.get_offsets(), points.get_facecolors()):
            strategy = df[df.latency_s == xy[0]].strategy.iloc[0]
            assert mcolors.to_hex(color) == full[strategy]
