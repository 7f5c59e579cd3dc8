"""The common figures of a sweep's results, chosen from its axes: ``hwsim plot``.

:func:`plot_results` reads a results file and writes, into a folder, the
figures that apply:

- ``pareto``: latency against energy, and the three-objective front of
  latency, energy and DRAM traffic, coloured by the first axis;
- ``trend``: latency (and energy) against each numeric axis, one line per
  value of another axis, the remaining axes fixed at their most common value;
  for a generation's sweep also TTFT and TPOT, and a Pareto front of TPOT
  against the KV cache;
- ``breakdown``: latency by op kind and energy by component, for the Pareto
  points (at most a dozen bars; eight points spread from fastest to slowest
  when the front has fewer than three);
- ``roofline``: every point placed by its totals;
- ``compare``: when the target varies, one bar per target at each target's
  best point.

Each figure is written as ``<kind>[-<detail>].<format>`` (PDF by default:
vector output for papers) and the list of paths is returned.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import pandas as pd

from ..sweep.store import read_results
from .breakdown import breakdown
from .compare import compare
from .pareto import pareto, pareto_mask
from .roofline import roofline
from .style import ok_rows, pyplot
from .trend import trend

KINDS = ("pareto", "trend", "breakdown", "roofline", "compare")


def plot_results(results: str | os.PathLike | pd.DataFrame, outdir: str | os.PathLike, *,
                 kinds: Sequence[str] = KINDS, fmt: str = "pdf") -> list[str]:
    """Write the figures of ``kinds`` that apply to ``results``; return their paths."""
    df = results if isinstance(results, pd.DataFrame) else read_results(results)
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown plot kind {bad[0]!r} (kinds: {', '.join(KINDS)})")
    os.makedirs(outdir, exist_ok=True)
    ok = ok_rows(df)
    axes = [a for a in df.attrs.get("axes", []) if a in df.columns]
    out: list[str] = []
    if ok.empty:
        return out
    plt = pyplot()

    def emit(fig, name: str) -> None:
        path = os.path.join(os.fspath(outdir), f"{name}.{fmt}")
        from .style import save  # noqa: PLC0415

        save(fig, path)
        plt.close(fig)
        out.append(path)

    varying = [a for a in axes if ok[a].nunique() > 1]
    hue = varying[0] if varying else None
    generation = "tpot_s" in ok.columns and ok["tpot_s"].notna().all()
    if "pareto" in kinds and len(ok) >= 2:
        emit(pareto(ok, ("latency_s", "energy_j"), hue=hue), "pareto")
        emit(pareto(ok, ("latency_s", "energy_j", "dram_bytes"), hue=hue), "pareto-3d")
        if generation:
            emit(pareto(ok, ("tpot_s", "kv_cache_bytes"), hue=hue), "pareto-tpot-kv")
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
            for y in ys:
                emit(trend(part, x, y, hue=line), f"trend-{_slug(x)}-{y.split('_')[0]}")
    if "breakdown" in kinds:
        front = ok[pareto_mask(ok, ("latency_s", "energy_j"))]
        if len(front) < 3:  # a front of one or two: show the spread of the sweep instead
            ranked = ok.sort_values("latency_s")
            picks = sorted({int(round(i)) for i in np.linspace(0, len(ranked) - 1, 8)})
            front = ranked.iloc[picks]
        front = front.sort_values("latency_s").head(12)
        label = varying or None
        emit(breakdown(front, by="kind", metric="latency_s", label=label), "breakdown-kind")
        emit(breakdown(front, by="energy", label=label), "breakdown-energy")
    if "roofline" in kinds:
        emit(roofline(ok, hue=hue), "roofline")
    if "compare" in kinds and "target" in ok.columns and ok["target"].nunique() > 1:
        best = ok.loc[ok.groupby("target")["latency_s"].idxmin()]
        emit(compare(best, by="target"), "compare")
    return out


def _fix(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Rows where each of ``columns`` holds its most common value."""
    for c in columns:
        df = df[df[c] == df[c].mode().iloc[0]]
    return df


def _slug(name: str) -> str:
    return name.replace(".", "-").replace("_", "-")
