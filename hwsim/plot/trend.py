"""How a metric moves along an axis: line plots and heat maps of sweep results.

:func:`trend` draws ``y`` against one axis ``x``, one line per value of
``hue`` (and one panel per value of ``col``): "latency against keep ratio, one
line per top-k parallelism". :func:`heatmap` shows a metric over two axes at
once, with the value written in each cell: "latency over block_q x block_kv".
Both take a sweep's DataFrame; failed points are left out (a gap in a line),
and every point of a (``x``, ``hue``, ``col``) cell must be unique, so filter
or aggregate the other axes first::

    hwsim.plot.trend(df, x="pruning.0.keep", y="latency_s", hue="target.dram_bw_bytes_per_s")
    hwsim.plot.heatmap(df[df["ops.0.q_len"] == 8192], x="tiling.block_kv",
                       y="tiling.block_q", value="latency_s")
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .style import (
    COLUMN_IN,
    PAGE_IN,
    axis_label,
    category_colors,
    format_value,
    ok_rows,
    paper,
    pyplot,
    quantity,
    save,
    si_axis,
    value_label,
)


def trend(df: pd.DataFrame, x: str, y: str = "latency_s", *, hue: str | None = None,
          col: str | None = None, logx: bool | None = None, logy: bool = False,
          relative_to: Any = None, ax: Any = None, path: str | None = None,
          title: str | None = None):
    """Lines of ``y`` against ``x``; returns the figure.

    ``relative_to`` divides each line by its value at ``x == relative_to``
    (a normalized trend: "latency relative to keep = 1.0").
    """
    plt = pyplot()
    df = ok_rows(df)
    cols = list(dict.fromkeys(df[col].tolist())) if col else [None]
    hues = list(dict.fromkeys(df[hue].tolist())) if hue else [None]
    keys = [k for k in (x, hue, col) if k]
    if df.duplicated(keys).any():
        raise ValueError(f"several points per {' x '.join(keys)}: filter or aggregate the "
                         f"other axes first")
    if logx is None:
        xs = df[x]
        logx = bool(pd.api.types.is_numeric_dtype(xs) and (xs > 0).all()
                    and xs.max() / max(xs.min(), 1e-300) >= 16)
    ylab = axis_label(y)
    if relative_to is not None:
        ylab = f"{quantity(y)[0]} relative to {x} = {value_label(relative_to, x)}"
    numeric_x = pd.api.types.is_numeric_dtype(df[x])
    colors = category_colors([h for h in hues if h is not None], hue) if hue else {}
    with paper():
        if ax is not None:
            fig, axes = ax.figure, [ax]
        else:
            width = COLUMN_IN + (1.0 if hue else 0.0) if len(cols) == 1 \
                else min(PAGE_IN, 2.4 * len(cols) + (1.0 if hue else 0.0))
            fig, axs = plt.subplots(1, len(cols), figsize=(width, 2.5), squeeze=False,
                                    sharey=True)
            axes = list(axs[0])
        for a, c in zip(axes, cols):
            part = df if c is None else df[df[col] == c]
            for h in hues:
                line = part if h is None else part[part[hue] == h]
                line = line.sort_values(x)
                ys = line[y].to_numpy(float)
                if relative_to is not None:
                    ref = line[line[x] == relative_to][y]
                    ys = ys / float(ref.iloc[0]) if len(ref) else ys * np.nan
                xv = line[x].to_numpy(float) if numeric_x else line[x]
                a.plot(xv, ys, marker="o", color=colors.get(h, "C0"),
                       label=value_label(h, hue) if h is not None else None)
            if logx:
                a.set_xscale("log")
            if logy:
                a.set_yscale("log")
            a.set_xlabel(axis_label(x))
            if numeric_x:
                si_axis(a, "x", x)
            si_axis(a, "y", y, plain=True if relative_to is not None else None)
            if c is not None:
                a.set_title(f"{quantity(col)[0]} = {format_value(col, c)}", fontsize=8)
        axes[0].set_ylabel(ylab)
        if hue:
            # beside the axes: a legend inside would cover lines
            axes[-1].legend(title=axis_label(hue), fontsize=7, title_fontsize=7,
                            loc="upper left", bbox_to_anchor=(1.02, 1.0))
        if title:
            (axes[0].set_title if len(axes) == 1 and col is None else fig.suptitle)(
                title, fontsize=8)
    return save(fig, path)


def heatmap(df: pd.DataFrame, x: str, y: str, value: str = "latency_s", *,
            fmt: str | None = None, cmap: str = "viridis_r", best: str | None = "min",
            ax: Any = None, path: str | None = None, title: str | None = None):
    """``value`` over the grid of ``x`` by ``y``, each cell labelled; returns the figure.

    Cells read with an SI prefix (``1.2 m`` for 1.2 ms; the unit is on the colour
    bar) unless ``fmt`` (``"{:.3g}"``) says otherwise.

    The best cell (``best="min"``, or ``"max"`` for a speed-up; ``None`` for
    none) is outlined in red. Cells without a successful point stay blank.
    """
    plt = pyplot()
    df = ok_rows(df)
    if df.duplicated([x, y]).any():
        raise ValueError(f"several points per {x} x {y}: filter the other axes first")
    grid = df.pivot(index=y, columns=x, values=value).sort_index().sort_index(axis=1)
    data = grid.to_numpy(float)
    cell = _cell_format(fmt, value)
    with paper():
        if ax is None:
            fig, ax = plt.subplots(figsize=(COLUMN_IN + 0.5, 2.4 + 0.12 * len(grid)))
        else:
            fig = ax.figure
        im = ax.imshow(data, cmap=cmap, aspect="auto", origin="lower")
        bar = fig.colorbar(im, ax=ax, label=axis_label(value))
        si_axis(bar.ax, "y", value)
        ax.set_xticks(range(grid.shape[1]))
        ax.set_xticklabels([value_label(v, x) for v in grid.columns])
        ax.set_yticks(range(grid.shape[0]))
        ax.set_yticklabels([value_label(v, y) for v in grid.index])
        ax.set_xlabel(axis_label(x))
        ax.set_ylabel(axis_label(y))
        ax.grid(False)
        finite = np.isfinite(data)
        if finite.any():
            for (i, j), v in np.ndenumerate(data):
                if np.isfinite(v):
                    r, g, b, _ = im.cmap(im.norm(v))
                    dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5  # text contrasts the cell
                    ax.text(j, i, cell(v), ha="center", va="center", fontsize=6.5,
                            color="white" if dark else "black")
            if best in ("min", "max"):
                pick = np.nanargmin if best == "min" else np.nanargmax
                fill = np.inf if best == "min" else -np.inf
                bi, bj = np.unravel_index(pick(np.where(finite, data, fill)), data.shape)
                ax.add_patch(plt.Rectangle((bj - 0.5, bi - 0.5), 1, 1, fill=False,
                                           edgecolor="red", linewidth=1.5))
        if title:
            ax.set_title(title, fontsize=8)
    return save(fig, path)


def _cell_format(fmt: str | None, column: str):
    """A cell's text: ``fmt`` when given, else the value with an SI prefix (``1.2 m``)."""
    if fmt:
        return fmt.format
    from .style import _NO_PREFIX, plain_number, si_number  # noqa: PLC0415

    if quantity(column)[1] in _NO_PREFIX:
        return lambda v: plain_number(float(f"{v:.3g}"))
    return si_number
