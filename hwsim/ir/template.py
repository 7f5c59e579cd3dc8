"""Templates: one graph for every size, recovered from traces at a few sizes.

Tracing a model at sizes ``(batch, seq_len, kv_len)`` that form a grid (for a
prefill, batch in {b1, b2} x seq_len in {s1, s2}; for a decode, batch x kv_len;
for a decode step of several tokens, batch x seq_len x kv_len)
gives graphs with identical structure whose integers differ. :func:`fit_template`
checks that the structure is identical and replaces every integer that varies
by the multilinear polynomial (:func:`hwsim.ir.expr.fit`) that reproduces it at
every traced size. The template is then exact at any size inside the traced
regime (prefill: seq_len >= 2; decode: seq_len = 1; extend: seq_len >= 2, and 1
once its one-row views are marked, :mod:`hwsim.trace.template`), which the tests
check by tracing at sizes that were not used for fitting.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .expr import VARIABLES, fit
from .graph import Graph, Op, Tensor


class TemplateMismatch(ValueError):
    """The traces differ in structure, so no template covers them."""


def fit_template(graphs: Sequence[Graph], points: Sequence[Mapping[str, int]]) -> Graph:
    """A template graph that equals ``graphs[i]`` at ``points[i]`` for every i."""
    if len(graphs) != len(points) or not graphs:
        raise ValueError("fit_template needs one point per graph")
    varying = tuple(v for v in VARIABLES if len({p[v] for p in points}) > 1)
    first = graphs[0]

    def fitted(values: list[Any], where: str) -> Any:
        if all(v == values[0] for v in values):
            return values[0]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise TemplateMismatch(f"{where}: values {values} differ and are not integers")
        try:
            return fit(list(points), values, varying)
        except ValueError as e:
            raise TemplateMismatch(f"{where}: {e}") from None

    for g in graphs[1:]:
        if len(g.ops) != len(first.ops) or set(g.tensors) != set(first.tensors):
            raise TemplateMismatch(
                f"traces differ in size: {len(first.ops)} vs {len(g.ops)} ops, "
                f"{len(first.tensors)} vs {len(g.tensors)} tensors")

    tensors = []
    for tid, t in first.tensors.items():
        others = [g.tensors[tid] for g in graphs]
        if any(len(o.shape) != len(t.shape) or o.dtype != t.dtype or o.kind != t.kind
               for o in others):
            raise TemplateMismatch(f"tensor t{tid} differs in rank, dtype or kind")
        shape = tuple(fitted([o.shape[i] for o in others], f"tensor t{tid} dim {i}")
                      for i in range(len(t.shape)))
        tensors.append(Tensor(tid, shape, t.dtype, t.kind))

    ops = []
    for idx, op in enumerate(first.ops):
        others = [g.ops[idx] for g in graphs]
        for o in others:
            if (o.kind, o.inputs, o.outputs, o.layer, o.module, set(o.attrs)) != (
                    op.kind, op.inputs, op.outputs, op.layer, op.module, set(op.attrs)):
                raise TemplateMismatch(f"op {idx} differs: {op.line()} vs {o.line()}")
        attrs = {k: fitted([o.attrs[k] for o in others], f"op {idx} ({op.kind}) attr {k}")
                 for k in op.attrs}
        ops.append(Op(op.id, op.kind, op.inputs, op.outputs, attrs, op.layer, op.module,
                      op.name))

    header = _fit_header([g.header for g in graphs], fitted)
    header["template"] = {"variables": list(varying),
                          "points": [dict(p) for p in points]}
    return Graph(header, tensors, ops)


def _fit_header(headers: list[dict], fitted) -> dict:
    skip = {"batch", "seq_len", "kv_len"}
    out: dict = {}
    for key in headers[0]:
        if key in skip:
            continue
        out[key] = _fit_value([h.get(key) for h in headers], f"header {key}", fitted)
    return out


def _fit_value(values: list[Any], where: str, fitted) -> Any:
    v0 = values[0]
    if isinstance(v0, dict):
        return {k: _fit_value([v.get(k) for v in values], f"{where}.{k}", fitted) for k in v0}
    if isinstance(v0, list) and all(isinstance(v, list) and len(v) == len(v0) for v in values):
        return [_fit_value([v[i] for v in values], f"{where}[{i}]", fitted)
                for i in range(len(v0))]
    return fitted(values, where)
