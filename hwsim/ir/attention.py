"""One attention op's shape, read once, the same way by every target.

An ``attention`` op (:mod:`hwsim.ir.kinds`) is ``softmax(Q Kᵀ · scale + mask) V``
for ``heads`` query heads over ``kv_heads`` key/value heads. Its attributes say
how big it is and which scores and values each query uses; several are optional
and have defaults and limits. :class:`AttentionShape` holds them under clear
names, with the defaults applied and the limits enforced, together with what
every target derives from them, so that no target parses them on its own::

    sh = AttentionShape.of(op, graph)
    sh.group         # query heads per key/value head (GQA; MQA: all of them)
    sh.keys          # keys each query scores (sparse_keys, else kv_len)
    sh.key_rows      # rows of each K head some query uses: the compulsory read

**The sizes.** ``batch`` sequences; ``heads`` query heads of ``head_dim``;
``kv_heads`` key/value heads (``heads`` for multi-head attention, fewer for
grouped-query, 1 for multi-query attention), each serving ``group = heads //
kv_heads`` query heads; values of ``v_head_dim`` (``head_dim`` unless set);
``q_len`` queries and ``kv_len`` keys per head. K and V always hold all
``kv_len`` rows of each key/value head: the cache, or this call's keys.

**Where the queries sit.** Query ``i`` is at position ``i + kv_len - q_len``
(``q_offset + i``): bottom-right aligned, as a decode step or a chunk of
prefill over a cache is. With ``causal`` it sees the keys at or before its
position. A sliding ``window`` > 0 (Mistral's 4,096) lets it see only the
``window`` most recent of those (``pos - key < window``; without ``causal`` the
window is symmetric, ``|pos - key| < window``). ``masked``: either mask is set.
The masks cut what a kernel must compute (:func:`hwsim.ir.kinds.visible_scores`),
not the counted FLOPs.

**What each query uses.** Two attributes select, at run time, fewer of the
``kv_len`` rows:

* ``sparse_keys`` > 0 (block-sparse attention: HiP, top-k attention): each block
  of ``sparse_block`` consecutive queries of one query head attends to its own
  ``sparse_keys`` keys (and their values), gathered where they lie in K and V.
  0 means dense; ``sparse_block`` is 1 unless set.
* ``v_len`` (SpAtten's local value pruning): each query weights only the value
  rows of its ``v_len`` largest probabilities, a per-row top-k inside the
  attention. ``kv_len`` (all) unless set.

``keys`` and ``values`` are what each query scores and weights
(:func:`hwsim.ir.kinds.attention_keys`: ``keys = sparse_keys or kv_len``,
``values = min(v_len, keys)``); ``selects_values`` is true when a query weights
fewer values than it scores (so the kernel runs the top-k). ``key_rows`` and
``value_rows`` are the distinct rows of one key/value head that some query
uses (:func:`hwsim.ir.kinds.attention_rows`): all ``kv_len``, or fewer under a
window, a block-sparse selection or value pruning. They are what the op must
read at least; a target reads more where its tiles re-read.

**Progressive quantization.** ``lsb_bits`` > 0 (SpAtten): a fourth input holds
the keys' low bits, re-fetched by rows whose probabilities are flat.

**The operands** (filled by :meth:`AttentionShape.of`, which has the graph;
``None`` when the shape was read from the attributes alone by
:meth:`AttentionShape.from_attrs`): the element types ``dtype`` (the query's: the
type the attention computes in), ``k_dtype``, ``v_dtype``, ``o_dtype``, and the
bytes stored: ``q_bytes``, ``k_bytes``, ``v_bytes`` (through a ``view``, at most
those of the tensor it aliases: :meth:`hwsim.ir.Graph.stored_bytes`),
``o_bytes`` (the output), ``extra_bytes`` (every input after Q, K and V: an
explicit mask, the keys' low-bit plane).

Values are read as the attributes are checked by :func:`hwsim.ir.kinds.check`
(non-negative integers, ``heads`` a multiple of ``kv_heads``, ``sparse_keys``
and ``v_len`` at most ``kv_len``); out-of-range selections are clipped to
``kv_len`` rather than trusted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from .kinds import attention_keys, attention_rows

if TYPE_CHECKING:  # pragma: no cover
    from .graph import Graph, Op


@dataclass(frozen=True)
class AttentionShape:
    """An attention op's sizes, masks, selections and operands (see the module
    docstring). Build it with :meth:`of` (or :meth:`from_attrs`); ``sparse_keys``,
    ``sparse_block`` and ``v_len`` are normalized on construction and ``group``,
    ``keys``, ``values``, ``key_rows`` and ``value_rows`` derived."""

    batch: int
    heads: int  # query heads
    kv_heads: int  # key/value heads
    head_dim: int  # of Q and K
    v_head_dim: int  # of V and the output
    q_len: int  # queries per head
    kv_len: int  # rows of each key/value head in K and V
    causal: bool
    window: int = 0  # sliding window in keys (0: none)
    sparse_keys: int = 0  # keys each block of sparse_block queries selects (0: dense)
    sparse_block: int = 1  # queries of one head sharing a selection
    v_len: int | None = None  # values each query weights (None or kv_len: all)
    lsb_bits: int = 0  # low bits of the keys in a fourth input (0: none)
    dtype: str | None = None  # the query's element type: the attention's
    k_dtype: str | None = None
    v_dtype: str | None = None
    o_dtype: str | None = None
    q_bytes: int | None = None  # stored bytes of Q, K and V (aliases at their root's)
    k_bytes: int | None = None
    v_bytes: int | None = None
    o_bytes: int | None = None  # the output
    extra_bytes: int | None = None  # every input after V (a mask, the key LSB plane)
    group: int = field(init=False)  # query heads per key/value head
    keys: int = field(init=False)  # keys each query scores
    values: int = field(init=False)  # value rows each query weights
    key_rows: int = field(init=False)  # rows of each K head some query uses
    value_rows: int = field(init=False)  # rows of each V head some query weights

    def __post_init__(self) -> None:
        kv = self.kv_len
        put = object.__setattr__  # a frozen dataclass sets its own derived fields
        put(self, "sparse_keys", min(kv, int(self.sparse_keys or 0)))
        put(self, "sparse_block", max(1, int(self.sparse_block or 1)))
        put(self, "v_len", kv if self.v_len is None else min(kv, int(self.v_len)))
        put(self, "group", max(1, self.heads // max(1, self.kv_heads)))
        keys, values = attention_keys(self.attrs)
        key_rows, value_rows = attention_rows(self.attrs)
        put(self, "keys", keys)
        put(self, "values", values)
        put(self, "key_rows", key_rows)
        put(self, "value_rows", value_rows)

    def stored_width(self, which: str, query_bytes: float) -> float:
        """Bytes per element of K (``which = "k"``) or V as stored: ``query_bytes`` (the
        query's width) when they share the query's type, else their stored bytes per
        element (a quantized or compressed cache holds fewer)."""
        dtype = self.k_dtype if which == "k" else self.v_dtype
        if dtype is None or dtype == self.dtype:
            return query_bytes
        stored = self.k_bytes if which == "k" else self.v_bytes
        width = self.head_dim if which == "k" else self.v_head_dim
        return stored / max(1, self.batch * self.kv_heads * self.kv_len * width)

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], **operands):
        """The shape of an attention with attributes ``attrs`` (operand fields as
        given in ``operands``, else ``None``)."""
        a = attrs
        d = a["head_dim"]
        v_head_dim = a.get("v_head_dim")
        v_len = a.get("v_len")
        return cls(batch=a["batch"], heads=a["heads"], kv_heads=a["kv_heads"], head_dim=d,
                   v_head_dim=d if v_head_dim is None else v_head_dim, q_len=a["q_len"],
                   kv_len=a["kv_len"], causal=bool(a["causal"]),
                   window=int(a.get("window") or 0),
                   sparse_keys=int(a.get("sparse_keys") or 0),
                   sparse_block=int(a.get("sparse_block") or 1),
                   v_len=None if v_len is None else int(v_len),
                   lsb_bits=int(a.get("lsb_bits") or 0), **operands)

    @classmethod
    def of(cls, op: "Op", graph: "Graph"):
        """The shape of attention ``op`` of ``graph``, its operands included.

        The last one made is kept, by the op's and the graph's identity (the entry
        holds both, so an id names one object; neither changes once made): an op's
        pricing asks for it several times in a row (its lowering, its detail line, its
        executed FLOPs), each some 25 fields and their derived counts (about 25 us)."""
        last = _LAST_SHAPE
        if last and last[0] is op and last[1] is graph and last[2] is cls:
            return last[3]
        t = graph.tensors
        q, k, v = op.inputs[:3]
        out = t[op.outputs[0]]
        shape = cls.from_attrs(
            op.attrs, dtype=t[q].dtype, k_dtype=t[k].dtype, v_dtype=t[v].dtype,
            o_dtype=out.dtype, q_bytes=graph.stored_bytes(q), k_bytes=graph.stored_bytes(k),
            v_bytes=graph.stored_bytes(v), o_bytes=out.bytes,
            extra_bytes=sum(graph.stored_bytes(i) for i in op.inputs[3:]))
        _LAST_SHAPE[:] = (op, graph, cls, shape)
        return shape

    @property
    def attrs(self) -> dict[str, Any]:
        """The op attributes this shape stands for, normalized."""
        a = dict(batch=self.batch, heads=self.heads, kv_heads=self.kv_heads,
                 head_dim=self.head_dim, v_head_dim=self.v_head_dim, q_len=self.q_len,
                 kv_len=self.kv_len, causal=self.causal, window=self.window,
                 v_len=self.v_len)
        if self.sparse_keys:
            a.update(sparse_keys=self.sparse_keys, sparse_block=self.sparse_block)
        if self.lsb_bits:
            a["lsb_bits"] = self.lsb_bits
        return a

    @property
    def sparse(self) -> bool:
        """Block-sparse: each block of queries attends to its own selected keys."""
        return self.sparse_keys > 0

    @property
    def selects_values(self) -> bool:
        """Each query weights fewer values than it scores (a top-k per row)."""
        return self.values < self.keys

    @property
    def masked(self) -> bool:
        """A causal or sliding-window mask hides some scores."""
        return self.causal or self.window > 0

    @property
    def q_offset(self) -> int:
        """Position of the first query (``kv_len - q_len``): query ``i`` sits at
        key position ``q_offset + i``."""
        return self.kv_len - self.q_len


# (op, graph, class, its shape) of the last AttentionShape.of made
_LAST_SHAPE: list = []
