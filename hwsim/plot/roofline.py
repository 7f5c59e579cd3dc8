"""Roofline plots: each op placed by arithmetic intensity and achieved throughput.

The roofline model (Williams, Waterman and Patterson, CACM 2009) bounds an
op's throughput by ``min(peak FLOP/s, intensity x DRAM bandwidth)``, where the
*arithmetic intensity* is FLOPs per DRAM byte. On a log-log plot the two
bounds are a slanted line (memory-bound, left) and a flat one (compute-bound,
right) meeting at the *ridge point*. An op far below both lines is limited by
something else: on-chip bandwidth, latency, a poor tiling, a small kernel.

:func:`roofline` places every op of a report (or every point of a sweep, by
its totals) at ``(flops / dram bytes, flops / latency)``, coloured by op kind,
sized by its share of the run's time, with the machine's ceilings taken from
the target's spec (:func:`ceilings`). Ops that move no DRAM bytes or do no
FLOPs have no place on a roofline and are counted in the caption instead::

    hwsim.plot.roofline(hwsim.simulate("workloads/bert-base.yaml", "volta"))
"""

from __future__ import annotations

import re
from dataclasses import fields, is_dataclass
from typing import Any

import numpy as np
import pandas as pd

from .style import COLUMN_IN, categorical, label, ok_rows, paper, pyplot, save, value_label

_BW_FIELDS = ("dram_bw_bytes_per_s", "dram_peak_bw_bytes_per_s",
              "ddr_bw_bytes_per_s")


def ceilings(spec: Any, dtype: str | None = None) -> dict[str, Any]:
    """Peak FLOP/s and DRAM bandwidth a spec states, found by common field names.

    Peak compute is read from ``peak_flops_per_s`` (a number or a mapping by
    dtype), or computed from ``<unit>_flops_per_cycle_per_<thing>`` x
    ``clock_hz`` x the count of ``<thing>`` (``sms``, ``cores``), or from
    ``<unit>_macs_per_cycle`` x 2 x ``clock_hz`` x ``<unit>_cores``. Bandwidth
    is the first of ``dram_bw_bytes_per_s``, ``dram_peak_bw_bytes_per_s``, ... or any
    ``*_bw_bytes_per_s`` field naming DRAM, HBM or memory. Returns
    ``{"peak": [(label, FLOP/s)], "bandwidth": [(label, B/s)]}``; a list is
    empty when the spec has no such field.
    """
    values = ({f.name: getattr(spec, f.name) for f in fields(spec)} if is_dataclass(spec)
              else dict(spec or {}))
    peaks: list[tuple[str, float]] = []

    def add_peak(name: str, v: Any, scale: float) -> None:
        if isinstance(v, dict):
            chosen = _pick(v, dtype)
            for dt in chosen:
                peaks.append((f"{name} {dt}", float(v[dt]) * scale))
        elif isinstance(v, (int, float)) and v:
            peaks.append((name, float(v) * scale))

    if "peak_flops_per_s" in values:
        add_peak("peak", values["peak_flops_per_s"], 1.0)
    clock = values.get("clock_hz")
    for name, v in values.items():
        if not clock or name == "peak_flops_per_s":
            continue
        m = re.fullmatch(r"(\w+?)_flops_per_(?:clock|cycle)_per_(\w+)", name)
        if m:
            count = _count(values, m.group(2))
            if count:
                add_peak(f"{m.group(1)}", v, clock * count)
            continue
        m = re.fullmatch(r"(\w+?)_macs_per_(?:clock|cycle)", name)
        if m:
            count = _count(values, m.group(1)) or 1
            add_peak(f"{m.group(1)}", v, 2 * clock * count)
    bws = [(n, float(values[n])) for n in _BW_FIELDS if isinstance(values.get(n), (int, float))]
    if not bws:
        bws = [(n, float(v)) for n, v in values.items()
               if n.endswith("_bw_bytes_per_s") and re.search(r"dram|hbm|ddr|mem", n)
               and isinstance(v, (int, float))]
    bandwidth = [(n.replace("_bw_bytes_per_s", "").replace("_", " ") + " bandwidth", v)
                 for n, v in bws[:1]]
    peaks.sort(key=lambda p: -p[1])
    return {"peak": peaks[:2], "bandwidth": bandwidth}


def _pick(per_dtype: dict, dtype: str | None) -> list[str]:
    if dtype and dtype in per_dtype:
        return [dtype]
    best = max(per_dtype, key=lambda k: float(per_dtype[k]))
    return [best]


def _count(values: dict, thing: str) -> float:
    for name in (f"{thing}s", f"{thing}_cores", f"{thing}_count", thing):
        v = values.get(name)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            return float(v)
    return 0.0


def points_of(report) -> pd.DataFrame:
    """One row per op of a report: intensity, achieved FLOP/s, kind, time share.

    FLOPs are the executed ones (a causal attention's masked tiles skipped), so
    no point sits above the ceiling its machine allows."""
    ops = report.ops
    nbytes = (ops["dram_read_bytes"] + ops["dram_write_bytes"]).astype(float)
    lat = ops["latency_s"].astype(float)
    executed = ops["executed_flops"] if "executed_flops" in ops else ops["flops"]
    return pd.DataFrame({"kind": ops["kind"], "flops": executed.astype(float),
                         "bytes": nbytes, "latency_s": lat,
                         "share": lat / lat.sum() if lat.sum() else lat})


def roofline(source: Any, *, hue: str | None = None, dtype: str | None = None,
             ax: Any = None, path: str | None = None, title: str | None = None):
    """A roofline of a report's ops, or of a sweep's points; returns the figure.

    For a report, ``dtype`` picks the compute ceiling (default: the workload's
    dtype when the spec lists it, else the highest). For a sweep's DataFrame,
    each point is placed by its totals, coloured by ``hue``; the ceilings come
    from the first point's target preset.
    """
    plt = pyplot()
    if isinstance(source, pd.DataFrame):
        df = ok_rows(source)
        executed = df["executed_flops"] if "executed_flops" in df else df["flops"]
        pts = pd.DataFrame({"flops": executed.astype(float),
                            "bytes": df["dram_bytes"].astype(float),
                            "latency_s": df["latency_s"].astype(float),
                            "kind": df[hue] if hue else "point", "share": 0.0})
        spec = _spec_of(df)
        group = hue
    else:
        pts = points_of(source)
        spec = source.target.spec
        dtype = dtype or getattr(source.workload, "dtype", None)
        group = "kind"
        title = title or f"{source.graph.header.get('name', '')} on {source.target.preset}"
    placed = pts[(pts["flops"] > 0) & (pts["bytes"] > 0) & (pts["latency_s"] > 0)]
    skipped = len(pts) - len(placed)
    ai = (placed["flops"] / placed["bytes"]).to_numpy()
    perf = (placed["flops"] / placed["latency_s"]).to_numpy()
    roofs = ceilings(spec, dtype) if spec is not None else {"peak": [], "bandwidth": []}
    with paper():
        if ax is None:
            fig, ax = plt.subplots(figsize=(COLUMN_IN + 0.6, 2.8))
        else:
            fig = ax.figure
        perf_label, pf = label("flops_per_s", np.concatenate(
            [perf, [v for _, v in roofs["peak"]]]) if len(perf) else [1e12])
        cats = placed["kind"] if group else pd.Series(["point"] * len(placed))
        if group and not categorical(cats):
            sc = ax.scatter(ai, perf * pf, c=cats.to_numpy(float), cmap="viridis", s=14,
                            alpha=0.8, linewidths=0)
            fig.colorbar(sc, ax=ax, label=label(group)[0])
        else:
            sizes = 8 + 200 * placed["share"].to_numpy() if not isinstance(
                source, pd.DataFrame) else np.full(len(placed), 14.0)
            for i, cat in enumerate(dict.fromkeys(cats.tolist())):
                m = (cats == cat).to_numpy()
                ax.scatter(ai[m], perf[m] * pf, s=sizes[m], alpha=0.75, color=f"C{i % 10}",
                           edgecolors="white", linewidths=0.3, label=value_label(cat))
        ax.set_xscale("log")
        ax.set_yscale("log")
        _draw_ceilings(ax, roofs, ai, perf, pf)
        ax.set_xlabel(label("intensity")[0])
        ax.set_ylabel(f"achieved {perf_label}")
        legend = ax.legend(fontsize=6.5, bbox_to_anchor=(1.01, 1.0), loc="upper left",
                           title=label(group)[0] if group and group != "kind" else "op kind",
                           title_fontsize=7)
        for handle in getattr(legend, "legend_handles", []):
            if hasattr(handle, "set_sizes"):
                handle.set_sizes([18])
        if title:
            ax.set_title(title)
        if skipped:
            ax.text(0.01, 0.01, f"{skipped} ops without FLOPs or DRAM bytes not placed",
                    transform=ax.transAxes, fontsize=6, color="0.4")
    return save(fig, path)


def _spec_of(df: pd.DataFrame):
    if "preset" not in df.columns or df["preset"].dropna().nunique() != 1:
        return None
    from ..targets import resolve  # noqa: PLC0415

    try:
        return resolve(str(df["preset"].dropna().iloc[0])).spec
    except Exception:  # noqa: BLE001 - ceilings are a courtesy; the points still plot
        return None


def _draw_ceilings(ax, roofs, ai, perf, pf) -> None:
    lo = min([*ai, 1e-1]) / 2 if len(ai) else 0.05
    hi = max([*ai, 1e3]) * 2 if len(ai) else 2e3
    xs = np.logspace(np.log10(lo), np.log10(hi), 200)
    bw = roofs["bandwidth"][0] if roofs["bandwidth"] else None
    peaks = roofs["peak"]
    derived = []
    if bw is None and len(ai):
        bw = ("best achieved bandwidth", float(np.max(perf / ai)))
        derived.append(bw[0])
    if not peaks and len(perf):
        peaks = [("best achieved FLOP/s", float(np.max(perf)))]
        derived.append(peaks[0][0])
    for i, (name, peak) in enumerate(peaks):
        ys = np.minimum(peak, xs * bw[1]) if bw else np.full_like(xs, peak)
        style = ":" if name in derived else "-"
        ax.plot(xs, ys * pf, color="black", linestyle=style if i == 0 else "--", linewidth=1.0)
        # the top ceiling is labelled above its line, the next one below its own
        ax.annotate(f"{name}: {_si(peak)}FLOP/s", (xs[-1], peak * pf), fontsize=6.5,
                    ha="right", va="bottom" if i == 0 else "top",
                    xytext=(0, 2 if i == 0 else -2), textcoords="offset points")
    ys_all = [*(perf * pf), *(p * pf for _, p in peaks)]
    if bw:
        ys_all.append(xs[0] * bw[1] * pf)
    if ys_all:
        ax.set_ylim(min(ys_all) / 3, max(ys_all) * 4)
    ax.set_xlim(xs[0], xs[-1])
    if bw:
        style = ":" if bw[0] in derived else "-"
        if not peaks:
            ax.plot(xs, xs * bw[1] * pf, color="black", linestyle=style, linewidth=1.0)
        # label the slanted line along its slope, from its left end
        x0 = xs[0] * 1.6
        ax.annotate(f"{bw[0]}: {_si(bw[1])}B/s", (x0, x0 * bw[1] * pf), fontsize=6.5,
                    ha="left", va="bottom", xytext=(0, 3), textcoords="offset points",
                    rotation=_slope_deg(ax), rotation_mode="anchor")


def _slope_deg(ax) -> float:
    """Screen angle of a slope-1 line on the log-log axes (ignoring later layout)."""
    import math  # noqa: PLC0415

    box = ax.get_window_extent()
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    per_decade_x = box.width / math.log10(x1 / x0)
    per_decade_y = box.height / math.log10(y1 / y0)
    return math.degrees(math.atan2(per_decade_y, per_decade_x))


def _si(v: float) -> str:
    for exp, p in ((15, "P"), (12, "T"), (9, "G"), (6, "M"), (3, "k")):
        if v >= 10 ** exp:
            return f"{v / 10 ** exp:.3g} {p}"
    return f"{v:.3g} "
