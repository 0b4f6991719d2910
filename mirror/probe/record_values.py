"""What the listed customers hold: their ids, dates, status, type and GST words, and fields
the mirror does not know or misses."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from mirror.probe.calls import Answer, ids_of
from mirror.probe.description import short
from mirror.probe.findings import NOTE, OK, PROBLEM, REPORT_IT, Finding
from mirror.probe.shapes import (EXPECTED_READ_KEYS, NOTE_KEYS, OWNER_KEYS, PROJECT_CUSTOMER_KEYS,
                                 PROJECT_CUSTOMER_WRAPPER, PROJECT_KEYS, READ_KEYS, SITE_KEYS, STATUS_KEYS)
from mirror.vocabulary import GST_IDS, STATUS_IDS, TYPE_IDS, lookup

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?")


def _id_kind(values: list[Any]) -> str | None:
    kinds = {"number" if isinstance(v, int) and not isinstance(v, bool) else "text" if isinstance(v, str) else "other"
             for v in values}
    return None if not kinds else kinds.pop() if len(kinds) == 1 else "mixed"


def ids(records: list[dict]) -> Finding:
    values = [r.get("customer_id") for r in records]
    unusable = [v for v, i in zip(values, ids_of(records)) if i is None]
    projects = [p.get("project_id") for r in records for p in (r.get("projects") or [])
                if isinstance(r.get("projects"), list) and isinstance(p, dict)]
    owners = [r["owner_user_info"].get("user_id") for r in records if isinstance(r.get("owner_user_info"), dict)]
    value = {"customer_id": _id_kind(values), "project_id": _id_kind(projects), "user_id": _id_kind(owners),
             "unusable": len(unusable)}
    if unusable:
        return Finding("ids", PROBLEM, f"{len(unusable)} of {len(records)} listed customers have no usable "
                       f"customer_id (such as {short(unusable[0])}): a sync cannot mirror them, and would miss them",
                       REPORT_IT, value)
    kind = value["customer_id"]
    if kind == "text":
        return Finding("ids", OK, 'customer ids are text digits ("70001"), as the docs\' examples show', value=value)
    if kind == "number":
        return Finding("ids", NOTE, "customer ids are JSON numbers (70001), as the older docs type them; the mirror "
                       "reads both", "nothing", value)
    return Finding("ids", NOTE, "customer ids come both as text and as numbers; the mirror reads both", "nothing",
                   value)


def dates(records: list[dict]) -> Finding:
    kinds: Counter[str] = Counter()
    odd: list[str] = []
    for record in records:
        value = record.get("creation_date")
        if value in (None, "") or value == "0000-00-00":
            kinds["empty"] += 1
        elif isinstance(value, str) and DATE.match(value):
            kinds["YYYY-MM-DD"] += 1
        elif isinstance(value, str) and DATETIME.match(value):
            kinds["YYYY-MM-DD HH:MM:SS"] += 1
        else:
            kinds["other"] += 1
            odd.append(short(value))
    note_times = Counter("YYYY-MM-DD HH:MM:SS" if isinstance(n.get("datetime"), str) and DATETIME.match(n["datetime"])
                         else "other" for r in records for n in (r.get("customer_notes") or [])
                         if isinstance(r.get("customer_notes"), list) and isinstance(n, dict))
    value = {"creation_date": dict(kinds), "note_datetime": dict(note_times), "unreadable": odd[:5]}
    notes = f"; note times as YYYY-MM-DD HH:MM:SS" if note_times and not note_times.get("other") else ""
    if note_times.get("other"):
        notes = f"; {note_times['other']} note times in another format (kept as sent)"
    if kinds.get("other"):
        return Finding("dates", NOTE, f"{kinds['other']} creation dates are in no format the mirror reads (such as "
                       f"{odd[0]}): their created_at stays NULL{notes}", REPORT_IT, value)
    if kinds.get("YYYY-MM-DD HH:MM:SS"):
        return Finding("dates", NOTE, "creation_date carries a time (YYYY-MM-DD HH:MM:SS), as the older docs say; "
                       f"the mirror keeps the date{notes}", "nothing", value)
    return Finding("dates", OK, f"creation_date as YYYY-MM-DD{notes}", value=value)


_WORDS = (
    ("status_words", "status", STATUS_KEYS, STATUS_IDS, range(0, 4), "customer_status_text, fkcustomerstatusid"),
    ("type_words", "type", ("customer_type",), TYPE_IDS, range(1, 4), "customer_type_text, fkcustomertypeid"),
    ("gst_words", "GST", ("gst_status",), GST_IDS, range(0, 2), "the raw payload, customergstregistered"),
)


def words(records: list[dict]) -> list[Finding]:
    findings = []
    for key, kind, fields, table, valid, columns in _WORDS:
        seen: Counter[str] = Counter()
        unknown: set[str] = set()
        for record in records:
            value = next((record[f] for f in fields if f in record), None)
            if value in (None, ""):
                continue
            word = str(value)
            seen[word] += 1
            known = (value in valid if isinstance(value, int) and not isinstance(value, bool)
                     else isinstance(value, str) and lookup(table, value, valid) is not None)
            if not known:
                unknown.add(word)
        if not seen:
            continue
        shown = ", ".join(f"{w} ({n})" for w, n in sorted(seen.items(), key=lambda item: (-item[1], item[0])))
        value = {"seen": dict(seen), "unknown": sorted(unknown)}
        if not unknown:
            findings.append(Finding(key, OK, f"{kind} words all known: {shown}", value=value))
            continue
        strange = ", ".join(f"{w!r} ({seen[w]} customers)" for w in sorted(unknown))
        text, number = columns.split(", ")
        findings.append(Finding(key, NOTE, f"{kind} words the docs do not list: {strange}; seen in all: {shown}. "
                                f"The mirror keeps such a word as sent ({text}) and leaves {number} NULL",
                                "nothing needed; tell the project what the word means so a release can map it", value))
    return findings


def fields(records: list[dict], of_project: Answer | None) -> list[Finding]:
    unknown: Counter[str] = Counter()
    missing: Counter[str] = Counter()
    for record in records:
        keys = set(record)
        unknown.update(sorted(keys - READ_KEYS))
        missing.update(sorted(EXPECTED_READ_KEYS - keys))
        if not any(k in keys for k in STATUS_KEYS):
            missing["customer_status"] += 1
        owner = record.get("owner_user_info")
        if isinstance(owner, dict):
            unknown.update(f"owner_user_info.{k}" for k in sorted(set(owner) - OWNER_KEYS))
        notes = record.get("customer_notes")
        for note in notes if isinstance(notes, list) else []:
            if isinstance(note, dict):
                unknown.update(f"customer_notes[].{k}" for k in sorted(set(note) - NOTE_KEYS))
        projects = record.get("projects")
        for project in projects if isinstance(projects, list) else []:
            if not isinstance(project, dict):
                continue
            unknown.update(f"projects[].{k}" for k in sorted(set(project) - PROJECT_KEYS))
            missing.update(f"projects[].{k}" for k in sorted(PROJECT_KEYS - set(project)))
            site = project.get("site_address")
            if isinstance(site, dict):
                unknown.update(f"projects[].site_address.{k}" for k in sorted(set(site) - SITE_KEYS))
    if of_project is not None and isinstance(of_project.body, dict) and "Customer" in of_project.body:
        body = of_project.body
        unknown.update(f"getcustomerofproject.{k}" for k in sorted(set(body) - PROJECT_CUSTOMER_WRAPPER))
        if isinstance(body["Customer"], dict):
            keys = set(body["Customer"])
            unknown.update(f"getcustomerofproject.Customer.{k}" for k in sorted(keys - PROJECT_CUSTOMER_KEYS))
            missing.update(f"getcustomerofproject.Customer.{k}" for k in sorted(PROJECT_CUSTOMER_KEYS - keys))
    missing.pop("customer_id", None)  # the ids finding says what a missing id means
    total = len(records)
    findings = []
    if unknown:
        listed = ", ".join(f"{k} ({n})" for k, n in sorted(unknown.items()))
        findings.append(Finding("fields_unknown", NOTE, f"fields the mirror does not know (how many times seen): "
                                f"{listed}; kept in each customer's raw payload (customer_raw), not in columns",
                                "nothing needed; tell the project if one holds something worth a column",
                                {"unknown": dict(unknown), "records": total}))
    else:
        findings.append(Finding("fields_unknown", OK, "no field the mirror does not know", value={"unknown": {}}))
    if missing:
        listed = ", ".join(f"{k} ({n} of {total})" if not k.startswith(("projects", "getcustomerofproject"))
                           else f"{k} ({n})" for k, n in sorted(missing.items()))
        findings.append(Finding("fields_missing", NOTE, f"fields the mirror reads are missing: {listed}; what they "
                                "fill stays NULL", "nothing needed; " + REPORT_IT,
                                {"missing": dict(missing), "records": total}))
    else:
        findings.append(Finding("fields_missing", OK, "every field the mirror reads is there", value={"missing": {}}))
    return findings
