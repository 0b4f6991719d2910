"""What a person at a terminal sees while a sync runs: one status line on stderr, redrawn in place.

    pull ██████░░░░░░░░░░  page 800 of ~2,001 · 40,000 customers at 5,120/s · 23 s left
    pull  page 800 of ? · 40,000 customers at 5,120/s · time left ?
    push ████░░░░░░░░░░░░  updates 12 of 60 at 8.1/s · 6 s left

The listing has no total, so the pull's total is the page count of the mirror's last complete
walk (marked `~`, an estimate); with none (a first import), or once the walk passes it, the
total and the time left are `?` rather than a made-up figure. Used only when stderr is a
terminal; otherwise the JSON log lines say what happened. The line steps aside for log lines
written to the same terminal (mirror.logs), and is erased when the sync ends.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, TextIO

from mirror.logs import attach_status_line, detach_status_line, terminal_lock

REDRAW_INTERVAL = 0.1  # seconds: at most ten redraws a second, whatever the page rate
_BAR_WIDTH = (10, 30)  # the bar's narrowest and widest, in characters
_ERASE_TO_END = "\x1b[K"
_ASCII = str.maketrans({"█": "#", "░": "-", "·": "-"})  # for a terminal whose encoding lacks them


class StatusLine:
    """One line at the bottom of a terminal, redrawn in place: a label, a bar, and details.

    Draws are throttled to REDRAW_INTERVAL unless forced (the first and the last of a phase).
    Writing errors (a terminal that went away) are ignored: progress is never worth a failure.
    """

    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
                 width: int | None = None):
        self.stream = stream or sys.stderr
        self.clock = clock
        self._width = width
        self._parts: tuple[str, float | None, str] | None = None
        self._drawn_at: float | None = None
        self._ascii = not _can_encode(self.stream, "█░·")
        attach_status_line(self)

    def update(self, label: str, fraction: float | None, detail: str, force: bool = False) -> None:
        """Show `label`, a bar filled to `fraction` (none if it is None), and `detail`."""
        now = self.clock()
        if not force and self._drawn_at is not None and now - self._drawn_at < REDRAW_INTERVAL:
            return
        self._drawn_at = now
        with terminal_lock():
            self._parts = (label, fraction, detail)
            self.redraw()

    def erase(self) -> None:
        if self._parts is not None:
            self._write("\r" + _ERASE_TO_END)

    def redraw(self) -> None:
        if self._parts is not None:
            text = render_line(*self._parts, width=self.width())
            self._write("\r" + (text.translate(_ASCII) if self._ascii else text) + _ERASE_TO_END)

    def close(self) -> None:
        """Erase the line for good (what it said is in the summary and the log)."""
        with terminal_lock():
            self.erase()
            self._parts = None
        detach_status_line(self)

    def width(self) -> int:
        if self._width is not None:
            return self._width
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            return 80

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass


class WalkProgress:
    """The pull's `on_page(page, report)` callback: pages against `expected_pages` (the last
    complete walk's page count, None if unknown), customers listed, their rate, time left."""

    def __init__(self, line: StatusLine, expected_pages: int | None):
        self.line = line
        self.expected_pages = expected_pages or None
        self.started = line.clock()

    def __call__(self, page, report) -> None:
        elapsed = self.line.clock() - self.started
        pages, listed = report.pages, report.listed
        if page.is_last:
            total, fraction, left = f"{pages:,}", 1.0, "done"
        elif self.expected_pages and pages < self.expected_pages:
            total, fraction = f"~{self.expected_pages:,}", pages / self.expected_pages
            left = _time_left(self.expected_pages - pages, pages, elapsed)
        else:
            # A first import, or an account that grew past the last walk: nothing says how far.
            total, fraction, left = "?", None, "time left ?"
        self.line.update("pull", fraction, f"page {pages:,} of {total} · {listed:,} customers at "
                         f"{_rate(listed, elapsed)} · {left}", force=pages == 1 or page.is_last)


class PushProgress:
    """The push's `on_progress(phase, done, total)` callback: "n of m" per phase (deletes,
    creates, updates), with the rate and the time left."""

    def __init__(self, line: StatusLine):
        self.line = line
        self._phase: str | None = None
        self._started = 0.0

    def __call__(self, phase: str, done: int, total: int) -> None:
        if total <= 0:
            return
        now = self.line.clock()
        if phase != self._phase or done == 0:  # a new phase, or a second pass of one
            self._phase, self._started = phase, now
        elapsed = now - self._started
        left = "done" if done >= total else _time_left(total - done, done, elapsed)
        self.line.update("push", done / total, f"{phase} {done:,} of {total:,} at {_rate(done, elapsed)} · {left}",
                         force=done in (0, total))


def render_line(label: str, fraction: float | None, detail: str, *, width: int) -> str:
    """The status line's text, cut to fit `width` columns (writing the last column would wrap)."""
    room = width - 1
    text = f"{label}  {detail}"
    spare = room - len(text) - 1
    if fraction is not None and spare >= _BAR_WIDTH[0]:
        size = min(spare, _BAR_WIDTH[1])
        filled = round(max(0.0, min(fraction, 1.0)) * size)
        text = f"{label} {'█' * filled}{'░' * (size - filled)}  {detail}"
    return text[:room]


def format_duration(seconds: float) -> str:
    """`0.4 s`, `3 s` (a whole number stays whole), `19 s`, `4 min 33 s`, `2 h 05 min`."""
    if seconds < 9.95 and seconds != int(seconds):
        return f"{max(seconds, 0.1):.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def _rate(count: int, elapsed: float) -> str:
    if elapsed <= 0:
        return "?/s"
    rate = count / elapsed
    return f"{rate:,.1f}/s" if rate < 10 else f"{rate:,.0f}/s"


def _time_left(remaining: int, done: int, elapsed: float) -> str:
    if done <= 0 or elapsed <= 0:
        return "time left ?"
    # Whole seconds at most: a tenth of a second of a forecast is noise.
    return f"{format_duration(max(1.0, round(remaining * elapsed / done)))} left"


def _can_encode(stream: TextIO, text: str) -> bool:
    try:
        text.encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True
