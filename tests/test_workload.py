"""Workload YAML: defaults, every error class, --set overrides, building the graph."""

from __future__ import annotations

import pytest
from conftest import TINY, shipped_templates, tiny_graph

from hwsim import zoo
from hwsim.errors import InputError
from hwsim.ir import load, save, to_dict
from hwsim.workload import Tiling, build_graph, load_workload, parse_sets, workload_from_dict

MATMUL = [{"kind": "matmul", "m": 16, "n": 16, "k": 16}]


def problems_of(path, sets=()):
    """Load ``path`` expecting an InputError; return its problems as (field, message)."""
    with pytest.raises(InputError) as info:
        load_workload(path, parse_sets(sets))
    e = info.value
    for p in e.problems:
        assert p.source in (str(path), "--set"), p
    return [(p.field, p.message) for p in e.problems], str(e)


def one_problem(path, field, *needles, sets=()):
    probs, text = problems_of(path, sets)
    assert len(probs) == 1, probs
    got_field, message = probs[0]
    assert got_field == field
    for needle in needles:
        assert needle in message, message
    assert str(path) in text or text.startswith("--set")
    assert field in text
    return message


# ---------------------------------------------------------------- defaults
def test_every_default(write_workload):
    path = write_workload({"ops": MATMUL}, "my-kernels.yaml")
    wl = load_workload(path)
    assert wl.name == "my-kernels"  # the file's stem
    assert wl.description == ""
    assert wl.model == "" and wl.trace == ""
    assert wl.trace_format == "hwsim"
    assert wl.ops == MATMUL
    assert wl.phase == "prefill"
    assert wl.batch == 1
    assert wl.seq_len == 128
    assert wl.kv_len == 0
    assert wl.dtype == "fp16"
    assert wl.devices == 1
    assert wl.segments == {}
    assert wl.pruning == []
    assert wl.tiling == Tiling()
    assert (wl.tiling.attention, wl.tiling.block_q, wl.tiling.block_kv, wl.tiling.gemm,
            wl.tiling.tiling_mask, wl.tiling.tiling_allreduce) == ("auto", 0, 0, "auto",
                                                                   True, False)
    assert wl.source == str(path)
    assert wl.kind == "ops"


def test_given_values_are_kept(write_workload):
    path = write_workload({"name": "n", "description": "d", "ops": MATMUL, "phase": "decode",
                           "batch": 4, "seq_len": 1, "kv_len": 100, "dtype": "bf16",
                           "segments": {"a": [0, 1]},
                           "tiling": {"attention": "flash", "block_q": 64, "block_kv": 256,
                                      "gemm": "iaat", "tiling_mask": False}})
    wl = load_workload(path)
    assert (wl.name, wl.phase, wl.batch, wl.seq_len, wl.kv_len, wl.dtype) == (
        "n", "decode", 4, 1, 100, "bf16")
    assert wl.tiling == Tiling(attention="flash", block_q=64, block_kv=256, gemm="iaat",
                               tiling_mask=False)
    assert wl.to_dict()["tiling"]["block_kv"] == 256


def test_empty_file_needs_model_trace_or_ops(write_workload, tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    one_problem(path, "model", "give exactly one of model, trace or ops")


# ---------------------------------------------------------------- file-level errors
def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(InputError, match="workload file not found") as info:
        load_workload(path)
    assert str(path) in str(info.value)


def test_invalid_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("ops: [\n  {kind: matmul", encoding="utf-8")
    with pytest.raises(InputError, match="not valid YAML") as info:
        load_workload(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)  # one line for the CLI


def test_top_level_must_be_a_mapping(write_workload):
    path = write_workload([1, 2])
    with pytest.raises(InputError, match="expected a mapping of workload fields"):
        load_workload(path)


def test_a_directory(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        load_workload(tmp_path)


# ---------------------------------------------------------------- field errors
def test_unknown_key_with_did_you_mean(write_workload):
    path = write_workload({"ops": MATMUL, "seq_lenn": 5})
    msg = one_problem(path, "seq_lenn", "unknown key")
    assert "did you mean 'seq_len'?" in msg


def test_unknown_tiling_key(write_workload):
    path = write_workload({"ops": MATMUL, "tiling": {"block_qq": 4}})
    msg = one_problem(path, "tiling.block_qq", "unknown key")
    assert "'block_q'" in msg


@pytest.mark.parametrize("field, value, needle", [
    ("seq_len", "long", "expected an integer, got 'long'"),
    ("batch", 2.5, "expected an integer, got 2.5"),
    ("batch", True, "expected an integer, got True"),
    ("dtype", 16, "expected a str"),
    ("segments", [0, 3], "expected a mapping"),
    ("pruning", {"method": "fastv"}, "expected a list"),
    ("phase", "train", "expected one of prefill, decode, generate, got 'train'"),
])
def test_wrong_type(write_workload, field, value, needle):
    path = write_workload({"ops": MATMUL, field: value})
    one_problem(path, field, needle)


def test_negative_sizes(write_workload):
    one_problem(write_workload({"ops": MATMUL, "seq_len": -4}), "seq_len", "must be >= 1")
    one_problem(write_workload({"ops": MATMUL, "batch": 0}), "batch", "must be >= 1")
    one_problem(write_workload({"ops": MATMUL, "devices": 0}), "devices", "must be >= 1")
    one_problem(write_workload({"ops": MATMUL, "kv_len": -1, "phase": "decode"}), "kv_len",
                "must be >= 0")


def test_kv_len_in_prefill(write_workload, tiny_trace):
    path = write_workload({"trace": str(tiny_trace), "kv_len": 16})
    one_problem(path, "kv_len", "a prefill starts from an empty KV cache")


def test_unknown_dtype(write_workload):
    one_problem(write_workload({"ops": MATMUL, "dtype": "fp13"}), "dtype",
                "unknown dtype 'fp13'")


def test_segment_past_seq_len(write_workload):
    path = write_workload({"ops": MATMUL, "seq_len": 100, "segments": {"visual": [35, 611]}})
    one_problem(path, "segments.visual", "ends at 611, past the sequence (seq_len=100)")


@pytest.mark.parametrize("rng, needle", [
    ([5, 2], "start must be <= end"),
    ([-1, 2], "start must be <= end and >= 0"),
    ([1, 2, 3], "expected [start, end]"),
    ("0-3", "expected [start, end]"),
])
def test_bad_segment_ranges(write_workload, rng, needle):
    one_problem(write_workload({"ops": MATMUL, "segments": {"s": rng}}), "segments.s", needle)


def test_model_trace_and_ops_are_exclusive(write_workload, tiny_trace):
    path = write_workload({"ops": MATMUL, "trace": str(tiny_trace)})
    one_problem(path, "model", "give exactly one of model, trace or ops (got trace, ops)")


def test_unknown_model(write_workload):
    path = write_workload({"model": "llama-9-1b"})
    one_problem(path, "model", "unknown model 'llama-9-1b'")


def test_unknown_model_suggests_a_zoo_model(write_workload, synthetic_zoo):
    path = write_workload({"model": "tiny-lm"})
    msg = one_problem(path, "model", "unknown model 'tiny-lm'")
    assert "did you mean 'tiny-llm'?" in msg


def test_missing_trace_file(write_workload, tmp_path):
    path = write_workload({"trace": "traces/none.json.gz"})
    one_problem(path, "trace", "trace file not found", str(tmp_path / "traces/none.json.gz"))


def test_unknown_pruning_method(write_workload):
    path = write_workload({"ops": MATMUL, "pruning": [{"method": "fastvv", "keep": 0.5}]})
    msg = one_problem(path, "pruning.0.method", "unknown pruning method 'fastvv'")
    assert "did you mean 'fastv'?" in msg


@pytest.mark.parametrize("step, field, needle", [
    ({"method": "hawk", "keep": 1.5}, "pruning.0.keep", "must be a fraction in (0, 1]"),
    ({"method": "hawk", "keep": 0}, "pruning.0.keep", "must be a fraction in (0, 1]"),
    ({"method": "hawk", "keep": [0.5, "x"]}, "pruning.0.keep", "must be a fraction"),
    ({"method": "hawk"}, "pruning.0.keep", "missing"),
    ({"method": "hawk", "keep": 0.5, "at_layr": 2}, "pruning.0.at_layr",
     "unknown parameter of hawk"),
    ({"method": "fastv", "keep": 0.5, "at_layer": -1}, "pruning.0.at_layer",
     "must be a layer index >= 0"),
    ({"method": "fastv", "keep": 0.5, "at_layer": 1, "segment": "visual"},
     "pruning.0.segment", "unknown segment 'visual'"),
    ({"method": "lazyllm", "keep": 0.5, "layers": "all"}, "pruning.0.layers",
     "must be a list of layer indices"),
    ({"keep": 0.5}, "pruning.0.method", "missing"),
])
def test_bad_pruning_params(write_workload, step, field, needle):
    one_problem(write_workload({"ops": MATMUL, "pruning": [step]}), field, needle)


def test_pruning_segment_given_by_the_workload_is_known(write_workload):
    path = write_workload({"ops": MATMUL, "seq_len": 64, "segments": {"visual": [8, 64]},
                           "pruning": [{"method": "hawk", "keep": 0.5, "segment": "visual"}]})
    assert load_workload(path).pruning[0]["segment"] == "visual"


def test_unknown_tiling_strategy(write_workload):
    path = write_workload({"ops": MATMUL, "tiling": {"attention": "flashy"}})
    one_problem(path, "tiling.attention",
                "expected one of auto, standard, flash, fastattention, got 'flashy'")
    path = write_workload({"ops": MATMUL, "tiling": {"block_q": -8}})
    one_problem(path, "tiling.block_q", "must be >= 0")


# ---------------------------------------------------------------- ops lists
@pytest.mark.parametrize("op, field, needle", [
    ({"kind": "conv2d", "m": 1}, "ops.0.kind", "expected one of matmul, attention"),
    ({"kind": "matmul", "m": 16, "n": 16}, "ops.0.k", "missing: reduction dim"),
    ({"kind": "matmul", "m": 16, "n": 16, "k": 16, "kk": 1}, "ops.0.kk",
     "unknown parameter of matmul"),
    ({"kind": "matmul", "m": 0, "n": 16, "k": 16}, "ops.0.m", "expected a positive integer"),
    ({"kind": "matmul", "m": 16, "n": 16, "k": 16, "dtype": "fp7"}, "ops.0.dtype",
     "unknown dtype"),
    ({"kind": "matmul", "m": 16, "n": 16, "k": 16, "repeat": 0}, "ops.0.repeat",
     "expected an integer from 1 to"),
    ({"kind": "topk", "n": 100, "k": 128}, "ops.0.k", "k=128 exceeds n=100"),
    ({"kind": "attention", "heads": 32, "kv_heads": 5, "head_dim": 128, "q_len": 1,
      "kv_len": 1024}, "ops.0.kv_heads", "heads=32 is not a multiple of kv_heads=5"),
    ({"kind": "attention", "heads": 2, "head_dim": 8, "q_len": 1, "kv_len": 4,
      "causal": "yes"}, "ops.0.causal", "expected true or false"),
    ({"kind": "elementwise", "fn": "frob", "elements": 4}, "ops.0.fn",
     "unknown function 'frob'"),
    ({"kind": "reduce", "fn": "median", "elements": 4}, "ops.0.fn", "unknown function"),
    ("matmul", "ops.0", "expected a mapping"),
])
def test_ops_list_errors(write_workload, op, field, needle):
    one_problem(write_workload({"ops": [op]}), field, needle)


def test_ops_list_error_points_at_the_right_entry(write_workload):
    ops = MATMUL + [{"kind": "softmax", "rows": 4}]
    one_problem(write_workload({"ops": ops}), "ops.1.cols", "missing")


def test_multiple_errors_collected_in_one_input_error(write_workload):
    path = write_workload({
        "seq_lenn": 5, "batch": "two", "dtype": "fp13",
        "tiling": {"attention": "flashy"},
        "pruning": [{"method": "fastvv"}],
        "ops": [{"kind": "matmull"}, {"kind": "topk", "n": 4, "k": 8}],
    })
    probs, text = problems_of(path)
    fields = {f for f, _ in probs}
    assert fields == {"seq_lenn", "batch", "dtype", "tiling.attention", "pruning.0.method",
                      "ops.0.kind", "ops.1.k"}
    assert f"(and {len(probs) - 1} more:" in text
    assert "\n" not in text


# ---------------------------------------------------------------- --set
def test_set_seq_len(write_workload):
    wl = load_workload(write_workload({"ops": MATMUL}), parse_sets(["seq_len=4096"]))
    assert wl.seq_len == 4096


def test_set_pruning_keep(write_workload):
    path = write_workload({"ops": MATMUL, "pruning": [{"method": "hawk", "keep": 0.5}]})
    wl = load_workload(path, parse_sets(["pruning.0.keep=0.3"]))
    assert wl.pruning == [{"method": "hawk", "keep": 0.3}]


def test_set_tiling_attention(write_workload):
    wl = load_workload(write_workload({"ops": MATMUL}), parse_sets(["tiling.attention=flash"]))
    assert wl.tiling.attention == "flash"
    assert wl.tiling.block_q == 0


def test_set_parses_yaml_scalars_and_lists(write_workload):
    sets = parse_sets(["name=x y", "segments={a: [0, 4]}", "tiling.tiling_mask=false",
                       "ops.0.m=32"])
    wl = load_workload(write_workload({"ops": MATMUL}), sets)
    assert wl.name == "x y"
    assert wl.segments == {"a": [0, 4]}
    assert wl.tiling.tiling_mask is False
    assert wl.ops[0]["m"] == 32


def test_set_value_is_checked_like_the_file(write_workload):
    path = write_workload({"ops": MATMUL})
    one_problem(path, "tiling.attention", "got 'flashy'", sets=["tiling.attention=flashy"])
    one_problem(path, "seq_len", "expected an integer", sets=["seq_len=lots"])


def test_set_list_index_out_of_range_names_set(write_workload):
    path = write_workload({"ops": MATMUL, "pruning": [{"method": "hawk", "keep": 0.5}]})
    with pytest.raises(InputError) as info:
        load_workload(path, parse_sets(["pruning.3.keep=0.3"]))
    p = info.value.problems[0]
    assert (p.source, p.field) == ("--set", "pruning.3")
    assert str(info.value).startswith("--set: pruning.3: no list item '3' (the list has 1)")


def test_set_into_a_scalar_and_malformed_items(write_workload):
    path = write_workload({"ops": MATMUL, "seq_len": 64})
    with pytest.raises(InputError, match="--set: seq_len.x: seq_len is not a mapping"):
        load_workload(path, parse_sets(["seq_len.x=1"]))
    with pytest.raises(InputError, match="--set: expected key=value, got 'seq_len'"):
        parse_sets(["seq_len"])
    with pytest.raises(InputError, match="expected key=value"):
        parse_sets(["=3"])


# ---------------------------------------------------------------- building graphs
def test_ops_graph_shapes_and_repeat(write_workload):
    path = write_workload({"ops": [
        {"kind": "matmul", "m": 16, "n": 8, "k": 4, "batch": 2, "repeat": 3, "name": "mm"},
        {"kind": "attention", "heads": 8, "kv_heads": 2, "head_dim": 16, "q_len": 1,
         "kv_len": 100},
        {"kind": "kv_write", "elements": 512, "cache_elements": 4096},
    ], "dtype": "bf16"})
    g = build_graph(load_workload(path))
    # a repeated entry is one op that runs `repeat` times (not three copies of it)
    assert [op.kind for op in g.ops] == ["matmul", "attention", "kv_write"]
    assert [op.repeat for op in g.ops] == [3, 1, 1]
    assert g.runs == 5 and len(g) == 3
    assert g.ops[0].name == "mm"
    assert g.verify() == []
    assert g.ops[0].attrs == {"batch": 2, "m": 16, "n": 8, "k": 4}
    assert g.ops[1].attrs["kv_heads"] == 2
    assert {t.dtype for t in g.tensors.values()} == {"bf16"}
    assert g.flops() == 3 * 2 * 2 * 16 * 8 * 4 + 2 * 8 * 1 * 100 * 32
    assert g.flops_by_kind()["matmul"] == 3 * 2 * 2 * 16 * 8 * 4
    kv = g.ops[2]
    assert g.op_write_bytes(kv) == 512 * 2
    assert "x3" in g.ops[0].line(g)


def test_trace_workload_uses_the_graph_as_traced(write_workload, tiny_trace):
    path = write_workload({"trace": tiny_trace.name, "seq_len": 8})  # relative to the file
    g = build_graph(load_workload(path))
    want = tiny_graph(1, 8)
    assert [op.line(g) for op in g.ops] == [op.line(want) for op in want.ops]
    assert g.header["name"] == "wl"


def test_trace_workload_retypes_floats(write_workload, tiny_trace):
    g = build_graph(load_workload(write_workload({"trace": str(tiny_trace), "dtype": "fp32"})))
    assert g.tensors[0].dtype == "int64"  # token ids keep their type
    assert g.tensors[2].dtype == "fp32"


def test_concrete_trace_at_another_size_is_an_error(write_workload, tiny_trace):
    path = write_workload({"trace": str(tiny_trace), "seq_len": 16})
    with pytest.raises(InputError, match="the trace was made at seq_len=8") as info:
        build_graph(load_workload(path))
    assert info.value.problems[0].field == "seq_len"


def test_invalid_trace_graph_is_an_input_error(write_workload, tmp_path):
    g = tiny_graph(1, 8)
    g.ops[3] = type(g.ops[3])(3, "matmul", (99,), (8,), g.ops[3].attrs)
    save(g, tmp_path / "broken.json.gz")
    path = write_workload({"trace": "broken.json.gz"})
    with pytest.raises(InputError, match="invalid graph: %3 .*input t99") as info:
        build_graph(load_workload(path))
    assert info.value.problems[0].source == str(tmp_path / "broken.json.gz")


def test_template_trace_is_instantiated_at_the_workload_size(write_workload, synthetic_zoo):
    tmpl = synthetic_zoo / "tiny-llm.prefill.json.gz"
    path = write_workload({"trace": str(tmpl), "batch": 2, "seq_len": 24})
    g = build_graph(load_workload(path))
    assert to_dict(g)["ops"] == to_dict(tiny_graph(2, 24))["ops"]
    assert g.header["segments"] == {"text": [0, 2], "rest": [2, 24]}


# ---------------------------------------------------------------- model workloads
def test_model_workload_from_a_template(write_workload, synthetic_zoo):
    assert "tiny-llm" in zoo.names()
    assert zoo.num_layers("tiny-llm") == TINY["layers"]
    path = write_workload({"model": "tiny-llm", "seq_len": 32,
                           "pruning": [{"method": "fastv", "at_layer": 1, "keep": 0.5,
                                        "segment": "rest"}]})
    wl = load_workload(path)
    g = build_graph(wl)
    assert to_dict(g)["tensors"] == to_dict(tiny_graph(1, 32))["tensors"]
    assert g.flops() == tiny_graph(1, 32).flops()


def test_at_layer_past_the_model(write_workload, synthetic_zoo):
    path = write_workload({"model": "tiny-llm", "seq_len": 32,
                           "pruning": [{"method": "fastv", "at_layer": 2, "keep": 0.5}]})
    one_problem(path, "pruning.0.at_layer", "2 is past the model's last layer (1)")


def test_per_layer_keep_must_match_the_model(write_workload, synthetic_zoo):
    path = write_workload({"model": "tiny-llm", "seq_len": 32,
                           "pruning": [{"method": "spatten", "keep": [0.9, 0.8, 0.7]}]})
    one_problem(path, "pruning.0.keep", "has 3 entries, the model has 2 layers")
    path = write_workload({"model": "tiny-llm", "seq_len": 32,
                           "pruning": [{"method": "layer-drop", "layers": [0, 5]}]})
    one_problem(path, "pruning.0.layers", "has a layer outside 0..1")


def test_model_without_the_phase(write_workload, synthetic_zoo):
    path = write_workload({"model": "tiny-llm", "phase": "decode", "seq_len": 1,
                           "kv_len": 10})
    one_problem(path, "phase", "model tiny-llm has no decode phase (it has: prefill)")


def test_prefill_template_needs_two_tokens(write_workload, synthetic_zoo):
    wl = load_workload(write_workload({"model": "tiny-llm", "seq_len": 1}))
    with pytest.raises(InputError, match="needs seq_len >= 2") as info:
        build_graph(wl)
    assert info.value.problems[0].field == "seq_len"


SHIPPED = shipped_templates("prefill")


@pytest.mark.skipif(not SHIPPED, reason="no shipped prefill template in traces/ yet "
                    "(the synthetic zoo tests above cover the same checks)")
def test_shipped_model_at_layer_past_the_model(write_workload):
    model = SHIPPED[0].name[: -len(".prefill.json.gz")]
    layers = zoo.num_layers(model)
    assert layers and layers > 0
    path = write_workload({"model": model, "seq_len": 64,
                           "pruning": [{"method": "fastv", "at_layer": layers, "keep": 0.5}]})
    one_problem(path, "pruning.0.at_layer", f"{layers} is past the model's last layer")
    ok = write_workload({"model": model, "seq_len": 64,
                         "pruning": [{"method": "fastv", "at_layer": layers - 1,
                                      "keep": 0.5}]}, "ok.yaml")
    assert load_workload(ok).pruning[0]["at_layer"] == layers - 1


ALL_SHIPPED = SHIPPED + shipped_templates("decode")


@pytest.mark.skipif(not ALL_SHIPPED, reason="no shipped template in traces/ yet")
@pytest.mark.parametrize("path", ALL_SHIPPED, ids=lambda p: p.name)
def test_shipped_templates_instantiate_to_valid_graphs(path):
    g = load(path)
    assert g.is_template
    phase = g.header.get("phase")
    assert path.name.endswith(f".{phase}.json.gz")
    minimum = int((g.header.get("template") or {}).get("min_seq_len") or 0)
    seq, kv = (1, 100) if phase == "decode" else (max(64, minimum), 0)
    concrete = g.instantiate(batch=2, seq_len=seq, kv_len=kv)
    assert concrete.verify() == []
    assert concrete.flops() > 0


def test_workload_from_dict_names_its_source():
    with pytest.raises(InputError) as info:
        workload_from_dict({"ops": MATMUL, "bogus": 1}, "<case>")
    assert str(info.value).startswith("<case>: bogus: unknown key")
