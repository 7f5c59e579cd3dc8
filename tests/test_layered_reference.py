"""instantiate_layers against a plain reference on the shipped templates.

:func:`hwsim.ir.layered.instantiate_layers` keeps a table of the sizes evaluated in
each layer and reuses the template's tensors that have no size to evaluate (the
speed work of issue 14). The reference below is the same rule written without any of
that: every dimension and attribute evaluated where it is read, every tensor built
anew. The two must give equal graphs (the same tensors in the same order, the same
ops with the same attributes in the same order) on the shipped templates, with sizes
that differ per layer, dropped layers and one-row views.
"""

import pytest

from hwsim import zoo
from hwsim.ir import Graph, Op, Tensor
from hwsim.ir.expr import evaluate
from hwsim.ir.graph import ONE_ROW_VIEW
from hwsim.ir.layered import _cap_keys, _drop_aliases, instantiate_layers


def reference(template: Graph, base: dict, per_layer: dict, drop_layers=(),
              method: str = "") -> Graph:
    """The rule of :func:`instantiate_layers` (its module docstring), evaluated plainly."""
    ops = list(template.ops)
    full = {"batch": 1, "seq_len": 1, "kv_len": 0, **base}
    env_of = [full] * len(ops)
    current = full
    for i, op in enumerate(ops):
        if op.layer is not None:
            current = {**full, **per_layer.get(op.layer, {})}
        env_of[i] = current
    producer, first_reader = {}, {}
    for i, op in enumerate(ops):
        producer.update({o: i for o in op.outputs})
        for t in op.inputs:
            first_reader.setdefault(t, i)
    alias = _drop_aliases(template, ops, set(drop_layers), producer)

    def shape(t: Tensor, env: dict) -> tuple:
        return tuple(evaluate(d, env) for d in t.shape)

    out = Graph(dict(template.header))
    for tid, t in template.tensors.items():
        env = env_of[producer[tid]] if tid in producer else env_of[first_reader.get(tid, 0)]
        out.tensors[tid] = Tensor(tid, shape(t, env), t.dtype, t.kind)
    next_id = max(template.tensors) + 1
    selected = {}
    skipped = False
    for i, op in enumerate(ops):
        if op.layer in drop_layers:
            continue
        env = env_of[i]
        if op.attrs.get(ONE_ROW_VIEW) and env["seq_len"] == 1:
            alias[op.outputs[0]] = alias.get(op.inputs[0], op.inputs[0])
            skipped = True
            continue
        ins = []
        for tid in op.inputs:
            tid = alias.get(tid, tid)
            s = shape(template.tensors[tid], env)
            if s != out.tensors[tid].shape and (tid, s) not in selected:
                t = template.tensors[tid]
                out.tensors[next_id] = Tensor(next_id, s, t.dtype, t.kind)
                attrs = {"elements": out.tensors[next_id].numel}
                if method:
                    attrs["pruning"] = method
                out.ops.append(Op(len(out.ops), "gather", (tid,), (next_id,), attrs, op.layer,
                                  op.module, "token_select"))
                selected[(tid, s)] = next_id
                next_id += 1
            ins.append(tid if s == out.tensors[tid].shape else selected[(tid, s)])
        attrs = {k: evaluate(v, env) for k, v in op.attrs.items() if k != ONE_ROW_VIEW}
        if op.kind == "attention":
            _cap_keys(attrs)
        out.ops.append(Op(len(out.ops), op.kind, tuple(ins), op.outputs, attrs, op.layer,
                          op.module, op.name, op.repeat))
    if drop_layers or skipped:
        used = {t for op in out.ops for t in op.inputs + op.outputs}
        out.tensors = {tid: t for tid, t in out.tensors.items() if tid in used}
    out.header.update(batch=full["batch"], seq_len=full["seq_len"], kv_len=full["kv_len"])
    out.header.pop("template", None)
    return out


def assert_same(a: Graph, b: Graph) -> None:
    assert a.header == b.header
    assert list(a.tensors.items()) == list(b.tensors.items())
    assert a.ops == b.ops
    assert [list(op.attrs.items()) for op in a.ops] == [list(op.attrs.items()) for op in b.ops]


CASES = [
    # (model, phase, base sizes, a layer's sizes from its index, dropped layers)
    ("llama-2-7b", "prefill", {"seq_len": 4096},
     lambda i: {"seq_len": 4096 - 41 * i}, ()),
    ("llama-2-7b", "prefill", {"batch": 2, "seq_len": 1000},
     lambda i: {"seq_len": 1000 - 30 * (i // 4)}, (3, 17)),
    ("llama-2-7b", "decode", {"seq_len": 1, "kv_len": 4096},
     lambda i: {"kv_len": 4096 - 100 * i}, (5,)),
    ("llama-3.1-8b", "extend", {"seq_len": 16, "kv_len": 2048},
     lambda i: {"seq_len": 1 + i % 3, "kv_len": 2048 - 7 * i}, ()),
    ("gpt2", "prefill", {"seq_len": 512}, lambda i: {"seq_len": 512 - 20 * i}, (11,)),
    ("bert-base", "prefill", {"batch": 4, "seq_len": 128},
     lambda i: {"seq_len": 128 - 8 * i} if i % 2 else {}, ()),
]


@pytest.mark.parametrize("model,phase,base,sizes,drop", CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_instantiate_layers_equals_the_reference(model, phase, base, sizes, drop):
    tmpl = zoo.template(model, phase)
    per_layer = {i: sizes(i) for i in range(tmpl.num_layers)}
    for method in ("", "spatten"):
        got = instantiate_layers(tmpl, base, per_layer, drop, method=method)
        assert_same(got, reference(tmpl, base, per_layer, drop, method=method))
        assert got.verify() == []
    # twice on the same template (its table of sized tensors kept): the same graph
    assert_same(instantiate_layers(tmpl, base, per_layer, drop),
                reference(tmpl, base, per_layer, drop))
    if phase == "extend":  # a layer at one row drops the template's one-row views
        assert any(ONE_ROW_VIEW in op.attrs for op in tmpl.ops)
        views = [op for op in tmpl.ops if op.attrs.get(ONE_ROW_VIEW)]
        got = instantiate_layers(tmpl, base, per_layer, drop)
        assert views and all((op.outputs[0] in got.tensors) == (sizes(op.layer)["seq_len"] > 1)
                             for op in views)
