"""The API's customer shapes, mapped to and from the canonical customer.

Shapes read (names as in solarproof-api.md §6): `read` (the list and the lookups), `project`
(`getcustomerofproject`), `webhook_a` and `webhook_b` (the two versions of the webhook docs),
and `canonical` (the docs' "Customer Object"). `parse_customer` tells them apart by their keys.
Only a missing or unreadable id rejects a record; every other oddity is kept in
`Customer.problems` and the raw payload travels with the customer, so nothing sent is lost.
"""

from __future__ import annotations

from typing import Any, Callable

from mirror.customer import Customer
from mirror.errors import WireError
from mirror.wire.other_shapes import (
    customer_from_canonical,
    customer_from_project,
    customer_from_webhook_a,
    customer_from_webhook_b,
)
from mirror.wire.read_shape import customer_from_read
from mirror.wire.write_body import write_body

__all__ = [
    "customer_from_canonical",
    "customer_from_project",
    "customer_from_read",
    "customer_from_webhook_a",
    "customer_from_webhook_b",
    "customers_from_webhook",
    "parse_customer",
    "write_body",
]

_READ_ONLY_KEYS = frozenset({"customer_first_name", "customer_last_name", "gst_status"})
_WEBHOOK_B_ONLY_KEYS = frozenset(
    {"customer_type_id", "customer_status_id", "phone_primary", "first_name", "new_status", "old_status"}
)


def _mapper_for(keys) -> Callable[[Any], Customer]:
    if "Customer" in keys or "customerID" in keys:
        return customer_from_project
    if "customerfirstname" in keys or "fkcustomertypeid" in keys:
        return customer_from_canonical
    if _READ_ONLY_KEYS & keys:
        return customer_from_read
    if "pkcustomerid" in keys:
        return customer_from_webhook_a
    if "customer_id" in keys:
        return customer_from_webhook_b if _WEBHOOK_B_ONLY_KEYS & keys else customer_from_read
    raise WireError("<record>", sorted(map(str, keys))[:12], "not a known customer shape (no customer id key)")


def parse_customer(record: Any) -> Customer:
    """Map any documented customer shape to a canonical customer."""
    if not isinstance(record, dict):
        raise WireError("<record>", record, "expected a JSON object")
    return _mapper_for(record.keys())(record)


def customers_from_webhook(body: Any) -> list[Customer]:
    """Map a webhook body: one object (version A; B's customer_created) or an array (version B)."""
    items = body if isinstance(body, list) else [body]
    return [parse_customer(item) for item in items]
