"""The words Solar Proof uses for types, statuses, GST and contact times, and their integers.

Words match case-insensitively, ignoring spaces, dashes and underscores, because the two doc
generations spell them differently ("Residential", "RESIDENTIAL", "Large-Scale", "LARGE-SCALE").
"""

from __future__ import annotations

import re

TYPE_IDS: dict[str, int] = {"residential": 1, "commercial": 2, "largescale": 3}
# The upper-case words of the newer docs are what writes send.
TYPE_WRITE_WORDS: dict[int, str] = {1: "RESIDENTIAL", 2: "COMMERCIAL", 3: "LARGE-SCALE"}
TYPE_LABELS: dict[int, str] = {1: "Residential", 2: "Commercial", 3: "Large-Scale"}

STATUS_IDS: dict[str, int] = {
    "nostatusset": 0,
    "nostatus": 0,
    "newcontacts": 1,
    "newcontact": 1,
    "signed": 2,
    "megastatus": 3,
}
STATUS_LABELS: dict[int, str] = {0: "No Status Set", 1: "New Contacts", 2: "Signed", 3: "Mega Status"}

GST_IDS: dict[str, int] = {"gstregistered": 1, "registered": 1, "notgstregistered": 0, "notregistered": 0}
GST_LABELS: dict[int, str] = {1: "GST Registered", 0: "Not GST Registered"}

CONTACT_TIMES: tuple[str, ...] = ("mornings", "middays", "afternoons", "evenings")

_SEPARATORS = re.compile(r"[\s\-_]+")
_CONTACT_SPLIT = re.compile(r"\s*(?:,|/|;|&|\band\b|\|)\s*")


def word_key(word: str) -> str:
    """The comparison key of a word: lower case, no spaces, dashes or underscores."""
    return _SEPARATORS.sub("", word).lower()


def lookup(table: dict[str, int], word: str, valid: range) -> int | None:
    """Map a word (or a numeric string such as the old docs' status "0") to its integer."""
    key = word_key(word)
    if key.isascii() and key.isdigit() and len(key) <= 9:  # "²" is a digit to Python, not to int()
        number = int(key)
        return number if number in valid else None
    return table.get(key)


def contact_times_from_text(text: str) -> dict[str, int] | None:
    """Read a free-text contact time ("Mornings, Evenings") into four 0/1 flags.

    Returns None when any part is not recognised: the format is undocumented, so a guess
    would invent data.
    """
    parts = [p for p in _CONTACT_SPLIT.split(text.strip().lower()) if p]
    if not parts:
        return None
    flags = dict.fromkeys(CONTACT_TIMES, 0)
    for part in parts:
        key = word_key(part)
        if key in ("any", "anytime", "all", "alltimes"):
            return dict.fromkeys(CONTACT_TIMES, 1)
        match = next((name for name in CONTACT_TIMES if key in (name, name[:-1])), None)
        if match is None:
            return None
        flags[match] = 1
    return flags
