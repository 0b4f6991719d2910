"""Reading what people changed in the mirror, and recording what pushing it did.

A local edit is a customers row whose columns differ from its base (the remote record as last
seen), a row with no pkcustomerid (a create), or a base with no row (a local delete).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from mirror.merge import same
from mirror.customer import as_stored
from mirror.store import DELETED_CUSTOMER_UPSERT, FIELDS, Store, to_json
from mirror.store.confirmations import record_sent
from mirror.store.remote_writes import record_conflicts

_COLUMNS = ", ".join(f"c.{name}" for name in FIELDS)
_BASE_COLUMNS = ", ".join(f"b.{name}" for name in FIELDS)
_HISTORY = (
    "INSERT INTO customer_changes (changed_at, pkcustomerid, field, old_value, new_value, source, run_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class LocalRow:
    """A customers row as a person left it, with its base (None for a row never pushed)."""

    local_id: int
    remote_id: int | None
    fields: Mapping[str, Any]
    base: Mapping[str, Any] | None
    sync_state: str
    intent_sent_at: str | None = None  # a create that was sent before and never confirmed
    intent_walks: int = 0  # complete walks since that create that found no candidate
    intent_acknowledged: bool = False  # Solar Proof said it created it (without an id)
    intent_needs_person: bool = False  # a walk could not match it with certainty: resolve settles it


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def iter_edited_rows(store: Store) -> list[LocalRow]:
    """Rows with a pkcustomerid that differ from their base, except rows in conflict or error.

    Rows in 'error' stay out until a person changes them (the trigger makes them 'pending'),
    so a rejected edit is reported once, not on every run.
    """
    differs = " OR ".join(f"c.{name} {store.db.distinct} b.{name}" for name in FIELDS)
    rows = store.db.execute(
        f"SELECT c.id, c.sync_state, {_COLUMNS}, {_BASE_COLUMNS} FROM customers c "
        f"JOIN customer_base b ON b.pkcustomerid = c.pkcustomerid "
        f"WHERE c.sync_state IN ('pending', 'synced') AND ({differs})"
    )
    width = len(FIELDS)
    return [
        LocalRow(row[0], row[2], dict(zip(FIELDS, row[2 : 2 + width])), dict(zip(FIELDS, row[2 + width :])), row[1])
        for row in rows
    ]


def iter_new_rows(store: Store) -> list[LocalRow]:
    """Rows people inserted (no pkcustomerid) that are waiting to be created."""
    rows = store.db.execute(
        f"SELECT c.id, c.sync_state, i.sent_at, i.complete_walks_since, i.acknowledged, i.needs_person, {_COLUMNS} "
        f"FROM customers c LEFT JOIN create_intents i ON i.local_id = c.id "
        f"WHERE c.pkcustomerid IS NULL AND c.sync_state = 'pending' ORDER BY c.id"
    )
    return [LocalRow(row[0], None, dict(zip(FIELDS, row[6:])), None, row[1], row[2], row[3] or 0, bool(row[4]),
                     bool(row[5])) for row in rows]


def settle_pending_without_changes(store: Store) -> int:
    """Rows marked pending whose values equal their base again (an edit undone): back to synced."""
    same = " AND ".join(f"c.{name} {store.db.same} b.{name}" for name in FIELDS)
    with store.transaction() as db:
        cursor = db.execute(
            f"UPDATE customers SET sync_state='synced', sync_error=NULL WHERE sync_state='pending' "
            f"AND id IN (SELECT c.id FROM customers c JOIN customer_base b ON b.pkcustomerid = c.pkcustomerid "
            f"WHERE {same}) "
            # A row waiting for a read to confirm what was sent stays pending until that read.
            f"AND pkcustomerid NOT IN (SELECT pkcustomerid FROM unconfirmed_writes)"
        )
        return cursor.rowcount


def iter_rows_with_unknown_ids(store: Store) -> list[LocalRow]:
    """Rows someone inserted with a pkcustomerid the mirror has never seen (not a create, not a
    mirrored customer): they cannot be pushed without guessing, so they are flagged."""
    rows = store.db.execute(
        f"SELECT c.id, c.pkcustomerid, c.sync_state, {_COLUMNS} FROM customers c WHERE c.pkcustomerid IS NOT NULL "
        f"AND c.sync_state != 'error' AND NOT EXISTS (SELECT 1 FROM customer_base b WHERE b.pkcustomerid = c.pkcustomerid)"
    )
    return [LocalRow(row[0], row[1], dict(zip(FIELDS, row[3:])), None, row[2]) for row in rows]


def iter_deleted_rows(store: Store) -> list[LocalRow]:
    """Customers with a base but no row: deleted locally by someone."""
    rows = store.db.execute(
        f"SELECT b.pkcustomerid, {_BASE_COLUMNS} FROM customer_base b "
        f"WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.pkcustomerid = b.pkcustomerid)"
    )
    return [LocalRow(0, row[0], {}, dict(zip(FIELDS, row[1:])), "deleted") for row in rows]


def listed_by_last_walk(store: Store, remote_ids: list[int]) -> list[int]:
    """Of these customers, those the last complete walk listed (a base not marked missing)."""
    marks = ",".join("?" * len(remote_ids))
    return [row[0] for row in store.db.execute(
        f"SELECT pkcustomerid FROM customer_base WHERE pkcustomerid IN ({marks}) AND missing_since_run IS NULL",
        remote_ids)]


def mark_error(store: Store, local_id: int, message: str, intended: Mapping[str, Any], run_id: str, now: str) -> None:
    """Flag a row that cannot be pushed; keep the person's intended values in history."""
    with store.transaction() as db:
        db.execute("UPDATE customers SET sync_state='error', sync_error=? WHERE id=?", (message, local_id))
        remote_id = db.execute("SELECT pkcustomerid FROM customers WHERE id=?", (local_id,)).fetchone()
        db.executemany(_HISTORY, [(now, remote_id[0] if remote_id else None, name, None, as_stored(value),
                                   "local (not pushed)", run_id) for name, value in intended.items()])


def restore_deleted(store: Store, row: LocalRow, run_id: str, now: str) -> bool:
    """Put back a row someone deleted locally (deletes are pushed only with push_deletes).

    Read inside the write transaction: if someone put the row back meanwhile, nothing is done.
    """
    with store.transaction() as db:
        if db.execute("SELECT 1 FROM customers WHERE pkcustomerid=?", (row.remote_id,)).fetchone():
            return False
        found = db.execute(f"SELECT {', '.join(FIELDS)} FROM customer_base WHERE pkcustomerid=?",
                           (row.remote_id,)).fetchone()
        if found is None:
            return False
        base = dict(zip(FIELDS, found))
        db.execute(
            f"INSERT INTO customers ({', '.join(FIELDS)}, sync_state) VALUES ({', '.join('?' * len(FIELDS))}, 'synced')",
            tuple(base[n] for n in FIELDS),
        )
        db.execute(_HISTORY, (now, row.remote_id, "(restored)", None, as_stored(base.get("customeremail")),
                              "local delete not pushed", run_id))
    return True


def record_remote_delete(store: Store, row: LocalRow, run_id: str, now: str) -> None:
    """After a local delete was pushed: drop the base, keep the last record, note it in history."""
    record = store.last_record(row.remote_id)
    with store.transaction() as db:
        db.execute(
            DELETED_CUSTOMER_UPSERT,
            (row.remote_id, now, run_id, row.base.get("customeremail"), row.base.get("customerfirstname"),
             row.base.get("customersurname"), to_json(record)),
        )
        db.execute("DELETE FROM customer_base WHERE pkcustomerid=?", (row.remote_id,))
        db.execute(_HISTORY, (now, row.remote_id, "(deleted)", as_stored(row.base.get("customeremail")), None,
                              "local", run_id))


def update_base(store: Store, remote_id: int, values: Mapping[str, Any]) -> None:
    """Set base fields outside a pull: a local spelling of the same value ("" for NULL), so the
    row stops looking edited."""
    names = sorted(values)
    if names:
        with store.transaction() as db:
            db.execute(f"UPDATE customer_base SET {', '.join(f'{n}=?' for n in names)} WHERE pkcustomerid=?",
                       (*(values[n] for n in names), remote_id))


def record_update(
    store: Store, row: LocalRow, *, pushed: Mapping[str, Any], remote_values: Mapping[str, Any],
    overridden: Mapping[str, tuple], conflicts: Mapping[str, tuple], converged: Mapping[str, Any],
    still_differs: str | None, run_id: str, now: str, awaiting_read: str | None = None,
) -> None:
    """Record what an update's re-read, merge and write did, in ONE transaction that reads the row
    again: the HTTP calls ran without the write lock, so a person may have edited the row since
    `row` was read. Such a newer edit is never overwritten (not by a remote value, not under
    remote_wins): the row stays pending and the next push merges it.

    The base takes what Solar Proof holds: remote values learned by the re-read, the remote side
    of conflicts, converged values, and the pushed values, which also wait in unconfirmed_writes
    until a read shows Solar Proof took them. With `awaiting_read` (no read of the customer will
    follow in this run), a row that would be 'synced' stays 'pending' with that message until one.
    """
    with store.transaction() as db:
        found = db.execute(f"SELECT {', '.join(FIELDS)} FROM customers WHERE id=?", (row.local_id,)).fetchone()
        current = dict(zip(FIELDS, found)) if found else None
        edited_since = set() if current is None else {n for n in FIELDS if not same(current[n], row.fields.get(n))}
        base = {**remote_values, **converged, **{n: remote for n, (_b, _l, remote) in conflicts.items()}, **pushed}
        names = sorted(base)
        if names:
            db.execute(f"UPDATE customer_base SET {', '.join(f'{n}=?' for n in names)} WHERE pkcustomerid=?",
                       (*(base[n] for n in names), row.remote_id))
        db.executemany(_HISTORY, [(now, row.remote_id, n, as_stored(row.base.get(n)), as_stored(pushed[n]), "local",
                                   run_id) for n in sorted(pushed)])
        if pushed:
            record_sent(db, row.remote_id, pushed, run_id, now)
        if current is None:
            return  # deleted locally meanwhile: the next push restores it or deletes it remotely
        to_row = {n: v for n, v in remote_values.items() if n not in edited_since}
        if to_row:
            db.execute(f"UPDATE customers SET {', '.join(f'{n}=?' for n in sorted(to_row))} WHERE id=?",
                       (*(to_row[n] for n in sorted(to_row)), row.local_id))
            current.update(to_row)
        db.executemany(_HISTORY, [(now, row.remote_id, n, as_stored(local_value), as_stored(remote_value),
                                   "local overridden (remote_wins)", run_id)
                                  for n, (local_value, remote_value) in overridden.items() if n in to_row])
        # A conflict is judged against the row as it is now: an edit made meanwhile may settle it.
        open_conflicts = {n: (b, current[n], r) for n, (b, _l, r) in conflicts.items() if not same(current[n], r)}
        if open_conflicts:
            record_conflicts(db, row.remote_id, open_conflicts, now)
        elif still_differs and not edited_since:
            db.execute("UPDATE customers SET sync_state='error', sync_error=? WHERE id=?",
                       (still_differs, row.local_id))
        else:
            new_base = dict(zip(FIELDS, db.execute(f"SELECT {', '.join(FIELDS)} FROM customer_base WHERE "
                                                    f"pkcustomerid=?", (row.remote_id,)).fetchone()))
            settled = all(same(current[n], new_base[n]) for n in FIELDS)
            if settled and pushed and awaiting_read:
                # No read will come before this run ends: say so, and let the next one settle it.
                db.execute("UPDATE customers SET sync_state='pending', sync_error=? WHERE id=?",
                           (awaiting_read, row.local_id))
            else:
                db.execute("UPDATE customers SET sync_state=?, sync_error=NULL WHERE id=?",
                           ("synced" if settled else "pending", row.local_id))


def note_deferred(store: Store, row: LocalRow, message: str) -> None:
    """An update that waits for the next complete walk to read the customer (no read by id)."""
    current = store.db.execute("SELECT sync_state, sync_error FROM customers WHERE id=?", (row.local_id,)).fetchone()
    if current is None or current == ("pending", message):
        return  # nothing to say again: an unchanged file does not wake the watch job
    with store.transaction() as db:
        db.execute("UPDATE customers SET sync_state='pending', sync_error=? WHERE id=? AND sync_state IN "
                   "('pending', 'synced')", (message, row.local_id))


def settle_conflicts(store: Store) -> int:
    """Clear conflicts people settled with SQL; returns how many rows came out of conflict.

    A conflict is settled when the row's sync_state was changed by hand (to 'pending': take the
    local values), or when every conflicting field now holds the remote value.
    """
    with store.transaction() as db:
        db.execute(
            "DELETE FROM customer_conflicts WHERE pkcustomerid IN "
            "(SELECT pkcustomerid FROM customers WHERE sync_state != 'conflict')"
        )
        settled = 0
        for (remote_id,) in db.execute("SELECT pkcustomerid FROM customers WHERE sync_state = 'conflict'").fetchall():
            fields = db.execute(
                "SELECT field, remote_value FROM customer_conflicts WHERE pkcustomerid=?", (remote_id,)
            ).fetchall()
            row = db.execute(f"SELECT {', '.join(FIELDS)} FROM customers WHERE pkcustomerid=?", (remote_id,)).fetchone()
            current = dict(zip(FIELDS, row))
            if all(_text(current.get(name)) == remote_value for name, remote_value in fields):
                db.execute("DELETE FROM customer_conflicts WHERE pkcustomerid=?", (remote_id,))
                db.execute("UPDATE customers SET sync_state='pending', sync_error=NULL WHERE pkcustomerid=?",
                           (remote_id,))
                settled += 1
        return settled


def resolve(store: Store, remote_id: int, take: str, run_id: str, now: str) -> str:
    """Settle a row in 'conflict' or 'error' by taking the local or the remote values.

    remote: the conflicting (or, for an error row, every differing) field goes back to the
    remote value as last seen; local: the row is queued to push its values again. Everything
    is read inside the write transaction, so an edit committed just before is what is judged.
    Returns a sentence saying what was done. Raises LookupError if there is nothing to resolve.
    """
    with store.transaction() as db:
        row = db.execute(
            f"SELECT id, sync_state, {', '.join(FIELDS)} FROM customers WHERE pkcustomerid=?", (remote_id,)
        ).fetchone()
        if row is None:
            raise LookupError(f"no customer with pkcustomerid {remote_id} in the mirror")
        local_id, state = row[0], row[1]
        current = dict(zip(FIELDS, row[2:]))
        if state not in ("conflict", "error"):
            raise LookupError(f"customer {remote_id} is {state!r}: only rows in conflict or error need resolving")
        base_row = db.execute(f"SELECT {', '.join(FIELDS)} FROM customer_base WHERE pkcustomerid=?",
                              (remote_id,)).fetchone()
        base = dict(zip(FIELDS, base_row)) if base_row else {}
        conflicting = [r[0] for r in db.execute("SELECT field FROM customer_conflicts WHERE pkcustomerid=?",
                                                (remote_id,))]
        db.execute("DELETE FROM customer_conflicts WHERE pkcustomerid=?", (remote_id,))
        if take == "local":
            db.execute("UPDATE customers SET sync_state='pending', sync_error=NULL WHERE id=?", (local_id,))
            return f"customer {remote_id}: local values queued to push"
        names = conflicting if state == "conflict" else [n for n in FIELDS if current.get(n) != base.get(n)]
        if names:
            db.execute(f"UPDATE customers SET {', '.join(f'{n}=?' for n in names)} WHERE id=?",
                       (*(base.get(n) for n in names), local_id))
        db.execute("UPDATE customers SET sync_state='pending', sync_error=NULL WHERE id=?", (local_id,))
        db.executemany(_HISTORY, [(now, remote_id, n, as_stored(current.get(n)), as_stored(base.get(n)),
                                   "local (resolved: take remote)", run_id) for n in names])
    return f"customer {remote_id}: {', '.join(names) or 'nothing'} set back to the remote value"


def retry(store: Store, remote_ids: list[int] | None) -> int:
    """Requeue rows in 'error' (all of them, unpushed rows included, or those pkcustomerids)."""
    with store.transaction() as db:
        if remote_ids is None:
            cursor = db.execute("UPDATE customers SET sync_state='pending', sync_error=NULL WHERE sync_state='error'")
        else:
            marks = ",".join("?" * len(remote_ids))
            cursor = db.execute(f"UPDATE customers SET sync_state='pending', sync_error=NULL "
                                f"WHERE sync_state='error' AND pkcustomerid IN ({marks})", remote_ids)
        return cursor.rowcount
