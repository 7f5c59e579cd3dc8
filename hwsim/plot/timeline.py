"""Timelines from the event engine: which unit was busy when, and with what.

With ``fidelity="event"`` a report keeps, for every op, the tasks the engine
ran: their unit (``sm0``, ``core3.cube``, ``vec7.mte3``, ``dma``), label, start
and end. :func:`timeline` draws them as a Gantt chart, one lane per unit,
coloured by the op kind the task belongs to, so double buffering (a DMA lane
busy while the compute lane is), pipeline bubbles and contention are visible.

Machines have many identical units (80 SMs, 24 cube cores); cores with the same
work already share a lane (``sm0-47``, ``vec0-31.vector``: one group's tasks). Past
``max_lanes`` lanes, units that differ only by their first number (or range) are
drawn on one lane (``core*.cube``), where overlapping bars mean several units were
busy.
Bars are coloured by op kind, or by unit when the tasks all belong to one kind.
With ``fidelity="analytical"`` there are no tasks; the timeline then shows one
bar per op on a lane per op kind. When ops ran on several streams
(tiling-AllReduce), a lane per stream on top shows each op, or each row block
of a cut op, where it ran: the all-reduce of one block under the next block's
compute::

    r = hwsim.simulate("workloads/attention-kernels.yaml", "volta", fidelity="event")
    hwsim.plot.timeline(r, ops=slice(0, 3), path="figures/timeline.pdf")
"""

from __future__ import annotations

import re
from typing import Any

from ..report.chrome import op_spans
from .style import PAGE_IN, axis_label, category_colors, paper, pyplot, save, si_axis


def _natural(s: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def timeline(report, *, ops: slice | list[int] | None = None, max_lanes: int = 24,
             ax: Any = None, path: str | None = None, title: str | None = None):
    """A Gantt chart of the report's tasks (or ops); returns the figure.

    ``ops`` selects ops by position (``slice(0, 10)``, ``[3, 4]``); the default
    is every op.
    """
    plt = pyplot()
    frame = report.ops
    index = list(range(len(frame)))
    if isinstance(ops, slice):
        index = index[ops]
    elif ops is not None:
        index = list(ops)
    bars: list[tuple[str, str, float, float]] = []  # lane, kind, start, end
    have_tasks = any(report.lanes[i] for i in index)
    spans = op_spans(report)  # an op that ran several times: from its first run to its last
    for i in index:
        start = float(frame["start_s"].iat[i])
        kind = str(frame["kind"].iat[i])
        if have_tasks:  # (a repeated op's tasks are its first run's: its runs are identical)
            for unit, _label, s0, s1 in report.lanes[i]:
                bars.append((str(unit), kind, start + s0, start + s1))
        else:
            bars.append((kind, kind, start, start + spans[i]))
    lanes = sorted({b[0] for b in bars}, key=_natural)
    if len(lanes) > max_lanes:
        merged = {lane: re.sub(r"\d+([-+]\d+)?", "*", lane, count=1) for lane in lanes}
        bars = [(merged[b[0]], *b[1:]) for b in bars]
        lanes = sorted(set(merged.values()), key=_natural)
    streams = getattr(report, "streams", None)
    if streams:  # ops on streams: a lane per stream above the units, each block a bar
        pieces = streams.get("pieces", {})
        stream_bars = []
        for i in index:
            row = report.rows[i]
            for s0, s1, stream in pieces.get(i) or [(row["start_s"], row["end_s"],
                                                     row["stream"])]:
                stream_bars.append((f"stream {stream}", row["kind"], s0, s1))
        stream_lanes = sorted({b[0] for b in stream_bars})
        # (without tasks the stream lanes already show every op)
        bars = stream_bars + (bars if have_tasks else [])
        lanes = stream_lanes + (lanes if have_tasks else [])
    kinds = list(dict.fromkeys(b[1] for b in bars))
    by_lane = len(kinds) == 1 and have_tasks  # one op: colour by unit instead of by kind
    if by_lane:
        bars = [(lane, lane, s0, s1) for lane, _, s0, s1 in bars]
        kinds = list(dict.fromkeys(b[1] for b in bars))
    colors = category_colors(kinds, "unit" if by_lane else None)
    with paper():
        if ax is None:
            fig, ax = plt.subplots(figsize=(PAGE_IN, max(1.8, 0.2 * len(lanes) + 1.0)))
        else:
            fig = ax.figure
        row = {lane: i for i, lane in enumerate(lanes)}
        for kind in kinds:
            per_lane: dict[str, list] = {}
            for lane, kd, s0, s1 in bars:
                if kd == kind:
                    per_lane.setdefault(lane, []).append((s0, s1 - s0))
            for lane, spans in per_lane.items():
                ax.broken_barh(spans, (row[lane] - 0.4, 0.8), facecolors=colors[kind],
                               alpha=0.85, label=kind if lane == next(iter(per_lane)) else None)
        ax.set_yticks(range(len(lanes)))
        ax.set_yticklabels(lanes, fontsize=6.5 if len(lanes) > 12 else 8)
        ax.set_ylim(len(lanes) - 0.5, -0.5)
        ax.set_xlabel(axis_label("start_s"))
        si_axis(ax, "x", "start_s")
        ax.set_ylabel("unit" if have_tasks else "stream" if streams else "op kind")
        ax.grid(axis="y", visible=False)
        if kinds and not by_lane:
            ax.legend(title="op kind", fontsize=7, title_fontsize=7,
                      bbox_to_anchor=(1.01, 1.0), loc="upper left")
        name = report.graph.header.get("name", "")
        note = "" if have_tasks else " (analytical fidelity: ops only)"
        ax.set_title(title or f"{name} on {report.target.preset}{note}", fontsize=8)
    return save(fig, path)
