"""Timelines for chrome://tracing and Perfetto (the Trace Event JSON format).

Each op is a complete event (``"ph": "X"``) on its unit's lane, with its FLOPs,
bytes and bound as arguments. Times are microseconds, as the format requires.
Targets whose ops occupy one unit (the roofline's ``chip``) give one lane.
"""

from __future__ import annotations

import json


def chrome_events(report) -> list[dict]:
    pid = report.target.preset
    events = [{"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
               "args": {"name": f"{report.target.preset} ({report.target.name})"}},
              {"name": "thread_name", "ph": "M", "pid": pid, "tid": 1, "args": {"name": "chip"}}]
    for r in report.ops.itertuples(index=False):
        if r.latency_s <= 0:
            continue
        events.append({
            "name": r.name, "cat": r.kind, "ph": "X", "pid": pid, "tid": 1,
            "ts": r.start_s * 1e6, "dur": r.latency_s * 1e6,
            "args": {"id": int(r.id), "module": r.module, "flops": int(r.flops),
                     "dram_read_bytes": int(r.dram_read_bytes),
                     "dram_write_bytes": int(r.dram_write_bytes), "bound": r.bound},
        })
    return events


def write_chrome_trace(report, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"traceEvents": chrome_events(report), "displayTimeUnit": "ns"}, f)
