"""Overlap by cutting ops into pieces on streams: tiling-AllReduce (the ops that
lead to an all-reduce, cut into row blocks that overlap on two streams) and CPU-GPU
cooperation (an attention's host-resident keys copied in by blocks, double-buffered
against the attention over the blocks before; :func:`split`).

A tensor-parallel graph (:mod:`hwsim.parallel`) ends each row-parallel matmul
with an ``allreduce`` of its partial output, which the next op waits for. Run
one after another on one stream, the links idle while the device computes and
the compute units idle while the links send. FastAttention (Lin et al.,
"FastAttention: Extend FlashAttention2 to NPUs and Low-resource GPUs for
Efficient Inference", arXiv 2410.16663) names in its abstract a tiling-AllReduce
strategy "for reducing communication overhead"; its method section could not be
read here, so how the tiles are formed is this model's reading (M), the one the
overlap of tiles allows: the attention output is cut into blocks of query rows,
and as soon as a block's attention and its share of the output projection are
computed, its all-reduce starts, while the next block's attention and projection
compute::

    compute  [attn 0|o_proj 0][attn 1|o_proj 1][attn 2|o_proj 2]
    comm                      [  ar 0  ]       [  ar 1  ]       [ ar 2 ]

Every op of such a *chain* works on its rows alone (a query row's attention
reads the keys before it, all computed already; a matmul's row of output reads
its row of input), so block ``j`` of one op needs only block ``j`` of the op
before it. The same holds for the MLP's down projection and its all-reduce.

Here that is a graph-level transform whose overlap the event engine produces,
not a formula: :func:`chains` finds, for each all-reduce, the chain that leads
to it (the row-parallel matmul, and back through ops that only pass its input
on, to the attention that produced it, when there is one), and :func:`cut`
cuts a chain into ``C`` blocks of about ``rows / C`` rows, each op of each block
a real op priced by the target like any other (a smaller attention or matmul
may use the units less well, and every piece pays its own kernel start and link
latency; a causal attention's block ``j`` reads the keys up to its last row, so
later blocks cost more). :mod:`hwsim.simulate` schedules the pieces block by
block on the ``compute`` and ``comm`` streams
(:func:`hwsim.engine.streams.run_streams`): the all-reduce of block ``j`` waits
for its block and for block ``j-1``'s all-reduce, and the op after the chain
waits for the last. ``C`` is chosen per chain among :data:`CHUNKS` as the one
whose pieces end first on the two streams (``C = 1``, the chain as it was, is
among them, so tiling never loses to it).

What it does not model: the two streams share the device's DRAM and on-chip
memory, and a concurrent all-reduce's reads and writes of the local tensor slow
the compute a little; they are priced but not contended (an all-reduce moves
``2(N-1)/N`` of one block per block, a small share of what its block computes on).
"""

from __future__ import annotations

from .ir import Graph, Op

# Block counts tried per chain: powers of two up to 8 (M: a modelling choice; the run
# takes the one that ends first). More blocks each pay a kernel start and their
# all-reduce's 2(N-1) link latencies, and a query block of a few hundred rows leaves
# the cores of a 24-core NPU idle. Llama-2-7B on 8 NPUs takes 2-4 blocks at 4K tokens
# and 4 (attention chains) or 8 (down projections, the most allowed: more might hide a
# little more) at 32K.
CHUNKS = (1, 2, 4, 8)

# Attention attributes a block keeps as they are; an attention with any other (a pruned
# one: v_len, sparse_keys, sparse_block, lsb_bits) is not cut.
_ATTENTION_KEPT = {"batch", "heads", "kv_heads", "head_dim", "q_len", "kv_len", "causal",
                   "v_head_dim", "scale", "masked", "window"}


def chains(graph: Graph) -> dict[int, list[int]]:
    """``{all-reduce index: op indices of its chain, in order}`` for each all-reduce
    whose input a row-parallel matmul (a weight as its second input) produces and only
    it reads; the chain runs back from the matmul through ``view`` and one-input
    ``elementwise`` ops (a copy, a cast) to an attention over the matmul's rows, when
    each link is read by the next alone (else the chain is the matmul and the
    all-reduce)."""
    readers: dict[int, int] = {}
    for op in graph.ops:
        for t in op.inputs:
            readers[t] = readers.get(t, 0) + 1
    producer = {t: i for i, op in enumerate(graph.ops) for t in op.outputs}
    ops, tensors = graph.ops, graph.tensors
    out = {}
    for ai, ar in enumerate(ops):
        if ar.kind != "allreduce" or ar.repeat != 1:
            continue
        mi = producer.get(ar.inputs[0])
        if mi is None:
            continue
        mm = ops[mi]
        if not (mm.kind == "matmul" and mm.repeat == 1 and len(mm.outputs) == 1
                and len(mm.inputs) >= 2 and tensors[mm.inputs[1]].kind == "param"
                and tensors[mm.inputs[0]].kind != "param"
                and readers.get(mm.outputs[0], 0) == 1):
            continue
        rows, batch = mm.attrs["m"], mm.attrs["batch"]
        chain = [mi, ai]
        links = []
        j = producer.get(mm.inputs[0])
        while j is not None and readers.get(ops[j].outputs[0], 0) == 1 and ops[j].repeat == 1:
            op = ops[j]
            if op.kind == "attention":
                a = op.attrs
                if (set(a) <= _ATTENTION_KEPT and a["q_len"] == rows and a["batch"] == batch
                        and a["kv_len"] >= a["q_len"] and len(op.inputs) == 3):
                    chain = [j, *links, *chain]
                break
            if not (op.kind == "view" or (op.kind == "elementwise" and len(op.inputs) == 1)):
                break
            if op.kind == "elementwise" and op.attrs["elements"] % (batch * rows):
                break
            links.insert(0, j)
            j = producer.get(op.inputs[0])
        out[ai] = chain
    return out


def cut(graph: Graph, chain: list[int], chunks: int) -> list[list[tuple[Op, Graph]]]:
    """The ops of ``chain`` cut into ``chunks`` blocks of rows: for each block, each
    op's piece and a graph holding the block's pieces and their tensors, for the target
    to lower. Rows are shared out as evenly as they go (the first ``rows mod C`` blocks
    one row more). A piece's sliced tensors are flat (their element count is what the
    piece reads or writes); weights, and the keys and values an attention block reads,
    keep their kind and type."""
    mm = next(graph.ops[i] for i in chain if graph.ops[i].kind == "matmul")
    rows, batch = mm.attrs["m"], mm.attrs["batch"]
    if not 1 <= chunks <= rows:
        raise ValueError(f"cannot cut {rows} rows into {chunks} blocks")
    base, extra = divmod(rows, chunks)
    blocks = []
    end = 0
    for j in range(chunks):
        r = base + (1 if j < extra else 0)
        end += r
        blocks.append(_block(graph, chain, rows, batch, r, end,
                             f"[block {j + 1}/{chunks}]"))
    return blocks


def _block(graph: Graph, chain: list[int], rows: int, batch: int, r: int, end: int,
           tag: str) -> list[tuple[Op, Graph]]:
    """One block of :func:`cut`: the ``r`` rows that end at row ``end`` of ``rows``."""
    t = graph.tensors
    g = Graph(graph.header)
    sliced: dict[int, int] = {}  # whole tensor id -> this block's slice

    def piece_of(tid: int, numel: int) -> int:
        if tid not in sliced:
            src = t[tid]
            sliced[tid] = g.add_tensor((numel,), src.dtype, src.kind)
        return sliced[tid]

    def share(n: int) -> int:  # the block's rows of n elements
        return n // (batch * rows) * batch * r

    pieces = []
    for i in chain:
        op = graph.ops[i]
        a = dict(op.attrs)
        if op.kind == "attention":
            a["q_len"] = r
            if a["causal"]:  # keys up to the block's last row
                a["kv_len"] = a["kv_len"] - rows + end
            b, h, hk, d = a["batch"], a["heads"], a["kv_heads"], a["head_dim"]
            dv = a.get("v_head_dim", d)
            ins = (piece_of(op.inputs[0], b * h * r * d),
                   piece_of(op.inputs[1], b * hk * a["kv_len"] * d),
                   piece_of(op.inputs[2], b * hk * a["kv_len"] * dv))
            outs = (piece_of(op.outputs[0], b * h * r * dv),)
        elif op.kind == "matmul":
            a["m"] = r
            for w in op.inputs[1:]:  # the weight (and bias), whole
                g.tensors[w] = t[w]
            ins = (piece_of(op.inputs[0], t[op.inputs[0]].numel // rows * r),
                   *op.inputs[1:])
            outs = (piece_of(op.outputs[0], batch * r * a["n"]),)
        else:  # allreduce, elementwise, view: their elements, by rows
            if "elements" in a:
                a["elements"] = share(a["elements"])
            ins = (piece_of(op.inputs[0], share(t[op.inputs[0]].numel)),)
            outs = (piece_of(op.outputs[0], share(t[op.outputs[0]].numel)),)
        piece = Op(len(g.ops), op.kind, ins, outs, a, op.layer, op.module,
                   f"{op.name or op.kind} {tag}")
        g.ops.append(piece)
        pieces.append((piece, g))
    return pieces


def candidates(graph: Graph, chain: list[int]) -> tuple[int, ...]:
    """The block counts tried for ``chain`` (no more blocks than rows)."""
    rows = next(graph.ops[i] for i in chain if graph.ops[i].kind == "matmul").attrs["m"]
    return tuple(c for c in CHUNKS if c <= rows)


# ---------------------------------------------------------------- CPU-GPU cooperation
# Host blocks tried per attention: powers of two up to 32. More blocks shorten the first
# copy the attention waits for (the exposed part) but each pays a transfer's start and
# an attention kernel over fewer keys.
BLOCKS = (1, 2, 4, 8, 16, 32)


def cooperative(graph: Graph) -> list[int]:
    """Indices of the attention ops whose KV cache can live partly in host memory and
    stream in by blocks (:func:`split`): dense ones (no window, no key selection), run
    once."""
    return [i for i, op in enumerate(graph.ops)
            if op.kind == "attention" and op.repeat == 1 and len(op.inputs) == 3
            and set(op.attrs) <= _ATTENTION_KEPT - {"window"}]


class Split:
    """An attention whose host-resident keys stream in by blocks (:func:`split`)."""

    def __init__(self, device, host, combine, copy_in_bytes, copy_out_bytes):
        self.device = device  # (op, graph): the attention over the keys on the device
        self.host = host  # [(op, graph)]: the attention over each host block
        self.combine = combine  # (op, graph) merging the partial results, or None
        self.copy_in_bytes = copy_in_bytes  # [bytes] of each host block, host to device
        self.copy_out_bytes = copy_out_bytes  # bytes of the new entries' host share


def split(graph: Graph, op: Op, fraction: float, blocks: int) -> Split:
    """CPU-GPU cooperation, as FastAttention's abstract names it (arXiv 2410.16663:
    "a simple yet effective CPU-GPU cooperative strategy", 256K tokens on 8 V100s;
    the blocks and their double buffering are this model's reading, M):
    ``fraction`` of the cached keys and values (those before this call's new entries,
    the oldest) live in host memory. The attention runs over the device's keys, and
    over each of ``blocks`` host blocks once it has been copied in (flash-decoding's
    split of the keys: partial outputs with their softmax statistics), then a
    reduction merges the partial results; the host's share of the new entries is
    written back. Copies and attention double-buffer (:mod:`hwsim.simulate` runs
    the copies on the ``copy`` stream, block ``j+2``'s copy waiting for the attention
    over block ``j``, which frees its buffer)."""
    a = dict(op.attrs)
    t = graph.tensors
    q_len, kv_len = a["q_len"], a["kv_len"]
    per_key = (graph.stored_bytes(op.inputs[1]) + graph.stored_bytes(op.inputs[2])) / kv_len
    old = max(0, kv_len - q_len)
    host_keys = min(old, round(fraction * old))
    blocks = max(1, min(blocks, host_keys)) if host_keys else 0
    b, h, hk, d = a["batch"], a["heads"], a["kv_heads"], a["head_dim"]
    dv = a.get("v_head_dim", d)
    out = t[op.outputs[0]]

    def attention(keys: int, causal: bool, tag: str) -> tuple[Op, Graph]:
        g = Graph(graph.header)
        q = g.add_tensor((b * h * q_len * d,), t[op.inputs[0]].dtype, t[op.inputs[0]].kind)
        k = g.add_tensor((b * hk * keys * d,), t[op.inputs[1]].dtype, t[op.inputs[1]].kind)
        v = g.add_tensor((b * hk * keys * dv,), t[op.inputs[2]].dtype, t[op.inputs[2]].kind)
        o = g.add_tensor((out.numel,), out.dtype, out.kind)
        piece = Op(0, "attention", (q, k, v), (o,), {**a, "kv_len": keys, "causal": causal},
                   op.layer, op.module, f"{op.name or 'attention'} {tag}")
        g.ops.append(piece)
        return piece, g

    device = attention(kv_len - host_keys, a["causal"], "[device keys]")
    host, copy_in = [], []
    base, extra = divmod(host_keys, blocks) if blocks else (0, 0)
    for j in range(blocks):
        keys = base + (1 if j < extra else 0)
        host.append(attention(keys, False, f"[host block {j + 1}/{blocks}]"))
        copy_in.append(keys * per_key)
    combine = None
    if host:
        g = Graph(graph.header)
        parts = g.add_tensor(((len(host) + 1) * out.numel,), out.dtype, out.kind)
        merged = g.add_tensor((out.numel,), out.dtype, out.kind)
        piece = Op(0, "reduce", (parts,), (merged,),
                   {"fn": "sum", "elements": (len(host) + 1) * out.numel,
                    "out_elements": out.numel}, op.layer, op.module,
                   f"{op.name or 'attention'} [merge of {len(host) + 1} partial results]")
        g.ops.append(piece)
        combine = (piece, g)
    new = min(q_len, kv_len)
    return Split(device, host, combine, copy_in, fraction * new * per_key)
