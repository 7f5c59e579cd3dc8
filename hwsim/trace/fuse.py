"""Fusion: turning spans of aten calls into the canonical ops they implement.

PyTorch runs an RMSNorm as seven aten calls, a rotary embedding as a dozen,
and an eager attention as ``bmm → mul → add → softmax → cast → bmm``. A target
costs these as *one* op each (a tiling strategy applies to an attention, not to
its pieces), so the raw record is rewritten before it is lowered:

**Regions** (recorded by :mod:`hwsim.trace.recorder`: an ``*RMSNorm`` module, a
GELU module written in Python, an ``apply_rotary_pos_emb`` call). Each tensor
the region hands back becomes one fused op over the nodes it depends on inside
the region; the op reads what those nodes read from outside the region (the
activation, the norm weight, the rotary tables). So a rotary call is two
``rope`` ops, one for Q and one for K. A tensor made inside a region and read
after it also becomes a fused output, so nothing downstream loses its producer.

**Bias.** A ``linear`` that PyTorch ran as ``mm`` plus a bias ``add`` (it does
so when the input does not flatten as a view, e.g. a slice at batch > 1) becomes
one ``addmm``, as it is at other sizes.

**Attention.** ``hwsim.sdpa`` nodes (a caught
``F.scaled_dot_product_attention``) and eager chains both become ``attention``
ops with the same attributes, so ``attn_implementation="eager"`` and ``"sdpa"``
give the same graph. The eager chain is found from each softmax: backwards
through elementwise score ops (scale, mask add, ``where``, casts) to a
``bmm`` (Q·Kᵀ), forwards through casts to a ``bmm`` that reads the
probabilities as its left operand (P·V). Every intermediate must have no other
reader (a model that returns its attention probabilities keeps the chain
unfused), except a head-average of the probabilities that nothing reads:
``nn.MultiheadAttention`` computes it by default (``need_weights=True``)
and a model that discards the weights leaves it dead, so it is dropped with
the chain. Q·Kᵀ may be a ``baddbmm`` whose added term is the mask
(``nn.MultiheadAttention``'s eager path). The copies ``torch.matmul`` makes
of a strided Q, K or V to batch it (BERT's transposed heads) belong to the
chain too: a fused kernel reads the operands where they are.

The mask is not an input of the fused op: ``causal`` says what it is, taken
from the attention module's ``is_causal`` (an architectural fact, so a decode
step of a causal model is ``causal`` too, although its single query row sees
the whole cache), and ``window`` the sliding window of a windowed layer (the
module's or its config's ``sliding_window``: Mistral's 4,096). A module without
an ``is_causal`` flag (a user's model) is read from its call instead: SDPA's
``is_causal`` and the pattern of its mask, or of the mask added to (``add``,
``baddbmm``), ``where``-selected in or ``masked_fill``-ed into the scores of an
eager chain (:func:`hwsim.trace.masks.attention_attrs`: causal, a sliding
window, no mask, or ``masked: true`` for a mask it cannot read, costed as
dense).

Q, K and V of the fused op are the tensors as stored, found by walking a view
chain back while it does not gain elements: through ``transpose``/``view``
(same elements) and through the broadcast of grouped-query attention
(``repeat_kv``: K gains heads), but not into the fused QKV projection that a
slice came from. ``kv_heads`` is then what K holds, not what it was expanded to.
(HF's SDPA path packs a single grouped-query token as ``(b, kv_heads, groups,
d)``; that is unpacked back to ``heads`` and ``q_len = 1``.) The fused op
writes ``(batch, heads, q_len, v_head_dim)``, as SDPA does.
"""

from __future__ import annotations

import math
from dataclasses import replace

from . import masks
from .aten_map import packet
from .raw import RawNode, RawTrace, Region, TRef

SOFTMAXES = ("_softmax", "_safe_softmax", "softmax")
BMMS = ("bmm", "baddbmm")
# ops allowed between Q·Kᵀ and the softmax (the data operand is the scores)
SCORE_OPS = ("mul", "div", "add", "sub", "where", "masked_fill", "_to_copy", "clone",
             "mul_", "div_", "add_", "masked_fill_")
# ops allowed between the softmax and P·V
PROB_OPS = ("_to_copy", "clone")


def fuse(trace: RawTrace) -> list[RawNode]:
    """The trace's nodes with regions, bias adds and attentions fused.

    The trace's node list is not changed, but two of its tensors are: the result
    of a folded bias ``add`` becomes a view of the GEMM's result, and each
    attention's result gets the canonical shape ``(batch, heads, q_len, v_head_dim)``.
    """
    nodes = _fuse_regions(trace)
    nodes = _fold_bias(trace, nodes)
    nodes = [_sdpa(n, trace) if n.target == "hwsim.sdpa" else n for n in nodes]
    return _fuse_eager_attention(trace, nodes)


# ---------------------------------------------------------------------- bias
def _fold_bias(trace: RawTrace, nodes: list[RawNode]) -> list[RawNode]:
    """``mm`` then ``add(bias)`` -> one ``addmm``; the add's result becomes a view of it.

    ``F.linear`` is one ``addmm`` when its input flattens to 2-D as a view and
    ``mm`` plus a broadcast ``add`` when it does not (a slice at batch > 1), so
    folding keeps the graph the same at every size.
    """
    producer: dict[int, int] = {}
    readers: dict[int, int] = {}
    for i, n in enumerate(nodes):
        for o in n.outputs:
            producer[o] = i
        for t in n.inputs:
            r = trace.root(t)
            readers[r] = readers.get(r, 0) + 1
    folded: dict[int, RawNode] = {}
    drop: set[int] = set()
    for i, n in enumerate(nodes):
        if n.target != "aten.add.Tensor" or len(n.inputs) != 2 or "alpha" in n.kwargs:
            continue
        for x, bias in (n.inputs, n.inputs[::-1]):
            mm_out = trace.root(x)
            p = producer.get(mm_out)
            b = trace.tensors[trace.root(bias)]
            if (p is None or p in folded or nodes[p].target != "aten.mm.default"
                    or readers.get(mm_out) != 1 or b.role != "param" or len(b.shape) != 1
                    or b.shape[0] != trace.tensors[mm_out].shape[-1]):
                continue
            mm = nodes[p]
            a, w = mm.inputs
            folded[p] = RawNode("aten.addmm.default", (bias, a, w), mm.outputs, mm.module,
                                (TRef(bias), TRef(a), TRef(w)), attrs=dict(mm.attrs))
            out = n.outputs[0]
            trace.tensors[out] = replace(trace.tensors[out], role="view", base=mm_out)
            drop.add(i)
            break
    if not folded:
        return nodes
    return [folded.get(i, n) for i, n in enumerate(nodes) if i not in drop]


# ---------------------------------------------------------------------- regions
def _fuse_regions(trace: RawTrace) -> list[RawNode]:
    nodes = trace.nodes
    if not trace.regions:
        return list(nodes)
    last_use: dict[int, int] = {}
    for i, node in enumerate(nodes):
        for t in node.inputs:
            last_use[trace.root(t)] = i
    out: list[RawNode] = []
    pos = 0
    for region in sorted(trace.regions, key=lambda r: (r.start, -r.end)):
        if region.start < pos:  # nested inside a region already fused
            continue
        out.extend(nodes[pos:region.start])
        out.extend(_fuse_region(trace, region, last_use))
        pos = region.end
    out.extend(nodes[pos:])
    return out


def _fuse_region(trace: RawTrace, region: Region, last_use: dict[int, int]) -> list[RawNode]:
    span = trace.nodes[region.start:region.end]
    producer = {o: n for n in span for o in n.outputs}
    outputs: list[int] = []
    for o in region.outputs:
        r = trace.root(o)
        if r in producer and r not in outputs:
            outputs.append(r)
    for n in span:  # values made inside and read after the region
        for o in n.outputs:
            if last_use.get(o, -1) >= region.end and o not in outputs:
                outputs.append(o)

    def external(tid: int) -> int | None:
        t = trace.tensors[tid]
        while True:
            if t.id in producer:
                return None
            if t.base is None or t.born <= region.start:
                return t.id
            t = trace.tensors[t.base]

    fused = []
    for idx, out in enumerate(outputs):
        inputs: list[int] = []
        seen: set[int] = set()
        stack = [producer[out]]
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            for t in node.inputs:
                ext = external(t)
                if ext is None:
                    stack.append(producer[trace.root(t)])
                elif ext not in inputs:
                    inputs.append(ext)
        inputs.sort()
        numel = trace.tensors[out].numel
        if region.kind == "rmsnorm":
            cols = trace.tensors[out].shape[-1]
            attrs = {"rows": numel // cols, "cols": cols}
        elif region.kind == "elementwise":
            attrs = {"fn": region.fn, "elements": numel}
        else:
            attrs = {"elements": numel}
        hint = region.hints[idx] if idx < len(region.hints) else ""
        fused.append(RawNode("hwsim." + region.kind, tuple(inputs), (out,), region.module,
                             attrs=attrs, hint=hint))
    return fused


# ---------------------------------------------------------------------- attention
def stored(trace: RawTrace, tid: int) -> int:
    """Walk a view chain towards its root while the element count does not grow."""
    t = trace.tensors[tid]
    while t.base is not None:
        parent = trace.tensors[t.base]
        if parent.numel > t.numel:
            break
        t = parent
    return t.id


def _attention(trace: RawTrace, q: int, k: int, v: int, out: int, module: str, *, batch: int,
               heads: int, q_len: int, kv_len: int, head_dim: int, v_head_dim: int,
               causal: bool, mask: dict | None = None) -> RawNode:
    q, k, v = stored(trace, q), stored(trace, k), stored(trace, v)
    kv_heads = heads
    per_head = batch * kv_len * head_dim
    if per_head and trace.tensors[k].numel % per_head == 0:
        kv = trace.tensors[k].numel // per_head
        if kv and heads % kv == 0:
            kv_heads = kv
    attrs = {"batch": batch, "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim,
             "q_len": q_len, "kv_len": kv_len, "causal": causal}
    if v_head_dim != head_dim:
        attrs["v_head_dim"] = v_head_dim
    window = trace.window_of(module)
    if window:  # a sliding-window mask: part of the op, as causal is
        attrs["window"] = window
    if mask:  # read from a user model's mask (hwsim.trace.masks)
        attrs.update(mask)
    # the fused op writes its canonical layout, however the pieces it replaces laid it out
    trace.tensors[out] = replace(trace.tensors[out], shape=(batch, heads, q_len, v_head_dim))
    return RawNode("hwsim.attention", (q, k, v), (out,), module, attrs=attrs)


def _sdpa(node: RawNode, trace: RawTrace) -> RawNode:
    q, k, v = node.inputs
    qs, ks, vs = (trace.tensors[t].shape for t in (q, k, v))
    heads = qs[-3] if len(qs) >= 3 else 1
    batch = math.prod(qs[:-3]) if len(qs) >= 4 else 1
    q_len = qs[-2]
    base = trace.tensors[q].base
    if len(qs) == 4 and base is not None:
        # HF's pack_gqa: one query token of h heads reshaped to (b, kv_heads, h/kv_heads, d)
        bs = trace.tensors[base].shape
        if (len(bs) == 4 and bs[2] == 1 and q_len > 1 and bs[1] == heads * q_len
                and (bs[0], bs[3]) == (qs[0], qs[3]) and ks[1] == heads):
            heads, q_len = bs[1], 1
    causal = trace.is_causal(node.module)
    mask = None
    if causal is None:  # not a Hugging Face attention module: the call says
        causal = node.attrs.get("is_causal", False)
        if "mask" in node.attrs and not causal:
            mask = masks.attention_attrs(trace.values.get(node.attrs["mask"]),
                                         node.attrs["mask_convention"], q_len, ks[-2])
    return _attention(trace, q, k, v, node.outputs[0], node.module, batch=batch, heads=heads,
                      q_len=q_len, kv_len=ks[-2], head_dim=qs[-1], v_head_dim=vs[-1],
                      causal=bool(causal), mask=mask)


def _fuse_eager_attention(trace: RawTrace, nodes: list[RawNode]) -> list[RawNode]:
    producer: dict[int, int] = {}
    readers: dict[int, list[int]] = {}
    for i, n in enumerate(nodes):
        for o in n.outputs:
            producer[o] = i
        for t in n.inputs:
            readers.setdefault(trace.root(t), []).append(i)
    replace: dict[int, RawNode] = {}
    drop: set[int] = set()
    for i, n in enumerate(nodes):
        if packet(n.target) not in SOFTMAXES or i in drop:
            continue
        found = _match(trace, nodes, i, producer, readers)
        if found is None:
            continue
        chain, fused, at = found
        drop.update(chain)
        replace[at] = fused  # where P·V ran: its readers come after it
    if not replace:
        return nodes
    return [replace.get(i, n) for i, n in enumerate(nodes) if i not in drop or i in replace]


def _only_reader(readers: dict[int, list[int]], tid: int, reader: int) -> bool:
    return readers.get(tid, []) == [reader]


def _match(trace: RawTrace, nodes: list[RawNode], s_idx: int, producer: dict[int, int],
           readers: dict[int, list[int]]):
    softmax = nodes[s_idx]
    scores = trace.root(softmax.inputs[0])
    numel = trace.tensors[scores].numel
    chain = [s_idx]
    # backwards: scores <- elementwise ops <- bmm(Q, Kᵀ)
    cur, reader = scores, s_idx
    while True:
        if not _only_reader(readers, cur, reader):
            return None
        p = producer.get(cur)
        if p is None:
            return None
        node = nodes[p]
        name = packet(node.target)
        if name in BMMS:
            qk_idx = p
            chain.append(p)
            break
        if name not in SCORE_OPS:
            return None
        data_ins = [trace.root(t) for t in node.inputs
                    if trace.tensors[t].data and trace.tensors[trace.root(t)].numel == numel]
        if len(data_ins) != 1:
            return None
        chain.append(p)
        cur, reader = data_ins[0], p
    # forwards: probabilities -> casts -> bmm(P, V)
    cur = softmax.outputs[0]
    while True:
        rs = [r for r in readers.get(cur, []) if not _dead_average(trace, nodes[r], readers)]
        chain.extend(r for r in readers.get(cur, []) if r not in rs)
        if len(rs) != 1:
            return None
        node = nodes[rs[0]]
        name = packet(node.target)
        if name in BMMS and trace.root(node.inputs[0]) == cur:
            pv_idx = rs[0]
            chain.append(pv_idx)
            break
        if name not in PROB_OPS:
            return None
        chain.append(rs[0])
        cur = node.outputs[0]
    qk, pv = nodes[qk_idx], nodes[pv_idx]
    a1, b1 = qk.inputs[1:3] if packet(qk.target) == "baddbmm" else qk.inputs[:2]
    b2 = pv.inputs[1]

    def operand(tid: int, reader: int) -> int:
        """Look through the copies ``torch.matmul`` makes to batch a strided operand."""
        while True:
            p = producer.get(trace.root(tid))
            if p is None or p in chain:
                return tid
            node = nodes[p]
            src = node.inputs[0] if node.inputs else None
            if (packet(node.target) not in PROB_OPS or src is None
                    or trace.tensors[src].dtype != trace.tensors[node.outputs[0]].dtype
                    or not _only_reader(readers, node.outputs[0], reader)):
                return tid
            chain.append(p)
            tid, reader = src, p

    q, k, v = operand(a1, qk_idx), operand(b1, qk_idx), operand(b2, pv_idx)
    q_len, head_dim = trace.tensors[a1].shape[-2:]
    kv_len = trace.tensors[b1].shape[-1]
    v_head_dim = trace.tensors[b2].shape[-1]
    batch, heads = _batch_heads(trace, a1, (q_len, head_dim))
    merged = trace.heads.get(softmax.module)
    if heads == 1 and merged and batch % merged == 0:  # (batch·heads, q, d) operands
        batch, heads = batch // merged, merged
    causal = trace.is_causal(softmax.module)
    mask = None
    if causal is None:  # not a Hugging Face attention module: read the chain's mask
        mask = _chain_mask(trace, [nodes[i] for i in chain], q_len, kv_len)
    fused = _attention(trace, q, k, v, pv.outputs[0], pv.module, batch=batch, heads=heads,
                       q_len=q_len, kv_len=kv_len, head_dim=head_dim, v_head_dim=v_head_dim,
                       causal=bool(causal), mask=mask)
    return chain, fused, pv_idx


def _dead_average(trace: RawTrace, node: RawNode, readers: dict[int, list[int]]) -> bool:
    """A mean or sum of the probabilities that nothing reads (``nn.MultiheadAttention``'s
    head-averaged weights when the model discards them)."""
    return (packet(node.target) in ("mean", "sum")
            and not any(readers.get(trace.root(o)) for o in node.outputs))


def _chain_mask(trace: RawTrace, chain: list[RawNode], q_len: int, kv_len: int) -> dict:
    """Attention attributes from the masks an eager chain applies to its scores."""
    found: list[dict] = []
    for node in chain:
        name = packet(node.target).rstrip("_")
        consts = [t for t in node.inputs if not trace.tensors[t].data]
        if not consts:
            continue
        if name == "baddbmm" and node.inputs[0] in consts:
            found.append(masks.attention_attrs(trace.values.get(node.inputs[0]), "additive",
                                               q_len, kv_len))
        elif name in ("add", "sub"):
            found += [masks.attention_attrs(trace.values.get(t), "additive", q_len, kv_len)
                      for t in consts]
        elif name == "masked_fill" and len(node.inputs) > 1 and node.inputs[1] in consts:
            found.append(masks.attention_attrs(trace.values.get(node.inputs[1]), "hide",
                                               q_len, kv_len))
        elif name == "where" and node.inputs[0] in consts:
            data_first = len(node.inputs) > 1 and trace.tensors[node.inputs[1]].data
            found.append(masks.attention_attrs(trace.values.get(node.inputs[0]),
                                               "keep" if data_first else "hide", q_len, kv_len))
    if not found:
        return {}
    if all(f == found[0] for f in found):
        return found[0]
    return {"masked": True}


def _batch_heads(trace: RawTrace, tid: int, last2: tuple[int, int]) -> tuple[int, int]:
    """(batch, heads) of a bmm operand: the first 4-D view of it with the same last dims."""
    t = trace.tensors[tid]
    while True:
        if len(t.shape) >= 4 and t.shape[-2:] == last2:
            return math.prod(t.shape[:-3]), t.shape[-3]
        if t.base is None:
            break
        t = trace.tensors[t.base]
    return trace.tensors[tid].shape[0], 1
