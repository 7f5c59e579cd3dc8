"""(Re)generate the shipped templates: ``python -m hwsim.trace.ship [--models ...]``.

For every zoo model and each of its phases (prefill for all; decode for the
decoder language models and LLaVA, where a decode step is one language-model
step; the ``hf`` models are built from their configs in
:mod:`hwsim.trace.configs`), :func:`hwsim.trace.template.trace_template` traces a 2x2 grid of small
sizes, fits the template and checks it at an unseen size; the result is written
to ``traces/{model}.{phase}.json.gz`` at the repository root. A model with a
decode phase also has an ``extend`` template (a decode step of several new tokens,
a 2x2x2 grid; ``traces/{model}.extend.json.gz``): ``--phases extend`` writes only
those. (A vision-language
model's other images, ``--image HxW``: ``{model}.prefill.{HxW}.json.gz``), where the
simulator finds it without torch and instantiates it at any size with
``hwsim.ir.load(path).instantiate(batch=..., seq_len=..., kv_len=...)``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..ir import save
from . import images
from .template import trace_template
from .zoo import vision_rule
from .zoo_names import EXTEND, ZOO_NAMES, phases, template_path

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "traces"


def ship(models: list[str], out: Path, phase_filter: list[str] | None = None,
         image: tuple[int, int] | None = None) -> list[Path]:
    """Write the templates of ``models`` into ``out``; returns the files written.

    With ``image`` ((height, width) px), a vision-language model's prefill template
    for that image instead of its default one: ``{model}.prefill.{tag}.json.gz``
    (:func:`hwsim.trace.images.tag`, the processed size; its decode step does not
    depend on the image)."""
    written = []
    for model in models:
        rule = vision_rule(model) if image is not None else None
        if image is not None and rule is None:
            raise SystemExit(f"--image: {model} reads no image")
        for phase in phases(model) + ((EXTEND,) if "decode" in phases(model) else ()):
            if phase_filter and phase not in phase_filter:
                continue
            tag = images.tag(rule, image) if rule is not None and phase == "prefill" else ""
            if image is not None and not tag:
                continue  # the default image's (or a decode step's) template ships as is
            start = time.perf_counter()
            template = trace_template(model, phase, image=image if tag else None)
            name = template_path(model, phase)
            path = out / (name.replace(".json.gz", f".{tag}.json.gz") if tag else name)
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
    parser.add_argument("--phases", nargs="+", choices=("prefill", "decode", EXTEND),
                        help="only these phases")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--image", metavar="HxW", type=_image,
                        help="a vision-language model's prefill for this image (height x "
                             "width px) besides its default one")
    args = parser.parse_args(argv)
    files = ship(args.models, args.out, args.phases, args.image)
    total = sum(p.stat().st_size for p in files)
    print(f"{len(files)} templates, {total / 1024:.1f} KiB in all")
    return 0


def _image(text: str) -> tuple[int, int]:
    try:
        h, w = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH in pixels, got {text!r}") \
            from None
    return h, w


if __name__ == "__main__":
    raise SystemExit(main())
