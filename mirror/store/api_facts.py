"""What the probe found about the account's API, kept in the mirror (table api_findings).

`spmirror check` records its findings here (source 'check'), and so does a mirror's first sync
(source 'first_sync'); the sync reads the page size it walks with from here. One row per
finding key: a later run replaces the rows of the keys it found again and leaves the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

from mirror.store import Store

SOURCES = ("check", "first_sync")


@dataclass(frozen=True, slots=True)
class RecordedFinding:
    key: str
    level: str
    value: Any
    message: str
    what_to_do: str | None
    checked_at: str
    source: str


def record_findings(store: Store, findings: Iterable[Any], *, source: str, now: str) -> int:
    """Keep each finding (anything with key, level, value, message, what_to_do); return how many."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    rows = [(f.key, f.level, json.dumps(f.value, ensure_ascii=False, sort_keys=True), f.message, f.what_to_do or None,
             now, source) for f in findings]
    with store.transaction() as db:
        db.executemany(
            "INSERT INTO api_findings (key, level, value_json, message, what_to_do, checked_at, source) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET level=excluded.level, "
            "value_json=excluded.value_json, message=excluded.message, what_to_do=excluded.what_to_do, "
            "checked_at=excluded.checked_at, source=excluded.source",
            rows,
        )
    return len(rows)


def recorded_findings(store: Store) -> dict[str, RecordedFinding]:
    rows = store.db.execute("SELECT key, level, value_json, message, what_to_do, checked_at, source "
                            "FROM api_findings ORDER BY key")
    return {row[0]: RecordedFinding(row[0], row[1], json.loads(row[2]) if row[2] else None, *row[3:]) for row in rows}


def recorded_page_size(store: Store) -> int | None:
    """The page size a check or first sync measured, or None (not measured: the walk expects 50)."""
    row = store.db.execute("SELECT value_json FROM api_findings WHERE key = 'page_size'").fetchone()
    value = json.loads(row[0]) if row and row[0] else None
    size = value.get("size") if isinstance(value, dict) and value.get("measured") else None
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None
