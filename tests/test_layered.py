"""Per-layer instantiation of templates: the mechanism under token, KV and layer pruning."""

import pytest

from hwsim.ir import Graph, fit_template
from hwsim.ir.layered import instantiate_layers

D, F = 8, 16


def toy(batch: int, seq_len: int, kv_len: int = 0, layers: int = 3) -> Graph:
    """A stack of residual blocks over (batch*seq, D) rows, then a head."""
    g = Graph({"name": "toy", "phase": "prefill", "batch": batch, "seq_len": seq_len,
               "kv_len": kv_len})
    rows = batch * seq_len
    x = g.add_tensor([batch, seq_len, D], "fp16", "input")
    for layer in range(layers):
        w1 = g.add_tensor([D, F], "fp16", "param")
        w2 = g.add_tensor([F, D], "fp16", "param")
        h = g.add_tensor([batch, seq_len, F], "fp16")
        g.add_op("matmul", [x, w1], [h], dict(batch=1, m=rows, n=F, k=D), layer=layer)
        q = g.add_tensor([batch, 1, seq_len, F], "fp16")
        g.add_op("attention", [h, h, h], [q], dict(batch=batch, heads=1, kv_heads=1,
                 head_dim=F, q_len=seq_len, kv_len=seq_len + kv_len, causal=True), layer=layer)
        y = g.add_tensor([batch, seq_len, D], "fp16")
        g.add_op("matmul", [q, w2], [y], dict(batch=1, m=rows, n=D, k=F), layer=layer)
        x2 = g.add_tensor([batch, seq_len, D], "fp16")
        g.add_op("elementwise", [y, x], [x2], dict(fn="add", elements=rows * D), layer=layer)
        x = x2
    wh = g.add_tensor([D, 5], "fp16", "param")
    logits = g.add_tensor([batch, seq_len, 5], "fp16")
    g.add_op("matmul", [x, wh], [logits], dict(batch=1, m=rows, n=5, k=D), module="head")
    return g


@pytest.fixture(scope="module")
def template():
    points = [dict(batch=b, seq_len=s, kv_len=0) for b in (1, 2) for s in (5, 9)]
    return fit_template([toy(**p) for p in points], points)


def test_uniform_sizes_equal_plain_instantiation(template):
    a = instantiate_layers(template, dict(batch=2, seq_len=12))
    b = template.instantiate(batch=2, seq_len=12)
    assert [op.line(a) for op in a.ops] == [op.line(b) for op in b.ops]


def test_pruned_layers_run_on_fewer_tokens_after_one_gather(template):
    g = instantiate_layers(template, dict(batch=1, seq_len=12), {1: dict(seq_len=6),
                                                                 2: dict(seq_len=6)})
    assert g.verify() == []
    gathers = [op for op in g.ops if op.kind == "gather"]
    assert len(gathers) == 1  # the residual stream enters layer 1 through one token selection
    (sel,) = gathers
    assert sel.layer == 1 and sel.attrs["elements"] == 6 * D
    assert g.tensors[sel.inputs[0]].shape == (1, 12, D)
    att = [op.attrs["q_len"] for op in g.ops if op.kind == "attention"]
    assert att == [12, 6, 6]
    # the head after the last layer runs on the surviving tokens
    assert g.ops[-1].attrs["m"] == 6
    full = instantiate_layers(template, dict(batch=1, seq_len=12))
    assert g.flops() < full.flops()


def test_cascade_inserts_a_selection_at_each_shrink(template):
    g = instantiate_layers(template, dict(batch=1, seq_len=12),
                           {1: dict(seq_len=8), 2: dict(seq_len=4)})
    assert [op.attrs["elements"] for op in g.ops if op.kind == "gather"] == [8 * D, 4 * D]
    assert g.verify() == []


def test_dropping_a_layer_rewires_the_residual_stream(template):
    g = instantiate_layers(template, dict(batch=1, seq_len=7), drop_layers=[1])
    assert g.verify() == []
    assert sorted({op.layer for op in g.ops if op.layer is not None}) == [0, 2]
    full = instantiate_layers(template, dict(batch=1, seq_len=7))
    per_layer = (full.flops() - full.op_flops(full.ops[-1])) / 3
    assert full.flops() - g.flops() == pytest.approx(per_layer)
    # layer 2 reads what layer 0 wrote
    l0_out = [op for op in g.ops if op.layer == 0][-1].outputs[0]
    assert l0_out in [op for op in g.ops if op.layer == 2][0].inputs
