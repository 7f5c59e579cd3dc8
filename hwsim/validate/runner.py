"""Loading, running and printing validation cases (see the package docstring)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ..api import simulate
from ..errors import Collector, InputError
from ..simulate import prepare
from ..targets import resolve
from ..workload import load_workload, shipped, workload_from_dict

CASES_DIR = Path(__file__).parent / "cases"
CASE_KEYS = ("name", "kind", "source", "target", "workload", "metric", "expected", "tolerance",
             "kinds", "sets", "baseline", "note", "ratio_to", "requires", "minimum", "maximum",
             "sensitivity", "known_miss")
# What a case is evidence of (docs/validation.md):
#   measured:    an external measurement of a real machine, with its source;
#   published:   a paper's claim, in the paper's stated setting;
#   calibration: a measurement a constant of the model was set from: not evidence;
#   identity:    hwsim's own arithmetic (its constants, formulas, counts): a test, never
#                a shipped case.
CASE_KINDS = ("measured", "published", "calibration", "identity")
EVIDENCE = ("measured", "published")
GRAPH_METRICS = ("graph_flops", "graph_dense_flops", "graph_ops", "graph_param_bytes",
                 "graph_read_bytes", "graph_write_bytes", "paper_flops_ratio")
OP_METRICS = ("latency_s", "flops", "dram_read_bytes", "dram_write_bytes", "energy_j")
RATIO_TO = ("unpruned", "baseline")


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # measured | published | calibration | identity (CASE_KINDS)
    source: str  # where the expected value comes from, with its confidence mark
    metric: str
    expected: float
    tolerance: float  # relative
    workload: Any  # a mapping or a YAML path
    target: str = ""
    kinds: tuple[str, ...] = ()
    sets: tuple[str, ...] = ()
    baseline: tuple[str, ...] = ()  # overrides of the baseline run of metric ``speedup``
    note: str = ""
    file: str = ""
    ratio_to: str = ""  # "unpruned": the metric divided by the same metric without pruning;
    # "baseline": divided by the same metric of the run with the ``baseline:`` overrides
    requires: tuple[str, ...] = ()  # data paths (repository-relative); absent: case skipped
    # a finding without a published magnitude ("IAAT beats OpenBLAS") is a bound:
    # the case passes when minimum <= value <= maximum, whatever the tolerance
    minimum: float | None = None
    maximum: float | None = None
    # constants without a public source the value depends on: (label, set key, values)
    sensitivity: tuple[tuple[str, str, tuple], ...] = ()
    # a published claim the model does not reproduce, and the structural reason why
    # (with the issue that tracks it): reported as a miss, not hidden by a wider tolerance
    known_miss: str = ""

    def within(self, value: float) -> bool:
        if self.minimum is not None or self.maximum is not None:
            return ((self.minimum is None or value >= self.minimum)
                    and (self.maximum is None or value <= self.maximum))
        err = (value - self.expected) / self.expected if self.expected else value
        return abs(err) <= self.tolerance


@dataclass(frozen=True)
class Result:
    case: Case
    simulated: float | None
    error: float | None  # relative
    ok: bool  # within tolerance, skipped, or a known miss still missed
    message: str = field(default="")

    @property
    def skipped(self) -> bool:
        """Not run (its data is absent; ``message`` says which): neither a pass nor a
        failure, and printed as ``skip`` with the reason, never as ok."""
        return self.simulated is None and self.ok

    @property
    def missed(self) -> bool:
        """A known miss: a published claim outside tolerance, with its reason stated."""
        return bool(self.case.known_miss) and self.simulated is not None and \
            not self.case.within(self.simulated)


def load_cases(path: str | os.PathLike | None = None) -> list[Case]:
    root = Path(path) if path else CASES_DIR
    files = sorted(root.glob("*.yaml")) if root.is_dir() else [root]
    if not files:
        raise InputError("no case files (*.yaml) in this folder", source=str(root))
    cases: list[Case] = []
    for f in files:
        try:
            data = yaml.safe_load(f.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise InputError(f"cannot read cases: {e}", source=str(f)) from None
        if not isinstance(data, list):
            raise InputError("expected a list of cases", source=str(f))
        errs = Collector(str(f))
        for i, item in enumerate(data):
            if not isinstance(item, dict):
                errs.add(f"[{i}]", "expected a mapping")
                continue
            for k in item:
                if k not in CASE_KEYS:
                    errs.add(f"[{i}].{k}", f"unknown key (known: {', '.join(CASE_KEYS)})")
            for k in ("name", "kind", "source", "metric", "expected", "tolerance", "workload"):
                if k not in item:
                    errs.add(f"[{i}].{k}", "missing" + (f" (one of: {', '.join(CASE_KINDS)})"
                                                        if k == "kind" else ""))
            if "kind" in item and item["kind"] not in CASE_KINDS:
                errs.add(f"[{i}].kind", f"expected one of {', '.join(CASE_KINDS)}, "
                         f"got {item['kind']!r}")
            sens = _sensitivity(item.get("sensitivity", []), f"[{i}].sensitivity", errs)
            if item.get("ratio_to", "unpruned") not in RATIO_TO:
                errs.add(f"[{i}].ratio_to", f"expected one of {', '.join(RATIO_TO)}")
            if errs.problems:
                continue
            cases.append(Case(
                name=str(item["name"]), kind=str(item["kind"]), source=str(item["source"]),
                metric=str(item["metric"]), sensitivity=sens,
                known_miss=str(item.get("known_miss", "") or ""),
                expected=float(item["expected"]), tolerance=float(item["tolerance"]),
                workload=item["workload"], target=str(item.get("target", "")),
                kinds=tuple(item.get("kinds", ())), sets=tuple(item.get("sets", ())),
                baseline=tuple(item.get("baseline", ())),
                note=str(item.get("note", "")), file=str(f),
                ratio_to=str(item.get("ratio_to", "")),
                requires=tuple(str(p) for p in item.get("requires", ())),
                minimum=None if item.get("minimum") is None else float(item["minimum"]),
                maximum=None if item.get("maximum") is None else float(item["maximum"])))
        errs.raise_if_any()
    return cases


def _sensitivity(value: Any, where: str, errs: Collector) -> tuple:
    """``[{constant: label, set: target.field, values: [a, b]}, ...]``."""
    if not isinstance(value, list):
        errs.add(where, "expected a list of {constant, set, values}")
        return ()
    out = []
    for j, item in enumerate(value):
        ok = (isinstance(item, dict) and set(item) == {"constant", "set", "values"}
              and isinstance(item["values"], list) and item["values"])
        if not ok:
            errs.add(f"{where}[{j}]", "expected {constant: label, set: key, values: [...]}")
            continue
        out.append((str(item["constant"]), str(item["set"]), tuple(item["values"])))
    return tuple(out)


def sensitivity(case: Case) -> list[tuple[str, str, list[tuple[Any, float]]]]:
    """The case's metric with each unsourced constant at each of its values:
    ``[(label, key, [(value, metric), ...]), ...]``."""
    out = []
    for label, key, values in case.sensitivity:
        points = []
        for v in values:
            # case.sets apply to the baseline run of a speedup too
            points.append((v, measure(replace(case, sets=(*case.sets, f"{key}={v}")))))
        out.append((label, key, points))
    return out


def _workload(case: Case, extra: tuple[str, ...] = ()):
    from ..workload import apply_sets, parse_sets, split_target  # noqa: PLC0415

    wl_sets, _ = split_target(parse_sets((*case.sets, *extra)))
    if isinstance(case.workload, str):
        return load_workload(_workload_path(case), wl_sets)
    data = dict(case.workload)
    data.setdefault("name", case.name)
    if wl_sets:
        data = apply_sets(data, wl_sets)
    return workload_from_dict(data, f"{case.file}: case {case.name!r}")


def _workload_path(case: Case) -> str:
    """A case's workload file: beside the case file, else the shipped workload it names.

    Case files name shipped workloads as ``workloads/NAME.yaml``: the repository's
    folder in a checkout, ``hwsim/_workloads`` in an installed copy
    (:mod:`hwsim.workload.shipped`).
    """
    path = case.workload
    if os.path.isabs(path):
        return path
    beside = Path(case.file).parent / path
    if beside.exists():
        return str(beside)
    found = shipped.path(path)
    return str(found) if found is not None else str(beside)


def _resolved(case: Case, extra: tuple[str, ...]):
    from ..workload import parse_sets, split_target  # noqa: PLC0415

    _, target_sets = split_target(parse_sets((*case.sets, *extra)))
    return resolve(case.target, target_sets)


def _latency(case: Case, extra: tuple[str, ...]) -> float:
    """Latency of the case's workload with ``extra`` overrides (the speedup baseline)."""
    return simulate(_workload(case, extra), _resolved(case, extra)).totals["latency_s"]


def measure(case: Case, extra: tuple[str, ...] = ()) -> float:
    wl = _workload(case, extra)
    graph, dense = prepare(wl, split=False)  # graph metrics count the whole model
    value = _metric(case, wl, dense, graph, extra)
    if case.ratio_to == "baseline" and not extra:
        base = measure(case, case.baseline)
        if not base:
            raise InputError(f"metric {case.metric!r} of the baseline run is 0: no ratio",
                             source=case.file, field=case.name)
        value /= base
    if case.ratio_to == "unpruned":
        base = _metric(case, wl, dense, dense, extra, unpruned=True)
        if not base:
            raise InputError(f"metric {case.metric!r} of the unpruned workload is 0: no ratio",
                             source=case.file, field=case.name)
        value /= base
    return value


def _metric(case: Case, wl, dense, graph, extra: tuple[str, ...] = (),
            unpruned: bool = False) -> float:
    if case.metric in GRAPH_METRICS:
        g = dense if case.metric == "graph_dense_flops" else graph
        if case.metric == "paper_flops_ratio":
            from ..pruning import paper_flops_ratio  # noqa: PLC0415

            return paper_flops_ratio(g)
        if case.metric == "graph_ops":
            return float(len(g.ops))
        if case.metric == "graph_param_bytes":
            return float(g.param_bytes())
        ops = [op for op in g.ops if not case.kinds or op.kind in case.kinds]
        if case.metric == "graph_read_bytes":
            return float(sum(g.op_read_bytes(op) for op in ops))
        if case.metric == "graph_write_bytes":
            return float(sum(g.op_write_bytes(op) for op in ops))
        return float(sum(g.op_flops(op) for op in ops))
    if not case.target:
        raise InputError(f"metric {case.metric!r} needs a target", source=case.file,
                         field=case.name)
    if case.metric == "speedup":
        if not case.baseline:
            raise InputError("metric 'speedup' needs a baseline (overrides of the baseline run)",
                             source=case.file, field=case.name)
        return _latency(case, case.baseline) / _latency(case, ())
    if case.metric == "fits":  # 1 when the workload fits the target's memory, 0 when not
        try:
            _latency(case, ())
        except InputError as e:
            if "does not fit" not in str(e):
                raise
            return 0.0
        return 1.0
    resolved = _resolved(case, extra)
    report = simulate(wl, resolved, baseline=unpruned)
    if unpruned:
        report = report.baseline
    if case.kinds:
        if case.metric not in OP_METRICS:
            raise InputError(f"kinds: restricts only {', '.join(OP_METRICS)}",
                             source=case.file, field=case.name)
        ops = report.ops[report.ops["kind"].isin(case.kinds)]
        return float(report.devices * ops[case.metric].sum()) if case.metric != "latency_s" \
            else float(ops[case.metric].sum())
    t = report.totals
    if case.metric == "flops_per_s":  # what the kernels execute, as a profiler measures it
        return t["executed_flops"] / t["latency_s"]
    if case.metric == "dram_bytes_per_s":
        return (t["dram_read_bytes"] + t["dram_write_bytes"]) / t["latency_s"]
    if case.metric in t and isinstance(t[case.metric], (int, float)):
        return float(t[case.metric])
    target_metrics = getattr(resolved.target, "metrics", None)  # a target's own figures
    if target_metrics is not None:
        extra_metrics = target_metrics(report)
        if case.metric in extra_metrics:
            return float(extra_metrics[case.metric])
    raise InputError(f"unknown metric {case.metric!r}", source=case.file, field=case.name)


def run_cases(target: str | None = None, path: str | None = None) -> list[Result]:
    """Run the cases (of ``path``, default the shipped set) of ``target`` (a target,
    a preset, or ``graph`` for those that need none; ``None``: all). A target no case
    could match is an error, never an empty run."""
    from ..progress import bar  # noqa: PLC0415

    if target and not known_case_target(target):
        from ..targets import known_names  # noqa: PLC0415

        raise InputError(f"no target or preset named {target!r} (known: "
                         f"{', '.join(known_names())}; 'graph' selects the cases that need no "
                         f"target)", source="--target")
    results = []
    cases = [c for c in load_cases(path) if not target or _matches(c.target, target)]
    for case in bar(cases, "validate", unit="case"):
        missing = [p for p in case.requires if not os.path.exists(_repo_path(p))]
        if missing:
            results.append(Result(case, None, None, True,
                                  f"skipped: data absent ({os.path.basename(missing[0])})"))
            continue
        try:
            value = measure(case)
        except InputError as e:
            results.append(Result(case, None, None, False, f"error: {e}"))
            continue
        err = (value - case.expected) / case.expected if case.expected else value
        within = case.within(value)
        if case.known_miss and within:  # the model now reproduces it: say the note can go
            results.append(Result(case, value, err, True, "known_miss is stale: within tolerance"))
        elif case.known_miss:
            results.append(Result(case, value, err, True, f"known miss: {case.known_miss}"))
        else:
            results.append(Result(case, value, err, within))
    return results


def _repo_path(path: str) -> str:
    return path if os.path.isabs(path) else str(Path(__file__).resolve().parents[2] / path)


def known_case_target(name: str) -> bool:
    """A ``--target`` filter names a target, a preset, or ``graph`` (no target)."""
    from ..targets import all_presets, registry  # noqa: PLC0415

    return name in ("graph", "none") or name in registry() or name in all_presets()


def _matches(case_target: str, wanted: str) -> bool:
    if not case_target:
        return wanted in ("graph", "none")
    if case_target == wanted or case_target.startswith(wanted + "-"):
        return True
    try:
        return resolve(case_target).target.name == wanted
    except InputError:
        return False


def _tolerance(c: Case) -> str:
    if c.minimum is not None and c.maximum is not None:
        return f"{c.minimum:g}..{c.maximum:g}"
    if c.minimum is not None:
        return f">={c.minimum:g}"
    if c.maximum is not None:
        return f"<={c.maximum:g}"
    return f"{100 * c.tolerance:5.1f}%"


def _status(r: Result) -> str:
    if r.skipped:
        return "skip"
    if r.missed:
        return "MISS"
    return "yes" if r.ok else "NO"


def _target_name(case: Case) -> str:
    if not case.target:
        return "(graph)"
    try:
        return resolve(case.target).target.name
    except InputError:
        return case.target


def mape_by_target(results: list[Result], kind: str = "measured") -> dict[str, tuple[float, int]]:
    """Per target: mean |relative error| over the cases of ``kind`` that ran, and
    how many. Bound cases (a finding without a magnitude) have no error to average."""
    errs: dict[str, list[float]] = {}
    for r in results:
        c = r.case
        if c.kind != kind or r.error is None or c.minimum is not None or c.maximum is not None:
            continue
        errs.setdefault(_target_name(c), []).append(abs(r.error))
    return {t: (sum(e) / len(e), len(e)) for t, e in sorted(errs.items())}


def microbenchmark_summary(runs) -> dict[str, str]:
    """Per target, the ``hwsim calibrate`` cases of ``runs``
    (:class:`hwsim.calibrate.PresetRun`) in a phrase: MAPE over the checks, and over
    the calibration points apart, and how many parameters they ground."""
    from ..calibrate import summary  # noqa: PLC0415

    by_target: dict[str, list] = {}
    seen: set = set()
    for r in runs:
        # a check two presets share with the same result (armv8-kunpeng920 and its
        # two-socket preset, built from the same constants) is one check, counted once
        cases = [c for c in r.cases if (r.target, c.name, c.measured, c.modelled) not in seen]
        seen.update((r.target, c.name, c.measured, c.modelled) for c in cases)
        by_target.setdefault(r.target, []).extend(cases)
    out = {}
    for t, cs in sorted(by_target.items()):
        if cs:
            n = len({c.parameter for c in cs})
            out[t] = (f"microbenchmarks of {n} parameter{'s' if n != 1 else ''}: "
                      f"{summary(cs).replace(' %', '%')} (hwsim calibrate; parts, not evidence)")
    return out


def format_results(results: list[Result], sensitivities: dict | None = None,
                   calibration_runs: list | None = None) -> str:
    """The table of cases, grouped by kind, then per target the MAPE over measured
    cases, the published claims, the calibration points (not evidence), and, given
    ``calibration_runs`` (:func:`hwsim.calibrate.run`), the microbenchmarks of the
    machine's parts that ``hwsim calibrate`` reproduces (grounding, not evidence:
    constants were set from some of them)."""
    head = (f"{'case':<58} {'target':<20} {'metric':<17} {'expected':>12} "
            f"{'simulated':>12} {'error':>8} {'tol':>8}  ok")
    lines = []
    titles = {"measured": "measured on real machines (evidence)",
              "published": "published claims, in the papers' settings (evidence)",
              "calibration": "calibration points: constants were set from these (not evidence)",
              "identity": "identities: hwsim's own arithmetic (tests, not evidence)"}
    for kind in CASE_KINDS:
        group = [r for r in results if r.case.kind == kind]
        if not group:
            continue
        lines += ["", f"== {titles[kind]}", head]
        for r in group:
            c = r.case
            sim = f"{r.simulated:12.5g}" if r.simulated is not None else f"{'-':>12}"
            err = f"{100 * r.error:+7.2f}%" if r.error is not None else f"{'-':>8}"
            lines.append(f"{c.name[:58]:<58} {(c.target or '(graph)')[:20]:<20} "
                         f"{c.metric[:17]:<17} {c.expected:12.5g} {sim} {err} "
                         f"{_tolerance(c):>8}  {_status(r)}"
                         + (f"  {r.message}" if r.message else ""))
            for label, key, points in (sensitivities or {}).get(c.name, []):
                vals = ", ".join(f"{v} -> {m:.4g}" for v, m in points)
                lines.append(f"    sensitivity to {label} ({key}): {vals}")
    lines += ["", "per target:"]
    measured = mape_by_target(results, "measured")
    calibration = mape_by_target(results, "calibration")
    micro = microbenchmark_summary(calibration_runs or [])
    targets = sorted({_target_name(r.case) for r in results} | set(micro))
    for t in targets:
        rs = [r for r in results if _target_name(r.case) == t]
        pub = [r for r in rs if r.case.kind == "published" and r.simulated is not None]
        misses = sum(r.missed for r in pub)
        m = measured.get(t)
        c = calibration.get(t)
        lines.append(
            f"  {t:<10} measured: " + (f"MAPE {100 * m[0]:.1f}% over {m[1]} case"
                                       f"{'s' if m[1] != 1 else ''}" if m else "none")
            + (f"; published claims: {sum(r.ok and not r.missed for r in pub)} of {len(pub)} "
               f"within tolerance" + (f" ({misses} known miss{'es' if misses != 1 else ''})"
                                      if misses else "") if pub else "; published claims: none")
            + (f"; calibration points: {c[1]} (error {100 * c[0]:.1f}%, not evidence)"
               if c else "")
            + (f"; {micro[t]}" if t in micro else ""))
    bad = sum(not r.ok for r in results)
    skipped = sum(r.skipped for r in results)
    missed = sum(r.missed for r in results)
    lines.append(f"{len(results)} cases, {len(results) - bad - skipped - missed} within "
                 f"tolerance, {bad} outside"
                 + (f", {missed} known miss{'es' if missed != 1 else ''} (reasons above)"
                    if missed else "")
                 + (f", {skipped} skipped (data absent)" if skipped else ""))
    return "\n".join(lines[1:] if lines and lines[0] == "" else lines)
