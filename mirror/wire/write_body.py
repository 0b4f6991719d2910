"""Canonical writable fields to the `data` members of createcustomer/updatecustomer."""

from __future__ import annotations

from typing import Any, Mapping

from mirror.customer import WRITABLE_FIELDS
from mirror.errors import WireError
from mirror.vocabulary import TYPE_WRITE_WORDS


def write_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Map canonical columns to write keys; types go out as the newer docs' upper-case words.

    A local NULL or "" in a text field is sent as "" (the API offers no other way to clear
    one); a NULL type or GST is left out. Raises WireError naming the column for a read-only column or an unsendable value.
    """
    body: dict[str, Any] = {}
    for column, value in fields.items():
        key = WRITABLE_FIELDS.get(column)
        if key is None:
            raise WireError(column, value, "is read-only in the Solar Proof API")
        if value in (None, "") and column in ("fkcustomertypeid", "customergstregistered"):
            continue  # not known, so not sent: the API keeps (or defaults) its own value
        if column == "fkcustomertypeid":
            if isinstance(value, bool) or not isinstance(value, int) or value not in TYPE_WRITE_WORDS:
                raise WireError(column, value, "must be 1 (Residential), 2 (Commercial) or 3 (Large-Scale)")
            body[key] = TYPE_WRITE_WORDS[value]
        elif column == "customergstregistered":
            if isinstance(value, bool) or not isinstance(value, int) or value not in (0, 1):
                raise WireError(column, value, "must be 0 or 1")
            body[key] = value
        elif value is None:
            body[key] = ""
        elif isinstance(value, str):
            body[key] = value
        else:
            raise WireError(column, value, "must be text")
    return body
