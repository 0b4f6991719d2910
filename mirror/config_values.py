"""What each setting's value may be: one parser per kind, each raising ValueError with a message
that says what was expected (mirror.config names the setting and where the value came from)."""

from __future__ import annotations

import math
import re
from typing import Any, Callable


def parse_duration(value: Any) -> float:
    """Seconds from a number or a text such as "45", "30s", "5m", "1h", "1h30m"."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 1h")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        else:
            parts = re.findall(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", text)
            if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", "", text).strip():
                raise ValueError("expected a duration such as 30s, 5m or 1h")
            unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
            seconds = sum(float(n) * unit[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("a duration must be a finite number of seconds, zero or more")
    return seconds


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("expected a duration above zero")
    return seconds


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _integer(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not re.fullmatch(r"-?\d+", str(value).strip()):
            raise ValueError("expected a whole number")
        number = int(str(value).strip())
        if not low <= number <= high:
            raise ValueError(f"expected {low}..{high}")
        return number

    return parse


def _share(value: Any) -> float:
    """A share of the mirror: 0.1 or "10%"."""
    text = str(value).strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError("expected a share such as 0.1 or 10%") from None
    if not 0 <= share <= 1:
        raise ValueError("expected a share between 0 and 1 (or 0% and 100%)")
    return share


def _choice(*options: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip()
        match = next((o for o in options if o.lower() == text.lower()), None)
        if match is None:
            raise ValueError(f"expected one of {', '.join(options)}")
        return match

    return parse


def _url(value: Any) -> str:
    text = str(value).strip()
    if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", text):
        raise ValueError("expected an http:// or https:// URL")
    return text


def _text(value: Any) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError("expected text")
    # A pasted key or path often brings a trailing newline; it is never meant.
    return str(value).strip()


def _listen(value: Any) -> str:
    text = str(value).strip()
    if text == "":
        return text  # off
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected host:port, such as 127.0.0.1:8787")
    return text
