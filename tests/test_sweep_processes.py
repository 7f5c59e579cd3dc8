"""A sweep and its processes (issue 16): killed or terminated, it leaves no worker
behind and loses no finished row; two sweeps never write one results directory.

Each test starts ``hwsim sweep`` as its own process, on points slow enough (about
a second each on a 2-core machine) to act while it runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, dump_yaml

pytest.importorskip("pyarrow")
if not sys.platform.startswith("linux"):
    pytest.skip("reads the process table from /proc", allow_module_level=True)


def slow_sweep(tmp_path, points: int = 8):
    keep = [round(1 - 0.02 * i, 2) for i in range(22)]  # every layer distinct: slow points
    wl = dump_yaml(tmp_path / "slow.yaml", {
        "name": "slow", "model": "tinyllama-1.1b", "seq_len": 2048, "dtype": "fp16",
        "pruning": [{"method": "spatten", "keep": keep}]})
    return dump_yaml(tmp_path / "sweep.yaml", {
        "workload": str(wl), "target": "ascend", "fidelity": "event",
        "axes": {"seq_len": {"range": [1536, 2048], "steps": points}}})


def start(sweep, out, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "hwsim", "sweep", str(sweep), "-o", str(out),
                             "--quiet", *extra], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry))
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(cond, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def rows(out) -> int:
    import pyarrow.parquet as pq

    return sum(pq.read_table(os.path.join(out, p)).num_rows for p in os.listdir(out)
               if p.startswith("part-"))


def test_a_killed_sweep_leaves_no_worker_behind(tmp_path):
    out = tmp_path / "r.parquet"
    proc = start(slow_sweep(tmp_path), out, "--workers", "2")
    wait_for(lambda: len(children(proc.pid)) >= 2)
    workers = children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_for(lambda: not any(alive(w) for w in workers), timeout=10)


def test_sigterm_writes_what_finished_and_stops_the_workers(tmp_path):
    out = tmp_path / "r.parquet"
    # 64 points (0.3-0.5 s each here, about 13 s on 2 workers): still running when the
    # signal comes, however fast the points have become (24 of them once all finished
    # before it, on a loaded machine, once each point took a third of a second)
    sweep = slow_sweep(tmp_path, points=64)
    proc = start(sweep, out, "--workers", "2", "--flush-every", "1000")
    wait_for(lambda: len(children(proc.pid)) >= 2)
    workers = children(proc.pid)
    time.sleep(3.0)  # a few points finish, buffered (flush every 1,000 rows or 2 s)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    wait_for(lambda: not any(alive(w) for w in workers), timeout=10)
    done = rows(out)
    again = start(sweep, out, "--workers", "2")
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert f"{done} already done" in err and rows(out) == 64


def test_two_sweeps_never_write_one_directory(tmp_path):
    out = tmp_path / "r.parquet"
    sweep = slow_sweep(tmp_path, points=6)
    first = start(sweep, out, "--workers", "1")
    wait_for(lambda: os.path.exists(out / ".lock") and len(children(first.pid)) == 0
             and first.poll() is None)
    time.sleep(1.0)
    second = start(sweep, out, "--workers", "1")
    _, err = second.communicate(timeout=60)
    assert second.returncode == 2 and "another sweep is writing" in err
    assert err.count("\n") == 1
    first.communicate(timeout=300)
    assert first.returncode == 0 and rows(out) == 6
