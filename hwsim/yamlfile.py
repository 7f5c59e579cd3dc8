"""Reading YAML from users safely: one reader for every YAML input hwsim takes.

Workloads, presets, sweeps, validation cases and ``--set`` values are YAML a user
wrote, copied or generated. :func:`read` and :func:`parse` load it with PyYAML's
safe loader and turn whatever can go wrong into one :class:`~hwsim.errors.InputError`
naming the file, before anything else sees the data:

- a file larger than :data:`MAX_BYTES` (no workload or preset is near it), a
  directory, a missing file;
- bytes that are not UTF-8 text (a binary file given by mistake);
- YAML errors, with PyYAML's position;
- aliases beyond :data:`MAX_ALIASES`, or data whose aliases expand past
  :data:`MAX_NODES` values (an alias "bomb": a few lines that expand exponentially
  when the data is walked), and nesting deeper than :data:`MAX_DEPTH` (a
  recursion error further on);
- integers too long for Python to read (over 4,300 digits).
"""

from __future__ import annotations

import copy
import os
from typing import Any

import yaml

from .errors import InputError

# 256 KiB of YAML: about 30x the largest shipped file (a preset of 8 KB), and PyYAML's
# safe loader reads some 6 us per byte (a 3.5 MB file took 23 s): a few seconds at most
MAX_BYTES = 256 << 10
MAX_ALIASES = 1000  # anchors referenced (*name) in one document
MAX_DEPTH = 64  # mappings and lists inside each other
MAX_NODES = 1_000_000  # values in the document with every alias expanded


class _Limits:
    """Composing with counts: aliases and the depth of nesting (a mix-in ahead of
    PyYAML's composer, whichever parser hands it the events)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _Limit(f"more than {MAX_ALIASES:,} aliases (*anchor references)")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Limit(f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_data(self):
        node = self.get_single_node()
        if node is None:
            return None
        if _expanded(node, {}) > MAX_NODES:
            raise _Limit(f"more than {MAX_NODES:,} values once its aliases are expanded")
        return self.construct_document(node)


class _Loader(_Limits, yaml.SafeLoader):
    """The safe loader, counting aliases and the depth of nesting as it composes."""

    def __init__(self, stream):
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0


if getattr(yaml, "__with_libyaml__", False):
    from yaml.composer import Composer
    from yaml.constructor import SafeConstructor
    from yaml.cyaml import CParser
    from yaml.resolver import Resolver

    class _CLoader(_Limits, Composer, CParser, SafeConstructor, Resolver):
        """:class:`_Loader` with libyaml's scanner and parser (C) under the same
        composer, limits and constructor (Python): the same data, about seven
        times faster on a preset (the pure-Python scanner is most of a parse: 7 ms of
        a Kunpeng 920 preset's 8 ms, a first run's 3 %). Only the parser is C: its
        events are composed here, so the alias and depth limits hold as before (the
        C composer would nest without them). A YAML error's wording is libyaml's."""

        def __init__(self, stream):
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self._aliases = 0
            self._depth = 0

    _LOADER: type = _CLoader
else:  # pragma: no cover - PyYAML built without libyaml
    _LOADER = _Loader


def _expanded(node, sizes: dict) -> int:
    """Values under ``node`` with every alias expanded (a node shared by aliases is
    counted each time it is referenced; its size is computed once)."""
    got = sizes.get(id(node))
    if got is not None:
        return got
    if isinstance(node, yaml.MappingNode):
        n = 1 + sum(_expanded(k, sizes) + _expanded(v, sizes) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        n = 1 + sum(_expanded(v, sizes) for v in node.value)
    else:
        n = 1
    sizes[id(node)] = n
    return n


class _Limit(Exception):
    pass


_PARSED: dict[str, Any] = {}  # text -> its data (a copy of it is handed out)
_PARSED_MAX = 64  # texts kept (workloads, presets and sweeps of a session)


def parse(text: str, source: str, what: str = "YAML") -> Any:
    """``text`` as YAML data (None for an empty document); problems as one line.

    A text parsed before is not parsed again (a sweep reads its workload and preset
    once per point, and the pure-Python loader takes milliseconds): the data is kept
    by the text itself, and the caller gets a copy of it."""
    if len(text) > MAX_BYTES:
        raise InputError(f"{what} of {len(text):,} characters: at most {MAX_BYTES:,}",
                         source=source)
    if text in _PARSED:
        return copy.deepcopy(_PARSED[text])
    data = _parse(text, source, what)
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    _PARSED[text] = copy.deepcopy(data)
    return data


def _parse(text: str, source: str, what: str) -> Any:
    loader = _LOADER(text)
    try:
        return loader.get_single_data()
    except _Limit as e:
        raise InputError(f"not accepted as {what}: {e}", source=source) from None
    except yaml.YAMLError as e:
        raise InputError(f"not valid YAML: {' '.join(str(e).split())}", source=source) from None
    except (ValueError, RecursionError) as e:  # an integer of thousands of digits, ...
        raise InputError(f"not accepted as {what}: {' '.join(str(e).split())[:160]}",
                         source=source) from None
    finally:
        loader.dispose()


def read(path: str | os.PathLike, what: str = "YAML file") -> Any:
    """The YAML data of the file at ``path`` (see the module docstring)."""
    path = os.fspath(path)
    try:
        if os.path.isdir(path):
            raise InputError(f"is a directory, expected a {what}", source=path)
        size = os.path.getsize(path)
        if size > MAX_BYTES:
            raise InputError(f"{size:,} bytes: a {what} is at most {MAX_BYTES:,}", source=path)
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise InputError(f"{what} not found", source=path) from None
    except PermissionError:
        raise InputError(f"{what} cannot be read (permission denied)", source=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text (byte {e.start}): a {what} is YAML text",
                         source=path) from None
    if "\x00" in text:
        raise InputError(f"holds NUL bytes: a {what} is YAML text, not binary", source=path)
    return parse(text, path)


def resolve_path(path: str, source: str) -> str:
    """A path in a workload is relative to the workload file's folder."""
    if os.path.isabs(path) or not source or source.startswith("<"):
        return path
    here = os.path.join(os.path.dirname(os.path.abspath(source)), path)
    return here if os.path.exists(here) or not os.path.exists(path) else path
