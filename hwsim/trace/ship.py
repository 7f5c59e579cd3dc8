"""(Re)generate the shipped templates: ``python -m hwsim.trace.ship [--models ...]``.

For every zoo model and each of its phases (prefill for all; decode for the
decoder language models and LLaVA, where a decode step is one language-model
step; the ``hf`` models are built from their configs in
:mod:`hwsim.trace.configs`), :func:`hwsim.trace.template.trace_template` traces a 2x2 grid of small
sizes, fits the template and checks it at an unseen size; the result is written
to ``traces/{model}.{phase}.json.gz`` at the repository root, where the
simulator finds it without torch and instantiates it at any size with
``hwsim.ir.load(path).instantiate(batch=..., seq_len=..., kv_len=...)``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..ir import save
from .template import trace_template
from .zoo_names import ZOO_NAMES, phases, template_path

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "traces"


def ship(models: list[str], out: Path, phase_filter: list[str] | None = None) -> list[Path]:
    """Write the templates of ``models`` into ``out``; returns the files written."""
    written = []
    for model in models:
        for phase in phases(model):
            if phase_filter and phase not in phase_filter:
                continue
            start = time.perf_counter()
            template = trace_template(model, phase)
            path = out / template_path(model, phase)
            save(template, path)
            written.append(path)
            print(f"{path}  {len(template.ops)} ops  {path.stat().st_size / 1024:.1f} KiB  "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hwsim.trace.ship",
                                     description="Regenerate the shipped trace templates.")
    parser.add_argument("--models", nargs="+", default=list(ZOO_NAMES), choices=ZOO_NAMES,
                        metavar="MODEL", help="zoo models (default: all)")
    parser.add_argument("--phases", nargs="+", choices=("prefill", "decode"),
                        help="only these phases")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output folder (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    files = ship(args.models, args.out, args.phases)
    total = sum(p.stat().st_size for p in files)
    print(f"{len(files)} templates, {total / 1024:.1f} KiB in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
