"""Templates: trace a model at a few small sizes, fit one graph for every size.

A shipped trace must work at any ``batch``, ``seq_len`` and ``kv_len`` without
torch. :func:`trace_template` traces the model on a 2x2 grid of sizes,

* prefill: ``batch`` in {1, 2} x ``seq_len`` in {s + 2, s + 8} (``kv_len = 0``),
* decode: ``batch`` in {1, 2} x ``kv_len`` in {5, 11} (``seq_len = 1``),
* extend (a decode step of several new tokens per sequence: speculative
  decoding's verification, a chunk of a chunked prefill, LazyLLM's revived
  tokens): ``batch`` in {1, 2} x ``seq_len`` in {2, 3} x ``kv_len`` in {5, 11},
  traced as ``phase="decode"`` (a 2x2x2 grid: three sizes vary),

where ``s`` is the smallest prefill the template covers (2, or LLaVA's 611),
and hands the four graphs to :func:`hwsim.ir.fit_template`, which turns
every dimension that varies into a multilinear polynomial of the two varying
sizes (``batch*seq_len``, ``kv_len + 1``). A 2x2 grid determines such a
polynomial exactly, so one more trace, at a size outside the grid, checks the
template: instantiated there it must be *identical* (ops, attributes, tensor ids
and shapes, header) to the fresh trace, or :class:`TemplateMismatch` is raised
naming the first difference. The template's header records its regime
(``template.min_seq_len`` for a prefill and an extend, ``template.seq_len = 1``
for a decode step) and where it was checked (``template.checked_at``).

An extend template also serves one row: at ``seq_len = 1`` PyTorch skips one op
per layer (the attention output's layout copy is a view for a single query), so
:func:`mark_one_row_views` compares the template with a one-row trace, marks the
ops only several rows run (:data:`hwsim.ir.graph.ONE_ROW_VIEW`; an instantiation
at one row drops them) and checks the result op for op against that trace
(tensor ids aside: the copy's output tensor is gone). A step whose layers run
different numbers of rows (LazyLLM over a generation) is then one template.

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

from dataclasses import replace
from typing import Iterable

from ..errors import InputError
from ..ir import Graph, fit_template, to_dict
from ..ir.graph import ONE_ROW_VIEW
from ..ir.template import TemplateMismatch
from . import factory
from .api import trace
from .zoo import vision_rule
from .zoo_names import EXTEND, ZOO

IGNORED_HEADER_KEYS = ("traced_with", "template")

__all__ = ["trace_template", "grid", "compare", "compare_ops", "mark_one_row_views",
           "TemplateMismatch"]


def grid(model: str, phase: str, image: tuple[int, int] | None = None, frames: int = 0,
         ) -> tuple[list[dict[str, int]], dict[str, int], dict[str, int]]:
    """The fitting points, the check point and the regime note for ``model``/``phase``
    (a vision-language prefill starts at its image's text prefix + visual tokens)."""
    if phase == EXTEND:
        points = [{"batch": b, "seq_len": s, "kv_len": k} for b in (1, 2) for s in (2, 3)
                  for k in (5, 11)]
        return points, {"batch": 3, "seq_len": 4, "kv_len": 23}, {"min_seq_len": 1}
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
    traced = "decode" if phase == EXTEND else phase
    from ..progress import task  # noqa: PLC0415

    try:
        with task(f"trace {model} {phase}", total=len(points) + 1, unit="trace") as shown:
            for p in points:
                graphs.append(trace(model, phase=traced, dtype=dtype, layers=layers, **seen,
                                    **p))
                shown.update()
            template = fit_template(graphs, points)
            fresh = trace(model, phase=traced, dtype=dtype, layers=layers, **seen, **check)
            shown.update()
        problems = compare(template.instantiate(**check), fresh)
        if problems:
            raise TemplateMismatch(f"template of {model} {phase} differs from a trace at "
                                   f"{check}: " + "; ".join(problems[:5]))
        if phase == EXTEND:
            one = {**check, "seq_len": 1}
            template = mark_one_row_views(
                template, trace(model, phase="decode", dtype=dtype, layers=layers, **one), one)
            regime = {**regime, "one_row_checked_at": one}
    except TemplateMismatch as e:
        if model in ZOO:
            raise
        why = _structure_difference(graphs, points) or str(e)
        raise InputError(f"no size template of {model} ({phase}): its graph is not a "
                         f"multilinear function of the sizes ({why}); trace it at each size "
                         f"instead", field="model") from None
    template.header["template"].update(regime, checked_at=dict(check))
    return template


def mark_one_row_views(template: Graph, one: Graph, at: dict[str, int]) -> Graph:
    """``template`` (an extend template) with the ops a one-row trace ``one`` (made at
    ``at``, ``seq_len = 1``) lacks marked :data:`~hwsim.ir.graph.ONE_ROW_VIEW`; each
    must be a copy whose output is its input's shape (a layout copy that one row makes
    a view). Raises :class:`TemplateMismatch` when the two differ otherwise, or when
    the marked template at ``at`` is not ``one`` op for op."""
    import difflib

    full = template.instantiate(**at)

    def key(op) -> tuple:
        return (op.kind, op.module, op.name, op.layer)

    a, b = [key(op) for op in full.ops], [key(op) for op in one.ops]
    marked = set()
    for tag, i1, i2, _, _ in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        extra = full.ops[i1:i2]
        if tag != "delete" or not all(_is_layout_copy(op, full) for op in extra):
            raise TemplateMismatch(f"the one-row trace at {at} differs from the template by "
                                   f"more than layout copies: {tag} of ops {i1}-{i2} "
                                   f"({', '.join(f'{k[0]} {k[2]}' for k in a[i1:i2][:2])})")
        marked.update(range(i1, i2))
    ops = [replace(op, attrs={**op.attrs, ONE_ROW_VIEW: True}) if i in marked else op
           for i, op in enumerate(template.ops)]
    out = Graph(template.header, template.tensors.values(), ops)
    problems = compare_ops(out.instantiate(**at), one)
    if problems:
        raise TemplateMismatch(f"template at one row differs from a trace at {at}: "
                               + "; ".join(problems[:5]))
    out.header["template"] = {**out.header["template"], "one_row_views": len(marked)}
    return out


def _is_layout_copy(op, g: Graph) -> bool:
    return (op.kind == "elementwise" and op.attrs.get("fn") == "copy" and len(op.inputs) == 1
            and len(op.outputs) == 1
            and g.tensors[op.inputs[0]].numel == g.tensors[op.outputs[0]].numel)


def compare_ops(a: Graph, b: Graph, ignore: Iterable[str] = IGNORED_HEADER_KEYS) -> list[str]:
    """Differences between two concrete graphs op for op (kind, module, name, layer,
    attributes, and the shapes and types of what each op reads and writes), tensor
    ids aside; the headers as :func:`compare`."""
    problems = [p for p in compare(a, b, ignore) if p.startswith("header")]
    if len(a.ops) != len(b.ops):
        problems.append(f"{len(a.ops)} ops != {len(b.ops)}")

    def row(g: Graph, op) -> tuple:
        shapes = tuple((g.tensors[t].shape, g.tensors[t].dtype, g.tensors[t].kind)
                       for t in op.inputs + op.outputs)
        return (op.kind, op.module, op.name, op.layer, op.attrs, len(op.inputs), shapes)

    problems += [f"op {i}: {row(a, x)} != {row(b, y)}" for i, (x, y) in
                 enumerate(zip(a.ops, b.ops)) if row(a, x) != row(b, y)][:5]
    return problems


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
    need = {"decode": ("batch", "kv_len"), EXTEND: ("batch", "seq_len", "kv_len")}.get(
        phase, ("batch", "seq_len"))
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
