"""``hwsim workloads``: the shipped workloads (or ``--sweeps``: sweep files), one line each.

Each is named on the command line without a path (``hwsim simulate bert-base``,
``hwsim sweep bert-seq-bw``): :mod:`hwsim.workload.shipped` has the lookup rule.
"""

from __future__ import annotations

import json
import sys

from .options import add_common

COLUMNS = {"workload": ("name", "model", "phase", "target", "description"),
           "sweep": ("name", "workload", "target", "description")}


def add_parser(sub) -> None:
    w = sub.add_parser("workloads", help="list the shipped workloads (hwsim simulate NAME "
                       "runs one from any folder)")
    w.add_argument("--sweeps", action="store_true",
                   help="list the shipped sweep files instead (hwsim sweep NAME)")
    w.add_argument("--json", action="store_true",
                   help="one JSON object per line, with the file's path and no cut")
    add_common(w)


def run(args) -> int:
    from ..errors import InputError  # noqa: PLC0415
    from ..workload import shipped  # noqa: PLC0415

    kind = "sweep" if args.sweeps else "workload"
    rows = shipped.catalogue(kind)
    if not rows:
        raise InputError(f"no shipped {kind}s found (this hwsim was installed without its "
                         f"package data: reinstall it)", source="hwsim workloads")
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(table(rows, COLUMNS[kind]))
    use = "hwsim sweep NAME" if args.sweeps else "hwsim simulate NAME"
    print(f"\n{len(rows)} shipped {kind}s in {shipped.folder(kind)}; run one with {use}",
          file=sys.stderr)
    return 0


def table(rows: list[dict], columns, width: int = 0) -> str:
    """``rows`` as a left-aligned text table (pandas' ``to_string``); the last column
    is cut with ``...`` to fit ``width`` characters (default: the terminal's)."""
    import shutil  # noqa: PLC0415

    import pandas as pd  # noqa: PLC0415

    width = width or shutil.get_terminal_size((120, 24)).columns
    df = pd.DataFrame([{c: str(r.get(c) or "-") for c in columns} for r in rows],
                      columns=list(columns))
    widths = {c: max(len(c), df[c].str.len().max()) + 1 for c in columns}  # 2 spaces apart
    room = max(16, width - sum(widths[c] + 1 for c in columns[:-1]))
    last = columns[-1]
    df[last] = [s if len(s) <= room else s[:room - 3].rstrip() + "..." for s in df[last]]
    fmt = {c: (lambda w: (lambda s: s.ljust(w)))(widths[c]) for c in columns}
    text = df.to_string(index=False, formatters=fmt, justify="left")
    return "\n".join(line.rstrip() for line in text.splitlines())
