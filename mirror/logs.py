"""The one place that configures logging (structlog, and stdlib logging routed through it).

Everything else calls `structlog.get_logger()` and logs snake_case past-tense events
(`page_fetched`, `api_retried`, `sync_finished`). Output goes to stdout: a readable console
format on a terminal, JSON lines otherwise (journald stores them as they are). Every event
passes a scrubber that masks the API key wherever it appears, whatever the caller logged.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from mirror.redaction import redact_text

LEVELS = ("debug", "info", "warning", "error")


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


def configure_logging(
    *,
    level: str = "info",
    json: bool | None = None,
    secrets: tuple[str, ...] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and stdlib logging once per process.

    `json=None` picks JSON lines unless `stream` is a terminal. `secrets` are masked in every
    event (the API key, the webhook token). Safe to call again (the daemon does on reload).
    """
    stream = stream or sys.stdout
    if json is None:
        json = not stream.isatty()
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
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[*shared, renderer],
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
    # APScheduler logs every job run at INFO (the watch job runs every two seconds).
    for noisy in ("httpx", "httpcore", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(numeric_level, logging.WARNING))
