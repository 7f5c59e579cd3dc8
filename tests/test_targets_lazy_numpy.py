"""The Volta, ARMv8 and SpAtten targets load numpy only when a plan needs arrays.

numpy costs 70-90 ms to import on the 2-core development machine, more than a
whole analytical GEMM run. The shared simulate path does not use it, so these
targets import it inside the functions that work on arrays (the memory network's
solve, SpAtten's per-row key counts, Volta's planners past a few thousand tiles),
never at module level: importing any of their modules leaves numpy unloaded, and so
does a run whose ops never reach such a function (a GEMM on ``volta`` or
``spatten``, a 7B-sized attention on ``volta``, a 7B layer's GEMMs, attention and
vector ops on ``armv8``: its memory network, key spans and tiler have plain-float
paths that tests hold to the arrays). Volta's planners take their arrays
or their loops depending on whether numpy is loaded (``gpu.arrays``): both give the
same reports. Each check runs in a fresh interpreter, where nothing else has loaded
numpy yet.
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


def _attention_workload(path, **kw):
    op = {"kind": "attention", "heads": 8, "kv_heads": 8, "head_dim": 128, "q_len": 512,
          "kv_len": 512, "causal": True, "dtype": "fp16"}
    op.update(kw)
    path.write_text(json.dumps({"name": "attn", "ops": [op]}))
    return path


def test_a_volta_attention_loads_numpy_only_for_thousands_of_tiles(tmp_path):
    # a 7B-sized layer's causal attention (32 heads x 32 query tiles): the tiles are
    # integers in lists and the planner takes its plain-float paths
    small = _attention_workload(tmp_path / "small.json", heads=32, kv_heads=32, q_len=4096,
                                kv_len=4096)
    latency_s, numpy_loaded = _run([], small, ["volta"])["runs"]["volta"]
    assert latency_s > 0 and not numpy_loaded
    # 4,096 tiles (32 heads x 128): the arrays (gpu.ARRAYS_UNLOADED) are worth the import
    big = _attention_workload(tmp_path / "big.json", heads=32, kv_heads=32, q_len=16384,
                              kv_len=16384)
    latency_s, numpy_loaded = _run([], big, ["volta"])["runs"]["volta"]
    assert latency_s > 0 and numpy_loaded


def test_a_7b_layer_on_armv8_leaves_numpy_unloaded(tmp_path):
    """A Llama-2-7B layer's ops at 4K on the default Kunpeng 920: the threads' DRAM
    rates (the interference network of many threads, and one thread alone), the
    causal attention's key spans and the GEMM tiler all run without numpy."""
    path = tmp_path / "layer.json"
    path.write_text(json.dumps({"name": "7b-layer", "dtype": "fp16", "ops": [
        {"kind": "matmul", "m": 4096, "n": 12288, "k": 4096, "name": "qkv"},
        {"kind": "attention", "heads": 32, "kv_heads": 32, "head_dim": 128, "q_len": 4096,
         "kv_len": 4096, "causal": True, "name": "attn"},
        {"kind": "attention", "heads": 32, "kv_heads": 32, "head_dim": 128, "q_len": 1,
         "kv_len": 4096, "name": "decode"},
        {"kind": "matmul", "m": 4096, "n": 4096, "k": 4096, "name": "o"},
        {"kind": "matmul", "m": 1, "n": 4096, "k": 4096, "name": "gemv"},
        {"kind": "matmul", "m": 4096, "n": 22016, "k": 4096, "name": "gate-up"},
        {"kind": "matmul", "m": 4096, "n": 4096, "k": 11008, "name": "down"}]}))
    latency_s, numpy_loaded = _run([], path, ["armv8"])["runs"]["armv8"]
    assert latency_s > 0 and not numpy_loaded


# Volta's attention planned both ways, in fresh interpreters: numpy loaded first (the
# array paths, as before numpy was lazy) and the arrays switched off (the plain paths)
BOTH_WAYS = textwrap.dedent("""
    import json, sys

    way, workloads = sys.argv[1], json.loads(sys.argv[2])
    if way == "arrays":
        import numpy  # noqa: F401 (loaded: gpu.arrays says yes to every size)
    import hwsim
    import hwsim.accelerators.volta.attention as attention
    import hwsim.accelerators.volta.gpu as gpu

    if way == "plain":
        gpu.arrays = attention.gpu_arrays = lambda n: False
    out = {}
    for wl in workloads:
        for fidelity in ("event", "analytical"):
            r = hwsim.simulate(wl, "volta", fidelity=fidelity)
            lanes = [(l.units, l.labels, list(l.starts_s), list(l.ends_s)) if l else None
                     for l in r.lanes] if fidelity == "event" else None
            out[f"{wl} {fidelity}"] = repr((r.rows, r.totals, lanes))
    print(json.dumps(out))
""")


def test_volta_attention_plain_and_array_paths_give_the_same_reports(tmp_path):
    cases = [
        {},  # causal, one split
        # a 7B layer's: 1,024 classes, the planner's sums on arrays (gpu.MANY_SUMS)
        {"heads": 32, "kv_heads": 32, "q_len": 4096, "kv_len": 4096},
        {"heads": 32, "kv_heads": 8, "q_len": 2000, "kv_len": 2500},  # the same, GQA
        {"causal": False, "q_len": 1, "kv_len": 8192},  # a decode step: split-KV
        {"heads": 32, "kv_heads": 8, "q_len": 700, "kv_len": 900},  # GQA packed, offset
        {"window": 200, "q_len": 1000, "kv_len": 1000},  # a sliding window
        {"dtype": "fp32", "q_len": 300, "kv_len": 300},  # no tensor cores
        {"v_len": 64, "q_len": 256, "kv_len": 256},  # value pruning (buffered scores)
        {"sparse_keys": 128, "sparse_block": 64, "q_len": 512, "kv_len": 2048},  # gathers
    ]
    wls = [str(_attention_workload(tmp_path / f"a{i}.json", **kw)) for i, kw in enumerate(cases)]
    got = {}
    for way in ("arrays", "plain"):
        proc = subprocess.run([sys.executable, "-c", BOTH_WAYS, way, json.dumps(wls)],
                              capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        got[way] = json.loads(proc.stdout.splitlines()[-1])
    assert len(got["plain"]) == 2 * len(cases)
    for key, want in got["arrays"].items():
        assert got["plain"][key] == want, key


def test_volta_planner_loops_equal_their_definitions(monkeypatch):
    """The loops the planner takes without numpy: Kernel.total is Work.add of each
    class's scaled work, in order; the longest-first order with repeated estimates is
    the sort by (-estimate, class)."""
    import random

    import hwsim.accelerators.volta.gpu as gpu_mod
    from hwsim.accelerators.volta.gpu import Gpu, Kernel, Work
    from hwsim.targets import resolve

    monkeypatch.setattr(gpu_mod, "arrays", lambda n: False)
    rng = random.Random(7)
    works = [Work(*(rng.random() * 10 ** rng.randint(0, 8) for _ in range(9)))
             for _ in range(40)]
    # counts of one (added as they are) and more; a work listed again (as a causal
    # attention lists each tile once per head)
    blocks = [(rng.choice([1, 1, 2, 3, 7]), rng.choice(works)) for _ in range(600)]
    k = Kernel("k", "64x64", 128, 64, 16384, blocks)
    ref = Work()
    for count, w in blocks:
        ref.add(w.scaled(count))
    assert k.total().key() == ref.key()
    gpu = Gpu(resolve("volta").spec)
    shares = gpu.block_shares(k, [w for _, w in blocks], 2)
    est = [gpu.block_cost(k, w, 2, shares[c][0]) for c, (_, w) in enumerate(blocks)]
    assert len(set(est)) < len(est)  # repeated estimates: the ties matter
    per_sm = gpu.assign(k, 2, shares)
    order = sorted(range(len(est)), key=lambda c: (-est[c], c))
    rank = {c: i for i, c in enumerate(order)}
    for classes in per_sm:  # each SM's classes in the longest-first order
        assert [rank[c] for c in classes] == sorted(rank[c] for c in classes)
    handed = [0] * len(blocks)  # every block of every class handed out once
    for classes in per_sm:
        for c in classes:
            handed[c] += 1
    assert handed == [count for count, _ in blocks]
