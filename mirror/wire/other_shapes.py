"""The customer shapes besides the list's: project-customer, canonical, and both webhook versions.

Each function maps one record; `carried` says which canonical fields the shape really carries,
so that a later merge never reads "this shape does not say" as "empty".
"""

from __future__ import annotations

from typing import Any

from mirror.customer import BEST_CONTACT_COLUMNS, CUSTOMER_COLUMNS, LABEL_COLUMNS, Customer
from mirror.vocabulary import (
    CONTACT_TIMES,
    STATUS_IDS,
    STATUS_LABELS,
    TYPE_IDS,
    TYPE_LABELS,
    contact_times_from_text,
)
from mirror.wire.fields import ALL_FIELDS, FieldReader, empty_fields, remote_id_of
from mirror.wire.read_shape import notes_of

PROJECT_CARRIES = frozenset(
    {
        "pkcustomerid",
        "customerfirstname",
        "customersurname",
        "customeremail",
        "customerphone1",
        "customerphone2",
        "customerabn",
        "customergstregistered",
        "customer_site_address",
        *BEST_CONTACT_COLUMNS,
    }
)


def customer_from_project(payload: Any) -> Customer:
    """Map `getcustomerofproject` (with or without its "Customer" wrapper).

    Its companyName/companyPhone look like the account's own details in the docs' example, so
    they are not taken as the customer's; they stay in `raw`.
    """
    record = payload.get("Customer", payload) if isinstance(payload, dict) else payload
    remote_id = remote_id_of(record, "customerID")
    r = FieldReader(record)
    fields = empty_fields()
    fields["pkcustomerid"] = remote_id
    fields["customerfirstname"] = r.text("firstName")
    fields["customersurname"] = r.text("surname")
    fields["customeremail"] = r.text("email")
    fields["customerphone1"] = r.text("phone1")
    fields["customerphone2"] = r.text("phone2")
    fields["customerabn"] = r.text("customerabn")
    fields["customergstregistered"] = r.gst("gstRegistered")
    fields["customer_site_address"] = r.text("siteAddress")
    contact = r.text("contactTime")
    flags = contact_times_from_text(contact) if contact is not None else None
    if contact is not None and flags is None:
        r.note("contactTime", contact, "unrecognised contact time")
    for name in CONTACT_TIMES:
        fields[f"best_contact_{name}"] = flags[name] if flags else None
    return Customer(
        remote_id=remote_id,
        fields=fields,
        carried=PROJECT_CARRIES,
        shape="project",
        raw=payload,
        notes=notes_of(r, "note"),
        problems=tuple(r.problems),
    )


# The canonical object's plain text members: every column but the id, the integers, the date
# and the contact-time flags (which it nests in best_contact_times).
_NOT_TEXT = {"pkcustomerid", "fkcustomerstatusid", "fkcustomertypeid", "customergstregistered", "created_at",
             *BEST_CONTACT_COLUMNS}
CANONICAL_TEXT = tuple(c for c in CUSTOMER_COLUMNS if c not in _NOT_TEXT)
CANONICAL_CARRIES = frozenset(ALL_FIELDS) - set(LABEL_COLUMNS)


def customer_from_canonical(record: Any) -> Customer:
    """Map the docs' canonical "Customer Object", which the newer `/api/` base may serve."""
    remote_id = remote_id_of(record, "pkcustomerid")
    r = FieldReader(record)
    fields = empty_fields()
    fields["pkcustomerid"] = remote_id
    for key in CANONICAL_TEXT:
        fields[key] = r.text(key)
    fields["fkcustomerstatusid"] = r.number("fkcustomerstatusid", range(0, 4))
    fields["fkcustomertypeid"] = r.number("fkcustomertypeid", range(1, 4))
    fields["customergstregistered"] = r.gst("customergstregistered")
    fields["created_at"] = r.date("created_at")
    times = record.get("best_contact_times")
    if isinstance(times, dict):
        flags = FieldReader(times)
        for name in CONTACT_TIMES:
            fields[f"best_contact_{name}"] = flags.gst(name)
        r.problems.extend(f"best_contact_times.{p}" for p in flags.problems)
    elif times is not None:
        r.note("best_contact_times", times, "expected an object of four 0/1 flags")
    return Customer(remote_id, fields, CANONICAL_CARRIES, "canonical", record, problems=tuple(r.problems))


def customer_from_webhook_a(record: Any) -> Customer:
    """Map a version-A webhook object (`customer_created` or `customer_status_change`)."""
    remote_id = remote_id_of(record, "pkcustomerid")
    r = FieldReader(record)
    fields = empty_fields()
    fields["pkcustomerid"] = remote_id
    fields["customeremail"] = r.text("customer_email")
    carried = {"pkcustomerid", "customeremail"}
    if "customer_type" in record:
        fields["fkcustomertypeid"], fields["customer_type_text"] = r.word(
            "customer_type", TYPE_IDS, TYPE_LABELS, "customer type"
        )
        carried |= {"fkcustomertypeid", "customer_type_text"}
    # customer_status_change names the new status `new_status`; customer_created `customer_status`.
    status_key = "new_status" if "new_status" in record else "customer_status"
    if status_key in record:
        fields["fkcustomerstatusid"], fields["customer_status_text"] = r.word(
            status_key, STATUS_IDS, STATUS_LABELS, "customer status"
        )
        carried |= {"fkcustomerstatusid", "customer_status_text"}
    # `customer_name` is a full name only: splitting it would invent a first-name/surname boundary.
    return Customer(remote_id, fields, frozenset(carried), "webhook_a", record, problems=tuple(r.problems))


WEBHOOK_B_SOURCES = {
    "customerfirstname": "first_name",
    "customersurname": "surname",
    "customeremail": "customer_email",
    "customerphone1": "phone_primary",
    "customerphone2": "phone_secondary",
    "customercompanyname": "company_name",
    "customercompanyphone": "company_phone",
    "customerabn": "abn",
    "customergstregistered": "gst_registered",
    "fkcustomertypeid": "customer_type_id",
    "fkcustomerstatusid": "customer_status_id",
    "customer_site_address": "site_address",
    "created_at": "customer_created_at",
}


def customer_from_webhook_b(record: Any) -> Customer:
    """Map one version-B webhook object; only the keys present count as carried."""
    remote_id = remote_id_of(record, "customer_id")
    r = FieldReader(record)
    fields = empty_fields()
    fields["pkcustomerid"] = remote_id
    carried = {"pkcustomerid"}
    for column, key in WEBHOOK_B_SOURCES.items():
        if key not in record:
            continue
        carried.add(column)
        if column == "customergstregistered":
            fields[column] = r.gst(key)
        elif column == "fkcustomertypeid":
            fields[column] = r.number(key, range(1, 4))
        elif column == "fkcustomerstatusid":
            fields[column] = r.number(key, range(0, 4))
        elif column == "created_at":
            fields[column] = r.date(key)
        else:
            fields[column] = r.text(key)
    if "customer_status_id" not in record and "new_status" in record:
        # Version B's customer_status_change payload is not visible in the docs; if it names the
        # new status as version A does, take it.
        fields["fkcustomerstatusid"] = r.number("new_status", range(0, 4))
        carried.add("fkcustomerstatusid")
    return Customer(
        remote_id,
        fields,
        frozenset(carried),
        "webhook_b",
        record,
        notes=notes_of(r, "customer_notes"),
        problems=tuple(r.problems),
    )
