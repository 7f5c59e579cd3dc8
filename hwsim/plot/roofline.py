"""Roofline plots: each op placed by arithmetic intensity and achieved throughput.

The roofline model (Williams, Waterman and Patterson, CACM 2009) bounds an
op's throughput by ``min(peak FLOP/s, intensity x DRAM bandwidth)``, where the
*arithmetic intensity* is FLOPs per DRAM byte. On a log-log plot the two
bounds are a slanted line (memory-bound, left) and a flat one (compute-bound,
right) meeting at the *ridge point*. An op far below both lines is limited by
something else: on-chip bandwidth, latency, a poor tiling, a small kernel.

:func:`roofline` places every op of a report (or every point of a sweep, by
its totals) at ``(flops / dram bytes, flops / latency)``, coloured by op kind,
sized by its share of the run's time, under the machine's ceilings
(:func:`ceilings`). Ops that move no DRAM bytes or do no FLOPs have no place on
a roofline and are counted in the caption instead::

    hwsim.plot.roofline(hwsim.simulate("workloads/bert-base.yaml", "volta"))

**Ceilings come from the target, per machine.** Each target states its own
peak FLOP/s for a data type and its datasheet DRAM bandwidth
(``peak_flops_per_s(spec, dtype)`` and ``peak_dram_bw_bytes_per_s(spec)`` of
:mod:`hwsim.targets`: the same ceilings the property tests hold every op to),
so no field names are guessed: SpAtten's HBM is its channels x bytes per
cycle x clock (512 GB/s), not whichever ``*_bw_*`` field a search finds
first. A sweep's point is one machine: its target, or preset, with the
sweep's fixed ``set:`` and the point's own ``target.*`` values applied
(:func:`machines`). Points whose machines share ceilings share one roof;
several roofs are drawn each in the colour of its points, named with its
bandwidth and peak in the legend. A target that states no ceilings gets the
best achieved bandwidth and FLOP/s instead, dotted and labelled so.
"""

from __future__ import annotations

import json
import math
from dataclasses import is_dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from .style import (
    COLUMN_IN,
    axis_label,
    categorical,
    category_colors,
    format_value,
    natural_key,
    ok_rows,
    paper,
    pyplot,
    save,
    si_axis,
    value_label,
)

# the types tried, in order, when a sweep's data type cannot be found
DTYPES = ("fp16", "bf16", "fp32", "int8", "fp64")


def _resolved(target: Any):
    """A ResolvedTarget-like (``.target``, ``.spec``) from a resolved target, a spec
    dataclass (its target found by spec class) or a target name."""
    from ..targets import registry, resolve  # noqa: PLC0415

    if isinstance(target, str):
        return resolve(target)
    if hasattr(target, "target") and hasattr(target, "spec"):
        return target
    if is_dataclass(target):
        for t in registry().values():
            if isinstance(target, t.spec_class):
                return _Bare(t, target)
    return None


class _Bare:
    def __init__(self, target, spec):
        self.target, self.spec, self.preset = target, spec, target.name


def ceilings(target: Any, dtype: str | None = None) -> dict[str, Any]:
    """The peak FLOP/s (for ``dtype``) and DRAM bandwidth a machine states.

    ``target`` is a resolved target (``report.target``, :func:`hwsim.resolve`),
    a target's spec, or a target name. Both numbers come from the target's own
    ``peak_flops_per_s(spec, dtype)`` and ``peak_dram_bw_bytes_per_s(spec)``;
    without ``dtype`` the highest peak of :data:`DTYPES` is taken. Returns
    ``{"peak": [(label, FLOP/s)], "bandwidth": [(label, B/s)]}``; a list is
    empty when the target does not state that ceiling.
    """
    rt = _resolved(target)
    if rt is None:
        return {"peak": [], "bandwidth": []}
    t, spec = rt.target, rt.spec
    peaks: list[tuple[str, float]] = []
    try:
        if dtype:
            value = float(t.peak_flops_per_s(spec, dtype))
            if value > 0:
                peaks.append((f"peak {dtype}", value))
        else:
            best = max(((float(t.peak_flops_per_s(spec, d)), d) for d in DTYPES),
                       key=lambda p: p[0])  # the first type on a tie
            if best[0] > 0:
                peaks.append((f"peak {best[1]}", best[0]))
    except NotImplementedError:
        pass
    bandwidth: list[tuple[str, float]] = []
    try:
        bw = float(t.peak_dram_bw_bytes_per_s(spec))
        if bw > 0:
            bandwidth.append((f"{getattr(t, 'memory_name', 'DRAM')} bandwidth", bw))
    except NotImplementedError:
        pass
    return {"peak": peaks, "bandwidth": bandwidth}


def machines(df: pd.DataFrame, dtype: str | None = None) -> pd.DataFrame:
    """Each sweep row's machine and its ceilings.

    A row's machine is its ``preset`` (else its ``target``, else the sweep's)
    with the sweep's fixed ``target.*`` settings and the row's own ``target.*``
    columns applied. Returns, on ``df``'s index, the columns ``machine`` (a
    label telling the distinct machines apart), ``peak_flops_per_s`` and
    ``dram_bw_bytes_per_s`` (NaN where the target does not state one)."""
    from ..targets import resolve  # noqa: PLC0415
    from .labels import describe  # noqa: PLC0415

    sweep = df.attrs.get("sweep", {}) or {}
    fixed = {k[len("target."):]: v for k, v in (sweep.get("set") or {}).items()
             if k.startswith("target.")}
    over_cols = [c for c in df.columns if str(c).startswith("target.")]
    types = _dtypes(df, dtype)
    cache: dict[str, tuple[float, float]] = {}
    peaks, bws, names = [], [], []
    for i, (_, row) in enumerate(df.iterrows()):
        overrides = {**fixed, **{c[len("target."):]: _plain(row[c]) for c in over_cols
                                 if not _missing(row[c])}}
        candidates = [str(row[c]) for c in ("preset", "target") if c in df.columns
                      and not _missing(row[c])] + ([str(sweep["target"])]
                                                   if sweep.get("target") else [])
        key = json.dumps([candidates, overrides, types[i]], sort_keys=True, default=str)
        if key not in cache:
            roofs = {"peak": [], "bandwidth": []}
            for name in candidates:
                try:
                    roofs = ceilings(resolve(name, overrides), types[i])
                    break
                except InputError:  # not a target, or overrides it refuses: try the next name
                    continue
            cache[key] = (roofs["peak"][0][1] if roofs["peak"] else math.nan,
                          roofs["bandwidth"][0][1] if roofs["bandwidth"] else math.nan)
        peak, bw = cache[key]
        peaks.append(peak)
        bws.append(bw)
        names.append(candidates[0] if candidates else "")
    out = pd.DataFrame({"target": names, "peak_flops_per_s": peaks,
                        "dram_bw_bytes_per_s": bws}, index=df.index)
    # a machine is named by its target and the settings that set its ceilings apart
    # (a bandwidth or peak setting is not repeated: the legend gives the values)
    ident = out["peak_flops_per_s"].astype(str) + "|" + out["dram_bw_bytes_per_s"].astype(str)
    firsts = df.loc[~ident.duplicated()]
    cols = [c for c in over_cols if not str(c).endswith(("_bytes_per_s", "_flops_per_s"))
            and df.loc[firsts.index, c].astype(str).nunique() > 1
            and df[c].astype(str).groupby(ident).nunique().max() == 1]
    settings = describe(firsts, cols) if cols else [""] * len(firsts)
    by_ident = {}
    for k, target, text in zip(ident[firsts.index], out.loc[firsts.index, "target"], settings):
        by_ident[k] = f"{target}, {text}" if text else target
    if len(set(by_ident.values())) < len(by_ident):  # set apart by bandwidth or peak alone
        by_ident = {k: f"{name} ({format_value('bytes_per_s', float(k.split('|')[1]))}, "
                       f"{format_value('flops_per_s', float(k.split('|')[0]))})"
                    for k, name in by_ident.items()}
    out["machine"] = [by_ident[k] for k in ident]
    return out[["machine", "peak_flops_per_s", "dram_bw_bytes_per_s"]]


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _plain(v: Any) -> Any:
    """numpy scalars as Python ones, for the spec builder."""
    return v.item() if hasattr(v, "item") else v


def _dtypes(df: pd.DataFrame, dtype: str | None) -> list[str | None]:
    """Each row's data type: ``dtype``, a ``dtype`` column, the sweep's ``set:``, or
    its workload's; None where none of these says (the highest peak is then drawn)."""
    if dtype:
        return [dtype] * len(df)
    if "dtype" in df.columns:
        return [None if _missing(v) else str(v) for v in df["dtype"]]
    sweep = df.attrs.get("sweep", {}) or {}
    found = (sweep.get("set") or {}).get("dtype")
    wl = sweep.get("workload")
    if found is None and isinstance(wl, dict):
        found = wl.get("dtype")
    if found is None and isinstance(wl, str):
        found = _workload_dtype(wl)
    return [found] * len(df)


def _workload_dtype(path: str) -> str | None:
    import os  # noqa: PLC0415

    if not os.path.exists(path):
        return None
    try:
        from ..workload import load_workload  # noqa: PLC0415

        return load_workload(path).dtype
    except InputError:  # the file changed since the sweep: no dtype known
        return None


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


_MARKERS = "osD^vP*Xh<>"


def roofline(source: Any, *, hue: str | None = None, dtype: str | None = None,
             ax: Any = None, path: str | None = None, title: str | None = None):
    """A roofline of a report's ops, or of a sweep's points; returns the figure.

    For a report, ``dtype`` picks the compute ceiling (default: the workload's
    dtype). For a sweep's DataFrame, each point is placed by its totals under
    its own machine's ceilings (:func:`machines`). With one machine the points
    are coloured by ``hue``; with several, by machine (each roof in its
    points' colour) and ``hue`` picks the marker.
    """
    plt = pyplot()
    if isinstance(source, pd.DataFrame):
        df = ok_rows(source)
        executed = df["executed_flops"] if "executed_flops" in df else df["flops"]
        pts = pd.DataFrame({"flops": executed.astype(float),
                            "bytes": df["dram_bytes"].astype(float),
                            "latency_s": df["latency_s"].astype(float),
                            "kind": df[hue] if hue else "point", "share": 0.0},
                           index=df.index)
        pts = pts.join(machines(df, dtype))
        group = hue
        what = f"{len(df)} sweep points, by their totals"
    else:
        pts = points_of(source)
        dtype = dtype or getattr(source.workload, "dtype", None)
        roofs = ceilings(source.target, dtype)
        pts["machine"] = source.target.preset
        pts["peak_flops_per_s"] = roofs["peak"][0][1] if roofs["peak"] else math.nan
        pts["dram_bw_bytes_per_s"] = roofs["bandwidth"][0][1] if roofs["bandwidth"] \
            else math.nan
        group = "kind"
        what = f"{source.graph.header.get('name', '')} on {source.target.preset}, one point per op"
    placed = pts[(pts["flops"] > 0) & (pts["bytes"] > 0) & (pts["latency_s"] > 0)]
    skipped = len(pts) - len(placed)
    ai = (placed["flops"] / placed["bytes"]).to_numpy()
    perf = (placed["flops"] / placed["latency_s"]).to_numpy()
    roofs = _roofs(placed if len(placed) else pts)
    several = len(roofs) > 1
    with paper():
        if ax is None:
            fig, ax = plt.subplots(figsize=(COLUMN_IN + 1.4, 2.8))
        else:
            fig = ax.figure
        machine_colors = category_colors([r["machine"] for r in roofs], "machine") \
            if several else {}
        cats = placed["kind"] if group else pd.Series(["point"] * len(placed), index=placed.index)
        sizes = (8 + 200 * placed["share"].to_numpy()) if not isinstance(source, pd.DataFrame) \
            else np.full(len(placed), 16.0)
        if several:
            marks = list(dict.fromkeys(sorted(cats.tolist(), key=natural_key)))
            use_marks = group is not None and 1 < len(marks) <= len(_MARKERS)
            for mi, mk in enumerate(marks if use_marks else [None]):
                m = np.ones(len(placed), bool) if mk is None else (cats == mk).to_numpy()
                colors = [machine_colors[v] for v in placed["machine"][m]]
                ax.scatter(ai[m], perf[m], s=sizes[m], c=colors, alpha=0.8,
                           marker=_MARKERS[mi] if use_marks else "o",
                           edgecolors="white", linewidths=0.3)
        elif group and not categorical(cats):
            sc = ax.scatter(ai, perf, c=cats.to_numpy(float), cmap="viridis", s=14,
                            alpha=0.8, linewidths=0)
            bar = fig.colorbar(sc, ax=ax, label=axis_label(group))
            si_axis(bar.ax, "y", group)
        else:
            colors = category_colors(cats.tolist(), group)
            for cat in sorted(dict.fromkeys(cats.tolist()), key=natural_key):
                m = (cats == cat).to_numpy()
                ax.scatter(ai[m], perf[m], s=sizes[m], alpha=0.75, color=colors[cat],
                           edgecolors="white", linewidths=0.3,
                           label=value_label(cat, group if group != "kind" else None))
        ax.set_xscale("log")
        ax.set_yscale("log")
        handles = _draw_ceilings(ax, roofs, ai, perf, machine_colors)
        ax.set_xlabel(axis_label("intensity"))
        ax.set_ylabel("achieved " + axis_label("flops_per_s"))
        si_axis(ax, "x", "intensity")
        si_axis(ax, "y", "flops_per_s")
        _legend(ax, handles, several, group, cats, use_marks if several else False)
        ax.set_title(title or what + ("; ceilings per machine" if several else ""),
                     fontsize=8)
        if skipped:
            ax.text(0.01, 0.01, f"{skipped} ops without FLOPs or DRAM bytes not placed",
                    transform=ax.transAxes, fontsize=6, color="0.4")
    return save(fig, path)


def _roofs(pts: pd.DataFrame) -> list[dict]:
    """The distinct (peak, bandwidth) roofs of the points, each with its machine's name."""
    out: dict[tuple, dict] = {}
    for machine, peak, bw in zip(pts["machine"], pts["peak_flops_per_s"],
                                 pts["dram_bw_bytes_per_s"]):
        key = (None if _missing(peak) else float(peak), None if _missing(bw) else float(bw))
        out.setdefault(key, {"machine": str(machine), "peak": key[0], "bandwidth": key[1]})
    return sorted(out.values(), key=lambda r: (r["bandwidth"] or 0.0, r["peak"] or 0.0,
                                               natural_key(r["machine"])))


def _draw_ceilings(ax, roofs, ai, perf, colors) -> list:
    """Draw each roof; return legend handles for several (empty for one, labelled inline)."""
    from matplotlib.lines import Line2D  # noqa: PLC0415

    ridges = [r["peak"] / r["bandwidth"] for r in roofs if r["peak"] and r["bandwidth"]]
    lo = min([*ai, *ridges, 1e-1]) / 3
    hi = max([*ai, *ridges, 1e3]) * 3
    xs = np.logspace(np.log10(lo), np.log10(hi), 256)
    ys_all = list(perf)
    handles = []
    for r in roofs:
        peak, bw, derived = r["peak"], r["bandwidth"], []
        if bw is None and len(ai):
            bw = float(np.max(perf / ai))
            derived.append("bandwidth")
        if peak is None and len(perf):
            peak = float(np.max(perf))
            derived.append("FLOP/s")
        if peak is None or bw is None:
            continue
        color = colors.get(r["machine"], "black")
        style = ":" if derived else "-"
        ys = np.minimum(peak, xs * bw)
        ax.plot(xs, ys, color=color, linestyle=style, linewidth=1.0, zorder=1)
        ys_all += [peak, xs[0] * bw]
        bw_text = format_value("bytes_per_s", bw)
        peak_text = format_value("flops_per_s", peak)
        if colors:
            note = " (best achieved)" if derived else ""
            text = r["machine"] if bw_text in r["machine"] else \
                f"{r['machine']}: {bw_text}, {peak_text}"
            handles.append(Line2D([], [], color=color, linestyle=style, marker="o",
                                  markersize=3.5, label=text + note))
            continue
        best = "best achieved "
        ax.annotate(f"{best if 'FLOP/s' in derived else ''}peak {peak_text}", (xs[-1], peak),
                    fontsize=6.5, ha="right", va="bottom", xytext=(0, 2),
                    textcoords="offset points")
        ax.set_xlim(xs[0], xs[-1])
        ax.set_ylim(min(ys_all) / 3, max(ys_all) * 4)
        x0 = xs[0] * 1.6
        ax.annotate(f"{best if 'bandwidth' in derived else ''}{r['machine']} {bw_text}",
                    (x0, x0 * bw), fontsize=6.5, ha="left", va="bottom", xytext=(0, 3),
                    textcoords="offset points", rotation=_slope_deg(ax),
                    rotation_mode="anchor")
    if ys_all:
        ax.set_ylim(min(ys_all) / 3, max(ys_all) * 4)
    ax.set_xlim(xs[0], xs[-1])
    return handles


def _legend(ax, handles, several, group, cats, use_marks) -> None:
    from matplotlib.lines import Line2D  # noqa: PLC0415

    if several:
        # one legend (a second one added as an artist escapes the layout and is cut):
        # the machines, then the markers of ``group`` under a heading of their own
        if use_marks:
            marks = list(dict.fromkeys(sorted(cats.tolist(), key=natural_key)))
            handles = [*handles, Line2D([], [], linestyle="", label=""),
                       Line2D([], [], linestyle="", label=axis_label(group)),
                       *(Line2D([], [], color="0.3", linestyle="", marker=_MARKERS[i],
                                label=value_label(m, group)) for i, m in enumerate(marks))]
        ax.legend(handles=handles, title="machine: DRAM bandwidth, peak", fontsize=6,
                  title_fontsize=6.5, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        return
    if not ax.get_legend_handles_labels()[0]:
        return
    legend = ax.legend(fontsize=6.5, bbox_to_anchor=(1.02, 1.0), loc="upper left",
                       title=axis_label(group) if group and group != "kind" else "op kind",
                       title_fontsize=7)
    for handle in getattr(legend, "legend_handles", []):
        if hasattr(handle, "set_sizes"):
            handle.set_sizes([18])


def _slope_deg(ax) -> float:
    """Screen angle of a slope-1 line on the log-log axes (ignoring later layout)."""
    box = ax.get_window_extent()
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    per_decade_x = box.width / math.log10(x1 / x0)
    per_decade_y = box.height / math.log10(y1 / y0)
    return math.degrees(math.atan2(per_decade_y, per_decade_x))
