"""The record of sync runs, rejected records, and what `spmirror status` shows.

Status reads through its backend's `open_for_reading`: read-only, so it never creates, upgrades
or locks the database, and is safe while the daemon writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mirror.store import Store
from mirror.store.errors import OlderSchema  # noqa: F401  (importable from here)

_COUNTERS = ("pages", "listed", "created", "updated", "unchanged", "deleted", "delete_candidates", "rejected",
             "pushed", "push_errors", "conflicts")

# The states a person may want to look at (the rest is 'synced').
ATTENTION_STATES = ("conflict", "error", "pending")

def open_for_reading(where):
    """The mirror at `where` (a path, URL or Location), read-only, for status and reports.
    Raises StoreError (one line: what is wrong with it) if it is not a mirror this spmirror can
    read, OlderSchema if it is an older one."""
    from mirror.store import backend_for

    return backend_for(where).open_for_reading()


def start_run(store: Store, run_id: str, now: str) -> None:
    with store.transaction() as db:
        db.execute(
            f"INSERT INTO sync_runs (run_id, started_at, result, {', '.join(_COUNTERS)}) "
            f"VALUES (?, ?, 'running', {', '.join('0' * len(_COUNTERS))})",
            (run_id, now),
        )


def finish_run(store: Store, run_id: str, now: str, result: str, counts: dict[str, int], error: str | None) -> None:
    """Close a run with its result (ok, incomplete, refused, failed), counts and error text."""
    values = [counts.get(name, 0) for name in _COUNTERS]
    assignments = ", ".join(f"{name}=?" for name in _COUNTERS)
    with store.transaction() as db:
        db.execute(
            f"UPDATE sync_runs SET finished_at=?, result=?, error=?, {assignments} WHERE run_id=?",
            (now, result, error, *values, run_id),
        )


def last_walk_pages(store: Store) -> int | None:
    """The page count of the last complete walk (a run that pulled and ended ok), or None."""
    rows = store.query("SELECT pages FROM sync_runs WHERE result='ok' AND pages > 0 "
                       f"ORDER BY {store.db.newest_run_first} LIMIT 1")
    return rows[0]["pages"] if rows else None


def record_rejected(store: Store, run_id: str, now: str, page: int, items: list[tuple[str, str]]) -> None:
    """Keep listing elements that could not be mirrored, with the reason, for people to see."""
    if items:
        with store.transaction() as db:
            db.executemany(
                "INSERT INTO rejected_records (seen_at, run_id, page, payload, reason) VALUES (?, ?, ?, ?, ?)",
                [(now, run_id, page, payload, reason) for payload, reason in items],
            )


def rows_by_state(db) -> dict[str, int]:
    """How many customers rows are in each sync_state."""
    return dict(db.execute("SELECT sync_state, count(*) FROM customers GROUP BY sync_state ORDER BY sync_state"))


def status_summary(db, path: Path, limit: int | None = 10) -> dict[str, Any]:
    """Counts, rows by sync_state, the last and last successful runs, and the rows needing
    attention (conflict, then error, then pending): the first `limit` of them, or all if None."""
    by_state = rows_by_state(db)
    counts = _query(
        db,
        "SELECT (SELECT count(*) FROM customers) AS customers, "
        "(SELECT count(*) FROM customer_notes) AS notes, "
        "(SELECT count(*) FROM customer_projects) AS projects, "
        "(SELECT count(*) FROM deleted_customers) AS deleted_customers, "
        "(SELECT count(*) FROM customer_changes) AS changes, "
        "(SELECT count(*) FROM rejected_records) AS rejected_records, "
        "(SELECT count(*) FROM customer_base WHERE missing_since_run IS NOT NULL) AS delete_candidates",
    )[0]
    runs = _query(db, f"SELECT * FROM sync_runs ORDER BY {db.newest_run_first} LIMIT 1")
    ok = _query(db, f"SELECT * FROM sync_runs WHERE result='ok' ORDER BY {db.newest_run_first} LIMIT 1")
    attention = _query(
        db,
        "SELECT c.id AS local_id, c.pkcustomerid, c.customeremail, c.sync_state, c.sync_error, "
        f"(SELECT {db.group_text('field', ', ')} FROM customer_conflicts k WHERE k.pkcustomerid = c.pkcustomerid) "
        "AS conflicting_fields FROM customers c WHERE c.sync_state IN ('pending', 'conflict', 'error') "
        "ORDER BY c.sync_state, c.id LIMIT ?",
        (2**62 if limit is None else limit,),
    )
    account = _query(db, "SELECT api_url, substr(key_fingerprint, 1, 12) AS key_fingerprint, pinned_at "
                         "FROM mirror_account WHERE id = 1")
    return {
        "database": str(path),
        "account": account[0] if account else None,
        "rows_needing_attention": attention,
        "rows_needing_attention_count": sum(by_state.get(state, 0) for state in ATTENTION_STATES),
        "rows_needing_attention_limit": limit,
        "schema_version": db.schema_version(),
        **counts,
        "sync_state": by_state,
        "last_run": runs[0] if runs else None,
        "last_success": ok[0] if ok else None,
    }


def _query(db, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
    cursor = db.execute(sql, params)
    names = [d[0] for d in cursor.description or ()]
    return [dict(zip(names, row)) for row in cursor]
