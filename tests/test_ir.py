"""The operation graph: verification, printing, serialization, FLOP and byte counts."""

from __future__ import annotations

import gzip
import json

import pytest
from conftest import tiny_graph, tiny_template

from hwsim.errors import InputError
from hwsim.ir import (
    SCHEMA,
    Expr,
    Graph,
    Op,
    Tensor,
    dtype_bits,
    flops,
    from_dict,
    load,
    nbytes,
    read_bytes,
    save,
    to_dict,
    write_bytes,
)


def unary(kind="elementwise", n=4, attrs=None, dtype="fp16"):
    """A graph with one op reading an input of n elements and writing n elements."""
    g = Graph({"name": "u"})
    a = g.add_tensor([n], dtype, "input")
    y = g.add_tensor([n], dtype)
    g.add_op(kind, [a], [y], attrs if attrs is not None else {"fn": "exp", "elements": n})
    return g


def matmul_graph(b=1, m=4, n=3, k=2, a_shape=None, b_shape=None, out_shape=None,
                 dtype="fp16"):
    g = Graph()
    ta = g.add_tensor(a_shape or [b, m, k], dtype, "input")
    tb = g.add_tensor(b_shape or [k, n], dtype, "param")
    ty = g.add_tensor(out_shape or [b, m, n], dtype)
    g.add_op("matmul", [ta, tb], [ty], {"batch": b, "m": m, "n": n, "k": k})
    return g


def attention_graph(b=1, h=4, hk=2, d=8, q=5, kv=7, dv=None, q_shape=None):
    g = Graph()
    dv = dv or d
    tq = g.add_tensor(q_shape or [b, h, q, d], "fp16", "input")
    tk = g.add_tensor([b, hk, kv, d], "fp16", "kv_cache")
    tv = g.add_tensor([b, hk, kv, dv], "fp16", "kv_cache")
    to = g.add_tensor([b, h, q, dv], "fp16")
    attrs = {"batch": b, "heads": h, "kv_heads": hk, "head_dim": d, "q_len": q,
             "kv_len": kv, "causal": True}
    if dv != d:
        attrs["v_head_dim"] = dv
    g.add_op("attention", [tq, tk, tv], [to], attrs)
    return g


def only(problems, *needles):
    """The single problem reported, checked to mention each needle."""
    assert len(problems) == 1, problems
    for needle in needles:
        assert needle in problems[0], problems[0]
    return problems[0]


# ---------------------------------------------------------------- verify
def test_valid_graphs_verify_clean():
    assert tiny_graph(2, 8).verify() == []
    assert matmul_graph().verify() == []
    assert attention_graph().verify() == []
    assert unary().verify() == []


def test_valid_template_verifies_at_a_sample_size():
    tmpl = tiny_template()
    assert tmpl.is_template
    assert tmpl.verify() == []


def test_use_before_def():
    g = Graph()
    a = g.add_tensor([4], "fp16", "input")
    b = g.add_tensor([4], "fp16")
    c = g.add_tensor([4], "fp16")
    g.add_op("elementwise", [b], [c], {"fn": "exp", "elements": 4})  # reads t1 too early
    g.add_op("elementwise", [a], [b], {"fn": "exp", "elements": 4})
    p = only(g.verify(), "input t1 is used before it is written")
    assert p.startswith("%0 "), "each problem starts with the op's line"


def test_input_not_in_tensor_table():
    g = unary()
    g.ops[0] = Op(0, "elementwise", (9,), (1,), {"fn": "exp", "elements": 4})
    only(g.verify(), "input t9 is not in the tensor table")


def test_output_written_twice():
    g = unary()
    g.add_op("elementwise", [0], [1], {"fn": "exp", "elements": 4})
    p = only(g.verify(), "output t1 is written twice")
    assert p.startswith("%1 ")


def test_op_ids_out_of_order():
    g = unary()
    g.ops[0] = Op(5, "elementwise", (0,), (1,), {"fn": "exp", "elements": 4})
    only(g.verify(), "id 5 out of order (expected 0)")


def test_unknown_kind():
    g = unary(kind="conv2d", attrs={})
    only(g.verify(), "unknown op kind 'conv2d'")


def test_missing_and_unexpected_attributes():
    g = matmul_graph()
    g.ops[0] = Op(0, "matmul", (0, 1), (2,), {"batch": 1, "m": 4, "n": 3})
    only(g.verify(), "missing attribute 'k'")
    g.ops[0] = Op(0, "matmul", (0, 1), (2,), {"batch": 1, "m": 4, "n": 3, "k": 2, "kk": 2})
    only(g.verify(), "unexpected attribute 'kk'")


def test_attribute_must_be_a_nonnegative_integer():
    g = unary(attrs={"fn": "exp", "elements": -4})
    only(g.verify(), "elements=-4 must be a non-negative integer")


def test_unknown_elementwise_fn():
    only(unary(attrs={"fn": "frobnicate", "elements": 4}).verify(), "unknown elementwise fn")


def test_unknown_dtype():
    g = unary(dtype="fp13")
    problems = g.verify()
    assert problems == ["tensor t0: unknown dtype 'fp13'", "tensor t1: unknown dtype 'fp13'"]


def test_unknown_tensor_kind():
    g = Graph(tensors=[Tensor(0, (4,), "fp16", "weights"), Tensor(1, (4,), "fp16")])
    g.add_op("elementwise", [0], [1], {"fn": "exp", "elements": 4})
    only(g.verify(), "tensor t0: kind 'weights'")


def test_matmul_element_counts():
    # A may be batched or shared: [b,m,k] or [m,k]; B likewise
    assert matmul_graph(b=3, a_shape=[4, 2]).verify() == []
    assert matmul_graph(b=3, b_shape=[3, 2, 3]).verify() == []
    only(matmul_graph(a_shape=[4, 5]).verify(), "input A has 20 elements, expected 8")
    only(matmul_graph(b_shape=[2, 4]).verify(), "input B has 8 elements, expected 6")
    only(matmul_graph(out_shape=[4, 4]).verify(), "output has 16 elements, expected 12")


def test_attention_element_counts():
    assert attention_graph(dv=4).verify() == []
    only(attention_graph(q_shape=[1, 4, 5, 4]).verify(),
         "query has 80 elements, expected 160")
    only(attention_graph(h=4, hk=3).verify(), "heads=4 is not a multiple of kv_heads=3")
    g = attention_graph(h=4, hk=2)
    op = g.ops[0]
    g.ops[0] = Op(0, "attention", op.inputs, op.outputs, {**op.attrs, "kv_len": 9})
    problems = g.verify()
    assert len(problems) == 2
    assert "key has 112 elements, expected 144" in problems[0]
    assert "value has 112 elements, expected 144" in problems[1]


def test_softmax_element_counts():
    g = unary("softmax", n=12, attrs={"rows": 3, "cols": 4})
    assert g.verify() == []
    g = unary("softmax", n=12, attrs={"rows": 3, "cols": 5})
    problems = g.verify()
    assert len(problems) == 2
    assert "input has 12 elements, expected 15" in problems[0]
    assert "output has 12 elements, expected 15" in problems[1]


def test_topk_element_counts_and_k_at_most_n():
    g = Graph()
    x = g.add_tensor([2, 10], "fp16", "input")
    v = g.add_tensor([2, 3], "fp16")
    i = g.add_tensor([2, 3], "int64")
    g.add_op("topk", [x], [v, i], {"rows": 2, "n": 10, "k": 3})
    assert g.verify() == []
    g.ops[0] = Op(0, "topk", (x,), (v, i), {"rows": 2, "n": 10, "k": 4})
    only(g.verify(), "output has 6 elements, expected 8")
    g2 = Graph()
    x = g2.add_tensor([2, 3], "fp16", "input")
    v = g2.add_tensor([2, 4], "fp16")
    g2.add_op("topk", [x], [v], {"rows": 2, "n": 3, "k": 4})
    only(g2.verify(), "k=4 exceeds n=3")


def test_concat_element_counts():
    g = Graph()
    a = g.add_tensor([3], "fp16", "input")
    b = g.add_tensor([5], "fp16", "input")
    y = g.add_tensor([8], "fp16")
    g.add_op("concat", [a, b], [y], {"elements": 8})
    assert g.verify() == []
    g.ops[0] = Op(0, "concat", (a, a), (y,), {"elements": 8})
    only(g.verify(), "inputs together has 6 elements, expected 8")


def test_wrong_number_of_inputs_is_a_problem_not_a_crash():
    g = Graph()
    a = g.add_tensor([4, 2], "fp16", "input")
    y = g.add_tensor([4, 3], "fp16")
    g.add_op("matmul", [a], [y], {"batch": 1, "m": 4, "n": 3, "k": 2})
    only(g.verify(), "wrong number of inputs/outputs for matmul")


# ---------------------------------------------------------------- printer
def test_printer_one_line_per_op_exact_format():
    g = Graph({"name": "mm"})
    a = g.add_tensor([1, 2048, 4096], "fp16", "input")
    w = g.add_tensor([4096, 4096], "fp16", "param")
    y = g.add_tensor([1, 2048, 4096], "fp16")
    g.add_op("matmul", [a, w], [y], {"batch": 1, "m": 2048, "n": 4096, "k": 4096}, layer=3,
             module="model.layers.3.self_attn.q_proj")
    v = g.add_tensor([1, 2048, 32, 128], "fp16")
    g.add_op("view", [y], [v])
    assert str(g) == (
        "# graph mm  (2 ops, 4 tensors)\n"
        "%0    matmul      L3   model.layers.3.self_attn.q_proj  "
        "(t0 fp16[1,2048,4096], t1 fp16[4096,4096]) -> t2 fp16[1,2048,4096]  "
        "batch=1 m=2048 n=4096 k=4096\n"
        "%1    view        L-   -  (t2 fp16[1,2048,4096]) -> t3 fp16[1,2048,32,128]")
    # without a graph, tensors print by id only
    assert g.ops[1].line() == "%1    view        L-   -  (t2) -> t3"


def test_printer_limit_and_template_sizes():
    tmpl = tiny_template()
    text = tmpl.format(limit=3)
    lines = text.splitlines()
    assert len(lines) == 1 + 3 + 1
    assert lines[-1] == f"... {len(tmpl.ops) - 3} more ops"
    assert "t0 int64[batch,seq_len]" in lines[1]
    assert "tokens=batch*seq_len dim=64" in lines[1]
    assert len(str(tiny_graph()).splitlines()) == 1 + len(tiny_graph().ops)


# ---------------------------------------------------------------- serialize
@pytest.mark.parametrize("name", ["g.json.gz", "g.json"])
def test_save_load_round_trip(tmp_path, name):
    g = tiny_graph(2, 8)
    path = tmp_path / "sub" / name
    save(g, path)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == name.endswith(".gz")
    assert not (tmp_path / "sub" / (name + ".tmp")).exists()
    back = load(path)
    assert to_dict(back) == to_dict(g)
    assert [op.line(back) for op in back.ops] == [op.line(g) for op in g.ops]
    assert back.flops() == g.flops()


def test_template_round_trip_keeps_exprs(tmp_path):
    tmpl = tiny_template()
    save(tmpl, tmp_path / "t.json.gz")
    back = load(tmp_path / "t.json.gz")
    assert back.is_template
    assert to_dict(back) == to_dict(tmpl)
    assert back.ops[0].attrs["tokens"] == Expr.parse("batch*seq_len")
    assert back.tensors[0].shape == (Expr.var("batch"), Expr.var("seq_len"))
    assert back.header["segments"]["rest"] == [2, Expr.var("seq_len")]
    with gzip.open(tmp_path / "t.json.gz", "rt") as f:
        data = json.load(f)
    assert data["schema"] == SCHEMA == "hwsim.graph/1"
    assert data["ops"][0]["attrs"]["tokens"] == {"$expr": "batch*seq_len"}
    assert to_dict(back.instantiate(batch=3, seq_len=11)) == to_dict(tiny_graph(3, 11))


def test_a_graph_file_decodes_sizes_at_any_depth_and_nothing_else():
    """from_dict parses {"$expr": text} wherever it sits in attributes and header (in
    lists, in mappings, in lists of mappings), and only a mapping whose one key is
    "$expr": one with another key beside it, its scalars, empty lists and mappings come
    back as read; op inputs and outputs are ints however the file spells them."""
    from hwsim.ir.serialize import from_dict

    e = {"$expr": "batch*seq_len"}
    data = {"schema": SCHEMA, "header": {"segments": {"all": [0, {"$expr": "seq_len"}]},
                                         "note": {"$expr": "x", "also": 1}},
            "tensors": {"id": [0, 1], "shape": [[e, 8], [8]], "dtype": ["fp16", "fp16"],
                        "kind": ["input", "activation"]},
            "ops": [{"id": 0, "kind": "view", "inputs": [0.0], "outputs": [True],
                     "attrs": {"tokens": e, "nested": [[e, 2], {"k": [e]}], "flag": False,
                               "empty": [], "map": {}, "text": "$expr",
                               "both": {"$expr": "seq_len", "n": 2}}}]}
    g = from_dict(data)
    a = g.ops[0].attrs
    x = Expr.parse("batch*seq_len")
    assert a["tokens"] == x and a["nested"] == [[x, 2], {"k": [x]}]
    assert a["flag"] is False and a["empty"] == [] and a["map"] == {} and a["text"] == "$expr"
    assert a["both"] == {"$expr": "seq_len", "n": 2}
    assert g.ops[0].inputs == (0,) and g.ops[0].outputs == (1,)
    assert type(g.ops[0].inputs[0]) is int and type(g.ops[0].outputs[0]) is int
    assert g.header["segments"]["all"] == [0, Expr.var("seq_len")]
    assert g.header["note"] == {"$expr": "x", "also": 1}
    assert g.tensors[0].shape == (x, 8)


def _write_gz(path, text: str):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(text)
    return path


def _good_dict():
    return to_dict(tiny_graph(1, 4))


MALFORMED = {
    "garbage_gz": lambda p: p.write_bytes(b"this is not gzip"),
    "gzip_of_bad_json": lambda p: _write_gz(p, "{not json"),
    "truncated_gzip": lambda p: p.write_bytes(gzip.compress(b'{"schema": 1}')[:-6]),
    "wrong_schema": lambda p: _write_gz(p, json.dumps({"schema": "hwsim.graph/9"})),
    "no_schema_list": lambda p: _write_gz(p, "[1, 2, 3]"),
    "missing_tensors": lambda p: _write_gz(p, json.dumps({"schema": SCHEMA, "ops": []})),
    "ragged_columns": lambda p: _write_gz(p, json.dumps(
        {"schema": SCHEMA, "tensors": {"id": [0, 1], "shape": [[1]], "dtype": ["fp16"],
                                       "kind": ["input"]}, "ops": []})),
    "bad_op_entry": lambda p: _write_gz(p, json.dumps({**_good_dict(), "ops": [5]})),
    "bad_expr": lambda p: _write_gz(p, json.dumps(
        {**_good_dict(), "tensors": {**_good_dict()["tensors"],
                                     "shape": [[{"$expr": "seq_len**2"}]] * 16}})),
    "non_string_expr": lambda p: _write_gz(p, json.dumps(
        {**_good_dict(), "tensors": {**_good_dict()["tensors"],
                                     "shape": [[{"$expr": 5}]] * 16}})),
    "header_not_mapping": lambda p: _write_gz(p, json.dumps({**_good_dict(), "header": [1]})),
    "attrs_not_mapping": lambda p: _write_gz(p, json.dumps(
        {**_good_dict(), "ops": [{**_good_dict()["ops"][0], "attrs": [1, 2]}]})),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_load_malformed_raises_input_error_naming_the_file(tmp_path, case):
    path = tmp_path / f"{case}.json.gz"
    MALFORMED[case](path)
    with pytest.raises(InputError) as info:
        load(path)
    assert str(path) in str(info.value)
    assert info.value.problems[0].source == str(path)


def test_load_plain_json_malformed_and_missing(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(InputError, match="not a readable graph file") as info:
        load(bad)
    assert str(bad) in str(info.value)
    missing = tmp_path / "nope.json.gz"
    with pytest.raises(InputError, match="trace file not found") as info:
        load(missing)
    assert str(missing) in str(info.value)


def test_wrong_schema_names_the_field(tmp_path):
    path = _write_gz(tmp_path / "w.json.gz", json.dumps({"schema": "other/1"}))
    with pytest.raises(InputError) as info:
        load(path)
    assert info.value.problems[0].field == "schema"
    assert "'other/1'" in str(info.value) and "'hwsim.graph/1'" in str(info.value)


def test_from_dict_rejects_non_mapping():
    with pytest.raises(InputError, match="expected a JSON object"):
        from_dict("hello", source="x.json")


# ---------------------------------------------------------------- FLOPs
def _op(kind, **attrs):
    return Op(0, kind, (), (), attrs)


@pytest.mark.parametrize("op, expected", [
    (_op("matmul", batch=3, m=5, n=7, k=11), 2 * 3 * 5 * 7 * 11),
    (_op("attention", batch=2, heads=32, kv_heads=8, head_dim=128, q_len=100, kv_len=300,
         causal=True), 2 * 2 * 32 * 100 * 300 * (128 + 128)),
    (_op("attention", batch=1, heads=4, kv_heads=4, head_dim=192, q_len=10, kv_len=20,
         causal=False, v_head_dim=128), 2 * 1 * 4 * 10 * 20 * (192 + 128)),
    (_op("softmax", rows=12, cols=34), 5 * 12 * 34),
    (_op("layernorm", rows=12, cols=34), 8 * 12 * 34),
    (_op("rmsnorm", rows=12, cols=34), 4 * 12 * 34),
    (_op("elementwise", fn="exp", elements=1000), 1000),
    (_op("elementwise", fn="gelu", elements=1000), 5000),
    (_op("elementwise", fn="silu", elements=1000), 2000),
    (_op("elementwise", fn="copy", elements=1000), 0),
    (_op("reduce", fn="sum", elements=1000, out_elements=10), 1000),
    (_op("embedding", tokens=10, dim=64), 0),
    (_op("rope", elements=1000), 3000),
    (_op("topk", rows=4, n=1024, k=128), 4 * 1024),
    (_op("gather", elements=99), 0),
    (_op("concat", elements=99), 0),
    (_op("kv_write", elements=99), 0),
    (_op("view"), 0),
])
def test_flops_per_kind(op, expected):
    assert flops(op) == expected


def test_causal_attention_counts_the_full_matrix():
    a = _op("attention", batch=1, heads=1, kv_heads=1, head_dim=64, q_len=8, kv_len=8,
            causal=True)
    b = _op("attention", batch=1, heads=1, kv_heads=1, head_dim=64, q_len=8, kv_len=8,
            causal=False)
    assert flops(a) == flops(b) == 2 * 8 * 8 * 128


def test_graph_flops_sum_and_by_kind():
    g = tiny_graph(1, 8)
    by_kind = g.flops_by_kind()
    assert sum(by_kind.values()) == g.flops()
    # two layers of q,k,v,o projections (8x64x64) plus the lm head (8x100x64)
    assert by_kind["matmul"] == 2 * 4 * 2 * 8 * 64 * 64 + 2 * 8 * 100 * 64
    assert by_kind["attention"] == 2 * 2 * 1 * 4 * 8 * 8 * (16 + 16)


# ---------------------------------------------------------------- bytes
def test_matmul_bytes_each_input_once_output_once():
    g = matmul_graph(b=2, m=4, n=3, k=5)
    op = g.ops[0]
    assert read_bytes(op, g) == 2 * (2 * 4 * 5 + 5 * 3)
    assert write_bytes(op, g) == 2 * (2 * 4 * 3)


def test_embedding_reads_only_gathered_rows():
    g = Graph()
    table = g.add_tensor([32000, 4096], "fp16", "param")
    ids = g.add_tensor([128], "int64", "input")
    out = g.add_tensor([128, 4096], "fp16")
    g.add_op("embedding", [table, ids], [out], {"tokens": 128, "dim": 4096})
    op = g.ops[0]
    assert read_bytes(op, g) == 128 * 4096 * 2 + 128 * 8  # rows + indices, not 250 MiB
    assert write_bytes(op, g) == 128 * 4096 * 2


def test_embedding_of_a_computed_table_reads_the_table():
    g = Graph()
    table = g.add_tensor([100, 8], "fp32", "input")
    ids = g.add_tensor([3], "int32", "input")
    out = g.add_tensor([3, 8], "fp32")
    g.add_op("embedding", [table, ids], [out], {"tokens": 3, "dim": 8})
    assert read_bytes(g.ops[0], g) == 100 * 8 * 4 + 3 * 4


def test_gather_reads_selected_rows_and_indices():
    g = Graph()
    src = g.add_tensor([10, 6], "fp16", "input")
    idx = g.add_tensor([4], "int64", "input")
    out = g.add_tensor([4, 6], "fp16")
    g.add_op("gather", [src, idx], [out], {"elements": 24})
    assert read_bytes(g.ops[0], g) == 24 * 2 + 4 * 8
    assert write_bytes(g.ops[0], g) == 24 * 2


def test_kv_write_moves_only_new_entries():
    g = Graph()
    new = g.add_tensor([1, 8, 1, 128], "fp16", "activation")
    cache = g.add_tensor([1, 8, 4097, 128], "fp16", "kv_cache")
    g.add_op("kv_write", [new], [cache], {"elements": 8 * 128})
    op = g.ops[0]
    assert g.verify() == []
    assert read_bytes(op, g) == 8 * 128 * 2
    assert write_bytes(op, g) == 8 * 128 * 2  # not the 8 MiB cache


def test_view_moves_nothing():
    g = Graph()
    a = g.add_tensor([64, 64], "fp32", "input")
    b = g.add_tensor([4096], "fp32")
    g.add_op("view", [a], [b])
    assert read_bytes(g.ops[0], g) == write_bytes(g.ops[0], g) == 0
    assert flops(g.ops[0]) == 0


def test_topk_writes_values_and_indices():
    g = Graph()
    x = g.add_tensor([2, 10], "fp16", "input")
    v = g.add_tensor([2, 3], "fp16")
    i = g.add_tensor([2, 3], "int64")
    g.add_op("topk", [x], [v, i], {"rows": 2, "n": 10, "k": 3})
    assert read_bytes(g.ops[0], g) == 20 * 2
    assert write_bytes(g.ops[0], g) == 6 * 2 + 6 * 8


# ---------------------------------------------------------------- dtypes
@pytest.mark.parametrize("dtype, bits", [
    ("fp64", 64), ("fp32", 32), ("tf32", 32), ("fp16", 16), ("bf16", 16), ("fp8", 8),
    ("int64", 64), ("int32", 32), ("int8", 8), ("uint8", 8), ("int4", 4), ("bool", 8),
    ("fix12", 12), ("fix6", 6), ("int2", 2), ("uint4", 4),
])
def test_dtype_bits(dtype, bits):
    assert dtype_bits(dtype) == bits


def test_sub_byte_sizes_round_up():
    assert nbytes(4, "int4") == 2
    assert nbytes(3, "int4") == 2
    assert nbytes(1, "int4") == 1
    assert nbytes(5, "fix12") == 8  # 60 bits
    assert nbytes(0, "int4") == 0
    assert Tensor(0, (3, 3), "int4").bytes == 5  # 36 bits
    assert Tensor(0, (2, 3), "bf16").bytes == 12
    assert Tensor(0, (), "fp32").bytes == 4  # a scalar


@pytest.mark.parametrize("dtype", ["fp13", "float16", "int", "fixed"])
def test_unknown_dtype_raises(dtype):
    with pytest.raises(ValueError, match="unknown dtype"):
        dtype_bits(dtype)


def test_replace_ops_numbers_ops_by_their_place():
    """replace_ops gives op i the id i whatever id it came with, every other field as
    it was; an op already at its place is taken as it is (the same frozen value), one
    that moved is a new op; the tensors are kept unless given, the header copied."""
    g = tiny_graph(1, 4)
    ops = list(g.ops)
    extra = Op(99, "view", (ops[0].outputs[0],), (ops[0].outputs[0],), {"note": "x"}, 0,
               "m", "extra")
    moved = [ops[0], extra, *ops[1:]]
    h = g.replace_ops(moved)
    assert [op.id for op in h.ops] == list(range(len(moved)))
    for new, old in zip(h.ops, moved):
        assert (new.kind, new.inputs, new.outputs, new.attrs, new.layer, new.module,
                new.name, new.repeat) == (old.kind, old.inputs, old.outputs, old.attrs,
                                          old.layer, old.module, old.name, old.repeat)
    assert h.ops[0] is ops[0] and h.ops[2] is not ops[1]
    assert h.tensors == g.tensors and h.tensors is not g.tensors
    assert h.header == g.header and h.header is not g.header
    assert g.replace_ops(ops).ops == g.ops


def test_new_op_and_new_tensor_equal_the_dataclass_constructors():
    """hwsim.ir.graph.new_op sets Op's fields through their slots: the same op as
    Op(...), field by field, equal and with the same hash, still frozen; an op with a
    field new_op did not set would fail here."""
    import dataclasses

    from hwsim.ir.graph import Op, Tensor, new_op, new_tensor

    for args in [(0, "matmul", (1, 2), (3,), {"m": 4, "n": 5, "k": 6}, 3, "model.l.3.q", "q", 1),
                 (7, "gather", (9,), (10,), {"elements": 12}, None, "", "token_select", 4)]:
        a, b = new_op(*args), Op(*args)
        assert a == b
        assert [getattr(a, f.name) for f in dataclasses.fields(Op)] == list(args)
        assert new_op(*args[:-1]) == Op(*args[:-1])  # repeat defaults to 1 in both
        with pytest.raises(dataclasses.FrozenInstanceError):
            a.id = 1  # type: ignore[misc]
    t = (5, (1, 7, 4096), "fp16", "kv_cache")
    a, b = new_tensor(*t), Tensor(*t)
    assert a == b and hash(a) == hash(b)
    assert [getattr(a, f.name) for f in dataclasses.fields(Tensor)] == list(t)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.shape = (1,)  # type: ignore[misc]
