"""Published model configs shipped as data: the zoo's models built from config.json.

Each ``<model>.yaml`` in this folder is the ``config.json`` of a model card on
the Hugging Face hub, value for value, written as YAML so that every value
carries a comment and the file names its source (the card's URL) at the top.
The zoo entries of these models (:mod:`hwsim.trace.zoo_names`) take their
dimensions from here, and the tracer builds the model from the same file with
``transformers.AutoConfig`` (:mod:`hwsim.trace.zoo`), so the shipped template,
``hwsim models`` and the hand counts in the tests all read one set of numbers.

Reading a config needs no torch (only PyYAML); the folder is a package so that
a non-editable ``pip install .`` carries the files (``*.yaml`` is package data
for every package, pyproject.toml).

To add a model: copy its card's config.json here as ``<name>.yaml`` (keep every
value, cite the URL), add a zoo entry with ``"family": "hf", "config": "<name>"``
and ship its templates with ``python -m hwsim.trace.ship --models <name>``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from ...errors import InputError

CONFIG_DIR = Path(__file__).resolve().parent

try:  # libyaml when PyYAML was built with it: ~10x faster on these files
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - pure-Python PyYAML
    _Loader = yaml.SafeLoader


def names() -> list[str]:
    """The shipped configs, by model name."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def path(name: str) -> Path:
    """The file of shipped config ``name``."""
    return CONFIG_DIR / f"{name}.yaml"


@functools.lru_cache(maxsize=None)
def _read(name: str) -> dict[str, Any]:
    p = path(name)
    try:
        with open(p, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_Loader)
    except FileNotFoundError:
        raise InputError(f"no shipped config {name!r} (have: {', '.join(names())})",
                         source=str(CONFIG_DIR)) from None
    if not isinstance(data, dict) or "model_type" not in data:
        raise InputError("expected a config.json mapping with a model_type", source=str(p))
    return data


def load(name: str) -> dict[str, Any]:
    """Shipped config ``name`` as a plain dict (a copy: callers may edit it)."""
    return _copy(_read(name))


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
