"""The op signature (``hwsim.simulate._signature``, the cost cache's key), the
pricer's kept keys (``_Pricer.priced``) and the pruning plan's deep copy
(``hwsim.pruning.plan._copy``) against their plain definitions: the faster forms
must give the same values."""

import importlib

from hwsim.pruning.plan import _copy

# (the module, not the function hwsim.simulate re-exports under the same name)
sim = importlib.import_module("hwsim.simulate")


def _plain_signature(op, graph):
    """Kind, attributes sorted as (name, text) pairs, tensor shapes and types."""
    t = graph.tensors
    return (op.kind, tuple(sorted((k, str(v)) for k, v in op.attrs.items())),
            tuple((t[i].shape, t[i].dtype, t[i].kind) for i in op.inputs),
            tuple((t[o].shape, t[o].dtype, t[o].kind) for o in op.outputs))


def test_signature_equals_its_plain_definition_on_a_pruned_llm():
    wl, _ = sim.load_with_sets("workloads/bert-base-spatten.yaml", [])
    pruned, dense = sim.prepare(wl)
    ops = [*pruned.ops, *dense.ops]
    assert len({len(op.attrs) for op in ops}) > 2  # ops with several attributes
    for graph in (pruned, dense):
        for op in graph.ops:
            assert sim._signature(op, graph) == _plain_signature(op, graph)
    # ops that differ in one attribute's value differ in their signatures
    keys = {sim._signature(op, pruned) for op in pruned.ops}
    assert len(keys) > 1


def test_a_priced_op_gets_the_kept_key_and_its_cost():
    wl, _ = sim.load_with_sets("workloads/bert-base-spatten.yaml", [])
    pruned, _dense = sim.prepare(wl)
    resolved = sim.resolve_target("roofline", wl, {})
    memo: dict = {}
    price = sim._Pricer(resolved, wl.tiling, "analytical", memo)
    kept = {}
    for op in pruned.ops:
        key, cost = price(op, pruned)
        plain = _plain_signature(op, pruned)
        assert key == plain and cost is price.cache[plain]
        kept.setdefault(plain, key)
        assert key is kept[plain]  # equal ops: the key kept when the first was priced
    assert len(kept) < len(pruned.ops)  # (some ops priced before)
    stored = {id(k) for k in price.cache}
    assert {id(k) for k in kept.values()} == stored
    assert all(price.timelines[k] == [] and k in price.floors for k in kept.values())
    # a second pricer over the same memo (a generation's next step) finds them all
    again = sim._Pricer(resolved, wl.tiling, "analytical", memo)
    for op in pruned.ops:
        key, cost = again(op, pruned)
        assert key is kept[key] and cost is price.cache[key]
    assert len(price.cache) == len(kept)


def _plain_copy(value):
    if isinstance(value, dict):
        return {k: _plain_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_copy(v) for v in value]
    return value


def _containers(value, out):
    if isinstance(value, (dict, list, tuple)):
        out.append(value)
        for v in (value.values() if isinstance(value, dict) else value):
            _containers(v, out)
    return out


def test_plan_copy_is_the_plain_deep_copy():
    data = {"a": [1, 2.5, None, "x", (3, [4, {"b": (5,)}])], "c": {"d": [], "e": {}},
            "f": ((), [[1], [2]]), "g": 7}
    got = _copy(data)
    assert got == _plain_copy(data)
    assert type(got["f"]) is list and type(got["a"][4]) is list  # tuples become lists
    # no container shared with the original: a change to the copy leaves it as it was
    old = {id(c) for c in _containers(data, [])}
    assert not old & {id(c) for c in _containers(got, [])}
    got["a"][4][1][0] = 99
    assert data["a"][4][1][0] == 4
