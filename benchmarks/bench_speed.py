"""Speed when every layer is different: the goals of the speed work, each printed as
met or not.

Run: ``python benchmarks/bench_speed.py [--targets ascend,volta,armv8] [--quick]``.

Every timed simulation runs in a fresh process (``python bench_speed.py --one ...``):
``import hwsim`` is timed apart and excluded, then the first ``simulate()`` is timed,
everything it loads on first need included (the target's modules, pandas when a
report's DataFrame is asked for: here it is not). The process's peak resident set is
printed beside it. Goals:

- Llama-2-7B prefill of 4,096 tokens with every layer distinct (SpAtten's cascade
  token pruning with a 32-value keep list, 1.00 down to 0.69): event under 1 s,
  analytical under 0.2 s, per target;
- Llama-3.1-70B prefill of 32,768 tokens, every layer distinct (LazyLLM with 80
  values), split over 8 devices, a fused (flash) attention: event under 3 s (not on
  ``armv8``, one CPU socket, which has no multi-device model);
- BERT-base sweep points (``seq_len`` 128, 136, ...), one core, in one process:
  analytical at least 100 points/s, event at least 20;
- ``import hwsim`` under 0.15 s; ``python -m hwsim simulate workloads/bert-base.yaml
  --target roofline`` under 0.3 s (the interpreter's start included);
- peak RSS under 1 GB in each of the above.

- Llama-2-7B generation, a 2,048-token prompt and 2,048 new tokens (dense KV cache,
  steps bracketed within 1 %): event under 10 s, analytical under 1 s (SpAtten's 8 GB
  HBM cannot hold the weights: not run there).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("roofline", "ascend", "volta", "armv8", "spatten")


def distinct_workload(path: Path, model: str, seq_len: int, layers: int, devices: int,
                      attention: str = "auto", method: str = "spatten") -> None:
    """A prefill whose every layer keeps a different share of the tokens (1.00 at the
    first layer, 0.01 less at each one after; from the 60th, 0.005 less)."""
    keep = [round(1.0 - 0.01 * i, 2) if i < 60 else round(0.41 - 0.005 * (i - 60), 3)
            for i in range(layers)]
    path.write_text(json.dumps({
        "name": f"{model}-prefill-{seq_len}-distinct-layers", "model": model,
        "phase": "prefill", "seq_len": seq_len, "dtype": "fp16", "devices": devices,
        "tiling": {"attention": attention},
        "pruning": [{"method": method, "keep": keep}]}))


def one(workload: str, target: str, fidelity: str) -> None:
    """The child: import (excluded), then the first simulate; one JSON line."""
    t0 = time.perf_counter()
    import hwsim  # noqa: PLC0415

    imported = time.perf_counter() - t0
    t0 = time.perf_counter()
    try:
        r = hwsim.simulate(workload, target, fidelity=fidelity)
        out = {"s": time.perf_counter() - t0, "ops": len(r.rows),
               "latency_s": r.totals["latency_s"]}
    except hwsim.HwsimError as e:
        out = {"error": str(e).splitlines()[0][:160]}
    out["import_s"] = imported
    out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def child(*args: str) -> dict:
    res = subprocess.run([sys.executable, __file__, "--one", *args], capture_output=True,
                         text=True, cwd=ROOT)
    if res.returncode:
        return {"error": res.stderr.strip().splitlines()[-1] if res.stderr else "failed"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def simulate_goal(title: str, workload: Path, targets, goals: dict[str, float]) -> None:
    print(title)
    for target in targets:
        for fidelity, goal in goals.items():
            got = child(str(workload), target, fidelity)
            if "error" in got:
                print(f"  {target:9s} {fidelity:10s} not run: {got['error']}")
                continue
            print(f"  {target:9s} {fidelity:10s} {got['s']:6.2f} s  (goal < {goal:g} s: "
                  f"{verdict(got['s'] < goal)}; {got['ops']} ops, peak RSS "
                  f"{got['rss_mib']:.0f} MiB: {verdict(got['rss_mib'] < 1024)})")


def sweep_goal(targets, points: int) -> None:
    import hwsim  # noqa: PLC0415

    print(f"BERT-base sweep points, one core, in one process ({points} points of "
          "seq_len 128 + 8 i)")
    for target in targets:
        for fidelity, goal in (("analytical", 100.0), ("event", 20.0)):
            wl = str(ROOT / "workloads" / "bert-base.yaml")
            hwsim.simulate(wl, target, sets=["seq_len=120"], fidelity=fidelity)  # warm
            t0 = time.perf_counter()
            for i in range(points):
                hwsim.simulate(wl, target, sets=[f"seq_len={128 + 8 * i}"], fidelity=fidelity)
            rate = points / (time.perf_counter() - t0)
            print(f"  {target:9s} {fidelity:10s} {rate:7.1f} points/s  (goal >= {goal:g}: "
                  f"{verdict(rate >= goal)})")


def startup_goal() -> None:
    times = []
    for _ in range(5):
        res = subprocess.run([sys.executable, "-X", "importtime", "-c", "import hwsim"],
                             capture_output=True, text=True, cwd=ROOT)
        last = [x for x in res.stderr.splitlines() if x.rstrip().endswith("| hwsim")][-1]
        times.append(int(last.split("|")[1]) / 1e6)
    t = sorted(times)[len(times) // 2]
    print(f"import hwsim: {t:.3f} s (median of 5; goal < 0.15 s: {verdict(t < 0.15)})")
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hwsim", "simulate", "workloads/bert-base.yaml",
                        "--target", "roofline"], capture_output=True, cwd=ROOT, check=True)
        runs.append(time.perf_counter() - t0)
    t = sorted(runs)[len(runs) // 2]
    base = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], cwd=ROOT, check=True)
        base.append(time.perf_counter() - t0)
    print(f"python -m hwsim simulate bert-base --target roofline: {t:.3f} s (median of 5, "
          f"the interpreter's own start {sorted(base)[2]:.3f} s of it; goal < 0.3 s: "
          f"{verdict(t < 0.3)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--one", nargs=3, metavar=("WORKLOAD", "TARGET", "FIDELITY"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--quick", action="store_true", help="skip the 70B case, fewer points")
    args = ap.parse_args()
    if args.one:
        one(*args.one)
        return
    targets = [t for t in args.targets.split(",") if t]
    startup_goal()
    with tempfile.TemporaryDirectory() as tmp:
        w7 = Path(tmp) / "llama2-7b-distinct.yaml"
        distinct_workload(w7, "llama-2-7b", 4096, 32, 1)
        simulate_goal("Llama-2-7B prefill, 4,096 tokens, 32 distinct layers (fresh process, "
                      "first simulate)", w7, targets, {"event": 1.0, "analytical": 0.2})
        if not args.quick:
            w70 = Path(tmp) / "llama3.1-70b-distinct.yaml"
            # a fused attention and LazyLLM (the last token's scores): the 32K x 32K
            # scores of a standard attention or of SpAtten's importance do not fit
            distinct_workload(w70, "llama-3.1-70b", 32768, 80, 8, attention="flash",
                              method="lazyllm")
            simulate_goal("Llama-3.1-70B prefill, 32,768 tokens, 80 distinct layers (LazyLLM), "
                          "8 devices, flash attention", w70,
                          [t for t in targets if t != "armv8"], {"event": 3.0})
        gen = Path(tmp) / "llama2-7b-generate.yaml"
        gen.write_text(json.dumps({"name": "llama2-7b-generate-2048-2048",
                                   "model": "llama-2-7b", "phase": "generate",
                                   "seq_len": 2048, "new_tokens": 2048, "dtype": "fp16"}))
        simulate_goal("Llama-2-7B generation, 2,048 prompt + 2,048 new tokens (fresh process)",
                      gen, targets, {"event": 10.0, "analytical": 1.0})
    sweep_goal(targets, 20 if args.quick else 50)


if __name__ == "__main__":
    main()
