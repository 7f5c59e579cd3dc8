"""The common figures of a sweep's results, chosen from its axes: ``hwsim plot``.

:func:`plot_results` reads a results file and writes, into a folder, the
figures that apply:

- ``pareto``: latency against energy, and the three-objective front of
  latency, energy and DRAM traffic; one front per group of points doing the
  same work (an axis that changes the sequence length or batch makes groups);
  for a generation's sweep also TPOT against the KV cache; when points carry a
  published quality (``quality_<benchmark>``, hwsim.accuracy), latency against
  the benchmark most of them have, quality maximized (``pareto-quality-<benchmark>``;
  points without a published number are left out);
- ``trend``: latency (and energy) against each numeric axis, one line per
  value of another axis, the remaining axes fixed at their most common value
  (the title says which); for a generation's sweep also TTFT and TPOT;
- ``breakdown``: latency by op kind and energy by component, for the Pareto
  points (at most a dozen bars; eight points spread from fastest to slowest
  when the fronts hold fewer than three), each bar labelled by its
  configuration;
- ``roofline``: every point placed by its totals under its own machine's
  ceilings;
- ``compare``: when the target varies, one bar per target at each target's
  fastest point (among points doing the same work), each bar naming its
  configuration.

Each figure is written as ``<kind>[-<detail>].<format>`` (PDF by default:
vector output for papers) and the list of paths is returned.
"""

from __future__ import annotations

import os
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from ..sweep.store import read_results
from .breakdown import breakdown
from .compare import compare
from .labels import common, work_groups
from .pareto import pareto, pareto_mask
from .roofline import roofline
from .style import ok_rows, pyplot
from .trend import trend

KINDS = ("pareto", "trend", "breakdown", "roofline", "compare")


def plot_results(results: str | os.PathLike | pd.DataFrame, outdir: str | os.PathLike, *,
                 kinds: Sequence[str] = KINDS, fmt: str = "pdf") -> list[str]:
    """Write the figures of ``kinds`` that apply to ``results``; return their paths."""
    from .style import save  # noqa: PLC0415

    df = results if isinstance(results, pd.DataFrame) else read_results(results)
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown plot kind {bad[0]!r} (kinds: {', '.join(KINDS)})")
    os.makedirs(outdir, exist_ok=True)
    plt = pyplot()
    out: list[str] = []
    for name, fig in figures(df, kinds):
        path = os.path.join(os.fspath(outdir), f"{name}.{fmt}")
        save(fig, path)
        plt.close(fig)
        out.append(path)
    return out


def _quality_column(df: pd.DataFrame) -> str | None:
    """The published-quality column with the most values (at least two), or None."""
    counts = {c: int(pd.to_numeric(df[c], errors="coerce").notna().sum())
              for c in df.columns if c.startswith("quality_")
              and c not in ("quality_source", "quality_note")}
    best = sorted((-n, c) for c, n in counts.items() if n >= 2)
    return best[0][1] if best else None


def figures(df: pd.DataFrame, kinds: Sequence[str] = KINDS) -> Iterator[tuple[str, object]]:
    """The figures :func:`plot_results` writes, as (name, figure) pairs, one at a time
    (close each once written: a sweep's figures can be many)."""
    ok = ok_rows(df)
    axes = [a for a in df.attrs.get("axes", []) if a in df.columns]
    if ok.empty:
        return

    def emit(fig, name: str):
        return name, fig

    varying = [a for a in axes if ok[a].astype(str).nunique() > 1]
    hue = varying[0] if varying else None
    work, work_names = work_groups(ok)
    # the Pareto plots colour by work group when there are several, else by the first axis
    phue = None if len(work_names) > 1 else hue
    generation = "tpot_s" in ok.columns and ok["tpot_s"].notna().all()
    if "pareto" in kinds and len(ok) >= 2:
        yield emit(pareto(ok, ("latency_s", "energy_j"), hue=phue), "pareto")
        yield emit(pareto(ok, ("latency_s", "energy_j", "dram_bytes"), hue=phue), "pareto-3d")
        if generation:
            yield emit(pareto(ok, ("tpot_s", "kv_cache_bytes"), hue=phue), "pareto-tpot-kv")
        quality = _quality_column(ok)
        if quality:
            yield emit(pareto(ok, ("latency_s", quality), maximize=(quality,), hue=phue),
                       f"pareto-{quality.replace('_', '-')}")
    if "trend" in kinds:
        for x in varying:
            if not pd.api.types.is_numeric_dtype(ok[x]):
                continue
            others = [a for a in varying if a != x]
            line = others[0] if others and ok[others[0]].nunique() <= 8 else None
            part = _fix(ok, [a for a in others if a != line])
            if part[x].nunique() < 2:
                continue
            ys = ("latency_s", "energy_j") + (("ttft_s", "tpot_s") if generation else ())
            fixed = common(part, [a for a in varying if a not in (x, line)])
            for y in ys:
                what = f"{_name(y)} against {_name(x)}"
                fig = trend(part, x, y, hue=line, title=f"{what} ({fixed})" if fixed else what)
                yield emit(fig, f"trend-{_slug(x)}-{y.split('_')[0]}")
    if "breakdown" in kinds:
        mask = np.zeros(len(ok), dtype=bool)
        for g in work_names:  # each group's front: only points of equal work compete
            m = (work == g).to_numpy()
            mask[m] = pareto_mask(ok[m], ("latency_s", "energy_j"))
        front = ok[mask]
        which = "Pareto points of latency and energy"
        if len(front) < 3:  # a front of one or two: show the spread of the sweep instead
            ranked = ok.sort_values("latency_s")
            picks = sorted({int(round(i)) for i in np.linspace(0, len(ranked) - 1, 8)})
            front = ranked.iloc[picks]
            which = f"{len(front)} points from fastest to slowest"
        elif len(front) > 12:
            which += ", the 12 fastest"
        front = front.sort_values("latency_s").head(12)
        label = varying or None
        yield emit(breakdown(front, by="kind", metric="latency_s", label=label,
                       title=f"latency by op kind: {which}"), "breakdown-kind")
        yield emit(breakdown(front, by="energy", label=label,
                       title=f"energy by component: {which}"), "breakdown-energy")
    if "roofline" in kinds:
        yield emit(roofline(ok, hue=hue), "roofline")
    if "compare" in kinds and "target" in ok.columns and ok["target"].nunique() > 1:
        pool, note = ok, ""
        if len(work_names) > 1:  # each target's fastest point among points of equal work
            counts = {g: (ok.loc[work == g, "target"].nunique(), int((work == g).sum()))
                      for g in work_names}
            g = max(work_names, key=lambda k: counts[k])
            pool, note = ok[work == g], work_names[g]
        best = pool.loc[pool.groupby("target")["latency_s"].idxmin()]
        config = [a for a in varying if a != "target"]
        title = "fastest configuration per target (least latency)"
        yield emit(compare(best, by="target", configuration=config,
                     title=f"{title}, {note}" if note else title), "compare")


def _name(column: str) -> str:
    from .style import quantity  # noqa: PLC0415

    return quantity(column)[0]


def _fix(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Rows where each of ``columns`` holds its most common value."""
    for c in columns:
        df = df[df[c] == df[c].mode().iloc[0]]
    return df


def _slug(name: str) -> str:
    return name.replace(".", "-").replace("_", "-")
