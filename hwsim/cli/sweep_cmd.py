"""``hwsim sweep`` and ``hwsim plot``: design-space sweeps and their figures.

::

    hwsim sweep SWEEP.yaml [-o FILE.parquet] [--workers N | --scheduler ADDRESS]
                [--set KEY=VALUE] [--retry-failed] [--fresh] [--dry-run] [--quiet]
    hwsim plot FILE.parquet [-o DIR] [--kind pareto|trend|breakdown|roofline|compare]
               [--format pdf|svg|png]

``hwsim sweep`` writes one row per point to ``FILE.parquet`` (default
``results/<sweep name>.parquet``) as points finish; run the same command again
after an interruption and it runs only the points that are missing. The
progress line and a summary go to stderr. ``--dry-run`` prints the points
without running them.
"""

from __future__ import annotations

import os
import sys

from .options import add_common


def add_parsers(sub) -> None:
    """Add the ``sweep`` and ``plot`` subcommands to ``hwsim``'s subparsers."""
    s = sub.add_parser("sweep", help="run a design-space sweep (a sweep YAML) to Parquet")
    s.add_argument("sweep", help="sweep YAML file, or a shipped sweep's name (bert-seq-bw; "
                   "hwsim workloads --sweeps lists them)")
    s.add_argument("-o", "--output", metavar="FILE.parquet",
                   help="results (a Parquet dataset directory); default "
                        "results/<sweep name>.parquet")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--workers", "-j", type=int, metavar="N",
                       help="local worker processes (default: one per core; 1 runs in-process)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on a Dask distributed cluster, e.g. tcp://127.0.0.1:8786")
    s.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="fixed override for every point (like the file's set:)")
    s.add_argument("--retry-failed", action="store_true",
                   help="rerun points that failed in an earlier run")
    s.add_argument("--fresh", action="store_true",
                   help="discard results already in the output and start over")
    s.add_argument("--dry-run", action="store_true",
                   help="print the points (and which are done) without running them")
    s.add_argument("--flush-every", type=int, default=64, metavar="N",
                   help="write a part file every N finished points (and every 2 s)")
    s.add_argument("--quiet", "-q", action="store_true",
                   help="no progress line (as --no-progress)")
    add_common(s)

    p = sub.add_parser("plot", help="plot a sweep's results (Pareto fronts, breakdowns, ...)")
    p.add_argument("results", help="results of hwsim sweep (FILE.parquet)")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="folder for the figures (default: FILE.parquet's name without "
                        ".parquet, plus -figures)")
    p.add_argument("--kind", action="append", metavar="KIND",
                   help="pareto, trend, breakdown, roofline or compare (repeatable; "
                        "default all that apply)")
    p.add_argument("--format", default="pdf", choices=["pdf", "svg", "png"],
                   help="pdf and svg are vector output (default pdf)")
    add_common(p)


def run_sweep(args) -> int:
    from ..errors import InputError  # noqa: PLC0415
    from ..sweep import load_sweep, prepare, sweep  # noqa: PLC0415
    from ..sweep.store import ResultStore  # noqa: PLC0415
    from ..workload import parse_sets  # noqa: PLC0415

    spec = load_sweep(args.sweep)
    from .main import safe_name  # noqa: PLC0415

    output = args.output or os.path.join("results", f"{safe_name(spec.name)}.parquet")
    sets = dict(parse_sets(args.sets))
    if args.flush_every < 1:
        raise InputError(f"expected N >= 1, got {args.flush_every}", source="--flush-every")
    if args.dry_run:
        import dataclasses  # noqa: PLC0415

        if sets:
            spec = dataclasses.replace(spec, sets={**spec.sets, **sets})
        _, points = prepare(spec)
        done = (ResultStore(output, spec).done()
                if os.path.isdir(output) else {})
        for p in points:
            mark = done.get(p.id, "todo")
            values = " ".join(f"{k}={v}" for k, v in p.values.items())
            print(f"{p.index:5d} {p.id} {mark:5s} {values}")
        print(f"{len(points)} points, {sum(p.id in done for p in points)} done",
              file=sys.stderr)
        return 0
    df = sweep(spec, output, workers=args.workers, scheduler=args.scheduler,
               progress=not args.quiet and args.progress is not False,
               retry_failed=args.retry_failed, fresh=args.fresh, sets=sets,
               flush_every=args.flush_every)
    run = df.attrs["run"]
    failed = int((df["status"] != "ok").sum()) if len(df) else 0
    print(f"wrote {output}: {run['points']} points ({run['points'] - failed} ok, {failed} "
          f"failed); ran {run['ran']} in {run['elapsed_s']:.1f} s "
          f"({run['points_per_s']:.1f} points/s), {run['skipped']} already done",
          file=sys.stderr)
    if failed:
        first = df[df["status"] != "ok"].iloc[0]
        print(f"first failure (point {first['index']}): {first['error']}", file=sys.stderr)
    return 0


def run_plot(args) -> int:
    from ..plot import plot_results  # noqa: PLC0415
    from ..plot.auto import KINDS  # noqa: PLC0415

    kinds = args.kind or list(KINDS)
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        from ..errors import InputError  # noqa: PLC0415

        raise InputError(f"unknown plot kind {bad[0]!r} (kinds: {', '.join(KINDS)})",
                         source="--kind")
    from ..progress import task  # noqa: PLC0415

    out = args.output or (args.results.rstrip("/").removesuffix(".parquet") + "-figures")
    with task("plot", unit="figure"):  # each figure saved counts (hwsim.progress.advance)
        paths = plot_results(args.results, out, kinds=kinds, fmt=args.format)
    for path in paths:
        print(path)
    if not paths:
        print(f"hwsim plot: no successful points in {args.results}, nothing to plot",
              file=sys.stderr)
        return 1
    return 0
