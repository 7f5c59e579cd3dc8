"""The report of a whole request (``phase: generate``, :mod:`hwsim.generation`).

A :class:`GenerationReport` is a :class:`~hwsim.report.Report` whose ops, layers,
timeline and pruning summary are the prefill's (the forward that gives the first
token), and whose totals are the request's: the prefill plus every decode step,
with the request's figures beside them:

- ``ttft_s``: time to first token, the prefill's latency;
- ``tpot_s``: time per output token, the mean decode step (None with one token),
  and ``tpot_p50_s``, ``tpot_p90_s``, ``tpot_p99_s`` over the steps;
- ``tokens_per_s``: the batch's generated tokens over the request's latency;
- ``energy_per_token_j``, ``dram_bytes_per_token``: the request's, per generated
  token of the batch;
- ``kv_cache_bytes``: the largest KV cache one device holds over the decode steps
  (after a policy's selection at the prompt's end; the prefill's own when there
  is no step); ``peak_memory_bytes``: the largest footprint (weights, KV cache,
  activations) over the prefill and the steps: the prefill holds the whole
  prompt's cache before any selection;
- ``new_tokens``, ``decode_steps``, ``simulated_steps`` (distinct step shapes
  simulated) and ``step_error`` (the bound on any step's relative error, 0 when
  every step was simulated).

:attr:`GenerationReport.steps` is one row per decode step (its cache length, its
figures, whether it was simulated or interpolated); :attr:`points` the simulated
steps' own reports, by cache length.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ..energy import COMPONENTS
from .report import Report, _plain

if TYPE_CHECKING:
    import pandas as pd

STEP_COLUMNS = ["step", "kv_len", "latency_s", "flops", "executed_flops", "dram_read_bytes",
                "dram_write_bytes", "energy_j", "kv_cache_bytes", "memory_bytes", "simulated"]


class GenerationReport(Report):
    """A request: the prefill's report, the decode steps, the request's totals."""

    def __init__(self, prefill: Report, columns: dict, points: dict[int, Report], *,
                 workload, fidelity: str, step_error: float,
                 baseline: "GenerationReport | None" = None):
        super().__init__(prefill.rows, graph=prefill.graph, workload=workload,
                         target=prefill.target, dense_flops=prefill.dense_flops,
                         fidelity=fidelity, lanes=prefill.lanes, baseline=baseline,
                         memory=prefill.memory, host_lane=prefill.host_lane)
        self.prefill = prefill
        # the steps as columns (numpy arrays, one entry per step): a million steps stay
        # a few hundred bytes each
        self.columns = columns
        self.points = points
        self.step_error = step_error

    @cached_property
    def steps(self) -> pd.DataFrame:
        """One row per decode step: ``step`` (1 to new_tokens - 1), ``kv_len`` (tokens
        cached before it in its longest layer: every layer's under a KV policy, the
        layers before the pruning's under a prompt pruning such as FastV; its attention
        reads them and its own), its figures (one
        device's latency, all devices' FLOPs, bytes and energy), ``kv_cache_bytes`` and
        ``memory_bytes`` (one device's) and ``simulated`` (False: interpolated)."""
        import pandas as pd  # noqa: PLC0415

        if not len(self.columns["step"]):
            return pd.DataFrame(columns=STEP_COLUMNS)
        return pd.DataFrame(self.columns)

    @property
    def n_steps(self) -> int:
        return len(self.columns["step"])

    def step(self, i: int) -> dict[str, Any]:
        """The ``i``-th step (0-based; -1 the last) as plain numbers."""
        return {k: v[i].item() for k, v in self.columns.items()}

    @property
    def step_rows(self) -> list[dict[str, Any]]:
        """The steps as a list of dicts of plain numbers (the JSON report's ``steps``)."""
        lists = {k: v.tolist() for k, v in self.columns.items()}
        return [dict(zip(lists, vals)) for vals in zip(*lists.values())]

    @cached_property
    def totals(self) -> dict[str, Any]:
        first = self.prefill.totals
        cols = self.columns
        n = self.n_steps

        def fsum(key: str) -> float:  # correctly rounded (math.fsum)
            return math.fsum(cols[key].tolist()) if n else 0.0

        def whole(key: str) -> int:  # exact: Python integers (a long run passes 2**63)
            return first[key] + (sum(cols[key].tolist()) if n else 0)

        latency = first["latency_s"] + fsum("latency_s")
        breakdown = {c: first["energy_breakdown_j"][c] + fsum(f"energy_{c}_j")
                     for c in COMPONENTS}
        energy = first["energy_j"] + fsum("energy_j")
        clock = getattr(self.target.spec, "clock_hz", None)
        wl = self.workload
        tokens = wl.batch * wl.new_tokens
        step_s = cols["latency_s"].tolist() if n else []
        dram = whole("dram_read_bytes") + whole("dram_write_bytes")
        first_mem = self.prefill.memory
        kv = float(cols["kv_cache_bytes"].max()) if n else \
            float(first_mem.get("kv_cache_bytes", 0.0))
        peak = max(float(first_mem.get("total_bytes", 0.0)),
                   float(cols["memory_bytes"].max()) if n else 0.0)
        return {
            "latency_s": latency,
            "cycles": int(round(latency * clock)) if clock else None,
            "flops": whole("flops"),
            "dense_flops": self.prefill.dense_flops + (sum(cols["dense_flops"].tolist())
                                                       if n else 0),
            "executed_flops": whole("executed_flops"),
            "dram_read_bytes": whole("dram_read_bytes"),
            "dram_write_bytes": whole("dram_write_bytes"),
            "energy_j": energy,
            "energy_breakdown_j": breakdown,
            "ttft_s": first["latency_s"],
            "tpot_s": fsum("latency_s") / n if n else None,
            "tpot_p50_s": percentile(step_s, 50) if step_s else None,
            "tpot_p90_s": percentile(step_s, 90) if step_s else None,
            "tpot_p99_s": percentile(step_s, 99) if step_s else None,
            "tokens_per_s": tokens / latency if latency > 0 else None,
            "energy_per_token_j": energy / tokens,
            "dram_bytes_per_token": dram / tokens,
            "kv_cache_bytes": kv,
            "peak_memory_bytes": peak,
            "new_tokens": wl.new_tokens,
            "decode_steps": n,
            "simulated_steps": len(self.points),
            "step_error": self.step_error,
        }

    def to_dict(self) -> dict[str, Any]:
        doc = super().to_dict()
        doc["prefill"] = {"totals": self.prefill.totals}
        doc["steps"] = [{k: (bool(v) if k == "simulated" else v) for k, v in r.items()
                         if k in STEP_COLUMNS} for r in self.step_rows]
        return _plain(doc)

    def table(self, top: int | None = 10, detail: bool = False) -> str:
        from .table import format_generation  # noqa: PLC0415

        return format_generation(self, top, detail)

    def __repr__(self) -> str:
        t = self.totals
        return (f"<GenerationReport {self.workload.name} on {self.target.preset}: TTFT "
                f"{t['ttft_s'] * 1e3:.3f} ms, {t['decode_steps']} steps, "
                f"{t['latency_s'] * 1e3:.3f} ms>")


def percentile(values, q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linear between order statistics
    (numpy's default method); NaN for no value. (Here, with the report that quotes
    the generation's and the serving run's TTFT and TPOT percentiles, so that neither
    report module reaches back up into the simulation.)"""
    import numpy as np  # noqa: PLC0415

    return float(np.percentile(values, q)) if len(values) else math.nan
