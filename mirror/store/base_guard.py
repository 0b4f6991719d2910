"""Writing a customer fetched outside the sync lock only if its base has not moved since.

The webhook receiver fetches customers without holding the sync lock (a large batch would
otherwise keep every sync and push waiting for minutes), so a sync may write a customer while
its fetch is on the wire. That sync may have read the customer after the fetch did; writing the
fetch then would roll the sync's newer state back. So the receiver notes each customer's base
row before its fetch starts (`read_bases`), and `apply_where_base_unchanged` compares it with the
row inside the write transaction itself: any difference (a pull, a push, an adoption or a delete
wrote it) leaves that customer unwritten and returned as stale, for the caller to fetch again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from mirror.changes import RemoteChange
from mirror.store import FIELDS, Store
from mirror.store.remote_writes import Applied, apply_in_transaction


@dataclass(frozen=True, slots=True)
class BaseSnapshot:
    """One customer's base row as read before a fetch: every column, compared whole."""

    row: tuple
    fields: dict[str, Any]
    content_hash: str


def read_bases(store: Store, remote_ids: Iterable[int]) -> dict[int, BaseSnapshot]:
    """The base rows of these customers now; a customer with no base is absent."""
    return _read(store.db, list(remote_ids))


def apply_where_base_unchanged(
    store: Store, changes: list[RemoteChange], before: dict[int, BaseSnapshot], **options: Any,
) -> tuple[Applied, list[int]]:
    """Apply `changes` (planned against `before`) in one transaction, except for customers whose
    base row differs inside it from `before` (absent in `before` means "had no base").

    Returns what apply_remote_changes reported for the written ones and the stale ids, which
    nothing was written for. `options` go to apply_in_transaction.
    """
    if not changes:
        return Applied(), []
    with store.transaction() as db:
        now = _read(db, [c.remote_id for c in changes])
        stale = [c.remote_id for c in changes if _row(now.get(c.remote_id)) != _row(before.get(c.remote_id))]
        fresh = [c for c in changes if c.remote_id not in set(stale)]
        # Same transaction as the check: nobody can write the base between the two.
        applied = apply_in_transaction(db, fresh, **options)
    return applied, stale


def _row(snapshot: BaseSnapshot | None) -> tuple | None:
    return None if snapshot is None else snapshot.row


def _read(db, remote_ids: list[int]) -> dict[int, BaseSnapshot]:
    found: dict[int, BaseSnapshot] = {}
    for start in range(0, len(remote_ids), 500):
        chunk = remote_ids[start:start + 500]
        cursor = db.execute(f"SELECT * FROM customer_base WHERE pkcustomerid IN ({','.join('?' * len(chunk))})",
                            chunk)
        names = [d[0] for d in cursor.description]
        for row in cursor:
            values = dict(zip(names, row))
            found[values["pkcustomerid"]] = BaseSnapshot(tuple(row), {n: values[n] for n in FIELDS},
                                                         values["content_hash"])
    return found
