"""Microbenchmark calibration: a machine model's parts against measurements of the parts.

A preset's parameters (DRAM bandwidth, load latency per cache level, the
per-core rate of a kernel's pipeline) come from datasheets and papers. The
machine itself is measured by *microbenchmarks*: a streaming kernel at a given
occupancy, a pointer chase over a growing working set, a fused attention on one
to eight cores. This module puts the two side by side.

A :class:`CalibrationCase` is one such measurement reproduced by the model:
what was swept (``x``: the working set, the blocks per SM, the number of
cores), the measured value and its unit, and the value the target's **own**
memory or compute path gives for the same point (not a formula re-implemented
for the comparison: a case that disagrees with the model is then a statement
about the model). Each case names the preset field it grounds (``parameter``)
and its upstream source.

A target provides its cases in ``hwsim/accelerators/<target>/calibration.py`` (for a
target of another package: ``<its package>.calibration``), a module with

- ``cases(spec, preset) -> list[CalibrationCase]``: the shipped microbenchmarks
  of the machine ``preset`` names (a preset name such as ``"volta-v100-pcie"``,
  or a YAML path), run through ``spec`` (which may carry ``--set`` overrides);
  a module may take ``cases(spec)`` alone. A data file that is absent gives no
  cases (not an error): the files are not shipped with the project (see
  :func:`data_path`); a preset the data does not describe gives none either;
- optionally ``FILES``: the data files it reads, relative to the calibration
  folder (``"v100/v100_rrze_stream_bandwidth.csv"``), so that ``hwsim
  calibrate`` can say which were absent;
- optionally ``cases_from(spec, path) -> list[CalibrationCase]``: the cases of
  a user's own CSV, in the columns of one of the shipped files (the reader
  picks by the header); ``hwsim calibrate --fit`` refits the parameters those
  cases ground through the same model.

:meth:`hwsim.targets.Target.calibration_cases` loads that module lazily.

The calibration data lives outside the project: by default the folder
``../shared/calibration`` next to the repository root, or the folder named by
the environment variable ``HWSIM_CALIBRATION_DIR``. Code cites each file's
*upstream* source (its ``source`` column), never that folder.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import InputError
from .targets import call_cases, registry, resolve

#: environment variable naming the calibration folder (overrides the default)
ENV_DIR = "HWSIM_CALIBRATION_DIR"


@dataclass(frozen=True)
class CalibrationCase:
    """One microbenchmark point: the measurement and the model's value for it.

    ``x`` holds the swept quantities with units in their names
    (``{"working_set_bytes": 2048}``, ``{"blocks_per_sm": 4}``); ``measured`` and
    ``modelled`` share ``unit`` (``"B/s"``, ``"s"``, ``"cycles"``, ``"FLOP/s"``).
    """

    name: str  # short id, unique within a target: "stream-read-bps4"
    target: str  # the target's name ("volta")
    preset: str  # the preset the model ran with ("volta-v100")
    parameter: str  # the spec field this case grounds ("dram_bw_bytes_per_s")
    x: Mapping[str, float]  # the swept quantities of this point
    measured: float
    unit: str
    modelled: float  # from the target's own model path at this point
    source: str  # upstream citation (repository@commit:path, paper)
    note: str = ""  # caveats: secondary source, clock differs, what the model omits
    kind: str = field(default="check")  # "check" or "calibration" (a constant was set from it)

    def __post_init__(self):
        if self.kind not in ("check", "calibration"):
            raise ValueError(f"CalibrationCase {self.name!r}: kind must be 'check' or "
                             f"'calibration', not {self.kind!r}")

    @property
    def error(self) -> float:
        """Relative error of the model, (modelled - measured) / measured (nan if 0)."""
        if not self.measured:
            return math.nan
        return (self.modelled - self.measured) / self.measured

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["x"] = dict(self.x)
        d["error"] = None if math.isnan(self.error) else self.error
        return d


def op_latency_s(target, spec, graph, op=None) -> float:
    """The time ``target`` takes for one op of ``graph`` (its last by default): the op
    lowered to tasks and scheduled on the event engine with the target's pools, the
    same path :func:`hwsim.simulate.run_graph` takes for every op."""
    from . import engine  # noqa: PLC0415

    op = graph.ops[-1] if op is None else op
    tasks = target.lower(op, graph, spec, None)
    return engine.run_events(tasks, target.pools(spec)).latency_s


def repo_root() -> Path:
    """The project's root (the folder holding ``hwsim/``)."""
    return Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The calibration folder: ``$HWSIM_CALIBRATION_DIR`` or ``<repo>/../shared/calibration``."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env)
    return repo_root().parent / "shared" / "calibration"


def data_path(relpath: str) -> Path | None:
    """The path of one calibration file, or None when it is absent (no cases, no error)."""
    p = data_dir() / relpath
    return p if p.is_file() else None


def read_csv(path: Path | str, columns: Iterable[str],
             numeric: Iterable[str] = (), what: str = "calibration file") -> list[dict[str, Any]]:
    """Rows of a CSV file as dicts; ``columns`` must be present, ``numeric`` ones parse as floats.

    A missing file or column, or a value that is not a number, raises a one-line
    :class:`InputError` naming the file (``what`` it is), the column and (for values)
    the row.
    """
    path = str(path)
    columns, numeric = list(columns), list(numeric)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in [*columns, *numeric] if c not in header]
            if missing:
                raise InputError(f"missing column (header has: {', '.join(header) or 'nothing'})",
                                 source=path, field=missing[0])
            rows = []
            for i, row in enumerate(reader, start=2):  # line 1 is the header
                for c in numeric:
                    value = row.get(c)
                    try:
                        row[c] = float(value)
                    except (TypeError, ValueError):
                        raise InputError(f"line {i}: not a number: {value!r}",
                                         source=path, field=c) from None
                    if not math.isfinite(row[c]):
                        raise InputError(f"line {i}: not a finite number: {value!r}",
                                         source=path, field=c)
                rows.append(row)
    except FileNotFoundError:
        raise InputError(f"{what} not found", source=path) from None
    except IsADirectoryError:
        raise InputError(f"is a directory; expected the {what} (CSV)", source=path) from None
    except PermissionError:
        raise InputError(f"{what} cannot be read (permission denied)", source=path) from None
    except UnicodeDecodeError:
        raise InputError("not a UTF-8 text CSV file", source=path) from None
    except csv.Error as e:
        raise InputError(f"not a valid CSV file ({e})", source=path) from None
    if not rows:
        raise InputError("no data rows", source=path)
    return rows


def header(path: Path | str) -> list[str]:
    """The column names of a CSV file (for a ``cases_from`` that picks its reader by header)."""
    path = str(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return next(csv.reader(f), [])
    except FileNotFoundError:
        raise InputError("calibration file not found", source=path) from None
    except IsADirectoryError:
        raise InputError("is a directory; expected the calibration file (CSV)",
                         source=path) from None
    except PermissionError:
        raise InputError("calibration file cannot be read (permission denied)",
                         source=path) from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"not a valid CSV text file ({e})", source=path) from None


# --------------------------------------------------------------------------- running the cases
@dataclass
class PresetRun:
    """The cases of one target on one preset, and the data files that were absent."""

    target: str
    preset: str
    cases: list[CalibrationCase]
    files: list[str]  # the data files the target's module reads
    absent: list[str]  # those not found in the calibration folder

    def by_parameter(self) -> dict[str, list[CalibrationCase]]:
        out: dict[str, list[CalibrationCase]] = {}
        for c in self.cases:
            out.setdefault(c.parameter, []).append(c)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "preset": self.preset, "files": self.files,
                "absent": self.absent,
                "parameters": {p: {"cases": len(cs), "mape": mape(cs),
                                   "mape_checks": mape([c for c in cs if c.kind == "check"]),
                                   "calibration_points": sum(c.kind == "calibration"
                                                             for c in cs)}
                               for p, cs in self.by_parameter().items()},
                "cases": [c.to_dict() for c in self.cases]}


def mape(cases: Iterable[CalibrationCase]) -> float | None:
    """Mean absolute relative error of the model over ``cases`` (None: no case with a
    non-zero measurement)."""
    errs = [abs(c.error) for c in cases if not math.isnan(c.error)]
    return sum(errs) / len(errs) if errs else None


def summary(cases: list[CalibrationCase]) -> str:
    """MAPE over the checks and, apart, over the calibration points (the cases a preset
    value was set from: their agreement is by construction, not evidence)."""
    parts = []
    for kind, label in (("check", "check"), ("calibration", "calibration point")):
        cs = [c for c in cases if c.kind == kind]
        if cs:
            m = mape(cs)
            parts.append(("n/a" if m is None else f"{100 * m:.1f} %")
                         + f" over {len(cs)} {label}{'s' if len(cs) != 1 else ''}")
    return "MAPE " + "; ".join(parts) if parts else "no cases"


def select(target: str | None = None, preset: str | None = None) -> list[tuple[Any, str]]:
    """(target, preset) pairs to run: every preset of every target, of one target, or one
    preset (a preset name or a hardware YAML path); ``target`` may also name a preset."""
    reg = registry()
    if preset:
        try:
            r = resolve(preset)
        except InputError as e:  # the unknown name came from --preset
            raise InputError([replace(p, source="--preset") if p.source == "--target" else p
                              for p in e.problems]) from None
        if target and target not in (r.target.name, r.preset):
            raise InputError(f"preset {preset!r} is for target {r.target.name!r}, "
                             f"not {target!r}", source="--preset")
        return [(r.target, r.preset)]
    if target and target not in reg:
        r = resolve(target)  # a preset name or a YAML path: one machine
        return [(r.target, r.preset)]
    names = [target] if target else list(reg)
    return [(reg[n], p) for n in names for p in reg[n].presets()]


def run(target: str | None = None, preset: str | None = None,
        sets: Mapping[str, Any] | None = None) -> list[PresetRun]:
    """The calibration cases of the selected targets and presets (``sets``: spec
    overrides, as ``--set target.FIELD=VALUE`` gives them, applied to every preset)."""
    out = []
    for t, p in select(target, preset):
        spec = resolve(p, sets).spec
        files = t.calibration_files()
        absent = [f for f in files if data_path(f) is None]
        out.append(PresetRun(t.name, p, t.calibration_cases(spec, p), files, absent))
    return out


_SI_UNITS = ("B/s", "FLOP/s", "s", "B", "W", "J", "Hz", "B/cycle")
_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"),
             (1e-6, "u"), (1e-9, "n"))


def fmt_value(value: float, unit: str) -> str:
    """``value`` with an SI prefix for SI units (``812 GB/s``, ``42.1 us``), else as is."""
    if math.isnan(value):
        return "n/a"
    if unit in _SI_UNITS and value:
        for scale, prefix in _PREFIXES:
            if abs(value) >= scale * 0.9995:
                return f"{value / scale:.4g} {prefix}{unit}"
        return f"{value:.4g} {unit}"
    return f"{value:.4g} {unit}".rstrip()


def _fmt_x(x: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}"
                     for k, v in x.items())


def format_runs(runs: list[PresetRun]) -> str:
    """The terminal report: per target and preset, per parameter, the cases and MAPE."""
    lines: list[str] = []
    without = []
    for r in runs:
        if not r.cases:
            without.append(r)
            continue
        lines.append(f"{r.target} / {r.preset}")
        for param, cs in r.by_parameter().items():
            lines.append(f"  {param}: {summary(cs)}")
            rows = [("case", "x", "measured", "modelled", "error", "")]
            for c in cs:
                err = "n/a" if math.isnan(c.error) else f"{100 * c.error:+.1f} %"
                rows.append((c.name, _fmt_x(c.x), fmt_value(c.measured, c.unit),
                             fmt_value(c.modelled, c.unit), err,
                             "calibration" if c.kind == "calibration" else ""))
            widths = [max(len(row[i]) for row in rows) for i in range(6)]
            for row in rows:
                lines.append("    " + "  ".join(
                    cell.ljust(w) if i in (0, 1, 5) else cell.rjust(w)
                    for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
            sources = sorted({c.source for c in cs})
            lines.append("    source: " + "; ".join(sources))
            notes = sorted({c.note for c in cs if c.note})
            if len(notes) == 1:
                lines.append("    note: " + notes[0])
        lines.append("")
    if without:
        lines.append("no calibration cases: " + ", ".join(
            f"{r.target}/{r.preset}" for r in without))
    absent = sorted({f for r in runs for f in r.absent})
    if absent:
        lines.append(f"absent calibration files (looked in {data_dir()}): " + ", ".join(absent))
        lines.append(f"  (the measurements are not shipped with hwsim; set {ENV_DIR} to a folder "
                     f"holding them: docs/calibration.md names each file's upstream source)")
    return "\n".join(lines).rstrip()


def runs_to_dict(runs: list[PresetRun], fits: list | None = None) -> dict[str, Any]:
    """The JSON document of ``hwsim calibrate --json`` (schema ``hwsim.calibrate/1``)."""
    doc: dict[str, Any] = {"schema": "hwsim.calibrate/1", "data_dir": str(data_dir()),
                           "runs": [r.to_dict() for r in runs],
                           "absent": sorted({f for r in runs for f in r.absent})}
    if fits is not None:
        doc["fits"] = [f.to_dict() for f in fits]
    return doc


# --------------------------------------------------------------------------- refitting a preset
@dataclass(frozen=True)
class Fit:
    """One preset parameter refit from a user's microbenchmarks (or why it was not)."""

    parameter: str
    before: float | None  # the preset's value
    after: float | None  # the least-squares value (None: not refit, see message)
    cases: int
    mape_before: float | None
    mape_after: float | None
    message: str = ""  # why the parameter could not be refit

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def get_param(spec, name: str) -> Any:
    """A spec field, or one entry of a mapping field (``peak_flops_per_s.fp64``)."""
    head, _, entry = name.partition(".")
    if not hasattr(spec, head):
        raise KeyError(name)
    value = getattr(spec, head)
    if entry:
        if not isinstance(value, Mapping) or entry not in value:
            raise KeyError(name)
        value = value[entry]
    return value


def with_param(spec, name: str, value: float):
    """``spec`` with the field (or mapping entry) ``name`` set to ``value``."""
    from dataclasses import replace  # noqa: PLC0415

    head, _, entry = name.partition(".")
    if entry:
        return replace(spec, **{head: {**getattr(spec, head), entry: value}})
    return replace(spec, **{head: value})


def refit(target, spec, preset: str, path: Path | str) -> list[Fit]:
    """Refit the parameters a user's microbenchmark file grounds, through the target's model.

    The target's calibration module reads ``path`` (``cases_from(spec, path, preset)``)
    into cases, each naming the spec field it grounds. The parameters are then set
    by nonlinear least squares on the relative errors: minimise
    ``sum_i (modelled_i(p) / measured_i - 1)^2`` over ``p`` (in log space, so that
    it stays positive), every ``modelled_i`` recomputed by the target's own model
    at each step. A parameter whose cases do not move when it changes (the model
    does not depend on it there), that is not a number, or whose preset value is
    not positive, is not refit, and the fit says why. Data generated by the model
    itself at some ``p*`` gives back ``p*`` (to the solver's tolerance, 1e-12).
    """
    mod = target.calibration_module()
    reader = getattr(mod, "cases_from", None) if mod is not None else None
    if reader is None and mod is not None and getattr(mod, "FILES", ()):
        import shutil  # noqa: PLC0415
        import tempfile  # noqa: PLC0415

        tmp = tempfile.mkdtemp(prefix="hwsim-calibrate-")
        try:
            return _refit(target, spec, preset, path, _slot_reader(mod, spec, preset, path, tmp))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if reader is None:
        raise InputError(f"target {target.name!r} reads no microbenchmark files of a user "
                         f"(its calibration module has neither cases_from nor FILES)",
                         source="--fit")
    return _refit(target, spec, preset, path, reader)


def _refit(target, spec, preset: str, path, reader) -> list[Fit]:
    import numpy as np  # noqa: PLC0415
    from scipy.optimize import least_squares  # noqa: PLC0415

    def cases_at(s) -> list[CalibrationCase]:
        return call_cases(lambda sp, pr: reader(sp, path, pr), s, preset)

    base = cases_at(spec)
    if not base:
        raise InputError("no cases in the file (no row the target's reader uses)",
                         source=str(path))
    params = list(dict.fromkeys(c.parameter for c in base))
    fits: dict[str, Fit] = {}
    free: list[str] = []
    p0: list[float] = []
    for name in params:
        mine = [c for c in base if c.parameter == name]
        common = dict(parameter=name, cases=len(mine), mape_before=mape(mine))
        try:
            value = get_param(spec, name)
        except KeyError:
            fits[name] = Fit(before=None, after=None, mape_after=None, **common,
                             message=f"not a field of the {target.name} spec")
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            fits[name] = Fit(before=None, after=None, mape_after=None, **common,
                             message=f"preset value {value!r} is not a positive number")
            continue
        moved = [c for c in cases_at(with_param(spec, name, value * 1.01))
                 if c.parameter == name]
        if all(abs(a.modelled - b.modelled) <= 1e-12 * abs(b.modelled)
               for a, b in zip(moved, mine)):
            fits[name] = Fit(before=float(value), after=None, mape_after=None, **common,
                             message="the model's value for these cases does not depend on "
                                     "it: it cannot be refit from them")
            continue
        free.append(name)
        p0.append(float(value))

    if free:
        def spec_at(z) -> Any:
            s = spec
            for name, v0, zi in zip(free, p0, z):
                s = with_param(s, name, v0 * math.exp(zi))
            return s

        measured = np.array([c.measured for c in base if c.parameter in free])

        def residuals(z):
            got = [c.modelled for c in cases_at(spec_at(z)) if c.parameter in free]
            return np.array(got) / measured - 1.0

        sol = least_squares(residuals, np.zeros(len(free)), method="trf",
                            bounds=(np.full(len(free), -math.log(1e3)),
                                    np.full(len(free), math.log(1e3))),
                            x_scale=1.0, xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=400)
        after = cases_at(spec_at(sol.x))
        for name, v0, zi in zip(free, p0, sol.x):
            mine = [c for c in base if c.parameter == name]
            at_bound = abs(abs(zi) - math.log(1e3)) < 1e-6
            fits[name] = Fit(name, v0, v0 * math.exp(zi), len(mine), mape(mine),
                             mape([c for c in after if c.parameter == name]),
                             "hit the search bound (1000x the preset value): the cases do "
                             "not determine it" if at_bound else "")
    return [fits[n] for n in params]


def _with_data_dir(folder: str, fn, *args):
    old = os.environ.get(ENV_DIR)
    os.environ[ENV_DIR] = folder
    try:
        return fn(*args)
    finally:
        if old is None:
            del os.environ[ENV_DIR]
        else:
            os.environ[ENV_DIR] = old


def _slot_reader(mod, spec, preset: str, path, tmp: str):
    """For a module without ``cases_from``: read the user's file as one of its ``FILES``.

    The file takes the place of the shipped file with the same header (when the
    shipped one is present), else of the first one that gives cases: a calibration
    folder ``tmp`` holding only the user's file is put in place while ``cases`` runs."""
    import shutil  # noqa: PLC0415

    mine = header(path)
    files = list(mod.FILES)
    shipped = [f for f in files if data_path(f) is not None and header(data_path(f)) == mine]

    def cases_in(slot: str, s) -> list[CalibrationCase]:
        dest = Path(tmp) / slot
        if not dest.is_file():
            for old in Path(tmp).rglob("*"):
                if old.is_file():
                    old.unlink()
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
        return _with_data_dir(tmp, call_cases, mod.cases, s, preset)

    slot = shipped[0] if shipped else None
    if slot is None:
        for f in files:
            try:
                if cases_in(f, spec):
                    slot = f
                    break
            except (InputError, KeyError, ValueError):
                continue
    if slot is None:
        raise InputError(f"no reader of this target takes this file's columns "
                         f"({', '.join(mine)}); its files: {', '.join(files)}",
                         source=str(path))
    return lambda s, _path, _preset: cases_in(slot, s)


def format_fits(target: str, preset: str, path: str, fits: list[Fit]) -> str:
    """The refit as text: each parameter before and after, ``--set`` lines and a YAML snippet."""
    def pct(m):
        return "n/a" if m is None else f"{100 * m:.1f} %"

    lines = [f"refit of {target} / {preset} from {path}:"]
    done = [f for f in fits if f.after is not None and not f.message]
    for f in fits:
        if f.after is not None and not f.message:
            lines.append(f"  {f.parameter}: {f.before:.6g} -> {f.after:.6g} ({f.cases} case(s); "
                         f"MAPE {pct(f.mape_before)} -> {pct(f.mape_after)})")
        else:
            lines.append(f"  {f.parameter}: not refit ({f.cases} case(s)): {f.message}")
    if not done:
        lines.append("nothing to override")
        return "\n".join(lines)
    lines.append("override on the command line:")
    lines.append("  " + " ".join(f"--set target.{f.parameter}={f.after:.6g}" for f in done))
    lines.append(f"or in the spec: section of a hardware YAML (target: {target}):")
    nested: dict[str, Any] = {}
    for f in done:
        head, _, entry = f.parameter.partition(".")
        if entry:
            nested.setdefault(head, {})[entry] = f.after
        else:
            nested[head] = f.after
    src = f"  # refit from {Path(path).name} by hwsim calibrate --fit"
    for head, value in nested.items():
        if isinstance(value, dict):
            lines.append(f"  {head}:")
            lines += [f"    {k}: {v:.6g}{src}" for k, v in value.items()]
        else:
            lines.append(f"  {head}: {value:.6g}{src}")
    return "\n".join(lines)
