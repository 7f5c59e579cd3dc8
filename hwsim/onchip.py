"""On-chip state between ops: which tensors one op leaves in the last-level cache
for the next.

Without this plan every op starts with a cold cache: a tensor written by one op
goes to DRAM and the op that reads it fetches it back. On a machine whose
last-level cache is shared by all cores (the V100's 6 MiB L2, the Ascend 910's L2
in front of its HBM, an ARMv8 socket's L3), a kernel's output passes through that cache as it is
written, and a small one is still there when the next kernel starts: a chain of
small ops (``rmsnorm`` then the ``matmul`` of the projection that reads it) moves
its intermediate through the L2 only.

:func:`plan` decides this for a whole graph, op by op in graph order (the order
the ops run in), from nothing but the graph and two facts of the target:

- ``capacity_bytes``: the part of the cache that may carry tensors between ops.
  The targets give half their last level, the L2 (ARMv8: the L3)
  (:meth:`hwsim.targets.Target.onchip_capacity_bytes`): the other half stays for
  what the consumer itself streams through (its weight's panels), the split the
  Volta GEMM's, the Ascend L2 model's and the ARMv8 placement's own reuse already
  make;
- ``carries(op)``: whether the target's lowering of ``op`` honours the plan (reads
  the named inputs from the cache, leaves the named outputs unwritten). An op it
  does not honour reads every input from DRAM, and its outputs are written.

**Residency (an LRU, counted conservatively).** A tensor is *touched* by the op
that writes it and by every op that reads it, whether from DRAM or from the cache
(a read from DRAM fills the cache too). Between its last touch and a later reader
``j``, the ops in between touch their own bytes: the stored bytes of their inputs
and outputs, each distinct tensor once per op, times the op's ``repeat``. The
tensor is still resident when ``j`` starts if its own bytes plus all those bytes
fit in ``capacity_bytes``. Under a fully associative LRU this is sufficient:
fewer distinct bytes than the capacity have been touched since, so nothing has
pushed it out (the sum counts a tensor that two ops between touch twice, so the
rule may evict a tensor that a real LRU keeps; it never keeps one that it
evicts). The reader's own traffic is not counted against it: the reader
fetches its resident inputs as it starts (a GEMM's blocks read their panels of
A in the first wave, and every wave again), and neither is the producer's: its
output is taken as written when it ends. Both are approximations: a GEMM that
streams a large weight after writing its first output tiles may push some of
them out on a real LRU.

**What is carried.** Only tensors an op produced (``activation`` tensors with a
producer): weights, graph inputs and the KV cache are never counted as carried,
even when a real cache would still hold them. A ``view`` (a reshape) is its
source's storage, so its readers are the source's readers. An op that runs
several times (``repeat`` above one) neither takes nor leaves tensors on chip
(its runs have operands of their own, :meth:`hwsim.ir.Graph.copies`).

- A reader ``j`` that the target ``carries`` and that finds an input resident
  reads it from the cache, not DRAM: its DRAM read bytes drop by that input's
  stored bytes (:func:`onchip_read_bytes`).
- An output is **not written to DRAM** when its producer is carried, it has
  readers, and every one of them reads it from the cache: it is dead after its
  last on-chip use, so DRAM never needs it. This is the issue's "neither written
  to nor read from DRAM"; a real write-back L2 may still write the dirty lines
  back when they are evicted later (a kernel that discards them, as fused
  kernels keep intermediates on chip, does not). Graph outputs (no reader) and
  tensors read after eviction (one reader from DRAM is enough) are written as
  without the plan.

The workload field ``onchip_carry`` (on by default) switches this; with it off, or on
a target with no carrying capacity (roofline, spatten), there is no plan and
every report is what it was before it existed, bit for bit.

Example: Llama-2-7B's prefill of 128 tokens on a V100 carries 354 tensors and never
writes 226 of them: a layer's input norm output (1 MiB) goes to its q, k and v
projections through the L2 (each projection reads it right after the one before, its
32 MiB weight streaming through the other half), o_proj's output to the residual add,
the gate's output to its activation; the q projection's output is evicted by the k and
v projections' weights before its rope reads it, and goes through HBM. At 4,096 tokens
each activation is 32 MiB, over the 3 MiB that carry, and all go through HBM as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .ir import Graph


@dataclass(frozen=True)
class Carry:
    """One op's share of the plan: the positions in ``op.inputs`` read from the cache
    and the positions in ``op.outputs`` not written to DRAM."""

    inputs: tuple[int, ...] = ()
    outputs: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.inputs or self.outputs)

    def key(self) -> tuple:
        """What the op's cost depends on (positions, so equal ops of different layers
        with the same carry share one costing)."""
        return ("onchip", self.inputs, self.outputs)


NONE = Carry()


@dataclass
class Plan:
    """The plan for a graph: one :class:`Carry` per op, in graph order, and the
    tensors that stayed on chip."""

    capacity_bytes: float
    carries: list[Carry]
    # per tensor carried (its id): bytes, producer op id, reader op ids that found it
    # on chip, and whether its DRAM write was left out
    tensors: list[dict] = field(default_factory=list)
    # the stored bytes of every tensor the ops name (as Graph.stored_bytes), for the
    # rows' saved bytes (:func:`onchip_read_bytes`) without walking the views again
    stored_bytes: dict[int, int] = field(default_factory=dict, repr=False)

    def __bool__(self) -> bool:
        return any(self.carries)


def op_touched_bytes(op, graph: Graph, root=None, stored=None) -> float:
    """Bytes ``op`` touches in the cache: the stored bytes of each distinct tensor it
    reads or writes (a view's storage is its root's), times its ``repeat``; a view
    touches nothing. ``root`` and ``stored``: ``graph.root`` and ``graph.stored_bytes``,
    or the same looked up once per tensor (:func:`plan`)."""
    if op.kind == "view":
        return 0.0
    root = root or graph.root
    stored = stored or graph.stored_bytes
    roots = {root(i) for i in op.inputs} | {root(o) for o in op.outputs}
    return float(sum(stored(r) for r in roots)) * op.repeat


def plan(graph: Graph, capacity_bytes: float, carries: Callable[[object], bool]) -> Plan:
    """Which tensors each op of ``graph`` finds on chip, and which outputs need no DRAM
    write, with ``capacity_bytes`` of cache for carrying and ``carries(op)`` saying
    which ops' lowerings honour it (see the module docstring)."""
    ops = graph.ops
    n = len(ops)
    if capacity_bytes <= 0 or n == 0:
        return Plan(float(capacity_bytes), [NONE] * n)
    t = graph.tensors
    # each tensor's root and stored bytes looked up once (the walks below ask for the
    # same tensors many times: an op's inputs are earlier ops' outputs)
    roots_of, stored_of = graph.storage(i for op in ops for i in (*op.inputs, *op.outputs))
    stored = stored_of.__getitem__
    root = roots_of.__getitem__

    # each op's tensors' roots, looked up once: (input roots, output roots), None for a
    # view (it touches nothing and takes no part); (map over the bound lookups: a
    # comprehension is a call of its own in Python 3.11, and ops have one to three
    # tensors)
    op_roots: list[tuple[list[int], list[int]] | None] = []
    prefix = [0.0]  # prefix[k]: bytes touched by ops 0..k-1
    acc = 0.0
    producer: dict[int, int] = {}  # root tensor -> index of the op writing it (the first)
    for j, op in enumerate(ops):
        if op.kind == "view":
            op_roots.append(None)
            prefix.append(acc)
            continue
        ins = list(map(root, op.inputs))
        outs = list(map(root, op.outputs))
        op_roots.append((ins, outs))
        # (as op_touched_bytes: each distinct root once, an exact integer sum)
        acc += float(sum(map(stored, {*ins, *outs}))) * op.repeat
        prefix.append(acc)
        for r in outs:
            if r not in producer:
                producer[r] = j
    last_touch: dict[int, int] = {}
    on_reads: dict[int, list[int]] = {}  # root -> indices of ops reading it from the cache
    dram_read: set[int] = set()  # roots some op reads from DRAM
    in_pos: dict[int, list[int]] = {}  # op index -> positions of its inputs on chip
    for j, op in enumerate(ops):
        rs = op_roots[j]
        if rs is None:
            continue
        ins, outs = rs
        if not (op.repeat == 1 and carries(op)):  # an op that takes nothing reads DRAM
            dram_read.update(ins)
            for r in ins:
                last_touch[r] = j
            for r in outs:
                last_touch[r] = j
            continue
        seen: dict[int, bool] = {}  # root -> read from the cache (each root decided once)
        for p, r in enumerate(ins):
            on = seen.get(r)
            if on is None:
                src = producer.get(r)
                on = False
                if src is not None and src < j:
                    size = float(stored(r))
                    on = (size > 0 and t[r].kind == "activation" and ops[src].repeat == 1
                          and size + prefix[j] - prefix[last_touch[r] + 1] <= capacity_bytes)
                seen[r] = on
                if on:
                    on_reads.setdefault(r, []).append(j)
                else:
                    dram_read.add(r)
            if on:
                in_pos.setdefault(j, []).append(p)
        for r in seen:
            last_touch[r] = j
        for r in outs:
            last_touch[r] = j
    tensors = []
    kept_of: dict[int, bool] = {}
    for r, readers in on_reads.items():
        src = producer[r]
        kept_of[r] = r not in dram_read and carries(ops[src])
        tensors.append({"tensor": r, "bytes": int(stored(r)), "producer": ops[src].id,
                        "readers": [ops[j].id for j in readers], "dram_write_skipped": kept_of[r]})
    tensors.sort(key=lambda d: (d["producer"], d["tensor"]))
    # the roots each op writes and keeps on chip (a kept root is its own root, written
    # by its producer): only those ops have outputs to leave out
    kept_by: dict[int, set[int]] = {}
    for r, kept in kept_of.items():
        if kept:
            kept_by.setdefault(producer[r], set()).add(r)
    carries_out = [NONE] * n  # (most ops: nothing on chip)
    for j in {*in_pos, *kept_by}:
        mine = kept_by.get(j)
        out_pos = tuple(q for q, o in enumerate(ops[j].outputs) if o in mine) if mine else ()
        ins_on = in_pos.get(j)
        if ins_on or out_pos:
            carries_out[j] = Carry(tuple(ins_on or ()), out_pos)
    return Plan(float(capacity_bytes), carries_out, tensors, stored_of)


def onchip_read_bytes(op, graph: Graph, carry: Carry, stored: dict[int, int] | None = None) -> int:
    """The DRAM read bytes ``carry`` saves ``op``: its on-chip inputs' stored bytes,
    counted per position as :func:`hwsim.ir.kinds.read_bytes` counts them. ``stored``:
    the plan's :attr:`Plan.stored_bytes`, else looked up in ``graph``."""
    if stored is not None:
        return int(sum([stored[op.inputs[p]] for p in carry.inputs]))
    return int(sum(graph.stored_bytes(op.inputs[p]) for p in carry.inputs))


def kept_write_bytes(op, graph: Graph, carry: Carry, stored: dict[int, int] | None = None) -> int:
    """The DRAM write bytes ``carry`` saves ``op``: its unwritten outputs' bytes.
    ``stored``: the plan's :attr:`Plan.stored_bytes` (a kept output is its own root,
    so its stored bytes are its bytes), else each tensor's ``bytes``."""
    if stored is not None:
        return int(sum([stored[op.outputs[q]] for q in carry.outputs]))
    return int(sum(graph.tensors[op.outputs[q]].bytes for q in carry.outputs))


def compulsory_read_bytes(op, graph: Graph, carry: Carry = NONE) -> int:
    """The DRAM bytes ``op`` must read when ``carry``'s inputs are on chip: the IR's
    compulsory reads (:func:`hwsim.ir.kinds.read_bytes`) less those inputs."""
    from .ir.kinds import read_bytes  # noqa: PLC0415

    return read_bytes(op, graph) - onchip_read_bytes(op, graph, carry)


def compulsory_write_bytes(op, graph: Graph, carry: Carry = NONE) -> int:
    """The DRAM bytes ``op`` must write when ``carry``'s outputs stay on chip."""
    from .ir.kinds import write_bytes  # noqa: PLC0415

    return write_bytes(op, graph) - kept_write_bytes(op, graph, carry)
