"""One op's tasks on the timeline, kept as four columns.

An op lowers to up to thousands of tasks; its lane is read only when a timeline is
drawn or written (:mod:`hwsim.report.chrome`, :mod:`hwsim.plot.timeline`). The
columns (unit, label, start, end) cost a fraction of a tuple per task; iterating a
:class:`Lane` gives the ``(unit, label, start_s, end_s)`` tuples.
"""

from __future__ import annotations

from typing import Iterator, Sequence


class Lane:
    """The tasks of one op: ``(unit, label, start_s, end_s)`` each, in task order."""

    __slots__ = ("units", "labels", "starts_s", "ends_s")

    def __init__(self, units: Sequence[str], labels: Sequence[str],
                 starts_s: Sequence[float], ends_s: Sequence[float]):
        self.units, self.labels, self.starts_s, self.ends_s = units, labels, starts_s, ends_s

    def __len__(self) -> int:
        return len(self.units)

    def __iter__(self) -> Iterator[tuple[str, str, float, float]]:
        return zip(self.units, self.labels, self.starts_s, self.ends_s)

    def __getitem__(self, i: int) -> tuple[str, str, float, float]:
        return self.units[i], self.labels[i], self.starts_s[i], self.ends_s[i]
