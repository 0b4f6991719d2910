"""The record of sync runs, rejected records, and the summary `spmirror status` shows."""

from __future__ import annotations

from typing import Any

from mirror.store import Store

_COUNTERS = ("pages", "listed", "created", "updated", "unchanged", "deleted", "delete_candidates", "rejected",
             "pushed", "push_errors", "conflicts")


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


def record_rejected(store: Store, run_id: str, now: str, page: int, items: list[tuple[str, str]]) -> None:
    """Keep listing elements that could not be mirrored, with the reason, for people to see."""
    if items:
        with store.transaction() as db:
            db.executemany(
                "INSERT INTO rejected_records (seen_at, run_id, page, payload, reason) VALUES (?, ?, ?, ?, ?)",
                [(now, run_id, page, payload, reason) for payload, reason in items],
            )


def status_summary(store: Store) -> dict[str, Any]:
    """Counts, rows by sync_state, and the last and last successful runs."""
    by_state = {row["sync_state"]: row["n"] for row in store.query(
        "SELECT sync_state, count(*) AS n FROM customers GROUP BY sync_state ORDER BY sync_state")}
    runs = store.query("SELECT * FROM sync_runs ORDER BY started_at DESC, rowid DESC LIMIT 1")
    ok = store.query("SELECT * FROM sync_runs WHERE result='ok' ORDER BY started_at DESC, rowid DESC LIMIT 1")
    counts = store.query(
        "SELECT (SELECT count(*) FROM customers) AS customers, "
        "(SELECT count(*) FROM customer_notes) AS notes, "
        "(SELECT count(*) FROM customer_projects) AS projects, "
        "(SELECT count(*) FROM deleted_customers) AS deleted_customers, "
        "(SELECT count(*) FROM customer_changes) AS changes, "
        "(SELECT count(*) FROM rejected_records) AS rejected_records, "
        "(SELECT count(*) FROM customer_base WHERE missing_since_run IS NOT NULL) AS delete_candidates"
    )[0]
    attention = store.query(
        "SELECT c.id AS local_id, c.pkcustomerid, c.customeremail, c.sync_state, c.sync_error, "
        "(SELECT group_concat(field, ', ') FROM customer_conflicts k WHERE k.pkcustomerid = c.pkcustomerid) "
        "AS conflicting_fields FROM customers c WHERE c.sync_state IN ('pending', 'conflict', 'error') "
        "ORDER BY c.sync_state, c.id LIMIT 50"
    )
    account = store.query("SELECT api_url, substr(key_fingerprint, 1, 12) AS key_fingerprint, pinned_at "
                          "FROM mirror_account WHERE id = 1")
    return {
        "database": str(store.path),
        "account": account[0] if account else None,
        "rows_needing_attention": attention,
        "schema_version": store.schema_version,
        **counts,
        "sync_state": by_state,
        "last_run": runs[0] if runs else None,
        "last_success": ok[0] if ok else None,
    }
