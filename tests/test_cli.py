"""The command line: simulate, targets, validate, and one clear line for bad input.

Most cases call ``hwsim.cli.main.main`` in-process (fast); a few run
``python -m hwsim`` to check what a user's shell really sees.
"""

from __future__ import annotations

import gzip
import json

import pytest
from conftest import KERNEL_OPS, dump_yaml, run_hwsim

from hwsim.cli.main import main

FIRST_LINE = "kernels on roofline-v100 (roofline), 6 ops, fidelity event"


def cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_error_line(err: str, *needles: str):
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hwsim: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


# ---------------------------------------------------------------- simulate
def test_simulate_prints_a_table_subprocess(kernel_workload):
    res = run_hwsim("simulate", str(kernel_workload))
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    lines = res.stdout.splitlines()
    assert lines[0] == FIRST_LINE
    assert any(line.strip().startswith("latency") for line in lines)
    assert "top 6 ops by latency:" in res.stdout
    assert "softmax3" in res.stdout


def test_json_to_stdout_and_table_to_stderr_subprocess(kernel_workload):
    res = run_hwsim("simulate", str(kernel_workload), "--json", "-")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["schema"] == "hwsim.report/1"
    assert len(doc["ops"]) == len(KERNEL_OPS)
    assert res.stderr.splitlines()[0] == FIRST_LINE


def test_simulate_in_process(capsys, kernel_workload):
    rc, out, err = cli(capsys, "simulate", kernel_workload, "--top", "2")
    assert rc == 0 and err == ""
    assert out.splitlines()[0] == FIRST_LINE
    assert "top 2 ops by latency:" in out


def test_several_targets_give_a_json_list(capsys, kernel_workload):
    rc, out, err = cli(capsys, "simulate", kernel_workload, "--target",
                       "roofline,roofline-910b", "--json", "-")
    assert rc == 0
    docs = json.loads(out)
    assert isinstance(docs, list) and len(docs) == 2
    assert [d["target"]["preset"] for d in docs] == ["roofline-v100", "roofline-910b"]
    # the 910B has more bandwidth and more fp16 peak: faster on every op
    assert docs[1]["totals"]["latency_s"] < docs[0]["totals"]["latency_s"]
    assert err.count("ops, fidelity event") == 2  # one table per target


def test_output_files(capsys, kernel_workload, tmp_path):
    rc, out, _ = cli(capsys, "simulate", kernel_workload, "--json", tmp_path / "r.json",
                     "--csv", tmp_path / "r.csv", "--chrome-trace", tmp_path / "t.json",
                     "--fidelity", "analytical")
    assert rc == 0
    assert out.splitlines()[0].endswith("fidelity analytical")
    assert json.loads((tmp_path / "r.json").read_text())["fidelity"] == "analytical"
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 1 + len(KERNEL_OPS)
    assert json.loads((tmp_path / "t.json").read_text())["traceEvents"]


def test_output_files_of_several_targets_are_one_file_each(capsys, kernel_workload, tmp_path):
    rc, _, _ = cli(capsys, "simulate", kernel_workload, "-t", "roofline-v100,roofline-910b",
                   "--csv", tmp_path / "r.csv", "--json", tmp_path / "r.json")
    assert rc == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kernels.yaml", "r.csv", "r.json"]
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0].startswith("target,preset,id,")
    assert len(lines) == 1 + 2 * len(KERNEL_OPS)
    assert len(json.loads((tmp_path / "r.json").read_text())) == 2


def test_set_reaches_workload_and_target(capsys, kernel_workload):
    rc, out, _ = cli(capsys, "simulate", kernel_workload, "--json", "-",
                     "--set", "ops.3.rows=8192", "--set", "target.kernel_launch_s=0")
    assert rc == 0
    doc = json.loads(out)
    softmax = doc["ops"][3]
    assert softmax["flops"] == 5 * 8192 * 4096
    assert doc["target"]["spec"]["kernel_launch_s"] == 0
    assert softmax["latency_s"] == pytest.approx(2 * 8192 * 4096 * 2 / 900e9, rel=1e-12)


# ---------------------------------------------------------------- targets / validate
def test_targets_lists_presets(capsys):
    rc, out, err = cli(capsys, "targets")
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("roofline: ")
    assert "  roofline-v100 (default): peak TFLOP/s: fp16 125.0, fp32 15.7, fp64 7.8; " \
           "DRAM 900 GB/s" in lines
    assert any(line.startswith("  roofline-910b: ") and "DRAM 1600 GB/s" in line
               for line in lines)
    assert any(line.startswith("  roofline-kunpeng920: ") for line in lines)


def test_validate_prints_each_case(capsys):
    from hwsim.validate import load_cases

    cases = load_cases()
    rc, out, err = cli(capsys, "validate")
    assert rc == 0, out
    for case in cases:
        assert case.name[:58] in out
    last = out.splitlines()[-1]
    # cases needing SpAtten's released traces (not shipped) are skipped, and counted so
    skipped = sum("skipped:" in line for line in out.splitlines())
    missed = sum(" MISS  known miss:" in line for line in out.splitlines())  # said, not hidden
    assert all(" skip  skipped:" in line for line in out.splitlines() if "skipped:" in line)
    assert "per target:" in out and "volta      measured: MAPE" in out
    assert last.startswith(f"{len(cases)} cases, {len(cases) - skipped - missed} within "
                           f"tolerance, 0 outside")
    assert (f"{missed} known miss" in last) == bool(missed)
    assert (f"{skipped} skipped (data absent)" in last) == bool(skipped)


def test_validate_one_target(capsys):
    rc, out, _ = cli(capsys, "validate", "--target", "ascend-910b")
    assert rc == 0
    body = [line for line in out.splitlines() if line and line[0] not in "=c " and
            not line.startswith(("per target", "  "))][:-1]
    assert body and all("ascend-910b" in line for line in body), body


def test_validate_an_unknown_target_is_an_error(capsys):
    rc, _, err = cli(capsys, "validate", "--target", "bogus")
    assert rc == 2 and "bogus" in err


def test_validate_exits_1_when_a_case_is_outside(capsys, tmp_path):
    cases = dump_yaml(tmp_path / "cases.yaml", [{
        "name": "wrong on purpose", "kind": "measured", "source": "test",
        "target": "roofline-v100",
        "workload": {"ops": [{"kind": "matmul", "m": 16, "n": 16, "k": 16}]},
        "metric": "latency_s", "expected": 1.0, "tolerance": 0.01}])
    rc, out, _ = cli(capsys, "validate", "--cases", cases)
    assert rc == 1
    assert "wrong on purpose" in out and "NO" in out


# ---------------------------------------------------------------- bad input
def _wl(tmp_path, data, name="wl.yaml"):
    return str(dump_yaml(tmp_path / name, data))


def _gz(path, data: bytes):
    path.write_bytes(gzip.compress(data))
    return path


OPS = [{"kind": "matmul", "m": 16, "n": 16, "k": 16}]


def _garbage_trace(tmp_path):
    (tmp_path / "g.json.gz").write_bytes(b"\x00garbage, not gzip")
    return ["simulate", _wl(tmp_path, {"trace": "g.json.gz", "seq_len": 8})]


def _bad_json_trace(tmp_path):
    _gz(tmp_path / "g.json.gz", b"{this is not json")
    return ["simulate", _wl(tmp_path, {"trace": "g.json.gz", "seq_len": 8})]


def _wrong_schema_trace(tmp_path):
    _gz(tmp_path / "g.json.gz", json.dumps({"schema": "onnx/7", "nodes": []}).encode())
    return ["simulate", _wl(tmp_path, {"trace": "g.json.gz", "seq_len": 8})]


def _bad_hw_file(tmp_path):
    hw = dump_yaml(tmp_path / "hw.yaml", {"target": "roofline", "spec": {
        "peak_flops_per_s": {"fp16": 1e12}, "dram_bw_bytes_per_s": "1 GHz"}})
    return ["simulate", _wl(tmp_path, {"ops": OPS}), "-t", str(hw)]


BAD_INPUT = {
    "unknown_key": (lambda p: ["simulate", _wl(p, {"ops": OPS, "seq_lenn": 4})],
                    ["wl.yaml: seq_lenn: unknown key (did you mean 'seq_len'?)"]),
    "wrong_type": (lambda p: ["simulate", _wl(p, {"ops": OPS, "batch": "two"})],
                   ["wl.yaml: batch: expected an integer, got 'two'"]),
    "missing_trace": (lambda p: ["simulate", _wl(p, {"trace": "none.json.gz"})],
                      ["wl.yaml: trace: trace file not found", "none.json.gz"]),
    "unknown_model": (lambda p: ["simulate", _wl(p, {"model": "gpt-5"})],
                      ["wl.yaml: model: unknown model 'gpt-5'"]),
    "unknown_target": (lambda p: ["simulate", _wl(p, {"ops": OPS}), "-t", "tpu-v9"],
                       ["--target: unknown target 'tpu-v9'", "roofline-v100"]),
    "garbage_trace": (_garbage_trace, ["g.json.gz: not a readable graph file"]),
    "gzip_bad_json": (_bad_json_trace, ["g.json.gz: not a readable graph file",
                                        "JSONDecodeError"]),
    "wrong_schema": (_wrong_schema_trace, ["g.json.gz: schema: unsupported schema 'onnx/7'"]),
    "no_workload_file": (lambda p: ["simulate", str(p / "missing.yaml")],
                         ["missing.yaml: workload file not found"]),
    "invalid_yaml": (lambda p: ["simulate", str(_write(p / "b.yaml", "ops: [\n"))],
                     ["b.yaml: not valid YAML"]),
    "set_index": (lambda p: ["simulate", _wl(p, {"ops": OPS}), "--set", "ops.4.m=3"],
                  ["--set: ops.4: no list item '4' (the list has 1)"]),
    "set_no_equals": (lambda p: ["simulate", _wl(p, {"ops": OPS}), "--set", "seq_len"],
                      ["--set: expected key=value, got 'seq_len'"]),
    "set_bad_value": (lambda p: ["simulate", _wl(p, {"ops": OPS}), "--set", "seq_len=many"],
                      ["seq_len: expected an integer, got 'many'"]),
    "set_target_field": (lambda p: ["simulate", _wl(p, {"ops": OPS}), "--set",
                                    "target.dram_bw_bytes_per_s=fast"],
                         ["--set: target.dram_bw_bytes_per_s: expected a quantity"]),
    "set_target_unknown": (lambda p: ["simulate", _wl(p, {"ops": OPS}), "--set",
                                      "target.dram_bw=1e9"],
                           ["--set: target.dram_bw: unknown field"]),
    "no_peak_for_dtype": (lambda p: ["simulate", _wl(p, {"ops": OPS, "dtype": "bf16"})],
                          ["no peak_flops_per_s for dtype 'bf16'"]),
    "bad_hw_file": (_bad_hw_file, ["hw.yaml: spec.dram_bw_bytes_per_s: unit of '1 GHz'"]),
    "unknown_pruning": (lambda p: ["simulate", _wl(p, {"ops": OPS,
                                                       "pruning": [{"method": "magic"}]})],
                        ["pruning.0.method: unknown pruning method 'magic'"]),
    "bad_cases_file": (lambda p: ["validate", "--cases", str(_write(p / "c.yaml", "a: 1"))],
                       ["c.yaml: expected a list of cases"]),
}


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_one_line_exit_2(capsys, tmp_path, case):
    build, needles = BAD_INPUT[case]
    argv = build(tmp_path)
    rc, out, err = cli(capsys, *argv)
    assert rc == 2
    assert out == ""
    assert_one_error_line(err, *needles)


@pytest.mark.parametrize("case", ["unknown_key", "garbage_trace", "set_index"])
def test_bad_input_subprocess_has_no_traceback(tmp_path, case):
    build, needles = BAD_INPUT[case]
    res = run_hwsim(*build(tmp_path))
    assert res.returncode == 2
    assert res.stdout == ""
    assert_one_error_line(res.stderr, *needles)


@pytest.mark.parametrize("where", ["global", "subcommand"])
def test_debug_shows_the_traceback(tmp_path, where):
    wl = _wl(tmp_path, {"ops": OPS, "seq_lenn": 4})
    argv = ["--debug", "simulate", wl] if where == "global" else ["simulate", wl, "--debug"]
    res = run_hwsim(*argv)
    assert res.returncode == 1
    assert "Traceback (most recent call last)" in res.stderr
    assert "hwsim.errors.InputError" in res.stderr
    assert "seq_lenn: unknown key" in res.stderr
