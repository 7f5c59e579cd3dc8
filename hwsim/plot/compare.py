"""Cross-target comparisons: the same workload, several machines, side by side.

:func:`compare` draws one panel per metric (latency, energy, DRAM traffic by
default), each with one bar per target, or per ``by`` value of a sweep,
optionally grouped by a second column ``hue`` (pruning method, say). With
``baseline=`` a bar's height is its ratio to the baseline's (speed-up plots
read better as "x times the dense baseline" than as raw seconds)::

    reports = {t: hwsim.simulate("workloads/bert-base.yaml", t) for t in ("roofline", "volta")}
    hwsim.plot.compare(reports)
    hwsim.plot.compare(df, by="target", hue="pruning.0.method", baseline="none")

The input is a list of reports, a mapping label -> report, or a sweep's
DataFrame; a DataFrame must hold one successful row per (``by``, ``hue``) pair
(filter the other axes first), so that no bar silently averages points. When
those rows were picked (each target's fastest point, say), ``configuration=``
names the columns that say which: each bar's tick label then carries the
shortest description of its configuration (``ascend`` over ``hawk keep=0.5``)
and what all bars share goes in the title, so no figure shows a chosen point
without saying which it is::

    best = df.loc[df.groupby("target").latency_s.idxmin()]
    hwsim.plot.compare(best, configuration=["pruning"],
                       title="fastest configuration per target")
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from .style import (
    PAGE_IN,
    axis_label,
    category_colors,
    natural_key,
    ok_rows,
    paper,
    pyplot,
    quantity,
    save,
    si_axis,
    value_label,
)

METRICS = ("latency_s", "energy_j", "dram_bytes")


def compare_table(source: Any, metrics: Sequence[str] = METRICS, by: str = "target",
                  hue: str | None = None,
                  configuration: Sequence[str] = ()) -> pd.DataFrame:
    """A tidy table of what :func:`compare` draws: by, hue, the ``configuration``
    columns and one column per metric."""
    if isinstance(source, pd.DataFrame):
        df = ok_rows(source)
        keys = [by] + ([hue] if hue else [])
        dup = df.duplicated(keys, keep=False)
        if dup.any():
            raise ValueError(f"several rows per {' x '.join(keys)}: filter the other axes "
                             f"first (e.g. df[df.seq_len == 512])")
        extra = [c for c in configuration if c in df.columns and c not in keys]
        return df[keys + extra + list(metrics)].reset_index(drop=True)
    if isinstance(source, dict):
        items = list(source.items())
    else:
        items = [(r.target.preset, r) for r in source]
    rows = []
    for name, r in items:
        t = r.totals
        row = {by: name, **{m: t.get(m, np.nan) for m in metrics if m != "dram_bytes"}}
        if "dram_bytes" in metrics:
            row["dram_bytes"] = t["dram_read_bytes"] + t["dram_write_bytes"]
        rows.append(row)
    return pd.DataFrame(rows)[[by, *metrics]]


def compare(source: Any, metrics: Sequence[str] = METRICS, *, by: str = "target",
            hue: str | None = None, baseline: Any = None, log: bool = False,
            configuration: str | Sequence[str] | None = None,
            path: str | None = None, title: str | None = None):
    """Bars per target (or ``by`` value) for each metric; returns the figure.

    ``configuration`` names the columns of a DataFrame that describe which
    point each bar is: its tick label says so, and the title says what all
    bars share."""
    from .labels import common, describe  # noqa: PLC0415

    plt = pyplot()
    config = [configuration] if isinstance(configuration, str) else list(configuration or [])
    table = compare_table(source, metrics, by, hue, config)
    config = [c for c in config if c in table.columns and c not in (by, hue)]
    groups = list(dict.fromkeys(table[by].tolist()))
    hues = list(dict.fromkeys(table[hue].tolist())) if hue else [None]
    ticks = [value_label(g) for g in groups]
    shared = ""
    if config and not hue:
        firsts = table.drop_duplicates(by).set_index(by).loc[groups].reset_index()
        texts = describe(firsts, config, full=True)
        ticks = [f"{t}\n{c}" if c else t for t, c in zip(ticks, texts)]
        shared = common(firsts, config)
    colors = category_colors([h for h in hues if h is not None], hue) if hue else {}
    with paper():
        longest = max((len(line) for t in ticks for line in t.split("\n")), default=0)
        fig, axes = plt.subplots(1, len(metrics), figsize=(PAGE_IN, 2.5 + 0.12 * (
            longest > 10) * sum(t.count("\n") + 1 for t in ticks[:1])), squeeze=False)
        for ax, metric in zip(axes[0], metrics):
            if baseline is not None:
                ref = table[(table[hue] if hue else table[by]) == baseline]
                if ref.empty:
                    raise ValueError(f"baseline {baseline!r} is not among the "
                                     f"{hue or by} values {hues if hue else groups}")
                ylabel = f"{quantity(metric)[0]} / {value_label(baseline)}"
            else:
                ylabel = axis_label(metric)
            width = 0.8 / len(hues)
            for j, h in enumerate(hues):
                sub = table if h is None else table[table[hue] == h]
                ys = []
                for g in groups:
                    cell = sub[sub[by] == g][metric]
                    v = float(cell.iloc[0]) if len(cell) else np.nan
                    if baseline is not None:
                        key = hue if hue else by
                        base = table[(table[key] == baseline) & ((table[by] == g) if hue
                                                                  else True)][metric]
                        v = v / float(base.iloc[0]) if len(base) and float(base.iloc[0]) \
                            else np.nan
                    ys.append(v)
                xs = np.arange(len(groups)) + (j - (len(hues) - 1) / 2) * width
                ax.bar(xs, ys, width=width * 0.95, color=colors.get(h, "C0"),
                       label=value_label(h, hue) if h is not None else None)
            ax.set_xticks(range(len(groups)))
            rotate = len(groups) > 3 and longest > 6
            ax.set_xticklabels(ticks, rotation=30 if rotate else 0,
                               ha="right" if rotate else "center",
                               fontsize=7 if config else None)
            ax.set_ylabel(ylabel)
            ax.grid(axis="x", visible=False)
            if log:
                ax.set_yscale("log")
            if baseline is not None:
                ax.axhline(1.0, color="black", linewidth=0.6)
                si_axis(ax, "y", plain=True)
            else:
                si_axis(ax, "y", metric)
        if hue:
            handles, labels = axes[0][-1].get_legend_handles_labels()
            order = sorted(range(len(labels)), key=lambda i: natural_key(hues[i]))
            axes[0][-1].legend([handles[i] for i in order], [labels[i] for i in order],
                               title=axis_label(hue), fontsize=7, title_fontsize=7,
                               bbox_to_anchor=(1.01, 1.0), loc="upper left")
        what = ", ".join(quantity(m)[0] for m in metrics) + f" per {by}"
        text = title or what
        if shared and shared not in text:
            text += f" (all: {shared})"
        fig.suptitle(text, fontsize=8)
    return save(fig, path)
