"""The operation graph: a header, a table of tensors, and an ordered list of ops.

Like a flattened torch.fx graph, a :class:`Graph` is a flat list of nodes in
topological order; every op names the tensors it reads and writes by id, and
every tensor is written by at most one op (graph inputs and parameters by none).
Each op keeps the layer it belongs to and the PyTorch module path it came from,
so reports can be read per layer and per module.

Printing a graph gives one line per op::

    %12   matmul      L3   model.layers.3.self_attn.q_proj  (t40 fp16[1,2048,4096],
          t9 fp16[4096,4096]) -> t41 fp16[1,2048,4096]  batch=1 m=2048 n=4096 k=4096

(wrapped here; it is one line).

The same one-line form (:meth:`Op.line`) is used in error messages.

A graph whose sizes are :class:`~hwsim.ir.expr.Expr` rather than ints is a
*template*; :meth:`Graph.instantiate` evaluates it at a concrete size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Mapping

from . import kinds as _kinds
from .dtypes import dtype_bits, is_known, nbytes
from .expr import Expr, Size

TENSOR_KINDS = ("param", "activation", "kv_cache", "input")


@dataclass(frozen=True, slots=True)
class Tensor:
    """A value in the graph. ``shape`` entries are ints (or Exprs in a template)."""

    id: int
    shape: tuple[Size, ...]
    dtype: str
    kind: str = "activation"  # param | activation | kv_cache | input

    @property
    def numel(self) -> int:
        return math.prod(self.shape)  # type: ignore[arg-type]

    @property
    def bytes(self) -> int:
        return nbytes(self.numel, self.dtype)

    def short(self) -> str:
        dims = ",".join(str(d) for d in self.shape)
        return f"t{self.id} {self.dtype}[{dims}]"


@dataclass(frozen=True, slots=True)
class Op:
    """One operator: a canonical ``kind`` with attributes, reading and writing tensors."""

    id: int
    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)
    layer: int | None = None
    module: str = ""
    name: str = ""
    # how many times the op runs, back to back, each run on its own operands (an ops:
    # entry's ``repeat``); its tensors are one run's, its FLOPs and bytes one run's
    repeat: int = 1

    def line(self, graph: "Graph | None" = None) -> str:
        """The one-line form used by the printer and in error messages."""
        layer = f"L{self.layer}" if self.layer is not None else "L-"
        attrs = " ".join(f"{k}={v}" for k, v in self.attrs.items())
        if graph is not None:
            ins = ", ".join(_tensor_ref(graph, i) for i in self.inputs)
            outs = ", ".join(_tensor_ref(graph, o) for o in self.outputs)
        else:
            ins = ", ".join(f"t{i}" for i in self.inputs)
            outs = ", ".join(f"t{o}" for o in self.outputs)
        module = self.module or "-"
        return (f"%{self.id:<4} {self.kind:<11} {layer:<4} {module}  ({ins}) -> {outs}"
                + (f"  {attrs}" if attrs else "") + (f"  x{self.repeat}" if self.repeat != 1
                                                     else ""))


# each class's fields in order, each set through its slot's descriptor (new_op,
# new_tensor)
_OP_SLOTS = tuple(Op.__dict__[f.name].__set__ for f in fields(Op))
_TENSOR_SLOTS = tuple(Tensor.__dict__[f.name].__set__ for f in fields(Tensor))
_new_object = object.__new__


def new_tensor(id: int, shape: tuple[Size, ...], dtype: str, kind: str) -> Tensor:
    """``Tensor(id, shape, dtype, kind)``, every field given, without the frozen
    dataclass's ``__init__`` (as :func:`new_op`): the same value, still frozen."""
    t = _new_object(Tensor)
    s_id, s_shape, s_dtype, s_kind = _TENSOR_SLOTS
    s_id(t, id)
    s_shape(t, shape)
    s_dtype(t, dtype)
    s_kind(t, kind)
    return t


def new_op(id: int, kind: str, inputs: tuple[int, ...], outputs: tuple[int, ...],
           attrs: Mapping[str, Any], layer: int | None, module: str, name: str,
           repeat: int = 1) -> Op:
    """``Op(id, kind, ...)``, every field given, in about half the time: the graph
    passes build an op per op of a model several times over (instantiation, a
    layer-sized instantiation, renumbering), and the frozen dataclass's ``__init__``
    sets each field through ``object.__setattr__``. The same value, still frozen
    (``tests/test_ir.py`` holds the two equal field by field)."""
    op = _new_object(Op)
    s_id, s_kind, s_inputs, s_outputs, s_attrs, s_layer, s_module, s_name, s_repeat = _OP_SLOTS
    s_id(op, id)
    s_kind(op, kind)
    s_inputs(op, inputs)
    s_outputs(op, outputs)
    s_attrs(op, attrs)
    s_layer(op, layer)
    s_module(op, module)
    s_name(op, name)
    s_repeat(op, repeat)
    return op


def _tensor_ref(graph: "Graph", tid: int) -> str:
    t = graph.tensors.get(tid)
    return t.short() if t is not None else f"t{tid}?"


class Graph:
    """A traced or hand-written workload graph.

    ``header`` holds what describes the whole graph: ``name``, ``model``,
    ``phase``, ``batch``, ``seq_len``, ``kv_len``, ``dtype``, ``segments``
    (name -> [start, end) token ranges) and free-form records (``pruning``
    schedules applied, tracing provenance).
    """

    __slots__ = ("header", "tensors", "ops", "_roots", "_copies", "_sized")

    def __init__(self, header: Mapping[str, Any] | None = None,
                 tensors: Iterable[Tensor] = (), ops: Iterable[Op] = ()):
        self.header: dict[str, Any] = dict(header or {})
        self.tensors: dict[int, Tensor] = {t.id: t for t in tensors}
        self.ops: list[Op] = list(ops)
        self._roots: tuple[int, dict[int, int]] | None = None
        self._copies: tuple[int, dict[int, int]] | None = None
        # a template's tensors as last instantiated, and which of them have sizes to
        # evaluate (:meth:`instantiate`)
        self._sized: tuple[tuple[Tensor, ...], list[bool]] | None = None

    # ------------------------------------------------------------------ build
    def add_tensor(self, shape: Iterable[Size], dtype: str, kind: str = "activation") -> int:
        tid = len(self.tensors)
        while tid in self.tensors:
            tid += 1
        self.tensors[tid] = Tensor(tid, tuple(shape), dtype, kind)
        return tid

    def add_op(self, kind: str, inputs: Iterable[int], outputs: Iterable[int],
               attrs: Mapping[str, Any] | None = None, *, layer: int | None = None,
               module: str = "", name: str = "", repeat: int = 1) -> Op:
        op = Op(len(self.ops), kind, tuple(inputs), tuple(outputs), dict(attrs or {}),
                layer, module, name or (module.rsplit(".", 1)[-1] if module else kind), repeat)
        self.ops.append(op)
        return op

    # ------------------------------------------------------------------ query
    def __len__(self) -> int:
        return len(self.ops)

    def __iter__(self):
        return iter(self.ops)

    @property
    def is_template(self) -> bool:
        return any(isinstance(d, Expr) for t in self.tensors.values() for d in t.shape) or any(
            isinstance(v, Expr) for op in self.ops for v in op.attrs.values())

    @property
    def num_layers(self) -> int:
        layers = [op.layer for op in self.ops if op.layer is not None]
        return max(layers) + 1 if layers else 0

    @property
    def runs(self) -> int:
        """Ops the graph runs, each repeat counted (``len(graph)`` counts distinct ops)."""
        return sum(op.repeat for op in self.ops)

    def flops(self) -> int:
        """FLOPs of the whole graph: every op's times its ``repeat``."""
        return sum(_kinds.flops(op) * op.repeat for op in self.ops)

    def flops_by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for op in self.ops:
            out[op.kind] = out.get(op.kind, 0) + _kinds.flops(op) * op.repeat
        return out

    def op_flops(self, op: Op) -> int:
        return _kinds.flops(op)

    def op_read_bytes(self, op: Op) -> int:
        return _kinds.read_bytes(op, self)

    def op_write_bytes(self, op: Op) -> int:
        return _kinds.write_bytes(op, self)

    def root(self, tid: int) -> int:
        """The tensor whose storage ``tid`` is: a ``view`` op's output is an alias of
        its input (a reshape, slice or broadcast moves and holds nothing), so an op
        reading an alias reads at most its root's bytes, and memory holds the root."""
        cached = self._roots
        if cached is None or cached[0] != len(self.ops):
            parent = {op.outputs[0]: op.inputs[0] for op in self.ops
                      if op.kind == "view" and op.inputs and op.outputs}
            cached = self._roots = (len(self.ops), parent)
        parent = cached[1]
        seen = 0
        while tid in parent and seen < len(parent):
            tid = parent[tid]
            seen += 1
        return tid

    def stored_bytes(self, tid: int) -> int:
        """Bytes of ``tid`` that exist in memory: at most those of every tensor it is a
        view of (a broadcast of a slice holds no more than the slice; see :meth:`root`)."""
        best = self.tensors[tid].bytes
        self.root(tid)  # builds the view map
        parent = self._roots[1] if self._roots else {}
        seen = 0
        while tid in parent and seen < len(parent):
            tid = parent[tid]
            best = min(best, self.tensors[tid].bytes)
            seen += 1
        return best

    def storage(self, tids: Iterable[int]) -> tuple[dict[int, int], dict[int, int]]:
        """:meth:`root` and :meth:`stored_bytes` of each of ``tids``, in one pass: two
        dicts, tensor -> root and tensor -> stored bytes (the same numbers; for the
        walks over a whole graph, which ask for every tensor, most of them no view)."""
        self.root(0)  # builds the view map
        parent = self._roots[1] if self._roots else {}
        tensors = self.tensors
        bits_of: dict[str, float] = {}
        roots: dict[int, int] = {}
        stored: dict[int, int] = {}
        for tid in tids:
            if tid in roots:
                continue
            if tid in parent:
                roots[tid] = self.root(tid)
                stored[tid] = self.stored_bytes(tid)
                continue
            x = tensors[tid]
            bits = bits_of.get(x.dtype)
            if bits is None:
                bits = bits_of[x.dtype] = dtype_bits(x.dtype)
            roots[tid] = tid
            stored[tid] = math.ceil(math.prod(x.shape) * bits / 8)  # (as Tensor.bytes)
        return roots, stored

    def copies(self, tid: int) -> int:
        """How many copies of tensor ``tid`` the graph holds: the ``repeat`` of the op
        that reads or writes it (each run of a repeated op has its own operands, so a
        repeated op's weights and KV entries exist once per run), else 1."""
        cached = self._copies
        if cached is None or cached[0] != len(self.ops):
            table = {i: op.repeat for op in self.ops if op.repeat != 1
                     for i in (*op.inputs, *op.outputs)}
            cached = self._copies = (len(self.ops), table)
        return cached[1].get(tid, 1)

    def param_bytes(self) -> int:
        return sum(t.bytes * self.copies(t.id) for t in self.tensors.values()
                   if t.kind == "param")

    def replace_ops(self, ops: Iterable[Op], tensors: Iterable[Tensor] | None = None,
                    header: Mapping[str, Any] | None = None) -> "Graph":
        """A new graph with these ops (renumbered in order); tensors kept unless given."""
        # an op already numbered by its place is taken as it is (an Op is frozen: the
        # same value; most passes change a few ops of hundreds); the others renumbered
        # (Op's fields in order, as dataclasses.replace would pass them, without its
        # per-call reading of the fields)
        new_ops = [op if op.id == i else
                   new_op(i, op.kind, op.inputs, op.outputs, op.attrs, op.layer, op.module,
                          op.name, op.repeat) for i, op in enumerate(ops)]
        return Graph(self.header if header is None else header,
                     self.tensors.values() if tensors is None else tensors, new_ops)

    # ------------------------------------------------------------------ check
    def verify(self) -> list[str]:
        """All structural problems, each prefixed with the op's line. Empty when valid.

        Checks: unique op ids in order, every input defined before use (graph
        inputs and parameters are defined by no op), every tensor written once,
        known dtypes and tensor kinds, and each op's attributes and sizes against
        its kind (:func:`hwsim.ir.kinds.check`). Templates are checked at the
        last size they were traced at (inside their regime), else at a sample size.
        """
        g = self
        if self.is_template:
            points = (self.header.get("template") or {}).get("points") or [
                {"batch": 2, "seq_len": 13, "kv_len": 7}]
            g = self.instantiate(**{k: points[-1][k] for k in ("batch", "seq_len", "kv_len")})
        problems: list[str] = []
        for t in g.tensors.values():
            if t.kind not in TENSOR_KINDS:
                problems.append(f"tensor t{t.id}: kind {t.kind!r} not one of {TENSOR_KINDS}")
            if not is_known(t.dtype):
                problems.append(f"tensor t{t.id}: unknown dtype {t.dtype!r}")
            if any((not isinstance(d, int)) or isinstance(d, bool) or not 0 <= d <= _kinds.MAX_SIZE
                   for d in t.shape):
                problems.append(f"tensor t{t.id}: bad shape {t.shape}")
        if problems:  # (the ops' sizes are products of these)
            return problems
        problems.extend(_check_repeats(g))
        written: set[int] = set()
        produced_by_op: set[int] = set()
        for op in g.ops:
            produced_by_op.update(op.outputs)
        sources = {tid for tid, t in g.tensors.items() if tid not in produced_by_op}
        defined = set(sources)
        for idx, op in enumerate(g.ops):
            where = op.line(g)
            if op.id != idx:
                problems.append(f"{where}: id {op.id} out of order (expected {idx})")
            for tid in op.inputs:
                if tid not in g.tensors:
                    problems.append(f"{where}: input t{tid} is not in the tensor table")
                elif tid not in defined:
                    problems.append(f"{where}: input t{tid} is used before it is written")
            for tid in op.outputs:
                if tid not in g.tensors:
                    problems.append(f"{where}: output t{tid} is not in the tensor table")
                elif tid in written:
                    problems.append(f"{where}: output t{tid} is written twice")
                written.add(tid)
                defined.add(tid)
            if all(t in g.tensors for t in op.inputs + op.outputs):
                problems.extend(f"{where}: {msg}" for msg in _kinds.check(op, g))
        return problems

    # ------------------------------------------------------------------ templates
    def instantiate(self, batch: int = 1, seq_len: int = 1, kv_len: int = 0) -> "Graph":
        """Evaluate a template at a concrete size (a concrete graph is returned as is)."""
        if not self.is_template:
            return self
        env = {"batch": batch, "seq_len": seq_len, "kv_len": kv_len}
        source, alias = self.ops, {}
        if seq_len == 1 and any(ONE_ROW_VIEW in op.attrs for op in self.ops):
            source, alias = one_row_views(self.ops)
        used = {alias.get(t, t) for op in source for t in op.inputs + op.outputs} \
            if alias else None
        sizes = Sizes(env)  # each size evaluated once (layers repeat)
        # a tensor with no size to evaluate (a weight) is the template's own (frozen)
        table, flags = self.sized_tensors()
        tensors = [new_tensor(t.id, sizes.dims(t.shape), t.dtype, t.kind) if sized else t
                   for t, sized in zip(table, flags) if used is None or t.id in used]
        ops = [new_op(i if alias else op.id, op.kind,
                      tuple(alias.get(x, x) for x in op.inputs) if alias else tuple(op.inputs),
                      op.outputs, sizes.attrs(op.attrs), op.layer, op.module, op.name)
               for i, op in enumerate(source)]
        header = _eval_tree(self.header, env)
        header.update(batch=batch, seq_len=seq_len, kv_len=kv_len)
        header.pop("template", None)
        return Graph(header, tensors, ops)

    def sized_tensors(self) -> tuple[tuple[Tensor, ...], list[bool]]:
        """The tensors in table order, and for each whether its shape has a size to
        evaluate (an :class:`~hwsim.ir.expr.Expr`): found once per template, while its
        tensors stay the same (the instantiations reuse the others as they are)."""
        table = tuple(self.tensors.values())
        if self._sized is None or self._sized[0] != table:
            self._sized = (table, [any(isinstance(d, Expr) for d in t.shape) for t in table])
        return self._sized

    # ------------------------------------------------------------------ print
    def format(self, limit: int | None = None) -> str:
        lines = [f"# graph {self.header.get('name', '')}  ({len(self.ops)} ops, "
                 f"{len(self.tensors)} tensors)"]
        for op in self.ops[:limit]:
            lines.append(op.line(self))
        if limit is not None and len(self.ops) > limit:
            lines.append(f"... {len(self.ops) - limit} more ops")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        return f"<Graph {self.header.get('name', '')!r}: {len(self.ops)} ops>"


# How many times one op may run (an ops: entry's ``repeat``). A repeated op is one op
# whatever its count (lowered, simulated, reported and drawn once), so the bound is
# not the work of a run but what keeps its figures exact and finite: counts stay far
# below 2**53 (FLOPs and bytes are exact integers, seconds and joules one correctly
# rounded product), and a billion runs of the largest op a workload admits are finite.
MAX_REPEAT = 1 << 30


def _check_repeats(g: "Graph") -> list[str]:
    """A repeat is a whole number from 1 to :data:`MAX_REPEAT`, and every op that reads
    or writes a tensor has the same repeat: each run of a repeated op has its own
    operands, so a tensor of a repeated op exists once per run (:meth:`Graph.copies`)
    and cannot also be one tensor of an op that runs once (a repeated MoE layer's
    expanded kernels share their tensors, all repeated alike)."""
    out = []
    repeat_of: dict[int, int] = {}
    for op in g.ops:
        r = op.repeat
        if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= MAX_REPEAT:
            out.append(f"{op.line(g)}: repeat {r!r} is not a whole number from 1 to "
                       f"{MAX_REPEAT:,}")
            continue
        for i in (*op.inputs, *op.outputs):
            if repeat_of.setdefault(i, r) != r:
                out.append(f"{op.line(g)}: t{i} is also a tensor of an op repeated "
                           f"{repeat_of[i]} times (a repeated op's runs have their own "
                           f"operands)")
                break
    return out


class Sizes:
    """One size environment (``batch``, ``seq_len``, ``kv_len``: a template's
    instantiation, or one layer's in :func:`hwsim.ir.layered.instantiate_layers`) and
    what is evaluated in it: each expression once (``seq_len*4096`` recurs in many
    tensors and attributes), keyed by the expression object (a template's equal
    expressions are mostly one object, :mod:`hwsim.ir.serialize`, and an identity is
    looked up without ``Expr.__hash__``, a Python call; equal ones apart are evaluated
    apart, to the same value), and each tensor's shape once (:meth:`shape`)."""

    __slots__ = ("env", "values", "shapes")

    def __init__(self, env: Mapping[str, int]):
        self.env = env
        self.values: dict[int, int] = {}  # id of an Expr (its template holds it) -> value
        self.shapes: dict[int, tuple] = {}  # tensor id -> its shape here

    def dims(self, shape: tuple) -> tuple:
        """``shape`` evaluated here."""
        values, env = self.values, self.env
        dims = []
        for d in shape:
            if isinstance(d, Expr):
                v = values.get(id(d))
                if v is None:
                    v = values[id(d)] = d.evaluate(env)
                d = v
            dims.append(d)
        return tuple(dims)

    def shape(self, tid: int, t: Tensor) -> tuple:
        """Tensor ``t``'s (id ``tid``) shape here, evaluated once."""
        shape = self.shapes.get(tid)
        if shape is None:
            shape = self.shapes[tid] = self.dims(t.shape)
        return shape

    def attrs(self, attrs: Mapping[str, Any]) -> dict:
        """An op's attributes evaluated here, in their order, without
        :data:`ONE_ROW_VIEW`."""
        values, env = self.values, self.env
        out = {}
        for k, v in attrs.items():
            if k == ONE_ROW_VIEW:
                continue
            if isinstance(v, Expr):
                x = values.get(id(v))
                if x is None:
                    x = values[id(v)] = v.evaluate(env)
                v = x
            out[k] = v
        return out


def _eval_tree(value: Any, env: Mapping[str, int]) -> Any:
    if isinstance(value, Expr):
        return value.evaluate(env)
    if isinstance(value, dict):
        return {k: _eval_tree(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_eval_tree(v, env) for v in value]
    return value


# An op of a multi-token decode template that PyTorch runs only for several query rows:
# at one row the layout copy after the attention is a view (no kernel). Such ops carry
# this attribute (set by hwsim.trace.template), and an instantiation at seq_len = 1 drops
# them, their readers reading the op's input (a copy's output equals its input).
ONE_ROW_VIEW = "view_at_one_row"


def one_row_views(ops: Iterable[Op]) -> tuple[list[Op], dict[int, int]]:
    """``ops`` without those marked :data:`ONE_ROW_VIEW`, and {dropped output: input}."""
    kept, alias = [], {}
    for op in ops:
        if op.attrs.get(ONE_ROW_VIEW):
            (src,), (dst,) = op.inputs, op.outputs
            alias[dst] = alias.get(src, src)
        else:
            kept.append(op)
    return kept, alias
