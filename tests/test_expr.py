"""Size expressions and templates: parse/print, evaluate, fit, fit_template."""

from __future__ import annotations

import pytest
from conftest import GRID, tiny_graph, tiny_template
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.ir import Expr, Graph, fit, fit_template, to_dict
from hwsim.ir.expr import evaluate, simplify
from hwsim.ir.template import TemplateMismatch

GRID_2X2 = [{"batch": b, "seq_len": s} for b in (1, 2) for s in (128, 512)]
BS = ("batch", "seq_len")


# ---------------------------------------------------------------- parse / print
@pytest.mark.parametrize("text", [
    "4096",
    "seq_len",
    "batch*seq_len",
    "kv_len + seq_len",
    "2*batch*seq_len + 4096",
    "4096*batch*seq_len + 7",
    "-kv_len",
    "batch*seq_len - 3*kv_len - 1",
    "batch*kv_len*seq_len + 2*batch",
])
def test_print_parse_round_trip(text):
    e = Expr.parse(text)
    assert str(e) == text
    assert Expr.parse(str(e)) == e


def test_parse_normalises_order_spacing_and_like_terms():
    e = Expr.parse("7 + seq_len*batch*4096")
    assert str(e) == "4096*batch*seq_len + 7"
    assert str(Expr.parse("seq_len + kv_len")) == "kv_len + seq_len"  # variables sorted
    assert Expr.parse("seq_len+seq_len") == Expr.parse("2*seq_len")
    assert Expr.parse("2*3*seq_len") == Expr.parse("6*seq_len")
    assert str(Expr.parse("seq_len - seq_len")) == "0"
    assert hash(Expr.parse("batch*seq_len")) == hash(Expr.parse("seq_len * batch"))


@pytest.mark.parametrize("text", ["", "seq_len*seq_len", "2**seq_len", "tokens", "batch+",
                                  "seq_len/2", "batch--seq_len", "1.5*batch"])
def test_parse_rejects(text):
    with pytest.raises(ValueError):
        Expr.parse(text)


def test_var_rejects_unknown_names():
    assert Expr.var("kv_len") == Expr.parse("kv_len")
    with pytest.raises(ValueError, match="unknown size variable"):
        Expr.var("tokens")


def test_evaluate():
    e = Expr.parse("4096*batch*seq_len + 7")
    assert e.evaluate({"batch": 2, "seq_len": 100, "kv_len": 0}) == 4096 * 200 + 7
    assert Expr.parse("seq_len + kv_len").evaluate({"seq_len": 1, "kv_len": 4095}) == 4096
    assert evaluate(64, {"batch": 9}) == 64
    assert e.variables == {"batch", "seq_len"}
    assert simplify(Expr.parse("5")) == 5
    assert simplify(Expr.parse("0")) == 0


# ---------------------------------------------------------------- fit
def _values(expr: str, points):
    e = Expr.parse(expr)
    return [e.evaluate(p) for p in points]


@pytest.mark.parametrize("expr", ["4096*batch*seq_len + 7", "batch*seq_len", "seq_len",
                                  "3*batch - seq_len + 11", "-2*batch*seq_len + seq_len"])
def test_fit_2x2_grid_recovers(expr):
    got = fit(GRID_2X2, _values(expr, GRID_2X2), BS)
    assert got == Expr.parse(expr)


def test_fit_decode_grid_in_seq_and_kv():
    points = [{"seq_len": s, "kv_len": k} for s in (1, 3) for k in (100, 400)]
    got = fit(points, _values("seq_len + kv_len", points), ("seq_len", "kv_len"))
    assert got == Expr.parse("seq_len + kv_len")


def test_fit_constant_is_a_plain_int():
    got = fit(GRID_2X2, [4096] * 4, BS)
    assert got == 4096 and isinstance(got, int)


def test_fit_raises_for_non_integer_coefficients():
    # seq_len // 2 at seq_len = 3, 8 is 1, 4: slope 3/5 is no integer polynomial
    points = [{"batch": b, "seq_len": s} for b in (1, 2) for s in (3, 8)]
    with pytest.raises(ValueError, match="not an integer multilinear polynomial"):
        fit(points, [p["seq_len"] // 2 for p in points], BS)


def test_fit_raises_for_inconsistent_overdetermined_data():
    # seq_len**2 is no multilinear polynomial: three points on one line disagree
    points = [{"seq_len": s} for s in (2, 3, 5)]
    with pytest.raises(ValueError):
        fit(points, [4, 9, 25], ("seq_len",))


def test_fit_raises_when_points_do_not_determine_it():
    points = [{"batch": 1, "seq_len": s} for s in (2, 3, 5, 7)]  # batch never varies
    with pytest.raises(ValueError):
        fit(points, [s * 3 for s in (2, 3, 5, 7)], BS)


coef = st.integers(min_value=-10**6, max_value=10**6)
size = st.integers(min_value=1, max_value=5000)


@settings(max_examples=200, deadline=None)
@given(c0=coef, cb=coef, cs=coef, cbs=coef,
       b=st.lists(size, min_size=2, max_size=2, unique=True),
       s=st.lists(size, min_size=2, max_size=2, unique=True),
       fifth=st.tuples(size, size))
def test_fit_recovers_random_multilinear_polynomials(c0, cb, cs, cbs, b, s, fifth):
    poly = Expr({(): c0, ("batch",): cb, ("seq_len",): cs, ("batch", "seq_len"): cbs})
    grid = [{"batch": bi, "seq_len": si} for bi in b for si in s]
    got = fit(grid, [poly.evaluate(p) for p in grid], BS)
    assert got == simplify(poly)
    at = {"batch": fifth[0], "seq_len": fifth[1]}
    assert evaluate(got, at) == poly.evaluate(at)


@settings(max_examples=100, deadline=None)
@given(c=st.dictionaries(st.sampled_from([(), ("batch",), ("seq_len",), ("batch", "seq_len")]),
                         coef, max_size=4))
def test_random_polynomials_print_and_parse_back(c):
    e = Expr(c)
    assert Expr.parse(str(e)) == e


# ---------------------------------------------------------------- fit_template
def test_fit_template_is_exact_at_an_unseen_size():
    tmpl = tiny_template()
    assert tmpl.is_template
    assert tmpl.header["template"]["variables"] == ["batch", "seq_len"]
    for b, s in [(3, 37), (1, 2), (5, 4096)]:
        got = tmpl.instantiate(batch=b, seq_len=s)
        assert not got.is_template
        assert to_dict(got) == to_dict(tiny_graph(b, s))
        assert got.flops() == tiny_graph(b, s).flops()


def test_fit_template_finds_the_products():
    tmpl = tiny_template()
    by_module = {op.module: op for op in tmpl.ops}
    q = by_module["model.layers.0.self_attn.q_proj"]
    assert q.attrs == {"batch": 1, "m": Expr.parse("batch*seq_len"), "n": 64, "k": 64}
    att = by_module["model.layers.1.self_attn.attn"]
    assert att.attrs["q_len"] == Expr.var("seq_len")
    assert att.attrs["batch"] == Expr.var("batch")
    assert att.attrs["causal"] is True


def test_fit_template_single_variable_grid():
    points = [{"batch": 1, "seq_len": s, "kv_len": 0} for s in (8, 16)]
    tmpl = fit_template([tiny_graph(1, 8), tiny_graph(1, 16)], points)
    assert tmpl.header["template"]["variables"] == ["seq_len"]
    assert to_dict(tmpl.instantiate(batch=1, seq_len=100)) == to_dict(tiny_graph(1, 100))


def test_fit_template_structural_mismatch_op_count():
    graphs = [tiny_graph(p["batch"], p["seq_len"]) for p in GRID]
    graphs[2] = tiny_graph(2, 8, layers=3)
    with pytest.raises(TemplateMismatch, match="traces differ in size"):
        fit_template(graphs, GRID)


def test_fit_template_structural_mismatch_kind():
    graphs = [tiny_graph(p["batch"], p["seq_len"]) for p in GRID]
    g = graphs[1]
    op = g.ops[10]
    g.ops[10] = type(op)(op.id, op.kind, op.inputs, op.outputs, {**op.attrs, "fn": "mul"},
                         op.layer, op.module, op.name)
    with pytest.raises(TemplateMismatch, match="op 10 .* attr fn"):
        fit_template(graphs, GRID)
    graphs = [tiny_graph(p["batch"], p["seq_len"]) for p in GRID]
    op = graphs[3].ops[5]
    graphs[3].ops[5] = type(op)(op.id, "rope", op.inputs, op.outputs, {}, op.layer, op.module)
    with pytest.raises(TemplateMismatch, match="op 5 differs"):
        fit_template(graphs, GRID)


def test_fit_template_dtype_mismatch():
    graphs = [tiny_graph(p["batch"], p["seq_len"]) for p in GRID]
    t = graphs[1].tensors[2]
    graphs[1].tensors[2] = type(t)(t.id, t.shape, "bf16", t.kind)
    with pytest.raises(TemplateMismatch, match="tensor t2 differs"):
        fit_template(graphs, GRID)


def test_fit_template_non_polynomial_dimension():
    def g(seq):
        out = Graph({"name": "x", "phase": "prefill"})
        a = out.add_tensor([seq * seq], "fp16", "input")  # not multilinear
        y = out.add_tensor([seq * seq], "fp16")
        out.add_op("elementwise", [a], [y], {"fn": "exp", "elements": seq * seq})
        return out

    points = [{"batch": 1, "seq_len": s, "kv_len": 0} for s in (2, 3, 5)]
    with pytest.raises(TemplateMismatch, match="tensor t0 dim 0"):
        fit_template([g(2), g(3), g(5)], points)


def test_fit_template_needs_one_point_per_graph():
    with pytest.raises(ValueError):
        fit_template([tiny_graph(1, 8)], GRID)
