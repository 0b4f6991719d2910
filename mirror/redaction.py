"""Keeping the API key out of everything a person or a log store can read.

Solar Proof takes the key in the query string (`api_key=`) and inside write bodies
(`data.apikey`), so any URL or body that is logged, raised or stored must pass through here.
A server's error page may echo the request back, whole, cut short or re-encoded, so a secret
is masked by its pieces too: any run of `PIECE` or more of its consecutive characters, written
plainly or with characters escaped the way URLs (`%2F`), JSON (`\\/`, `\\u002f`) or HTML
(`&#47;`) write them.
"""

from __future__ import annotations

import functools
import html
import re

MASK = "***"
MIN_SECRET_LENGTH = 6
# The shortest run of a secret's characters masked on its own. Shorter runs of a long random
# key are as likely to be ordinary text as a leak, and say next to nothing about the key.
PIECE = 8

_QUERY_KEY = re.compile(r"(?i)((?:api_key|apikey)=)[^&#\s'\"]*")
_JSON_KEY = re.compile(r'(?i)("(?:api_key|apikey)"\s*:\s*")[^"]*(")')
# One escaped character: URL (%XX), JSON (\uXXXX, \/ \" \\ \'), HTML (&#NN; &#xNN; &name;).
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4}|\\[\\/\"']"
                     r"|&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,7});")


def redact_url(url: object) -> str:
    """Return `url` as text with the value of every `api_key=`/`apikey=` parameter masked."""
    return _QUERY_KEY.sub(lambda m: m.group(1) + MASK, str(url))


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Mask key parameters, JSON `apikey` members, and every piece of `secrets` (see
    `mask_secret_pieces`). A "secret" shorter than MIN_SECRET_LENGTH is left alone: a test key
    like "k" would mask ordinary words, and real keys are long."""
    text = _JSON_KEY.sub(lambda m: m.group(1) + MASK + m.group(2), redact_url(text))
    for secret in secrets:
        if len(secret) >= MIN_SECRET_LENGTH:
            text = mask_secret_pieces(text, secret)
    return text


def mask_secret_pieces(text: str, secret: str) -> str:
    """`text` with every run of PIECE (8) or more consecutive characters of `secret` replaced
    by one MASK, whether the run is written plainly or with any of its characters escaped
    (URL, JSON or HTML escapes, in any mix and either case of hex). Overlapping and adjacent
    runs become one MASK. A secret shorter than PIECE is masked only where it appears whole.

    Linear in len(text) (a set lookup per position), and a text holding no piece at all costs
    one C-level substring search per piece of the secret.
    """
    if len(secret) < PIECE:
        return text.replace(secret, MASK) if secret else text
    pieces = _pieces(secret)
    decoded, offsets = _decode(text)
    if not any(piece in decoded for piece in pieces):
        return text
    spans: list[list[int]] = []
    for i in range(len(decoded) - PIECE + 1):
        if decoded[i:i + PIECE] in pieces:
            start, end = (i, i + PIECE) if offsets is None else (offsets[i], offsets[i + PIECE])
            if spans and start <= spans[-1][1]:
                spans[-1][1] = end
            else:
                spans.append([start, end])
    out, last = [], 0
    for start, end in spans:
        out += [text[last:start], MASK]
        last = end
    out.append(text[last:])
    return "".join(out)


@functools.lru_cache(maxsize=16)
def _pieces(secret: str) -> frozenset[str]:
    return frozenset(secret[i:i + PIECE] for i in range(len(secret) - PIECE + 1))


def _decode(text: str) -> tuple[str, list[int] | None]:
    """`text` with every escape decoded to its character, and where in `text` each decoded
    character starts (plus one entry for the end); None for offsets when nothing was escaped."""
    if _ESCAPE.search(text) is None:
        return text, None
    chars: list[str] = []
    offsets: list[int] = []
    last = 0
    for match in _ESCAPE.finditer(text):
        start, end = match.span()
        chars.extend(text[last:start])
        offsets.extend(range(last, start))
        char = _unescape(match.group())
        if char is None:  # not one character (an unknown entity): keep it as it is written
            chars.extend(text[start:end])
            offsets.extend(range(start, end))
        else:
            chars.append(char)
            offsets.append(start)
        last = end
    chars.extend(text[last:])
    offsets.extend(range(last, len(text) + 1))
    return "".join(chars), offsets


def _unescape(escape: str) -> str | None:
    if escape[0] == "%":
        return chr(int(escape[1:], 16))
    if escape.startswith("\\u"):
        return chr(int(escape[2:], 16))
    if escape[0] == "\\":
        return escape[1]
    char = html.unescape(escape)
    return char if len(char) == 1 else None
