"""Hand-made SVG charts for the HTML report: bars, stacked columns, log-log roofline,
Gantt lanes and lines.

The HTML report (:mod:`hwsim.report.html`) must open offline and show in a Jupyter
output cell, so its figures are inline SVG text built here: no plotting library at
render time, no fonts or scripts to fetch, a few kilobytes per chart, and every
mark carries a ``<title>`` (the browser's tooltip) with its exact figures.
Everything here returns a string of one ``<svg>`` element sized in CSS pixels; the
caller escapes nothing (labels are escaped here).

Charts with many marks bound their size: :func:`gantt` merges marks narrower than
a pixel on the same lane into one (:func:`bin_marks`), so a lane is at most as many
rectangles as it is pixels wide, whatever the run's op or task count.
"""

from __future__ import annotations

import math
from html import escape
from typing import Callable, Sequence

from .table import si

# categorical colours (matplotlib's tab10, then tab20's light ones): one per op kind
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896",
           "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"]
FONT = 'font-family="system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif"'


def colours(names: Sequence[str]) -> dict[str, str]:
    """A colour per name, in order; past the palette's 20 the colours repeat."""
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}


def _svg(width: float, height: float, body: list[str], label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="hwsim-chart" width="{width:.0f}" '
            f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
            f'aria-label="{escape(label)}" {FONT} font-size="11">' + "".join(body) + "</svg>")


def _rect(x: float, y: float, w: float, h: float, fill: str, title: str, extra: str = "") -> str:
    return (f'<rect x="{x:.2f}" y="{y:.2f}" width="{max(w, 0):.2f}" height="{h:.2f}" '
            f'fill="{fill}"{extra}><title>{escape(title)}</title></rect>')


def _text(x: float, y: float, s: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(s)}</text>'


def nice_ticks(hi: float, n: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``hi`` (1, 2, 2.5 or 5 times a power of ten)."""
    if not hi > 0:
        return [0.0, 1.0]
    raw = hi / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    count = math.ceil(hi / step - 1e-9)
    return [i * step for i in range(count + 1)]


def hbars(rows: Sequence[tuple[str, float, str, str]], unit: str, *, width: int = 640,
          label: str = "", fmt: Callable[[float], str] | None = None) -> str:
    """Horizontal bars, one per ``(label, value, colour, tooltip)``, largest scale at
    the longest bar, each with its value written after it (``fmt``, by default
    :func:`~hwsim.report.table.si` with ``unit``)."""
    fmt = fmt or (lambda v: si(v, unit))
    left, right, bar, pad = 150, 70, 16, 4
    h = 8 + len(rows) * (bar + pad) + 22
    hi = max((v for _, v, _, _ in rows), default=0.0)
    ticks = nice_ticks(hi)
    scale = (width - left - right) / (ticks[-1] or 1.0)
    body = []
    for t in ticks:
        x = left + t * scale
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="4" y2="{h - 18}" stroke="#e3e3e3"/>')
        body.append(_text(x, h - 6, fmt(t), "middle", ' fill="#666"'))
    for i, (name, v, colour, tip) in enumerate(rows):
        y = 8 + i * (bar + pad)
        body.append(_text(left - 6, y + bar - 4, name, "end"))
        body.append(_rect(left, y, v * scale, bar, colour, tip))
        body.append(_text(left + v * scale + 4, y + bar - 4, fmt(v)))
    return _svg(width, h, body, label)


def stacked_columns(columns: Sequence[tuple[str, Sequence[tuple[str, float, str]]]], unit: str,
                    *, width: int = 760, height: int = 240, label: str = "",
                    legend: Sequence[tuple[str, str]] = ()) -> str:
    """Vertical columns, each ``(label, [(part, value, colour)])`` stacked bottom-up;
    tick labels under at most ~30 columns; a legend of ``(name, colour)`` on top."""
    left, bottom, top = 64, 34, 8 + (16 if legend else 0)
    n = max(len(columns), 1)
    plot_w = width - left - 10
    slot = plot_w / n
    hi = max((sum(v for _, v, _ in parts) for _, parts in columns), default=0.0)
    ticks = nice_ticks(hi)
    scale = (height - top - bottom) / (ticks[-1] or 1.0)
    base = height - bottom
    body = []
    for t in ticks:
        y = base - t * scale
        body.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" '
                    f'stroke="#e3e3e3"/>')
        body.append(_text(left - 4, y + 4, si(t, unit), "end", ' fill="#666"'))
    every = max(1, math.ceil(n / 30))
    for i, (name, parts) in enumerate(columns):
        x = left + i * slot + slot * 0.1
        y = base
        for part, v, colour in parts:
            if v <= 0:
                continue
            body.append(_rect(x, y - v * scale, slot * 0.8, v * scale, colour,
                              f"{name}: {part} {si(v, unit)}"))
            y -= v * scale
        total = sum(v for _, v, _ in parts)
        body.append(_rect(x, y, slot * 0.8, 0.01, "none", f"{name}: {si(total, unit)}"))
        if i % every == 0:
            body.append(_text(x + slot * 0.4, base + 14, name, "middle", ' fill="#444"'))
    x = left
    for name, colour in legend:
        body.append(_rect(x, 4, 10, 10, colour, name))
        body.append(_text(x + 13, 13, name))
        x += 22 + 6.5 * len(name)
    return _svg(width, height, body, label)


def _decades(lo: float, hi: float) -> tuple[float, float]:
    return 10 ** math.floor(math.log10(lo)), 10 ** math.ceil(math.log10(hi))


def roofline(points: Sequence[tuple[float, float, float, str, str]],
             peaks: Sequence[tuple[str, float]], bandwidth: tuple[str, float] | None, *,
             width: int = 640, height: int = 360, label: str = "",
             legend: Sequence[tuple[str, str]] = ()) -> str:
    """A log-log roofline: ``points`` as ``(FLOP per DRAM byte, FLOP/s, radius,
    colour, tooltip)`` under the machine's ceilings: each ``(label, peak FLOP/s)``
    flat, meeting the ``(label, B/s)`` bandwidth diagonal at its ridge point."""
    left, bottom, top, right = 86, 40, 12 + (16 if legend else 0), 24
    xs = [p[0] for p in points]
    ys = [p[1] for p in points] + [p for _, p in peaks]
    ridges = [p / bandwidth[1] for _, p in peaks] if bandwidth else []
    x_lo, x_hi = _decades(min(xs + ridges, default=1.0) / 2, max(xs + ridges, default=10.0) * 4)
    y_lo, y_hi = _decades(min(ys, default=1e9) / 2, max(ys, default=1e12) * 1.5)
    if bandwidth:  # the diagonal enters the plot at its left edge
        y_lo = min(y_lo, 10 ** math.floor(math.log10(max(x_lo * bandwidth[1], 1e-30))))
    y_lo = max(y_lo, y_hi / 1e7)  # at most seven decades: the points stay readable
    lx0, lx1, ly0, ly1 = map(math.log10, (x_lo, x_hi, y_lo, y_hi))
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (math.log10(x) - lx0) / (lx1 - lx0) * pw

    def py(y: float) -> float:
        return top + ph - (math.log10(max(y, y_lo)) - ly0) / (ly1 - ly0) * ph

    body = [f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
            f'stroke="#bbb"/>']
    for e in range(round(lx0), round(lx1) + 1):
        x = px(10.0 ** e)
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" '
                    f'stroke="#eee"/>')
        body.append(_text(x, top + ph + 14, f"{10.0 ** e:g}" if -3 <= e <= 5 else f"1e{e}",
                          "middle", ' fill="#666"'))
    for e in range(round(ly0), round(ly1) + 1):
        y = py(10.0 ** e)
        body.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" '
                    f'stroke="#eee"/>')
        body.append(_text(left - 4, y + 4, si(10.0 ** e, "FLOP/s"), "end", ' fill="#666"'))
    body.append(_text(left + pw / 2, height - 6, "arithmetic intensity (FLOP per DRAM byte)",
                      "middle"))
    for i, (name, peak) in enumerate(peaks):
        ridge = peak / bandwidth[1] if bandwidth else x_lo
        x0 = max(ridge, x_lo)
        path = f"M{px(x0):.1f},{py(peak):.1f} L{px(x_hi):.1f},{py(peak):.1f}"
        if bandwidth:
            path = f"M{px(x_lo):.1f},{py(x_lo * bandwidth[1]):.1f} L{px(x0):.1f}," \
                   f"{py(peak):.1f} L{px(x_hi):.1f},{py(peak):.1f}"
        dash = "" if i == 0 else ' stroke-dasharray="5,3"'
        body.append(f'<path d="{path}" fill="none" stroke="#333" stroke-width="1.5"{dash}>'
                    f'<title>{escape(name)}: {si(peak, "FLOP/s")}</title></path>')
        text = f"{name} {si(peak, 'FLOP/s')}"
        if px(x0) + 7 * len(text) < left + pw:  # after the ridge, else at the right edge
            body.append(_text(px(x0) + 4, py(peak) - 5, text))
        else:
            body.append(_text(left + pw - 4, py(peak) - 5, text, "end"))
    if bandwidth:
        x = x_lo * 1.6
        body.append(_text(px(x) + 4, py(x * bandwidth[1]) - 6,
                          f"{bandwidth[0]} {si(bandwidth[1], 'B/s')}", "start",
                          ' fill="#333"'))
    for x, y, r, colour, tip in sorted(points, key=lambda p: -p[2]):
        body.append(f'<circle class="point" cx="{px(x):.1f}" cy="{py(y):.1f}" r="{r:.1f}" '
                    f'fill="{colour}" '
                    f'fill-opacity="0.75" stroke="#222" stroke-width="0.5">'
                    f'<title>{escape(tip)}</title></circle>')
    x = left
    for name, colour in legend:
        body.append(f'<circle cx="{x + 5}" cy="9" r="5" fill="{colour}">'
                    f'<title>{escape(name)}</title></circle>')
        body.append(_text(x + 13, 13, name))
        x += 22 + 6.5 * len(name)
    return _svg(width, height, body, label)


def bin_marks(marks: Sequence[tuple[float, float, str, str]], min_px: float = 1.0
              ) -> list[tuple[float, float, str, str]]:
    """Marks ``(x0, x1, colour, tooltip)`` in pixels on one lane, sorted by ``x0``, with
    runs of marks narrower than ``min_px`` merged into one mark at least ``min_px`` wide
    (the colour of its widest member; the tooltip says how many it holds)."""
    out: list[tuple[float, float, str, str]] = []
    run: list[tuple[float, float, str, str]] = []

    def flush() -> None:
        if not run:
            return
        if len(run) == 1:
            out.append(run[0])
        else:
            widest = max(run, key=lambda m: m[1] - m[0])
            out.append((run[0][0], max(m[1] for m in run), widest[2],
                        f"{len(run)} marks narrower than a pixel, the widest: {widest[3]}"))
        run.clear()

    for m in marks:
        if m[1] - m[0] >= min_px:
            flush()
            out.append(m)
            continue
        run.append(m)
        if run[-1][1] - run[0][0] >= min_px:
            flush()
    flush()
    return out


def gantt(lanes: Sequence[tuple[str, Sequence[tuple[float, float, str, str]]]], span_s: float,
          *, width: int = 900, lane_px: int = 14, label: str = "") -> str:
    """Lanes of ``(name, [(start_s, end_s, colour, tooltip)])`` against time from 0 to
    ``span_s``; marks narrower than a pixel are merged (:func:`bin_marks`)."""
    left, top, bottom = 120, 4, 22
    pw = width - left - 10
    h = top + len(lanes) * lane_px + bottom
    scale = pw / span_s if span_s > 0 else 0.0
    body = []
    for t in nice_ticks(span_s, 8):
        if t > span_s * 1.0001:
            break
        x = left + t * scale
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{h - bottom + 2}" '
                    f'stroke="#eee"/>')
        body.append(_text(x, h - 8, si(t, "s"), "middle", ' fill="#666"'))
    for i, (name, marks) in enumerate(lanes):
        y = top + i * lane_px
        body.append(_text(left - 6, y + lane_px - 4, name, "end"))
        px_marks = sorted((left + s0 * scale, left + s1 * scale, c, tip)
                          for s0, s1, c, tip in marks)
        for x0, x1, colour, tip in bin_marks(px_marks):
            body.append(_rect(x0, y + 1, max(x1 - x0, 0.5), lane_px - 2, colour, tip))
    return _svg(width, h, body, label)


def lines(series: Sequence[tuple[str, Sequence[tuple[float, float]], str]], x_label: str,
          y_unit: str, *, width: int = 640, height: int = 220, label: str = "") -> str:
    """Line charts ``(name, [(x, y)], colour)`` on linear axes from 0; a legend on top."""
    left, bottom, top = 70, 36, 22
    xs = [x for _, pts, _ in series for x, _ in pts]
    ys = [y for _, pts, _ in series for _, y in pts]
    xt, yt = nice_ticks(max(xs, default=1.0)), nice_ticks(max(ys, default=1.0))
    pw, ph = width - left - 12, height - top - bottom

    def px(x: float) -> float:
        return left + x / (xt[-1] or 1.0) * pw

    def py(y: float) -> float:
        return top + ph - y / (yt[-1] or 1.0) * ph

    body = []
    for t in yt:
        body.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" '
                    f'stroke="#eee"/>')
        body.append(_text(left - 4, py(t) + 4, si(t, y_unit), "end", ' fill="#666"'))
    for t in xt:
        body.append(_text(px(t), top + ph + 14, f"{t:g}", "middle", ' fill="#666"'))
    body.append(_text(left + pw / 2, height - 4, x_label, "middle"))
    x = left
    for name, pts, colour in series:
        d = " ".join(f"{'M' if i == 0 else 'L'}{px(a):.1f},{py(b):.1f}"
                     for i, (a, b) in enumerate(pts))
        body.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.5">'
                    f'<title>{escape(name)}</title></path>')
        body.append(f'<line x1="{x}" x2="{x + 14}" y1="9" y2="9" stroke="{colour}" '
                    f'stroke-width="2"/>')
        body.append(_text(x + 18, 13, name))
        x += 30 + 6.5 * len(name)
    return _svg(width, height, body, label)
