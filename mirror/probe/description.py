"""How the probe names an answer in a message: short and plain, never the whole body."""

from __future__ import annotations

from typing import Any

from mirror.api_answers import is_html, page_title
from mirror.probe.calls import UNREADABLE, Answer, is_error_object


def describe(answer: Answer) -> str:
    """A short, plain description of a body, for messages."""
    body = answer.body
    if body is UNREADABLE:
        if is_html(answer.content_type, answer.text):
            title = page_title(answer.content_type, answer.text, ())
            return f"an HTML page{f' titled {title!r}' if title else ''}"
        text = " ".join(answer.text.split())
        return f"a body that is not JSON ({short(text) if text else 'empty'})"
    if is_error_object(body):
        code = body.get("code")
        return f"an error ({code + ': ' if code else ''}{short(body.get('message'))})"
    if isinstance(body, list):
        return "[]" if not body else f"an array of {len(body)}"
    if isinstance(body, dict):
        return "{}" if not body else f"an object with keys {', '.join(sorted(map(str, body))[:6])}"
    return f"the JSON value {short(body)}"


def short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
