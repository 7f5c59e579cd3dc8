"""The command line for a newcomer (issue 17, points 5, 6 and 7).

Several targets at once (a side-by-side table, one file per output); one clear
line and exit status 2 where a traceback used to be (output paths, ``--plot``
suffixes, tracing without torch, a closed stdout, a mapping given to the API);
progress bars, ``--version`` and help text for every option.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import KERNEL_OPS, ROOT, dump_yaml

import hwsim
from hwsim import progress
from hwsim.cli.main import _parser, main
from hwsim.report.table import si
from hwsim.workload import Tiling, Workload


def cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def one_error_line(err: str, *needles: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hwsim: error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


# ---------------------------------------------------------------- several targets
def test_several_targets_side_by_side(capsys, kernel_workload):
    rc, out, _ = cli(capsys, "simulate", kernel_workload, "-t", "roofline-v100,roofline-910b",
                     "--fidelity", "analytical")
    assert rc == 0
    block = out[out.index("kernels on 2 targets"):].splitlines()
    assert block[0] == "kernels on 2 targets, fidelity analytical"
    head = block[1].split()
    assert head == ["roofline-v100", "(roofline)", "roofline-910b", "(roofline)"]
    rows = {line.split("  ")[1].strip(): line for line in block[2:]}
    assert {"latency", "vs fastest", "throughput", "flops", "dram read", "dram write",
            "energy", "power", "memory", "ops"} <= set(rows)
    v100 = hwsim.simulate(kernel_workload, "roofline-v100", fidelity="analytical").totals
    a910 = hwsim.simulate(kernel_workload, "roofline-910b", fidelity="analytical").totals
    cells = rows["latency"].split("latency")[1].split("  ")
    assert [c.strip() for c in cells if c.strip()] == [si(v100["latency_s"], "s"),
                                                       si(a910["latency_s"], "s")]
    assert rows["vs fastest"].split()[-2:] == [
        f"{v100['latency_s'] / a910['latency_s']:.2f}x", "1.00x"]  # the 910B is faster
    assert rows["dram read"].count(si(v100["dram_read_bytes"], "B")) == 2  # same bytes
    # the tables of each target come first; the comparison is last, where it is read
    assert out.index("kernels on roofline-v100") < out.index("kernels on 2 targets")


def test_side_by_side_with_a_baseline_and_a_generation():
    from hwsim.report.several import side_by_side

    pruned = ROOT / "workloads" / "llama2-7b-generate-h2o.yaml"
    sets = ["new_tokens=4", "seq_len=64"]
    reports = [hwsim.simulate(pruned, t, sets=sets, fidelity="analytical", baseline=True)
               for t in ("roofline", "volta")]
    lines = side_by_side(reports).splitlines()
    rows = {line[2:17].strip(): line[17:].split() for line in lines[2:]}
    assert rows["TTFT"] == " ".join(si(r.totals["ttft_s"], "s") for r in reports).split()
    assert rows["TPOT"] == " ".join(si(r.totals["tpot_s"], "s") for r in reports).split()
    assert rows["pruning speedup"] == [
        f"{r.baseline.totals['latency_s'] / r.totals['latency_s']:.2f}x" for r in reports]
    assert rows["ops (prefill)"] == [f"{len(r.rows):,}" for r in reports]


def test_one_target_prints_no_comparison(capsys, kernel_workload):
    rc, out, _ = cli(capsys, "simulate", kernel_workload)
    assert rc == 0 and "targets, fidelity" not in out


def test_several_targets_one_csv_and_one_timeline(capsys, kernel_workload, tmp_path):
    import pandas as pd

    out = tmp_path / "out"
    out.mkdir()
    rc, _, _ = cli(capsys, "simulate", kernel_workload, "-t", "roofline,volta",
                   "--csv", out / "ops.csv", "--chrome-trace", out / "t.json")
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["ops.csv", "t.json"]
    ops = pd.read_csv(out / "ops.csv")
    assert list(ops.columns[:3]) == ["target", "preset", "id"]
    assert ops.groupby("preset").size().to_dict() == {"roofline-v100": len(KERNEL_OPS),
                                                     "volta-v100-sxm2": len(KERNEL_OPS)}
    events = json.loads((out / "t.json").read_text())["traceEvents"]
    names = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert names == {1: "roofline-v100 (roofline)", 2: "volta-v100-sxm2 (volta)"}
    ops_per_pid = {pid: sum(1 for e in events if e["pid"] == pid and e.get("tid") == 1
                            and e["ph"] == "X") for pid in names}
    assert ops_per_pid == {1: len(KERNEL_OPS), 2: len(KERNEL_OPS)}


def test_help_says_what_several_targets_write(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "several targets: one file, its first columns target and preset" in text
    assert "several targets: one file, a process per target" in text


# ---------------------------------------------------------------- tracebacks left
@pytest.mark.parametrize("option", ["--json", "--csv", "--chrome-trace", "--plot", "--steps"])
def test_an_output_in_a_missing_folder_is_one_line(capsys, kernel_workload, tmp_path, option):
    path = tmp_path / "no" / "such" / "out.png"
    rc, out, err = cli(capsys, "simulate", kernel_workload, option, path)
    assert rc == 2 and out == ""  # refused before simulating: no table
    one_error_line(err, f"{option}: cannot write {path}: the folder {path.parent} does not "
                        f"exist")


def test_an_output_that_is_a_folder_is_one_line(capsys, kernel_workload, tmp_path):
    rc, _, err = cli(capsys, "simulate", kernel_workload, "--json", tmp_path)
    assert rc == 2
    one_error_line(err, f"--json: {tmp_path} is a folder; give a file name")


@pytest.mark.parametrize("option", ["--json", "--csv", "--chrome-trace"])
def test_a_write_that_fails_late_is_one_line(capsys, kernel_workload, option):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full (Linux): a file whose writes fail, disk full")
    rc, _, err = cli(capsys, "simulate", kernel_workload, option, "/dev/full")
    assert rc == 2
    one_error_line(err, f"{option}: cannot write /dev/full: No space left on device")


def test_a_bad_plot_suffix_is_one_line(capsys, kernel_workload, tmp_path):
    rc, out, err = cli(capsys, "simulate", kernel_workload, "--plot", tmp_path / "p.xyz")
    assert rc == 2 and out == ""
    one_error_line(err, "--plot: cannot write a figure as", "p.xyz", ".png", ".pdf", ".svg")


def test_a_good_plot_suffix_writes_the_figure(capsys, kernel_workload, tmp_path):
    rc, _, _ = cli(capsys, "simulate", kernel_workload, "--plot", tmp_path / "p.svg",
                   "--fidelity", "analytical")
    assert rc == 0 and (tmp_path / "p.svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize("argv,needles", [
    (["simulate", "{folder}"], ["is a directory, expected a workload file"]),
    (["simulate", "{wl}", "--top", "-1"], ["--top: expected a number of ops >= 0, got -1"]),
    (["calibrate", "--fit", "{folder}", "-t", "volta"], ["is a directory; expected the "
                                                         "calibration file (CSV)"]),
    (["calibrate", "--json", "{folder}/no/c.json"], ["--json: cannot write"]),
    (["calibrate", "--preset", "bogus"], ["--preset: unknown target 'bogus'"]),
    (["serve", "{wl}", "--csv", "{folder}/no/r.csv"], ["--csv: cannot write"]),
    (["trace", "gpt2", "-o", "{folder}/no/g.json.gz"], ["--output: cannot write"]),
    (["simulate", "{wl}", "-t", "x" * 5000], ["--target: unknown target 'xxx"]),
])
def test_other_bad_arguments_are_one_line(capsys, kernel_workload, tmp_path, argv, needles):
    argv = [a.format(folder=tmp_path, wl=kernel_workload) for a in argv]
    rc, out, err = cli(capsys, *argv)
    assert rc == 2 and out == ""
    one_error_line(err, *needles)


# Python with torch and transformers hidden, then the CLI with the script's arguments.
NO_TORCH = textwrap.dedent("""
    import sys

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "transformers"):
                raise ImportError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoTorch())
    from hwsim.cli.main import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.parametrize("argv", [["trace", "gpt2"], ["trace", "gpt2", "--template"],
                                  ["trace", "minilm-l6", "--scores", "--text", "x.txt"]])
def test_trace_without_torch_is_one_line(tmp_path, argv):
    res = subprocess.run([sys.executable, "-c", NO_TORCH, *argv], capture_output=True,
                         text=True, env=env(), cwd=tmp_path, timeout=120)
    assert res.returncode == 2, res.stderr
    assert res.stdout == ""
    one_error_line(res.stderr, "hwsim trace: tracing needs torch (pip install 'hwsim[trace]'")


def test_a_closed_stdout_ends_quietly():
    """``hwsim targets | head -1``: the reader goes away; no traceback, status 141."""
    proc = subprocess.Popen([sys.executable, "-m", "hwsim", "targets"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env(), cwd=ROOT)
    proc.stdout.close()  # before hwsim writes a byte: every write meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""


def test_head_of_targets_in_a_shell():
    res = subprocess.run(f"'{sys.executable}' -m hwsim targets | head -1", shell=True,
                         capture_output=True, text=True, env=env(), cwd=ROOT, timeout=120)
    assert res.stdout.startswith("roofline: ") and res.stdout.count("\n") == 1
    assert res.stderr == ""


def test_simulate_takes_a_mapping_checked_as_a_file():
    r = hwsim.simulate({"name": "k", "ops": KERNEL_OPS[:1]}, fidelity="analytical")
    assert r.workload.name == "k" and len(r.rows) == 1
    with pytest.raises(hwsim.InputError) as e:
        hwsim.simulate({"ops": KERNEL_OPS[:1], "seq_lenn": 3})
    assert str(e.value) == "<workload>: seq_lenn: unknown key (did you mean 'seq_len'?)"
    with pytest.raises(hwsim.InputError, match="expected a workload: a YAML path, a mapping"):
        hwsim.simulate(42)
    with pytest.raises(hwsim.InputError, match="expected a target, preset or hardware YAML"):
        hwsim.simulate({"ops": KERNEL_OPS[:1]}, target=7)


def test_workload_takes_a_tiling_mapping():
    wl = Workload(ops=KERNEL_OPS[:1], tiling={"attention": "flash", "block_q": 64})
    assert wl.tiling == Tiling(attention="flash", block_q=64)
    with pytest.raises(hwsim.InputError) as e:
        Workload(tiling={"attn": "flash"})
    assert str(e.value) == "Workload(...): tiling.attn: unknown key (did you mean 'attention'?)"
    with pytest.raises(hwsim.InputError, match="tiling: expected a hwsim.workload.Tiling or a "
                                               "mapping of its fields"):
        Workload(tiling="flash")
    with pytest.raises(hwsim.InputError, match="tiling.attention: expected one of auto"):
        Workload(tiling={"attention": "fast"})


# ---------------------------------------------------------------- feedback on long work
def test_version_is_the_installed_metadata(capsys):
    from hwsim.cli.options import version

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out == f"hwsim {version()}\n"
    from importlib import metadata

    try:
        assert version() == metadata.version("hwsim")
    except metadata.PackageNotFoundError:
        assert version() == hwsim.__version__


def _actions(parser: argparse.ArgumentParser, path: str = "hwsim"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{path} {name}")
        else:
            yield path, action


def test_every_option_of_every_command_has_help():
    actions = list(_actions(_parser()))
    commands = {path for path, _ in actions}
    assert {"hwsim simulate", "hwsim serve", "hwsim trace", "hwsim models", "hwsim targets",
            "hwsim validate", "hwsim calibrate", "hwsim sweep", "hwsim plot"} <= commands
    missing = [f"{path} {'/'.join(a.option_strings) or a.dest}" for path, a in actions
               if not a.help or a.help == argparse.SUPPRESS]
    assert missing == []


def test_top_level_help_is_plain_text(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "``" not in out and ":mod:" not in out and ":func:" not in out
    assert "hardware simulator" in out and "--version" in out


def test_tqdm_is_a_declared_dependency():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.split(">")[0].split("=")[0].strip() == "tqdm" for d in deps)


def test_progress_only_when_asked_or_on_a_terminal(capsys, kernel_workload):
    rc, _, err = cli(capsys, "simulate", kernel_workload)
    assert rc == 0 and err == ""  # stderr is no terminal here: no bar
    rc, _, err = cli(capsys, "--progress", "simulate", kernel_workload)
    assert rc == 0 and f"simulate on roofline-v100:   0%|          | 0/{len(KERNEL_OPS)} " \
                       f"[" in err  # a bar over the ops, on stderr
    rc, _, err = cli(capsys, "simulate", kernel_workload, "--progress", "--baseline")
    assert rc == 0 and err.count("simulate on roofline-v100") >= 2  # the unpruned run too
    rc, _, err = cli(capsys, "--progress", "simulate", kernel_workload, "--no-progress")
    assert rc == 0 and err == ""  # the subcommand's choice wins
    assert not progress.is_on()  # the command's choice ends with it


def test_validate_shows_one_bar_of_cases(capsys, tmp_path):
    cases = dump_yaml(tmp_path / "cases.yaml", [{
        "name": f"case {i}", "kind": "measured", "source": "test", "target": "roofline-v100",
        "workload": {"ops": KERNEL_OPS[:1]}, "metric": "flops", "expected": 8192,
        "tolerance": 0.01} for i in range(3)])
    rc, out, err = cli(capsys, "validate", "--cases", cases, "--progress",
                       "--no-microbenchmarks")
    assert rc == 0, out
    assert "validate:   0%|          | 0/3 [" in err
    assert "simulate on" not in err  # only the outermost bar is drawn


def test_a_generation_counts_its_forwards(capsys):
    wl = ROOT / "workloads" / "llama2-7b-generate.yaml"
    rc, _, err = cli(capsys, "--progress", "simulate", wl,
                     "--set", "new_tokens=8", "--set", "seq_len=64", "--fidelity", "analytical")
    assert rc == 0
    assert "generate on roofline-v100: 0forward [" in err
    assert "simulate on" not in err  # each forward's own bar stays inside the generation's


def test_plot_counts_each_figure_saved(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hwsim.plot.style import save

    with progress.enabled(True), progress.task("plot", unit="figure") as shown:
        for i in range(2):
            fig, _ = plt.subplots()
            save(fig, tmp_path / f"f{i}.png")
            plt.close(fig)
        assert shown.n == 2
    with progress.enabled(False), progress.task("plot") as silent:
        assert not hasattr(silent, "n")  # nothing drawn when off


def test_a_template_trace_shows_its_traces(capsys, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    (tmp_path / "tinyfactory.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        def build(batch=1, seq_len=8):
            return nn.Linear(16, 16), (torch.zeros(batch, seq_len, 16),)
    """), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    from hwsim.trace import trace_template

    with progress.enabled(True):
        trace_template("tinyfactory:build", "prefill")
    err = capsys.readouterr().err
    assert "trace tinyfactory:build prefill:   0%|          | 0/5 [" in err


def test_a_sweep_draws_no_simulation_bars(capsys):
    pytest.importorskip("pyarrow")
    with progress.enabled(True):
        hwsim.sweep({"name": "s", "workload": {"ops": KERNEL_OPS[:1]},
                     "axes": {"ops.0.m": [16, 32]}}, workers=1, progress=False)
    assert "simulate on" not in capsys.readouterr().err
