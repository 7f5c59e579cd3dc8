"""Published quality: what each pruning method's authors report it does to a model.

hwsim measures what a pruning decision costs (latency, DRAM bytes, energy); the other
half of the decision is what it does to quality, which a simulator cannot compute. This
module ships the numbers the papers and their official repositories publish, one row per
(method, model, setting, benchmark), each with the dense model's score *from the same
table* and a precise source (paper, arXiv id, the table, its row and column), so that a
report, a sweep or a Pareto plot can put a configuration's published quality next to its
cost. The data is ``hwsim/data/accuracy.csv``, read once, lazily.

**Settings.** Token-pruning papers state a setting in one of two conventions for
LLaVA-1.5's 576 visual tokens: "retain 64 tokens" (a count) or "reduction ratio 90 %"
(a fraction pruned). A row stores both what the authors ran and what they called it:

- ``tokens_kept`` of ``tokens_total``: the visual tokens the language model keeps, as
  the authors ran it (FasterVLM's "90 %" passes 58 to its code: 576 x 0.1 = 57.6,
  rounded up);
- ``keep``: the nominal fraction kept, ``1 - reduction`` (0.1 for "90 %"), or
  ``tokens_kept / tokens_total`` where the paper gives a count;
- ``params``: other settings the source states (``at_layer=2`` for FastV's K = 2);
  empty when the source does not state them.

:func:`published_quality` matches a setting **exactly**: a count against
``tokens_kept``, a fraction against ``keep`` (or ``tokens_kept / tokens_total``), and
every parameter the row states against the setting's. Nothing is interpolated: a keep
of 0.3 between two published settings has no row, and the answer is ``None`` with
:func:`no_row_reason` saying which settings exist. A workload's pruning is matched by
the tokens its pass actually kept (the record's ``selected``, e.g. ``"57 of 576"``), so
hwsim's rounding and the paper's must agree: FasterVLM at ``keep: 0.1`` keeps
``int(57.6) = 57`` in hwsim's pass, which has no row, where ``keep: 0.1007`` (58) does.

**Checks.** :func:`load` refuses a malformed file with one line naming the file, the
line and the field (an unknown method name is allowed: the data may cover methods the
library does not model, such as FitPrune). Scores must be finite numbers, counts
positive integers with ``tokens_kept <= tokens_total``, ``keep`` in (0, 1], every row
must name its source, locator and how it was verified, and no two rows may claim the
same (method, model, setting, benchmark, source)::

    from hwsim.accuracy import published_quality
    row = published_quality("fastervlm", "llava-1.5-7b", 58, "gqa")
    row.score, row.dense_score, row.source_short      # 54.91, 61.94, 'FasterVLM EVAL.md'
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import InputError

DATA = Path(__file__).with_name("data") / "accuracy.csv"
COLUMNS = ("method", "model", "tokens_kept", "tokens_total", "keep", "params", "benchmark",
           "metric", "score", "dense_score", "source", "locator", "source_short", "verified",
           "note")
REQUIRED_TEXT = ("method", "model", "benchmark", "metric", "source", "locator", "source_short",
                 "verified")


@dataclass(frozen=True)
class QualityRow:
    """One published number: a method's score on a benchmark at one setting."""

    method: str
    model: str
    tokens_kept: int
    tokens_total: int
    keep: float
    params: Mapping[str, Any] = field(default_factory=dict)
    benchmark: str = ""
    metric: str = ""
    score: float = math.nan
    dense_score: float = math.nan
    source: str = ""
    locator: str = ""
    source_short: str = ""
    verified: str = ""
    note: str = ""

    @property
    def relative(self) -> float:
        """The score as a fraction of the dense model's (same table)."""
        return self.score / self.dense_score if self.dense_score else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "model": self.model, "tokens_kept": self.tokens_kept,
                "tokens_total": self.tokens_total, "keep": self.keep,
                "params": dict(self.params), "benchmark": self.benchmark,
                "metric": self.metric, "score": self.score, "dense_score": self.dense_score,
                "source": self.source, "locator": self.locator,
                "source_short": self.source_short, "verified": self.verified,
                "note": self.note}


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _params(text: str, where: str, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(";") if p.strip()):
        key, eq, value = part.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise InputError(f"expected 'name=value' pairs separated by ';', got {part!r}",
                             source=path, field=f"{where}.params")
        out[key.strip()] = _value(value.strip())
    return out


def load(path: str | Path = DATA) -> tuple[QualityRow, ...]:
    """Read and check a quality table; an :class:`InputError` (one line) on the first fault.

    Lines starting with ``#`` are comments; the first other line is the header, which
    must hold :data:`COLUMNS` (in any order).
    """
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the quality table: {e.__class__.__name__}: {e}",
                         source=name) from None
    numbered = [(i, line) for i, line in enumerate(text.splitlines(), 1)
                if line.strip() and not line.lstrip().startswith("#")]
    if not numbered:
        raise InputError("no header line: expected the columns " + ", ".join(COLUMNS),
                         source=name)
    try:
        records = list(csv.reader([line for _, line in numbered], strict=True))
    except csv.Error as e:
        raise InputError(f"not a CSV file: {e}", source=name) from None
    header = [h.strip() for h in records[0]]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise InputError(f"line {numbered[0][0]}: missing column(s) {', '.join(missing)} "
                         f"(expected {', '.join(COLUMNS)})", source=name)
    rows, seen = [], set()
    for (lineno, _), rec in zip(numbered[1:], records[1:]):
        where = f"line {lineno}"
        if len(rec) != len(header):
            raise InputError(f"{len(rec)} fields, the header has {len(header)}", source=name,
                             field=where)
        r = dict(zip(header, (v.strip() for v in rec)))
        rows.append(_row(r, where, name))
        key = (rows[-1].method, rows[-1].model, rows[-1].tokens_kept,
               tuple(sorted(rows[-1].params.items())), rows[-1].benchmark, rows[-1].source)
        if key in seen:
            raise InputError("a second row for the same method, model, setting, benchmark "
                             "and source", source=name, field=where)
        seen.add(key)
    return tuple(rows)


def _row(r: dict[str, str], where: str, path: str) -> QualityRow:
    for col in REQUIRED_TEXT:
        if not r[col]:
            raise InputError("must not be empty (every row names what it is and where it "
                             "was read)", source=path, field=f"{where}.{col}")

    def number(col: str, kind=float) -> Any:
        try:
            v = kind(r[col])
        except ValueError:
            raise InputError(f"expected {'an integer' if kind is int else 'a number'}, got "
                             f"{r[col]!r}", source=path, field=f"{where}.{col}") from None
        if kind is float and not math.isfinite(v):
            raise InputError(f"expected a finite number, got {r[col]!r}", source=path,
                             field=f"{where}.{col}")
        return v

    kept, total = number("tokens_kept", int), number("tokens_total", int)
    if total <= 0 or not 0 < kept <= total:
        raise InputError(f"expected 0 < tokens_kept <= tokens_total, got {kept} of {total}",
                         source=path, field=f"{where}.tokens_kept")
    keep = number("keep")
    if not 0 < keep <= 1:
        raise InputError(f"expected a fraction in (0, 1], got {keep}", source=path,
                         field=f"{where}.keep")
    return QualityRow(method=r["method"].lower(), model=r["model"].lower(), tokens_kept=kept,
                      tokens_total=total, keep=keep, params=_params(r["params"], where, path),
                      benchmark=r["benchmark"].lower(), metric=r["metric"],
                      score=number("score"), dense_score=number("dense_score"),
                      source=r["source"], locator=r["locator"],
                      source_short=r["source_short"], verified=r["verified"], note=r["note"])


@lru_cache(maxsize=1)
def rows() -> tuple[QualityRow, ...]:
    """The shipped table (read once)."""
    return load(DATA)


def benchmarks(model: str | None = None, table: Iterable[QualityRow] | None = None) -> list[str]:
    """The benchmarks with at least one row (for ``model``), sorted."""
    return sorted({r.benchmark for r in (rows() if table is None else table)
                   if model is None or r.model == model.lower()})


def _setting(setting: Any) -> tuple[int | None, float | None, dict[str, Any]]:
    """``58`` / ``0.1`` / ``{"tokens": 58, "at_layer": 2}`` -> (tokens, keep, params)."""
    if isinstance(setting, Mapping):
        params = {k: v for k, v in setting.items() if k not in ("tokens", "keep")}
        tokens = setting.get("tokens")
        keep = setting.get("keep")
        return (int(tokens) if tokens is not None else None,
                float(keep) if keep is not None else None, params)
    if isinstance(setting, bool):
        raise TypeError("a setting is a token count, a keep fraction, or a mapping")
    if isinstance(setting, int):
        return setting, None, {}
    if isinstance(setting, float):
        return None, setting, {}
    raise TypeError(f"a setting is a token count, a keep fraction, or a mapping, not "
                    f"{type(setting).__name__}")


def _matches(row: QualityRow, tokens, keep, params) -> bool:
    if tokens is not None and row.tokens_kept != tokens:
        return False
    if keep is not None and not (math.isclose(row.keep, keep, rel_tol=0, abs_tol=1e-12)
                                 or math.isclose(row.tokens_kept / row.tokens_total, keep,
                                                 rel_tol=0, abs_tol=1e-12)):
        return False
    if tokens is None and keep is None:
        return False
    # every parameter the row states must be the setting's; one the row leaves unstated
    # (FastV's K in FasterVLM's table) is not checked, and the row's note says so
    return all(k in params and params[k] == v for k, v in row.params.items())


def find(method: str, model: str, setting: Any, benchmark: str | None = None,
         table: Iterable[QualityRow] | None = None) -> list[QualityRow]:
    """Every row for ``method`` on ``model`` at exactly ``setting`` (all benchmarks when
    ``benchmark`` is None)."""
    tokens, keep, params = _setting(setting)
    method, model = method.lower(), model.lower()
    return [r for r in (rows() if table is None else table)
            if r.method == method and r.model == model
            and (benchmark is None or r.benchmark == benchmark.lower())
            and _matches(r, tokens, keep, params)]


def published_quality(method: str, model: str, setting: Any, benchmark: str,
                      table: Iterable[QualityRow] | None = None) -> QualityRow | None:
    """The published row for ``method`` on ``model`` at ``setting`` on ``benchmark``, or None.

    ``setting`` is a count of tokens kept (``58``), a keep fraction (``0.1``: the
    nominal fraction or exactly ``tokens_kept / tokens_total``), or a mapping with
    ``tokens`` or ``keep`` and the method's parameters (``{"tokens": 288, "at_layer":
    3}``). The match is exact; where several sources give the setting, the first row of
    the table is returned (:func:`find` returns all).
    """
    found = find(method, model, setting, benchmark, table)
    return found[0] if found else None


def no_row_reason(method: str, model: str, setting: Any, benchmark: str | None = None,
                  table: Iterable[QualityRow] | None = None) -> str:
    """Why :func:`published_quality` found nothing, naming the settings that do exist."""
    table = rows() if table is None else tuple(table)
    method, model = method.lower(), model.lower()
    mine = [r for r in table if r.method == method and r.model == model]
    if benchmark is not None:
        mine_b = [r for r in mine if r.benchmark == benchmark.lower()]
    else:
        mine_b = mine
    what = f"{method} on {model}" + (f" ({benchmark})" if benchmark else "")
    if not mine:
        methods = sorted({r.method for r in table if r.model == model})
        return (f"no published quality for {what}: the shipped data has none for this "
                f"method and model" + (f" (it has {', '.join(methods)} on {model})"
                                       if methods else ""))
    if not mine_b:
        return (f"no published quality for {what}: this benchmark has no row (rows: "
                f"{', '.join(benchmarks(model, mine))})")
    tokens, keep, params = _setting(setting)
    asked = (f"{tokens} tokens kept" if tokens is not None else f"keep {keep:g}")
    if params:
        asked += ", " + ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    have = sorted({(r.tokens_kept, r.tokens_total, tuple(sorted(r.params.items())))
                   for r in mine_b})
    listed = "; ".join(f"{k} of {n}" + ("".join(f", {a}={b}" for a, b in p) if p else "")
                       for k, n, p in have)
    return (f"no published quality for {what} at {asked}: the sources report only "
            f"{listed} (never interpolated)")


def step_setting(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """A pruning record's setting as :func:`find` takes it: the tokens the pass kept
    (``selected: "58 of 576"``) and its parameters; None for a method with no count."""
    selected = str(record.get("selected") or "")
    parts = selected.split(" of ")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        return None
    params = {k: v for k, v in (record.get("params") or {}).items()
              if k not in ("keep", "segment", "tokens")}
    return {"tokens": int(parts[0]), **params}


def for_graph(header: Mapping[str, Any]) -> dict[str, Any] | None:
    """The published quality of a pruned graph's configuration (its header's model and
    pruning records), or None when the graph prunes nothing.

    One pruning step of a method with rows: ``{"method", "setting", "rows": [...]}``
    (every benchmark's row, as dicts); otherwise ``rows`` is empty and ``note`` says
    why (no row for the setting, several steps, a method without a token count).
    """
    steps = list(header.get("pruning") or [])
    model = str(header.get("model") or "")
    if not steps:
        return None
    if len(steps) > 1:
        names = " + ".join(s.get("method", "?") for s in steps)
        return {"method": names, "setting": None, "rows": [],
                "note": f"no published quality for the composition {names}: sources report "
                        f"single methods"}
    rec = steps[0]
    method = str(rec.get("method", ""))
    setting = step_setting(rec)
    if setting is None:
        if not any(r.method == method and r.model == model.lower() for r in rows()):
            # no row for this method on this model at any setting: say that, whatever the
            # record states (DeltaLLM's rows are BitNet's; a Llama workload has none)
            return {"method": method, "setting": None, "rows": [],
                    "note": no_row_reason(method, model, 1.0)}
        return {"method": method, "setting": None, "rows": [],
                "note": f"no published quality for {method}: its record states no token count"}
    found = find(method, model, setting)
    out: dict[str, Any] = {"method": method, "model": model, "setting": setting,
                           "rows": [r.to_dict() for r in found]}
    if not found:
        out["note"] = no_row_reason(method, model, setting)
    return out


def columns(model: str | None) -> list[str]:
    """The sweep columns ``quality_<benchmark>`` for a model (none without rows)."""
    return [f"quality_{b}" for b in benchmarks(model)] if isinstance(model, str) and model \
        else []


def quality_columns(header: Mapping[str, Any], model: str | None = None) -> dict[str, Any]:
    """A sweep row's quality columns for a graph: ``quality_<benchmark>`` (the published
    score, or None), ``quality_source`` (the short sources of the scores) and
    ``quality_note`` (why a benchmark has no score). Empty when the model has no rows.

    An unpruned graph gets the dense model's score where the data's rows agree on it.
    """
    model = model if isinstance(model, str) else header.get("model")
    model = model.lower() if isinstance(model, str) else ""
    names = benchmarks(model) if model else []
    if not names:
        return {}
    out: dict[str, Any] = {f"quality_{b}": None for b in names}
    q = for_graph(header)
    if q is None:  # dense: the dense score every table gives alike
        sources, missing = set(), []
        for b in names:
            dense = {(r.dense_score, r.source_short) for r in rows()
                     if r.model == model and r.benchmark == b}
            values = {d for d, _ in dense}
            if len(values) == 1:
                out[f"quality_{b}"] = values.pop()
                sources |= {s for _, s in dense}
            else:
                missing.append(b)
        out["quality_source"] = ", ".join(sorted(sources)) or None
        out["quality_note"] = (f"dense model; sources disagree on the dense score of "
                               f"{', '.join(missing)}" if missing else "dense model")
        return out
    sources = set()
    for r in q["rows"]:
        key = f"quality_{r['benchmark']}"
        if out.get(key) is None:
            out[key] = r["score"]
            sources.add(r["source_short"])
    out["quality_source"] = ", ".join(sorted(sources)) or None
    missing = [b for b in names if out[f"quality_{b}"] is None]
    note = q.get("note") or (f"no row for {', '.join(missing)}" if missing else "")
    out["quality_note"] = note or None
    return out
