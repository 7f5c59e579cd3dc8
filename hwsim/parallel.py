"""Tensor parallelism: one device's share of a graph split over ``devices``.

Megatron-LM's split of a transformer block, found from the graph's structure
rather than from module names. Every tensor is *replicated* (each device holds
all of it) or *sharded* (each device holds 1/N of it, along the head or FFN
axis). Inside transformer blocks (ops with a layer index):

- a matmul with a weight whose activation input is replicated is
  *column-parallel*: its weight and output are sharded (``n / N``);
- a matmul with a weight whose activation input is sharded is *row-parallel*:
  its weight is sharded (``k / N``), each device holds a partial sum, and an
  ``allreduce`` op is inserted after it, whose output is replicated again;
- attention over sharded queries runs ``heads / N`` heads (and ``kv_heads / N``
  key/value heads, at least one: with fewer KV heads than devices they are
  replicated, as Megatron does for grouped-query attention);
- any other op with a sharded input works on 1/N of the elements.

Mixture of experts (``moe_experts``, split before it is expanded, so the
expansion sees one device's share): *tensor-parallel experts*, as vLLM runs
Mixtral under tensor parallelism (its ``FusedMoE`` layer shards every expert's
intermediate size over the ranks): each device holds all experts, each with
``ffn / N`` of its gate/up rows and of its down-projection columns, runs every
routed token through its share, and the partial outputs are all-reduced, as
after a dense MLP. The router (the gate's matmul, softmax, top-k and
normalization, found as the ops that lead from the block's input to the expert
ids and weights) is small and stays replicated, as vLLM's replicated gate.

Ops outside the blocks (embeddings, the final norm, the LM head, LLaVA's
projector) stay replicated on every device. The result is the graph one device
runs; every device runs the same. Sizes that do not divide by ``devices`` are
an error.
"""

from __future__ import annotations

from dataclasses import replace

from .errors import InputError
from .ir import Graph, Op, Tensor

# attributes that count elements of the op's (sharded) data, per kind
_SCALED = {
    "softmax": ("rows",), "layernorm": ("rows",), "rmsnorm": ("rows",),
    "elementwise": ("elements",), "reduce": ("elements", "out_elements"), "rope": ("elements",),
    "topk": ("rows",), "gather": ("elements",), "concat": ("elements",),
    "kv_write": ("elements",), "embedding": ("tokens",), "view": (),
}


def tensor_parallel(graph: Graph, devices: int, source: str = "") -> Graph:
    """The graph one of ``devices`` devices runs (see the module docstring)."""
    if devices == 1:
        return graph
    return _Splitter(graph, devices, source).run()


class _Splitter:
    def __init__(self, graph: Graph, devices: int, source: str):
        self.graph, self.n, self.source = graph, devices, source
        self.tensors: dict[int, Tensor] = dict(graph.tensors)
        self.sharded: set[int] = set()
        self.redirect: dict[int, int] = {}  # partial sum -> its all-reduced tensor
        self.next_tid = max(self.tensors, default=-1) + 1

    def fail(self, op: Op, what: str) -> InputError:
        return InputError(f"cannot split over {self.n} devices: {what} "
                          f"(op: {op.line(self.graph)})", source=self.source, field="devices")

    def div(self, op: Op, value: int, name: str) -> int:
        if value % self.n:
            raise self.fail(op, f"{name}={value} is not divisible by {self.n}")
        return value // self.n

    def shard(self, tid: int, op: Op, first_axis: bool = False) -> None:
        """Split tensor ``tid`` along its last divisible axis (first, for row weights)."""
        if tid in self.sharded:
            return
        t = self.tensors[tid]
        shape = list(t.shape)
        axes = [len(shape) - 1, *range(len(shape) - 1)]
        for axis in (sorted(axes) if first_axis else axes):
            if shape[axis] % self.n == 0:
                shape[axis] //= self.n
                break
        else:
            raise self.fail(op, f"tensor t{tid} {t.shape} has no dimension divisible by {self.n}")
        self.tensors[tid] = replace(t, shape=tuple(shape))
        self.sharded.add(tid)

    def shard_axis(self, tid: int, axis: int, op: Op) -> None:
        """Split tensor ``tid`` along ``axis``."""
        t = self.tensors[tid]
        shape = list(t.shape)
        shape[axis] = self.div(op, shape[axis], f"dimension {axis} of t{tid}")
        self.tensors[tid] = replace(t, shape=tuple(shape))
        self.sharded.add(tid)

    def run(self) -> Graph:
        self.router = _router_ops(self.graph)
        out: list[Op] = []
        for op in self.graph.ops:
            if self.redirect:
                op = replace(op, inputs=tuple(self.redirect.get(i, i) for i in op.inputs))
            out.extend(self.split(op))
        header = dict(self.graph.header)
        header["devices"] = self.n
        return self.graph.replace_ops(out, self.tensors.values(), header)

    def split(self, op: Op) -> list[Op]:
        ins_sharded = [i in self.sharded for i in op.inputs]
        if op.layer is None:
            if any(ins_sharded):
                raise self.fail(op, "an op outside the transformer blocks reads a sharded tensor")
            return [op]
        attrs = dict(op.attrs)
        kind = op.kind
        if op.id in self.router:
            if any(ins_sharded):
                raise self.fail(op, "a mixture-of-experts router reads a sharded tensor")
            return [op]
        if kind == "moe_experts":
            return self.split_experts(op, attrs, ins_sharded)
        if kind == "matmul" and len(op.inputs) >= 2 and \
                self.tensors[op.inputs[1]].kind == "param":
            return self.split_linear(op, attrs, ins_sharded[0])
        if not any(ins_sharded):
            return [op]
        if kind == "attention":
            attrs["heads"] = self.div(op, attrs["heads"], "heads")
            kv = attrs["kv_heads"]
            attrs["kv_heads"] = kv if kv < self.n else self.div(op, kv, "kv_heads")
            for t in op.inputs[:4 if attrs.get("lsb_bits") else 3]:  # Q, K, V (+ K's LSBs)
                self.shard(t, op)
        elif kind == "matmul":  # two activations (eager attention's products)
            attrs["batch"] = self.div(op, attrs["batch"], "batch")
            for t in op.inputs[:2]:
                self.shard(t, op)
        else:
            for key in _SCALED.get(kind, ()):
                attrs[key] = self.div(op, attrs[key], key)
            for t, s in zip(op.inputs, ins_sharded):
                if not s and self.tensors[t].numel > 1 and (
                        self.tensors[t].kind == "param"
                        or (kind == "kv_write" and self.tensors[t].kind == "kv_cache")):
                    # a sharded layer's weights, and the cache a KV write appends to (each
                    # device keeps its own heads' keys and values)
                    self.shard(t, op)
        for o in op.outputs:
            self.shard(o, op)
        return [replace(op, attrs=attrs)]

    def split_experts(self, op: Op, attrs: dict, ins_sharded: list) -> list[Op]:
        """Tensor-parallel experts: ``ffn / N`` of every expert, then an all-reduce."""
        if any(ins_sharded[:3]):
            raise self.fail(op, "the experts' input or routing is sharded")
        attrs["ffn"] = self.div(op, attrs["ffn"], "ffn")
        w_in, w_out = op.inputs[3], op.inputs[4]
        self.shard_axis(w_in, 1, op)  # [experts, g·ffn, hidden]
        self.shard_axis(w_out, 2, op)  # [experts, hidden, ffn]
        return self.all_reduced(replace(op, attrs=attrs))

    def all_reduced(self, op: Op) -> list[Op]:
        """``op`` (whose output is a partial sum) followed by the all-reduce of it."""
        partial = op.outputs[0]
        t = self.tensors[partial]
        reduced = self.next_tid
        self.next_tid += 1
        self.tensors[reduced] = Tensor(reduced, t.shape, t.dtype, t.kind)
        self.redirect[partial] = reduced
        allreduce = Op(-1, "allreduce", (partial,), (reduced,),
                       {"elements": t.numel, "devices": self.n}, op.layer, op.module,
                       (op.name or op.kind) + ".allreduce")
        return [op, allreduce]

    def split_linear(self, op: Op, attrs: dict, input_sharded: bool) -> list[Op]:
        weight = op.inputs[1]
        self.shard(weight, op, first_axis=input_sharded)
        if not input_sharded:  # column-parallel
            attrs["n"] = self.div(op, attrs["n"], "n")
            for extra in op.inputs[2:]:
                if self.tensors[extra].kind == "param":
                    self.shard(extra, op)
            for o in op.outputs:
                self.shard(o, op)
            return [replace(op, attrs=attrs)]
        attrs["k"] = self.div(op, attrs["k"], "k")  # row-parallel, then all-reduce
        return self.all_reduced(replace(op, attrs=attrs))


def _router_ops(graph: Graph) -> set[int]:
    """Ids of the ops of every MoE router: those inside the op's layer that lead from
    its input ``x`` to the expert ids and weights it reads (not ``x``'s own producers)."""
    if not any(op.kind == "moe_experts" for op in graph.ops):
        return set()
    producer = {o: op for op in graph.ops for o in op.outputs}
    out: set[int] = set()
    for op in graph.ops:
        if op.kind != "moe_experts":
            continue
        x = op.inputs[0]
        todo = list(op.inputs[1:3])
        while todo:
            p = producer.get(todo.pop())
            if p is None or p.id in out or x in p.outputs or p.layer != op.layer:
                continue
            out.add(p.id)
            todo.extend(p.inputs)
    return out


def device_bytes(graph: Graph) -> int:
    """Bytes of parameters, KV cache and inputs one device holds."""
    return sum(t.bytes for t in graph.tensors.values()
               if t.kind in ("param", "kv_cache", "input"))
