"""A progress line on stderr: points done, failed, skipped, and the rate.

On a terminal the line is redrawn in place (``\\r``) at most ten times a
second; in a log file or CI output, where ``\\r`` does not redraw, a new line
is printed at most every ``log_every_s`` seconds, so a long sweep leaves a
readable log. When stderr is a terminal, tqdm draws the bar instead.
``Progress(enabled=False)`` prints nothing.

Example line::

    sweep bert-seq: 120/200 points (3 failed, 40 skipped as done) 61.2 points/s, eta 1 s
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts finished points and shows them; call :meth:`update` per point."""

    def __init__(self, total: int, *, name: str = "sweep", skipped: int = 0,
                 enabled: bool = True, stream: TextIO | None = None,
                 log_every_s: float = 10.0):
        self.total = total
        self.name = name
        self.skipped = skipped
        self.done = 0
        self.failed = 0
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.log_every_s = log_every_s
        self.start = time.monotonic()
        self._last_draw = 0.0
        self._bar = None
        if enabled and self.tty and stream is None:
            from tqdm import tqdm  # noqa: PLC0415

            self._bar = tqdm(total=total, initial=skipped, desc=name, unit="pt",
                             file=self.stream, dynamic_ncols=True)

    @property
    def rate(self) -> float:
        """Points finished per second in this run (skipped points not counted)."""
        elapsed = time.monotonic() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def update(self, failed: bool = False) -> None:
        self.done += 1
        self.failed += int(failed)
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(failed=self.failed, refresh=False)
            return
        now = time.monotonic()
        every = 0.1 if self.tty else self.log_every_s
        if now - self._last_draw >= every or self.finished:
            self._last_draw = now
            self._draw()

    @property
    def finished(self) -> bool:
        return self.skipped + self.done >= self.total

    def line(self) -> str:
        """The progress text: counts, failures, skipped points, rate and time left."""
        rate = self.rate
        left = self.total - self.skipped - self.done
        eta = f", eta {left / rate:.0f} s" if rate > 0 and left > 0 else ""
        extra = [f"{self.failed} failed"]
        if self.skipped:
            extra.append(f"{self.skipped} skipped as done")
        return (f"{self.name}: {self.skipped + self.done}/{self.total} points "
                f"({', '.join(extra)}) {rate:.1f} points/s{eta}")

    def _draw(self) -> None:
        end = "" if self.tty else "\n"
        prefix = "\r" if self.tty else ""
        self.stream.write(f"{prefix}{self.line()}{end}")
        self.stream.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            return
        if self.tty:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
