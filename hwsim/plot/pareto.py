"""Pareto fronts: the design points no other point beats on every objective.

A point *dominates* another when it is no worse on every objective (all are
minimized: latency, energy, DRAM traffic) and strictly better on one. The
*Pareto front* is the set of points nothing dominates: the only designs worth
choosing between, whatever weight one gives each objective.

:func:`pareto_mask` finds the front of any number of objectives;
:func:`pareto` plots a sweep's points with the front highlighted: one panel for
two objectives, or the three pairwise panels for three (the highlighted points
are then the three-objective front, so some may look dominated in one
projection)::

    import hwsim.plot
    fig = hwsim.plot.pareto(df, objectives=("latency_s", "energy_j"), hue="seq_len")
    fig = hwsim.plot.pareto(df, objectives=("latency_s", "energy_j", "dram_bytes"),
                            path="figures/pareto.pdf")
"""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .style import COLUMN_IN, PAGE_IN, categorical, label, ok_rows, paper, pyplot, save, value_label


def pareto_mask(df: pd.DataFrame, objectives: Sequence[str]) -> np.ndarray:
    """Boolean mask of the rows on the Pareto front (every objective minimized)."""
    values = df[list(objectives)].to_numpy(dtype=float)
    n = len(values)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        if not mask[i]:
            continue
        others = values[mask]
        dominated = np.all(others <= values[i], axis=1) & np.any(others < values[i], axis=1)
        if dominated.any():
            mask[i] = False
    return mask


def pareto(df: pd.DataFrame, objectives: Sequence[str] = ("latency_s", "energy_j"), *,
           hue: str | None = None, annotate: str | None = None, log: bool = False,
           ax: Any = None, path: str | None = None, title: str | None = None):
    """Scatter the successful points, the front emphasized and joined; returns the figure.

    ``hue`` colours points by a column (categories get a legend, numbers a
    colour bar); ``annotate`` writes a column's value beside each front point.
    """
    plt = pyplot()
    df = ok_rows(df).dropna(subset=list(objectives)).reset_index(drop=True)
    if len(objectives) not in (2, 3):
        raise ValueError(f"pareto plots 2 or 3 objectives, got {list(objectives)}")
    front = pareto_mask(df, objectives) if len(df) else np.zeros(0, dtype=bool)
    pairs = list(itertools.combinations(objectives, 2))
    with paper():
        if ax is not None:
            if len(pairs) > 1:
                raise ValueError("give ax only for two objectives")
            axes, fig = [ax], ax.figure
        else:
            width = COLUMN_IN if len(pairs) == 1 else PAGE_IN
            fig, axes = plt.subplots(1, len(pairs), figsize=(width, 2.6 if len(pairs) == 1
                                                             else 2.4), squeeze=False)
            axes = list(axes[0])
        for a, (x, y) in zip(axes, pairs):
            _panel(a, df, front, x, y, hue, annotate, log)
        if hue is not None and len(df):
            _legend(fig, axes, df, hue)
        if title:
            fig.suptitle(title)
    return save(fig, path)


def _panel(ax, df, front, x, y, hue, annotate, log) -> None:
    xl, xf = label(x, df[x] if len(df) else None)
    yl, yf = label(y, df[y] if len(df) else None)
    xs, ys = df[x].to_numpy(float) * xf, df[y].to_numpy(float) * yf
    colors = _colors(df, hue)
    ax.scatter(xs[~front], ys[~front], s=12, c=colors[~front] if colors is not None else "0.6",
               alpha=0.45, linewidths=0, zorder=2)
    ax.scatter(xs[front], ys[front], s=26, c=colors[front] if colors is not None else "C3",
               edgecolors="black", linewidths=0.6, zorder=4, label="Pareto front")
    # the 2-D front of this projection, as the staircase a reader expects
    pf = pareto_mask(df, (x, y)) if len(df) else np.zeros(0, dtype=bool)
    order = np.argsort(xs[pf])
    ax.plot(xs[pf][order], ys[pf][order], drawstyle="steps-post", color="black",
            linewidth=0.8, zorder=3)
    if annotate:
        for xv, yv, v in zip(xs[front], ys[front], df.loc[front, annotate]):
            ax.annotate(value_label(v), (xv, yv), textcoords="offset points", xytext=(3, 3),
                        fontsize=6.5)
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)


def _colors(df, hue):
    if hue is None or not len(df):
        return None
    import matplotlib  # noqa: PLC0415

    values = df[hue]
    if categorical(values):
        cats = list(dict.fromkeys(values.tolist()))
        cmap = matplotlib.colormaps["tab10"]
        return np.array([cmap(cats.index(v) % 10) for v in values])
    norm = matplotlib.colors.Normalize(float(values.min()), float(values.max()))
    return matplotlib.colormaps["viridis"](norm(values.to_numpy(float)))


def _legend(fig, axes, df, hue) -> None:
    import matplotlib  # noqa: PLC0415
    from matplotlib.lines import Line2D  # noqa: PLC0415

    values = df[hue]
    hue_label = label(hue)[0]
    if categorical(values):
        cats = list(dict.fromkeys(values.tolist()))
        cmap = matplotlib.colormaps["tab10"]
        handles = [Line2D([], [], marker="o", linestyle="", color=cmap(i % 10),
                          label=value_label(c)) for i, c in enumerate(cats)]
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="none",
                              markeredgecolor="black", label="Pareto front"))
        axes[-1].legend(handles=handles, title=hue_label, loc="upper right", fontsize=7,
                        title_fontsize=7)
    else:
        norm = matplotlib.colors.Normalize(float(values.min()), float(values.max()))
        sm = matplotlib.cm.ScalarMappable(norm=norm, cmap="viridis")
        fig.colorbar(sm, ax=axes, label=hue_label, shrink=0.9)
