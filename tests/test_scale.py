"""The largest zoo model at 128K tokens (issue 16): Llama-3.1-70B over 8 devices runs
in bounded memory, or says in one line that it does not fit, naming the capacity."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, dump_yaml

MAX_RSS_BYTES = 2 << 30  # the bound


def run_measured(workload, target: str) -> tuple[int, str, int]:
    """``hwsim simulate`` in a fresh process: (exit status, stderr, its peak RSS in bytes)."""
    code = ("import json, resource, sys\n"
            "from hwsim.cli.main import main\n"
            "rc = main(sys.argv[1:])\n"
            "print(json.dumps({'rc': rc, 'rss': resource.getrusage(resource.RUSAGE_SELF)"
            ".ru_maxrss * 1024}))\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", code, "simulate", str(workload), "-t", target],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return out["rc"], res.stderr, out["rss"]


def big(tmp_path, phase: str, batch: int):
    """Llama-3.1-70B at 128K tokens on 8 devices: the prefill, or a decode step."""
    sizes = {"seq_len": 131072} if phase == "prefill" else {"seq_len": 1, "kv_len": 131071}
    return dump_yaml(tmp_path / "w.yaml", {"name": "big", "model": "llama-3.1-70b",
                                            "phase": phase, "batch": batch, "devices": 8,
                                            "dtype": "fp16", "tiling": {"attention": "flash"},
                                            **sizes})


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_70b_at_128k_batch_64_is_refused_naming_the_capacity(tmp_path, phase):
    rc, err, rss = run_measured(big(tmp_path, phase, 64), "ascend")
    assert rc == 2 and err.count("\n") == 1
    assert "spec.dram_bytes: does not fit in 64.00 GiB" in err and "KV cache 320.00 GiB" in err
    assert rss < MAX_RSS_BYTES


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_70b_at_128k_that_fits_runs_in_bounded_memory(tmp_path, phase):
    rc, err, rss = run_measured(big(tmp_path, phase, 4), "ascend")
    assert rc == 0, err
    assert rss < MAX_RSS_BYTES
