"""Reading and writing graphs as gzip-compressed JSON.

The format is plain JSON (no pickle, no torch), versioned by its ``schema``
key::

    {"schema": "hwsim.graph/1",
     "header": {...},
     "tensors": {"id": [...], "shape": [[...], ...], "dtype": [...], "kind": [...]},
     "ops": [{"id", "kind", "inputs", "outputs", "attrs", "layer", "module", "name"}, ...]}

Tensor tables are stored column-wise (they are long and regular). A size that
is a template expression is written as ``{"$expr": "batch*seq_len"}``.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from typing import Any

from ..errors import InputError
from .expr import Expr
from .graph import MAX_REPEAT, Graph, new_op, new_tensor
from .kinds import MAX_SIZE

SCHEMA = "hwsim.graph/1"


def _enc(value: Any) -> Any:
    if isinstance(value, Expr):
        return {"$expr": str(value)}
    if isinstance(value, dict):
        return {k: _enc(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_enc(v) for v in value]
    return value


# size expressions parsed, by their text: a template names the same few
# (``seq_len``, ``batch*seq_len``) thousands of times, and an Expr is immutable
_PARSED: dict[str, Expr] = {}


def _parse(text: Any) -> Expr:
    expr = _PARSED.get(text) if isinstance(text, str) else None
    if expr is None:
        expr = Expr.parse(text)
        if len(_PARSED) >= 4096:  # bounded, whatever the files read
            _PARSED.clear()
        _PARSED[text] = expr
    return expr


def _dec(value: Any) -> Any:
    """``value`` with each ``{"$expr": text}`` parsed (a template's sizes); the rest as
    read. (A scalar is not passed down: a template's thousands of attributes are
    mostly numbers and names, and a call each cost a third of the graph's load.)"""
    if isinstance(value, dict):
        if len(value) == 1 and "$expr" in value:
            return _parse(value["$expr"])
        return {k: _dec(v) if isinstance(v, (dict, list)) else v for k, v in value.items()}
    if isinstance(value, list):
        return [_dec(v) if isinstance(v, (dict, list)) else v for v in value]
    return value


def _mapping(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"{what} is a {type(value).__name__}, expected an object")
    return value


def to_dict(graph: Graph) -> dict:
    ts = list(graph.tensors.values())
    return {
        "schema": SCHEMA,
        "header": _enc(graph.header),
        "tensors": {
            "id": [t.id for t in ts],
            "shape": [_enc(list(t.shape)) for t in ts],
            "dtype": [t.dtype for t in ts],
            "kind": [t.kind for t in ts],
        },
        "ops": [
            {"id": op.id, "kind": op.kind, "inputs": list(op.inputs),
             "outputs": list(op.outputs), "attrs": _enc(dict(op.attrs)),
             "layer": op.layer, "module": op.module, "name": op.name,
             **({"repeat": op.repeat} if op.repeat != 1 else {})}
            for op in graph.ops
        ],
    }


def from_dict(data: Any, source: str = "<graph>") -> Graph:
    """Build a graph from its JSON form; malformed input is an :class:`InputError`."""
    if not isinstance(data, dict):
        raise InputError("expected a JSON object with a 'schema' key", source=source)
    schema = data.get("schema")
    if schema != SCHEMA:
        raise InputError(f"unsupported schema {schema!r} (expected {SCHEMA!r})",
                         source=source, field="schema")
    try:
        cols = data["tensors"]
        tensors = [
            new_tensor(int(i), tuple([x if type(x) is int else _dec(x) for x in s]), str(d),
                       str(k))
            for i, s, d, k in zip(cols["id"], cols["shape"], cols["dtype"], cols["kind"],
                                  strict=True)
        ]
        ops = [
            new_op(int(o["id"]), str(o["kind"]), tuple(map(int, o["inputs"])),
                   tuple(map(int, o["outputs"])), _mapping(_dec(o.get("attrs", {})), "attrs"),
                   None if o.get("layer") is None else int(o["layer"]),
                   str(o.get("module", "")), str(o.get("name", "")), o.get("repeat", 1))
            for o in data["ops"]
        ]
        header = _mapping(_dec(data.get("header", {})), "header")
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise InputError(f"malformed graph ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:120]})", source=source) from None
    _check_structure(header, ops, source)
    return Graph(header, tensors, ops)


MAX_LAYERS = 100_000  # a layer index of a graph file


# header fields a graph file may carry, by the type they must have
_HEADER_MAPPINGS = ("segments", "config", "template", "template_ref", "stacks", "routing",
                    "pruning_plan", "image")
_HEADER_COUNTS = ("batch", "seq_len", "kv_len", "devices")


def _check_structure(header: dict, ops: list, source: str) -> None:
    """The header's fields and the ops' layers have the types the rest of hwsim reads
    (a graph file is checked once, here, where it enters)."""
    for key in _HEADER_MAPPINGS:
        if key in header and header[key] is not None and not isinstance(header[key], dict):
            raise InputError(f"expected a mapping, got {header[key]!r:.60}", source=source,
                             field=f"header.{key}")
    for key in _HEADER_COUNTS:
        v = header.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)
                              or not 0 <= v <= MAX_SIZE):
            raise InputError(f"expected a whole number from 0 to {MAX_SIZE:,}, got {v!r:.60}",
                             source=source, field=f"header.{key}")
    for key in ("name", "phase", "model"):
        if key in header and header[key] is not None and not isinstance(header[key], str):
            raise InputError(f"expected text, got {header[key]!r:.60}", source=source,
                             field=f"header.{key}")
    for name, rng in (header.get("segments") or {}).items():
        if not (isinstance(rng, (list, tuple)) and len(rng) == 2 and all(
                isinstance(x, Expr) or (isinstance(x, int) and not isinstance(x, bool)
                                        and 0 <= x <= MAX_SIZE) for x in rng)):
            raise InputError(f"expected [start, end] token indices, got {rng!r:.60}",
                             source=source, field=f"header.segments.{name}")
    for op in ops:
        if op.layer is not None and not 0 <= op.layer <= MAX_LAYERS:
            raise InputError(f"op {op.id}: layer {op.layer} outside 0..{MAX_LAYERS:,}",
                             source=source, field="ops.layer")
        r = op.repeat
        if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= MAX_REPEAT:
            raise InputError(f"op {op.id}: repeat {r!r:.40} is not a whole number from 1 to "
                             f"{MAX_REPEAT:,}", source=source, field="ops.repeat")


def save(graph: Graph, path: str | os.PathLike) -> None:
    """Write ``graph`` to ``path`` (gzip JSON when the name ends in .gz)."""
    text = json.dumps(to_dict(graph), separators=(",", ":"))
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    if path.endswith(".gz"):
        with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=9) as f:
            f.write(text)
    else:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    os.replace(tmp, path)


MAX_GRAPH_BYTES = 256 << 20  # JSON of one graph, uncompressed


def load(path: str | os.PathLike) -> Graph:
    """Read a graph written by :func:`save`. Bad files raise :class:`InputError`."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError("trace file not found", source=path)
    if os.path.isdir(path):
        raise InputError("is a directory, expected a graph file (.json.gz)", source=path)
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read(MAX_GRAPH_BYTES + 1)  # bounded: a gzip bomb stops here
        else:
            with open(path, "rb") as f:
                raw = f.read(MAX_GRAPH_BYTES + 1)
        if len(raw) > MAX_GRAPH_BYTES:
            raise InputError(f"more than {MAX_GRAPH_BYTES:,} bytes of JSON: a graph file holds "
                             f"one forward's ops (a 70B model's are under 10 MB)", source=path)
        data = json.loads(raw.decode("utf-8"))
    except InputError:
        raise
    except (OSError, EOFError, zlib.error, json.JSONDecodeError, UnicodeDecodeError,
            RecursionError, ValueError) as e:
        message = " ".join(str(e).split())[:160]
        raise InputError(f"not a readable graph file ({type(e).__name__}: {message})",
                         source=path) from None
    try:
        return from_dict(data, source=path)
    except InputError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RecursionError) as e:
        raise InputError(f"not a graph file hwsim wrote ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:120]})", source=path) from None
