"""Hostile and careless input (issue 16): every run ends in exit 0 with a finite,
positive result, or exit 2 with one line naming the file or field; never a
traceback, a hang or an absorbed NaN.

The regression cases are the signatures a fuzzing campaign found (each failed
before its fix); the hypothesis run mutates workloads and target fields at random
(derandomized here; ``--runslow`` runs many more)."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwsim.cli.main import main
from hwsim.errors import InputError

BERT = str(Path(__file__).resolve().parents[1] / "workloads" / "bert-base.yaml")

BASES = [
    {"name": "w", "model": "gpt2", "seq_len": 64},
    {"name": "w", "model": "tinyllama-1.1b", "phase": "decode", "seq_len": 1, "kv_len": 100},
    {"name": "w", "model": "tinyllama-1.1b", "phase": "generate", "seq_len": 64, "new_tokens": 4},
    {"name": "w", "ops": [{"kind": "matmul", "m": 16, "n": 16, "k": 16}]},
    {"name": "w", "ops": [{"kind": "attention", "heads": 2, "kv_heads": 1, "head_dim": 64,
                           "q_len": 64, "kv_len": 64, "causal": True}]},
    {"name": "w", "ops": [{"kind": "softmax", "rows": 4, "cols": 64},
                          {"kind": "elementwise", "fn": "exp", "elements": 100},
                          {"kind": "topk", "n": 64, "k": 4, "rows": 2},
                          {"kind": "kv_write", "elements": 64, "cache_elements": 128},
                          {"kind": "reduce", "elements": 64, "out_elements": 2}]},
    {"name": "w", "model": "gpt2", "seq_len": 64, "pruning": [{"method": "spatten", "keep": 0.5}]},
    {"name": "w", "model": "tinyllama-1.1b", "phase": "decode", "seq_len": 1, "kv_len": 100,
     "pruning": [{"method": "h2o", "keep": 0.5}]},
]
TARGETS = ["roofline", "volta", "ascend", "armv8", "spatten"]
HOSTILE = [None, [], {}, [1, 2], {"a": 1}, "x", -1, 0, 1e308, float("nan"), float("inf"),
           -float("inf"), 10 ** 30, True, "nan", "1e999", 2 ** 63, 0.5, "", [[1]], 2 ** 40, 3]
SPEC_VALUES = ["nan", "inf", "-inf", "0", "-1", "1e300", "1e-300", "[1]", "{a: 1}", "x",
               "10000000000000000000000", "1e20"]


def run(tmp_path, workload, target, sets=()) -> tuple[int, str, dict | None]:
    """``hwsim simulate`` in process: (exit status, stderr, the JSON report or None)."""
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(workload))
    out = tmp_path / "o.json"
    if out.exists():
        out.unlink()
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["simulate", str(path), "-t", target, "--fidelity", "analytical",
                   "--json", str(out), *(x for s in sets for x in ("--set", s))])
    return rc, err.getvalue(), json.loads(out.read_text()) if rc == 0 else None


def assert_clean(rc: int, err: str, doc: dict | None) -> None:
    if rc == 0:
        lat = doc["totals"]["latency_s"]
        assert math.isfinite(lat) and lat > 0, lat
        assert math.isfinite(doc["totals"]["energy_j"]) and doc["totals"]["energy_j"] >= 0
    else:
        assert rc == 2, (rc, err)
        lines = [x for x in err.splitlines() if not x.startswith("hwsim: warning:")]
        assert len(lines) == 1 and lines[0].startswith("hwsim: error: "), err


# ---------------------------------------------------------------- regressions
@pytest.mark.parametrize("workload, field", [
    ({"name": "w", "ops": [{"kind": ["matmul"], "m": 1, "n": 1, "k": 1}]}, "ops.0.kind"),
    ({"name": "w", "ops": [{"kind": "elementwise", "fn": ["exp"], "elements": 8}]}, "ops.0.fn"),
    ({"name": "w", "ops": [{"kind": "attention", "heads": 2, "head_dim": 64, "q_len": None,
                            "kv_len": 64}]}, "ops.0.q_len"),
    ({"name": "w", "ops": [{"kind": "matmul", "m": 2 ** 41, "n": 1, "k": 1}]}, "ops.0.m"),
    ({"name": "w", "model": "gpt2", "seq_len": 64, "pruning": [{"method": [[1]], "keep": .5}]},
     "pruning.0.method"),
    ({"name": "w", "model": "tinyllama-1.1b", "phase": "decode", "seq_len": 1, "kv_len": 100,
      "pruning": [{"method": "h2o", "keep": None}]}, "pruning.0.keep"),
])
def test_structured_nonsense_in_a_workload_is_one_line(tmp_path, workload, field):
    rc, err, doc = run(tmp_path, workload, "roofline")
    assert_clean(rc, err, doc)
    assert rc == 2 and field in err


@pytest.mark.parametrize("target, setting", [
    ("roofline", "target.peak_flops_per_s.fp16=1e-300"),
    ("roofline", "target.dram_bw_bytes_per_s=1e999"),
    ("roofline", f"target.dram_bw_bytes_per_s={'9' * 5001}"),
    ("roofline", "target.dram_bw_bytes_per_s=.nan"),
    ("ascend", "target.l1_pj_per_byte=1e300"),
    ("ascend", "target.cube_macs_per_cycle.fp16=1e-300"),
    ("ascend", "target.vector_bytes_per_cycle=0"),
    ("volta", "target.tensor_flops_per_cycle_per_sm.fp16=0"),
    ("volta", "target.cuda_flops_per_cycle_per_sm.fp32=0"),
    ("armv8", "target.gemm_q.fp32=0"),
    ("armv8", "target.switch_ratio.fp32=0"),
    ("spatten", "target.dram_channels=100000000000000000000"),
    ("spatten", "target.query_block=100000000000000000000"),
    ("spatten", "target.topk_trials=100000000000000000000"),
])
def test_hardware_values_out_of_range_are_one_line(tmp_path, target, setting):
    """Each of these was a traceback, a hang or an infinite latency."""
    wl = {"name": "w", "model": "tinyllama-1.1b", "phase": "decode", "seq_len": 1, "kv_len": 100}
    rc, err, doc = run(tmp_path, wl, target, [setting])
    assert_clean(rc, err, doc)
    assert rc == 2 and setting.split("=")[0].removeprefix("target.").split(".")[0] in err


# ---------------------------------------------------------------- random campaigns
FUZZ = settings(max_examples=60, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _walk(x, p, paths: list) -> None:
    """Every path into ``x`` (keys and list indices), depth first."""
    items = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else ()
    for k, v in items:
        paths.append(p + [k])
        _walk(v, p + [k], paths)


@st.composite
def mutated_workload(draw):
    data = json.loads(json.dumps(draw(st.sampled_from(BASES))))
    for _ in range(draw(st.integers(1, 2))):
        paths: list = []
        _walk(data, [], paths)
        path = draw(st.sampled_from(paths))
        node = data
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = json.loads(json.dumps(draw(st.sampled_from(HOSTILE))))
    return data


@FUZZ
@given(workload=mutated_workload(), target=st.sampled_from(TARGETS))
def test_mutated_workloads_end_cleanly(tmp_path, workload, target):
    assert_clean(*run(tmp_path, workload, target))


def _spec_fields(target: str) -> list[str]:
    import dataclasses

    from hwsim.targets import resolve

    spec = resolve(target).spec
    out = []
    for f in dataclasses.fields(spec):
        v = getattr(spec, f.name)
        if isinstance(v, dict):
            out += [f"{f.name}.{k}" for k in v]
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(f.name)
    return out


@FUZZ
@given(data=st.data(), target=st.sampled_from(TARGETS), value=st.sampled_from(SPEC_VALUES),
       base=st.sampled_from(BASES[:2] + BASES[3:5]))
def test_hostile_hardware_values_end_cleanly(tmp_path, data, target, value, base):
    field = data.draw(st.sampled_from(_spec_fields(target)))
    assert_clean(*run(tmp_path, base, target, [f"target.{field}={value}"]))


@pytest.mark.slow
@settings(max_examples=3000, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(workload=mutated_workload(), target=st.sampled_from(TARGETS))
def test_slow_mutated_workloads_end_cleanly(tmp_path, workload, target):
    assert_clean(*run(tmp_path, workload, target))


# ---------------------------------------------------------------- hostile files
ALIAS_BOMB = "".join(
    f"{k}: &{k} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['1'] * 9)}]\n"
    for p, k in zip([""] + list("abcdefg"), "abcdefgh"))


@pytest.mark.parametrize("content, needle", [
    (ALIAS_BOMB, "aliases are expanded"),
    ("a: " + "[" * 200 + "]" * 200 + "\n", "nested deeper"),
    ("seq_len: " + "9" * 5001 + "\n", "not accepted as YAML"),
    (b"\x89PNG\r\n\x1a\n\x00\x00binary", "not UTF-8 text"),
    ("model: gpt2\nseq_len: [\n", "not valid YAML"),
])
def test_hostile_yaml_files_are_one_line(tmp_path, content, needle):
    path = tmp_path / "w.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["simulate", str(path)])
    assert rc == 2 and needle in err.getvalue() and err.getvalue().count("\n") == 1, err.getvalue()


@pytest.mark.parametrize("data, needle", [
    (lambda gz: gz[:30], "not a readable graph file"),
    (lambda gz: __import__("gzip").compress(b"[" * 100000 + b"]" * 100000), "RecursionError"),
    (lambda gz: __import__("gzip").compress(b'{"header": 5, "tensors": "x", "ops": [1]}'),
     "schema"),
])
def test_damaged_graph_files_are_one_line(tmp_path, data, needle):
    import gzip

    good = gzip.compress(b'{"schema": "hwsim.graph/1", "header": {}, "tensors": [], "ops": []}')
    (tmp_path / "g.json.gz").write_bytes(data(good))
    (tmp_path / "w.yaml").write_text("name: t\ntrace: g.json.gz\nseq_len: 8\n")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["simulate", str(tmp_path / "w.yaml")])
    assert rc == 2 and needle in err.getvalue() and err.getvalue().count("\n") == 1, err.getvalue()


def test_a_directory_is_not_a_workload_or_a_target(tmp_path):
    for argv in (["simulate", str(tmp_path)],
                 ["simulate", BERT, "-t", str(tmp_path)]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(argv)
        assert rc == 2 and err.getvalue().count("\n") == 1, err.getvalue()


def test_names_from_input_files_never_leave_the_output_folder():
    from hwsim.cli.main import safe_name

    assert safe_name("../../etc/passwd") == "_.._etc_passwd"
    assert "/" not in safe_name("a/b\\c") and not safe_name("..x").startswith(".")
    # (several targets write into the one file named: no name is made from a preset)


@pytest.mark.parametrize("cell, needle", [
    ("nan", "finite"), ("inf", "finite"), ("1e300", "at most"), ("x" * 200000, "CSV")])
def test_a_damaged_spatten_trace_is_one_line(tmp_path, cell, needle):
    header = ("iteration_id,layer_id,head_id,embedding_length_D,sentence_length_L,"
              "key_fetch_num,quant_key_bit,quant_query_bit,auto_requant_thres,if_requant,"
              "auto_requant_incre,value_fetch_num,quant_value_bit,if_accumulate_importance,"
              "if_rescale_previous_importance,if_topk,topk")
    row = "0,0,0,64.0,{L},993,-1,-1,-1,False,-1,993,-1,False,False,False,-1"
    (tmp_path / "t.csv").write_text(header + "\n" + row.format(L=cell) + "\n")
    (tmp_path / "w.yaml").write_text("name: t\ntrace: t.csv\ntrace_format: spatten-csv\n")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["simulate", str(tmp_path / "w.yaml"), "-t", "spatten"])
    assert rc == 2 and needle in err.getvalue() and err.getvalue().count("\n") == 1, err.getvalue()


def test_an_ops_list_is_bounded_with_its_repeats(tmp_path):
    """A repeated op is one op (one row, lowered once), so 65,536 runs each of two
    entries are two rows, not a report of 131,072 rows listed for minutes; a repeat
    past 2**30 and an ops list of more than 100,000 entries are refused when read."""
    wl = {"name": "w", "ops": [{"kind": "matmul", "m": 1, "n": 1, "k": 1, "repeat": 65536}] * 2}
    rc, err, doc = run(tmp_path, wl, "roofline")
    assert rc == 0, err
    assert [op["count"] for op in doc["ops"]] == [65536, 65536]
    assert doc["totals"]["flops"] == 2 * 65536 * 2
    wl["ops"] = [{"kind": "matmul", "m": 1, "n": 1, "k": 1, "repeat": 2**30 + 1}]
    rc, err, _ = run(tmp_path, wl, "roofline")
    assert rc == 2 and "ops.0.repeat" in err and "1,073,741,824" in err
    assert err.count("\n") == 1
    from hwsim.workload import workload_from_dict  # (no file of 100,001 entries fits 256 KiB)

    with pytest.raises(InputError, match="100,001 entries: at most 100,000"):
        workload_from_dict({"name": "w", "ops": [{"kind": "rope", "elements": 8}] * 100_001},
                           "<w>")


@pytest.mark.parametrize("preset, field", [
    ("target: [volta]\nname: x\nspec: {}\n", "target"),
    ("target: {a: 1}\nspec: 5\n", "target"),
    ("target: roofline\nname: [x]\nspec: {}\n", "name"),
])
def test_a_malformed_preset_is_one_line(tmp_path, preset, field):
    (tmp_path / "hw.yaml").write_text(preset)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["simulate", BERT, "-t", str(tmp_path / "hw.yaml")])
    assert rc == 2 and f": {field}:" in err.getvalue() and err.getvalue().count("\n") == 1


# ---------------------------------------------------------------- graph files, sweeps
GRAPH_HOSTILE = [None, [], {}, -1, 0, "x", 1e308, float("nan"), 10 ** 30, [1, 2], {"$expr": "x"},
                 {"$expr": "batch**99"}, {"$expr": "__import__('os')"}, True, 2 ** 40]


@st.composite
def mutated_graph(draw):
    import gzip

    path = Path(__file__).resolve().parents[1] / "traces" / "gpt2.prefill.json.gz"
    data = json.loads(gzip.decompress(path.read_bytes()))
    op = draw(st.integers(0, len(data["ops"]) - 1))
    where = draw(st.sampled_from(["op", "attrs", "tensor", "header"]))
    value = json.loads(json.dumps(draw(st.sampled_from(GRAPH_HOSTILE))))
    if where == "op":
        data["ops"][op][draw(st.sampled_from(["kind", "inputs", "outputs", "layer"]))] = value
    elif where == "attrs" and data["ops"][op]["attrs"]:
        data["ops"][op]["attrs"][draw(st.sampled_from(sorted(data["ops"][op]["attrs"])))] = value
    elif where == "tensor":
        column = draw(st.sampled_from(sorted(data["tensors"])))
        i = draw(st.integers(0, len(data["tensors"][column]) - 1))
        data["tensors"][column][i] = value
    else:
        data["header"][draw(st.sampled_from(sorted(data["header"])))] = value
    return data


@FUZZ
@given(graph=mutated_graph(), target=st.sampled_from(TARGETS))
def test_mutated_graph_files_end_cleanly(tmp_path, graph, target):
    import gzip

    (tmp_path / "g.json.gz").write_bytes(gzip.compress(json.dumps(graph).encode()))
    wl = {"name": "g", "trace": str(tmp_path / "g.json.gz"), "seq_len": 32}
    assert_clean(*run(tmp_path, wl, target))


SWEEP_BASE = {"workload": {"name": "w", "ops": [{"kind": "matmul", "m": 16, "n": 16, "k": 16}]},
              "target": "roofline", "fidelity": "analytical",
              "axes": {"ops.0.m": [16, 32], "target.dram_bw_bytes_per_s": {
                  "range": [1e11, 1e12], "steps": 2}},
              "constraints": ["ops.0.m < 64"]}


@FUZZ
@given(data=st.data())
def test_mutated_sweeps_end_cleanly(tmp_path, data):
    spec = json.loads(json.dumps(SWEEP_BASE))
    paths: list = []
    _walk(spec, [], paths)
    path = data.draw(st.sampled_from(paths))
    node = spec
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = json.loads(json.dumps(data.draw(st.sampled_from(HOSTILE))))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["sweep", str(tmp_path / "s.yaml"), "-o", str(tmp_path / "r.parquet"),
                   "--workers", "1", "--quiet", "--fresh"])
    lines = [x for x in err.getvalue().splitlines() if x.startswith("hwsim: error")]
    assert rc in (0, 1, 2), err.getvalue()
    if rc == 2:
        assert len(lines) == 1, err.getvalue()


CSV_HEADER = ("iteration_id,layer_id,head_id,embedding_length_D,sentence_length_L,key_fetch_num,"
              "quant_key_bit,quant_query_bit,auto_requant_thres,if_requant,auto_requant_incre,"
              "value_fetch_num,quant_value_bit,if_accumulate_importance,"
              "if_rescale_previous_importance,if_topk,topk")
CSV_ROWS = ["0,0,0,64.0,993,993,-1,-1,-1,False,-1,993,-1,False,False,False,-1",
            "0,0,1,64.0,993,993,-1,-1,-1,False,-1,993,-1,True,False,True,500",
            "1,1,0,64.0,500,500,8,8,0.1,True,4,500,8,True,True,True,250"]
CSV_HOSTILE = ["", "nan", "inf", "-1e400", "1e400", "x", "True", "0", "-5", "3.5", "9" * 400,
               '"', "1,2", "\x00", "1099511627777"]


def mutated_cells(data, rows: list[str], values: list[str]) -> list[list[str]]:
    """CSV ``rows`` with one to three cells replaced by drawn ``values``."""
    out = [r.split(",") for r in rows]
    for _ in range(data.draw(st.integers(1, 3))):
        row = data.draw(st.integers(0, len(out) - 1))
        col = data.draw(st.integers(0, len(out[row]) - 1))
        out[row][col] = data.draw(st.sampled_from(values))
    return out


@FUZZ
@given(data=st.data())
def test_mutated_spatten_traces_end_cleanly(tmp_path, data):
    rows = mutated_cells(data, CSV_ROWS, CSV_HOSTILE)
    (tmp_path / "t.csv").write_text(CSV_HEADER + "\n" + "\n".join(",".join(r) for r in rows)
                                    + "\n")
    wl = {"name": "t", "trace": str(tmp_path / "t.csv"), "trace_format": "spatten-csv"}
    assert_clean(*run(tmp_path, wl, data.draw(st.sampled_from(TARGETS))))


def test_a_yaml_of_many_entries_is_refused_by_size_and_segments_are_bounded(tmp_path):
    """A few megabytes of YAML took PyYAML half a minute and 660 MB: files are at most
    256 KiB, and a workload names at most 64 segments."""
    big = "name: w\nmodel: gpt2\nseq_len: 64\nsegments:\n" + "".join(
        f"  s{i}: [0, 1]\n" for i in range(40000))
    many = "name: w\nmodel: gpt2\nseq_len: 64\nsegments:\n" + "".join(
        f"  s{i}: [0, 1]\n" for i in range(100))
    for text, needle in ((big, "at most 262,144"), (many, "at most 64")):
        (tmp_path / "w.yaml").write_text(text)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(["simulate", str(tmp_path / "w.yaml")])
        assert rc == 2 and needle in err.getvalue() and err.getvalue().count("\n") == 1


# ---------------------------------------------------------------- serving
SERVE_BASE = {"name": "s", "model": "tinyllama-1.1b", "phase": "generate", "seq_len": 32,
              "new_tokens": 3}
ARRIVALS = ["0.0,32,3", "0.5,16,2", "0.25,8,4"]
SERVE_OPTIONS = {"--rate": ["nan", "inf", "-1", "0", "1e308", "1e-308", "5", "x"],
                 "--requests": ["0", "-3", "2", "100001", "99999999999999999999", "1.5"],
                 "--max-batch": ["-1", "0", "1", "99999999999999999999", "x"],
                 "--seed": ["-1", "0", "99999999999999999999", "x"]}


def run_serve(tmp_path, args) -> tuple[int, str, dict | None]:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SERVE_BASE))
    out = tmp_path / "s.json"
    if out.exists():
        out.unlink()
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(["serve", str(tmp_path / "s.yaml"), "-t", "roofline", "--json",
                       str(out), *args])
        except SystemExit as e:  # argparse's own refusal of a malformed number
            assert e.code == 2 and "error: argument" in err.getvalue(), err.getvalue()
            return 2, err.getvalue().strip().splitlines()[-1], None
    return rc, err.getvalue(), json.loads(out.read_text()) if rc == 0 else None


def assert_served(rc: int, err: str, doc: dict | None) -> None:
    if rc == 0:
        t = doc["totals"]
        assert t["requests"] >= 1 and math.isfinite(t["makespan_s"]) and t["makespan_s"] >= 0
        for key in ("ttft_mean_s", "throughput_tokens_per_s", "saturation_tokens_per_s"):
            assert t[key] is None or (math.isfinite(t[key]) and t[key] > 0), (key, t[key])
    else:
        assert rc == 2, (rc, err)
        lines = [x for x in err.splitlines() if not x.startswith("hwsim: warning:")]
        assert len(lines) == 1 and "error" in lines[0], err


@FUZZ
@given(data=st.data())
def test_mutated_arrival_files_end_cleanly(tmp_path, data):
    """``hwsim serve --arrivals``: a CSV of arrival times and token counts, mutated."""
    rows = mutated_cells(data, ARRIVALS, CSV_HOSTILE + ["1e9", "4194305"])
    header = data.draw(st.sampled_from(["arrival_s,prompt_tokens,output_tokens",
                                        "arrival_s,prompt_tokens", "a,b,c", ""]))
    (tmp_path / "a.csv").write_text(header + "\n" + "\n".join(",".join(r) for r in rows)
                                    + "\n")
    assert_served(*run_serve(tmp_path, ["--arrivals", str(tmp_path / "a.csv")]))


@FUZZ
@given(data=st.data())
def test_hostile_serve_options_end_cleanly(tmp_path, data):
    """``hwsim serve`` options: rates, counts, batch caps and seeds out of range."""
    args = ["--requests", "2"]
    for option in data.draw(st.lists(st.sampled_from(sorted(SERVE_OPTIONS)), min_size=1,
                                     max_size=3, unique=True)):
        args += [option, data.draw(st.sampled_from(SERVE_OPTIONS[option]))]
    assert_served(*run_serve(tmp_path, args))
