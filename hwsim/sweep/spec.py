"""The sweep file: a base workload and target, and the axes to vary.

A sweep file (YAML, read with ``yaml.safe_load``) looks like this::

    name: bert-seq-bw                  # default: the file's stem
    workload: workloads/bert-base.yaml # a path, or an inline workload mapping
    target: roofline                   # a target, preset or hardware YAML (default:
                                       # the workload's target: field, else roofline)
    fidelity: analytical               # analytical (default for sweeps) | event
    mode: grid                         # grid | random | lhs
    samples: 200                       # points drawn in random and lhs modes
    seed: 0                            # random and lhs draws are reproducible
    set:                               # fixed overrides applied to every point
      tiling.attention: flash
    axes:
      seq_len: [128, 256, 512]                              # a list of values
      pruning.0.keep: {range: [0.1, 1.0], steps: 10}        # evenly spaced, ends included
      target.dram_bw_bytes_per_s: {range: [2e11, 1.6e12], steps: 4, log: true}
      batch: {range: [1, 8], step: 1}                       # integers from 1 to 8
    constraints:
      - "seq_len * batch <= 2048"

Axis names are the dotted paths of ``--set``: a workload field
(``seq_len``, ``pruning.0.keep``, ``tiling.block_q``, ``ops.0.m``) or a field of
the target's spec under ``target.``. Two names are special: ``target`` varies
the target itself (``target: [roofline, volta, ascend]``) and ``fidelity`` the
fidelity.

An axis is

- a list of values (or ``{values: [...]}``), taken as they are;
- ``{range: [lo, hi], steps: n}``: ``n`` values from ``lo`` to ``hi``, both
  included, evenly spaced, or geometrically with ``log: true``;
- ``{range: [lo, hi], step: s}``: ``lo, lo + s, ...`` up to ``hi``;
- ``{range: [lo, hi]}`` without steps: a continuous interval, for the random
  and lhs modes only (log-uniform with ``log: true``).

A range of two integers gives integers (rounded, duplicates dropped) unless it
says ``type: float``; ``type: int`` makes any range integer.

In ``grid`` mode the points are the product of the axes (the first axis varies
slowest). In ``random`` mode each point draws each axis independently; in
``lhs`` (Latin hypercube) mode the ``samples`` points stratify every axis, so
each tenth of a range holds a tenth of the points. Lists are sampled as
categories. ``constraints`` (see :mod:`hwsim.sweep.constraints`) drop the
points that break them; random and lhs draws are repeated until ``samples``
points pass.

Relative paths (``workload:``, a hardware YAML as ``target:``) are looked up
beside the sweep file first, then in the current directory; a ``workload:`` found
in neither that names a shipped workload (``bert-base``, ``workloads/bert-base.yaml``)
is the shipped file (:mod:`hwsim.workload.shipped`). The sweep file itself may be
named the same way (``hwsim sweep bert-seq-bw``).

Every problem in the file is collected and raised as one
:class:`~hwsim.errors.InputError` that names the file and the field.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from .. import yamlfile
from ..errors import Collector, InputError
from ..spec import suggest
from .constraints import Constraint, ConstraintError, parse

MODES = ("grid", "random", "lhs")
FIDELITIES = ("analytical", "event")
SPECIAL_AXES = ("target", "fidelity")
MAX_POINTS = 1_000_000  # points of one sweep (its rows are kept and written as they finish)
KEYS = ("name", "description", "workload", "target", "fidelity", "mode", "samples", "seed",
        "set", "axes", "constraints")


@dataclass(frozen=True)
class Axis:
    """One axis: a name (dotted path) and either discrete values or an interval.

    ``values`` is set for discrete axes (lists and stepped ranges); ``lo``/``hi``
    for continuous ranges. ``dtype`` is the column type in the results: ``int``,
    ``float``, ``bool``, ``str``, or ``json`` (values that are lists or mappings,
    or a mix of types, stored as canonical JSON text).
    """

    name: str
    values: tuple = ()
    lo: float | None = None
    hi: float | None = None
    log: bool = False
    integer: bool = False
    dtype: str = "float"

    @property
    def continuous(self) -> bool:
        return not self.values

    def value_at(self, u: float) -> Any:
        """The value at quantile ``u`` in [0, 1): a category, or a point of the interval."""
        if self.values:
            return self.values[min(int(u * len(self.values)), len(self.values) - 1)]
        if self.log:
            v = math.exp(math.log(self.lo) + u * (math.log(self.hi) - math.log(self.lo)))
        else:
            v = self.lo + u * (self.hi - self.lo)
        return int(round(v)) if self.integer else clean_float(v)


@dataclass(frozen=True)
class SweepSpec:
    """A checked sweep file. Build one with :func:`load_sweep`."""

    workload: str | Mapping[str, Any]
    target: str
    axes: tuple[Axis, ...]
    name: str = "sweep"
    description: str = ""
    fidelity: str = "analytical"
    mode: str = "grid"
    samples: int = 0
    seed: int = 0
    sets: Mapping[str, Any] = field(default_factory=dict)
    constraints: tuple[Constraint, ...] = ()
    source: str = "<sweep>"

    @property
    def axis_names(self) -> list[str]:
        return [a.name for a in self.axes]

    def to_dict(self) -> dict[str, Any]:
        """The sweep as plain data (what the results' metadata records)."""
        axes = {}
        for a in self.axes:
            axes[a.name] = (list(a.values) if a.values else
                            {"range": [a.lo, a.hi], "log": a.log,
                             "type": "int" if a.integer else "float"})
        return {"name": self.name, "description": self.description,
                "workload": self.workload if isinstance(self.workload, str)
                else dict(self.workload),
                "target": self.target, "fidelity": self.fidelity, "mode": self.mode,
                "samples": self.samples, "seed": self.seed, "set": dict(self.sets),
                "axes": axes, "constraints": [c.text for c in self.constraints]}


def clean_float(v: float) -> float:
    """``v`` rounded to 12 significant digits: 0.30000000000000004 -> 0.3.

    Points are identified by their values, so values computed by ranges are
    kept free of floating-point dust that would make equal points differ.
    """
    return float(f"{v:.12g}")


def load_sweep(source: str | os.PathLike | Mapping[str, Any]) -> SweepSpec:
    """Read and check a sweep file (a path) or a sweep given as a mapping."""
    if isinstance(source, Mapping):
        return sweep_from_dict(source, "<sweep>", os.getcwd())
    from ..workload import shipped  # noqa: PLC0415

    path = shipped.find(source, "sweep")
    data = yamlfile.read(path, "sweep file")
    if not isinstance(data, Mapping):
        raise InputError("expected a mapping with workload, target and axes", source=path)
    data = dict(data)
    data.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    return sweep_from_dict(data, path, os.path.dirname(os.path.abspath(path)))


def find_file(ref: str, base_dir: str) -> str | None:
    """``ref`` beside the sweep file, else from the current directory, else None."""
    for candidate in (os.path.join(base_dir, ref), ref):
        if os.path.exists(candidate):
            return os.path.normpath(candidate)
    return None


def _shipped_workload(ref: str) -> str | None:
    """The shipped workload ``ref`` names (``workloads/bert-base.yaml``, ``bert-base``),
    so that a sweep file runs from any folder and from an installed hwsim."""
    from ..workload import shipped  # noqa: PLC0415

    found = shipped.path(ref)
    return None if found is None else str(found)


def sweep_from_dict(data: Mapping[str, Any], source: str, base_dir: str) -> SweepSpec:
    """Check a sweep mapping; relative paths are looked up beside ``base_dir`` first."""
    errs = Collector(source)
    for key in data:
        if key not in KEYS:
            errs.add(str(key), "unknown key" + suggest(str(key), KEYS))
    out: dict[str, Any] = {"source": source}
    for key in ("name", "description"):
        if key in data:
            if isinstance(data[key], str):
                out[key] = data[key]
            else:
                errs.add(key, f"expected text, got {data[key]!r}")

    wl = data.get("workload")
    if wl is None:
        errs.add("workload", "missing: a workload YAML path or an inline workload mapping")
    elif isinstance(wl, Mapping):
        out["workload"] = dict(wl)
    elif isinstance(wl, str) and wl:
        found = find_file(wl, base_dir) or _shipped_workload(wl)
        if found is None:
            errs.add("workload", f"workload file not found: {wl} (looked beside the sweep "
                     f"file, in the current directory and among the shipped workloads: "
                     f"hwsim workloads)")
        else:
            out["workload"] = found
    else:
        errs.add("workload", f"expected a file path or a mapping, got {wl!r}")

    target = data.get("target", "")  # "": the workload's target: field, else roofline
    if not isinstance(target, str) or ("target" in data and not target):
        errs.add("target", f"expected a target, preset or hardware YAML path, got {target!r}")
    else:
        out["target"] = _target_ref(target, base_dir) if target else ""

    fid = data.get("fidelity", "analytical")
    if fid not in FIDELITIES:
        errs.add("fidelity", f"expected one of {', '.join(FIDELITIES)}, got {fid!r}")
    else:
        out["fidelity"] = fid

    mode = data.get("mode", "grid")
    if mode not in MODES:
        errs.add("mode", f"expected one of {', '.join(MODES)}, got {mode!r}")
        mode = "grid"
    out["mode"] = mode
    samples = data.get("samples")
    if mode != "grid":
        if not _is_int(samples) or samples < 1:
            errs.add("samples", f"{mode} mode needs samples: a positive integer, got {samples!r}")
        elif samples > MAX_POINTS:
            errs.add("samples", f"at most {MAX_POINTS:,} points in one sweep, got {samples:,}")
        else:
            out["samples"] = samples
    elif samples is not None:
        errs.add("samples", "only random and lhs modes draw samples; grid mode runs every "
                 "combination (remove samples or set mode)")
    seed = data.get("seed", 0)
    if not _is_int(seed) or seed < 0:
        errs.add("seed", f"expected an integer >= 0, got {seed!r}")
    else:
        out["seed"] = seed

    sets = data.get("set", {})
    if not isinstance(sets, Mapping) or not all(isinstance(k, str) for k in sets):
        errs.add("set", f"expected a mapping of dotted field -> value, got {sets!r}")
    else:
        out["sets"] = dict(sets)
        for key in sets:
            if key in SPECIAL_AXES:
                errs.add(f"set.{key}", f"give {key} at the top of the sweep file")

    axes = data.get("axes")
    parsed: list[Axis] = []
    if not isinstance(axes, Mapping) or not axes:
        errs.add("axes", "missing: a mapping of dotted field -> values, e.g. "
                 "{seq_len: [128, 256]}")
    else:
        for name, spec in axes.items():
            axis = _axis(str(name), spec, mode, errs, base_dir)
            if axis is not None:
                parsed.append(axis)
            if isinstance(sets, Mapping) and name in sets:
                errs.add(f"axes.{name}", "is also fixed under set:")
    out["axes"] = tuple(parsed)
    if mode == "grid" and parsed and all(a.values for a in parsed):
        total = math.prod(len(a.values) for a in parsed)
        if total > MAX_POINTS:
            errs.add("axes", f"a grid of {total:,} points: at most {MAX_POINTS:,} in one sweep "
                     f"(fewer values per axis, or mode: random / lhs with samples)")

    raw = data.get("constraints", [])
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        errs.add("constraints", f"expected a list of expressions, got {raw!r}")
        raw = []
    cons = []
    for i, text in enumerate(raw):
        try:
            cons.append(parse(text, [a.name for a in parsed]))
        except ConstraintError as e:
            errs.add(f"constraints.{i}", str(e))
    out["constraints"] = tuple(cons)
    errs.raise_if_any()
    return SweepSpec(**out)


def _target_ref(text: str, base_dir: str) -> str:
    """A hardware YAML path is made findable from anywhere; names stay names."""
    if text.endswith((".yaml", ".yml")) or os.sep in text:
        found = find_file(text, base_dir)
        return os.path.abspath(found) if found else text
    return text


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def dtype_of(values: list) -> str:
    """The results column type of a list of values (see :class:`Axis`)."""
    if all(isinstance(v, bool) for v in values):
        return "bool"
    if all(_is_int(v) for v in values):
        return "int"
    if all(_is_num(v) for v in values):
        return "float"
    if all(isinstance(v, str) for v in values):
        return "str"
    return "json"


def _axis(name: str, spec: Any, mode: str, errs: Collector, base_dir: str) -> Axis | None:
    where = f"axes.{name}"
    if not name or any(not part for part in name.split(".")):
        errs.add(where, "expected a dotted field path such as seq_len or pruning.0.keep")
        return None
    if isinstance(spec, Mapping) and "values" in spec:
        extra = set(spec) - {"values"}
        if extra:
            errs.add(where, f"a values axis takes only values (got {', '.join(map(str, extra))})")
        spec = spec["values"]
    if isinstance(spec, list):
        if not spec:
            errs.add(where, "has no values")
            return None
        if name == "target":
            spec = [_target_ref(v, base_dir) if isinstance(v, str) else v for v in spec]
        if name == "fidelity":
            bad = [v for v in spec if v not in FIDELITIES]
            if bad:
                errs.add(where, f"expected values among {', '.join(FIDELITIES)}, got {bad}")
                return None
        return Axis(name, values=tuple(spec), dtype=dtype_of(spec))
    if not isinstance(spec, Mapping) or "range" not in spec:
        errs.add(where, "expected a list of values or {range: [lo, hi], steps: n}")
        return None
    if name in SPECIAL_AXES:
        errs.add(where, f"the {name} axis takes a list of values")
        return None
    allowed = {"range", "steps", "step", "log", "type"}
    for key in spec:
        if key not in allowed:
            errs.add(f"{where}.{key}", "unknown key" + suggest(str(key), allowed))
    rng = spec["range"]
    if not (isinstance(rng, list) and len(rng) == 2 and all(_is_num(v) for v in rng)):
        errs.add(f"{where}.range", f"expected [lo, hi] numbers, got {rng!r}")
        return None
    lo, hi = rng
    if lo > hi:
        errs.add(f"{where}.range", f"lo must be <= hi, got {rng}")
        return None
    log = spec.get("log", False)
    if not isinstance(log, bool):
        errs.add(f"{where}.log", f"expected true or false, got {log!r}")
        return None
    if log and lo <= 0:
        errs.add(f"{where}.range", f"a log range needs lo > 0, got {rng}")
        return None
    kind = spec.get("type", "int" if _is_int(lo) and _is_int(hi) else "float")
    if kind not in ("int", "float"):
        errs.add(f"{where}.type", f"expected int or float, got {kind!r}")
        return None
    integer = kind == "int"
    steps, step = spec.get("steps"), spec.get("step")
    if steps is not None and step is not None:
        errs.add(where, "give steps (how many values) or step (the increment), not both")
        return None
    if steps is None and step is None:
        if mode == "grid":
            errs.add(where, "a range needs steps: n (or step: s) in grid mode; a range without "
                     "steps is continuous, for the random and lhs modes")
            return None
        return Axis(name, lo=float(lo), hi=float(hi), log=log, integer=integer,
                    dtype="int" if integer else "float")
    if steps is not None:
        if not _is_int(steps) or steps < 1:
            errs.add(f"{where}.steps", f"expected an integer >= 1, got {steps!r}")
            return None
        if steps > MAX_POINTS:
            errs.add(f"{where}.steps", f"at most {MAX_POINTS:,} values, got {steps:,}")
            return None
        if steps == 1:
            raw = [lo]
        elif log:
            ratio = (hi / lo) ** (1 / (steps - 1))
            raw = [lo * ratio ** i for i in range(steps)]
            raw[-1] = hi
        else:
            raw = [lo + (hi - lo) * i / (steps - 1) for i in range(steps)]
    else:
        if not _is_num(step) or step <= 0 or log:
            errs.add(f"{where}.step", f"expected a positive increment of a linear range, "
                     f"got {step!r}")
            return None
        count = int(math.floor((hi - lo) / step + 1e-9)) + 1
        if count > MAX_POINTS:
            errs.add(f"{where}.step", f"makes {count:,} values: at most {MAX_POINTS:,}")
            return None
        raw = [lo + i * step for i in range(count)]
    values: list = []
    seen: set = set()
    for v in raw:
        v = int(round(v)) if integer else clean_float(v)
        if v not in seen:
            seen.add(v)
            values.append(v)
    return Axis(name, values=tuple(values), log=log, integer=integer,
                dtype="int" if integer else "float")
