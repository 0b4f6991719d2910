"""Keeping the API key out of everything a person or a log store can read.

Solar Proof takes the key in the query string (`api_key=`) and inside write bodies
(`data.apikey`), so any URL or body that is logged, raised or stored must pass through here.
"""

from __future__ import annotations

import re

MASK = "***"
MIN_SECRET_LENGTH = 6

_QUERY_KEY = re.compile(r"(?i)((?:api_key|apikey)=)[^&#\s'\"]*")
_JSON_KEY = re.compile(r'(?i)("(?:api_key|apikey)"\s*:\s*")[^"]*(")')


def redact_url(url: object) -> str:
    """Return `url` as text with the value of every `api_key=`/`apikey=` parameter masked."""
    return _QUERY_KEY.sub(lambda m: m.group(1) + MASK, str(url))


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Mask key parameters, JSON `apikey` members, and any literal occurrence of `secrets`."""
    text = _JSON_KEY.sub(lambda m: m.group(1) + MASK + m.group(2), redact_url(text))
    for secret in secrets:
        # A very short "secret" (a test key like "k") would mask ordinary words; real keys are long.
        if len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, MASK)
    return text
