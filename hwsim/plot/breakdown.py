"""Stacked breakdowns: where the time (or energy, or traffic) goes.

One bar per run, cut into the share of each op kind (``by="kind"``: attention,
matmul, softmax, ...) or of each energy component (``by="energy"``: compute,
on-chip memory, DRAM, static, interconnect, as in :mod:`hwsim.energy`)::

    import hwsim, hwsim.plot
    reports = {t: hwsim.simulate("workloads/bert-base.yaml", t) for t in ("roofline", "volta")}
    hwsim.plot.breakdown(reports, by="kind", metric="latency_s")
    hwsim.plot.breakdown(df, by="energy", label="seq_len")     # rows of a sweep

The input is a :class:`~hwsim.report.Report`, a list of them, a mapping
label -> Report, or a sweep's DataFrame (its ``by_kind`` column holds the sums
per kind; ``label`` names the columns that describe each bar, default the
axes). A sweep's bars are labelled by the shortest description that tells them
apart (:func:`hwsim.plot.labels.describe`: ``ascend, hawk``, not the pruning
axis's JSON), what they all share goes in the title, and past six bars (or with
long labels) the bars lie horizontally so their labels read left to right.
``normalize=True`` draws shares (each bar sums to 100 %). Kinds beyond the
``top`` largest are merged into "other" so the legend stays readable; an op
kind or energy component has the same colour in every figure.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any, Mapping, Sequence

import pandas as pd

from ..energy import COMPONENTS
from .style import (
    COLUMN_IN,
    PAGE_IN,
    axis_label,
    category_colors,
    ok_rows,
    paper,
    pyplot,
    quantity,
    save,
    si_axis,
)

KIND_METRICS = ("latency_s", "energy_j", "dram_bytes", "flops")
HOST_WAIT = "host wait"  # a latency part of its own: the device waiting for ops to be issued


def breakdown_table(source: Any, by: str = "kind", metric: str = "latency_s",
                    label: str | Sequence[str] | None = None) -> pd.DataFrame:
    """The numbers a breakdown plots: one row per bar, one column per part."""
    if by not in ("kind", "energy"):
        raise ValueError(f"by must be 'kind' or 'energy', got {by!r}")
    if by == "kind" and metric not in KIND_METRICS:
        raise ValueError(f"metric must be one of {', '.join(KIND_METRICS)}, got {metric!r}")
    if isinstance(source, pd.DataFrame):
        return _from_frame(source, by, metric, label)
    reports = _reports(source)
    rows = {}
    for name, r in reports.items():
        if by == "energy":
            rows[name] = dict(r.totals["energy_breakdown_j"])
        else:
            ops = r.ops.assign(dram_bytes=r.ops["dram_read_bytes"] + r.ops["dram_write_bytes"])
            rows[name] = ops.groupby("kind")[metric].sum().to_dict()
            if metric == "latency_s" and r.host_wait_s:  # the device idling for its host
                rows[name][HOST_WAIT] = r.host_wait_s
    return pd.DataFrame.from_dict(rows, orient="index").fillna(0.0)


def _reports(source: Any) -> dict[str, Any]:
    if isinstance(source, Mapping):
        return {str(k): v for k, v in source.items()}
    if not isinstance(source, (list, tuple)):
        source = [source]
    out = {}
    for r in source:
        name = r.target.preset
        while name in out:
            name += "'"
        out[name] = r
    return out


def _from_frame(df: pd.DataFrame, by: str, metric: str, lab) -> pd.DataFrame:
    from .labels import candidate_columns, common, describe  # noqa: PLC0415

    df = ok_rows(df)
    if lab is None:
        lab = candidate_columns(df)
    cols = [lab] if isinstance(lab, str) else list(lab)
    names = describe(df, cols) if cols else [""] * len(df)
    if not any(names):  # nothing tells the rows apart: number them
        names = [f"#{i + 1}" for i in range(len(df))]
    rows = []  # a list, not a dict: two bars may share a label
    for _, r in df.iterrows():
        if by == "energy":
            rows.append({c: float(r.get(f"energy_{c}_j", 0.0)) for c in COMPONENTS})
        else:
            parts = json.loads(r["by_kind"]) if isinstance(r.get("by_kind"), str) else {}
            rows.append({k: v[metric] for k, v in parts.items()})
    table = pd.DataFrame(rows, index=names).fillna(0.0)
    table.attrs["label"] = "configuration" if len(cols) > 1 else (cols[0] if cols else "")
    table.attrs["common"] = common(df, cols) if len(df) > 1 else ""
    return table


def breakdown(source: Any, by: str = "kind", metric: str = "latency_s", *,
              label: str | Sequence[str] | None = None, normalize: bool = False,
              top: int = 8, horizontal: bool | None = None, ax: Any = None,
              path: str | None = None, title: str | None = None):
    """Stacked bars of ``metric`` split by op kind or energy component; returns the figure."""
    table = breakdown_table(source, by, metric if by == "kind" else "energy_j", label)
    bar_label = table.attrs.get("label", "")
    shared = table.attrs.get("common", "")
    table = table.loc[:, (table != 0).any(axis=0)]
    order = table.sum().sort_values(ascending=False).index.tolist()
    if len(order) > top:
        keep = order[: top - 1]
        table = table[keep].assign(other=table.drop(columns=keep).sum(axis=1))
    else:
        table = table[order]
    plt = pyplot()
    unit_metric = metric if by == "kind" else "energy_j"
    if normalize:
        table = table.div(table.sum(axis=1).where(lambda s: s != 0, 1.0), axis=0) * 100
        axis_text = f"share of {quantity(unit_metric)[0]} (%)"
    else:
        axis_text = axis_label(unit_metric)
    n = len(table)
    names = ["\n".join(textwrap.wrap(str(i), 28)) or str(i) for i in table.index]
    longest = max((len(str(i)) for i in table.index), default=0)
    horizontal = (n > 6 or longest > 14) if horizontal is None else horizontal
    colors = category_colors(list(table.columns), "part")
    with paper():
        if ax is None:
            width = COLUMN_IN + 1.2 if n <= 6 and not horizontal else PAGE_IN
            lines = sum(name.count("\n") + 1 for name in names)
            height = max(2.4, 0.17 * lines + 0.08 * n + 1.0) if horizontal else 2.6
            fig, ax = plt.subplots(figsize=(width, height))
        else:
            fig = ax.figure
        left = [0.0] * n
        for part in table.columns:
            vals = table[part].tolist()
            # numeric positions: bars sharing a label must not merge into one category
            if horizontal:
                ax.barh(range(n), vals, left=left, label=part, color=colors[part], height=0.7)
            else:
                ax.bar(range(n), vals, bottom=left, label=part, color=colors[part], width=0.7)
            left = [a + b for a, b in zip(left, vals)]
        if horizontal:
            ax.set_yticks(range(n), names, fontsize=7)
            ax.set_xlabel(axis_text)
            ax.set_ylabel(bar_label)
            ax.invert_yaxis()
            ax.grid(axis="y", visible=False)
            if not normalize:
                si_axis(ax, "x", unit_metric)
        else:
            ax.set_xticks(range(n), names)
            ax.set_ylabel(axis_text)
            ax.set_xlabel(bar_label)
            ax.grid(axis="x", visible=False)
            if n > 3 or longest > 10:
                plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
            if not normalize:
                si_axis(ax, "y", unit_metric)
        ax.legend(title="op kind" if by == "kind" else "energy component",
                  bbox_to_anchor=(1.01, 1.0), loc="upper left", fontsize=7, title_fontsize=7)
        what = (f"{quantity(unit_metric)[0]} by op kind" if by == "kind"
                else "energy by component")
        text = title or what
        if shared and shared not in text:  # what every bar shares, always said
            text += f" ({shared})"
        ax.set_title(text, fontsize=8)
    return save(fig, path)
