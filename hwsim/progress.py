"""Progress bars for long work: one switch, off unless the command line turns it on.

A library function that loops over something slow (the ops of a simulation, the
cases of ``hwsim validate``, the traces of a template, the figures of ``hwsim
plot``) wraps the loop in :func:`bar` or opens a :func:`task`; both cost nothing
while progress is off. The API leaves it off, so a script, a notebook or a test
prints nothing it did not ask for; ``hwsim`` turns it on for a command when
stderr is a terminal (or with ``--progress``; ``--no-progress`` keeps it off),
through :func:`enabled`. The bars are `tqdm <https://tqdm.github.io>`_'s, drawn
on stderr, so stdout (a table, ``--json -``) stays clean.

Only the outermost bar is drawn: a simulation inside a validation run adds no
bar of its own under the cases' bar.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

_on = False  # set by enabled(); the API default is off
_depth = 0  # bars open now: only the outermost is drawn
_open: list = []  # the tasks open now, innermost last (drawn or silent)


class _Silent:
    """What :func:`task` yields when nothing is drawn: updates go nowhere."""

    def update(self, n: int = 1) -> None:
        pass

    def set_description_str(self, text: str) -> None:
        pass


@contextmanager
def enabled(on: bool | None = None) -> Iterator[bool]:
    """Progress on (``True``), off (``False``) or, with ``None``, on exactly when
    stderr is a terminal, for the ``with`` block; yields the choice."""
    global _on
    if on is None:
        on = bool(getattr(sys.stderr, "isatty", lambda: False)())
    before, _on = _on, bool(on)
    try:
        yield _on
    finally:
        _on = before


def is_on() -> bool:
    """Whether a new outermost bar would be drawn now."""
    return _on and _depth == 0


@contextmanager
def task(desc: str, total: int | None = None, unit: str = "it") -> Iterator:
    """A bar for work counted by hand: ``with task("plot", unit="figure") as t:
    ... t.update()``. ``total=None``: a count and a rate, no percentage."""
    global _depth
    if not is_on():
        t = _Silent()
        _open.append(t)
        try:
            yield t
        finally:
            _open.remove(t)
        return
    from tqdm import tqdm  # noqa: PLC0415 - loaded when a bar is drawn

    _depth += 1
    t = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
             leave=False, mininterval=0.2)
    _open.append(t)
    try:
        yield t
    finally:
        _open.remove(t)
        t.close()
        _depth -= 1


def advance(n: int = 1) -> None:
    """Count ``n`` more on the innermost open :func:`task` (nothing when none is open):
    for work done deep inside a call whose caller opened the task (each figure
    :func:`hwsim.plot.style.save` writes counts on ``hwsim plot``'s bar)."""
    if _open:
        _open[-1].update(n)


def bar(items: Iterable[T], desc: str, total: int | None = None,
        unit: str = "it") -> Iterator[T]:
    """``items``, drawing a bar while they are consumed (when progress is on; else
    ``items`` itself, so that a hot loop pays nothing)."""
    if not is_on():
        return items
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    return _drawn(items, desc, total, unit)


def _drawn(items: Iterable[T], desc: str, total: int | None, unit: str) -> Iterator[T]:
    with task(desc, total, unit) as t:
        for item in items:
            yield item
            t.update()
