"""Checking a customer's writable fields before anything is sent to the API.

Each problem names the column and the value, so a person can fix the row with SQL.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from mirror.customer import WRITABLE_FIELDS

REQUIRED_FOR_CREATE = ("customerfirstname", "customersurname", "customeremail", "customerphone1", "fkcustomertypeid")
# Deliberately simple: one @, something before it, a dot in the domain, no spaces.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_TEXT = 255


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _blank(value: Any) -> bool:
    """Empty as Solar Proof's required-field check sees it: nothing, or only white space."""
    return value is None or (isinstance(value, str) and not value.strip())


def problems_of(fields: Mapping[str, Any], *, creating: bool) -> list[str]:
    """Every problem with these writable fields; [] when they may be sent.

    For a create, `fields` is the whole row and the required fields must be present; for an
    update, only the changed fields are checked (a required field may still not be emptied).
    """
    problems = []
    for name in REQUIRED_FOR_CREATE:
        if (creating or name in fields) and _blank(fields.get(name)):
            value = fields.get(name)
            shown = "is empty" if value in (None, "") else f"holds only spaces ({_shown(value)}), which counts as empty"
            problems.append(f"{name} is required and {shown}")
    for name, value in fields.items():
        if name not in WRITABLE_FIELDS or value in (None, ""):
            continue
        if name == "fkcustomertypeid":
            if isinstance(value, bool) or not isinstance(value, int) or value not in (1, 2, 3):
                problems.append(f"fkcustomertypeid must be 1, 2 or 3 (Residential, Commercial, Large-Scale); "
                                f"got {_shown(value)}")
        elif name == "customergstregistered":
            if isinstance(value, bool) or not isinstance(value, int) or value not in (0, 1):
                problems.append(f"customergstregistered must be 0 or 1; got {_shown(value)}")
        elif not isinstance(value, str):
            problems.append(f"{name} must be text; got {_shown(value)}")
        elif len(value) > MAX_TEXT:
            problems.append(f"{name} is {len(value)} characters; at most {MAX_TEXT} are sent")
        elif name == "customeremail" and not _EMAIL.match(value):
            problems.append(f"customeremail is not an email address: {_shown(value)}")
    return problems
