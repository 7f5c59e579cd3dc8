"""``--set key=value``: overriding any workload or hardware field by its path.

Paths are dotted; list items are reached by index (``pruning.0.keep=0.3``).
Paths starting with ``target.`` go to the hardware spec
(``target.dram_bw_bytes_per_s=1.2e12``). Values are parsed as YAML scalars or
flow collections (``0.3``, ``true``, ``[1, 2]``, ``fastattention``).
"""

from __future__ import annotations

import copy
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
