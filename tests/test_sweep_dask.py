"""Sweeps on a real Dask cluster, started inside the test on 127.0.0.1 only.

The acceptance test of the issue: a 200-point sweep run by ``hwsim sweep``
through a Dask scheduler with two worker processes gives exactly the rows the
local process pool gives (same points, same numbers). A second test drives a
threads-only ``LocalCluster`` through ``hwsim.sweep(..., client=...)``, the
notebook path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import ROOT, dump_yaml, run_hwsim

import hwsim
from hwsim.sweep import read_results

distributed = pytest.importorskip("distributed")

BERT = str(ROOT / "workloads" / "bert-base.yaml")


@pytest.fixture
def scheduler(tmp_path):
    """A dask scheduler and two single-threaded worker processes on loopback."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               DASK_DISTRIBUTED__WORKER__DAEMON="False")
    info = tmp_path / "scheduler.json"
    procs = [subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", "0", "--no-dashboard", "--scheduler-file", str(info)],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)]
    try:
        # the scheduler writes its file in more than one step: wait until it parses
        deadline = time.monotonic() + 60
        address = None
        while address is None and time.monotonic() < deadline:
            try:
                address = json.loads(info.read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.05)
        assert address is not None, "the scheduler did not start"
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
             str(info), "--host", "127.0.0.1", "--nworkers", "2", "--nthreads", "1",
             "--no-dashboard", "--memory-limit", "2GiB"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True))
        assert address.startswith("tcp://127.0.0.1:")
        with distributed.Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        # each process leads its own group (the worker's nanny children included):
        # ask politely, then end the whole group
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=10)


def test_200_points_on_dask_equal_the_local_pool(tmp_path, scheduler):
    sweep_file = dump_yaml(tmp_path / "bert200.yaml", {
        "name": "bert200", "workload": BERT, "target": "roofline", "fidelity": "analytical",
        "axes": {"seq_len": {"range": [64, 512], "steps": 10}, "batch": [1, 2, 3, 4],
                 "target.dram_bw_bytes_per_s": {"range": [3.0e11, 1.5e12], "steps": 5}}})
    local, remote = tmp_path / "local.parquet", tmp_path / "dask.parquet"
    res = run_hwsim("sweep", str(sweep_file), "-o", str(local), "--workers", "2", "--quiet",
                    timeout=120)
    assert res.returncode == 0, res.stderr
    assert "200 points (200 ok, 0 failed); ran 200" in res.stderr
    res = run_hwsim("sweep", str(sweep_file), "-o", str(remote), "--scheduler", scheduler,
                    "--quiet", timeout=120)
    assert res.returncode == 0, res.stderr
    assert "200 points (200 ok, 0 failed); ran 200" in res.stderr
    a, b = read_results(local), read_results(remote)
    assert len(a) == 200 and a["point_id"].is_unique
    pd.testing.assert_frame_equal(a, b)  # same rows, same numbers, bit for bit


def test_notebook_client_path_with_a_failed_point():
    spec = {"workload": {"name": "k", "ops": [{"kind": "softmax", "rows": 64, "cols": 64}]},
            "target": "roofline", "axes": {"ops.0.rows": [16, 0, 64, 256]}}
    # processes=False: scheduler and worker live in this process and talk over inproc://
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = hwsim.sweep(spec, client=client, progress=False)
        deadline = time.monotonic() + 10  # releases reach the scheduler asynchronously
        while client.futures and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not client.futures  # nothing left behind on the cluster
    local = hwsim.sweep(spec, workers=1, progress=False)
    assert list(remote["status"]) == ["ok", "error", "ok", "ok"]
    pd.testing.assert_frame_equal(remote, local)


def test_unreachable_scheduler_is_an_input_error(monkeypatch):
    from hwsim.sweep import runner

    monkeypatch.setattr(runner, "CONNECT_TIMEOUT_S", 1)
    spec = {"workload": {"ops": [{"kind": "softmax", "rows": 4, "cols": 4}]},
            "axes": {"ops.0.rows": [4, 8]}}
    with pytest.raises(hwsim.InputError, match="--scheduler: cannot reach the Dask scheduler"):
        hwsim.sweep(spec, scheduler="tcp://127.0.0.1:9", progress=False)
