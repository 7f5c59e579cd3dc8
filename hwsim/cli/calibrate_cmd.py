"""``hwsim calibrate``: the machine models' parts against microbenchmarks of the parts.

Without ``--fit`` it runs every calibration case (:mod:`hwsim.calibrate`) of the
selected targets and presets and prints, per parameter, the model against the
measurement and the MAPE; ``--json`` writes the same as a document. With
``--fit DATA.csv`` it reads a user's own microbenchmark file (in the columns of
one of the shipped files) through the target's reader and refits the preset
parameters those cases ground, printing ``--set`` lines and a YAML snippet.
"""

from __future__ import annotations

import json
import sys

from .. import errors
from .options import add_common


def add_parser(sub) -> None:
    c = sub.add_parser("calibrate", help="model against microbenchmarks, per preset parameter; "
                                         "--fit refits a preset from your own")
    c.add_argument("--target", "-t", help="only this target (all its presets), or a preset "
                                          "name or hardware YAML")
    c.add_argument("--preset", "-p", help="only this preset (a name or a hardware YAML)")
    c.add_argument("--set", dest="sets", action="append", default=[],
                   metavar="target.FIELD=VALUE", help="override a spec field first")
    c.add_argument("--json", metavar="PATH", help="write the cases as JSON ('-' for stdout)")
    c.add_argument("--fit", metavar="DATA.csv",
                   help="refit the preset's parameters from your microbenchmark CSV (the "
                        "columns of the shipped file of the same benchmark)")
    add_common(c)


def _target_sets(items: list[str]) -> dict:
    from ..workload.overrides import parse_sets, split_target  # noqa: PLC0415

    rest, target = split_target(parse_sets(items))
    if rest:
        raise errors.InputError(f"only target.FIELD overrides apply here, not {rest[0][0]!r}",
                                source="--set")
    return target


def run_calibrate(args) -> int:
    from .. import calibrate as cal  # noqa: PLC0415
    from .options import check_output, write_text  # noqa: PLC0415

    check_output(args.json, "--json", stdout_ok=True)
    sets = _target_sets(args.sets)
    out = sys.stderr if args.json == "-" else sys.stdout
    fits = None
    if args.fit:
        from ..targets import resolve  # noqa: PLC0415

        if not (args.target or args.preset):
            raise errors.InputError("name the machine to refit: --target or --preset",
                                    source="--fit")
        pairs = cal.select(args.target, args.preset)
        if len(pairs) != 1:
            target = pairs[0][0]
            pairs = [(target, target.default_preset)]
        target, preset = pairs[0]
        r = resolve(preset, sets)
        fits = cal.refit(target, r.spec, preset, args.fit)
        print(cal.format_fits(target.name, preset, args.fit, fits), file=out)
        runs = []
    else:
        runs = cal.run(args.target, args.preset, sets)
        print(cal.format_runs(runs), file=out)
    if args.json:
        write_text(args.json, json.dumps(cal.runs_to_dict(runs, fits), indent=1,
                                         allow_nan=False) + "\n", "--json")
    return 0
