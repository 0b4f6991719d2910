"""The simulator's internal customer records rendered in the API's shapes (digest §4 and §6).

Internal record (a plain dict, see `account.py`): id, first_name, last_name, email, phone1,
phone2, type (1..3), company_name, company_phone, gst (0/1), abn (str|None), status (0..3),
created ("YYYY-MM-DD HH:MM:SS"), owner (user_id str), notes [{datetime, note}], projects
[{project_id int, site_address{...}, solar_panel_quantity, solar_panel_type, inverter_type,
inverter_quantity, system_size, proposal_link}], contact_time (str|None), uid (str|None).

* `read_bytes`: shape R, the element of `getallcustomers` and the body of the lookups, with
  its keys in the documented order (§4.1) and the quirks applied. Returns compact JSON bytes
  (non-ASCII escaped as \\uXXXX, as PHP's json_encode does by default).
* `project_customer`: shape P of `getcustomerofproject` (§4.10), wrapped with its Message.
  `companyName`/`companyPhone` carry the customer's own company fields (the digest cannot tell
  whether the live server sends the account's instead); `siteAddress` is the given project's
  address on one line as in the doc example ("132 Mono Drive, Brisbane, QLD, 4321"); `note` is
  the latest note's text or ""; `customerID` and `gstRegistered` are integers whatever the quirks.
* `dumps`: the one JSON encoder used for every response body.
"""

from __future__ import annotations

import json

from .quirks import Quirks

TYPE_WORDS = {1: "Residential", 2: "Commercial", 3: "Large-Scale"}
STATUS_WORDS = {0: "No Status Set", 1: "New Contacts", 2: "Signed", 3: "Mega Status"}
GST_WORDS = {0: "Not GST Registered", 1: "GST Registered"}

_encode = json.JSONEncoder(separators=(",", ":")).encode


def dumps(obj) -> bytes:
    """Compact JSON bytes (the form every response body takes)."""
    return _encode(obj).encode()


def owner_info(user: dict, quirks: Quirks) -> dict:
    """`owner_user_info` for one of the account's users."""
    info = dict(user)
    if quirks.int_ids:
        info["user_id"] = int(info["user_id"])
    return info


def read_shape(record: dict, owner: dict, quirks: Quirks) -> dict:
    """Shape R for one record; `owner` is the already-rendered `owner_user_info`."""
    int_ids = quirks.int_ids
    notes = record["notes"]
    return {
        "customer_id": record["id"] if int_ids else str(record["id"]),
        "gst_status": GST_WORDS[record["gst"]],
        "customer_first_name": record["first_name"],
        "customer_last_name": record["last_name"],
        "customer_phone_1": record["phone1"],
        "customer_phone_2": record["phone2"],
        "customer_email": record["email"],
        "customer_type": TYPE_WORDS[record["type"]],
        "company_name": record["company_name"],
        "company_phone": record["company_phone"],
        "owner_user_info": owner,
        "creation_date": record["created"] if quirks.datetime_creation else record["created"][:10],
        "customer_notes": notes if notes or not quirks.notes_as_string else "",
        "customer_status": _status(record, quirks),
        "projects": [_project(p, int_ids) for p in record["projects"]],
    }


def _status(record: dict, quirks: Quirks) -> str:
    if quirks.unknown_status and record["id"] % 5 == 0:
        return quirks.unknown_status  # a word the docs do not list (quirks.py)
    return str(record["status"]) if quirks.status_as_number else STATUS_WORDS[record["status"]]


def read_bytes(record: dict, owner: dict, quirks: Quirks) -> bytes:
    """`read_shape` as compact JSON bytes, ready to be joined into a page."""
    return _encode(read_shape(record, owner, quirks)).encode()


def _project(project: dict, int_ids: bool) -> dict:
    pid = project["project_id"]
    return {
        "project_id": pid if int_ids else str(pid),
        "project_title": f"Project #{pid}",
        "site_address": project["site_address"],
        "solar_panel_quantity": project["solar_panel_quantity"],
        "solar_panel_type": project["solar_panel_type"],
        "inverter_type": project["inverter_type"],
        "inverter_quantity": project["inverter_quantity"],
        "system_size": project["system_size"],
        "proposal_link": project["proposal_link"],
    }


def one_line_address(site: dict) -> str:
    """'132 Mono Drive, Brisbane, QLD, 4321' (the P shape's `siteAddress` format)."""
    street = " ".join(part for part in (site.get("streetnum", ""), site.get("street", "")) if part)
    parts = (street, site.get("suburb", ""), site.get("state", ""), site.get("postcode", ""))
    return ", ".join(part for part in parts if part)


def project_customer(record: dict, project: dict) -> dict:
    """The `getcustomerofproject` body (P shape inside its Message wrapper)."""
    notes = record["notes"]
    latest = max(notes, key=lambda n: n["datetime"])["note"] if notes else ""
    return {
        "Message": "Customer details retrieved successfully!",
        "Customer": {
            "customerID": record["id"],
            "uid": record["uid"],
            "gstRegistered": record["gst"],
            "firstName": record["first_name"],
            "surname": record["last_name"],
            "phone1": record["phone1"],
            "phone2": record["phone2"],
            "email": record["email"],
            "companyName": record["company_name"],
            "companyPhone": record["company_phone"],
            "customerabn": record["abn"],
            "siteAddress": one_line_address(project["site_address"]),
            "note": latest,
            "contactTime": record["contact_time"],
        },
    }


def created(customer_id: int, quirks: Quirks) -> dict:
    """The `createcustomer` success body (no `id` under `create_without_id`)."""
    body = {"Message": "Customer created successfully!"}
    if not quirks.create_without_id:
        body["id"] = str(customer_id)
    return body


def updated(customer_id: int, quirks: Quirks) -> dict:
    """The `updatecustomer` success body, id under `CustomerId` or `id` per the quirk."""
    return {"Message": "Customer updated successfully!", quirks.update_id_key: str(customer_id)}


def deleted(customer_id: int) -> dict:
    """The `deletecustomer` success body (the same in both doc generations)."""
    return {"Message": "Customer Deleted Permanently!", "CustomerId": str(customer_id)}


def error(code: str, message: str) -> dict:
    """The customer/project endpoints' error body."""
    return {"code": code, "message": message}
