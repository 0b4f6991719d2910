"""Values sent to Solar Proof and not yet confirmed by a read (table unconfirmed_writes).

The API answers a write with success even when it ignores a field (the docs promise nothing,
and whether "" clears a field is not documented). So the base never takes a sent value on
trust for good: each one is recorded here, the customer's stored payload hash is cleared so
the next pull cannot skip it, and that pull (or a webhook fetch) compares what Solar Proof
returns with what was sent.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from mirror.merge import same
from mirror.customer import as_stored


def record_sent(db, remote_id: int, values: Mapping[str, Any], run_id: str, now: str) -> None:
    """Inside the caller's transaction: these values went to Solar Proof for this customer (each
    kept as the customer column held it, so a message names the integer 2, not '2')."""
    db.executemany(
        "INSERT INTO unconfirmed_writes (pkcustomerid, field, sent_value, sent_at, run_id) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT(pkcustomerid, field) DO UPDATE SET sent_value=excluded.sent_value, sent_at=excluded.sent_at, "
        "run_id=excluded.run_id",
        [(remote_id, name, as_stored(value), now, run_id) for name, value in values.items()],
    )
    # The listing's text may not change at all (an ignored field): never skip this record unread.
    db.execute("UPDATE customer_base SET raw_hash='', content_hash='' WHERE pkcustomerid=?", (remote_id,))


def check_sent(db, seen: Iterable[tuple[int, Mapping[str, Any], frozenset[str]]]) -> dict[int, dict[str, tuple]]:
    """Compare sent values with customers as just read: (remote_id, fields, fields the read carried).

    Returns, per customer, the fields Solar Proof did not take: field -> (sent, what it holds).
    Every compared value leaves unconfirmed_writes (confirmed, or reported once).
    """
    seen = list(seen)
    waiting: dict[int, list[tuple[str, Any]]] = {}
    if seen:  # the table holds only recent writes: reading it whole is cheaper than a query per customer
        for remote_id, name, sent in db.execute("SELECT pkcustomerid, field, sent_value FROM unconfirmed_writes"):
            waiting.setdefault(remote_id, []).append((name, sent))
    not_taken: dict[int, dict[str, tuple]] = {}
    settled: list[tuple[int, str]] = []
    for remote_id, fields, carried in seen:
        for name, sent in waiting.get(remote_id, ()):
            if name not in carried:
                continue  # this read does not show the field: a later one will
            if not same(sent, fields.get(name)):
                not_taken.setdefault(remote_id, {})[name] = (sent, fields.get(name))
            settled.append((remote_id, name))
    db.executemany("DELETE FROM unconfirmed_writes WHERE pkcustomerid=? AND field=?", settled)
    return not_taken


def waiting_ids(db) -> set[int]:
    """Customers with a sent value no read has confirmed yet."""
    return {row[0] for row in db.execute("SELECT DISTINCT pkcustomerid FROM unconfirmed_writes")}


def settle_confirmed(db, remote_ids: Iterable[int], fields: Iterable[str]) -> None:
    """Rows left 'pending' only to wait for a read of what was sent: once nothing sent waits any
    more and the row equals what Solar Proof holds (its base), they are 'synced'."""
    equal = " AND ".join(f"c.{name} {db.same} b.{name}" for name in fields)
    db.executemany(
        f"UPDATE customers SET sync_state='synced', sync_error=NULL WHERE pkcustomerid=? AND sync_state='pending' "
        f"AND NOT EXISTS (SELECT 1 FROM unconfirmed_writes u WHERE u.pkcustomerid = customers.pkcustomerid) "
        f"AND EXISTS (SELECT 1 FROM customers c JOIN customer_base b ON b.pkcustomerid = c.pkcustomerid "
        f"WHERE c.id = customers.id AND {equal})",
        [(remote_id,) for remote_id in remote_ids])


def forget_sent(db, remote_ids: Iterable[int]) -> None:
    """The customers are gone: nothing left to confirm."""
    db.executemany("DELETE FROM unconfirmed_writes WHERE pkcustomerid=?", [(i,) for i in remote_ids])
