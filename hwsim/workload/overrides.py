"""``--set key=value``: overriding any workload or hardware field by its path.

Paths are dotted; list items are reached by index (``pruning.0.keep=0.3``).
Paths starting with ``target.`` go to the hardware spec
(``target.dram_bw_bytes_per_s=1.2e12``). Values are parsed as YAML scalars or
flow collections (``0.3``, ``true``, ``[1, 2]``, ``fastattention``).

A workload's name says what it is: ``llama2-7b-prefill-4096`` run with
``--set seq_len=8192`` is named ``llama2-7b-prefill-4096 [seq_len=8192]``
(:func:`label`), in the report's table, its JSON, its CSV and a sweep's
``workload`` column alike, since they all read the name. An override of
``name`` itself is the user's own label and is kept as given.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Iterable

from .. import yamlfile
from ..errors import InputError


def parse_sets(items: Iterable[str]) -> list[tuple[str, Any]]:
    """``["seq_len=4096", ...]`` -> ``[("seq_len", 4096), ...]``."""
    out = []
    for item in items:
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise InputError(f"expected key=value, got {item!r}", source="--set")
        try:
            value = yamlfile.parse(raw, "--set", "a value") if raw.strip() else ""
        except InputError as e:
            if "not valid YAML" not in str(e):
                raise InputError(f"{key.strip()}: {e.problems[0].message}",
                                 source="--set") from None
            value = raw
        out.append((key.strip(), value))
    return out


def split_target(sets: list[tuple[str, Any]]) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    """Separate workload overrides from ``target.*`` ones."""
    workload, target = [], {}
    for key, value in sets:
        if key.startswith("target."):
            target[key[len("target."):]] = value
        else:
            workload.append((key, value))
    return workload, target


# A vision-language prefill is sized by seq_len or by text_len, never both: setting one
# replaces the other.
_SIZES_OF_A_PREFILL = {"seq_len": "text_len", "text_len": "seq_len"}


def apply_sets(data: dict, sets: list[tuple[str, Any]]) -> dict:
    """A copy of ``data`` with each override applied."""
    data = copy.deepcopy(data)
    for key, value in sets:
        if key in _SIZES_OF_A_PREFILL:  # text_len and seq_len size the same sequence
            data.pop(_SIZES_OF_A_PREFILL[key], None)
        parts = key.split(".")
        node: Any = data
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            here = ".".join(parts[: i + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise InputError(f"no list item {part!r} (the list has {len(node)})",
                                     source="--set", field=here)
                idx = int(part)
                if last:
                    node[idx] = value
                else:
                    node = node[idx]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            else:
                raise InputError(f"{'.'.join(parts[:i])} is not a mapping or list",
                                 source="--set", field=here)
    return data


def label_name(name: str, sets: Iterable[tuple[str, Any]]) -> str:
    """``name`` with the workload overrides of ``sets`` after it in brackets:
    ``label_name("bert", [("seq_len", 512)])`` is ``"bert [seq_len=512]"``."""
    pairs = [(k, v) for k, v in sets if not k.startswith("target.")]
    if not pairs:
        return name
    text = ", ".join(f"{k}={_value_text(v)}" for k, v in pairs)
    return f"{name} [{text}]" if name else f"[{text}]"


def label(data: dict, sets: Iterable[tuple[str, Any]], default: str = "") -> dict:
    """``data`` (a workload mapping, changed in place and returned) with its name
    (``default`` when it has none) carrying the overrides ``sets`` that were applied
    to it, unless one of them sets the name itself."""
    sets = list(sets)
    if default:
        data.setdefault("name", default)
    if any(k == "name" for k, _ in sets):
        return data
    name = data.get("name", "")
    if isinstance(name, str):  # (another type is the loader's error to report)
        data["name"] = label_name(name, sets)
    return data


def _value_text(value: Any) -> str:
    """An override's value as one would type it: ``8192``, ``0.3``, ``true``,
    ``fastattention``, ``[1, 2]``."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, type(None), list, dict)):
        return json.dumps(value, separators=(", ", ": "), default=str)
    return str(value)
