"""A one-line progress bar on stderr (rows, rows/s, ETA), drawn only on a terminal.

No dependency: a carriage return redraws the line at most ``refresh`` times a second. In a pipe, a
log file or with ``--quiet`` the bar is disabled and every call is a no-op, so callers never branch.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 24


def _human_count(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n:.0f}"


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    """``update(rows)`` as rows arrive, ``close()`` at the end; ``total=None`` when unknown (no ETA)."""

    def __init__(self, label: str, total: int | None = None, *, enabled: bool | None = None,
                 stream: TextIO | None = None, refresh: float = 10.0):
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled
        self.label, self.total, self.done = label, total, 0
        self._start = self._last_draw = time.perf_counter()
        self._interval = 1.0 / refresh

    def update(self, rows: int) -> None:
        self.done += rows
        now = time.perf_counter()
        if self.enabled and now - self._last_draw >= self._interval:
            self._last_draw = now
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        """The text of the bar as it would be drawn now."""
        elapsed = max((now if now is not None else time.perf_counter()) - self._start, 1e-9)
        rate = self.done / elapsed
        parts = [self.label]
        if self.total:
            frac = min(self.done / self.total, 1.0)
            filled = int(frac * _WIDTH)
            parts.append(f"[{'#' * filled}{'.' * (_WIDTH - filled)}] {frac:6.1%}")
            parts.append(f"{_human_count(self.done)}/{_human_count(self.total)} rows")
        else:
            parts.append(f"{_human_count(self.done)} rows")
        parts.append(f"{_human_count(rate)} rows/s")
        if self.total and rate > 0 and self.done < self.total:
            parts.append(f"ETA {_clock((self.total - self.done) / rate)}")
        else:
            parts.append(f"elapsed {_clock(elapsed)}")
        return "  ".join(parts)

    def _draw(self, now: float) -> None:
        self.stream.write("\r" + self.line(now) + "\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self.enabled:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()

    def status(self, text: str) -> None:
        """A one-off status line (e.g. "building the hnsw index ...") on the same terminal only."""
        if self.enabled:
            self.stream.write(text + "\n")
            self.stream.flush()
