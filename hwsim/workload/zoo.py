"""The model zoo as the simulator sees it, without torch.

The shipped templates in ``traces/`` (``{model}.{phase}.json.gz``) are the
torch-free truth about which models and phases exist: their headers give the
number of layers, the token segments and the layer stacks. With torch installed
the tracer's zoo (:mod:`hwsim.trace`) may know more models, which are traced on
the fly.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from ..ir import Graph, load


def traces_dirs() -> list[Path]:
    """Where shipped templates are looked for, in order."""
    dirs = []
    env = os.environ.get("HWSIM_TRACES")
    if env:
        dirs.append(Path(env))
    here = Path(__file__).resolve()
    dirs.append(here.parents[2] / "traces")  # source checkout or editable install
    dirs.append(here.parents[1] / "_traces")  # packaged copy in a wheel
    return [d for d in dirs if d.is_dir()]


@functools.lru_cache(maxsize=None)
def _shipped() -> dict[str, dict[str, Path]]:
    out: dict[str, dict[str, Path]] = {}
    for d in traces_dirs():
        for p in sorted(d.glob("*.json.gz")):
            stem = p.name[: -len(".json.gz")]
            model, dot, phase = stem.rpartition(".")
            if dot and phase in ("prefill", "decode"):
                out.setdefault(model, {}).setdefault(phase, p)
    return out


@functools.lru_cache(maxsize=1)
def _tracer_zoo() -> dict[str, tuple[str, ...]]:
    """Models the tracer knows (needs torch); empty without torch."""
    try:
        from ..trace import zoo_names  # noqa: PLC0415 - optional, imports torch
    except Exception:
        return {}
    return {name: tuple(zoo_names.phases(name)) for name in zoo_names.ZOO_NAMES}


def names() -> list[str]:
    return sorted(set(_shipped()) | set(_tracer_zoo()))


def is_known(model: str) -> bool:
    return model in _shipped() or model in _tracer_zoo()


def phases(model: str) -> tuple[str, ...]:
    shipped = tuple(_shipped().get(model, {}))
    return tuple(sorted(set(shipped) | set(_tracer_zoo().get(model, ()))))


def shipped_path(model: str, phase: str) -> Path | None:
    return _shipped().get(model, {}).get(phase)


@functools.lru_cache(maxsize=None)
def template(model: str, phase: str) -> Graph | None:
    path = shipped_path(model, phase)
    return load(path) if path else None


def _any_template(model: str) -> Graph | None:
    for phase in ("prefill", "decode"):
        g = template(model, phase)
        if g is not None:
            return g
    return None


def num_layers(model: str) -> int | None:
    """Layers of the stack pruning acts on: the language model's when there are several."""
    g = _any_template(model)
    if g is None:
        return None
    stacks = g.header.get("stacks") or {}
    for name in ("language", "decoder", "encoder"):
        if name in stacks:
            return int(stacks[name]["num_layers"])
    return g.num_layers


def segments(model: str) -> dict:
    g = _any_template(model)
    if g is None:
        return {}
    return {k: v for k, v in (g.header.get("segments") or {}).items()}
