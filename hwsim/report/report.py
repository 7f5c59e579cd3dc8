"""The :class:`Report` object and its JSON and CSV forms.

The rows are kept as the simulation made them; the per-op DataFrame
(:attr:`Report.ops`) is built, and pandas imported, when first asked for, so that
what needs only the totals (a sweep point, ``hwsim simulate --json``'s totals) does
not pay for it."""

from __future__ import annotations

import json
import math
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ..energy import COMPONENTS

if TYPE_CHECKING:
    import pandas as pd

REPORT_SCHEMA = "hwsim.report/1"
OP_COLUMNS = ["id", "name", "kind", "layer", "start_s", "latency_s", "flops", "executed_flops",
              "dram_read_bytes", "dram_write_bytes", "energy_j", "bound"]
SUM_COLUMNS = ["latency_s", "flops", "dram_read_bytes", "dram_write_bytes", "energy_j"]


class Report:
    """Results of one simulation of one workload on one target."""

    def __init__(self, rows: list[dict], *, graph, workload, target, dense_flops: int,
                 fidelity: str, lanes: list | None = None, baseline: "Report | None" = None,
                 memory: dict | None = None, host_lane: list | None = None,
                 streams: dict | None = None, onchip: dict | None = None):
        self.rows = rows  # one dict per op, the columns of ops
        self.graph = graph
        self.workload = workload
        self.target = target
        self.dense_flops = int(dense_flops)
        self.fidelity = fidelity
        # per op: [(unit, label, start_s, end_s)] relative to the op's start
        self.lanes = lanes or [[] for _ in range(len(rows))]
        # the same workload unpruned, when simulated beside it (simulate(..., baseline=True))
        self.baseline = baseline
        # what one device holds: weights, KV cache, activations, capacity (hwsim.capacity)
        self.memory = dict(memory or {})
        # the host's issue of each op: [(label, start_s, end_s)] (hwsim.runtime), [] if none
        self.host_lane = list(host_lane or [])
        # ops that overlapped on streams (hwsim.simulate.schedule_streams): the run's
        # latency, each stream's busy time, what tiling-AllReduce hid; None when the ops
        # ran one after another on one stream
        self.streams = streams
        # tensors carried between ops in the last-level cache and the DRAM bytes that
        # saved (hwsim.onchip; None: carrying off, every op started with a cold cache)
        self.onchip = onchip
        # what the reader should know about the run (a sequence past the model's context)
        self.warnings: list[str] = []

    # ------------------------------------------------------------------ views
    @cached_property
    def ops(self) -> pd.DataFrame:
        """One row per op (one device's), unit-suffixed columns. ``count``: how many
        times the op ran (its ``repeat``); the row's figures are all its runs' (from
        ``start_s``, the first run's start), so sums over rows are the run's."""
        import pandas as pd  # noqa: PLC0415 (loaded on first need)

        ops = pd.DataFrame(self.rows) if self.rows else pd.DataFrame(columns=OP_COLUMNS)
        ops["layer"] = ops["layer"].astype("Int64")
        return ops

    def _sum(self, column: str, whole: bool = False) -> float | int:
        """One device's sum of an op column (0 when no op has it): exact for whole
        numbers, correctly rounded (math.fsum) for seconds and joules."""
        values = [r[column] for r in self.rows if column in r]
        return sum(int(v) for v in values) if whole else math.fsum(values)

    def _has(self, column: str) -> bool:
        return bool(self.rows) and column in self.rows[0]

    @property
    def runs(self) -> int:
        """Ops one device ran, each repeat counted: a row of an op that ran ``count``
        times (an ``ops:`` entry's ``repeat``) holds all its runs, so ``len(rows)``
        counts distinct ops and this counts what ran."""
        return sum(int(r.get("count", 1)) for r in self.rows)

    @property
    def devices(self) -> int:
        """Devices the graph was split over; op rows are one device's, totals all devices'."""
        return int(self.graph.header.get("devices", 1))

    @cached_property
    def totals(self) -> dict[str, Any]:
        """Whole-run figures: latency of one device, work and energy of all devices."""
        n = self.devices
        s = self._sum
        # the device runs the ops one after another, idling where the host had not yet
        # issued the next one (hwsim.runtime): the run is its ops plus those waits
        latency = s("latency_s") + s("host_wait_s")
        if self.streams:  # ops overlapped: the run ends with the last op on any stream
            latency = self.streams["latency_s"]
        clock = getattr(self.target.spec, "clock_hz", None)
        breakdown = {c: n * s(f"energy_{c}_j") for c in COMPONENTS}
        return {
            "latency_s": latency,
            "cycles": int(round(latency * clock)) if clock else None,
            "flops": n * s("flops", whole=True),
            "dense_flops": self.dense_flops,
            # what the kernels execute (masked attention tiles skipped): throughput uses it
            "executed_flops": n * s("executed_flops" if self._has("executed_flops")
                                    else "flops", whole=True),
            "dram_read_bytes": n * s("dram_read_bytes", whole=True),
            "dram_write_bytes": n * s("dram_write_bytes", whole=True),
            "energy_j": n * s("energy_j"),
            "energy_breakdown_j": breakdown,
        }

    @property
    def host_wait_s(self) -> float:
        """Time the device idled waiting for the host to issue the next op
        (:mod:`hwsim.runtime`); part of ``totals["latency_s"]``."""
        return self._sum("host_wait_s")

    @property
    def power_w(self) -> float:
        """One device's average power over the run: its energy over the latency."""
        latency = self.totals["latency_s"]
        return self.totals["energy_j"] / self.devices / latency if latency > 0 else 0.0

    @cached_property
    def layers(self) -> pd.DataFrame:
        """One device's sums per layer; ops outside any layer are the row with layer <NA>."""
        import pandas as pd  # noqa: PLC0415 (loaded on first need)

        cols = SUM_COLUMNS
        if self.ops.empty:
            return pd.DataFrame(columns=["layer", *cols])
        ops = self.ops
        if "host_wait_s" in ops:  # a layer's time includes the device's waits for the host
            ops = ops.assign(latency_s=ops["latency_s"] + ops["host_wait_s"])
        grouped = ops.groupby("layer", dropna=False, sort=True)[cols].sum().reset_index()
        return grouped

    @property
    def pruning(self) -> dict[str, Any] | None:
        """Kept tokens/heads per layer per method, overhead share, change vs unpruned."""
        from .pruning import pruning_summary  # noqa: PLC0415

        return pruning_summary(self)

    def by_kind(self) -> pd.DataFrame:
        return self.ops.groupby("kind")[SUM_COLUMNS].sum().sort_values(
            "latency_s", ascending=False)

    # ------------------------------------------------------------------ output
    def to_dict(self) -> dict[str, Any]:
        """The JSON report of DESIGN.md (schema ``hwsim.report/1``)."""
        import pandas as pd  # noqa: PLC0415 (loaded on first need)

        layers = []
        for row in self.layers.itertuples(index=False):
            layers.append({"layer": None if pd.isna(row.layer) else int(row.layer),
                           "latency_s": float(row.latency_s), "flops": int(row.flops),
                           "dram_read_bytes": int(row.dram_read_bytes),
                           "dram_write_bytes": int(row.dram_write_bytes),
                           "energy_j": float(row.energy_j)})
        ops = []
        marks = (self.ops["pruning"] if "pruning" in self.ops
                 else pd.Series([""] * len(self.ops), dtype=object))
        counts = [r.get("count", 1) for r in self.rows]
        for r, mark, count, row in zip(self.ops[OP_COLUMNS].itertuples(index=False), marks,
                                       counts, self.rows):
            ops.append({"id": int(r.id), "name": r.name, "kind": r.kind,
                        "layer": None if pd.isna(r.layer) else int(r.layer),
                        "start_s": float(r.start_s), "latency_s": float(r.latency_s),
                        "flops": int(r.flops), "executed_flops": int(r.executed_flops),
                        "dram_read_bytes": int(r.dram_read_bytes),
                        "dram_write_bytes": int(r.dram_write_bytes),
                        "energy_j": float(r.energy_j), "bound": r.bound})
            if mark:  # the pruning method whose machinery the op is
                ops[-1]["pruning"] = mark
            if count != 1:  # an op that ran count times: its figures are all the runs'
                ops[-1]["count"] = int(count)
            if row.get("onchip"):  # tensors it read from the cache or kept there
                ops[-1].update({k: row[k] for k in ("onchip", "onchip_read_saved_bytes",
                                                    "onchip_write_saved_bytes")})
        if self.streams:  # ops on several streams: where each ran, and when it ended
            for op, row in zip(ops, self.rows):
                op["stream"], op["end_s"] = row["stream"], float(row["end_s"])
        workload = self.workload.to_dict() if self.workload is not None else {}
        workload["segments"] = _plain(self.graph.header.get("segments", {}))
        doc = {"schema": REPORT_SCHEMA, "workload": _plain(workload),
               "target": self.target.to_dict(), "fidelity": self.fidelity,
               "devices": self.devices,
               "totals": self.totals,
               "memory": _plain({k: v for k, v in self.memory.items() if k != "peak_op"}),
               "layers": layers, "ops": ops}
        pruning = self.pruning
        if pruning is not None:
            doc["pruning"] = _plain(pruning)
        if self.baseline is not None:
            doc["baseline"] = {"totals": self.baseline.totals}
        if self.streams:
            doc["streams"] = _plain({k: v for k, v in self.streams.items() if k != "pieces"})
        if self.onchip is not None:
            doc["onchip"] = _plain(self.onchip)
        if self.warnings:
            doc["warnings"] = list(self.warnings)
        return doc

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_csv(self, path) -> None:
        unpruned = "pruning" in self.ops and not self.ops["pruning"].astype(bool).any()
        cols = [c for c in self.ops.columns if c != "tasks" and not (c == "pruning" and unpruned)]
        self.ops[cols].to_csv(path, index=False)

    def table(self, top: int | None = 10, detail: bool = False) -> str:
        """The terminal table: totals, then latency by op kind and by layer, then the
        ``top`` ops by latency (None: all) with identical ops as one row and their
        count; ``detail=True``: one row per op instead (:mod:`hwsim.report.table`)."""
        from .table import format_report  # noqa: PLC0415

        return format_report(self, top, detail)

    def to_html(self) -> str:
        """A self-contained HTML page of the report: totals, breakdowns, roofline,
        timeline, pruning and baseline (:mod:`hwsim.report.html`); opens offline."""
        from .html import to_html  # noqa: PLC0415

        return to_html(self)

    def html(self, path) -> None:
        """Write :meth:`to_html` to ``path``."""
        from .html import write_html  # noqa: PLC0415

        write_html(self, str(path))

    def _repr_html_(self) -> str:
        """Jupyter's rich display: the page's content without its script and
        timeline (:func:`hwsim.report.html.fragment`)."""
        from .html import fragment  # noqa: PLC0415

        return fragment(self)

    def __repr__(self) -> str:
        t = self.totals
        return (f"<Report {self.graph.header.get('name', '')} on {self.target.preset}: "
                f"{t['latency_s'] * 1e3:.3f} ms, {ops_label(self)}>")


def ops_label(report) -> str:
    """"12 ops", or "2 ops (99,536 runs)" when some op ran several times."""
    n, runs = len(report.rows), report.runs
    return f"{n:,} ops" + (f" ({runs:,} runs)" if runs != n else "")


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item"):
        return v.item()
    return v
