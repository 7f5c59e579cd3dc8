"""Run hwsim in a fresh interpreter where torch and transformers cannot be imported.

A workload naming a shipped zoo model, or a config with a cached template, must
simulate on a machine without torch (only ``hwsim.trace`` imports it, lazily). The
helpers here run a script in a subprocess whose first lines install an import hook
that refuses ``torch*`` and ``transformers*``, as on such a machine, with the
checkout on ``PYTHONPATH``; they check that it exits 0 and that neither package was
imported, and hand back what the script computed.

- :func:`run_without_torch`: any script body that sets ``result``.
- :func:`simulate_without_torch`: a list of cases (a zoo model at a size, or a
  workload file, on a target) simulated analytically, each with its totals and
  what a ``measure`` function reads from the result, or its one-line InputError;
  :func:`simulated` checks one such run against what its case expected.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HIDDEN = ("torch", "transformers")

# The script's first lines: importing a hidden package fails as if it were not installed.
PRELUDE = textwrap.dedent(f"""
    import json, sys

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {HIDDEN!r}:
                raise ImportError(f"{{name}} is hidden by the test")
            return None

    sys.meta_path.insert(0, NoTorch())
""")

# The script's last lines: the body's ``result`` and the hidden packages it imported.
EPILOGUE = textwrap.dedent(f"""
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in {HIDDEN!r})
    print(json.dumps({{"result": result, "torch": loaded}}))
""")


def run_without_torch(body: str, *args: Any, cwd: Path = ROOT, env: dict | None = None,
                      timeout: float = 600) -> Any:
    """Run ``body`` (Python source that sets ``result`` to a value JSON can write) with
    ``args`` as ``sys.argv[1:]``, torch and transformers hidden, and return ``result``.

    ``env`` adds to the environment. Asserts the script exits 0 and imported neither
    package (anything the body prints before the last line is ignored)."""
    script = PRELUDE + textwrap.dedent(body) + EPILOGUE
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    res = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True,
                         text=True, cwd=cwd, env=env, timeout=timeout)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.splitlines()[-1])
    assert out["torch"] == [], out["torch"]
    return out["result"]


# The default measure: bytes the attention ops read from DRAM (the KV cache, mostly).
KV_READ = """
    def measure(r):
        return {"kv_read": sum(int(x) for x, k in zip(r.ops["dram_read_bytes"], r.ops["kind"])
                               if k == "attention")}
"""

SIMULATE = """
    import hwsim
    from hwsim.workload import workload_from_dict

    result = []
    for case in json.loads(sys.argv[1]):
        wl = case.get("workload") or workload_from_dict(
            {"model": case["model"], "phase": case["phase"], "devices": case.get("devices", 1),
             **case["size"]})
        try:
            r = hwsim.simulate(wl, case["target"], sets=case.get("sets", []),
                               fidelity="analytical")
            result.append({**case, "flops": r.totals["flops"],
                           "latency_s": r.totals["latency_s"], **measure(r)})
        except hwsim.InputError as e:
            result.append({**case, "error": str(e)})
"""


def simulate_without_torch(cases: list[dict], measure: str = KV_READ,
                           timeout: float = 600) -> list[dict]:
    """Simulate each case analytically without torch; return the cases in order, each
    with ``flops``, ``latency_s`` and what ``measure`` adds, or with ``error`` (the
    InputError's text) where the simulation refused.

    A case is ``{"workload": path, "target": ...}`` or ``{"model": ..., "phase": ...,
    "size": {...}, "target": ...}`` (optional ``devices``), with optional ``sets``;
    other keys ride along. ``measure`` is Python source defining ``measure(r)``, a
    dict of JSON values read from the simulation result ``r``."""
    body = textwrap.dedent(measure) + textwrap.dedent(SIMULATE)
    return run_without_torch(body, json.dumps(cases), timeout=timeout)


def simulated(run: dict, where: str) -> bool:
    """Whether ``run`` (one of :func:`simulate_without_torch`'s) simulated. A case marked
    ``expect_refusal`` must have been refused for capacity ("does not fit") in one line,
    and is not simulated; any other must have run, with a positive latency and FLOPs.
    ``where`` names the case in a failure."""
    if run.get("expect_refusal"):  # the preset refuses cleanly: capacity, one line
        assert "does not fit" in run.get("error", ""), where
        assert "\n" not in run["error"], where
        return False
    assert "error" not in run, f"{where}: {run.get('error')}"
    assert run["latency_s"] > 0 and run["flops"] > 0, where
    return True
