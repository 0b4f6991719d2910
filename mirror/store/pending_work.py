"""What a push could do now, as the daemon's watch reads it between runs (both backends: the
SQLite watch polls for it, the PostgreSQL one reads it when a NOTIFY wakes it)."""

from __future__ import annotations

from typing import NamedTuple

from mirror.store import FIELDS

# Rows a push would act on now: pending ones, except creates that were sent and wait for
# complete walks to settle them (mirror.sync.push: an intent, and either Solar Proof said it
# created it or fewer than two walks have looked). A push cannot settle those; a full sync can.
PENDING_ROWS = (
    f"SELECT c.id, c.pkcustomerid, {', '.join('c.' + name for name in FIELDS)} FROM customers c "
    "WHERE c.sync_state = 'pending' AND NOT (c.pkcustomerid IS NULL AND c.id IN "
    "(SELECT local_id FROM create_intents WHERE complete_walks_since < 2 OR acknowledged = 1 OR needs_person = 1))"
)
# Customers deleted locally (a base with no row): a push restores them, or deletes them remotely.
DELETED_ROWS = ("SELECT b.pkcustomerid FROM customer_base b WHERE NOT EXISTS "
                "(SELECT 1 FROM customers c WHERE c.pkcustomerid = b.pkcustomerid)")


class WorkItem(NamedTuple):
    """One thing a push could do: a pending row as it reads now, or a local delete.

    Two items are equal only if the row's values are: an edit of a row a push already tried
    is a new item, while the same row left as it was is the same item.
    """

    kind: str  # "row" or "deleted"
    local_id: int | None
    remote_id: int | None
    content: int  # hash of the row's customer columns (0 for a delete)
