"""SpAtten's own workload traces (CSV) read as an hwsim graph.

The authors of SpAtten released the attention requests of GPT-2 generating
text as CSV files (github mit-han-lab/spatten, ``spatten_hardware/hardware/
workloads``): one row per (generation step, layer, kept head), with the keys
and values fetched, their bit widths, and what the pruning machinery does on
that row. A workload reads one with::

    trace: gpt2-small-wikitext2-pruned.csv   # relative to the workload file
    trace_format: spatten-csv
    dtype: fp32          # the width of an uncompressed (-1) tensor

The files are not shipped with hwsim (they are the authors' data). The shipped
``spatten-*-trace-*`` workloads name them by the short names of :data:`RELEASED`
in a data folder beside a source checkout; anywhere else, download the file
from the authors' repository and give its path (``--set trace=PATH``). A missing
file is an error that says so (:func:`where_to_get`).

Each data row becomes one ``attention`` op (batch 1, one head of
``embedding_length_D``, one query, ``key_fetch_num`` keys, and
``value_fetch_num`` value rows as ``v_len`` when local value pruning fetched
fewer, and ``sentence_length_L`` as ``kv_stored`` when cascade pruning kept
fewer keys than the sentence holds: the kept rows lie scattered among the
cached ones), in layer ``layer_id``, module ``h.<layer>.attn.head<head>``. Widths
ride on the tensors, so bytes follow from the IR: the query is a graph input of
``quant_query_bit`` bits (``fix16``), keys and values are KV-cache tensors of
``quant_key_bit`` / ``quant_value_bit`` bits (``fix6``); a width of -1 is an
uncompressed tensor of the workload's ``dtype``. The pruning machinery of a
row becomes ops of its own, marked like the pruning passes mark theirs:

- ``if_requant``: ``quant.lsb_refetch``, a ``gather`` (``pruning=quant``) of
  the ``auto_requant_incre``-bit LSBs of every key of the row;
- ``if_accumulate_importance``: ``spatten.accumulate``, an ``elementwise add``
  (``pruning=spatten``) of the row's probabilities into the token importance;
- ``if_rescale_previous_importance``: ``spatten.rescale``, an ``elementwise
  mul`` over the sentence's importance;
- ``if_topk``: ``spatten.topk``, the cascade ``topk`` (``pruning=spatten``)
  choosing ``topk`` tokens for the next layer (of the ``key_fetch_num`` alive,
  or of the whole sentence when it chooses more).

Rows whose ``iteration_id`` is not a number (the config lines at the end of a
file) are skipped. The graph's header records the trace (rows, steps, layers,
heads, re-fetching rows, the dense attention work) and, for a pruned trace,
``pruning`` records of the kept tokens, values, heads and widths per layer, as
the pruning passes leave them.
"""

from __future__ import annotations

import csv
import math
import os

from ..errors import InputError
from ..ir import Graph
from ..ir.kinds import MAX_SIZE
from ..ir.kinds import check as check_op

COLUMNS = ("iteration_id", "layer_id", "head_id", "embedding_length_D", "sentence_length_L",
           "key_fetch_num", "quant_key_bit", "quant_query_bit", "auto_requant_thres",
           "if_requant", "auto_requant_incre", "value_fetch_num", "quant_value_bit",
           "if_accumulate_importance", "if_rescale_previous_importance", "if_topk", "topk")
IMPORTANCE_DTYPE = "fix12"  # the datapath's width (SpAtten, 12-bit fixed point)

#: the authors' repository and the commit the released traces were taken from
UPSTREAM = "github.com/mit-han-lab/spatten@b5669e2"
#: the shipped workloads' short file names -> the released files in UPSTREAM
RELEASED = {
    "gpt2-small-wikitext2-dense.csv":
        "spatten_hardware/hardware/workloads/summary-gpt2-small-wikitext2-per8-step1+dedic.csv",
    "gpt2-small-wikitext2-pruned.csv":
        "spatten_hardware/hardware/workloads/summary-gpt2-small-wikitext2-per8.csv",
    "gpt2-medium-ptb-dense.csv":
        "spatten_hardware/hardware/workloads/summary-gpt2-medium-ptb-per0.csv",
    "gpt2-medium-wikitext2-pruned.csv":
        "spatten_hardware/hardware/workloads/summary-gpt2-medium-wikitext2-per0-hp-step5"
        "+dedic+glob_p+local_p+hp+topk+quant.csv",
}


def where_to_get(path: str) -> str:
    """What to tell a user whose SpAtten trace ``path`` is missing: which released
    file it is and where it comes from (a sentence to append to "not found")."""
    name = os.path.basename(path)
    upstream = RELEASED.get(name)
    if upstream:
        what = f"SpAtten's released trace {name} is {upstream} in {UPSTREAM}"
    else:
        what = (f"SpAtten's released traces are in {UPSTREAM}, folder "
                f"spatten_hardware/hardware/workloads")
    return (f" ({what} (Wang, Zhang, Han, HPCA 2021, arXiv 2012.09852); hwsim does not "
            f"ship it: download it and give its path with --set trace=PATH)")


def _width(bits: int, dtype: str) -> str:
    return dtype if bits < 0 else f"fix{bits}"


def _bool(text: str, path: str, where: str) -> bool:
    t = text.strip().lower()
    if t in ("true", "1"):
        return True
    if t in ("false", "0", ""):
        return False
    raise InputError(f"expected True or False, got {text!r}", source=path, field=where)




def _int(text: str, path: str, where: str) -> int:
    v = _number(text, path, where)
    if v != int(v) or not -MAX_SIZE <= v <= MAX_SIZE:  # (-1 marks "not used")
        raise InputError(f"expected a whole number of at most {MAX_SIZE:,}, got {text[:40]!r}",
                         source=path, field=where)
    return int(v)


def _number(text: str, path: str, where: str) -> float:
    try:
        v = float(text)
    except (ValueError, OverflowError):
        raise InputError(f"expected a number, got {text[:40]!r}", source=path,
                         field=where) from None
    if not math.isfinite(v):
        raise InputError(f"expected a finite number, got {text[:40]!r}", source=path, field=where)
    return v


# the columns' ranges (-1 marks a feature off; bit widths are those a fixed-point type has)
_BITS = ("quant_key_bit", "quant_query_bit", "quant_value_bit")
_POSITIVE = ("embedding_length_D", "sentence_length_L")
_COUNTS = ("iteration_id", "layer_id", "head_id", "key_fetch_num", "value_fetch_num")


def _check_ranges(row: dict, path: str, where: str) -> None:
    for c in _BITS:
        if not (row[c] == -1 or 1 <= row[c] <= 32):
            raise InputError(f"a bit width of 1 to 32 (or -1: not quantized), got {row[c]}",
                             source=path, field=f"{where}.{c}")
    for c in _POSITIVE:
        if row[c] < 1:
            raise InputError(f"must be >= 1, got {row[c]}", source=path, field=f"{where}.{c}")
    for c in _COUNTS:
        if row[c] < 0:
            raise InputError(f"must be >= 0, got {row[c]}", source=path, field=f"{where}.{c}")
    if not (row["topk"] == -1 or row["topk"] >= 1):
        raise InputError(f"k of at least 1 (or -1: no top-k), got {row['topk']}", source=path,
                         field=f"{where}.topk")
    incre = row["auto_requant_incre"]
    if not (incre == -1 or 0 <= incre <= 32):
        raise InputError(f"bits added on re-quantization, 0 to 32 (or -1), got {incre}",
                         source=path, field=f"{where}.auto_requant_incre")


def read_rows(path: str) -> list[dict]:
    """The data rows of a SpAtten CSV, typed; config lines skipped."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(f"not a SpAtten trace: missing columns {', '.join(missing)}",
                                 source=path)
            rows = []
            for line, raw in enumerate(reader, start=2):
                it = (raw.get("iteration_id") or "").strip()
                try:
                    int(it)
                except ValueError:
                    continue
                where = f"line {line}"
                row = {}
                for c in COLUMNS:
                    v = raw.get(c) or ""
                    if c.startswith("if_"):
                        row[c] = _bool(v, path, f"{where}.{c}")
                    elif c == "auto_requant_thres":
                        row[c] = _number(v, path, f"{where}.{c}") if v.strip() else -1.0
                    else:
                        row[c] = _int(v, path, f"{where}.{c}")
                _check_ranges(row, path, where)
                rows.append(row)
    except FileNotFoundError:
        raise InputError("SpAtten trace not found", source=path) from None
    except IsADirectoryError:
        raise InputError("is a directory, expected a SpAtten trace (CSV)", source=path) from None
    except UnicodeDecodeError as e:
        raise InputError(f"not a text CSV file ({e.reason})", source=path) from None
    except csv.Error as e:  # a field over the csv module's limit, a NUL byte, ...
        raise InputError(f"not a readable CSV file ({' '.join(str(e).split())[:120]})",
                         source=path) from None
    if not rows:
        raise InputError("no data rows (rows whose iteration_id is a number)", source=path)
    return rows


def read(path: str, dtype: str = "fp32", name: str = "") -> Graph:
    """The graph of a SpAtten CSV trace (see the module docstring)."""
    rows = read_rows(path)
    g = Graph({"name": name or os.path.splitext(os.path.basename(path))[0],
               "model": "spatten-trace", "phase": "decode", "batch": 1, "seq_len": 1,
               "kv_len": max(r["sentence_length_L"] for r in rows), "dtype": dtype,
               "segments": {}})
    checked: set[tuple] = set()
    refetch = marked = 0
    dense_ops = 0
    for i, r in enumerate(rows):
        layer, head, d = r["layer_id"], r["head_id"], r["embedding_length_D"]
        kv, nv, sent = r["key_fetch_num"], r["value_fetch_num"], r["sentence_length_L"]
        where = f"row {i + 1}"
        if kv < 1 or nv < 1 or d < 1 or nv > kv:
            raise InputError(f"needs key_fetch_num >= value_fetch_num >= 1 and "
                             f"embedding_length_D >= 1, got {kv}, {nv}, {d}",
                             source=path, field=where)
        module = f"h.{layer}.attn.head{head}"
        q = g.add_tensor([1, 1, 1, d], _width(r["quant_query_bit"], dtype), "input")
        k = g.add_tensor([1, 1, kv, d], _width(r["quant_key_bit"], dtype), "kv_cache")
        v = g.add_tensor([1, 1, kv, d], _width(r["quant_value_bit"], dtype), "kv_cache")
        o = g.add_tensor([1, 1, 1, d], IMPORTANCE_DTYPE)
        attrs = {"batch": 1, "heads": 1, "kv_heads": 1, "head_dim": d, "q_len": 1,
                 "kv_len": kv, "causal": False}
        if nv != kv:
            attrs["v_len"] = nv
        if sent > kv:  # the kept keys lie among the sentence's cached tokens
            attrs["kv_stored"] = sent
        ops = [g.add_op("attention", [q, k, v], [o], attrs, layer=layer, module=module,
                        name="attention")]
        dense_ops += 4 * sent * d
        if r["if_requant"] and r["auto_requant_incre"] > 0:
            bits = f"fix{r['auto_requant_incre']}"
            plane = g.add_tensor([kv * d], bits, "kv_cache")
            idx = g.add_tensor([kv], "int64")
            lsb = g.add_tensor([kv * d], bits)
            ops.append(g.add_op("gather", [plane, idx], [lsb],
                                {"elements": kv * d, "pruning": "quant"}, layer=layer,
                                module=module, name="quant.lsb_refetch"))
            refetch += 1
        if r["if_accumulate_importance"]:
            probs = g.add_tensor([kv], IMPORTANCE_DTYPE)
            imp = g.add_tensor([kv], IMPORTANCE_DTYPE)
            acc = g.add_tensor([kv], IMPORTANCE_DTYPE)
            ops.append(g.add_op("elementwise", [probs, imp], [acc],
                                {"fn": "add", "elements": kv, "pruning": "spatten"},
                                layer=layer, module=module, name="spatten.accumulate"))
        if r["if_rescale_previous_importance"]:
            imp = g.add_tensor([sent], IMPORTANCE_DTYPE)
            scaled = g.add_tensor([sent], IMPORTANCE_DTYPE)
            ops.append(g.add_op("elementwise", [imp], [scaled],
                                {"fn": "mul", "elements": sent, "pruning": "spatten"},
                                layer=layer, module=module, name="spatten.rescale"))
        if r["if_topk"] and r["topk"] > 0:
            kk = r["topk"]
            n = kv if kk <= kv else max(kk, sent)
            scores = g.add_tensor([1, n], IMPORTANCE_DTYPE)
            vals = g.add_tensor([1, kk], IMPORTANCE_DTYPE)
            idx = g.add_tensor([1, kk], "int64")
            ops.append(g.add_op("topk", [scores], [vals, idx],
                                {"rows": 1, "n": n, "k": kk, "pruning": "spatten"},
                                layer=layer, module=f"h.{layer}.pruning.spatten",
                                name="spatten.topk"))
        marked += len(ops) - 1
        for op in ops:
            sig = (op.kind, tuple(sorted(op.attrs.items())),
                   tuple(g.tensors[t].dtype for t in op.inputs))
            if sig in checked:
                continue
            problems = check_op(op, g)
            if problems:
                raise InputError(f"{problems[0]} ({op.line(g)})", source=path, field=where)
            checked.add(sig)
    g.header["trace"] = {"format": "spatten-csv", "source": os.path.abspath(path),
                         "rows": len(rows),
                         "iterations": len({r["iteration_id"] for r in rows}),
                         "layers": len({r["layer_id"] for r in rows}),
                         "heads": max(r["head_id"] for r in rows) + 1,
                         "refetch_rows": refetch, "dense_attention_ops": dense_ops}
    records = _records(rows, dtype, os.path.basename(path), refetch, marked)
    if records:
        g.header["pruning"] = records
    return g


def _records(rows: list[dict], dtype: str, label: str, refetch: int, marked: int) -> list[dict]:
    """Pruning records (as the pruning passes write them) of the trace's last step."""
    pruned = any(r["key_fetch_num"] < r["sentence_length_L"]
                 or r["value_fetch_num"] < r["key_fetch_num"] for r in rows)
    quant = any(r["quant_key_bit"] > 0 or r["quant_value_bit"] > 0 for r in rows)
    if not (pruned or quant):
        return []
    last = max(r["iteration_id"] for r in rows)
    layers = sorted({r["layer_id"] for r in rows})
    tokens, values, heads = [], [], []
    for layer in layers:
        mine = [r for r in rows if r["iteration_id"] == last and r["layer_id"] == layer]
        tokens.append(max((r["key_fetch_num"] for r in mine), default=0))
        values.append(max((r["value_fetch_num"] for r in mine), default=0))
        heads.append(len(mine))
    base = {"stack": "decoder", "first_layer": layers[0], "phase": "decode",
            "dense_tokens": max(r["sentence_length_L"] for r in rows if r["iteration_id"] == last),
            "tokens_per_layer": tokens, "kv_per_layer": tokens, "heads_per_layer": heads,
            "dropped_layers": []}
    out = []
    if pruned:
        out.append({"method": "spatten", "params": {"trace": label}, **base,
                    "values_per_layer": values, "schedule": f"trace {label}",
                    "overhead_ops": marked - refetch})

    def width(col: str) -> str:
        bits = {r[col] for r in rows}
        return ", ".join(dtype if b < 0 else f"fix{b}" for b in sorted(bits))

    if quant:
        out.append({"method": "quant", "params": {"trace": label}, **base,
                    "dtypes": {"query": width("quant_query_bit"), "key": width("quant_key_bit"),
                               "value": width("quant_value_bit")},
                    "refetch_rows": refetch, "overhead_ops": refetch})
    return out
