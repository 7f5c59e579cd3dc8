"""Are two versions' reports the same to the last bit? The check behind a speed change.

A speed change must leave every report as it was. This script writes, for every
shipped workload (``workloads/*.yaml``, plus three BERT-base variants and any extra
workload files given), every target asked for and both fidelities, the report's
rows, totals and host lane (floats by ``repr``: the last bit counts) and a hash of
every timeline lane (units, labels, starts, ends), or the error a workload gets, to
one JSON file; ``--diff A B`` compares two such files.

Run it once per version, each with that version's checkout first on the path::

    PYTHONPATH=/path/to/old python benchmarks/same_reports.py old.json --targets ascend,armv8
    PYTHONPATH=. python benchmarks/same_reports.py new.json --targets ascend,armv8
    python benchmarks/same_reports.py --diff old.json new.json

The workloads are always this checkout's (both versions cost the same files). An
error is compared by its type and message (the checkout's path in it written
``<checkout>``). The
exit status of ``--diff`` is 1 when a case differs. On the 2-core development
machine the 344 cases of ``ascend,armv8`` take 3-6 minutes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = (["seq_len=200", "batch=3"], ["seq_len=77"], ["seq_len=333"])  # on bert-base


def clean(v):
    """JSON-safe, floats by repr (so that a change in the last bit shows)."""
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, dict):
        return {str(k): clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean(x) for x in v]
    return v if isinstance(v, (int, str, bool, type(None))) else repr(v)


def lanes_hash(report) -> str:
    parts = [(lane.units, lane.labels, list(lane.starts_s), list(lane.ends_s)) if lane else None
             for lane in report.lanes]
    return hashlib.sha1(repr(parts).encode()).hexdigest()


def dump(out: Path, targets: list[str], extra: list[str]) -> None:
    import hwsim  # noqa: PLC0415 (the version on the path)

    checkout = str(Path(hwsim.__file__).resolve().parents[1])
    print(f"hwsim from {checkout}", file=sys.stderr)
    cases = [(str(p), []) for p in sorted((ROOT / "workloads").glob("*.yaml"))]
    cases += [(str(Path(p).resolve()), []) for p in extra]
    cases += [(str(ROOT / "workloads" / "bert-base.yaml"), sets) for sets in VARIANTS]
    res = {}
    for target in targets:
        for path, sets in cases:
            for fidelity in ("event", "analytical"):
                key = f"{target}|{Path(path).name}|{sets}|{fidelity}"
                t0 = time.perf_counter()
                try:
                    r = hwsim.simulate(path, target, sets=sets, fidelity=fidelity)
                    res[key] = {"rows": clean(r.rows), "totals": clean(r.totals),
                                "lanes": lanes_hash(r) if fidelity == "event" else "",
                                "host": repr(r.host_lane)}
                except Exception as e:  # noqa: BLE001 (a refusal is a result to compare too)
                    # (a preset's or a workload's path)
                    msg = str(e).replace(checkout, "<checkout>").replace(str(ROOT), "<checkout>")
                    res[key] = f"error {type(e).__name__}: {msg}"
                print(f"{time.perf_counter() - t0:6.1f} s  {key}", file=sys.stderr)
    out.write_text(json.dumps(res))
    print(f"wrote {len(res)} cases to {out}")


def diff(a_path: Path, b_path: Path) -> int:
    a, b = json.loads(a_path.read_text()), json.loads(b_path.read_text())
    missing = sorted(set(a) ^ set(b))
    bad = [k for k in a if k in b and a[k] != b[k]]
    for k in missing:
        print(f"only in one: {k}")
    for k in bad:
        print(f"differs: {k}")
    print(f"{len(a)} cases, {len(bad)} differ, {len(missing)} in one file only")
    return 1 if bad or missing else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path, help="the JSON file to write")
    ap.add_argument("--targets", default="ascend,armv8")
    ap.add_argument("--extra", nargs="*", default=[], help="more workload files")
    ap.add_argument("--diff", nargs=2, type=Path, metavar=("A", "B"))
    args = ap.parse_args()
    if args.diff:
        sys.exit(diff(*args.diff))
    if args.out is None:
        ap.error("give the JSON file to write, or --diff A B")
    dump(args.out, [t for t in args.targets.split(",") if t], args.extra)


if __name__ == "__main__":
    main()
