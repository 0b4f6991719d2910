"""Reading one payload's fields tolerantly, and the small converters every shape shares.

Only a missing or unreadable customer id is fatal (WireError naming the key). Every other
oddity is noted on the FieldReader, naming its field, and the value becomes None.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import structlog

from mirror.customer import CUSTOMER_COLUMNS, LABEL_COLUMNS
from mirror.errors import WireError
from mirror.vocabulary import GST_IDS, GST_LABELS, lookup, word_key

log = structlog.get_logger()

ALL_FIELDS = CUSTOMER_COLUMNS + LABEL_COLUMNS
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[ T].*)?$")
_KW = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(k|kw|kwp|w)?\s*$", re.IGNORECASE)
_unknown_words_logged: set[tuple[str, str]] = set()
# A handful of distinct words repeat across every record of an account: look each up once.
_word_cache: dict[tuple[str, str], int | None] = {}
_MISSING = object()


class FieldReader:
    """Collects one record's tolerated problems while its fields are converted."""

    __slots__ = ("record", "problems")

    def __init__(self, record: Mapping[str, Any]):
        self.record = record
        self.problems: list[str] = []

    def note(self, field: str, value: Any, reason: str) -> None:
        self.problems.append(str(WireError(field, value, reason)))

    def text(self, key: str) -> str | None:
        """Text as sent; "" and null become None; a number becomes its digits."""
        value = self.record.get(key)
        if value.__class__ is str:  # the common case, checked first: this runs 20 times a record
            return value or None
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        self.note(key, value, "expected text")
        return None

    def texts(self, into: dict[str, Any], sources: tuple[tuple[str, str], ...]) -> None:
        """Set `into[name] = self.text(key)` for each (name, key), inlined for the common case."""
        get = self.record.get
        for name, key in sources:
            value = get(key)
            if value.__class__ is str:
                into[name] = value or None
            elif value is not None:
                into[name] = self.text(key)

    def number(self, key: str, valid: range) -> int | None:
        """An integer sent as a number or a numeric string, within `valid`."""
        value = self.record.get(key)
        if value is None or value == "":
            return None
        try:
            number = int(value) if not isinstance(value, (bool, float)) else None
        except (TypeError, ValueError):
            number = None
        if isinstance(value, float) and value.is_integer():
            number = int(value)
        if number is None or number not in valid:
            self.note(key, value, f"expected an integer in {valid.start}..{valid.stop - 1}")
            return None
        return number

    def word(
        self, key: str, table: dict[str, int], labels: dict[int, str], kind: str
    ) -> tuple[int | None, str | None]:
        """A word such as "Residential" (or "0") as (integer, label).

        The label is the docs' word for a known value, whatever spelling or number the API sent,
        so a change of wire format is not a change of the customer; an unknown word is kept as
        sent, with a NULL integer.
        """
        valid = range(min(labels), max(labels) + 1)
        value = self.record.get(key)
        if value is None or value == "":
            return None, None
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self.note(key, value, f"expected a {kind} word or number")
            return None, None
        if isinstance(value, int):
            if value in labels:
                return value, labels[value]
            self.note(key, value, f"unknown {kind}")
            return None, str(value)
        number = _word_cache.get((kind, value), _MISSING)
        if number is _MISSING:
            number = _word_cache[(kind, value)] = lookup(table, value, valid)
        if number is None:
            self.note(key, value, f"unknown {kind}")
            if (kind, value) not in _unknown_words_logged:
                _unknown_words_logged.add((kind, value))
                log.warning("unknown_word_seen", kind=kind, field=key, word=value)
            return None, value
        return number, labels[number]

    def gst(self, key: str) -> int | None:
        value = self.record.get(key)
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, str) and not word_key(value).isdigit():
            return self.word(key, GST_IDS, GST_LABELS, "GST status")[0]
        return self.number(key, range(2))

    def date(self, key: str) -> str | None:
        """`YYYY-MM-DD` from a date, a datetime, or an ISO timestamp; "0000-00-00" is None."""
        value = self.text(key)
        if value is None:
            return None
        if len(value) == 10 and value[4] == "-" and value[7] == "-" and value.isascii() and value[:4] != "0000":
            if value[:4].isdigit() and value[5:7].isdigit() and value[8:].isdigit():
                return value
        match = _DATE.match(value.strip())
        if match is None or match.group(1).startswith("0000"):
            if match is None:
                self.note(key, value, "expected a date YYYY-MM-DD")
            return None
        return match.group(1)


def remote_id_of(record: Any, key: str) -> int:
    """The customer id of a record, which the API sends as a string or an integer."""
    if not isinstance(record, dict):
        raise WireError("<record>", record, "expected a JSON object")
    value = record.get(key)
    number = None
    if value.__class__ is str and value.isdigit() and value.isascii() and len(value) < 20:
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value) < 20:
        number = int(value)
    if number is None or not 0 < number < 2**63:
        raise WireError(key, value, "missing or not a positive integer id")
    return number


def empty_fields() -> dict[str, Any]:
    """Every canonical field, None: the starting point of each shape's mapping."""
    return dict.fromkeys(ALL_FIELDS)


def address_line(parts: Mapping[str, str | None]) -> str | None:
    """One line in Australian order, "418 Murray Street, Perth WA 6000", from address parts."""
    get = parts.get
    street = " ".join(filter(None, (get("streetnum"), get("street"))))
    locality = " ".join(filter(None, (get("suburb"), get("state"), get("postcode"))))
    return ", ".join(filter(None, (street, locality))) or None


def system_size_kw(text: str | None) -> float | None:
    """"17.92kW" -> 17.92, "6600W" -> 6.6; None when the text is not a size."""
    if text is None:
        return None
    match = _KW.match(text)
    if match is None:
        return None
    number = float(match.group(1))
    return number / 1000 if (match.group(2) or "").lower() == "w" else number
