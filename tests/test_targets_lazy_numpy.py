"""The Volta, ARMv8 and SpAtten targets load numpy only when a plan needs arrays.

numpy costs 70-80 ms to import on the 2-core development machine, more than a
whole analytical GEMM run. The shared simulate path does not use it, so these
targets import it inside the functions that work on arrays (a long attention's
tiles, the memory network's solve, SpAtten's per-row key counts), never at module
level: importing any of their modules leaves numpy unloaded, and so does a run
whose ops never reach such a function (a GEMM on ``volta`` or ``spatten``). Each
check runs in a fresh interpreter, where nothing else has loaded numpy yet.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from conftest import ROOT

PACKAGES = ("hwsim.accelerators.volta", "hwsim.accelerators.armv8",
            "hwsim.accelerators.spatten")

SCRIPT = textwrap.dedent("""
    import importlib, json, pkgutil, sys

    import hwsim

    packages = [p for p in sys.argv[1].split(",") if p]
    workload, targets = sys.argv[2], sys.argv[3].split(",")
    out = {"before": "numpy" in sys.modules, "modules": [], "loaded_by": None}
    for name in packages:
        pkg = importlib.import_module(name)
        for m in pkgutil.walk_packages(pkg.__path__, name + "."):
            importlib.import_module(m.name)
            out["modules"].append(m.name)
            if "numpy" in sys.modules and out["loaded_by"] is None:
                out["loaded_by"] = m.name
    out["runs"] = {}
    for t in targets:
        r = hwsim.simulate(workload, t, fidelity="analytical")
        out["runs"][t] = [r.totals["latency_s"], "numpy" in sys.modules]
    print(json.dumps(out))
""")


def _run(packages, workload, targets):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, ",".join(packages), str(workload),
                           ",".join(targets)], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_importing_the_targets_leaves_numpy_unloaded_and_a_gemm_run_too():
    out = _run(PACKAGES, ROOT / "workloads" / "ascend-gemm.yaml", ["volta", "spatten"])
    assert not out["before"]  # import hwsim itself never loads it
    # every module of the three packages was imported (target, planners, memory model)
    assert {f"{p}.target" for p in PACKAGES} <= set(out["modules"])
    assert "hwsim.accelerators.armv8.memory" in out["modules"]
    assert "hwsim.accelerators.volta.attention" in out["modules"]
    assert out["loaded_by"] is None
    for target, (latency_s, numpy_loaded) in out["runs"].items():
        assert latency_s > 0, target
        assert not numpy_loaded, f"a GEMM on {target} loaded numpy"


def test_an_attention_still_gets_numpy_when_it_needs_arrays(tmp_path):
    # the lazy import is there, not missing: a long attention's tiles are arrays
    wl = tmp_path / "attn.json"
    wl.write_text(json.dumps({"name": "attn", "ops": [
        {"kind": "attention", "heads": 2, "kv_heads": 2, "head_dim": 64, "q_len": 512,
         "kv_len": 512, "causal": True, "dtype": "fp16"}]}))
    out = _run([], wl, ["volta"])
    latency_s, numpy_loaded = out["runs"]["volta"]
    assert latency_s > 0 and numpy_loaded
