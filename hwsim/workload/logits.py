"""Which positions of a prefill get next-token logits.

A traced causal LM computes the LM head over every position (``lm_head`` is a
``seq_len x vocab x hidden`` GEMM), as its ``forward`` does without
arguments. Inference needs only the last position's logits to sample the next
token: Hugging Face's ``generate`` passes ``logits_to_keep=1`` and slices the
hidden states after the final norm, and serving engines (vLLM) compute logits
only at sampled positions. So ``logits: last`` (the default) keeps one row
per sequence; ``logits: all`` keeps the traced graph (scoring a text,
perplexity, training-style runs).

The difference is not small at long context: at 256K tokens Llama-2-7B's
all-position logits are 262,144 x 32,000 fp16 = 16.8 GB, more than the rest
of a V100's activations together.
"""

from __future__ import annotations

from dataclasses import replace

from ..ir import Graph, Op


def lm_head(graph: Graph) -> Op | None:
    """The LM head: a matmul outside the blocks, named ``lm_head``, whose weight is
    a parameter and whose logits no later op reads."""
    read = {i for op in graph.ops for i in op.inputs}
    for op in reversed(graph.ops):
        if (op.kind == "matmul" and op.layer is None
                and (op.module == "lm_head" or op.module.endswith(".lm_head"))
                and len(op.inputs) >= 2 and graph.tensors[op.inputs[1]].kind == "param"
                and not any(o in read for o in op.outputs)):
            return op
    return None


def select_logits(graph: Graph, mode: str) -> Graph:
    """``graph`` with the LM head over the last position of each sequence only
    (``mode == "last"``); unchanged for ``all``, for graphs without an LM head, and
    when the head already runs one row per sequence (a decode step)."""
    if mode == "all":
        return graph
    head = lm_head(graph)
    if head is None:
        return graph
    batch = int(graph.header.get("batch", 1) or 1)
    a = head.attrs
    if a["batch"] != 1 or a["m"] <= batch or a["m"] % batch:
        return graph
    t = graph.tensors
    x, out = t[head.inputs[0]], t[head.outputs[0]]
    hidden, vocab = a["k"], a["n"]
    g = Graph(graph.header, graph.tensors.values(), graph.ops)
    last = g.add_tensor([batch, 1, hidden], x.dtype)
    logits = g.add_tensor([batch, vocab], out.dtype)
    g.tensors.pop(out.id)
    ops = []
    for op in graph.ops:
        if op is head:
            ops.append(Op(-1, "view", (head.inputs[0],), (last,), {"note": "slice"}, None,
                          head.module, "last_position"))
            ops.append(replace(head, inputs=(last, *head.inputs[1:]), outputs=(logits,),
                               attrs={**a, "m": batch}))
        else:
            ops.append(op)
    header = dict(graph.header)
    header["logits"] = "last"
    return g.replace_ops(ops, g.tensors.values(), header)
