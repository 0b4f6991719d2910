"""A `getallcustomers` page body: a JSON array, split into each record's own text and value.

Each record's own text lets the mirror store the payload and fingerprint it cheaply: an
unchanged record is recognised by its text's hash without being normalised.

`split_page` decodes the page with orjson (the only user of orjson) and gives each record its
compact JSON re-encoding: every key and value as sent, in the order sent, without the server's
whitespace or escapes. orjson is several times faster than splitting the text record by record
with the standard parser, which is what `split_json_array` does; it is kept for what orjson
refuses and the standard parser takes (integers beyond 64 bits, NaN, lone surrogates), and for
those records the text is exactly the server's.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import orjson

_decoder = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


class RawRecord(NamedTuple):
    """One element of a page: its JSON text exactly as sent, and the decoded value."""

    text: str
    value: Any


def split_page(body: str) -> list[RawRecord] | None:
    """Like split_json_array, each record's text being its compact re-encoding (see above)."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return split_json_array(body)  # the standard parser may still take it, or says why not
    if not isinstance(value, list):
        return None
    dumps = orjson.dumps
    return [RawRecord(dumps(item).decode(), item) for item in value]


def split_json_array(body: str) -> list[RawRecord] | None:
    """Decode `body`; return its elements with their source text when it is a JSON array.

    Returns None when the body is valid JSON but not an array (the caller decides what that
    means). Raises ValueError (json.JSONDecodeError) when the body is not valid JSON at all.
    """
    try:
        return _split(body)
    except RecursionError:
        # Nesting deeper than Python's parser goes: garbage as far as a page is concerned.
        raise json.JSONDecodeError("nested too deeply to be a customer page", body, 0) from None


def _split(body: str) -> list[RawRecord] | None:
    start = len(body) - len(body.lstrip(_WHITESPACE))
    if not body.startswith("[", start):
        json.loads(body)  # raises on garbage; valid non-arrays fall through to None
        return None
    records: list[RawRecord] = []
    decode = _decoder.raw_decode
    index = start + 1
    length = len(body)
    expect_value = True
    while True:
        while index < length and body[index] in _WHITESPACE:
            index += 1
        if index >= length:
            raise json.JSONDecodeError("unterminated array", body, index)
        char = body[index]
        if char == "]" and (not records or not expect_value):
            index += 1
            break
        if not expect_value:
            if char != ",":
                raise json.JSONDecodeError("expected ',' or ']'", body, index)
            index += 1
            expect_value = True
            continue
        value, end = decode(body, index)
        records.append(RawRecord(body[index:end], value))
        index = end
        expect_value = False
    if body[index:].strip(_WHITESPACE):
        raise json.JSONDecodeError("extra data after the array", body, index)
    return records
