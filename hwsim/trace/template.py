"""Templates: trace a model at a few small sizes, fit one graph for every size.

A shipped trace must work at any ``batch``, ``seq_len`` and ``kv_len`` without
torch. :func:`trace_template` traces the model on a 2x2 grid of sizes,

* prefill: ``batch`` in {1, 2} x ``seq_len`` in {s + 2, s + 8} (``kv_len = 0``),
* decode: ``batch`` in {1, 2} x ``kv_len`` in {5, 11} (``seq_len = 1``),

where ``s`` is the smallest prefill the template covers (2, or LLaVA's 611),
and hands the four graphs to :func:`hwsim.ir.fit_template`, which turns
every dimension that varies into a multilinear polynomial of the two varying
sizes (``batch*seq_len``, ``kv_len + 1``). A 2x2 grid determines such a
polynomial exactly, so one more trace, at a size outside the grid, checks the
template: instantiated there it must be *identical* (ops, attributes, tensor ids
and shapes, header) to the fresh trace, or :class:`TemplateMismatch` is raised
naming the first difference. The template's header records its regime
(``template.min_seq_len`` for a prefill, ``template.seq_len = 1`` for a decode
step) and where it was checked (``template.checked_at``).

Any model :func:`hwsim.trace.trace` takes has a template: a zoo model, a model
from a config (kept in the trace cache by :func:`hwsim.trace.cache.cached_template`)
and a user's factory that takes the sizes (``batch`` and ``seq_len``, or
``kv_len`` for a decode step; :mod:`hwsim.trace.factory`). A factory that does
not, or a model whose graph is not multilinear in the sizes (it branches on a
size, or keeps a number of tokens fixed by a ratio), is an :class:`InputError`
that says why; a zoo model that fails the check is a bug in the tracer
(:class:`TemplateMismatch`).
"""

from __future__ import annotations

from typing import Iterable

from ..errors import InputError
from ..ir import Graph, fit_template, to_dict
from ..ir.template import TemplateMismatch
from . import factory
from .api import trace
from .zoo import vision_rule
from .zoo_names import ZOO

IGNORED_HEADER_KEYS = ("traced_with", "template")

__all__ = ["trace_template", "grid", "compare", "TemplateMismatch"]


def grid(model: str, phase: str, image: tuple[int, int] | None = None, frames: int = 0,
         ) -> tuple[list[dict[str, int]], dict[str, int], dict[str, int]]:
    """The fitting points, the check point and the regime note for ``model``/``phase``
    (a vision-language prefill starts at its image's text prefix + visual tokens)."""
    if phase == "decode":
        points = [{"batch": b, "seq_len": 1, "kv_len": k} for b in (1, 2) for k in (5, 11)]
        return points, {"batch": 3, "seq_len": 1, "kv_len": 23}, {"seq_len": 1}
    first = max(2, ZOO[model]["min_seq_len"]) if model in ZOO else 2
    rule = None if factory.is_factory(model) else vision_rule(model)
    if rule is not None:
        first = max(first, rule.layout(image, frames).min_seq_len)
    points = [{"batch": b, "seq_len": s, "kv_len": 0} for b in (1, 2)
              for s in (first + 2, first + 8)]
    return points, {"batch": 3, "seq_len": first + 15, "kv_len": 0}, {"min_seq_len": first}


def trace_template(model: str, phase: str, *, dtype: str = "fp16",
                   layers: int | None = None, image: tuple[int, int] | None = None,
                   frames: int = 0) -> Graph:
    """A template graph of ``model`` in ``phase``, checked at an unseen size; a
    vision-language model's for one ``image`` (None: its default) and ``frames``."""
    if factory.is_factory(model):
        _check_factory(model, phase)
    points, check, regime = grid(model, phase, image, frames)
    graphs: list[Graph] = []
    seen = {"image": image, "frames": frames} if image is not None or frames else {}
    from ..progress import task  # noqa: PLC0415

    try:
        with task(f"trace {model} {phase}", total=len(points) + 1, unit="trace") as shown:
            for p in points:
                graphs.append(trace(model, phase=phase, dtype=dtype, layers=layers, **seen, **p))
                shown.update()
            template = fit_template(graphs, points)
            fresh = trace(model, phase=phase, dtype=dtype, layers=layers, **seen, **check)
            shown.update()
        problems = compare(template.instantiate(**check), fresh)
        if problems:
            raise TemplateMismatch(f"template of {model} {phase} differs from a trace at "
                                   f"{check}: " + "; ".join(problems[:5]))
    except TemplateMismatch as e:
        if model in ZOO:
            raise
        why = _structure_difference(graphs, points) or str(e)
        raise InputError(f"no size template of {model} ({phase}): its graph is not a "
                         f"multilinear function of the sizes ({why}); trace it at each size "
                         f"instead", field="model") from None
    template.header["template"].update(regime, checked_at=dict(check))
    return template


def _structure_difference(graphs: list[Graph], points: list[dict[str, int]]) -> str:
    """Where two traces of the grid first differ in their ops (kind and module)."""
    import difflib

    def ops(g: Graph) -> list[str]:
        return [f"{op.kind} in {op.module or '<root>'}" for op in g.ops]

    def at(p: dict[str, int]) -> str:
        return ", ".join(f"{k}={p[k]}" for k in ("batch", "seq_len", "kv_len"))

    a = ops(graphs[0]) if graphs else []
    for gb, pb in zip(graphs[1:], points[1:]):
        b = ops(gb)
        if a == b:
            continue
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
            if tag == "equal":
                continue
            what = (f"{'; '.join(b[j1:j2][:2])} appears" if tag == "insert" else
                    f"{'; '.join(a[i1:i2][:2])} disappears" if tag == "delete" else
                    f"{a[i1]} becomes {b[j1]}")
            return (f"{len(a)} ops at {at(points[0])}, {len(b)} at {at(pb)}: op {i1}, "
                    f"{what}")
    return ""


def _check_factory(model: str, phase: str) -> None:
    """A factory must take the sizes the grid varies, or its template cannot be fitted."""
    need = ("batch", "kv_len") if phase == "decode" else ("batch", "seq_len")
    missing = [n for n in need if n not in factory.size_parameters(model)]
    if missing:
        raise InputError(f"--template needs the factory to build any size: {model} takes no "
                         f"{' or '.join(missing)} keyword parameter (a template is fitted from "
                         f"traces at several sizes; see docs/models.md)", field="model")


def compare(a: Graph, b: Graph, ignore: Iterable[str] = IGNORED_HEADER_KEYS) -> list[str]:
    """Differences between two concrete graphs (empty when they are the same graph)."""
    da, db = to_dict(a), to_dict(b)
    for d in (da, db):
        for key in ignore:
            d["header"].pop(key, None)
    problems: list[str] = []
    if da["header"] != db["header"]:
        keys = sorted(set(da["header"]) | set(db["header"]))
        problems += [f"header {k}: {da['header'].get(k)!r} != {db['header'].get(k)!r}"
                     for k in keys if da["header"].get(k) != db["header"].get(k)]
    ta, tb = da["tensors"], db["tensors"]
    if ta != tb:
        rows_a = list(zip(*ta.values()))
        rows_b = list(zip(*tb.values()))
        if len(rows_a) != len(rows_b):
            problems.append(f"{len(rows_a)} tensors != {len(rows_b)}")
        problems += [f"tensor {ra} != {rb}" for ra, rb in zip(rows_a, rows_b) if ra != rb][:5]
    if len(da["ops"]) != len(db["ops"]):
        problems.append(f"{len(da['ops'])} ops != {len(db['ops'])}")
    problems += [f"op {oa['id']}: {oa} != {ob}" for oa, ob in zip(da["ops"], db["ops"])
                 if oa != ob][:5]
    return problems
