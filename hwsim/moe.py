"""Mixture of experts: routing, per-expert token counts, and the expansion pass.

A traced MoE layer is one ``moe_experts`` op (:mod:`hwsim.ir.kinds`): the
tokens, the router's top-k expert ids and weights, and every expert's weights.
How many tokens each expert gets is not in the trace (it follows the data), so
the workload says it with ``routing`` and this module turns the op into what a
grouped-GEMM MoE kernel runs (MegaBlocks, vLLM's ``fused_moe``: permute,
grouped GEMM, unpermute):

1. a ``gather`` of every token's routed rows into a permuted buffer
   [tokens·k, hidden], grouped by expert (the permute);
2. for each expert ``e`` that receives ``n_e > 0`` rows: a ``matmul``
   [n_e, hidden] x [hidden, g·ffn] whose weight operand is a ``view`` of that
   expert's slice of ``w_in`` (so it reads that expert's bytes and no others:
   :meth:`hwsim.ir.Graph.stored_bytes`), the activation (``swiglu``, or the
   function and the gate's product) over n_e·ffn elements, and a ``matmul``
   [n_e, ffn] x [ffn, hidden] on a view of ``w_out``; an expert with no rows
   runs nothing and reads nothing;
3. the combine: an ``elementwise`` mul of each row by its routing weight
   (tokens·k·hidden) and a ``reduce`` sum over the k rows of each token back
   to [tokens, hidden], written into the op's output tensor.

Every new op keeps the layer, module and name prefix of the ``moe_experts`` op
and a ``note`` naming its role and expert, so per-layer reports work. The
expanded FLOPs are the op's (every routed row through one expert FFN) plus the
combine's 2·tokens·k·hidden. A ``moe_experts`` op that runs ``repeat`` times (an
``ops:`` entry's repeat) expands into kernels that each run ``repeat`` times: the
same work and the same device time as the layer's kernels in turn, ``repeat``
times over; only the host's issue order differs.

Routing (the workload's ``routing`` field, :func:`check_routing`):

- ``{mode: balanced}`` (the default): every expert the same share;
- ``{mode: skew, alpha: a}``: a synthetic Zipf-like imbalance: the expert
  ranked ``r`` (1-based; expert id ``r - 1``) gets a share proportional to
  ``r^-a`` (``a = 0`` is balanced). Routers are measurably unbalanced on real
  text (Mixtral's routing analysis, Jiang et al. 2024, arXiv 2401.04088,
  section 5, figure 7, gives per-expert token proportions by layer); the Zipf
  law is a model of that, not a measurement: give a histogram for measured data;
- ``{mode: histogram, shares: [...]}``: a measured routing histogram, one
  non-negative share per expert (normalized here), for every MoE layer; and/or
  ``layers: {3: [...], ...}``: per layer (the model's layer index), which wins
  over ``shares``; a layer in neither is balanced.

Token counts per expert (:func:`expert_tokens`): the tokens·k assignments are
split by the shares with largest-remainder rounding, and since a token picks
``k`` *distinct* experts no expert gets more than ``tokens``: shares past that
cap are capped and the surplus goes to the other experts in proportion
(water-filling). Invariants: the counts sum to tokens·k, and
0 <= n_e <= tokens.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from .errors import InputError
from .ir import Graph, Op
from .ir.kinds import moe_active_k

ROUTING_MODES = ("balanced", "skew", "histogram")
_MODE_KEYS = {"balanced": ("mode",), "skew": ("mode", "alpha"),
              "histogram": ("mode", "shares", "layers")}


# ---------------------------------------------------------------------------- routing
def check_routing(value: Any, add) -> None:
    """Check a workload's ``routing`` field; report through ``add(field, message)``."""
    if value in (None, {}):
        return
    if not isinstance(value, Mapping):
        add("routing", f"expected a mapping like {{mode: balanced}}, got {value!r}")
        return
    mode = value.get("mode", "balanced")
    if mode not in ROUTING_MODES:
        add("routing.mode", f"expected one of {', '.join(ROUTING_MODES)}, got {mode!r}")
        return
    for key in value:
        if key not in _MODE_KEYS[mode]:
            add(f"routing.{key}", f"unknown key for mode {mode} (takes: "
                f"{', '.join(_MODE_KEYS[mode])})")
    if mode == "skew":
        alpha = value.get("alpha")
        if alpha is None:
            add("routing.alpha", "missing: the Zipf exponent of mode skew (e.g. 1.2)")
        elif isinstance(alpha, bool) or not isinstance(alpha, (int, float)) \
                or not math.isfinite(alpha) or alpha < 0:
            add("routing.alpha", f"must be a finite number >= 0, got {alpha!r}")
    if mode == "histogram":
        if "shares" not in value and "layers" not in value:
            add("routing.shares", "missing: mode histogram needs shares (one per expert) "
                "or layers ({layer: shares})")
        if "shares" in value:
            _check_shares(value["shares"], "routing.shares", add)
        layers = value.get("layers")
        if layers is not None:
            if not isinstance(layers, Mapping) or not layers:
                add("routing.layers", f"expected a mapping {{layer: [shares]}}, got {layers!r}")
            else:
                for key, shares in layers.items():
                    if _layer_key(key) is None:
                        add(f"routing.layers.{key}", "expected a layer index >= 0")
                    else:
                        _check_shares(shares, f"routing.layers.{key}", add)


def _layer_key(key: Any) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key if key >= 0 else None
    if isinstance(key, str) and key.isdigit():
        return int(key)
    return None


def _check_shares(shares: Any, field: str, add) -> None:
    if not isinstance(shares, list) or not shares:
        add(field, f"expected a list of one share per expert, got {shares!r}")
        return
    for s in shares:
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) \
                or s < 0:
            add(field, f"shares must be finite numbers >= 0, got {s!r}")
            return
    if sum(shares) <= 0:
        add(field, "shares sum to 0: at least one expert must receive tokens")


def _histogram(routing: Mapping[str, Any], layer: int | None) -> tuple[list | None, str]:
    """The raw histogram of ``layer`` and the field it came from (None: balanced)."""
    layers = {_layer_key(k): v for k, v in (routing.get("layers") or {}).items()}
    if layer in layers:
        return list(layers[layer]), f"routing.layers.{layer}"
    if "shares" in routing:
        return list(routing["shares"]), "routing.shares"
    return None, ""


def shares_for(routing: Mapping[str, Any] | None, layer: int | None, experts: int,
               source: str = "", kept: Sequence[int] | None = None) -> list[float]:
    """The normalized routing shares of the experts of MoE layer ``layer``: all
    ``experts`` of them, or only the original ids in ``kept`` after expert pruning
    (renormalized over them: a pruned router's softmax runs over the kept experts'
    logits, so the dropped experts' tokens go to the kept ones in proportion)."""
    routing = routing or {}
    mode = routing.get("mode", "balanced")
    ids = list(range(experts)) if kept is None else list(kept)
    if mode == "skew":
        raw = [(e + 1) ** -float(routing["alpha"]) for e in ids]
    elif mode == "histogram":
        hist, field = _histogram(routing, layer)
        if hist is None:
            raw = [1.0] * len(ids)
        elif kept is None and len(hist) != experts:
            raise InputError(f"has {len(hist)} shares, MoE layer {layer} has {experts} experts",
                             source=source, field=field)
        elif kept is not None and len(hist) <= max(ids):
            raise InputError(f"has {len(hist)} shares, MoE layer {layer} keeps expert "
                             f"{max(ids)}", source=source, field=field)
        else:
            raw = [float(hist[e]) for e in ids]
    else:
        raw = [1.0] * len(ids)
    total = float(sum(raw))
    if total <= 0:  # every kept expert had a zero share: the router still picks among them
        return [1.0 / len(ids)] * len(ids)
    return [float(x) / total for x in raw]


def expert_tokens(shares: Sequence[float], tokens: int, k: int) -> list[int]:
    """Rows each expert receives when ``tokens`` tokens each pick ``k`` distinct experts
    with probabilities ``shares`` (see the module docstring: capped water-filling, then
    largest-remainder rounding, ties to the lower expert id)."""
    e = len(shares)
    if k > e:
        raise ValueError(f"top-{k} of {e} experts")
    total = tokens * k
    target = [0.0] * e
    free = list(range(e))
    left = float(total)
    while free and left > 0:
        weight = sum(shares[i] for i in free)
        if weight <= 0:  # only unrouted experts are left: they take the rest evenly
            part = {i: left / len(free) for i in free}
        else:
            part = {i: left * shares[i] / weight for i in free}
        capped = [i for i in free if target[i] + part[i] >= tokens]
        if not capped:
            for i in free:
                target[i] += part[i]
            break
        for i in capped:
            left -= tokens - target[i]
            target[i] = float(tokens)
        free = [i for i in free if i not in capped]
    counts = [min(tokens, int(math.floor(t + 1e-9))) for t in target]
    rest = total - sum(counts)
    order = sorted((i for i in range(e) if counts[i] < tokens),
                   key=lambda i: (-(target[i] - counts[i]), i))
    for i in order[:rest]:
        counts[i] += 1
    return counts


def layer_counts(op: Op, routing: Mapping[str, Any] | None, source: str = "") -> list[int]:
    """Rows each expert of a ``moe_experts`` op receives (in the op's expert order)."""
    a = op.attrs
    kept = a.get("kept")
    shares = shares_for(routing, op.layer, a["experts"], source,
                        list(kept) if kept is not None else None)
    return expert_tokens(shares, a["tokens"], moe_active_k(a))


# ---------------------------------------------------------------------------- expansion
def has_moe(graph: Graph) -> bool:
    return any(op.kind == "moe_experts" for op in graph.ops)


def expand(graph: Graph, routing: Mapping[str, Any] | None = None, source: str = "") -> Graph:
    """``graph`` with every ``moe_experts`` op replaced by the ops its kernels run
    (see the module docstring); the graph itself when it has none. ``routing``
    defaults to the one the graph's header records (:func:`hwsim.workload.build_graph`)."""
    if not has_moe(graph):
        return graph
    if routing is None:
        routing = graph.header.get("routing") or {}
    g = Graph(graph.header, graph.tensors.values(), graph.ops)  # new tensors go here
    out: list[Op] = []
    for op in graph.ops:
        if op.kind == "moe_experts":
            out.extend(_expand_one(g, op, layer_counts(op, routing, source)))
        else:
            out.append(op)
    header = dict(graph.header)
    header["moe"] = _summary(graph, routing, source)
    return g.replace_ops(out, header=header)


def _summary(graph: Graph, routing, source: str) -> dict:
    """Per MoE layer: the rows each expert received (a record for reports)."""
    rows = {}
    for op in graph.ops:
        if op.kind == "moe_experts":
            kept = list(op.attrs.get("kept") or range(op.attrs["experts"]))
            counts = layer_counts(op, routing, source)
            rows[str(op.layer)] = {str(e): n for e, n in zip(kept, counts)}
    return {"routing": dict(routing or {"mode": "balanced"}), "tokens_per_expert": rows}


def _expand_one(g: Graph, op: Op, counts: Sequence[int]) -> list[Op]:
    a = op.attrs
    x, index, weight, w_in, w_out = op.inputs
    (y,) = op.outputs
    t, h, f = a["tokens"], a["hidden"], a["ffn"]
    k = moe_active_k(a)
    gm = 2 if a.get("gated", True) else 1
    kept = list(a.get("kept") or range(a["experts"]))
    dt = g.tensors[x].dtype
    wdt = g.tensors[w_in].dtype
    odt = g.tensors[w_out].dtype
    rows = t * k
    new: list[Op] = []
    base = op.name or "experts"

    def add(kind: str, ins, outs, attrs, name: str) -> None:
        new.append(Op(-1, kind, tuple(ins), tuple(outs), attrs, op.layer, op.module,
                      f"{base}.{name}", op.repeat))

    perm = g.add_tensor([rows, h], dt)
    add("gather", [x, index], [perm], {"elements": rows * h, "note": "moe permute"},
        "permute")
    outs = []
    for e, n in zip(kept, counts):
        if n == 0:
            continue
        note = f"expert {e}"
        xe = g.add_tensor([n, h], dt)
        add("view", [perm], [xe], {"note": f"{note} rows"}, f"e{e}.rows")
        wi = g.add_tensor([gm * f, h], wdt)
        add("view", [w_in], [wi], {"note": f"{note} w_in"}, f"e{e}.w_in")
        hid = g.add_tensor([n, gm * f], dt)
        add("matmul", [xe, wi], [hid], {"batch": 1, "m": n, "n": gm * f, "k": h, "note": note},
            f"e{e}.up")
        act = g.add_tensor([n, f], dt)
        if gm == 2 and a["act"] == "silu":
            add("elementwise", [hid], [act], {"fn": "swiglu", "elements": n * f, "note": note},
                f"e{e}.act")
        elif gm == 2:  # act(gate) · up: the function, then the product
            gate = g.add_tensor([n, f], dt)
            add("elementwise", [hid], [gate], {"fn": a["act"], "elements": n * f,
                                               "note": note}, f"e{e}.act")
            add("elementwise", [gate, hid], [act], {"fn": "mul", "elements": n * f,
                                                   "note": note}, f"e{e}.gate_mul")
        else:
            add("elementwise", [hid], [act], {"fn": a["act"], "elements": n * f, "note": note},
                f"e{e}.act")
        wo = g.add_tensor([f, h], odt)
        add("view", [w_out], [wo], {"note": f"{note} w_out"}, f"e{e}.w_out")
        ye = g.add_tensor([n, h], dt)
        add("matmul", [act, wo], [ye], {"batch": 1, "m": n, "n": h, "k": f, "note": note},
            f"e{e}.down")
        outs.append(ye)
    scaled = g.add_tensor([rows, h], dt)
    add("elementwise", [*outs, weight], [scaled],
        {"fn": "mul", "elements": rows * h, "note": "moe combine: routing weights"}, "scale")
    add("reduce", [scaled], [y], {"fn": "sum", "elements": rows * h, "out_elements": t * h,
                                  "note": f"moe combine: sum over top-{k}"}, "combine")
    return new
