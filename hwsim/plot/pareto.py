"""Pareto fronts: the design points no other point beats on every objective.

A point *dominates* another when it is no worse on every objective and strictly
better on one. Objectives are minimized (latency, energy, DRAM traffic) unless named
in ``maximize`` (a published quality score, ``quality_gqa``: higher is better). The
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
    fig = hwsim.plot.pareto(df, objectives=("latency_s", "quality_gqa"),
                            maximize=("quality_gqa",))   # quality beside cost
"""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .style import (
    COLUMN_IN,
    PAGE_IN,
    axis_label,
    categorical,
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


def pareto_mask(df: pd.DataFrame, objectives: Sequence[str],
                maximize: Sequence[str] = ()) -> np.ndarray:
    """Boolean mask of the rows on the Pareto front: every objective minimized, except
    those named in ``maximize`` (negated, so that higher is better)."""
    unknown = set(maximize) - set(objectives)
    if unknown:
        raise ValueError(f"maximize names {sorted(unknown)}, which are not objectives "
                         f"{list(objectives)}")
    values = df[list(objectives)].to_numpy(dtype=float)
    sign = np.array([-1.0 if o in maximize else 1.0 for o in objectives])
    values = values * sign
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
           maximize: Sequence[str] = (), hue: str | None = None,
           annotate: str | None = None, log: bool = False,
           work: str | Sequence[str] | None = "auto", ax: Any = None, path: str | None = None,
           title: str | None = None):
    """Scatter the successful points, the front emphasized and joined; returns the figure.

    ``maximize`` names the objectives where higher is better (a published quality
    column, ``quality_<benchmark>`` of a sweep, or any score); the others are
    minimized. Points without a value of every objective (a quality with no
    published row) are left out, never placed by interpolation.

    ``hue`` colours points by a column (categories get a legend, numbers a
    colour bar); ``annotate`` writes a column's value beside each front point.

    Only points doing the same work are compared: ``work="auto"`` groups rows
    by workload and dense FLOPs (:func:`hwsim.plot.labels.work_groups`), a
    column name (or several) groups by those, ``None`` compares every point.
    Each group gets its own front, coloured by group unless ``hue`` is given,
    and the title says so. When no group has two points there is no front to
    draw, and the figure says why instead.
    """
    plt = pyplot()
    df = ok_rows(df).dropna(subset=list(objectives)).reset_index(drop=True)
    if len(objectives) not in (2, 3):
        raise ValueError(f"pareto plots 2 or 3 objectives, got {list(objectives)}")
    maximize = tuple(maximize)
    if set(maximize) - set(objectives):
        raise ValueError(f"maximize names {sorted(set(maximize) - set(objectives))}, "
                         f"which are not objectives {list(objectives)}")
    raw, named = _groups(df, work)
    order = list(named)  # group keys may be tuples: number them
    keys = pd.Series([order.index(k) for k in raw], index=df.index, dtype=int)
    names = {i: named[k] for i, k in enumerate(order)}
    front = np.zeros(len(df), dtype=bool)
    for g in names:
        m = (keys == g).to_numpy()
        front[m] = pareto_mask(df[m], objectives, maximize)
    comparable = any(int((keys == g).sum()) > 1 for g in names)
    if not comparable:
        front[:] = False
    color_by = hue if hue is not None else ("__work__" if len(names) > 1 else None)
    if color_by == "__work__":
        df = df.assign(__work__=[names[k] for k in keys])
    pairs = list(itertools.combinations(objectives, 2))
    with paper():
        if ax is not None:
            if len(pairs) > 1:
                raise ValueError("give ax only for two objectives")
            axes, fig = [ax], ax.figure
        else:
            width = COLUMN_IN + 1.2 if len(pairs) == 1 else PAGE_IN
            fig, axes = plt.subplots(1, len(pairs), figsize=(width, 2.6 if len(pairs) == 1
                                                             else 2.4), squeeze=False)
            axes = list(axes[0])
        for a, (x, y) in zip(axes, pairs):
            _panel(a, df, front, keys, names, x, y, color_by, annotate, log, comparable,
                   maximize)
        if color_by is not None and len(df):
            _legend(fig, axes, df, color_by, comparable)
        what = ", ".join(quantity(o)[0] + (" (max)" if o in maximize else "")
                         for o in objectives)
        if not comparable and len(df) > 1:
            auto = (f"{what}: no Pareto front, every point does different work\n"
                    f"({_work_columns(df, names)}); only points of equal work compare")
        elif len(names) > 1:
            auto = (f"Pareto fronts of {what}, one per {_work_columns(df, names)}\n"
                    "(only points doing the same work are compared)")
        else:
            auto = f"Pareto front of {what}"
        suffix = f" ({names[next(iter(names))]})" if len(names) == 1 and names[
            next(iter(names))] else ""
        text = title or auto + suffix
        (axes[0].set_title if len(axes) == 1 else fig.suptitle)(text, fontsize=8)
    return save(fig, path)


def _groups(df: pd.DataFrame, work) -> tuple[pd.Series, dict]:
    from .labels import describe, work_groups  # noqa: PLC0415

    if work is None or not len(df):
        return pd.Series([0] * len(df), index=df.index), {0: ""}
    if isinstance(work, str) and work == "auto":
        return work_groups(df)
    cols = [work] if isinstance(work, str) else list(work)
    keys = pd.Series(list(zip(*(df[c].astype(str).tolist() for c in cols))), index=df.index)
    firsts = df.loc[~keys.duplicated()]
    return keys, dict(zip(keys[firsts.index].tolist(), describe(firsts, cols)))


def _work_columns(df, names) -> str:
    """The names of what differs between groups ("seq_len x batch"), for titles."""
    import re  # noqa: PLC0415

    first = next(iter(names.values()), "")
    found = re.findall(r"(\w+)=", first)
    return " x ".join(found) if found else "workload"


def _panel(ax, df, front, keys, names, x, y, hue, annotate, log, comparable,
           maximize=()) -> None:
    xs, ys = df[x].to_numpy(float), df[y].to_numpy(float)
    colors = _colors(df, hue)
    ax.scatter(xs[~front], ys[~front], s=12, c=colors[~front] if colors is not None else "0.6",
               alpha=0.5 if comparable else 0.9, linewidths=0, zorder=2)
    ax.scatter(xs[front], ys[front], s=26, c=colors[front] if colors is not None else "C3",
               edgecolors="black", linewidths=0.6, zorder=4, label="Pareto front")
    # the 2-D front of this projection within each group, as the staircase a reader expects
    for g in names:
        m = (keys == g).to_numpy()
        if not comparable or m.sum() < 2:
            continue
        sub = df[m]
        pf = pareto_mask(sub, (x, y), tuple(o for o in (x, y) if o in maximize))
        gx, gy = xs[m][pf], ys[m][pf]
        order = np.argsort(gx)
        # the boundary of what the front dominates: at each x, the best y among the
        # front points on the dominated side (left of x when x is minimized, right of
        # it when maximized)
        style = "steps-pre" if x in maximize else "steps-post"
        ax.plot(gx[order], gy[order], drawstyle=style, color="black",
                linewidth=0.8, zorder=3)
    if annotate:
        for xv, yv, v in zip(xs[front], ys[front], df.loc[front, annotate]):
            ax.annotate(value_label(v, annotate), (xv, yv), textcoords="offset points",
                        xytext=(3, 3), fontsize=6.5)
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(axis_label(y))
    si_axis(ax, "x", x)
    si_axis(ax, "y", y)


def _colors(df, hue):
    if hue is None or not len(df):
        return None
    import matplotlib  # noqa: PLC0415

    values = df[hue]
    if categorical(values) or hue == "__work__":
        mapping = category_colors(values.tolist(), hue)
        return np.array([matplotlib.colors.to_rgba(mapping[v]) for v in values])
    norm = matplotlib.colors.Normalize(float(values.min()), float(values.max()))
    return matplotlib.colormaps["viridis"](norm(values.to_numpy(float)))


def _legend(fig, axes, df, hue, comparable) -> None:
    import matplotlib  # noqa: PLC0415
    from matplotlib.lines import Line2D  # noqa: PLC0415

    values = df[hue]
    hue_label = "work" if hue == "__work__" else axis_label(hue)
    if categorical(values) or hue == "__work__":
        mapping = category_colors(values.tolist(), hue)
        handles = [Line2D([], [], marker="o", linestyle="", color=mapping[c],
                          label=c if hue == "__work__" else value_label(c, hue))
                   for c in sorted(mapping, key=natural_key)]
        if comparable:
            handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="none",
                                  markeredgecolor="black", label="Pareto front"))
        # outside the axes, so that it never covers points: beside them, or below
        # the figure when it is long
        if len(handles) <= 10:
            axes[-1].legend(handles=handles, title=hue_label, loc="upper left",
                            bbox_to_anchor=(1.02, 1.0), fontsize=6.5, title_fontsize=7)
        else:
            fig.legend(handles=handles, title=hue_label, loc="outside lower center",
                       fontsize=6.5, title_fontsize=7, ncol=3 if len(axes) == 1 else 5)
            fig.set_figheight(fig.get_figheight() + 0.17 * (len(handles) // 3 + 2))
    else:
        norm = matplotlib.colors.Normalize(float(values.min()), float(values.max()))
        sm = matplotlib.cm.ScalarMappable(norm=norm, cmap="viridis")
        bar = fig.colorbar(sm, ax=axes, label=hue_label, shrink=0.9)
        si_axis(bar.ax, "y", hue)
