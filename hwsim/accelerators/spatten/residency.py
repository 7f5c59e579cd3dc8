"""Where each tensor lives between ops: in HBM, or on chip in SpAtten's buffers.

Ops are simulated one after another. An op reads from HBM every input that
lives there and writes every output that goes there; a tensor this plan keeps
on chip is neither written nor read, and the op's description says so with
the word ``resident`` and the reason (the report's physics checks read it).
The plan is made once per graph, walking the ops in order:

- **HBM**: parameters, the KV cache and graph inputs (a kernel study's
  operands, a trace's queries) always live there.
- **The activation buffer** (``act_buffer_bytes``): an activation that one op
  produces and later ops consume stays on chip when it fits beside the
  tensors already held there for later ops; it is freed after its last
  consumer. First come, first served in op order: a tensor that does not fit
  goes through HBM (its producer writes it, each consumer reads it). So the
  buffer never holds more than its size, and an op's own working space (a
  matrix product's partial sums) is what the resident tensors leave free
  (:meth:`Residency.free_bytes`).
- A ``view`` is its input's storage (an alias, :meth:`hwsim.ir.Graph.root`).
- **Pruning machinery state** (ops marked ``pruning=...``): an activation no
  op produces is the pass's stand-in for what the attention datapath makes as
  it runs (probabilities, importance scores, flatness flags, kept indices).
  The in-line ops (importance accumulation, the flatness check: ``reduce`` and
  ``elementwise`` of SpAtten's methods) consume it as the softmax streams it
  out, whatever its size (``inline``); other machinery (a top-k) holds it in
  an on-chip buffer when it fits (``state``), else it lives in HBM. Likewise an
  output no op consumes (the kept indices that steer the fetchers, the
  accumulated importance) stays on chip when it fits. The one exception is
  the LSB plane a key re-fetch gathers from: it is stored in HBM beside the
  keys.
- Any other output no op consumes is a result of the graph: written to HBM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .spec import SpattenSpec

DRAM_KINDS = ("param", "kv_cache", "input")
INLINE_PRUNING = ("spatten", "quant", "spatten-heads")  # SpAtten's own in-line machinery

# where a tensor lives; the on-chip ones with the reason a description gives
DRAM, ACT, INLINE, STATE = "dram", "act", "inline", "state"
REASON = {ACT: "in the activation buffer",
          INLINE: "streamed in-line from the attention datapath",
          STATE: "in the pruning machinery's on-chip buffers"}


@dataclass
class Residency:
    where: dict[int, str] = field(default_factory=dict)  # root tensor id -> DRAM/ACT/...
    free: dict[int, int] = field(default_factory=dict)  # op id -> act buffer bytes left free
    roots: dict[int, int] = field(default_factory=dict)  # alias tensor id -> root id

    def root(self, tid: int) -> int:
        return self.roots.get(tid, tid)

    def place(self, tid: int) -> str:
        return self.where.get(self.root(tid), DRAM)

    def places(self, tids) -> tuple[str, ...]:
        """:meth:`place` of each of ``tids`` (an op's key asks for all of its tensors)."""
        where, roots = self.where, self.roots
        return tuple([where.get(roots.get(tid, tid), DRAM) for tid in tids])

    def dram(self, tid: int) -> bool:
        return self.place(tid) == DRAM

    def free_bytes(self, op_id: int) -> int:
        """Activation-buffer bytes the resident tensors leave free while ``op_id`` runs."""
        return self.free.get(op_id, 0)


def is_inline(op) -> bool:
    return op.kind in ("elementwise", "reduce") and op.attrs.get("pruning") in INLINE_PRUNING


def is_lsb_refetch(op) -> bool:
    return op.kind == "gather" and (op.attrs.get("pruning") == "quant"
                                    or op.name.endswith("lsb_refetch"))


def plan(graph, spec: SpattenSpec) -> Residency:
    """The residency of every tensor of ``graph`` (see the module docstring)."""
    t = graph.tensors
    ops = graph.ops
    res = Residency()
    roots = res.roots
    for op in ops:
        if op.kind == "view" and op.inputs and op.outputs:
            src = op.inputs[0]
            roots[op.outputs[0]] = roots.get(src, src)
    root = roots.get  # (res.root, without a call per tensor: root(tid, tid))
    producer: dict[int, int] = {}
    last_use: dict[int, int] = {}
    users: dict[int, list] = {}
    for i, op in enumerate(ops):
        if op.kind == "view":
            continue
        for o in op.outputs:
            r = root(o, o)
            if r not in producer:
                producer[r] = i
        for x in op.inputs:
            r = root(x, x)
            last_use[r] = i
            got = users.get(r)
            if got is None:
                users[r] = [op]
            else:
                got.append(op)
    where = res.where
    cap = float(spec.act_buffer_bytes)
    for tid, ten in t.items():  # what lives in HBM by kind, and machinery stand-ins
        if tid in roots:
            continue
        if ten.kind in DRAM_KINDS:
            where[tid] = DRAM
        elif tid not in producer and tid in users:
            readers = users[tid]
            if any(is_lsb_refetch(o) and o.inputs[0] == tid for o in readers) or not all(
                    o.attrs.get("pruning") for o in readers):
                where[tid] = DRAM  # the stored LSB plane; an unproduced non-machinery input
            elif all(is_inline(o) for o in readers):
                where[tid] = INLINE
            else:
                where[tid] = STATE if ten.bytes <= cap else DRAM
    live: dict[int, int] = {}  # resident activations held for later ops -> bytes
    held = 0  # their sum (integers: the same as summing them anew)
    free = res.free
    for i, op in enumerate(ops):
        if op.kind == "view":
            continue
        if live:
            for r in [r for r in live if last_use.get(r, -1) < i]:
                held -= live.pop(r)
        machinery = bool(op.attrs.get("pruning"))
        for o in op.outputs:
            r = root(o, o)
            if r in where:
                continue
            nbytes = t[r].bytes
            if r not in last_use:  # no consumer: machinery state, or a result of the graph
                where[r] = STATE if machinery and nbytes <= cap else DRAM
                continue
            if held + nbytes <= cap:
                where[r] = ACT
                live[r] = nbytes
                held += nbytes
            else:
                where[r] = DRAM
        free[op.id] = int(max(0.0, cap - held))
    return res
