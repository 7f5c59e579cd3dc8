"""Shipped workloads and sweeps named without a path (hwsim.workload.shipped, issue 17
point 3): the lookup rule, ``hwsim workloads``, sweeps that name a shipped workload,
and the clear stop of a workload whose data hwsim does not ship."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

import hwsim
from hwsim.cli.main import main
from hwsim.errors import InputError
from hwsim.workload import load_workload, shipped

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = sorted(p.stem for p in (ROOT / "workloads").glob("*.yaml"))
SWEEPS = sorted(p.stem for p in (ROOT / "sweeps").glob("*.yaml"))


def cli(capsys, *args):
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_a_checkout_ships_its_own_folders():
    assert shipped.folder("workload") == ROOT / "workloads"
    assert shipped.folder("sweep") == ROOT / "sweeps"
    assert shipped.names() == WORKLOADS and shipped.names("sweep") == SWEEPS


@pytest.mark.parametrize("ref", ["bert-base", "bert-base.yaml", "bert-base.yml",
                                 "workloads/bert-base.yaml", "./workloads/bert-base.yaml"])
def test_every_form_of_a_shipped_name_finds_the_file(ref, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside the repository: no such relative path here
    assert Path(shipped.find(ref)) == ROOT / "workloads" / "bert-base.yaml"


def test_an_existing_file_wins_over_the_shipped_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bert-base.yaml").write_text(yaml.safe_dump(
        {"name": "mine", "model": "bert-base", "seq_len": 64}), encoding="utf-8")
    assert shipped.find("bert-base.yaml") == "bert-base.yaml"
    assert load_workload("bert-base.yaml").seq_len == 64
    assert load_workload("bert-base").seq_len == 512  # no such file: the shipped one


def test_unknown_names_are_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as e:
        shipped.find("bert-bse")
    msg = str(e.value)
    assert "bert-bse" in msg and "no shipped workload is named 'bert-bse'" in msg
    assert "did you mean 'bert-base'?" in msg and "hwsim workloads" in msg
    # a path into another folder is not a shipped name: plain "not found"
    with pytest.raises(InputError, match="not found") as e:
        shipped.find("elsewhere/bert-base.yaml")
    assert "shipped" not in str(e.value)
    assert shipped.path("elsewhere/bert-base.yaml") is None
    assert shipped.path("sweeps/bert-base.yaml") is None  # the sweeps' folder, not workloads'


def test_simulate_by_name_from_another_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc, out, _ = cli(capsys, "simulate", "bert-base", "--target", "roofline", "--json", "-")
    assert rc == 0
    by_name = json.loads(out)
    direct = hwsim.simulate(ROOT / "workloads" / "bert-base.yaml", "roofline").to_dict()
    assert by_name["totals"] == direct["totals"]
    assert by_name["workload"] == direct["workload"]


def test_simulate_unknown_name_exits_2_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc, out, err = cli(capsys, "simulate", "llama2-7b-prefil")
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "did you mean 'llama2-7b-prefill'?" in err


def test_workloads_lists_every_shipped_workload(capsys):
    rc, out, err = cli(capsys, "workloads", "--json")
    assert rc == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["name"] for r in rows] == WORKLOADS
    for r in rows:
        data = yaml.safe_load(Path(r["path"]).read_text(encoding="utf-8"))
        assert r["phase"] == data.get("phase", "prefill")
        assert r["target"] == data.get("target", "")
        if "model" in data:
            assert r["model"] == data["model"]
        assert r["description"], r["name"]  # every shipped workload says what it is
    by = {r["name"]: r for r in rows}
    assert by["bert-base"]["description"] == (
        "BERT-base encoder over 512 tokens: SpAtten's summarization setting (all queries at "
        "once), dense baseline.")
    assert by["attention-kernels"]["model"] == "ops: 5"
    assert by["spatten-gpt2-small-trace-pruned"]["model"] == "trace (spatten-csv)"


def test_workloads_table_fits_the_terminal(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    rc, out, err = cli(capsys, "workloads")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split() == ["name", "model", "phase", "target", "description"]
    assert len(lines) == 1 + len(WORKLOADS)
    assert max(map(len, lines)) <= 100
    assert any(line.startswith("llama2-7b-generate ") and " generate " in line for line in lines)
    assert f"{len(WORKLOADS)} shipped workloads" in err and "hwsim simulate NAME" in err


def test_workloads_named_target_is_listed(tmp_path, monkeypatch, capsys):
    """A workload that names its target (``target:``) shows it in the listing."""
    folder = tmp_path / "workloads"
    folder.mkdir()
    (folder / "mine.yaml").write_text("# A GEMM on the Ascend cube. More text.\n"
                                      "ops: [{kind: matmul, m: 64, n: 64, k: 64}]\n"
                                      "target: ascend-910b\n", encoding="utf-8")
    monkeypatch.setattr(shipped, "folder", lambda kind="workload": folder)
    (row,) = shipped.catalogue()
    assert row == {"name": "mine", "model": "ops: 1", "phase": "prefill",
                   "target": "ascend-910b", "description": "A GEMM on the Ascend cube.",
                   "path": str(folder / "mine.yaml")}


def test_sweeps_are_listed_and_named(capsys, tmp_path, monkeypatch):
    rc, out, _ = cli(capsys, "workloads", "--sweeps", "--json")
    assert rc == 0
    rows = {r["name"]: r for r in map(json.loads, out.splitlines())}
    assert sorted(rows) == SWEEPS
    assert rows["bert-seq-bw"]["workload"] == "bert-base"
    assert rows["llava-pruning-targets"]["target"] == "roofline,volta,ascend,armv8"
    from hwsim.sweep import load_sweep

    monkeypatch.chdir(tmp_path)
    spec = load_sweep("bert-seq-bw")
    assert Path(spec.workload) == ROOT / "workloads" / "bert-base.yaml"


def test_a_copied_sweep_finds_its_shipped_workload(tmp_path, monkeypatch):
    """sweeps/*.yaml name ``workloads/NAME.yaml``: copied anywhere (as a user starts
    their own) and run from anywhere, the name still finds the shipped file."""
    from hwsim.sweep import load_sweep

    mine = tmp_path / "elsewhere"
    mine.mkdir()
    shutil.copy(ROOT / "sweeps" / "bert-seq-bw.yaml", mine / "my-sweep.yaml")
    monkeypatch.chdir(tmp_path)
    spec = load_sweep(mine / "my-sweep.yaml")
    assert Path(spec.workload) == ROOT / "workloads" / "bert-base.yaml"
    (mine / "bad.yaml").write_text("workload: workloads/no-such.yaml\naxes: {seq_len: [64]}\n",
                                   encoding="utf-8")
    with pytest.raises(InputError, match="workload file not found: workloads/no-such.yaml"):
        load_sweep(mine / "bad.yaml")


def test_unknown_sweep_name_suggests(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc, _, err = cli(capsys, "sweep", "bert-seq-bx", "-o", "r.parquet")
    assert rc == 2 and "did you mean 'bert-seq-bw'?" in err and err.count("\n") == 1


# ------------------------------------------------------- data hwsim does not ship
TRACE_WORKLOADS = [n for n in WORKLOADS if n.startswith("spatten-") and "-trace-" in n]


def test_the_trace_workloads_are_the_released_ones():
    from hwsim.workload.spatten_csv import RELEASED

    assert len(TRACE_WORKLOADS) == 4
    for name in TRACE_WORKLOADS:
        data = yaml.safe_load((ROOT / "workloads" / f"{name}.yaml").read_text(encoding="utf-8"))
        assert Path(data["trace"]).name in RELEASED


@pytest.mark.parametrize("name", TRACE_WORKLOADS)
def test_a_missing_released_trace_says_which_file_and_where(name, tmp_path, monkeypatch,
                                                           capsys):
    """With the data absent (here: the trace pointed at an empty folder), the shipped
    trace workload stops with exit 2 and one line naming the file, the authors'
    repository and path, and how to give the file."""
    from hwsim.workload.spatten_csv import RELEASED

    data = yaml.safe_load((ROOT / "workloads" / f"{name}.yaml").read_text(encoding="utf-8"))
    short = Path(data["trace"]).name
    monkeypatch.chdir(tmp_path)
    rc, out, err = cli(capsys, "simulate", name, "-t", "spatten", "--set",
                       f"trace={tmp_path / 'absent' / short}")
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert f"trace file not found: {tmp_path / 'absent' / short}" in err
    assert RELEASED[short] in err and "github.com/mit-han-lab/spatten" in err
    assert "--set trace=PATH" in err and "Traceback" not in err


def test_validation_skips_cases_whose_data_is_absent(tmp_path):
    from hwsim.validate import run_cases

    case = {"name": "needs data", "kind": "published", "source": "a test",
            "target": "spatten", "workload": "workloads/spatten-gpt2-small-trace-pruned.yaml",
            "metric": "power_w", "expected": 8.3, "tolerance": 0.35,
            "requires": [str(tmp_path / "absent" / "gpt2-small-wikitext2-pruned.csv")]}
    path = tmp_path / "cases.yaml"
    path.write_text(yaml.safe_dump([case]), encoding="utf-8")
    (r,) = run_cases(path=str(path))
    assert r.ok and r.simulated is None
    assert r.message == "skipped: data absent (gpt2-small-wikitext2-pruned.csv)"


def test_validation_cases_find_shipped_workloads_by_their_folder_name(tmp_path):
    """A case file anywhere names ``workloads/NAME.yaml``: the shipped workload."""
    from hwsim.validate import run_cases

    case = {"name": "bert flops", "kind": "published", "source": "a test",
            "workload": "workloads/bert-base.yaml", "metric": "graph_dense_flops",
            "expected": 96.8e9, "tolerance": 0.01}
    path = tmp_path / "cases.yaml"
    path.write_text(yaml.safe_dump([case]), encoding="utf-8")
    (r,) = run_cases(path=str(path))
    assert r.simulated == pytest.approx(96.8e9, rel=0.01)


def test_first_sentence():
    assert shipped.first_sentence("One. Two.") == "One."
    assert shipped.first_sentence("Lin et al. 2024 show it. More.") == \
        "Lin et al. 2024 show it."
    assert shipped.first_sentence("no full stop: 3.5 GB") == "no full stop: 3.5 GB"
    assert shipped.first_sentence("at 512 (128 .. 512) with it, e.g. this. Then") == \
        "at 512 (128 .. 512) with it, e.g. this."
