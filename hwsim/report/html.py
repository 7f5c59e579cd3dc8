"""The HTML report: one self-contained page a person reads (``hwsim simulate --html``).

:func:`to_html` turns one report, or several (one per target), into a page that
opens offline: the CSS and the little JavaScript are inline, the figures are
inline SVG (:mod:`hwsim.report.svg`), nothing is fetched. Per report it shows:

- the run: workload, target, fidelity and what that fidelity means, warnings;
- the totals (with a request's TTFT, TPOT and per-token figures for a
  generation) and the energy by component;
- the baseline comparison (``--baseline``: the unpruned run's totals, the pruned
  run's and their ratio) and the pruning schedule (what each method kept per
  layer, its overhead);
- where the time goes: by op kind and by layer (a column per layer stacked by
  kind), each with its share of the run, DRAM bytes and energy;
- a roofline: each distinct op (:mod:`hwsim.report.groups`) placed by its
  arithmetic intensity (executed FLOPs per DRAM byte) and achieved FLOP/s under
  the target's own ceilings (``peak_flops_per_s`` for each data type the ops use,
  ``peak_dram_bw_bytes_per_s``: the machine's, as the property tests hold them);
- the timeline, from the events of the Chrome trace
  (:func:`hwsim.report.chrome.chrome_events`): the run's ops lane (and the host's
  issue lane), and inside the longest distinct ops, their tasks on each unit;
- the ops, identical ones grouped with their count, and every op (``<details>``).

The page's script only adds: sorting a table by a click on its header, and a menu
that shows one op's task timeline at a time (without the script, all are shown).
:func:`fragment` is the same content without the page around it and without the
timeline and the op list, scoped under one ``<div>``, which is what a Jupyter cell
shows (``Report._repr_html_``).
"""

from __future__ import annotations

import itertools
import math
from html import escape
from typing import Any, Sequence

from . import svg
from .groups import by_kind, by_layer, collapse_layers, group_ops, top_groups
from .report import ops_label
from .table import FIDELITY, si

# at most this many rows in the page's list of every op, op timelines, lanes per timeline
ALL_OPS_ROWS = 5000
OP_TIMELINES = 6
TIMELINE_LANES = 48

_ids = itertools.count()

CSS = """
.hwsim-report{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;
 color:#1d1d1f;line-height:1.4;max-width:1100px}
.hwsim-report h1{font-size:1.5em;margin:.4em 0}
.hwsim-report h2{font-size:1.25em;margin:1.2em 0 .3em;border-bottom:2px solid #ddd}
.hwsim-report h3{font-size:1.05em;margin:1em 0 .3em}
.hwsim-report .meta{color:#555;margin:.2em 0}
.hwsim-report .note{color:#555;font-size:.9em;margin:.3em 0}
.hwsim-report .warn{background:#fff4e0;border-left:4px solid #f0a020;padding:.3em .6em}
.hwsim-report .cards{display:flex;flex-wrap:wrap;gap:.5em;margin:.5em 0}
.hwsim-report .card{border:1px solid #ddd;border-radius:6px;padding:.35em .7em;min-width:8.5em}
.hwsim-report .card .k{color:#666;font-size:.8em}
.hwsim-report .card .v{font-size:1.15em;font-weight:600;font-variant-numeric:tabular-nums}
.hwsim-report table{border-collapse:collapse;margin:.4em 0;font-size:.88em}
.hwsim-report th,.hwsim-report td{padding:.15em .6em;border-bottom:1px solid #eee;
 text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.hwsim-report th{background:#f5f5f7;position:sticky;top:0}
.hwsim-report th.sortable{cursor:pointer}
.hwsim-report td.l,.hwsim-report th.l{text-align:left}
.hwsim-report td.name{text-align:left;white-space:normal;max-width:38em}
.hwsim-report .swatch{display:inline-block;width:.8em;height:.8em;margin-right:.3em;
 vertical-align:-1px;border-radius:2px}
.hwsim-report .scroll{max-height:28em;overflow:auto;border:1px solid #eee}
.hwsim-report svg.hwsim-chart{display:block;margin:.3em 0;max-width:100%;height:auto}
.hwsim-report .op-timeline{margin:.6em 0}
.hwsim-report select{font:inherit;margin:.3em 0}
"""

# sort a table on a header click; show one op timeline at a time; say the page is ready
SCRIPT = """
(function(){
 function key(td){var v=td.getAttribute('data-v');return v===null?td.textContent:parseFloat(v);}
 document.querySelectorAll('.hwsim-report table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){
   th.classList.add('sortable');th.title='sort by this column';
   th.addEventListener('click',function(){
    var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows);
    var down=th.getAttribute('data-dir')!=='desc';th.setAttribute('data-dir',down?'desc':'asc');
    rows.sort(function(a,b){var x=key(a.cells[i]),y=key(b.cells[i]);
     var c=(typeof x==='number'&&typeof y==='number')?x-y:String(x).localeCompare(String(y));
     return down?-c:c;});
    rows.forEach(function(r){body.appendChild(r);});});});});
 document.querySelectorAll('.hwsim-report .op-timelines').forEach(function(box){
  var items=box.querySelectorAll('.op-timeline');if(items.length<2)return;
  var sel=document.createElement('select');sel.className='op-select';
  items.forEach(function(it,i){var o=document.createElement('option');o.value=i;
   o.textContent=it.getAttribute('data-label');sel.appendChild(o);});
  function show(){items.forEach(function(it,i){it.style.display=(i==sel.value)?'':'none';});}
  sel.addEventListener('change',show);box.insertBefore(sel,box.firstChild);show();});
 document.documentElement.setAttribute('data-hwsim-ready','1');
})();
"""


# ------------------------------------------------------------------ small pieces
def _td(text: Any, sort: float | None = None, cls: str = "") -> str:
    v = "" if sort is None or not math.isfinite(sort) else f' data-v="{sort:.17g}"'
    c = f' class="{cls}"' if cls else ""
    return f"<td{c}{v}>{escape('-' if text is None else str(text))}</td>"


def _table(headers: Sequence[str], rows: Sequence[str], left: int | set = 1,
           sortable: bool = True, cls: str = "") -> str:
    """A table; ``left``: the columns of text (the first ``left``, or a set of indices)."""
    lefts = set(range(left)) if isinstance(left, int) else left
    ths = "".join(f'<th class="l">{escape(h)}</th>' if i in lefts else f"<th>{escape(h)}</th>"
                  for i, h in enumerate(headers))
    classes = " ".join(c for c in ("sortable" if sortable else "", cls) if c)
    return (f'<table class="{classes}"><thead><tr>{ths}</tr></thead><tbody>'
            + "".join(f"<tr>{r}</tr>" for r in rows) + "</tbody></table>")


def _card(key: str, value: str, tip: str = "") -> str:
    t = f' title="{escape(tip)}"' if tip else ""
    return (f'<div class="card"{t}><div class="k">{escape(key)}</div>'
            f'<div class="v">{escape(value)}</div></div>')


def _unit(key: str) -> str:
    for end, unit in (("_per_token_j", "J"), ("bytes_per_token", "B"), ("tokens_per_s", "token/s"),
                      ("_s", "s"), ("_j", "J"), ("_bytes", "B"), ("flops", "FLOP"), ("_w", "W")):
        if key.endswith(end):
            return unit
    return ""


def _value(key: str, v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if key == "step_error":
        return f"{100 * v:g} %"
    unit = _unit(key)
    if unit:
        return si(v, unit)
    return f"{v:,}" if isinstance(v, int) else f"{v:.4g}" if isinstance(v, float) else str(v)


LABELS = {"ttft_s": "TTFT", "tpot_s": "TPOT mean", "tpot_p50_s": "TPOT p50",
          "tpot_p90_s": "TPOT p90", "tpot_p99_s": "TPOT p99", "tokens_per_s": "tokens/s",
          "kv_cache_bytes": "KV cache (largest)", "dram_read_bytes": "DRAM read",
          "dram_write_bytes": "DRAM write", "peak_memory_bytes": "peak memory",
          "step_error": "step error (bound)"}


def _label(key: str) -> str:
    if key in LABELS:
        return LABELS[key]
    for end in ("_bytes", "_s", "_j", "_w"):
        if key.endswith(end) and not key.endswith("_per_s"):
            key = key[: -len(end)]
            break
    return key.replace("_", " ")


def _percent(share: float) -> str:
    return f"{100 * share:.1f}%"


# ------------------------------------------------------------------ sections
def _run_section(report) -> str:
    wl = report.workload
    fields = []
    if wl is not None:
        d = wl.to_dict()
        for k in ("model", "phase", "batch", "seq_len", "kv_len", "new_tokens", "dtype"):
            if d.get(k) not in (None, "", 0) or k == "batch":
                fields.append(f"{k} {d[k]:,}" if isinstance(d.get(k), int) else f"{k} {d.get(k)}")
    devices = f", {report.devices} devices (figures per device unless totals)" \
        if report.devices > 1 else ""
    out = [f'<p class="meta">{ops_label(report)}{escape(devices)}; '
           f'{escape(", ".join(fields))}</p>',
           f'<p class="meta"><b>fidelity {escape(report.fidelity)}</b>: '
           f'{escape(FIDELITY.get(report.fidelity, "as the target defines it"))}.</p>']
    out += [f'<p class="warn">{escape(w)}</p>' for w in report.warnings]
    return "".join(out)


FIRST_TOTALS = ("latency_s", "cycles", "flops", "dense_flops", "executed_flops",
                "dram_read_bytes", "dram_write_bytes", "energy_j")


def _totals_section(report) -> str:
    t = report.totals
    cards = [_card(_label(k), _value(k, t[k])) for k in FIRST_TOTALS if t.get(k) is not None]
    if t["latency_s"] > 0:
        executed = t.get("executed_flops", t["flops"])
        cards.append(_card("throughput", si(executed / t["latency_s"], "FLOP/s"),
                           "executed FLOPs over the latency"))
        cards.append(_card("power per device", si(report.power_w, "W"),
                           "one device's energy over the latency"))
    if report.host_wait_s:
        cards.append(_card("waiting for the host", si(report.host_wait_s, "s")))
    cards += [_card(_label(k), _value(k, v)) for k, v in t.items()
              if k not in FIRST_TOTALS and k != "energy_breakdown_j"
              and not isinstance(v, (dict, list))]
    mem = report.memory
    if mem.get("total_bytes"):
        cap = mem.get("capacity_bytes") or 0
        cards.append(_card("memory per device", si(mem["total_bytes"], "B")
                           + (f" of {si(cap, 'B')}" if cap else ""),
                           f"weights {si(mem.get('weights_bytes', 0), 'B')}, KV cache "
                           f"{si(mem.get('kv_cache_bytes', 0), 'B')}, activations "
                           f"{si(mem.get('activations_bytes', 0), 'B')}"))
    carried = getattr(report, "onchip", None)
    if carried and carried["tensors"]:  # tensors carried between ops (hwsim.onchip)
        kept = sum(1 for x in carried["tensors"] if x["dram_write_skipped"])
        cards.append(_card("carried on chip", f"{len(carried['tensors'])} tensors",
                           f"in {si(carried['capacity_bytes'], 'B')} of cache, {kept} never "
                           f"written; DRAM {si(carried['dram_read_saved_bytes'], 'B')} read "
                           f"and {si(carried['dram_write_saved_bytes'], 'B')} written saved"))
    parts = [(k, v) for k, v in t["energy_breakdown_j"].items() if v]
    colour = svg.colours([k for k, _ in parts])
    energy = svg.hbars([(k, v, colour[k], f"{k}: {si(v, 'J')} "
                         f"({_percent(v / t['energy_j']) if t['energy_j'] else '-'})")
                        for k, v in parts], "J", label="energy by component") if parts else ""
    return (f'<div class="cards">{"".join(cards)}</div>'
            + (f"<h3>Energy by component</h3>{energy}" if energy else ""))


def _comparison_section(report) -> str:
    base = report.baseline
    if base is None:
        return ""
    t, b = report.totals, base.totals
    keys = [k for k in ("latency_s", "ttft_s", "tpot_s", "energy_j", "flops", "dram_read_bytes",
                        "dram_write_bytes", "peak_memory_bytes", "kv_cache_bytes")
            if k in t and k in b and t[k] is not None and b[k] is not None]
    rows, bars = [], []
    for k in keys:
        ratio = t[k] / b[k] if b[k] else None
        rows.append(_td(_label(k), cls="l") + _td(_value(k, b[k]), b[k])
                    + _td(_value(k, t[k]), t[k])
                    + _td("-" if ratio is None else f"{ratio:.3f}", ratio))
        if ratio is not None:
            bars.append((_label(k), ratio, "#2ca02c" if ratio <= 1 else "#d62728",
                         f"{_label(k)}: pruned / unpruned = {ratio:.3f}"))
    return ("<h2>Pruned against unpruned</h2>"
            '<p class="note">The same workload simulated without its pruning (--baseline); '
            "ratio: pruned over unpruned (below 1: pruning saves).</p>"
            + _table(["", "unpruned", "pruned", "ratio"], rows, sortable=False)
            + svg.hbars(bars, "", label="pruned over unpruned", fmt=lambda v: f"{v:.3g}"))


def _pruning_section(report) -> str:
    summary = report.pruning
    if not summary or not summary["steps"]:
        return ""
    from .pruning import compact_layers  # noqa: PLC0415

    out = ["<h2>Pruning schedule</h2>"]
    for rec in summary["steps"]:
        params = ", ".join(f"{k}={v}" for k, v in rec.get("params", {}).items())
        decode = rec.get("phase") == "decode"
        values = rec["kv_per_layer"] if decode else rec["tokens_per_layer"]
        what = "keys cached" if decode else "tokens"
        dense = rec.get("dense_tokens") if not decode else None
        first = int(rec.get("first_layer", 0))
        columns = []
        for i, v in enumerate(values):
            name = f"L{first + i}"
            if v is None:
                columns.append((name, [("dropped", float(dense or max(
                    (x for x in values if x is not None), default=1)), "#dddddd")]))
                continue
            parts = [(f"{what} kept", float(v), "#1f77b4")]
            if dense and dense > v:
                parts.append((f"{what} pruned", float(dense - v), "#ffbb78"))
            columns.append((name, parts))
        legend = [(f"{what} kept", "#1f77b4")] + ([(f"{what} pruned", "#ffbb78")] if dense
                                                  else []) + \
            ([("layer dropped", "#dddddd")] if rec.get("dropped_layers") else [])
        out.append(f"<h3>{escape(rec['method'])}({escape(params)}) on the "
                   f"{escape(str(rec.get('stack', '')))} stack</h3>")
        out.append(f'<p class="note">{escape(what)} per layer: '
                   f"{escape(compact_layers(values, first))}"
                   + (f"; heads per layer: {escape(compact_layers(rec['heads_per_layer'], first))}"
                      if len(set(rec.get("heads_per_layer") or []) - {None}) > 1 else "")
                   + (f"; dropped layers {rec['dropped_layers']}"
                      if rec.get("dropped_layers") else "")
                   + f"; {rec.get('overhead_ops', 0)} overhead ops</p>")
        out.append(svg.stacked_columns(columns, "", label=f"{what} per layer", legend=legend,
                                       height=200))
    o = summary["overhead"]
    out.append(f'<p class="note">Overhead of the pruning machinery (scores, top-k, gathers): '
               f"{si(o['latency_s'], 's')} ({_percent(o['latency_share'])} of latency), "
               f"{si(o['energy_j'], 'J')} ({_percent(o['energy_share'])} of energy), "
               f"{o['ops']} ops.</p>")
    out.append(_quality_section(summary.get("published_quality")))
    return "".join(out)


def _quality_section(q) -> str:
    """What the method's sources publish at exactly this setting (hwsim.accuracy)."""
    if not q:
        return ""
    out = ["<h3>Published quality</h3>"]
    if not q["rows"]:
        return out[0] + f'<p class="note">{escape(q["note"])}</p>'
    rows = []
    for r in q["rows"]:
        rel = r["score"] / r["dense_score"] if r["dense_score"] else None
        cells = [r["benchmark"], f"{r['score']:g}", f"{r['dense_score']:g}",
                 f"{rel:.3f}" if rel is not None else "-", r["source_short"], r["locator"]]
        rows.append("".join(f'<td class="l">{escape(c)}</td>' if i in (0, 4, 5)
                            else f"<td>{escape(c)}</td>" for i, c in enumerate(cells)))
    sources = "; ".join(sorted({r["source"] for r in q["rows"]}))
    notes = "; ".join(dict.fromkeys(part for r in q["rows"] for part in r["note"].split("; ")
                                    if part))
    out.append(_table(["benchmark", "score", "dense", "ratio", "source", "where"], rows,
                      left={0, 4, 5}, sortable=False))
    out.append(f'<p class="note">As published, at exactly this setting (never '
               f"interpolated): {escape(sources)}" + (f". {escape(notes)}" if notes else "")
               + ".</p>")
    return "".join(out)


def _kind_colours(reports) -> dict[str, str]:
    """One colour per op kind across every report of the page, by total latency."""
    time: dict[str, float] = {}
    for r in reports:
        for row in r.rows:
            time[row["kind"]] = time.get(row["kind"], 0.0) + row["latency_s"]
    return svg.colours(sorted(time, key=lambda k: -time[k]))


def _kind_section(report, colour) -> str:
    kinds = by_kind(report)
    if not kinds:
        return ""
    bars = [(k["kind"], k["latency_s"], colour[k["kind"]],
             f"{k['kind']}: {k['ops']} ops, {si(k['latency_s'], 's')} "
             f"({_percent(k['share'])})") for k in kinds]
    rows = [_td(k["kind"], cls="l") + _td(k["ops"], k["ops"])
            + _td(si(k["latency_s"], "s"), k["latency_s"]) + _td(_percent(k["share"]), k["share"])
            + _td(si(k["flops"], "FLOP"), k["flops"]) + _td(si(k["dram_bytes"], "B"),
                                                             k["dram_bytes"])
            + _td(si(k["energy_j"], "J"), k["energy_j"]) for k in kinds]
    per = " (one device's)" if report.devices > 1 else ""
    return (f"<h2>By op kind{per}</h2>" + svg.hbars(bars, "s", label="latency by op kind")
            + _table(["kind", "ops", "latency", "share", "flops", "dram", "energy"], rows))


def _layer_section(report, colour) -> str:
    layers = by_layer(report)
    if not layers:
        return ""
    per_kind: dict[Any, dict[str, float]] = {}
    for r in report.rows:
        d = per_kind.setdefault(r.get("layer"), {})
        d[r["kind"]] = d.get(r["kind"], 0.0) + r["latency_s"] + r.get("host_wait_s", 0.0)
    kinds = [k for k in colour if any(k in d for d in per_kind.values())]
    columns = [("out" if row["layer"] is None else str(row["layer"]),
                [(k, per_kind[row["layer"]].get(k, 0.0), colour[k]) for k in kinds])
               for row in layers]
    rows = [_td(label, cls="l") + _td(f"{k['ops']:,}", k["ops"])
            + _td(si(k["latency_s"], "s"), k["latency_s"]) + _td(_percent(k["share"]), k["share"])
            + _td(si(k["flops"], "FLOP"), k["flops"])
            + _td(si(k["dram_bytes"], "B"), k["dram_bytes"])
            + _td(si(k["energy_j"], "J"), k["energy_j"])
            for label, k in collapse_layers(layers)]
    per = " (one device's)" if report.devices > 1 else ""
    return (f"<h2>By layer{per}</h2>"
            + svg.stacked_columns(columns, "s", label="latency per layer by op kind",
                                  legend=[(k, colour[k]) for k in kinds[:8]])
            + '<p class="note">Column "out": the ops outside any layer (embedding, final norm, '
              "head). Table: each layer's figures, equal consecutive layers in one row.</p>"
            + _table(["layers", "ops", "latency", "share", "flops", "dram", "energy"], rows))


def ceilings(report) -> tuple[list[tuple[str, float]], tuple[str, float] | None]:
    """The target's compute ceilings for each data type its ops produce, and its DRAM
    bandwidth (``peak_flops_per_s``, ``peak_dram_bw_bytes_per_s``); a target that does
    not state one has none drawn."""
    target, spec = report.target.target, report.target.spec
    tensors = report.graph.tensors
    dtypes = sorted({tensors[o].dtype for op in report.graph.ops for o in op.outputs})
    peaks = []
    for dt in dtypes:
        try:
            p = float(target.peak_flops_per_s(spec, dt))
        except (NotImplementedError, KeyError, ValueError):
            continue
        if p > 0 and all(p != q for _, q in peaks):
            peaks.append((f"peak {dt}", p))
    try:
        bw = float(target.peak_dram_bw_bytes_per_s(spec))
    except NotImplementedError:
        bw = 0.0
    peaks.sort(key=lambda p: -p[1])
    return peaks, (("DRAM", bw) if bw > 0 else None)


def _roofline_section(report, colour) -> str:
    groups = group_ops(report)
    total = report.totals["latency_s"] or 1.0
    points, skipped = [], 0
    for g in groups:
        if g.executed_flops <= 0 or g.dram_bytes <= 0 or g.latency_s <= 0:
            skipped += g.count
            continue
        ai = g.executed_flops / g.dram_bytes
        perf = g.executed_flops / g.latency_s
        r = 3 + 12 * math.sqrt(g.total_latency_s / total)
        points.append((ai, perf, r, colour[g.kind],
                       f"{g.name} ({g.kind}, {g.count} op{'s' if g.count > 1 else ''}): "
                       f"{ai:.3g} FLOP/B, {si(perf, 'FLOP/s')}, {si(g.latency_s, 's')} each, "
                       f"{_percent(g.total_latency_s / total)} of the run, {g.bound}-bound"))
    if not points:
        return ""
    peaks, bw = ceilings(report)
    kinds = list(dict.fromkeys(g.kind for g in top_groups(groups, None)
                               if g.executed_flops > 0 and g.dram_bytes > 0))
    note = (f"Each point is one distinct op (identical ops together, area by their share of "
            f"the run), placed by executed FLOPs per DRAM byte and executed FLOPs per second, "
            f"under {escape(report.target.preset)}'s ceilings"
            + ("" if peaks or bw else " (the target states none)")
            + f". {skipped} ops with no FLOPs or no DRAM traffic are not drawn.")
    return ("<h2>Roofline</h2>" + svg.roofline(points, peaks, bw, label="roofline",
                                               legend=[(k, colour[k]) for k in kinds[:8]])
            + f'<p class="note">{note}</p>')


def _timeline_section(report, colour, uid: str) -> str:
    from .chrome import chrome_events  # noqa: PLC0415

    every = chrome_events(report)
    events = [e for e in every if e["ph"] == "X"]
    ops = [e for e in events if e["tid"] == 1]
    if not ops:
        return ""
    host = [e for e in events if e.get("cat") == "host"]
    span = max(e["ts"] + e["dur"] for e in [*ops, *host]) * 1e-6
    lanes = [("ops", [(e["ts"] * 1e-6, (e["ts"] + e["dur"]) * 1e-6, colour[e["cat"]],
                       f"{e['name']} ({e['cat']}): {si(e['dur'] * 1e-6, 's')} from "
                       f"{si(e['ts'] * 1e-6, 's')}") for e in ops])]
    if host:
        lanes.insert(0, ("host issue", [(e["ts"] * 1e-6, (e["ts"] + e["dur"]) * 1e-6, "#999",
                                         f"{e['name']}: {si(e['dur'] * 1e-6, 's')}")
                                        for e in host]))
    names = {e["tid"]: e["args"]["name"] for e in every
             if e["ph"] == "M" and e["name"] == "thread_name"}
    # ops on other streams (tiling-AllReduce's all-reduces, host KV copies): a lane each
    streams = sorted({e["tid"] for e in events if e["tid"] != 1 and "id" in e["args"]})
    for tid in streams:
        on = [e for e in events if e["tid"] == tid and "id" in e["args"]]
        span = max(span, max(e["ts"] + e["dur"] for e in on) * 1e-6)
        lanes.append((names.get(tid, str(tid)), [
            (e["ts"] * 1e-6, (e["ts"] + e["dur"]) * 1e-6, colour[e["cat"]],
             f"{e['name']} ({e['cat']}): {si(e['dur'] * 1e-6, 's')} from "
             f"{si(e['ts'] * 1e-6, 's')}") for e in on]))
    out = ["<h2>Timeline</h2>",
           '<p class="note">The run, op after op, coloured by kind (the same events as '
           "--chrome-trace; open that file in Perfetto or chrome://tracing to zoom)"
           + ("; ops on other streams below, overlapping the compute stream"
              if streams else "") + ".</p>",
           svg.gantt(lanes, span, label="the run's ops")]
    tasks: dict[int, list[dict]] = {}
    for e in events:
        if "op" in e["args"]:  # a task of an op (not an op, not the host's issue)
            tasks.setdefault(e["args"]["op"], []).append(e)
    if not tasks:
        out.append('<p class="note">No task timeline: the analytical fidelity bounds each op '
                   "without scheduling its tasks.</p>")
        return "".join(out)
    start: dict[int, float] = {}  # each op's first event (an op on streams has one a piece)
    for e in events:
        if "id" in e["args"]:
            start[e["args"]["id"]] = min(e["ts"], start.get(e["args"]["id"], e["ts"]))
    chosen = [g for g in top_groups(group_ops(report), None) if g.ids[0] in tasks]
    items = []
    for g in chosen[:OP_TIMELINES]:
        evs = tasks[g.ids[0]]
        t0 = start[g.ids[0]]
        by_lane: dict[int, list] = {}
        for e in evs:
            by_lane.setdefault(e["tid"], []).append(
                ((e["ts"] - t0) * 1e-6, (e["ts"] - t0 + e["dur"]) * 1e-6, colour[g.kind],
                 f"{names.get(e['tid'], e['tid'])}: {e['name']}, {si(e['dur'] * 1e-6, 's')}"))
        tids = sorted(by_lane)
        shown = [(names.get(t, str(t)), by_lane[t]) for t in tids[:TIMELINE_LANES]]
        more = len(tids) - len(shown)
        label = (f"{g.name} ({g.kind}, {g.count}x, {si(g.latency_s, 's')} each, "
                 f"{len(evs):,} tasks on {len(tids)} units)")
        items.append(f'<div class="op-timeline" data-label="{escape(label)}">'
                     f"<h3>{escape(label)}</h3>"
                     + svg.gantt(shown, g.latency_s, label=f"tasks of {g.name}")
                     + (f'<p class="note">{more} more units not drawn (see the Chrome trace).'
                        "</p>" if more else "") + "</div>")
    out.append(f"<h3>Inside the longest ops</h3>"
               f'<p class="note">Each distinct op\'s tasks on the units that ran them, from '
               f"the op's start (identical ops share one simulation).</p>"
               f'<div class="op-timelines" id="{uid}-ops">{"".join(items)}</div>')
    return "".join(out)


def _group_rows(groups, total: float, colour) -> list[str]:
    return [_td(g.count, g.count)
            + f'<td class="l"><span class="swatch" style="background:{colour[g.kind]}"></span>'
              f"{escape(g.kind)}</td>"
            + _td(g.layer_label, cls="l") + _td(si(g.latency_s, "s"), g.latency_s)
            + _td(si(g.total_latency_s, "s"), g.total_latency_s)
            + _td(_percent(g.total_latency_s / total), g.total_latency_s / total)
            + _td(si(g.flops, "FLOP"), g.flops) + _td(si(g.dram_bytes, "B"), g.dram_bytes)
            + _td(si(g.total_energy_j, "J"), g.total_energy_j) + _td(g.bound, cls="l")
            + _td(g.shapes, cls="name") + _td(g.name + (f"  [{g.detail}]" if g.detail else ""),
                                              cls="name")
            for g in groups]


GROUP_HEADERS = ["count", "kind", "layers", "each", "total", "share", "flops", "dram",
                 "energy", "bound", "shapes", "name"]


def _ops_section(report, colour, top: int | None) -> str:
    groups = group_ops(report)
    total = report.totals["latency_s"] or 1.0
    shown = top_groups(groups, top)
    out = [f"<h2>Ops by latency</h2><p class=\"note\">{len(groups):,} distinct of "
           f"{report.runs:,} ops: identical ops (same kind, shapes and cost) are one row "
           f"with their count; each, flops and dram are one op's, total, share and energy "
           f"the row's.</p>",
           '<div class="scroll">'
           + _table(GROUP_HEADERS, _group_rows(shown, total, colour), {1, 2, 9, 10, 11})
           + "</div>"]
    if top is None:
        repeated = report.runs != len(report.rows)  # a count column only then
        rows = [_td(r["id"], r["id"])
                + (_td(f"{r.get('count', 1):,}", r.get("count", 1)) if repeated else "")
                + _td(r["kind"], cls="l") + _td(r.get("layer"))
                + _td(si(r["start_s"], "s"), r["start_s"])
                + _td(si(r["latency_s"], "s"), r["latency_s"])
                + _td(si(r["flops"], "FLOP"), r["flops"])
                + _td(si(r["dram_read_bytes"] + r["dram_write_bytes"], "B"),
                      r["dram_read_bytes"] + r["dram_write_bytes"])
                + _td(si(r["energy_j"], "J"), r["energy_j"]) + _td(r["bound"], cls="l")
                + _td(r.get("module") or r["name"], cls="name")
                for r in report.rows[:ALL_OPS_ROWS]]
        cut = (f", the first {ALL_OPS_ROWS:,} shown (all in --csv)"
               if len(report.rows) > ALL_OPS_ROWS else "")
        headers = ["id", "kind", "layer", "start", "latency", "flops", "dram", "energy", "bound",
                   "name"]
        text_columns = {1, 8, 9}
        if repeated:
            headers.insert(1, "count")
            text_columns = {2, 9, 10}
        out.append(f"<details><summary>every op, in the order they ran "
                   f"({len(report.rows):,}{cut}"
                   + ("; count: its runs, the row's figures all of them" if repeated else "")
                   + ")</summary>" + '<div class="scroll">'
                   + _table(headers, rows, text_columns) + "</div></details>")
    return "".join(out)


def _steps_section(report) -> str:
    if not hasattr(report, "n_steps") or not report.n_steps:
        return ""
    n = report.n_steps
    every = max(1, math.ceil(n / 600))  # at most ~600 points a line

    def series(rep, key):
        cols = rep.columns
        return [(float(s), float(v)) for s, v in zip(cols["step"][::every], cols[key][::every])]

    lat = [("step latency", series(report, "latency_s"), "#1f77b4")]
    kv = [("KV cache per device", series(report, "kv_cache_bytes"), "#1f77b4")]
    base = report.baseline
    if base is not None and getattr(base, "n_steps", 0):
        lat.append(("unpruned", series(base, "latency_s"), "#999999"))
        kv.append(("unpruned", series(base, "kv_cache_bytes"), "#999999"))
    return ("<h2>Decode steps</h2>"
            + svg.lines(lat, "decode step", "s", label="latency per decode step")
            + svg.lines(kv, "decode step", "B", label="KV cache per decode step")
            + '<p class="note">The tables and figures below are the prefill\'s (the first '
              "token); the totals above are the request's.</p>")


def section(report, *, colour: dict[str, str] | None = None, full: bool = True,
            top: int | None = None) -> str:
    """One report's part of the page: a ``<section>`` (``full=False``: no timeline and
    no list of every op, and ``top`` rows of the ops table)."""
    colour = colour or _kind_colours([report])
    uid = f"hwsim{next(_ids)}"
    title = f"{_name(report)} on {report.target.preset} ({report.target.name})"
    body = [_run_section(report), _totals_section(report), _comparison_section(report),
            _pruning_section(report), _steps_section(report)]
    ops_report = getattr(report, "prefill", report)
    body += [_kind_section(ops_report, colour), _layer_section(ops_report, colour),
             _roofline_section(ops_report, colour)]
    if full:
        body.append(_timeline_section(ops_report, colour, uid))
    body.append(_ops_section(ops_report, colour, None if full else top))
    return (f'<section class="hwsim-section" id="{uid}"><h1>{escape(title)}</h1>'
            + "".join(body) + "</section>")


def _name(report) -> str:
    """The workload's name, else its graph's, else its model's."""
    wl = report.workload
    return (getattr(wl, "name", None) or report.graph.header.get("name")
            or getattr(wl, "model", None) or "workload")


def _summary(reports) -> str:
    rows = []
    for r in reports:
        t = r.totals
        rows.append(_td(r.target.preset, cls="l") + _td(r.target.name, cls="l")
                    + _td(si(t["latency_s"], "s"), t["latency_s"])
                    + _td(si(t["energy_j"], "J"), t["energy_j"])
                    + _td(si(t["dram_read_bytes"] + t["dram_write_bytes"], "B"),
                          t["dram_read_bytes"] + t["dram_write_bytes"])
                    + _td(si(t["flops"], "FLOP"), t["flops"]))
    return ("<h2>Targets side by side</h2>"
            + _table(["preset", "target", "latency", "energy", "dram", "flops"], rows, 2))


def fragment(reports, *, top: int | None = 10) -> str:
    """The report(s) as one ``<div class="hwsim-report">`` with its CSS and no script,
    timeline or list of every op: what a Jupyter cell shows."""
    reports = _as_list(reports)
    colour = _kind_colours(reports)
    parts = [_summary(reports)] if len(reports) > 1 else []
    parts += [section(r, colour=colour, full=False, top=top) for r in reports]
    return f'<div class="hwsim-report"><style>{CSS}</style>{"".join(parts)}</div>'


def to_html(reports, *, title: str | None = None) -> str:
    """A whole page for one report or several (a section per target, with a side-by-side
    summary first): self-contained, nothing fetched."""
    reports = _as_list(reports)
    colour = _kind_colours(reports)
    if title is None:
        title = f"hwsim: {_name(reports[0])} on " + ", ".join(r.target.preset for r in reports)
    parts = [_summary(reports)] if len(reports) > 1 else []
    parts += [section(r, colour=colour, full=True) for r in reports]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}"
            "body{margin:1.2em auto;padding:0 1em}</style></head><body>"
            f'<div class="hwsim-report">{"".join(parts)}</div>'
            f"<script>{SCRIPT}</script></body></html>\n")


def write_html(reports, path: str) -> None:
    """Write :func:`to_html` of ``reports`` to ``path`` (UTF-8); a path that cannot be
    written (a missing folder) is an :class:`~hwsim.errors.InputError`."""
    from ..errors import InputError  # noqa: PLC0415

    text = to_html(reports)
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise InputError(f"cannot write the HTML report: {e.strerror or e}",
                         source=str(path)) from None


def _as_list(reports) -> list:
    if isinstance(reports, (list, tuple)):
        if not reports:
            raise ValueError("no report to write")
        return list(reports)
    return [reports]
