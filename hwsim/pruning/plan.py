"""The pruning plan: what the workload's steps have decided, before it becomes a graph.

Pruning methods compose: HAWK may thin the visual tokens before the language
model and FastV thin the survivors again after layer 2; a KV budget may meet
head pruning and quantized keys. Each method therefore transforms a *plan*
rather than a graph, and one final step (:mod:`hwsim.pruning.materialize`)
turns the plan into the graph the targets cost. The plan holds:

- the stack being pruned (the language model of a vision-language model, else
  the decoder or encoder) and its layers, numbered from 0 inside the stack;
- per layer, the tokens of each *bucket* (a workload segment, or ``other`` for
  tokens in none) on the axis that pruning shrinks: the prompt in a prefill
  (queries and keys), the KV cache in a decode step;
- per mixture-of-experts layer, its experts and the router's top-k, the
  experts kept and the experts each token runs (:mod:`hwsim.pruning.experts`),
  with the workload's routing that ranks them;
- per layer, the attention heads kept, the key/value heads they share
  (grouped-query attention: ``dense_heads / kv_heads`` query heads per group)
  and the sliding window (0: none); the layers dropped; the storage type of
  queries, keys and values; sparse-attention rewrites per layer;
- the *machinery*: overhead op blocks each method inserts (importance scores,
  top-k, solver iterations), sized from the plan as it stood when the step ran;
- one record per step, for the graph header and the report.

A plan is plain data: it is written into the materialized graph's header
(``pruning_plan``), so a pass applied to an already pruned graph continues
from it (passes compose as ``Graph -> Graph`` functions too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ..errors import InputError
from ..ir import Graph

OTHER = "other"  # tokens in no named segment
STACK_ORDER = ("language", "decoder", "encoder")


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def kept(count: int, fraction: float) -> int:
    """Tokens (heads, ...) left of ``count`` when keeping ``fraction``: at least one."""
    if count <= 0:
        return 0
    return max(1, min(count, round_half_up(count * fraction)))


@dataclass
class Step:
    """One workload step, with where it came from for error messages."""

    params: Mapping[str, Any]
    index: int
    source: str = ""

    @property
    def method(self) -> str:
        return self.params["method"]

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)

    def __contains__(self, key: str) -> bool:
        return key in self.params

    def error(self, key: str, message: str) -> InputError:
        where = f"pruning.{self.index}" + (f".{key}" if key else "")
        return InputError(f"{self.method}: {message}", source=self.source, field=where)


@dataclass
class Block:
    """Overhead ops of one method at one layer: a small local graph.

    ``tensors`` are ``[shape, dtype, kind]``; ops name them by local index. A
    tensor no op of the block writes is read from memory (attention
    probabilities the attention kernel wrote, the hidden states of the tokens).
    """

    method: str
    layer: int  # layer of the stack the ops run at
    where: str = "start"  # start | end of the layer
    tensors: list = field(default_factory=list)
    ops: list = field(default_factory=list)
    dtype: str = "fp16"

    def t(self, shape: Sequence[int], dtype: str | None = None, kind: str = "activation") -> int:
        self.tensors.append([[int(d) for d in shape], dtype or self.dtype, kind])
        return len(self.tensors) - 1

    def op(self, kind: str, name: str, attrs: dict, ins: Sequence[int],
           outs: Sequence[int]) -> None:
        self.ops.append({"kind": kind, "name": name, "attrs": dict(attrs), "ins": list(ins),
                         "outs": list(outs)})

    # -- the kinds the machinery is made of; each returns its output tensor(s)
    def matmul(self, name: str, batch: int, m: int, n: int, k: int, a: int | None = None,
               b: int | None = None) -> int:
        a = self.t([batch, m, k]) if a is None else a
        b = self.t([batch, k, n]) if b is None else b
        out = self.t([batch, m, n])
        self.op("matmul", name, dict(batch=batch, m=m, n=n, k=k), [a, b], [out])
        return out

    def softmax(self, name: str, rows: int, cols: int, x: int | None = None) -> int:
        x = self.t([rows, cols]) if x is None else x
        out = self.t([rows, cols])
        self.op("softmax", name, dict(rows=rows, cols=cols), [x], [out])
        return out

    def reduce(self, name: str, fn: str, elements: int, out_elements: int,
               x: int | None = None, dtype: str | None = None) -> int:
        x = self.t([elements]) if x is None else x
        out = self.t([out_elements], "int64" if fn.startswith("arg") else dtype)
        self.op("reduce", name, dict(fn=fn, elements=elements, out_elements=out_elements),
                [x], [out])
        return out

    def elementwise(self, name: str, fn: str, elements: int, ins: Sequence[int | None] = (None,),
                    dtype: str | None = None) -> int:
        tids = [self.t([elements]) if i is None else i for i in ins]
        out = self.t([elements], dtype)
        self.op("elementwise", name, dict(fn=fn, elements=elements), tids, [out])
        return out

    def topk(self, name: str, rows: int, n: int, k: int, x: int | None = None) -> tuple[int, int]:
        x = self.t([rows, n]) if x is None else x
        vals, idx = self.t([rows, k]), self.t([rows, k], "int64")
        self.op("topk", name, dict(rows=rows, n=n, k=k), [x], [vals, idx])
        return vals, idx

    def gather(self, name: str, elements: int, source_elements: int, index: int | None = None,
               dtype: str | None = None) -> int:
        src = self.t([source_elements], dtype)
        idx = self.t([1], "int64") if index is None else index
        out = self.t([elements], dtype)
        self.op("gather", name, dict(elements=elements), [src, idx], [out])
        return out

    def kv_write(self, name: str, elements: int, cache_elements: int) -> int:
        new = self.t([elements])
        cache = self.t([max(cache_elements, elements)], kind="kv_cache")
        self.op("kv_write", name, dict(elements=elements), [new], [cache])
        return cache

    def to_dict(self) -> dict:
        return {"method": self.method, "layer": self.layer, "where": self.where,
                "tensors": self.tensors, "ops": self.ops, "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Block":
        return cls(d["method"], d["layer"], d.get("where", "start"),
                   [list(t) for t in d["tensors"]], [dict(o) for o in d["ops"]],
                   d.get("dtype", "fp16"))


@dataclass
class Plan:
    """See the module docstring. Layers are indices inside the pruned stack."""

    phase: str
    base: dict  # batch, seq_len, kv_len of the dense graph
    dtype: str
    stack: str
    first: int  # global index of the stack's layer 0
    num: int
    buckets: list  # bucket names, in token order
    counts: list  # per layer: {bucket: tokens}
    heads: list  # per layer: kept query heads
    dense_heads: list
    kv_heads: list
    head_dim: list
    hidden: int
    ffn: int
    resizable: bool  # a template exists, so per-layer sizes can change
    window: list = field(default_factory=list)  # per layer: sliding window (0: none)
    dropped: list = field(default_factory=list)
    dtypes: dict = field(default_factory=dict)  # query/key/value -> dtype
    refetch: dict = field(default_factory=dict)  # {"fraction", "bits"} for key LSB re-fetch
    sparse: dict = field(default_factory=dict)  # layer -> sparse attention spec
    blocks: list = field(default_factory=list)  # Block
    changed_by: dict = field(default_factory=dict)  # layer -> method that resized it
    records: list = field(default_factory=list)
    # MoE layer -> {experts, top_k (the router's), kept (original ids), active_k}
    moe: dict = field(default_factory=dict)
    routing: dict = field(default_factory=dict)  # the workload's routing (hwsim.moe)
    # per layer: the decode step's query rows (empty: base seq_len at every layer); a
    # generation's LazyLLM step computes revived tokens from their pruning layer on
    rows: list = field(default_factory=list)
    model: str = ""  # the workload's model name (a scores file must be of this model)
    # the vision tower of a vision-language model, where FasterVLM reads its [CLS]
    # attention: {first, num, batch, heads, head_dim, tokens, cls}; empty without one
    vision: dict = field(default_factory=dict)
    # per layer: FFN intermediate channels kept (FLAP; empty: every layer dense, ``ffn``)
    ffn_width: list = field(default_factory=list)
    # layer -> {"key": dtype, "value": dtype}: the storage format of the layer's KV cache
    # (Mustafar's bitmap-compressed cache, :func:`hwsim.pruning.kv.mustafar`)
    kv_formats: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ create
    @classmethod
    def from_graph(cls, graph: Graph, resizable: bool) -> "Plan":
        """A plan in which nothing is pruned yet (or the one a pruned graph carries)."""
        saved = graph.header.get("pruning_plan")
        if saved:
            return cls.from_dict(saved)
        h = graph.header
        phase = h.get("phase", "prefill")
        base = {"batch": int(h.get("batch", 1)), "seq_len": int(h.get("seq_len", 1)),
                "kv_len": int(h.get("kv_len", 0))}
        stacks = h.get("stacks") or {}
        stack = next((s for s in STACK_ORDER if s in stacks), None)
        if stack is not None:
            first, num = int(stacks[stack]["first_layer"]), int(stacks[stack]["num_layers"])
        else:
            stack, first, num = "layers", 0, graph.num_layers
        heads, kv_heads, head_dim, window = [], [], [], []
        attn = {}
        for op in graph.ops:
            if op.kind == "attention" and op.layer is not None and op.layer not in attn:
                attn[op.layer] = op.attrs
        for rel in range(num):
            a = attn.get(first + rel, {})
            heads.append(int(a.get("heads", 0)))
            kv_heads.append(int(a.get("kv_heads", 0)))
            head_dim.append(int(a.get("head_dim", 0)))
            window.append(int(a.get("window", 0) or 0))
        config = h.get("config") or {}
        hidden = int(config.get("hidden") or (heads[0] * head_dim[0] if heads else 0))
        ffn = int(config.get("ffn") or 4 * hidden)
        total = base["seq_len"] if phase == "prefill" else base["kv_len"]
        buckets, sizes = _buckets(h.get("segments") or {}, total, phase)
        dtype = (h.get("template_ref") or {}).get("dtype") or _float_dtype(graph)
        moe = {}
        for op in graph.ops:
            rel = (op.layer - first) if op.layer is not None else -1
            if op.kind == "moe_experts" and 0 <= rel < num and rel not in moe:
                a = op.attrs
                ids = list(a.get("kept") or range(int(a["experts"])))
                moe[rel] = {"experts": int(a["experts"]), "top_k": int(a["top_k"]),
                            "kept": ids, "active_k": int(a.get("active_k") or a["top_k"])}
        return cls(phase=phase, base=base, dtype=dtype, stack=stack, first=first, num=num,
                   vision=_vision(graph, stacks),
                   buckets=buckets, counts=[dict(sizes) for _ in range(num)], heads=list(heads),
                   dense_heads=list(heads), kv_heads=kv_heads, head_dim=head_dim,
                   hidden=hidden, ffn=ffn, resizable=resizable, window=window, moe=moe,
                   routing=dict(h.get("routing") or {}), model=str(h.get("model") or ""))

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in (
            "phase", "base", "dtype", "stack", "first", "num", "buckets", "counts", "heads",
            "dense_heads", "kv_heads", "head_dim", "hidden", "ffn", "resizable", "window",
            "dropped",
            "dtypes", "refetch", "records", "routing", "model", "vision", "ffn_width")}
        d["sparse"] = {str(k): v for k, v in self.sparse.items()}
        d["kv_formats"] = {str(k): v for k, v in self.kv_formats.items()}
        d["moe"] = {str(k): v for k, v in self.moe.items()}
        d["changed_by"] = {str(k): v for k, v in self.changed_by.items()}
        d["blocks"] = [b.to_dict() for b in self.blocks]
        if self.rows:
            d["rows"] = list(self.rows)
        return _copy(d)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Plan":
        d = _copy(dict(d))
        blocks = [Block.from_dict(b) for b in d.pop("blocks", [])]
        sparse = {int(k): v for k, v in d.pop("sparse", {}).items()}
        formats = {int(k): v for k, v in d.pop("kv_formats", {}).items()}
        changed = {int(k): v for k, v in d.pop("changed_by", {}).items()}
        moe = {int(k): v for k, v in d.pop("moe", {}).items()}
        return cls(**d, sparse=sparse, blocks=blocks, changed_by=changed, moe=moe,
                   kv_formats=formats)

    # ------------------------------------------------------------------ queries
    @property
    def axis(self) -> str:
        """The size variable pruning shrinks: the prompt (prefill) or the KV cache (decode)."""
        return "seq_len" if self.phase == "prefill" else "kv_len"

    @property
    def batch(self) -> int:
        return self.base["batch"]

    def alive(self) -> list[int]:
        return [layer for layer in range(self.num) if layer not in self.dropped]

    def tokens(self, layer: int, bucket: str | None = None) -> int:
        c = self.counts[layer]
        return sum(c.values()) if bucket is None else c.get(bucket, 0)

    def keys(self, layer: int) -> int:
        """Keys the layer's attention reads per query: prompt tokens, or cache + new tokens."""
        if self.phase == "prefill":
            return self.tokens(layer)
        return self.tokens(layer) + self.rows_at(layer)

    def queries(self, layer: int) -> int:
        return self.tokens(layer) if self.phase == "prefill" else self.rows_at(layer)

    def rows_at(self, layer: int) -> int:
        """A decode step's query rows per sequence at ``layer`` (its new tokens, plus any
        a generation's LazyLLM step revived at or before it)."""
        return int(self.rows[layer]) if self.rows else self.base["seq_len"]

    def visible_keys(self, layer: int) -> int:
        """Keys one query of the layer can attend to: all of them, or the sliding window's.

        A window counts cached entries (Mistral's rolling-buffer cache, Hugging
        Face's mask by cache position), so after token pruning it spans the
        ``window`` most recent *kept* tokens; a pruned sequence shorter than the
        window is just causal.
        """
        keys = self.keys(layer)
        w = self.window[layer] if layer < len(self.window) else 0
        return min(keys, w) if w > 0 else keys

    def group(self, layer: int) -> int:
        """Query heads per key/value head (1 without grouped-query attention)."""
        dense, kv = self.dense_heads[layer], self.kv_heads[layer]
        return max(1, dense // kv) if kv > 0 else 1

    def kv_kept(self, layer: int) -> int:
        """Key/value heads the layer keeps: head pruning removes whole groups."""
        return self.heads[layer] // self.group(layer)

    def tokens_per_layer(self) -> list:
        return [None if layer in self.dropped else self.tokens(layer) for layer in range(self.num)]

    def dense_tokens(self) -> int:
        return self.base["seq_len"] if self.phase == "prefill" else self.base["kv_len"]

    # ------------------------------------------------------------------ changes
    def require_resizable(self, step: Step) -> None:
        if not self.resizable:
            raise step.error("", "this graph is a concrete trace, not a size template, so its "
                             "token counts cannot change per layer (use model:, or a trace "
                             "made with hwsim trace --template)")

    def bucket_of(self, step: Step) -> str | None:
        seg = step.get("segment")
        if seg is None:
            return None
        if self.phase != "prefill":
            raise step.error("segment", "segments are token ranges of a prompt; a decode step "
                             "prunes its KV cache as a whole (leave segment out)")
        if seg not in self.buckets:
            raise step.error("segment", f"unknown segment {seg!r} (graph has: "
                             f"{', '.join(b for b in self.buckets if b != OTHER) or 'none'})")
        return seg

    def scale_tokens(self, step: Step, factors: Mapping[int, float], bucket: str | None) -> None:
        """Multiply the tokens of ``bucket`` (all tokens if None) at each layer by its factor.

        Composition: a later step keeps a fraction of what reaches it. In a
        prefill, tokens flow from layer to layer, so a layer may not hold more
        tokens than the one before it (pruned tokens do not come back).
        """
        self.require_resizable(step)
        for layer, f in sorted(factors.items()):
            if f >= 1:
                continue
            c = self.counts[layer]
            if bucket is not None:
                c[bucket] = kept(c[bucket], f)
            else:
                total = sum(c.values())
                _distribute(c, self.buckets, kept(total, f))
            self.changed_by[layer] = step.method
        if self.phase == "prefill":
            alive = self.alive()
            for a, b in zip(alive, alive[1:]):
                if self.tokens(b) > self.tokens(a):
                    raise step.error("keep", f"layer {b} would run on {self.tokens(b)} tokens, "
                                     f"more than layer {a} ({self.tokens(a)}): pruned tokens do "
                                     f"not come back, so the kept fraction cannot grow with depth")

    def block(self, step: Step, layer: int, where: str = "start") -> Block:
        b = Block(step.method, layer, where, dtype=self.dtype)
        self.blocks.append(b)
        return b

    def record(self, step: Step, **extra: Any) -> dict:
        rec = {"method": step.method,
               "params": {k: v for k, v in step.params.items() if k != "method"},
               "stack": self.stack, "first_layer": self.first, "phase": self.phase,
               "dense_tokens": self.dense_tokens(),
               "tokens_per_layer": self.tokens_per_layer(),
               "kv_per_layer": [None if layer in self.dropped else self.keys(layer)
                                for layer in range(self.num)],
               "heads_per_layer": [None if layer in self.dropped else self.heads[layer]
                                   for layer in range(self.num)],
               "kv_heads_per_layer": [None if layer in self.dropped else self.kv_kept(layer)
                                      for layer in range(self.num)],
               "dropped_layers": sorted(self.dropped), **extra}
        self.records.append(_copy(rec))
        return rec


def _vision(graph: Graph, stacks: Mapping[str, Any]) -> dict:
    """The vision tower's penultimate attention (LLaVA's ``mm_vision_select_layer = -2``,
    whose [CLS] row FasterVLM reads) and whether the tower has a [CLS] token: CLIP's
    embeddings concatenate a class embedding before the patches (a ``concat`` in the
    embeddings module); SigLIP's and Qwen2.5-VL's towers have none."""
    v = stacks.get("vision")
    if not v:
        return {}
    first, num = int(v["first_layer"]), int(v["num_layers"])
    layer = first + max(0, num - 2)
    attn = next((op.attrs for op in graph.ops if op.kind == "attention" and op.layer == layer),
                None)
    if attn is None:
        return {}
    has_cls = False
    for op in graph.ops:
        if op.layer is not None:
            break
        has_cls = has_cls or (op.kind == "concat" and (op.module or "").endswith("embeddings"))
    return {"first": first, "num": num, "layer": layer - first, "batch": int(attn["batch"]),
            "heads": int(attn["heads"]), "head_dim": int(attn["head_dim"]),
            "tokens": int(attn["kv_len"]), "cls": has_cls,
            # a video's frames (HoliTom merges across them); 0 for images
            "frames": int((graph.header.get("image") or {}).get("frames", 0))}


def _buckets(segments: Mapping[str, Any], total: int, phase: str) -> tuple[list, dict]:
    if phase != "prefill" or not segments:
        return [OTHER], {OTHER: total}
    spans = sorted(((int(s), int(e), name) for name, (s, e) in segments.items()),
                   key=lambda t: (t[0], t[1]))
    names, sizes, pos, other = [], {}, 0, 0
    for s, e, name in spans:
        e = min(e, total)
        if s < pos:
            raise InputError(f"segments overlap at token {s} ({name!r}); token pruning needs "
                             f"disjoint segments", field="segments")
        other += max(0, s - pos)
        names.append(name)
        sizes[name] = max(0, e - s)
        pos = max(pos, e)
    other += max(0, total - pos)
    names.append(OTHER)
    sizes[OTHER] = other
    return names, sizes


def _distribute(counts: dict, order: Iterable[str], total: int) -> None:
    """Spread ``total`` kept tokens over buckets in proportion (largest remainder)."""
    order = [b for b in order if counts.get(b, 0) > 0]
    have = sum(counts[b] for b in order)
    if have == 0:
        return
    shares = {b: counts[b] * total / have for b in order}
    out = {b: int(math.floor(s)) for b, s in shares.items()}
    rest = total - sum(out.values())
    for b in sorted(order, key=lambda b: shares[b] - out[b], reverse=True)[:rest]:
        out[b] += 1
    counts.update(out)


def _float_dtype(graph: Graph) -> str:
    for t in graph.tensors.values():
        if t.kind == "param" and t.dtype.startswith(("fp", "bf")):
            return t.dtype
    return "fp16"


_CONTAINERS = (dict, list, tuple)


def _copy(value: Any) -> Any:
    """A deep copy of a plan's JSON-like data: every dict a new dict, every list or
    tuple a new list, the leaves (numbers, strings, None) shared. (A leaf is taken
    as it is, not through a call: a plan's records are mostly lists of numbers.)"""
    if isinstance(value, dict):
        return {k: _copy(v) if isinstance(v, _CONTAINERS) else v for k, v in value.items()}
    if isinstance(value, _CONTAINERS):
        return [_copy(v) if isinstance(v, _CONTAINERS) else v for v in value]
    return value
