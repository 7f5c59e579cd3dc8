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
(filter the other axes first), so that no bar silently averages points.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from .style import PAGE_IN, label, ok_rows, paper, pyplot, save, value_label

METRICS = ("latency_s", "energy_j", "dram_bytes")


def compare_table(source: Any, metrics: Sequence[str] = METRICS, by: str = "target",
                  hue: str | None = None) -> pd.DataFrame:
    """A tidy table of what :func:`compare` draws: by, hue and one column per metric."""
    if isinstance(source, pd.DataFrame):
        df = ok_rows(source)
        keys = [by] + ([hue] if hue else [])
        dup = df.duplicated(keys, keep=False)
        if dup.any():
            raise ValueError(f"several rows per {' x '.join(keys)}: filter the other axes "
                             f"first (e.g. df[df.seq_len == 512])")
        return df[keys + list(metrics)].reset_index(drop=True)
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
            path: str | None = None, title: str | None = None):
    """Bars per target (or ``by`` value) for each metric; returns the figure."""
    plt = pyplot()
    table = compare_table(source, metrics, by, hue)
    groups = list(dict.fromkeys(table[by].tolist()))
    hues = list(dict.fromkeys(table[hue].tolist())) if hue else [None]
    with paper():
        fig, axes = plt.subplots(1, len(metrics), figsize=(PAGE_IN, 2.5), squeeze=False)
        for ax, metric in zip(axes[0], metrics):
            values = table[metric].astype(float)
            if baseline is not None:
                ref = table[(table[hue] if hue else table[by]) == baseline]
                if ref.empty:
                    raise ValueError(f"baseline {baseline!r} is not among the "
                                     f"{hue or by} values {hues if hue else groups}")
                ylabel = f"{label(metric)[0].split(' (')[0]} / {value_label(baseline)}"
                factor = 1.0
            else:
                ylabel, factor = label(metric, values)
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
                    ys.append(v * factor)
                xs = np.arange(len(groups)) + (j - (len(hues) - 1) / 2) * width
                ax.bar(xs, ys, width=width * 0.95, color=f"C{j % 10}",
                       label=value_label(h) if h is not None else None)
            ax.set_xticks(range(len(groups)))
            ax.set_xticklabels([value_label(g) for g in groups],
                               rotation=30 if len(groups) > 3 else 0,
                               ha="right" if len(groups) > 3 else "center")
            ax.set_ylabel(ylabel)
            ax.grid(axis="x", visible=False)
            if log:
                ax.set_yscale("log")
            if baseline is not None:
                ax.axhline(1.0, color="black", linewidth=0.6)
        if hue:
            axes[0][-1].legend(title=label(hue)[0], fontsize=7, title_fontsize=7,
                               bbox_to_anchor=(1.01, 1.0), loc="upper left")
        if title:
            fig.suptitle(title)
    return save(fig, path)
