"""Validation of the fields a Solar Proof user can set in the web app (the control surface).

The web app can change far more than the API (status, ABN, notes, projects, contact times, the
owner), so tests and the demo use these names with `Account.create_customer`/`edit_customer`
and the `/_admin/customers` routes:

    first_name, last_name, email, phone1, phone2, company_name, company_phone   (str)
    type      1..3 or a word: Residential / Commercial / Large-Scale (any case, - _ or space)
    gst       0/1 or bool
    status    0..3
    abn, contact_time, uid                                                      (str or None)
    created   date, datetime, "YYYY-MM-DD" or "YYYY-MM-DD HH:MM:SS"
    owner     a user's user_id (str or int) or email
    notes     [{"datetime": "YYYY-MM-DD HH:MM:SS", "note": str}, ...]
    projects  [{site_address: {...}, solar_panel_quantity, ...}, ...] (ids are assigned)

`clean(fields, users)` returns a new dict of internal values or raises ValueError naming the
field; it never touches account state.
"""

from __future__ import annotations

import datetime as dt
import re

TEXT = ("first_name", "last_name", "email", "phone1", "phone2", "company_name", "company_phone")
NULLABLE_TEXT = ("abn", "contact_time", "uid")
ALL = (*TEXT, *NULLABLE_TEXT, "type", "gst", "status", "created", "owner", "notes", "projects")
TYPE_BY_WORD = {"RESIDENTIAL": 1, "COMMERCIAL": 2, "LARGESCALE": 3}
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
PROJECT_DEFAULTS = {
    "solar_panel_quantity": "", "solar_panel_type": "", "inverter_type": "",
    "inverter_quantity": "", "system_size": "", "proposal_link": "",
}
ADDRESS_KEYS = ("streetnum", "street", "suburb", "state", "postcode", "country")


def type_number(value) -> int | None:
    """1..3 for an accepted type (int or word, case/dash/space-insensitive), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value in (1, 2, 3) else None
    if isinstance(value, str):
        return TYPE_BY_WORD.get(re.sub(r"[\s_-]", "", value).upper())
    return None


def clean(fields: dict, users: list[dict]) -> dict:
    """Validated internal values for `fields` (see the module docstring)."""
    unknown = set(fields) - set(ALL)
    if unknown:
        raise ValueError(f"unknown customer field(s): {', '.join(sorted(unknown))}")
    out: dict = {}
    for name, value in fields.items():
        if name in TEXT:
            if not isinstance(value, str):
                raise ValueError(f"{name} must be a string")
            out[name] = value
        elif name in NULLABLE_TEXT:
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string or null")
            out[name] = value
        elif name == "type":
            out[name] = _require(type_number(value), name, value)
        elif name == "gst":
            out[name] = _require(int(value) if value in (0, 1) else None, name, value)
        elif name == "status":
            ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 3
            out[name] = _require(value if ok else None, name, value)
        elif name == "created":
            out[name] = _require(_stamp(value), name, value)
        elif name == "owner":
            out[name] = _require(owner_id(value, users), name, value)
        elif name == "notes":
            out[name] = _notes(value)
        elif name == "projects":
            if not isinstance(value, list):
                raise ValueError("projects must be a list")
            out[name] = [project(p) for p in value]
    return out


def owner_id(value, users: list[dict]) -> str | None:
    """The user_id of the user named by `value` (a user_id or an email), else None."""
    text = str(value).strip().lower()
    for user in users:
        if text in (user["user_id"], user["email"].lower()):
            return user["user_id"]
    return None


def project(value: dict) -> dict:
    """A project dict with every documented key; `project_id` may be absent (assigned later)."""
    if not isinstance(value, dict):
        raise ValueError("each project must be an object")
    unknown = set(value) - {"project_id", "site_address", *PROJECT_DEFAULTS}
    if unknown:
        raise ValueError(f"unknown project field(s): {', '.join(sorted(unknown))}")
    out = {**PROJECT_DEFAULTS, **value}
    site = value.get("site_address") or {}
    if not isinstance(site, dict) or set(site) - set(ADDRESS_KEYS):
        raise ValueError(f"site_address must be an object with keys {ADDRESS_KEYS}")
    out["site_address"] = {key: str(site.get(key, "Australia" if key == "country" else ""))
                           for key in ADDRESS_KEYS}
    for key in PROJECT_DEFAULTS:
        out[key] = str(out[key])
    if "project_id" in out and (not isinstance(out["project_id"], int) or out["project_id"] < 1):
        raise ValueError("project_id must be a positive integer")
    return out


def _notes(value) -> list[dict]:
    if not isinstance(value, list):
        raise ValueError("notes must be a list")
    out = []
    for note in value:
        if not isinstance(note, dict) or not isinstance(note.get("note"), str):
            raise ValueError('each note must be {"datetime": ..., "note": str}')
        out.append({"datetime": _require(_stamp(note.get("datetime")), "note datetime",
                                         note.get("datetime")), "note": note["note"]})
    return sorted(out, key=lambda n: n["datetime"])


def _stamp(value) -> str | None:
    """'YYYY-MM-DD HH:MM:SS' for a date, datetime or either string form, else None."""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat() + " 09:00:00"
    if isinstance(value, str) and _DATETIME.fullmatch(value):
        return value
    if isinstance(value, str) and _DATE.fullmatch(value):
        return value + " 09:00:00"
    return None


def _require(result, name: str, value):
    if result is None:
        raise ValueError(f"invalid {name}: {value!r}")
    return result
