"""The raw record of one forward pass, before it becomes an :class:`hwsim.ir.Graph`.

The recorder (:mod:`hwsim.trace.recorder`) writes down what PyTorch executed,
one :class:`RawNode` per aten call, in the order the calls ran, and one
:class:`RawTensor` per value it saw. Nothing here knows torch: shapes are tuples
of ints, dtypes are hwsim names (``fp16``), ops are names (``aten.mm.default``).
Later stages (:mod:`hwsim.trace.fuse`, :mod:`hwsim.trace.lower`) rewrite and
lower this record; keeping it torch-free keeps those stages plain Python.

Three facts about every raw tensor drive the lowering:

``role``
    Where the value comes from: ``param`` (a model weight), ``input`` (a model
    input), ``kv_cache`` (a past key/value tensor or a cache update's result),
    ``const`` (a buffer, or a value computed from constants only), ``op`` (the
    output of a recorded node) or ``view`` (an alias of another raw tensor,
    ``base``).
``data``
    Whether the value depends on weights, activations or the KV cache. Nodes
    whose inputs carry no data (mask construction, position ids, rotary tables)
    are bookkeeping: the lowering drops them, and a data node that reads such a
    value reads it as a graph input.
``base``
    For views, the raw tensor viewed. A view costs nothing; the lowering makes
    its consumers read the viewed tensor (see :mod:`hwsim.trace.lower`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

ROLES = ("param", "input", "kv_cache", "const", "op", "view")


@dataclass(slots=True)
class RawTensor:
    """A value seen during the forward pass."""

    id: int
    shape: tuple[int, ...]
    dtype: str
    role: str
    data: bool
    base: int | None = None  # the viewed tensor, for role == "view"
    born: int = 0  # number of nodes recorded when this tensor appeared
    expand: bool = False  # a view made by ``expand`` (a broadcast, even when it adds nothing)
    module: str = ""  # for views: the module the view was made in

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True, slots=True)
class TRef:
    """A tensor argument inside a node's ``args``: the raw tensor id."""

    id: int


@dataclass(slots=True)
class RawNode:
    """One executed operation.

    ``target`` is an aten overload name (``aten.addmm.default``) or, for nodes
    the tracer synthesises, ``hwsim.<kind>`` with the canonical attributes in
    ``attrs``. ``inputs`` are the tensor arguments in argument order (``args``
    keeps the full argument list, tensors as :class:`TRef`).
    """

    target: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    module: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    data: bool = True
    hint: str = ""  # a name suffix ("rope_q", "kv_write_k") for fused nodes


@dataclass(slots=True)
class Region:
    """A span of nodes that is one canonical op (an RMSNorm module, a rotary call).

    ``outputs`` are the raw tensors the span hands back; each becomes one fused
    op of ``kind`` over the nodes it depends on (:mod:`hwsim.trace.fuse`).
    """

    kind: str
    start: int
    end: int
    outputs: tuple[int, ...]
    module: str
    hints: tuple[str, ...] = ()
    fn: str = ""  # for kind == "elementwise"


@dataclass
class RawTrace:
    """Everything the recorder saw, plus what it learned about the model."""

    tensors: list[RawTensor] = field(default_factory=list)
    nodes: list[RawNode] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)
    causal: dict[str, bool] = field(default_factory=dict)  # module path -> is_causal
    window: dict[str, int] = field(default_factory=dict)  # module path -> sliding window
    heads: dict[str, int] = field(default_factory=dict)  # nn.MultiheadAttention path -> heads
    # constant tensor id -> its abstract value (hwsim.trace.masks), for reading masks
    values: dict[int, Any] = field(default_factory=dict)

    def root(self, tid: int) -> int:
        """The non-view tensor that ``tid`` is a view of (``tid`` itself if none)."""
        t = self.tensors[tid]
        while t.base is not None:
            t = self.tensors[t.base]
        return t.id

    def window_of(self, module: str) -> int:
        """The sliding window of ``module`` or of its nearest ancestor that has one
        (0: attention over every key)."""
        path = module
        while True:
            if path in self.window:
                return self.window[path]
            if not path:
                return 0
            path = path.rsplit(".", 1)[0] if "." in path else ""

    def is_causal(self, module: str) -> bool | None:
        """The ``is_causal`` flag of ``module`` or of its nearest ancestor that has one."""
        path = module
        while True:
            if path in self.causal:
                return self.causal[path]
            if not path:
                return None
            path = path.rsplit(".", 1)[0] if "." in path else ""
