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

A target provides its cases in ``accelerators/<target>/calibration.py`` (for a
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import InputError

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


def call_cases(fn, spec, preset: str = "") -> list[CalibrationCase]:
    """``fn(spec, preset)``, or ``fn(spec)`` for a function of one parameter; each case
    without a preset gets ``preset``."""
    import inspect  # noqa: PLC0415
    from dataclasses import replace  # noqa: PLC0415

    try:
        n = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # pragma: no cover - builtins
        n = 2
    out = list(fn(spec, preset) if n >= 2 else fn(spec))
    return [c if c.preset or not preset else replace(c, preset=preset) for c in out]


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
             numeric: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Rows of a CSV file as dicts; ``columns`` must be present, ``numeric`` ones parse as floats.

    A missing file or column, or a value that is not a number, raises a one-line
    :class:`InputError` naming the file, the column and (for values) the row.
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
        raise InputError("calibration file not found", source=path) from None
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
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"not a valid CSV text file ({e})", source=path) from None
