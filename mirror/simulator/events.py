"""Customer webhook payloads in the two documented versions (digest §6.4).

Version A: flat objects. Version B: customer_created as one object, customer_status_change as an
array of one object (its fields are not in the docs; ours are listed in STATUS_B_KEYS).
"""

from __future__ import annotations

import datetime as dt

from .render import one_line_address

VERSIONS = ("A", "B")
DEFAULT_VERSION = "B"

ACCOUNT_COMPANY = "Solar Proof"
TYPE_CODES = {1: "RESIDENTIAL", 2: "COMMERCIAL", 3: "LARGE-SCALE"}

CREATED_A_KEYS = ("pkcustomerid", "fkuserid", "customer_email", "customer_name", "customer_type",
                  "customer_status")
STATUS_A_KEYS = ("pkcustomerid", "fkuserid", "customer_email", "customer_name", "old_status",
                 "new_status")
CREATED_B_KEYS = ("customer_id", "customer_uid", "first_name", "surname", "customer_name",
                  "phone_primary", "phone_secondary", "customer_email", "company_name",
                  "company_phone", "abn", "gst_registered", "customer_type_id", "customer_status_id",
                  "site_address", "customer_created_at", "customer_notes", "assigned_user_id",
                  "assigned_user_name", "assigned_user_email", "company_name_full")
STATUS_B_KEYS = ("customer_id", "customer_email", "customer_name", "old_status", "new_status",
                 "customer_status_id", "changed_at")


# -- payloads ------------------------------------------------------------------------------------

def check_version(version) -> str:
    if version not in VERSIONS:
        raise ValueError(f"webhook version must be one of {VERSIONS}, not {version!r}")
    return version


def _name(record: dict) -> str:
    return " ".join(part for part in (record["first_name"], record["last_name"]) if part)


def _iso(stamp: str) -> str:
    """'YYYY-MM-DD HH:MM:SS' -> 'YYYY-MM-DDTHH:MM:SSZ'."""
    return stamp.replace(" ", "T") + "Z"


def utc_now() -> str:
    """The current UTC time as 'YYYY-MM-DDTHH:MM:SSZ'."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def created_payload(record: dict, user: dict, version: str) -> dict:
    """The `customer_created` body for an internal record (see render.py) and its owner."""
    if check_version(version) == "A":
        return {"pkcustomerid": record["id"], "fkuserid": int(user["user_id"]),
                "customer_email": record["email"], "customer_name": _name(record),
                "customer_type": TYPE_CODES[record["type"]], "customer_status": record["status"]}
    projects = sorted(record["projects"], key=lambda p: p["project_id"])
    return {
        "customer_id": record["id"],
        "customer_uid": record["uid"],
        "first_name": record["first_name"],
        "surname": record["last_name"],
        "customer_name": _name(record),
        "phone_primary": record["phone1"],
        "phone_secondary": record["phone2"],
        "customer_email": record["email"],
        "company_name": record["company_name"],
        "company_phone": record["company_phone"],
        "abn": record["abn"] or "",
        "gst_registered": record["gst"],
        "customer_type_id": record["type"],
        "customer_status_id": record["status"],
        "site_address": one_line_address(projects[0]["site_address"]) if projects else "",
        "customer_created_at": _iso(record["created"]),
        "customer_notes": "",
        "assigned_user_id": int(user["user_id"]),
        "assigned_user_name": f"{user['first_name']} {user['last_name']}".strip(),
        "assigned_user_email": user["email"],
        "company_name_full": ACCOUNT_COMPANY,
    }


def status_payload(record: dict, user: dict, old: int, new: int, version: str,
                   changed_at: str | None = None) -> dict | list:
    """The `customer_status_change` body: an object (A) or an array of one object (B)."""
    if check_version(version) == "A":
        return {"pkcustomerid": record["id"], "fkuserid": int(user["user_id"]),
                "customer_email": record["email"], "customer_name": _name(record),
                "old_status": old, "new_status": new}
    return [{"customer_id": record["id"], "customer_email": record["email"],
             "customer_name": _name(record), "old_status": old, "new_status": new,
             "customer_status_id": new, "changed_at": changed_at or utc_now()}]


# -- faults --------------------------------------------------------------------------------------
