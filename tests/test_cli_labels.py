"""Labels that tell the truth (issue 17, point 2).

A workload run with overrides is named with them, in the table, the JSON and a
sweep's ``workload`` column; a workload may name the machine it is written for
(``target:``), which runs when the command line names none; ``hwsim validate``
refuses a target it does not know and prints skipped cases as skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, dump_yaml

import hwsim
from hwsim.cli.main import main
from hwsim.workload import Workload, load_workload, workload_from_dict

MATMUL = [{"kind": "matmul", "m": 64, "n": 64, "k": 64, "dtype": "fp16"}]


def cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def gemm_m64(tmp_path) -> Path:
    """A kernel workload whose name states its size, as the shipped ones do."""
    return dump_yaml(tmp_path / "gemm.yaml", {"name": "gemm-m64", "ops": MATMUL})


# ---------------------------------------------------------------- overrides in the name
def test_set_renames_the_workload_in_table_and_json(capsys, gemm_m64):
    rc, out, err = cli(capsys, "simulate", gemm_m64, "--set", "ops.0.m=8192", "--json", "-")
    assert rc == 0
    doc = json.loads(out)
    assert doc["workload"]["name"] == "gemm-m64 [ops.0.m=8192]"
    assert doc["workload"]["ops"][0]["m"] == 8192
    assert err.splitlines()[0].startswith("gemm-m64 [ops.0.m=8192] on roofline-v100")


def test_no_set_keeps_the_name(capsys, gemm_m64):
    rc, out, _ = cli(capsys, "simulate", gemm_m64, "--json", "-")
    assert rc == 0 and json.loads(out)["workload"]["name"] == "gemm-m64"


def test_a_model_workload_names_its_new_size():
    wl = load_workload(ROOT / "workloads" / "bert-base.yaml", [("seq_len", 256),
                                                               ("tiling.attention", "flash")])
    assert wl.seq_len == 256
    assert wl.name == "bert-base-512 [seq_len=256, tiling.attention=flash]"  # not ...-512 alone


def test_setting_the_name_is_the_users_label(capsys, gemm_m64):
    rc, out, _ = cli(capsys, "simulate", gemm_m64, "--set", "ops.0.m=128", "--set",
                     "name=mine", "--json", "-")
    assert rc == 0 and json.loads(out)["workload"]["name"] == "mine"


def test_target_overrides_do_not_rename_the_workload(capsys, gemm_m64):
    rc, out, _ = cli(capsys, "simulate", gemm_m64, "--set", "target.kernel_launch_s=0",
                     "--json", "-")
    assert rc == 0 and json.loads(out)["workload"]["name"] == "gemm-m64"


def test_api_overrides_of_a_workload_object_and_of_a_mapping():
    wl = workload_from_dict({"name": "g", "ops": MATMUL})
    r = hwsim.simulate(wl, sets={"ops.0.k": 128, "pruning": []}, fidelity="analytical")
    assert r.workload.name == "g [ops.0.k=128, pruning=[]]"
    assert r.graph.header["name"] == r.workload.name  # what plots and the table read
    r = hwsim.simulate({"ops": MATMUL}, sets=["ops.0.n=32"], fidelity="analytical")
    assert r.workload.name == "workload [ops.0.n=32]"


def test_sweep_rows_name_the_shared_workload_and_keep_axes_as_columns():
    pytest.importorskip("pyarrow")
    df = hwsim.sweep({"name": "s", "workload": {"name": "g", "ops": MATMUL},
                      "axes": {"ops.0.m": [16, 32], "target.kernel_launch_s": [0.0]}},
                     progress=False)
    assert list(df["status"]) == ["ok", "ok"]
    # each point's own value is its column; the workload column is what the rows share
    assert list(df["workload"]) == ["g", "g"] and list(df["ops.0.m"]) == [16, 32]
    fixed = hwsim.sweep({"name": "s", "workload": {"name": "g", "ops": MATMUL},
                         "set": {"ops.0.k": 32}, "axes": {"ops.0.m": [16, 32]}},
                        progress=False)
    assert list(fixed["workload"]) == ["g [ops.0.k=32]"] * 2  # a fixed set: has no column


def test_a_failed_sweep_point_is_named_as_well():
    pytest.importorskip("pyarrow")
    # the first value is checked before the sweep runs; the second fails as a point
    df = hwsim.sweep({"name": "s", "workload": {"name": "g", "ops": MATMUL},
                      "axes": {"ops.0.m": [16, 0]}}, progress=False)
    assert list(df["status"]) == ["ok", "error"]
    assert list(df["workload"]) == ["g", "g"]


# ---------------------------------------------------------------- a workload's own target
def test_a_workload_runs_on_its_own_target(capsys, tmp_path):
    wl = dump_yaml(tmp_path / "v.yaml", {"name": "v", "target": "volta", "ops": MATMUL})
    rc, out, _ = cli(capsys, "simulate", wl, "--json", "-", "--fidelity", "analytical")
    assert rc == 0 and json.loads(out)["target"]["name"] == "volta"
    rc, out, _ = cli(capsys, "simulate", wl, "--json", "-", "--fidelity", "analytical",
                     "-t", "roofline-910b")  # the command line wins
    assert rc == 0 and json.loads(out)["target"]["preset"] == "roofline-910b"
    r = hwsim.simulate(wl, fidelity="analytical")  # and in the API
    assert r.target.name == "volta"


def test_a_workload_may_name_a_preset_or_a_hardware_file_beside_it(tmp_path):
    wl = dump_yaml(tmp_path / "p.yaml", {"target": "volta-v100-pcie", "ops": MATMUL})
    assert hwsim.simulate(wl, fidelity="analytical").target.preset == "volta-v100-pcie"
    (tmp_path / "hw").mkdir()
    dump_yaml(tmp_path / "hw" / "slow.yaml", {"target": "roofline", "name": "slow", "spec": {
        "peak_flops_per_s": {"fp16": 1e12}, "dram_bw_bytes_per_s": 1e9}})
    wl = dump_yaml(tmp_path / "f.yaml", {"target": "hw/slow.yaml", "ops": MATMUL})
    r = hwsim.simulate(str(wl), fidelity="analytical")
    assert r.target.spec.dram_bw_bytes_per_s == 1e9


@pytest.mark.parametrize("target,needle", [
    ("volt", "target: unknown target 'volt' (did you mean 'volta'?"),
    ("hw/none.yaml", "target: hardware file not found"),
])
def test_an_unknown_workload_target_names_file_and_field(capsys, tmp_path, target, needle):
    wl = dump_yaml(tmp_path / "bad.yaml", {"target": target, "ops": MATMUL})
    rc, out, err = cli(capsys, "simulate", wl)
    assert rc == 2 and out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith(f"hwsim: error: {wl}: {needle}"), err


def test_shipped_workloads_named_for_a_target_name_it():
    named = 0
    for path in sorted((ROOT / "workloads").glob("*.yaml")):
        prefix = path.stem.split("-")[0]
        if prefix in ("volta", "armv8", "ascend", "spatten"):
            # the file's own field: a released-trace workload cannot load without its data
            assert yaml.safe_load(path.read_text())["target"] == prefix, path.name
            named += 1
    assert named >= 20
    assert load_workload(ROOT / "workloads" / "llama3.2-1b-armv8-decode.yaml").target == "armv8"
    assert load_workload(ROOT / "workloads" / "bert-base.yaml").target == ""


def test_a_sweep_without_target_runs_the_workloads():
    pytest.importorskip("pyarrow")
    df = hwsim.sweep({"name": "s", "workload": {"target": "volta", "ops": MATMUL},
                      "axes": {"ops.0.m": [16]}}, progress=False)
    assert list(df["preset"]) == ["volta-v100-sxm2"]
    df = hwsim.sweep({"name": "s", "workload": {"target": "volta", "ops": MATMUL},
                      "target": "roofline", "axes": {"ops.0.m": [16]}}, progress=False)
    assert list(df["preset"]) == ["roofline-v100"]  # the sweep's own target wins


def test_target_round_trips_through_to_dict():
    wl = workload_from_dict({"target": "ascend", "ops": MATMUL})
    assert Workload(**{k: v for k, v in wl.to_dict().items()}).target == "ascend"


# ---------------------------------------------------------------- validate
def test_validate_an_unknown_target_lists_the_known_ones(capsys):
    rc, out, err = cli(capsys, "validate", "--target", "bogus")
    assert rc == 2 and out == ""
    assert len(err.splitlines()) == 1
    assert "--target: no target or preset named 'bogus'" in err
    assert "volta-v100-sxm2" in err and "ascend" in err and "'graph'" in err


def test_validate_api_refuses_an_unknown_target():
    from hwsim.validate import run_cases

    with pytest.raises(hwsim.InputError, match="no target or preset named 'bogus'"):
        run_cases(target="bogus")


def test_a_skipped_case_says_skipped_and_why(capsys, tmp_path):
    cases = dump_yaml(tmp_path / "cases.yaml", [{
        "name": "needs data", "kind": "measured", "source": "test", "target": "roofline-v100",
        "workload": {"ops": MATMUL}, "metric": "latency_s", "expected": 1.0,
        "tolerance": 0.01, "requires": ["no/such/measurements.csv"]}])
    from hwsim.validate import run_cases

    (result,) = run_cases(path=str(cases))
    assert result.skipped and result.simulated is None
    rc, out, _ = cli(capsys, "validate", "--cases", cases, "--no-microbenchmarks")
    assert rc == 0
    row = next(line for line in out.splitlines() if line.startswith("needs data"))
    assert row.split()[-5:] == ["skip", "skipped:", "data", "absent",
                                "(measurements.csv)"]
    assert " yes" not in row
    assert out.splitlines()[-1].endswith("1 skipped (data absent)")


def test_validate_refuses_a_folder_without_cases(capsys, tmp_path):
    rc, _, err = cli(capsys, "validate", "--cases", tmp_path)
    assert rc == 2 and "no case files (*.yaml) in this folder" in err
