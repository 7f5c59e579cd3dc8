"""Sweep throughput: BERT-base points per second per core, analytical fidelity.

Run: ``python benchmarks/bench_sweep.py [--target roofline] [--points 200]``.
DESIGN.md's goal is at least 20 BERT-base points per second per core in
analytical fidelity on a 2-core machine. Two figures are printed:

- *in-process*: ``hwsim.sweep(..., workers=1)``, points run one after another
  in this process: the cost of a point on one core;
- *pool*: ``hwsim.sweep(..., workers=N)`` with ``N`` = the number of cores,
  streaming to a Parquet results folder, divided by ``N``: what a user gets per
  core, pool start-up, inter-process traffic and the writes included.

The points vary the sequence length, the batch and the DRAM bandwidth (on a
CPU target, whose bandwidth comes from its DDR channels and the lines each core
keeps in flight, the channels' transfer rate), so no two are alike (identical
points would be skipped as cached). The exit status is 1 when the pool figure
is below the goal.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hwsim  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GOAL = 20.0
# the field that sets a target's DRAM bandwidth, with the range swept: bytes per second
# on the accelerators; DDR transfers per second per channel on the ARMv8 CPUs
# (DDR4-1600 to DDR4-3200)
BANDWIDTH_FIELDS = (("dram_bw_bytes_per_s", 3e11, 1.5e12),
                    ("dram_bw_bytes_per_s", 3e11, 1.5e12),
                    ("dram_transfers_per_s", 1.6e9, 3.2e9))


def spec(target: str, points: int) -> dict:
    """``points`` distinct BERT-base points (a multiple of 40): seq_len x batch x bandwidth."""
    fields = hwsim.resolve(target).to_dict()["spec"]
    bw, lo, hi = next(f for f in BANDWIDTH_FIELDS if f[0] in fields)
    return {"name": "bench-bert", "workload": str(ROOT / "workloads" / "bert-base.yaml"),
            "target": target, "fidelity": "analytical",
            "axes": {"seq_len": {"range": [64, 512], "steps": 10},
                     "batch": [1, 2, 3, 4],
                     f"target.{bw}": {"range": [lo, hi], "steps": max(1, points // 40),
                                      "log": True}}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="roofline",
                    help="roofline (default), volta, ascend or armv8")
    ap.add_argument("--points", type=int, default=200)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    s = spec(args.target, args.points)
    hwsim.sweep({**s, "axes": {"seq_len": [128]}}, workers=1, progress=False)  # warm caches

    t0 = time.perf_counter()
    df = hwsim.sweep(s, workers=1, progress=False)
    serial = len(df) / (time.perf_counter() - t0)
    assert (df["status"] == "ok").all(), df[df["status"] != "ok"]["error"].iloc[0]
    print(f"in-process: {len(df)} BERT-base points on {args.target}, analytical: "
          f"{serial:.1f} points/s on one core")

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        df = hwsim.sweep(s, os.path.join(tmp, "bench.parquet"), workers=args.workers,
                         progress=False)
        elapsed = time.perf_counter() - t0
    total = len(df) / elapsed
    per_core = total / args.workers
    print(f"pool: {len(df)} points with {args.workers} workers in {elapsed:.2f} s: "
          f"{total:.1f} points/s, {per_core:.1f} points/s per core "
          f"(goal >= {GOAL:.0f}: {'met' if per_core >= GOAL else 'NOT met'})")
    return 0 if per_core >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
