"""From a checked workload to the graph the simulator runs.

- ``model:`` instantiates the shipped template at the workload's size (no
  torch needed); a model or phase without a shipped template is traced on the
  fly when torch is installed (cached on disk), and is an error otherwise. A
  decode step of several new tokens (``seq_len > 1``) instantiates the model's
  ``extend`` template (:func:`template_phase`).
- ``trace:`` loads a graph file; a template is instantiated, a concrete graph
  is used as traced (its size must then agree with the workload's).
- ``ops:`` builds one op per entry, with its operands as graph inputs; an entry's
  ``repeat`` stays one op that runs that many times (:attr:`hwsim.ir.Op.repeat`).

Floating-point tensors take the workload's ``dtype``; integer and boolean
tensors (token ids, masks) keep theirs. Segments from the model (e.g. LLaVA's
``text``/``visual``) are merged with the workload's, which win.

A graph instantiated from a template records where that template came from
(``template_ref`` in its header); :func:`hwsim.zoo.template_of` gets it back, so that
pruning passes can instantiate it again with a different size per layer.
"""

from __future__ import annotations

import math
import os

from .. import zoo
from ..errors import InputError
from ..ir import Graph, load
from ..ir.kinds import check as check_op
from ..trace import images
from ..trace.zoo_names import EXTEND
from ..yamlfile import resolve_path
from ..zoo import with_dtype
from .schema import OP_PARAMS, Workload


def build_graph(wl: Workload) -> Graph:
    """The dense (unpruned) graph of ``wl``: one forward (a prefill or a decode step)."""
    if wl.phase == "generate":
        raise InputError("a generation is a prefill and then decode steps, simulated one "
                         "forward at a time (hwsim.simulate, hwsim.generation); a graph is one "
                         "forward: use phase: prefill or decode", source=wl.source, field="phase")
    if wl.ops:
        graph = ops_graph(wl)
    elif wl.trace and wl.trace_format == "spatten-csv":
        from .spatten_csv import read as read_spatten_csv  # noqa: PLC0415

        graph = read_spatten_csv(resolve_path(wl.trace, wl.source), wl.dtype, wl.name)
    elif wl.trace:
        graph = _from_trace(wl)
    else:
        graph = _from_model(wl)
    if not wl.ops:  # an ops list already typed each op (its own dtype, else the workload's)
        graph = with_dtype(graph, wl.dtype)
        if "template_ref" in graph.header:
            graph.header["template_ref"] = {**graph.header["template_ref"], "dtype": wl.dtype}
    segments = dict(graph.header.get("segments") or {})
    segments.update(wl.segments)
    for name, (_start, end) in segments.items():
        if end > wl.seq_len and not wl.ops and graph.header.get("seq_len") == wl.seq_len:
            raise InputError(f"segment {name!r} ends at {end}, past seq_len={wl.seq_len}",
                             source=wl.source, field=f"segments.{name}")
    graph.header["segments"] = segments
    graph.header["name"] = wl.name
    if wl.routing:  # for the MoE passes: expert pruning by frequency, the expansion
        graph.header["routing"] = dict(wl.routing)
    return graph


def _from_model(wl: Workload) -> Graph:
    image = images.image_of(wl.image)
    phase = template_phase(wl.phase, wl.seq_len)
    tmpl = zoo.template(wl.model, phase, image, wl.frames)
    if tmpl is not None:
        tag = zoo.image_tag(wl.model, phase, image, wl.frames)
        _check_regime(tmpl, wl, str(zoo.shipped_path(wl.model, phase, tag) or
                                    "the trace cache"))
        graph = tmpl.instantiate(batch=wl.batch, seq_len=wl.seq_len, kv_len=wl.kv_len)
        graph.header["template_ref"] = {"model": wl.model, "phase": phase}
        if image is not None or wl.frames:
            graph.header["template_ref"].update(image=list(image) if image else None,
                                                frames=wl.frames)
        return graph
    try:
        from ..trace import cached_trace  # noqa: PLC0415 - optional dependency
    except ImportError:
        raise InputError(f"no shipped trace for {wl.model} ({wl.phase}) and torch is not "
                         f"installed to trace it (pip install 'hwsim[trace]')",
                         source=wl.source, field="model") from None
    return cached_trace(wl.model, seq_len=wl.seq_len, phase=wl.phase, kv_len=wl.kv_len,
                        batch=wl.batch, dtype=wl.dtype, image=image, frames=wl.frames)


def template_phase(phase: str, seq_len: int) -> str:
    """The template a forward instantiates: its phase's, or for a decode step of several
    new tokens per sequence (``seq_len > 1``) the ``extend`` template
    (:mod:`hwsim.trace.template`)."""
    return EXTEND if phase == "decode" and seq_len > 1 else phase


def _check_regime(tmpl: Graph, wl: Workload, source: str) -> None:
    """A template is exact only in the regime it was traced in (see hwsim.ir.template):
    a decode template at one new token per sequence, unless it is an ``extend``
    template (its regime states ``min_seq_len``)."""
    phase = tmpl.header.get("phase")
    regime = tmpl.header.get("template") or {}
    if phase == "decode" and wl.seq_len != 1 and "min_seq_len" not in regime:
        raise InputError(f"this decode template is one new token per sequence (seq_len=1), "
                         f"got seq_len={wl.seq_len} (from {source}); several need a template "
                         f"traced at seq_len >= 2 (hwsim.trace.template, phase extend)",
                         source=wl.source, field="seq_len")
    if phase == "prefill" and wl.seq_len < 2:
        raise InputError("a prefill template needs seq_len >= 2 (for one token use "
                         "phase: decode)", source=wl.source, field="seq_len")
    minimum = (tmpl.header.get("template") or {}).get("min_seq_len")
    if minimum and wl.seq_len < minimum:
        raise InputError(f"model {wl.model} needs seq_len >= {minimum} (from {source})",
                         source=wl.source, field="seq_len")


def _from_trace(wl: Workload) -> Graph:
    path = resolve_path(wl.trace, wl.source)
    graph = load(path)
    problems = graph.verify()
    if problems:
        raise InputError(f"invalid graph: {problems[0]}"
                         + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                         source=path)
    if graph.is_template:
        _check_regime(graph, wl, path)
        out = graph.instantiate(batch=wl.batch, seq_len=wl.seq_len, kv_len=wl.kv_len)
        out.header["template_ref"] = {"trace": os.path.abspath(path)}
        return out
    for key in ("batch", "seq_len", "kv_len"):
        traced = graph.header.get(key)
        if traced is not None and traced != getattr(wl, key) and key in wl_given(wl):
            raise InputError(f"the trace was made at {key}={traced}; it is not a template, "
                             f"so it cannot be run at {key}={getattr(wl, key)}",
                             source=wl.source, field=key)
    return graph


def wl_given(wl: Workload) -> set[str]:
    """Size fields that differ from their defaults (so the user set them)."""
    defaults = Workload()
    return {k for k in ("batch", "seq_len", "kv_len") if getattr(wl, k) != getattr(defaults, k)}


def ops_graph(wl: Workload) -> Graph:
    """One op per ``ops:`` entry, operands as graph inputs. An entry's ``repeat`` is the
    op's :attr:`~hwsim.ir.Op.repeat`: one op (checked, lowered and reported once) that
    runs that many times back to back, each run on its own operands, not that many
    ops (docs/architecture.md, "A repeated op is one op with a count")."""
    g = Graph({"name": wl.name, "phase": wl.phase, "batch": wl.batch, "seq_len": wl.seq_len,
               "kv_len": wl.kv_len, "dtype": wl.dtype, "segments": {}, "kernel_study": True})
    for i, entry in enumerate(wl.ops):
        p = {k: d for k, (d, _) in OP_PARAMS[entry["kind"]].items() if d is not ...}
        p.update({k: v for k, v in entry.items() if k in OP_PARAMS[entry["kind"]]})
        dtype = entry.get("dtype", wl.dtype)
        op = _add_kernel_op(g, entry["kind"], p, dtype, entry.get("name", ""), i,
                            entry.get("repeat", 1))
        problems = check_op(op, g)
        if problems:
            raise InputError(problems[0], source=wl.source, field=f"ops.{i}")
    return g


def _add_kernel_op(g: Graph, kind: str, p: dict, dtype: str, name: str, index: int,
                   repeat: int = 1):
    def t(shape, kind_="input", dt=dtype):
        return g.add_tensor(shape, dt, kind_)

    label = name or f"{kind}{index}"
    if kind == "matmul":
        b, m, n, k = p["batch"], p["m"], p["n"], p["k"]
        ins = [t([b, k, m] if p["trans_a"] else [b, m, k]),
               t([b, n, k] if p["trans_b"] else [b, k, n])]
        outs = [t([b, m, n], "activation")]
        attrs = dict(batch=b, m=m, n=n, k=k)
        for key in ("trans_a", "trans_b"):
            if p[key]:
                attrs[key] = True
    elif kind == "attention":
        b, h, d = p["batch"], p["heads"], p["head_dim"]
        hk = p["kv_heads"] or h
        ins = [t([b, h, p["q_len"], d]), t([b, hk, p["kv_len"], d]), t([b, hk, p["kv_len"], d])]
        outs = [t([b, h, p["q_len"], d], "activation")]
        attrs = dict(batch=b, heads=h, kv_heads=hk, head_dim=d, q_len=p["q_len"],
                     kv_len=p["kv_len"], causal=p["causal"])
        for key in ("window", "v_len", "sparse_keys", "sparse_block", "lsb_bits", "kv_stored"):
            if p[key]:
                attrs[key] = p[key]
        if p["lsb_bits"]:
            ins.append(t([b, hk, p["kv_len"], d], "kv_cache", f"int{p['lsb_bits']}"))
    elif kind in ("softmax", "layernorm", "rmsnorm"):
        rows, cols = p["rows"], p["cols"]
        ins, outs = [t([rows, cols])], [t([rows, cols], "activation")]
        if kind != "softmax":
            ins.append(t([cols], "param"))
        attrs = dict(rows=rows, cols=cols)
    elif kind == "elementwise":
        n_in = 2 if p["fn"] in ("add", "sub", "mul", "div", "max", "min", "where", "swiglu") else 1
        ins = [t([p["elements"]]) for _ in range(n_in)]
        outs = [t([p["elements"]], "activation")]
        attrs = dict(fn=p["fn"], elements=p["elements"])
    elif kind == "reduce":
        ins, outs = [t([p["elements"]])], [t([p["out_elements"]], "activation")]
        attrs = dict(fn=p["fn"], elements=p["elements"], out_elements=p["out_elements"])
    elif kind == "topk":
        rows, n, k = p["rows"], p["n"], p["k"]
        ins = [t([rows, n])]
        outs = [t([rows, k], "activation"), t([rows, k], "activation", "int64")]
        attrs = dict(rows=rows, n=n, k=k)
    elif kind == "gather":
        rows = p["rows"]
        width = math.ceil(p["elements"] / rows)
        ins = [t([rows * 2, width]), t([rows], dt="int64")]
        outs = [t([rows, width], "activation")]
        attrs = dict(elements=rows * width)
    elif kind == "embedding":
        ins = [t([p["vocab"], p["dim"]], "param"), t([p["tokens"]], dt="int64")]
        outs = [t([p["tokens"], p["dim"]], "activation")]
        attrs = dict(tokens=p["tokens"], dim=p["dim"])
    elif kind == "rope":
        ins, outs = [t([p["elements"]])], [t([p["elements"]], "activation")]
        attrs = dict(elements=p["elements"])
    elif kind == "concat":
        parts, n = p["parts"], p["elements"]
        sizes = [n // parts + (1 if i < n % parts else 0) for i in range(parts)]
        ins, outs = [t([s]) for s in sizes], [t([n], "activation")]
        attrs = dict(elements=n)
    elif kind == "kv_write":
        n = p["elements"]
        ins = [t([n])]
        outs = [t([max(p["cache_elements"], n)], "kv_cache")]
        attrs = dict(elements=n)
    elif kind == "moe_experts":  # expanded by the workload's routing before simulation
        tk, h, f, e, k = p["tokens"], p["hidden"], p["ffn"], p["experts"], p["top_k"]
        g_ = 2 if p["gated"] else 1
        ins = [t([tk, h]), t([tk, k], dt="int64"), t([tk, k]), t([e, g_ * f, h], "param"),
               t([e, h, f], "param")]
        outs = [t([tk, h], "activation")]
        attrs = dict(tokens=tk, hidden=h, ffn=f, experts=e, top_k=k, act=p["act"],
                     gated=p["gated"])
    else:  # pragma: no cover - the loader rejects unknown kinds
        raise InputError(f"unknown op kind {kind!r}")
    return g.add_op(kind, ins, outs, attrs, module=label, name=label, repeat=repeat)

