"""Writing what the remote side changed into the mirror, a batch per transaction.

The executor of the pull's plan: creates, updates of only the changed fields, refreshes of the
stored payload, history rows, and confirmed deletes (whose last record is kept in
`deleted_customers`). Callers pass whole pages, so a page is never half-applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from mirror.changes import CREATE, UPDATE, RemoteChange
from mirror.customer import Customer, email_key
from mirror.merge import merge_fields, same
from mirror.customer import as_stored
from mirror.store import DELETED_CUSTOMER_UPSERT, FIELDS, Store, to_json, upsert
from mirror.store.confirmations import check_sent, forget_sent, settle_confirmed, waiting_ids
from mirror.store.creates import settle_state, waiting_emails
from mirror.store.payloads import PayloadCodec

_FIELD_LIST = ", ".join(FIELDS)
_FIELD_MARKS = ", ".join("?" * len(FIELDS))
_CUSTOMER_UPSERT = (
    f"INSERT INTO customers ({_FIELD_LIST}, sync_state, sync_error) VALUES ({_FIELD_MARKS}, 'synced', NULL) "
    f"ON CONFLICT(pkcustomerid) DO UPDATE SET "
    + ", ".join(f"{name}=excluded.{name}" for name in FIELDS[1:])
    + ", sync_state='synced', sync_error=NULL"
)
_BASE_COLUMNS = (*FIELDS, "content_hash", "raw_hash", "owner_user_id", "last_seen_at", "missing_since_run")
_BASE_UPSERT = (
    f"INSERT INTO customer_base ({', '.join(_BASE_COLUMNS)}) VALUES ({', '.join('?' * len(_BASE_COLUMNS))}) "
    "ON CONFLICT(pkcustomerid) DO UPDATE SET "
    + ", ".join(f"{name}=excluded.{name}" for name in _BASE_COLUMNS[1:])
)
_RAW_UPSERT = (
    "INSERT INTO customer_raw (pkcustomerid, listing_json, project_customer_json, fetched_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(pkcustomerid) DO UPDATE SET listing_json=excluded.listing_json, "
    "project_customer_json=COALESCE(excluded.project_customer_json, customer_raw.project_customer_json), "
    "fetched_at=excluded.fetched_at"
)
_USER_UPSERT = (
    "INSERT INTO users (user_id, first_name, last_name, phone_number, email, work_title, username) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(user_id) DO UPDATE SET first_name=excluded.first_name, "
    "last_name=excluded.last_name, phone_number=excluded.phone_number, email=excluded.email, "
    "work_title=excluded.work_title, username=excluded.username"
)
_PROJECT_INSERT = upsert("customer_projects", (
    "project_id", "pkcustomerid", "title", "site_address", "streetnum", "street", "suburb", "state", "postcode",
    "country", "system_size_kw", "system_size_text", "solar_panel_quantity", "solar_panel_type", "inverter_type",
    "inverter_quantity", "proposal_link"), "project_id")
_HISTORY_INSERT = (
    "INSERT INTO customer_changes (changed_at, pkcustomerid, field, old_value, new_value, source, run_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _history_value(value: Any) -> Any:
    """A value for customer_changes: as the customer column holds it (the integer 2, not '2')."""
    return as_stored(value)


def _conflict_text(value: Any) -> str | None:
    # customer_conflicts keeps text: settle_conflicts compares the row's value with it as text.
    return None if value is None else str(value)


@dataclass
class Applied:
    """What applying a batch did beyond writing it."""

    conflicts: list[tuple[int, str]] = field(default_factory=list)  # (remote_id, field)
    # New customers with the email of a create still unconfirmed: not written, because only a
    # complete walk may decide whether one of them is that create (settle_found_creates).
    held: list[RemoteChange] = field(default_factory=list)
    not_taken: dict[int, dict[str, tuple]] = field(default_factory=dict)  # remote_id -> field -> (sent, held)


def apply_remote_changes(
    store: Store, changes: list[RemoteChange], *, run_id: str, now: str, record_history: bool = True,
    project_payloads: dict[int, str] | None = None, conflict_policy: str = "manual",
    payload_fields: Mapping[int, frozenset[str]] | None = None, hold_for_creates: bool = True,
    first_import: bool = False,
) -> Applied:
    """Apply one batch of planned remote changes in a single transaction.

    Remote updates are merged with the customers row as it is inside the transaction (whose
    write lock keeps everyone else out), so an edit someone made during the pull is never
    overwritten: it is pushed later, or becomes a conflict. Values this mirror sent and no read
    has confirmed are compared with what Solar Proof returned; one it did not take leaves the
    row 'error' with the local value kept. `payload_fields` names, per customer, fields taken
    from a webhook payload after the API confirmed the customer; history marks them.
    `first_import`: inside first_import.begin/finish, where no customer has notes or projects
    yet (and their lookup indexes are away), so there are none to remove first.
    """
    if not changes:
        return Applied()
    with store.transaction() as db:
        return apply_in_transaction(db, changes, run_id=run_id, now=now, record_history=record_history,
                                    project_payloads=project_payloads, conflict_policy=conflict_policy,
                                    payload_fields=payload_fields, hold_for_creates=hold_for_creates,
                                    first_import=first_import)


def apply_in_transaction(
    db, changes: list[RemoteChange], *, run_id: str, now: str, record_history: bool = True,
    project_payloads: dict[int, str] | None = None, conflict_policy: str = "manual",
    payload_fields: Mapping[int, frozenset[str]] | None = None, hold_for_creates: bool = True,
    first_import: bool = False,
) -> Applied:
    """apply_remote_changes inside a write transaction the caller has begun (and will end)."""
    applied = Applied()
    project_payloads = project_payloads or {}
    if hold_for_creates:
        waiting = waiting_emails(db)
        if waiting:
            applied.held = [c for c in changes
                            if c.kind == CREATE and email_key(c.fields.get("customeremail")) in waiting]
            held_ids = {c.remote_id for c in applied.held}
            changes = [c for c in changes if c.remote_id not in held_ids]
    awaited = waiting_ids(db) & {c.remote_id for c in changes}
    applied.not_taken = check_sent(db, [(c.remote_id, c.fields, c.pulled.customer.carried) for c in changes])
    rows_changed = [c for c in changes if c.kind == CREATE or (c.kind == UPDATE and c.changed)
                    or c.remote_id in applied.not_taken]
    content_changed = [c for c in changes if c.kind in (CREATE, UPDATE)]
    # The base first: notes, projects and payloads reference it.
    db.executemany(_BASE_UPSERT, [_base_row(c, now) for c in changes])
    payloads = PayloadCodec(db)
    payloads.learn(db, [c.pulled.raw_text for c in changes], now)
    db.executemany(_RAW_UPSERT, [(c.remote_id, payloads.compress(c.pulled.raw_text),
                                  project_payloads.get(c.remote_id), now) for c in changes])
    applied.conflicts = _write_customer_rows(db, rows_changed, conflict_policy, run_id, now, applied.not_taken)
    if content_changed:
        _replace_children(db, [c.pulled.customer for c in content_changed], first_import)
    if record_history:
        db.executemany(_HISTORY_INSERT, list(_history_rows(changes, run_id, now, payload_fields or {})))
    settle_confirmed(db, awaited - set(applied.not_taken), FIELDS)
    return applied


def _base_row(change: RemoteChange, now: str) -> tuple:
    owner = change.pulled.customer.owner
    owner_id = owner.user_id if owner else None
    values = (change.fields[name] for name in FIELDS)
    return (*values, change.pulled.content_hash, change.pulled.raw_hash, owner_id, now, None)


def _write_customer_rows(db, changes: list[RemoteChange], policy: str, run_id: str, now: str,
                         not_taken: Mapping[int, Mapping[str, tuple]]) -> list[tuple[int, str]]:
    creates = [c for c in changes if c.kind == CREATE]
    if creates:
        # A row someone inserted with this id before we ever saw the customer keeps its values:
        # it is flagged for a person to settle (resolve --take remote|local), never overwritten.
        claimed = {c.remote_id for c in creates} & set(_local_rows(db, [c.remote_id for c in creates]))
        db.executemany(
            "UPDATE customers SET sync_state='error', sync_error=? WHERE pkcustomerid=?",
            [(f"pkcustomerid {remote_id} is a customer in Solar Proof, but this row was typed in and differs "
              f"from it; settle with spmirror resolve {remote_id} --take remote (or --take local)", remote_id)
             for remote_id in claimed],
        )
        db.executemany(_CUSTOMER_UPSERT, [tuple(c.fields[name] for name in FIELDS) for c in creates
                                          if c.remote_id not in claimed])
    updates = [c for c in changes if c.kind != CREATE]
    if not updates:
        return []
    local_rows = _local_rows(db, [c.remote_id for c in updates])
    # Rows are grouped by which fields they write, to keep executemany.
    by_fields: dict[tuple[str, ...], list[tuple]] = {}
    conflicts: list[tuple[int, str]] = []
    history: list[tuple] = []
    refused: list[tuple[str, int]] = []
    for change in updates:
        local = local_rows.get(change.remote_id)
        if local is None:
            continue  # deleted locally: the push phase restores it or deletes it remotely
        lost = not_taken.get(change.remote_id, {})
        # A field Solar Proof did not take is not a remote change to merge: the row keeps the
        # value the person wrote, and says so.
        merged = {name: pair for name, pair in change.changed.items() if name not in lost}
        base = {name: old for name, (old, _new) in merged.items()}
        remote = {name: new for name, (_old, new) in merged.items()}
        merge = merge_fields(base, local, remote, merged, policy)
        if merge.to_local:
            names = tuple(sorted(merge.to_local))
            by_fields.setdefault(names, []).append((*(merge.to_local[n] for n in names), change.remote_id))
        for name, (local_value, remote_value) in merge.overridden.items():
            history.append((now, change.remote_id, name, _history_value(local_value), _history_value(remote_value),
                            "local overridden (remote_wins)", run_id))
        if merge.conflicts:
            record_conflicts(db, change.remote_id, merge.conflicts, now)
            conflicts.extend((change.remote_id, name) for name in merge.conflicts)
        if lost:
            history.extend((now, change.remote_id, name, _history_value(sent), _history_value(held),
                            "local (not taken by Solar Proof)", run_id) for name, (sent, held) in sorted(lost.items()))
            refused.append((not_taken_message(change.remote_id, lost), change.remote_id))
    for names, rows in by_fields.items():
        assignments = ", ".join(f"{name}=?" for name in names)
        db.executemany(f"UPDATE customers SET {assignments} WHERE pkcustomerid=?", rows)
    db.executemany("UPDATE customers SET sync_state='error', sync_error=? WHERE pkcustomerid=?", refused)
    db.executemany(_HISTORY_INSERT, history)
    return conflicts


def not_taken_message(remote_id: int, lost: Mapping[str, tuple]) -> str:
    def shown(value: Any) -> str:
        return "(empty)" if value in (None, "") else repr(value)

    what = "; ".join(f"{name}: sent {shown(sent)}, it holds {shown(held)}" for name, (sent, held) in sorted(lost.items()))
    return (f"Solar Proof answered the write with success but did not take it ({what}); your value is kept here. "
            f"spmirror resolve {remote_id} --take remote accepts Solar Proof's value; spmirror retry {remote_id} "
            "sends yours again")


def _local_rows(db, remote_ids: list[int]) -> dict[int, dict]:
    rows: dict[int, dict] = {}
    columns = ", ".join(FIELDS)
    for start in range(0, len(remote_ids), 500):
        chunk = remote_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for row in db.execute(f"SELECT {columns} FROM customers WHERE pkcustomerid IN ({marks})", chunk):
            rows[row[0]] = dict(zip(FIELDS, row))
    return rows


def record_conflicts(db, remote_id: int, conflicts: dict[str, tuple], now: str) -> None:
    """Keep both sides of each conflicting field where SQL can see them; flag the row."""
    db.executemany(
        "INSERT INTO customer_conflicts (pkcustomerid, field, base_value, local_value, remote_value, seen_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(pkcustomerid, field) DO UPDATE SET base_value=excluded.base_value, "
        "local_value=excluded.local_value, remote_value=excluded.remote_value, seen_at=excluded.seen_at",
        [(remote_id, name, *(_conflict_text(v) for v in values), now) for name, values in conflicts.items()],
    )
    db.execute(
        "UPDATE customers SET sync_state='conflict', sync_error=? WHERE pkcustomerid=?",
        (f"changed here and in Solar Proof: {', '.join(sorted(conflicts))}; see customer_conflicts", remote_id),
    )


def _replace_children(db, customers: list[Customer], first_import: bool = False) -> None:
    if not first_import:
        ids = [(c.remote_id,) for c in customers]
        db.executemany("DELETE FROM customer_notes WHERE pkcustomerid=?", ids)
        db.executemany("DELETE FROM customer_projects WHERE pkcustomerid=?", ids)
    db.executemany(
        "INSERT INTO customer_notes (pkcustomerid, noted_at, note) VALUES (?, ?, ?)",
        [(c.remote_id, n.datetime, n.note) for c in customers for n in c.notes],
    )
    db.executemany(
        _PROJECT_INSERT,
        [(p.project_id, c.remote_id, p.title, p.site_address, p.streetnum, p.street, p.suburb, p.state,
          p.postcode, p.country, p.system_size_kw, p.system_size_text, p.solar_panel_quantity,
          p.solar_panel_type, p.inverter_type, p.inverter_quantity, p.proposal_link)
         for c in customers for p in c.projects],
    )
    owners = {c.owner.user_id: c.owner for c in customers if c.owner and c.owner.user_id is not None}
    db.executemany(_USER_UPSERT, [tuple(owner) for owner in owners.values()])


def _history_rows(changes: Iterable[RemoteChange], run_id: str, now: str, payload_fields):
    for change in changes:
        from_payload = payload_fields.get(change.remote_id, frozenset())
        if change.kind == CREATE:
            yield (now, change.remote_id, "(created)", None, change.fields["customeremail"], "remote", run_id)
            for name in sorted(from_payload):
                if change.fields.get(name) is not None:
                    yield (now, change.remote_id, name, None, _history_value(change.fields[name]),
                           "webhook payload", run_id)
        elif change.kind == UPDATE:
            for name, (old, new) in change.changed.items():
                source = "webhook payload" if name in from_payload else "remote"
                yield (now, change.remote_id, name, _history_value(old), _history_value(new), source, run_id)


def mark_missing(store: Store, remote_ids: Iterable[int], run_id: str | None) -> None:
    """Remember (run_id) or forget (None) that complete listings lacked these customers."""
    rows = [(run_id, remote_id) for remote_id in remote_ids]
    if rows:
        with store.transaction() as db:
            db.executemany("UPDATE customer_base SET missing_since_run=? WHERE pkcustomerid=?", rows)


def delete_customers(store: Store, remote_ids: Iterable[int], *, run_id: str, now: str) -> list[dict]:
    """Remove customers Solar Proof deleted; keep each last record in `deleted_customers`.

    A row that still held local edits (an update that never got to be sent) loses nothing: the
    edited values go into the record (`local_edits`) and into history. Everything is read inside
    the write transaction, so an edit committed a moment before is the one kept.
    """
    records = []
    ids = list(remote_ids)
    if not ids:
        return records
    with store.transaction() as db:
        history = []
        for remote_id in ids:
            record = store.last_record(remote_id)
            record["fields"] = record["fields"] or {}
            row = _local_rows(db, [remote_id]).get(remote_id, {})
            edits = {n: v for n, v in row.items() if not same(v, record["fields"].get(n))}
            if edits:
                record["local_edits"] = edits
                history.extend((now, remote_id, n, _history_value(record["fields"].get(n)), _history_value(v),
                                "local (not pushed: deleted in Solar Proof)", run_id) for n, v in sorted(edits.items()))
            records.append(record | {"pkcustomerid": remote_id})
        db.executemany(
            DELETED_CUSTOMER_UPSERT,
            [(r["pkcustomerid"], now, run_id, r["fields"].get("customeremail"), r["fields"].get("customerfirstname"),
              r["fields"].get("customersurname"), to_json(r)) for r in records],
        )
        db.executemany(_HISTORY_INSERT, history)
        db.executemany("DELETE FROM customers WHERE pkcustomerid=?", [(i,) for i in ids])
        forget_sent(db, ids)
        # Cascades to notes, projects and payloads.
        db.executemany("DELETE FROM customer_base WHERE pkcustomerid=?", [(i,) for i in ids])
        db.executemany(_HISTORY_INSERT, [(now, r["pkcustomerid"], "(deleted)", r["fields"].get("customeremail"),
                                          None, "remote", run_id) for r in records])
    return records


def adopt_found(store: Store, local_id: int, sent: Mapping[str, Any], change: RemoteChange, policy: str,
                run_id: str, now: str) -> list[tuple[int, str]] | None:
    """Tie the row of an unconfirmed create to the customer a complete walk proved it made.

    The merge base is what the create SENT, not the row as it is now: a correction typed after
    the POST is kept and pushed as an update, a change Solar Proof made since is pulled, and
    both on one field is a conflict. Returns the conflicts, or None if the row is no longer
    waiting (deleted, or already tied), in which case nothing was written.
    """
    names = [n for n in FIELDS if n != "pkcustomerid"]
    with store.transaction() as db:
        row = db.execute(f"SELECT {', '.join(names)} FROM customers WHERE id=? AND pkcustomerid IS NULL",
                         (local_id,)).fetchone()
        if row is None:
            return None
        local = dict(zip(names, row))
        db.execute("UPDATE customers SET pkcustomerid=?, sync_error=NULL WHERE id=?", (change.remote_id, local_id))
        db.execute(_BASE_UPSERT, _base_row(change, now))
        db.execute(_RAW_UPSERT, (change.remote_id, PayloadCodec(db).compress(change.pulled.raw_text), None, now))
        _replace_children(db, [change.pulled.customer])
        merge = merge_fields({n: sent.get(n) for n in names}, local, change.fields, names, policy)
        if merge.to_local:
            pulled = sorted(merge.to_local)
            db.execute(f"UPDATE customers SET {', '.join(f'{n}=?' for n in pulled)} WHERE id=?",
                       (*(merge.to_local[n] for n in pulled), local_id))
        db.executemany(_HISTORY_INSERT, [(now, change.remote_id, name, _history_value(l), _history_value(r),
                                          "local overridden (remote_wins)", run_id)
                                         for name, (l, r) in merge.overridden.items()])
        db.execute(_HISTORY_INSERT, (now, change.remote_id, "(created)", None, change.fields.get("customeremail"),
                                     "local (adopted)", run_id))
        db.execute("DELETE FROM create_intents WHERE local_id=?", (local_id,))
        if merge.conflicts:
            record_conflicts(db, change.remote_id, merge.conflicts, now)
        else:
            settle_state(db, local_id)
    return [(change.remote_id, name) for name in merge.conflicts]
