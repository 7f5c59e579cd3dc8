"""Timelines for chrome://tracing and Perfetto (the Trace Event JSON format).

With event fidelity, every task is a complete event (``"ph": "X"``) on the lane
of the unit it occupied (``core3.cube``, ``core3.mte2``, ``chip``), labelled
with its op; an ``ops`` lane above shows each op as a whole. With analytical
fidelity (no schedule of tasks) only the ``ops`` lane is written. When a host
issues the ops (:mod:`hwsim.runtime`), a ``host`` lane shows each op's issue,
and an op on the ``ops`` lane starts no earlier than its issue ends. Identical ops
are simulated once, so their task lanes are written for the first of them only
(its ``ops`` event names the others' first instance in ``same_as``): a 32-layer
model's timeline stays small enough to open. An op that ran ``count`` times (an
``ops:`` entry's ``repeat``) is one event spanning all its runs, named ``name
xCOUNT`` (``count`` in its args), with the first run's tasks under it: its runs are
identical. When ops ran on several streams (tiling-AllReduce,
:func:`hwsim.simulate.schedule_streams`), the ``ops`` lane is the compute
stream and each other stream has a lane of its own (``ops (comm stream)``,
``ops (copy stream)``); an op cut into pieces is an event per piece on its
piece's stream, so the all-reduce of one row block shows under the compute of
the next, and a host KV block's copy under the attention over the block
before. Times are microseconds, as the format requires.
"""

from __future__ import annotations

import json
import re


def _lane_key(unit: str):
    # natural order: core2 before core10
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", unit)]


def chrome_events(report, pid: int = 1) -> list[dict]:
    """The events of one report, as process ``pid``."""
    units = sorted({u for lanes in report.lanes for (u, *_rest) in lanes}, key=_lane_key)
    tid = {u: i + 2 for i, u in enumerate(units)}
    events = [{"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
               "args": {"name": f"{report.target.preset} ({report.target.name})"}},
              {"name": "thread_name", "ph": "M", "pid": pid, "tid": 1, "args": {"name": "ops"}}]
    events += [{"name": "thread_name", "ph": "M", "pid": pid, "tid": tid[u], "args": {"name": u}}
               for u in units]
    host_lane = getattr(report, "host_lane", [])
    if host_lane:  # the host issuing the ops (hwsim.runtime), above the device's lanes
        hid = len(units) + 2
        events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": hid,
                       "args": {"name": "host"}})
        events += [{"name": label, "cat": "host", "ph": "X", "pid": pid, "tid": hid,
                    "ts": s0 * 1e6, "dur": (s1 - s0) * 1e6, "args": {}}
                   for label, s0, s1 in host_lane]
    streams = getattr(report, "streams", None)
    stream_tid = {"compute": 1}
    if streams:  # ops on other streams (communication, copies) on lanes of their own
        used = {row["stream"] for row in report.rows}
        used.update(p[2] for pieces in streams.get("pieces", {}).values() for p in pieces)
        for name in sorted(used - {"compute"}):
            stream_tid[name] = len(units) + 3 + len(stream_tid)
            events.append({"name": "thread_name", "ph": "M", "pid": pid,
                           "tid": stream_tid[name], "args": {"name": f"ops ({name} stream)"}})
    pieces = streams.get("pieces", {}) if streams else {}
    first: dict[int, int] = {}  # id of a shared timeline -> first op that ran it
    for i, (r, row, lanes, span) in enumerate(zip(report.ops.itertuples(index=False),
                                                  report.rows, report.lanes, op_spans(report))):
        count = int(row.get("count", 1))
        if r.latency_s <= 0:
            continue
        same_as = first.setdefault(id(lanes), int(r.id)) if lanes else int(r.id)
        args = {"id": int(r.id), "module": r.module, "flops": int(r.flops),
                "dram_read_bytes": int(r.dram_read_bytes),
                "dram_write_bytes": int(r.dram_write_bytes), "bound": r.bound,
                **({"count": count} if count != 1 else {}),
                **({"same_as": same_as} if same_as != int(r.id) else {})}
        # an op cut into pieces (tiling-AllReduce's row blocks, host KV blocks and their
        # copies) is an event per piece, on its piece's stream
        spans = pieces.get(i) or [(r.start_s, r.start_s + span,
                                   row["stream"] if streams else "compute")]
        for k, (s0, s1, stream) in enumerate(spans):
            name = r.name + (f" x{count:,}" if count != 1 else "")
            if stream == "copy":
                name += " (copy)"
            events.append({
                "name": name + (f" [piece {k + 1}/{len(spans)}]" if len(spans) > 1 else ""),
                "cat": r.kind, "ph": "X", "pid": pid, "tid": stream_tid[stream],
                "ts": s0 * 1e6, "dur": (s1 - s0) * 1e6, "args": args})
        if same_as != int(r.id):
            continue
        # a launch taken in while the previous op ran (hwsim.runtime.schedule) began that
        # much before the op's start on the device lane
        # (a cut op's lane already places each piece's tasks so)
        begin = r.start_s - float(row.get("launch_hidden_s", 0.0)
                                  if count == 1 and i not in pieces else 0.0)
        for unit, label, s0, s1 in lanes:
            if s1 <= s0:
                continue
            events.append({"name": label or r.name, "cat": r.kind, "ph": "X", "pid": pid,
                           "tid": tid[unit], "ts": (begin + s0) * 1e6,
                           "dur": (s1 - s0) * 1e6, "args": {"op": int(r.id)}})
    return events


def op_spans(report) -> list[float]:
    """Seconds from each op's start to its end on the device: its latency, and for an
    op that ran ``count`` times also the device's waits for the host between its runs
    (its ``host_wait_s`` less the wait before its first run)."""
    out = []
    prev_end = 0.0  # where the previous op's last run ended
    for row in report.rows:
        if "end_s" in row:  # ops on streams: each knows its end
            out.append(row["end_s"] - row["start_s"])
            continue
        span = row["latency_s"]
        if row.get("count", 1) != 1:
            span += row.get("host_wait_s", 0.0) - (row["start_s"] - prev_end)
        prev_end = row["start_s"] + span
        out.append(span)
    return out


def write_chrome_trace(report, path: str) -> None:
    """Write the timeline of ``report``, or of a list of reports (one workload on
    several targets) as one file with a process per report, in the list's order."""
    reports = report if isinstance(report, (list, tuple)) else [report]
    events = [e for pid, r in enumerate(reports, start=1) for e in chrome_events(r, pid)]
    events += [{"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0,
                "args": {"sort_index": pid}} for pid in range(1, len(reports) + 1)
               if len(reports) > 1]
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"traceEvents": events, "displayTimeUnit": "ns"}, f)
