"""The core runs without torch: only hwsim.trace may import torch or transformers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

from conftest import KERNEL_OPS, ROOT, dump_yaml, shipped_templates, tiny_graph, tiny_template

from hwsim.ir import load, save

# Runs in a fresh interpreter where importing torch*/transformers* fails, as on a
# machine without them.
SCRIPT = textwrap.dedent("""
    import importlib, json, os, sys

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "transformers", "torchvision"):
                raise ImportError(f"{name} is hidden by the test")
            return None

    sys.meta_path.insert(0, NoTorch())
    root, ops_wl, model_wls = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    untraced_wl = sys.argv[4]

    import hwsim
    from hwsim.cli.main import main

    # every core module imports (hwsim.trace excluded; __main__ would run the CLI)
    modules = []
    for pkg in ("hwsim",):
        for folder, dirs, files in os.walk(os.path.join(root, pkg)):
            rel = os.path.relpath(folder, root).replace(os.sep, ".")
            dirs[:] = [d for d in dirs if d != "__pycache__"
                       and not (rel + "." + d).startswith("hwsim.trace")]
            for f in files:
                if f.endswith(".py") and f != "__main__.py":
                    name = rel if f == "__init__.py" else rel + "." + f[:-3]
                    importlib.import_module(name)
                    modules.append(name)

    out = {"modules": len(modules)}
    r = hwsim.simulate(ops_wl, target="roofline")
    out["ops_latency_s"] = r.totals["latency_s"]
    out["ops_count"] = len(r.ops)
    out["cli_rc"] = main(["simulate", ops_wl, "--json", os.devnull])
    out["models"] = {}
    for wl in model_wls:
        m = hwsim.simulate(wl, target="roofline")
        out["models"][wl] = [len(m.ops), m.totals["flops"]]
    if untraced_wl:  # a zoo model with no shipped template: a clear error, not a crash
        try:
            hwsim.simulate(untraced_wl, target="roofline")
            out["untraced"] = "no error"
        except hwsim.InputError as e:
            out["untraced"] = str(e)
    out["torch_loaded"] = sorted(k for k in sys.modules
                                 if k.split(".")[0] in ("torch", "transformers"))
    print(json.dumps(out))
""")


def test_simulate_without_torch(tmp_path):
    ops_wl = dump_yaml(tmp_path / "ops.yaml", {"ops": KERNEL_OPS})
    # a model workload from a template found like a shipped one ($HWSIM_TRACES) ...
    zoo_dir = tmp_path / "zoo"
    save(tiny_template(), zoo_dir / "tiny-llm.prefill.json.gz")
    models = {str(dump_yaml(tmp_path / "tiny.yaml", {"model": "tiny-llm", "seq_len": 64})):
              tiny_graph(1, 64).flops()}
    # ... and one from traces/, when it ships a prefill template
    shipped = shipped_templates("prefill")
    if shipped:
        model = shipped[0].name[: -len(".prefill.json.gz")]
        header = load(shipped[0]).header
        seq = max(64, int((header.get("template") or {}).get("min_seq_len") or 0))
        models[str(dump_yaml(tmp_path / "model.yaml", {"model": model, "seq_len": seq}))] = None
    # a model the zoo names but traces/ does not ship (needs torch to trace)
    from hwsim import zoo

    untraced = [m for m in zoo.names() if m != "tiny-llm" and not zoo.shipped_path(m, "prefill")
                and "prefill" in zoo.phases(m)]
    untraced_wl = ""
    if untraced:
        untraced_wl = str(dump_yaml(tmp_path / "untraced.yaml",
                                    {"model": untraced[0], "seq_len": 64}))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env["HWSIM_TRACES"] = str(zoo_dir)
    res = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT), str(ops_wl),
                          json.dumps(list(models)), untraced_wl],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.splitlines()[-1])
    assert out["torch_loaded"] == []
    assert out["modules"] > 20
    assert out["ops_count"] == len(KERNEL_OPS)
    assert out["ops_latency_s"] > 0
    assert out["cli_rc"] == 0
    assert set(out["models"]) == set(models)
    for wl, flops in models.items():
        n_ops, got_flops = out["models"][wl]
        assert n_ops > 0 and got_flops > 0
        if flops is not None:
            assert got_flops == flops
    if untraced_wl:
        assert "torch is not installed" in out["untraced"], out["untraced"]
        assert untraced_wl in out["untraced"]


IMPORT_TORCH = re.compile(r"^\s*(import|from)\s+(torch|transformers)\b", re.M)


def test_no_core_module_imports_torch():
    """A static check as well: hwsim.trace is the only door to torch (conventions.md)."""
    offenders = []
    for pkg in ("hwsim",):
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT)
            if rel.parts[:2] == ("hwsim", "trace"):
                continue
            if IMPORT_TORCH.search(path.read_text(encoding="utf-8")):
                offenders.append(str(rel))
    assert offenders == []
