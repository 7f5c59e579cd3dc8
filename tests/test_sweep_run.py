"""Running sweeps: local pool vs in-process, failed points, streaming, resume, CLI.

The kill test runs ``hwsim sweep`` in a subprocess, kills it with SIGKILL once
some part files exist, and resumes it: no point may be lost or run twice.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import ROOT, dump_yaml, run_hwsim

import hwsim
from hwsim.cli.main import main
from hwsim.sweep import load_sweep, prepare, read_results

BERT = str(ROOT / "workloads" / "bert-base.yaml")
KERNEL = {"name": "gemms", "dtype": "fp32",
          "ops": [{"kind": "matmul", "m": 64, "n": 64, "k": 64},
                  {"kind": "softmax", "rows": 64, "cols": 64}]}


def sweep_200(tmp_path):
    """The 200-point BERT-base sweep of the issue's acceptance test (10 x 4 x 5)."""
    return dump_yaml(tmp_path / "bert200.yaml", {
        "name": "bert200", "workload": BERT, "target": "roofline", "fidelity": "analytical",
        "axes": {"seq_len": {"range": [64, 512], "steps": 10}, "batch": [1, 2, 3, 4],
                 "target.dram_bw_bytes_per_s": {"range": [3.0e11, 1.5e12], "steps": 5}}})


def kernel_sweep(**extra):
    return {"workload": KERNEL, "target": "roofline",
            "axes": {"ops.0.m": [16, 32, 64], "ops.0.k": [8, 64]}, **extra}


def parts(path) -> list[str]:
    return sorted(p for p in os.listdir(path) if p.startswith("part-"))


def rows_on_disk(path) -> list[str]:
    """Every point_id in every part file, duplicates included."""
    import pyarrow.parquet as pq

    ids: list[str] = []
    for p in parts(path):
        ids += pq.read_table(os.path.join(path, p), columns=["point_id"]).column(
            "point_id").to_pylist()
    return ids


# ---------------------------------------------------------------- results
def test_rows_match_direct_simulation(tmp_path):
    df = hwsim.sweep(kernel_sweep(), workers=1, progress=False)
    assert len(df) == 6 and list(df["index"]) == list(range(6))
    assert df.attrs["axes"] == ["ops.0.m", "ops.0.k"]
    wl = dump_yaml(tmp_path / "gemms.yaml", KERNEL)
    for _, row in df.iterrows():
        r = hwsim.simulate(wl, "roofline", fidelity="analytical",
                           sets={"ops.0.m": row["ops.0.m"], "ops.0.k": row["ops.0.k"]})
        assert row["latency_s"] == r.totals["latency_s"]
        assert row["energy_j"] == r.totals["energy_j"]
        assert row["dram_bytes"] == r.totals["dram_read_bytes"] + r.totals["dram_write_bytes"]
        assert row["status"] == "ok" and row["preset"] == "roofline-v100"


def test_pool_equals_in_process():
    a = hwsim.sweep(kernel_sweep(), workers=1, progress=False)
    b = hwsim.sweep(kernel_sweep(), workers=2, progress=False)
    pd.testing.assert_frame_equal(a, b)


def test_failed_point_is_a_row_and_the_sweep_goes_on(tmp_path):
    # softmax rows = 0 is impossible: that point fails, the others run
    spec = {"workload": KERNEL, "target": "roofline", "axes": {"ops.1.rows": [64, 0, 32]}}
    out = tmp_path / "r.parquet"
    df = hwsim.sweep(spec, out, workers=2, progress=False)
    assert list(df["status"]) == ["ok", "error", "ok"]
    err = df.loc[1, "error"]
    assert "rows" in err and "Traceback" not in err
    assert pd.isna(df.loc[1, "latency_s"]) and df.loc[0, "latency_s"] > 0
    again = hwsim.sweep(spec, out, workers=1, progress=False)
    assert again.attrs["run"]["ran"] == 0  # a failed point is done too
    retried = hwsim.sweep(spec, out, workers=1, progress=False, retry_failed=True)
    assert retried.attrs["run"]["ran"] == 1
    assert len(read_results(out)) == 3


def test_target_and_fidelity_axes_and_json_values():
    spec = {"workload": KERNEL, "axes": {"target": ["roofline", "volta"],
                                          "fidelity": ["analytical", "event"],
                                          "ops.0": [{"kind": "matmul", "m": 8, "n": 8, "k": 8}]}}
    df = hwsim.sweep(spec, workers=1, progress=False)
    assert list(df["target"]) == ["roofline", "roofline", "volta", "volta"]
    assert set(df["preset"]) == {"roofline-v100", "volta-v100-sxm2"}
    assert df["ops.0"].iloc[0] == '{"k": 8, "kind": "matmul", "m": 8, "n": 8}'
    assert (df["status"] == "ok").all()


def test_resume_skips_done_points_and_caches_repeats(tmp_path):
    out = tmp_path / "r.parquet"
    first = hwsim.sweep(kernel_sweep(), out, workers=1, progress=False)
    assert first.attrs["run"]["ran"] == 6
    wider = kernel_sweep(axes={"ops.0.m": [16, 32, 64, 128], "ops.0.k": [8, 64]})
    second = hwsim.sweep(wider, out, workers=1, progress=False)
    assert second.attrs["run"] == {**second.attrs["run"], "ran": 2, "skipped": 6}
    assert len(second) == 8
    pd.testing.assert_frame_equal(second[second["ops.0.m"] != 128].reset_index(drop=True),
                                  first, check_like=True)
    assert len(rows_on_disk(out)) == 8


def test_streams_part_files_and_ignores_leftover_temporaries(tmp_path):
    out = tmp_path / "r.parquet"
    hwsim.sweep(kernel_sweep(), out, workers=1, progress=False, flush_every=2)
    assert len(parts(out)) == 3
    (out / ".tmp-part-000009-deadbeef.parquet").write_bytes(b"half a file")
    df = read_results(out)
    assert len(df) == 6
    assert pd.read_parquet(out).shape[0] == 6  # a plain Parquet reader sees one table
    hwsim.sweep(kernel_sweep(), out, workers=1, progress=False)
    assert not [n for n in os.listdir(out) if n.startswith(".tmp-")]


def test_compaction_keeps_every_point_once(tmp_path, monkeypatch):
    from hwsim.sweep import store

    monkeypatch.setattr(store, "COMPACT_ABOVE", 2)
    out = tmp_path / "r.parquet"
    df = hwsim.sweep(kernel_sweep(), out, workers=1, progress=False, flush_every=1)
    assert len(parts(out)) == 1 and len(rows_on_disk(out)) == 6
    pd.testing.assert_frame_equal(read_results(out), df, check_like=True)


def test_fresh_discards_results(tmp_path):
    out = tmp_path / "r.parquet"
    hwsim.sweep(kernel_sweep(), out, workers=1, progress=False)
    df = hwsim.sweep(kernel_sweep(), out, workers=1, progress=False, fresh=True)
    assert df.attrs["run"]["ran"] == 6 and len(rows_on_disk(out)) == 6


def test_output_that_is_a_file_is_refused(tmp_path):
    out = tmp_path / "r.parquet"
    out.write_text("not a directory")
    with pytest.raises(hwsim.InputError, match="not a sweep results directory"):
        hwsim.sweep(kernel_sweep(), out, workers=1, progress=False)


def test_progress_line(capsys):
    hwsim.sweep(kernel_sweep(name="prog"), workers=1)
    err = capsys.readouterr().err
    assert re.search(r"prog: 6/6 points \(0 failed\) [\d.]+ points/s", err), err


# ---------------------------------------------------------------- CLI
def test_cli_sweep_and_plot(tmp_path, capsys):
    sweep_file = dump_yaml(tmp_path / "s.yaml", {**kernel_sweep(), "workload": str(
        dump_yaml(tmp_path / "wl.yaml", KERNEL))})
    out = tmp_path / "res.parquet"
    assert main(["sweep", str(sweep_file), "-o", str(out), "--workers", "1"]) == 0
    err = capsys.readouterr().err
    assert f"wrote {out}: 6 points (6 ok, 0 failed); ran 6" in err
    assert main(["sweep", str(sweep_file), "-o", str(out), "--dry-run"]) == 0
    cap = capsys.readouterr()
    assert cap.out.count(" ok ") == 6 and "6 points, 6 done" in cap.err
    figs = tmp_path / "figs"
    assert main(["plot", str(out), "-o", str(figs), "--kind", "pareto", "--kind", "trend",
                 "--format", "svg"]) == 0
    written = capsys.readouterr().out.split()
    assert written and all(p.endswith(".svg") and os.path.getsize(p) > 1000 for p in written)


def test_cli_bad_sweep_file_is_one_line_exit_2(tmp_path):
    bad = dump_yaml(tmp_path / "bad.yaml", {"workload": BERT, "axes": {"seq_len": []},
                                            "mode": "grid", "samples": 3})
    res = run_hwsim("sweep", str(bad), "-o", str(tmp_path / "x.parquet"))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hwsim: error: ")
    assert "bad.yaml: axes.seq_len: has no values" in lines[0] and "samples" in lines[0]


# ---------------------------------------------------------------- kill -9 and resume
def test_killed_sweep_resumes_without_losing_or_repeating_points(tmp_path):
    sweep_file = sweep_200(tmp_path)
    out = tmp_path / "bert200.parquet"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "hwsim", "sweep", str(sweep_file), "-o", str(out),
         "--workers", "1", "--flush-every", "10", "--quiet"],
        cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if out.exists() and len(parts(out)) >= 3:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    before = rows_on_disk(out)
    assert 0 < len(before) < 200, "the sweep finished before it could be killed"
    assert len(before) == len(set(before)) and len(before) % 10 == 0

    res = run_hwsim("sweep", str(sweep_file), "-o", str(out), "--workers", "2", "--quiet",
                    timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"ran {200 - len(before)} in" in res.stderr
    assert f"{len(before)} already done" in res.stderr
    after = rows_on_disk(out)
    ids = [p.id for p in prepare(load_sweep(sweep_file))[1]]
    assert len(after) == 200 and sorted(after) == sorted(ids)  # none lost, none twice

    whole = hwsim.sweep(sweep_file, workers=2, progress=False)
    resumed = read_results(out)
    cols = [c for c in whole.columns if c != "index"]
    pd.testing.assert_frame_equal(resumed[cols], whole[cols])


def test_without_pyarrow_a_sweep_says_which_extra_to_install(tmp_path):
    """pyarrow is in the dist and dev extras, not the core: a core-only install gets one
    line and exit 2, not a traceback."""
    out = tmp_path / "x.parquet"
    code = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'pyarrow' or name.startswith('pyarrow.'):\n"
        "            raise ImportError('hidden')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from hwsim.cli.main import main\n"
        f"sys.exit(main(['sweep', 'sweeps/bert-seq-bw.yaml', '-o', r'{out}']))\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert "needs pyarrow (pip install 'hwsim[dist]')" in res.stderr


def test_a_generation_sweeps_its_request_figures(tmp_path):
    """KV budget x batch of a generation: TTFT, TPOT, tokens/s and memory are columns,
    equal to the generation's own report; a forward's sweep has none of them."""
    gen = {"name": "gen", "model": "tinyllama-1.1b", "phase": "generate", "seq_len": 256,
           "new_tokens": 16, "pruning": [{"method": "h2o", "keep": 0.5}]}
    spec = {"workload": gen, "target": "roofline", "fidelity": "analytical",
            "axes": {"pruning.0.keep": [0.25, 1.0], "batch": [1, 4]}}
    out = str(tmp_path / "gen.parquet")
    df = hwsim.sweep(spec, out, workers=1, progress=False)
    assert list(df["status"]) == ["ok"] * 4
    wl = dump_yaml(tmp_path / "gen.yaml", gen)
    for _, row in df.iterrows():
        r = hwsim.simulate(wl, "roofline", fidelity="analytical",
                           sets={"pruning.0.keep": row["pruning.0.keep"], "batch": row["batch"]})
        for key in ("ttft_s", "tpot_s", "tokens_per_s", "kv_cache_bytes", "peak_memory_bytes"):
            assert row[key] == r.totals[key], key
    from hwsim.sweep import read_results

    assert read_results(out)["tpot_s"].notna().all()
    assert "tpot_s" not in hwsim.sweep(kernel_sweep(), workers=1, progress=False)
    from hwsim.plot import plot_results

    names = {os.path.basename(p) for p in plot_results(out, tmp_path / "figs",
                                                       kinds=("pareto", "trend"))}
    assert {"pareto-tpot-kv.pdf", "trend-pruning-0-keep-tpot.pdf",
            "trend-batch-ttft.pdf"} <= names
