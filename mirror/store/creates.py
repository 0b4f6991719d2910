"""Creates in the mirror file: the intent committed before each POST, what it sent, and how a
row gets its customer (the create's answer, an adoption a walk proved, or a person's choice).

`create_intents` holds one row per create whose outcome is not settled yet; `sent_json` is the
evidence a found customer is judged against (mirror.sync.creates) and, once adopted, the base
of the row, so a correction typed after the POST is pushed as an update rather than reverted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from mirror.customer import WRITABLE_FIELDS, email_key
from mirror.customer import as_stored
from mirror.store import FIELDS, Store
from mirror.store.confirmations import record_sent

HISTORY = (
    "INSERT INTO customer_changes (changed_at, pkcustomerid, field, old_value, new_value, source, run_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class OpenIntent:
    """A create sent with no settled outcome, whose row is still waiting (pending, no id)."""

    local_id: int
    sent: Mapping[str, Any]
    sent_at: str
    acknowledged: bool  # Solar Proof said "created" but gave no id: never send it again
    walks: int  # complete walks since the POST that found no candidate


def sent_fields(writable: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical columns a create body carries (write_body leaves out an unknown type or GST)."""
    return {name: value for name, value in writable.items()
            if name in WRITABLE_FIELDS
            and not (value in (None, "") and name in ("fkcustomertypeid", "customergstregistered"))}


def record_create_intent(store: Store, local_id: int, sent: Mapping[str, Any], now: str) -> None:
    """Durably note what this row's create is about to send (committed before the POST)."""
    with store.transaction() as db:
        db.execute(
            "INSERT INTO create_intents (local_id, email, sent_at, complete_walks_since, sent_json, acknowledged) "
            "VALUES (?, ?, ?, 0, ?, 0) ON CONFLICT(local_id) DO UPDATE SET email=excluded.email, "
            "sent_at=excluded.sent_at, complete_walks_since=0, sent_json=excluded.sent_json, acknowledged=0",
            (local_id, sent.get("customeremail") or "", now, json.dumps(dict(sent), default=str)),
        )


def forget_create_intent(store: Store, local_id: int) -> None:
    with store.transaction() as db:
        db.execute("DELETE FROM create_intents WHERE local_id=?", (local_id,))


def note_unconfirmed(store: Store, local_id: int, message: str, acknowledged: bool = False) -> None:
    """Say on a pending row why it is still pending (a create whose answer was lost or had no id)."""
    with store.transaction() as db:
        db.execute("UPDATE customers SET sync_error=? WHERE id=?", (message, local_id))
        if acknowledged:
            db.execute("UPDATE create_intents SET acknowledged=1 WHERE local_id=?", (local_id,))


def open_intents(db) -> list[OpenIntent]:
    """Creates awaiting a walk's verdict. A row a person put in 'error' (or deleted) waits for them."""
    rows = db.execute(
        f"SELECT i.local_id, i.sent_json, i.sent_at, i.acknowledged, i.complete_walks_since, "
        f"{', '.join('c.' + name for name in WRITABLE_FIELDS)} FROM create_intents i "
        f"JOIN customers c ON c.id = i.local_id WHERE c.pkcustomerid IS NULL AND c.sync_state = 'pending' "
        f"AND i.needs_person = 0 ORDER BY i.local_id"
    ).fetchall()
    intents = []
    for row in rows:
        # An intent from before schema 2 has no record of what it sent: the row is the best evidence left.
        sent = json.loads(row[1]) if row[1] else sent_fields(dict(zip(WRITABLE_FIELDS, row[5:])))
        intents.append(OpenIntent(row[0], sent, row[2], bool(row[3]), row[4]))
    return intents


def waiting_emails(db) -> set[str]:
    """Emails (lower-cased) of open creates: a walk holds back new customers with these."""
    return {email_key(intent.sent.get("customeremail")) for intent in open_intents(db)}


def count_walk_for_intents(store: Store) -> None:
    """A complete walk ended: creates still open were not found by it."""
    with store.transaction() as db:
        db.execute("UPDATE create_intents SET complete_walks_since = complete_walks_since + 1 WHERE needs_person = 0")


def record_created(store: Store, local_id: int, remote_id: int, sent: Mapping[str, Any], how: str,
                   run_id: str, now: str) -> None:
    """Give a created row its new id, with a base of what was sent, and forget the intent.

    The base holds only the sent fields (the rest was not sent, so a value typed into a
    read-only column shows up as an unpushable edit rather than vanishing) and empty hashes;
    every sent value waits in unconfirmed_writes for the next pull to compare with what Solar
    Proof really stored. The row is 'synced' only if nobody edited it since the POST.
    """
    base = {name: sent.get(name) for name in FIELDS}
    base["pkcustomerid"] = remote_id
    with store.transaction() as db:
        db.execute(
            f"INSERT INTO customer_base ({', '.join(FIELDS)}, content_hash, raw_hash, last_seen_at) "
            f"VALUES ({', '.join('?' * len(FIELDS))}, '', '', ?) ON CONFLICT(pkcustomerid) DO NOTHING",
            (*(base[n] for n in FIELDS), now),
        )
        db.execute("UPDATE customers SET pkcustomerid=?, sync_error=NULL WHERE id=?", (remote_id, local_id))
        settle_state(db, local_id)
        db.execute("DELETE FROM create_intents WHERE local_id=?", (local_id,))
        record_sent(db, remote_id, sent, run_id, now)
        db.execute(HISTORY, (now, remote_id, "(created)", None, as_stored(sent.get("customeremail")), how, run_id))


def settle_state(db, local_id: int) -> None:
    """A row just tied to its customer: 'synced' when it equals its base, 'pending' when it holds
    edits still to push."""
    differs = " OR ".join(f"c.{n} {db.distinct} b.{n}" for n in FIELDS if n != "pkcustomerid")
    db.execute(
        f"UPDATE customers SET sync_state = CASE WHEN EXISTS (SELECT 1 FROM customers c JOIN customer_base b "
        f"ON b.pkcustomerid = c.pkcustomerid WHERE c.id = ? AND ({differs})) THEN 'pending' ELSE 'synced' END "
        f"WHERE id = ?", (local_id, local_id))


def flag_candidates(db, local_id: int, kind: str, remote_ids: tuple[int, ...], sent_at: str) -> str:
    """Leave a row whose create cannot be matched with certainty in 'error', naming the candidates."""
    shown = ", ".join(str(i) for i in remote_ids)
    if kind == "ambiguous":
        why = f"several customers equal what it sent ({shown})"
    elif kind == "near_miss":
        why = f"customers with its email differ from what it sent ({shown})"
    else:
        why = "Solar Proof answered that it was created, but no complete listing has shown it since"
    message = (f"the create sent {sent_at} got no usable answer, and {why}; nothing was guessed. "
               f"If one is this row's customer: spmirror resolve {local_id} --adopt PKCUSTOMERID; "
               f"if none is: spmirror resolve {local_id} --create-again")
    db.execute("UPDATE customers SET sync_state='error', sync_error=? WHERE id=?", (message, local_id))
    db.execute("UPDATE create_intents SET needs_person=1 WHERE local_id=?", (local_id,))
    return message


def adopt_by_hand(store: Store, local_id: int, remote_id: int, run_id: str, now: str) -> str:
    """A person says row `local_id` is customer `remote_id`: tie them, with the base of what the
    create sent, so the next sync merges three ways (their corrections pushed, Solar Proof's
    other changes pulled). Raises LookupError when that cannot be done safely."""
    with store.transaction() as db:
        _check_new_row(db, local_id, "--adopt")
        if db.execute("SELECT 1 FROM customer_base WHERE pkcustomerid=?", (remote_id,)).fetchone() is None:
            raise LookupError(f"customer {remote_id} is not in the mirror; run spmirror sync so the listing brings it, "
                              "then try again")
        holder = db.execute("SELECT id, sync_state FROM customers WHERE pkcustomerid=?", (remote_id,)).fetchone()
        if holder is not None and holder[1] != "synced":
            raise LookupError(f"customer {remote_id} is row {holder[0]}, which holds edits ({holder[1]}); settle "
                              "that row first")
        intent = db.execute("SELECT sent_json FROM create_intents WHERE local_id=?", (local_id,)).fetchone()
        current = dict(zip(WRITABLE_FIELDS, db.execute(
            f"SELECT {', '.join(WRITABLE_FIELDS)} FROM customers WHERE id=?", (local_id,)).fetchone()))
        sent = json.loads(intent[0]) if intent and intent[0] else sent_fields(current)
        if holder is not None:
            # The same customer, brought in as a row of its own by the walk: this row takes its place.
            db.execute("DELETE FROM customers WHERE id=?", (holder[0],))
        # The base is what the create sent and nothing else, as for a create answered with its id:
        # the next pull then brings what Solar Proof added (status, creation date) as remote changes.
        names = [n for n in FIELDS if n != "pkcustomerid"]
        db.execute(
            f"UPDATE customer_base SET {', '.join(f'{n}=?' for n in names)}, content_hash='', raw_hash='' "
            f"WHERE pkcustomerid=?", (*(sent.get(n) for n in names), remote_id))
        db.execute("UPDATE customers SET pkcustomerid=?, sync_state='pending', sync_error=NULL WHERE id=?",
                   (remote_id, local_id))
        db.execute("DELETE FROM create_intents WHERE local_id=?", (local_id,))
        db.execute(HISTORY, (now, remote_id, "(created)", None, as_stored(sent.get("customeremail")),
                             "local (adopted by hand)", run_id))
    return (f"row {local_id} is now customer {remote_id}; the next sync merges it with Solar Proof "
            "(your corrections pushed, their changes pulled)")


def create_again(store: Store, local_id: int) -> str:
    """A person says none of the candidates is this row's customer: send the create again."""
    with store.transaction() as db:
        _check_new_row(db, local_id, "--create-again")
        db.execute("DELETE FROM create_intents WHERE local_id=?", (local_id,))
        db.execute("UPDATE customers SET sync_state='pending', sync_error=NULL WHERE id=?", (local_id,))
    return f"row {local_id} is queued: the next sync creates it in Solar Proof"


def _check_new_row(db, local_id: int, option: str) -> None:
    row = db.execute("SELECT pkcustomerid FROM customers WHERE id=?", (local_id,)).fetchone()
    if row is None:
        raise LookupError(f"no row with id {local_id} in customers (for {option}, give the row's customers.id)")
    if row[0] is not None:
        raise LookupError(f"row {local_id} is customer {row[0]} already; {option} is for a new row (pkcustomerid NULL)")
