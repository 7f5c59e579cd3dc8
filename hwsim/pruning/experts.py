"""Expert pruning and reduced top-k for mixture-of-experts models (method ``experts``).

Lu et al., "Not All Experts are Equal: Efficient Expert Pruning and Skipping
for Mixture-of-Experts Large Language Models" (ACL 2024, arXiv 2402.14800)
prune Mixtral-8x7B's 8 experts per layer to 6 or 4 after training (the weights
of the dropped experts leave the model: Mixtral fits one 80 GB GPU at 6) and
skip experts per token at run time. The step's parameters:

- which experts leave each MoE layer: ``drop: N`` experts, or ``keep: f`` (a
  fraction of the experts, rounded half up, or a list with one fraction per
  layer), chosen ``by: frequency`` (the default): the least-routed experts
  under the workload's ``routing`` go first (ties: the higher expert id first;
  under balanced routing that drops the last ids). Lu et al. choose the kept
  set by enumerating subsets for the lowest output-reconstruction loss on
  calibration data, which needs the model's activations: give the set they
  find with ``experts: {layer: [ids]}``, the experts *dropped* at each listed
  layer. ``layers`` restricts ``drop``/``keep``/``top_k`` to some layers;
- ``top_k: k`` (or one per layer): the experts each token runs, fewer than the
  router's top-k (reduced top-k; Lu et al.'s dynamic skipping drops a token's
  second expert when its routing weight is small, a data-dependent share of
  the tokens: ``top_k: 1`` is its bound with every second expert skipped).

The pass edits the ``moe_experts`` ops before they are expanded
(:mod:`hwsim.moe`): ``experts`` becomes the kept count and ``kept`` lists
their original ids, the experts' weight tensors shrink to the kept experts
(memory capacity and parameter bytes fall with them), and ``active_k`` says how
many experts each token runs. The kept experts' routing shares are
renormalized over them (the router's softmax over the kept logits), so their
token counts grow. Nothing is decided at run time: offline expert pruning has
no machinery to cost, and reduced top-k runs the router as before (the
comparison that dynamic skipping adds per token is not modelled).
"""

from __future__ import annotations

from dataclasses import replace

from ..ir import Graph, Op
from ..moe import shares_for
from .plan import Plan, Step, kept

CRITERIA = ("frequency",)


def experts(plan: Plan, step: Step) -> None:
    """Decide the kept experts and the per-token expert count of each MoE layer."""
    if not plan.moe:
        raise step.error("", "the graph has no mixture-of-experts layers (moe_experts ops)")
    given = [k for k in ("drop", "keep", "experts") if step.get(k) is not None]
    if len(given) > 1:
        raise step.error(given[1], f"give one of drop, keep or experts, not {' and '.join(given)}")
    by = step.get("by", "frequency")
    if by not in CRITERIA:
        raise step.error("by", f"expected one of {', '.join(CRITERIA)}, got {by!r}")
    layers = _layers(plan, step)
    explicit = _explicit(plan, step)
    top_k = _top_k(plan, step)
    for rel in sorted(plan.moe):
        if rel in plan.dropped:
            continue
        m = plan.moe[rel]
        current = list(m["kept"])
        if explicit is not None:
            gone = explicit.get(rel, [])
            bad = [e for e in gone if e not in current]
            if bad:
                raise step.error(f"experts.{rel}", f"layer {rel} has no expert {bad[0]} to drop "
                                 f"(it has: {current})")
            new = [e for e in current if e not in gone]
        elif rel in layers and (step.get("drop") is not None or step.get("keep") is not None):
            n_keep = _n_keep(plan, step, rel, len(current))
            new = _by_frequency(plan, step, rel, current, n_keep)
        else:
            new = current
        k = m["active_k"]
        if top_k is not None and rel in layers:
            want = top_k[rel] if isinstance(top_k, list) else top_k
            if want > m["top_k"]:
                raise step.error("top_k", f"layer {rel}'s router picks top-{m['top_k']}: a "
                                 f"token cannot run {want} experts")
            k = min(k, want)
        if len(new) < k:
            raise step.error(given[0] if given else "top_k",
                             f"layer {rel} would keep {len(new)} experts, fewer than the "
                             f"{k} each token runs (top-{k} picks distinct experts)")
        m["kept"], m["active_k"] = sorted(new), k
    plan.record(step, experts_per_layer=[
        None if rel in plan.dropped or rel not in plan.moe else len(plan.moe[rel]["kept"])
        for rel in range(plan.num)],
        kept_experts={str(rel): list(m["kept"]) for rel, m in sorted(plan.moe.items())
                      if rel not in plan.dropped},
        top_k_per_layer=[None if rel in plan.dropped or rel not in plan.moe
                         else plan.moe[rel]["active_k"] for rel in range(plan.num)])


def _layers(plan: Plan, step: Step) -> list[int]:
    layers = step.get("layers")
    if layers is None:
        return sorted(plan.moe)
    bad = [x for x in layers if x not in plan.moe]
    if bad:
        raise step.error("layers", f"layer {bad[0]} has no mixture of experts (MoE layers: "
                         f"{_span(sorted(plan.moe))})")
    return sorted(set(layers))


def _span(layers: list[int]) -> str:
    return f"{layers[0]}..{layers[-1]}" if layers == list(range(layers[0], layers[-1] + 1)) \
        else ", ".join(map(str, layers))


def _explicit(plan: Plan, step: Step) -> dict[int, list[int]] | None:
    value = step.get("experts")
    if value is None:
        return None
    out = {}
    for key, ids in value.items():
        rel = int(key)
        if rel not in plan.moe:
            raise step.error(f"experts.{key}", f"layer {rel} has no mixture of experts (MoE "
                             f"layers: {_span(sorted(plan.moe))})")
        out[rel] = list(ids)
    return out


def _top_k(plan: Plan, step: Step) -> int | list[int] | None:
    value = step.get("top_k")
    if isinstance(value, list) and len(value) != plan.num:
        raise step.error("top_k", f"has {len(value)} entries, the {plan.stack} stack has "
                         f"{plan.num} layers")
    return value


def _n_keep(plan: Plan, step: Step, rel: int, have: int) -> int:
    if step.get("drop") is not None:
        n = have - int(step.get("drop"))
        if n < 1:
            raise step.error("drop", f"layer {rel} has {have} experts: dropping "
                             f"{step.get('drop')} leaves none")
        return n
    keep = step.get("keep")
    frac = float(keep[rel] if isinstance(keep, list) else keep)
    return kept(have, frac)


def _by_frequency(plan: Plan, step: Step, rel: int, current: list[int],
                  n_keep: int) -> list[int]:
    """The ``n_keep`` most-routed of ``current`` (ties: the lower id stays)."""
    layer = plan.first + rel
    shares = shares_for(plan.routing, layer, plan.moe[rel]["experts"], step.source, current)
    ranked = sorted(zip(current, shares), key=lambda es: (-es[1], es[0]))
    return sorted(e for e, _ in ranked[:n_keep])


# ---------------------------------------------------------------------------- graph
def prune_experts(g: Graph, plan: Plan) -> Graph:
    """Rewrite the ``moe_experts`` ops as the plan decided (see the module docstring)."""
    changed = {plan.first + rel: m for rel, m in plan.moe.items()
               if rel not in plan.dropped
               and (len(m["kept"]) < m["experts"] or m["active_k"] < m["top_k"])}
    if not changed:
        return g
    tensors = dict(g.tensors)
    next_id = max(tensors, default=-1) + 1
    ops: list[Op] = []
    for op in g.ops:
        m = changed.get(op.layer) if op.kind == "moe_experts" else None
        if m is None:
            ops.append(op)
            continue
        a = dict(op.attrs)
        inputs = list(op.inputs)
        old = list(a.get("kept") or range(a["experts"]))
        if m["kept"] != old:
            rows = [old.index(e) for e in m["kept"]]
            for pos in (3, 4):  # w_in, w_out: [experts, ...] -> [kept, ...]
                t = tensors[inputs[pos]]
                tensors[next_id] = replace(t, id=next_id, shape=(len(rows), *t.shape[1:]))
                inputs[pos] = next_id
                next_id += 1
            a["experts"] = len(m["kept"])
            a["kept"] = list(m["kept"])
        if m["active_k"] < a["top_k"]:
            a["active_k"] = m["active_k"]
        ops.append(replace(op, inputs=tuple(inputs), attrs=a))
    used = {i for op in ops for i in (*op.inputs, *op.outputs)}
    gone = {i for op in g.ops for i in op.inputs if i not in used}
    return Graph(g.header, [t for tid, t in tensors.items() if tid not in gone], ops)
