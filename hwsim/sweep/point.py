"""Points: what one run of a sweep is, what identifies it, and running it.

A sweep is prepared once in the calling process (:func:`prepare`): the base
workload is loaded and checked (with the sweep's fixed ``set:`` overrides),
each target named is resolved, the axes are tried on the base so a misspelt
field fails now rather than as two hundred failed points, and every point gets
its identity.

**Identity.** A point's id is a SHA-256 of the resolved base workload (every
field, defaults filled in, plus a digest of its trace file if it has one), the
target (its name and a digest of its preset or hardware file), the fidelity,
the point's values and fixed overrides, and the hwsim version. Two points with
the same id produce the same numbers, so a results file skips every point whose
id it holds already (resume), and a sweep runs a repeated point once (cache).
Editing the workload, the preset or upgrading hwsim changes the ids, so stale
results are never mistaken for current ones.

**Running.** :func:`run_point` is the function a worker process (or a Dask
worker) runs: it rebuilds the base workload once per process, resolves each
target and its overrides once, calls :func:`hwsim.simulate`, and returns the
report's totals as a flat row. Any exception becomes ``status: error`` with its
message; a failed point never stops a sweep. :class:`Base` and :class:`Point`
are small frozen dataclasses, so shipping them to workers is cheap (they are
pickled only in transit between processes, never written to disk).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from ..errors import Collector, InputError
from ..workload import apply_sets, label, load_workload, workload_from_dict
from ..yamlfile import resolve_path
from .sampling import points as sample_points
from .spec import SPECIAL_AXES, SweepSpec

RESULT_COLUMNS = ("latency_s", "cycles", "flops", "dense_flops", "executed_flops",
                  "dram_read_bytes",
                  "dram_write_bytes", "dram_bytes", "energy_j", "energy_compute_j",
                  "energy_onchip_j", "energy_dram_j", "energy_static_j",
                  "energy_interconnect_j")


@dataclass(frozen=True)
class Base:
    """What every point of a sweep shares: the workload, target, fidelity, overrides."""

    workload: Mapping[str, Any]  # the resolved workload fields (fixed overrides applied)
    source: str  # the workload's file: relative trace paths are read from beside it
    target: str
    fidelity: str
    target_sets: Mapping[str, Any] = field(default_factory=dict)  # fixed target.* overrides
    key: str = ""  # digest of the workload (see module docstring)


@dataclass(frozen=True)
class Point:
    """One point: its place in the sweep, its identity, and its axis values."""

    index: int
    id: str
    values: Mapping[str, Any]


def digest(obj: Any) -> str:
    """SHA-256 of canonical JSON: equal data, equal digest, on any machine."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _file_digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _split(values: Mapping[str, Any]) -> tuple[list, dict]:
    wl, tgt = [], {}
    for k, v in values.items():
        if k in SPECIAL_AXES:
            continue
        if k.startswith("target."):
            tgt[k[len("target."):]] = v
        else:
            wl.append((k, v))
    return wl, tgt


def prepare(spec: SweepSpec) -> tuple[Base, list[Point]]:
    """Load and check the base, try the axes, and list the points with their ids."""
    from .. import __version__  # noqa: PLC0415 - hwsim/__init__ imports this package
    from ..targets import resolve  # noqa: PLC0415

    wl_fixed, tgt_fixed = _split(spec.sets)
    if isinstance(spec.workload, str):
        wl = load_workload(spec.workload, wl_fixed)
    else:
        data = label(apply_sets(dict(spec.workload), wl_fixed), wl_fixed, default=spec.name)
        wl = workload_from_dict(data, spec.source)
    if not spec.target:  # the sweep names no target: the workload's, else roofline
        from ..simulate import DEFAULT_TARGET  # noqa: PLC0415
        from ..workload.loader import target_of  # noqa: PLC0415

        spec = replace(spec, target=target_of(wl) or DEFAULT_TARGET)
    wl_data = {k: v for k, v in wl.to_dict().items() if k != "source"}
    trace_digest = _file_digest(resolve_path(wl.trace, wl.source)) if wl.trace else ""
    wl_key = digest({"workload": wl_data, "trace": trace_digest})
    base = Base(wl_data, wl.source, spec.target, spec.fidelity, tgt_fixed, wl_key)

    errs = Collector(spec.source)
    targets = {spec.target: "target"}
    for axis in spec.axes:
        if axis.name == "target":
            targets = {v: "axes.target" for v in axis.values}
    target_keys = {}
    for text, where in targets.items():
        try:
            resolved = resolve(text, tgt_fixed)
        except InputError as e:
            for p in e.problems:
                errs.add(where, str(p))
            continue
        target_keys[text] = digest({"target": resolved.name, "preset": resolved.preset,
                                    "file": _file_digest(resolved.source)})
    _try_axes(spec, base, wl_data, tgt_fixed, errs)
    errs.raise_if_any()

    out = []
    for i, values in enumerate(sample_points(spec)):
        wl_sets, tgt_sets = _split(values)
        ident = digest({"workload": wl_key, "target": target_keys[values.get("target",
                                                                             spec.target)],
                        "fidelity": values.get("fidelity", spec.fidelity),
                        "sets": {**{f"target.{k}": v for k, v in {**tgt_fixed,
                                                                  **tgt_sets}.items()},
                                 **dict(wl_sets)},
                        "version": __version__})
        out.append(Point(i, ident[:20], values))
    return base, out


def _try_axes(spec: SweepSpec, base: Base, wl_data: dict, tgt_fixed: dict,
              errs: Collector) -> None:
    """Apply each axis's first value to the base: a wrong field fails here, once."""
    from ..targets import resolve  # noqa: PLC0415

    target_varies = any(a.name == "target" for a in spec.axes)
    for axis in spec.axes:
        if axis.name in SPECIAL_AXES:
            continue
        first = axis.values[0] if axis.values else axis.value_at(0.0)
        where = f"axes.{axis.name}"
        if axis.name.startswith("target."):
            if target_varies:
                continue
            fld = axis.name[len("target."):]
            try:
                resolve(spec.target, {**tgt_fixed, fld: first})
            except InputError as e:
                for p in e.problems:
                    if p.field in (axis.name, f"spec.{fld}"):
                        errs.add(where, f"{p.message} (first value {first!r})")
            continue
        try:
            data = apply_sets(dict(wl_data), [(axis.name, first)])
            workload_from_dict(data, base.source)
        except InputError as e:
            for p in e.problems:
                f = p.field
                if f == axis.name or axis.name.startswith(f + ".") or f.startswith(
                        axis.name + "."):
                    errs.add(where, f"{p.message} (first value {first!r})")


# ---------------------------------------------------------------- worker side
_WORKLOADS: dict[str, Any] = {}


def _workload(base: Base):
    wl = _WORKLOADS.get(base.key)
    if wl is None:
        wl = workload_from_dict(dict(base.workload), base.source)
        _WORKLOADS.clear()  # one sweep at a time per worker: keep memory flat
        _WORKLOADS[base.key] = wl
    return wl


@functools.lru_cache(maxsize=256)
def _target(text: str, overrides: str):
    from ..targets import resolve  # noqa: PLC0415

    return resolve(text, json.loads(overrides))


def run_point(base: Base, point: Point) -> dict[str, Any]:
    """Simulate one point; return the report's totals, or the error, as a flat row."""
    from ..api import simulate  # noqa: PLC0415

    target = point.values.get("target", base.target)
    fidelity = point.values.get("fidelity", base.fidelity)
    try:
        wl_sets, tgt_sets = _split(point.values)
        resolved = _target(target, json.dumps({**base.target_sets, **tgt_sets},
                                              sort_keys=True))
        report = simulate(_workload(base), resolved, sets=dict(wl_sets), fidelity=fidelity)
        return {**_row(report, target, fidelity), "workload": point_name(base)}
    except Exception as e:  # noqa: BLE001 - a failed point is data, never a stop
        message = " ".join(str(e).split()) or type(e).__name__
        if not isinstance(e, InputError):
            message = f"{type(e).__name__}: {message}"
        return {"status": "error", "error": message, "target": target, "preset": None,
                "fidelity": fidelity, "workload": point_name(base)}


def point_name(base: Base) -> str:
    """A row's ``workload``: the sweep's workload as every point shares it, its name with
    the fixed ``set:`` overrides (:func:`hwsim.workload.overrides.label`). The point's
    own workload axes are not appended: each is a column of the same row (``seq_len``,
    ``pruning``, ...), and a column that names what the rows share lets a plot tell the
    points that do the same work (a report of the point alone names them all)."""
    return str(base.workload.get("name", ""))


# a generation's figures (hwsim.report.generation), columns of its sweep; by_kind and
# by_bound are then its prefill's
GENERATION_COLUMNS = ("ttft_s", "tpot_s", "tpot_p50_s", "tpot_p90_s", "tpot_p99_s",
                      "tokens_per_s", "energy_per_token_j", "dram_bytes_per_token",
                      "kv_cache_bytes", "peak_memory_bytes")


def _row(report, target: str, fidelity: str) -> dict[str, Any]:
    t = report.totals
    row: dict[str, Any] = {"status": "ok", "error": None, "target": target,
                           "preset": report.target.preset, "fidelity": fidelity,
                           "workload": report.workload.name if report.workload else ""}
    row.update({k: t[k] for k in ("latency_s", "cycles", "flops", "dense_flops",
                                  "executed_flops", "dram_read_bytes", "dram_write_bytes",
                                  "energy_j")})
    row["dram_bytes"] = t["dram_read_bytes"] + t["dram_write_bytes"]
    for key in GENERATION_COLUMNS:  # a generation's request figures (phase: generate)
        if key in t:
            row[key] = t[key]
    for comp, joules in t["energy_breakdown_j"].items():
        row[f"energy_{comp}_j"] = joules
    n = report.devices  # op rows are one device's; work and energy count all devices
    by_kind: dict[str, dict[str, Any]] = {}
    by_bound: dict[str, float] = {}
    # plain loops over the report's rows: a DataFrame and a groupby per point would
    # cost more than the simulation itself
    cols = [[r[c] for r in report.rows] for c in ("kind", "bound", "latency_s", "flops",
                                                  "dram_read_bytes", "dram_write_bytes",
                                                  "energy_j")]
    for kind, bound, lat, flops, rd, wr, energy in zip(*cols):
        k = by_kind.setdefault(str(kind), {"latency_s": 0.0, "flops": 0, "dram_bytes": 0,
                                           "energy_j": 0.0})
        k["latency_s"] += lat
        k["flops"] += n * int(flops)
        k["dram_bytes"] += n * int(rd + wr)
        k["energy_j"] += n * energy
        by_bound[str(bound)] = by_bound.get(str(bound), 0.0) + lat
    row["by_kind"] = json.dumps(by_kind, sort_keys=True)
    row["by_bound"] = json.dumps(by_bound, sort_keys=True)
    if report.workload is not None and report.workload.model:
        from ..accuracy import quality_columns  # noqa: PLC0415

        # the published quality of the point's pruning setting (None where no row)
        row.update(quality_columns(report.graph.header, report.workload.model))
    return row
