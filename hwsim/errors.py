"""Errors that reach the user.

Every problem with user input (a workload file, a hardware preset, a trace, a
command-line override) is an :class:`InputError`. It names *where* (a file and a
dotted field path) and *what was expected*, so the CLI can print it as one line
and exit with status 2. Several problems found in one file are collected into a
single :class:`InputError` (ZigZag-style: report everything before failing).

Errors that are bugs in hwsim itself are ordinary Python exceptions and keep
their tracebacks.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where it is and what was expected."""

    source: str  # a file path, "<--set>", "<ops>", or a short description
    field: str  # dotted path inside the source, "" for the whole source
    message: str  # what is wrong / what was expected

    def __str__(self) -> str:
        where = ": ".join(x for x in (self.source, self.field) if x)
        return f"{where}: {self.message}" if where else self.message


class HwsimError(Exception):
    """Base class for errors hwsim reports to the user (exit status 2)."""


class InputError(HwsimError):
    """Bad user input. Holds one or more :class:`Problem`."""

    def __init__(self, problems: list[Problem] | Problem | str, *, source: str = "",
                 field: str = ""):
        if isinstance(problems, str):
            problems = [Problem(source, field, problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        if not problems:
            raise ValueError("InputError needs at least one problem")
        self.problems: list[Problem] = list(problems)
        super().__init__(self._text())

    def _text(self) -> str:
        first = str(self.problems[0])
        if len(self.problems) == 1:
            return first
        rest = "; ".join(str(p) for p in self.problems[1:])
        return f"{first} (and {len(self.problems) - 1} more: {rest})"


class UnsupportedOpError(HwsimError):
    """A target met an operator kind it cannot cost. Never counted as zero."""

    def __init__(self, target: str, kind: str, op_line: str = ""):
        self.target = target
        self.kind = kind
        msg = f"target {target!r} cannot cost operator kind {kind!r}"
        if op_line:
            msg += f" (op: {op_line})"
        super().__init__(msg)


class Collector:
    """Collects problems while validating, then raises them all at once."""

    def __init__(self, source: str):
        self.source = source
        self.problems: list[Problem] = []

    def add(self, field: str, message: str) -> None:
        self.problems.append(Problem(self.source, field, message))

    def raise_if_any(self) -> None:
        if self.problems:
            raise InputError(self.problems)
