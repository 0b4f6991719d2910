"""Which documentation generation the answers' shapes match (solarproof-api.md §0): the older
pages' traffic shows numeric ids, notes as "", status as a number, a time in creation_date and
errors inside HTTP 200; the newer pages the opposite. The mirror reads both, so this is a note."""

from __future__ import annotations

from collections import Counter

from mirror.probe.findings import NOTE, OK, Finding
from mirror.probe.record_values import DATE, DATETIME
from mirror.probe.shapes import STATUS_KEYS


def generation(records: list[dict], errors: dict | None) -> Finding:
    older: Counter[str] = Counter()
    newer: Counter[str] = Counter()
    for record in records:
        value = record.get("customer_id")
        if isinstance(value, int) and not isinstance(value, bool):
            older["numeric ids"] += 1
        elif isinstance(value, str):
            newer["text ids"] += 1
        notes = record.get("customer_notes")  # only a customer without notes tells the generations apart
        if notes == "":
            older['no notes as ""'] += 1
        elif notes == []:
            newer["no notes as []"] += 1
        status = next((record[k] for k in STATUS_KEYS if k in record), None)
        if isinstance(status, str) and status.strip().isdigit():
            older["status as a number"] += 1
        elif isinstance(status, str) and status:
            newer["status as a word"] += 1
        created = record.get("creation_date")
        if isinstance(created, str) and DATETIME.match(created):
            older["creation_date with a time"] += 1
        elif isinstance(created, str) and DATE.match(created):
            newer["creation_date as a date"] += 1
    if errors is not None and errors["framing"] == "in_200":
        older["errors inside HTTP 200"] += 1
    elif errors is not None and errors["framing"] == "status":
        newer["errors with an HTTP error status"] += 1
    value = {"older": sorted(older), "newer": sorted(newer)}
    if not older:
        return Finding("docs", OK, f"the shapes match the newer docs ({', '.join(sorted(newer))})",
                       value={"generation": "newer", **value})
    if not newer:
        return Finding("docs", NOTE, f"the shapes match the older docs ({', '.join(sorted(older))}); the mirror "
                       "reads both generations", "nothing: the mirror reads both", {"generation": "older", **value})
    return Finding("docs", NOTE, f"the shapes mix the two doc generations: older docs' {', '.join(sorted(older))}; "
                   f"newer docs' {', '.join(sorted(newer))}; the mirror reads both", "nothing: the mirror reads both",
                   {"generation": "mixed", **value})
