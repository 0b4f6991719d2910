"""The read shape of `getallcustomers`, `getcustomerByemail`, `getcustomerid` and `getcustomer`.

Its records carry notes, projects and the owner, but no ABN, no customer-level site address
and no contact times (solarproof-api.md §6.2). The customer's site address is taken from its
lowest-numbered project, as one line; NULL when it has none.
"""

from __future__ import annotations

import json
from typing import Any

from mirror.customer import BEST_CONTACT_COLUMNS, Customer, Note, Owner, Project
from mirror.errors import WireError
from mirror.vocabulary import STATUS_IDS, STATUS_LABELS, TYPE_IDS, TYPE_LABELS
from mirror.wire.fields import ALL_FIELDS, FieldReader, address_line, empty_fields, remote_id_of, system_size_kw
from mirror.wire.read_fast import READ_TEXT_KEYS, clean_read

SITE_PARTS = ("streetnum", "street", "suburb", "state", "postcode", "country")
READ_CARRIES = frozenset(ALL_FIELDS) - {"customerabn", *BEST_CONTACT_COLUMNS}
# With no project the list says nothing about a site address (another source may know it).
READ_CARRIES_NO_PROJECT = READ_CARRIES - {"customer_site_address"}
_PROJECT_TEXT = (
    ("title", "project_title"),
    ("system_size_text", "system_size"),
    ("solar_panel_type", "solar_panel_type"),
    ("inverter_type", "inverter_type"),
    ("proposal_link", "proposal_link"),
)
_SITE_TEXT = tuple((part, part) for part in SITE_PARTS)
_OWNER_TEXT = tuple(
    (key, key) for key in ("first_name", "last_name", "phone_number", "email", "work_title", "username")
)
_NO_PROJECT = dict.fromkeys(Project._fields)
_NO_OWNER = dict.fromkeys(Owner._fields)


def customer_from_read(record: Any) -> Customer:
    """Map one read-shape record to a canonical customer (WireError only for a bad id)."""
    if record.__class__ is dict:
        customer = clean_read(record, READ_CARRIES, READ_CARRIES_NO_PROJECT)
        if customer is not None:
            return customer
    return general_read(record)


def general_read(record: Any) -> Customer:
    """customer_from_read for any record: every oddity noted as a problem (see read_fast)."""
    remote_id = remote_id_of(record, "customer_id")
    r = FieldReader(record)
    fields = empty_fields()
    fields["pkcustomerid"] = remote_id
    r.texts(fields, READ_TEXT_KEYS)
    fields["customergstregistered"] = r.gst("gst_status")
    fields["fkcustomertypeid"], fields["customer_type_text"] = r.word(
        "customer_type", TYPE_IDS, TYPE_LABELS, "customer type"
    )
    # The old docs' field list names the status `creation_status`; every example says `customer_status`.
    status_key = "customer_status" if "customer_status" in record else "creation_status"
    fields["fkcustomerstatusid"], fields["customer_status_text"] = r.word(
        status_key, STATUS_IDS, STATUS_LABELS, "customer status"
    )
    fields["created_at"] = r.date("creation_date")
    projects = _projects(r, record.get("projects"))
    if projects:
        fields["customer_site_address"] = min(projects, key=lambda p: p.project_id).site_address
    return Customer(
        remote_id=remote_id,
        fields=fields,
        carried=READ_CARRIES if projects else READ_CARRIES_NO_PROJECT,
        shape="read",
        raw=record,
        notes=notes_of(r, "customer_notes"),
        projects=projects,
        owner=_owner(r, record.get("owner_user_info")),
        problems=tuple(r.problems),
    )


def notes_of(r: FieldReader, key: str) -> tuple[Note, ...]:
    """Notes as a list of {datetime, note}, or as one text (old docs, webhooks, project shape)."""
    value = r.record.get(key)
    if value is None or value == "" or value == []:
        return ()
    if isinstance(value, str):
        return (Note(None, value),)
    if not isinstance(value, list):
        r.note(key, value, "expected a list of notes")
        return ()
    notes = []
    for index, item in enumerate(value):
        if isinstance(item, dict) and isinstance(item.get("note"), str):
            when = item.get("datetime")
            notes.append(Note(when if isinstance(when, str) and when else None, item["note"]))
        else:
            r.note(f"{key}[{index}]", item, "expected {datetime, note}")
    return tuple(notes)


def _projects(r: FieldReader, value: Any) -> tuple[Project, ...]:
    if value is None or value == "":
        return ()
    if not isinstance(value, list):
        r.note("projects", value, "expected a list of projects")
        return ()
    projects = (_project(r, item, f"projects[{index}]") for index, item in enumerate(value))
    return tuple(p for p in projects if p is not None)


def _project(parent: FieldReader, item: Any, where: str) -> Project | None:
    try:
        project_id = remote_id_of(item, "project_id")
    except WireError as exc:
        parent.note(f"{where}.{exc.field}", exc.value, exc.reason)
        return None
    r = FieldReader(item)
    values = dict(_NO_PROJECT)
    values["project_id"] = project_id
    r.texts(values, _PROJECT_TEXT)
    values["system_size_kw"] = system_size_kw(values["system_size_text"])
    values["solar_panel_quantity"] = r.number("solar_panel_quantity", range(0, 10**9))
    values["inverter_quantity"] = r.number("inverter_quantity", range(0, 10**9))
    _site_address(r, item.get("site_address"), values)
    parent.problems.extend(f"{where}.{p}" for p in r.problems)
    return Project(**values)


def _site_address(r: FieldReader, site: Any, into: dict[str, Any]) -> None:
    """Address parts and the one-line form, from an object, JSON text of one, or plain text."""
    if site.__class__ is str and site.lstrip().startswith("{"):
        # getprojectinfo sends the address as a JSON object encoded in a string.
        try:
            site = json.loads(site)
        except (ValueError, RecursionError):  # garbage, or nested deeper than the parser goes
            pass
    if isinstance(site, dict):
        sub = FieldReader(site)
        sub.texts(into, _SITE_TEXT)
        into["site_address"] = address_line(into)
        r.problems.extend(f"site_address.{p}" for p in sub.problems)
    elif isinstance(site, str):
        into["site_address"] = site.strip() or None
    elif site is not None:
        r.note("site_address", site, "expected an address object or text")


def _owner(parent: FieldReader, value: Any) -> Owner | None:
    if value is None or value == "" or value == [] or value == {}:
        return None
    if not isinstance(value, dict):
        parent.note("owner_user_info", value, "expected an object")
        return None
    r = FieldReader(value)
    values = dict(_NO_OWNER)
    values["user_id"] = r.number("user_id", range(1, 2**63))
    r.texts(values, _OWNER_TEXT)
    owner = Owner(**values)
    parent.problems.extend(f"owner_user_info.{p}" for p in r.problems)
    return owner
