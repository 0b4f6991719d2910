"""The one place that configures logging (structlog, and stdlib logging routed through it).

Everything else calls `structlog.get_logger()` and logs snake_case past-tense events
(`page_fetched`, `api_retried`, `sync_finished`). Output goes to stdout: a readable console
format on a terminal, JSON lines otherwise (journald stores them as they are). Every event
passes a scrubber that masks the API key wherever it appears, whatever the caller logged.

The JSON log keeps every event. The console is for a person, so unless `verbose`:
  - events about one customer (they carry `remote_id` or `local_id`: `customer_updated`,
    `conflict_found`, `row_not_pushed`, ...) are left out: a sync of 245 edits is one summary
    line, not 245 (the command's summary counts them, `spmirror status` lists the rows);
  - events a command summarizes itself (`hide_on_console`) are left out;
errors are always shown. On a terminal, a live status line (mirror.progress) steps aside for
each log line, so the two never share a line.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, Protocol, TextIO

import structlog

from mirror.redaction import redact_text

LEVELS = ("debug", "info", "warning", "error")

# Keys that make an event "about one customer" (see the module docstring).
CUSTOMER_KEYS = ("remote_id", "local_id")

_hidden_on_console: set[str] = set()
_terminal_lock = threading.RLock()
_status_line: StatusLine | None = None


class StatusLine(Protocol):
    """A line a progress display keeps redrawn at the bottom of a terminal."""

    def erase(self) -> None: ...

    def redraw(self) -> None: ...


def _scrubber(secrets: tuple[str, ...]):
    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            return redact_text(value, secrets)
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(scrub(v) for v in value)
        if isinstance(value, BaseException):
            return redact_text(f"{type(value).__name__}: {value}", secrets)
        return value

    def processor(_logger, _method, event_dict):
        return {key: scrub(value) for key, value in event_dict.items()}

    return processor


def _console_filter(verbose: bool):
    """Drop what a person at a console need not read line by line (see the module docstring)."""

    def processor(_logger, method, event_dict):
        if verbose or method in ("error", "critical", "exception"):
            return event_dict
        if event_dict.get("event") in _hidden_on_console or any(k in event_dict for k in CUSTOMER_KEYS):
            raise structlog.DropEvent
        return event_dict

    return processor


def hide_on_console(*events: str) -> None:
    """Leave these events out of the console log (not the JSON one), unless verbose: the
    command prints its own summary of them for a person."""
    _hidden_on_console.update(events)


def attach_status_line(line: StatusLine) -> None:
    """Make `line` step aside (erase, then redraw) around every log line written to a terminal."""
    global _status_line
    with _terminal_lock:
        _status_line = line


def detach_status_line(line: StatusLine) -> None:
    global _status_line
    with _terminal_lock:
        if _status_line is line:
            _status_line = None


def terminal_lock() -> threading.RLock:
    """Held while anything is written to the terminal: a status line draws under it too."""
    return _terminal_lock


class _TerminalStream:
    """A terminal log stream writing whole lines only, with the status line out of the way.

    `print` writes a message and its newline in two calls; a status line redrawn between them
    would end up in the middle of the log line, so text is held until its line is complete.
    """

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._partial = ""

    def write(self, text: str) -> int:
        with _terminal_lock:
            self._partial += text
            if "\n" in self._partial:
                lines, _, self._partial = self._partial.rpartition("\n")
                line = _status_line
                if line is not None:
                    line.erase()
                self._stream.write(lines + "\n")
                self._stream.flush()
                if line is not None:
                    line.redraw()
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def configure_logging(
    *,
    level: str = "info",
    json: bool | None = None,
    secrets: tuple[str, ...] = (),
    stream: TextIO | None = None,
    verbose: bool | None = None,
) -> None:
    """Configure structlog and stdlib logging once per process.

    `json=None` picks JSON lines unless `stream` is a terminal. `secrets` are masked in every
    event (the API key, the webhook token). `verbose` puts per-customer events on the console
    too (default: when `level` is debug); the JSON log always has them. Safe to call again
    (the daemon does on reload).
    """
    stream = stream or sys.stdout
    on_terminal = stream.isatty()
    if json is None:
        json = not on_terminal
    if verbose is None:
        verbose = level == "debug"
    if on_terminal:
        stream = _TerminalStream(stream)
    numeric_level = getattr(logging, level.upper())
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        # Last before rendering, so tracebacks and exception text are scrubbed too.
        _scrubber(tuple(s for s in secrets if s)),
    ]
    renderer = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=on_terminal)
    )
    structlog.configure(
        processors=[*shared, renderer] if json else [shared[0], _console_filter(verbose), *shared[1:], renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )

    # Libraries that log through stdlib logging (uvicorn, apscheduler) share the same output and
    # scrubber. httpx logs every request URL, key included, at INFO: keep it at WARNING.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared[:-1],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                shared[-1],
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
    # APScheduler logs every job run at INFO (the watch job runs four times a second), and at
    # WARNING each tick of the watch job skipped because its last push is still running, which
    # is expected and harmless (the next tick sees the edit). The daemon reports missed and
    # failed jobs itself (daemon._job_event), so apscheduler needs only its errors shown.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(numeric_level, logging.WARNING))
    logging.getLogger("apscheduler").setLevel(max(numeric_level, logging.ERROR))
