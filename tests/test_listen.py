"""The daemon's view of a PostgreSQL mirror (mirror/store/postgres/listen.py, reading.py): a
person's edit wakes it through LISTEN, the daemon's own writes never do, and status reads a
mirror read-only or says what is wrong with it.

A person's edits run in another process (mirror_db.edit: psycopg, autocommit), as from psql or a
GUI; the daemon's writes go through Store.transaction(), as the daemon's do. Where a test must
show that something did NOT wake the watch, a witness session LISTENing beside it sends a
sentinel NOTIFY after it: notifications arrive in commit order, so once the sentinel is in, the
witness has seen everything the earlier commit sent (nothing, for the daemon's write). The watch
is then given a short window (QUIET) to show it was not woken either.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid

import psycopg
import pytest

from mirror.store import Store
from mirror.store.errors import OlderSchema, StoreError
from mirror.store.location import Location
from mirror.store.postgres.capture import CHANNEL
from mirror.store.postgres.listen import ListenWatch
from mirror.store.postgres.reading import open_for_reading
from backends import open_mirror_database

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)

# Holds a person's write on customers open until the test says to commit (a psql session, a GUI).
_HOLDER = r"""
import psycopg, sys
with psycopg.connect(sys.argv[1]) as con:
    con.execute("UPDATE customers SET customerphone2 = '0400 000 321' WHERE id = 1")
    print("holding", flush=True)
    sys.stdin.readline()
    con.commit()
"""


@pytest.fixture
def mirror(mirror_db):
    """A PostgreSQL mirror (Store.open made its schema) with two customers a person added."""
    Store.open(mirror_db.url).close()
    mirror_db.edit("INSERT INTO customers (customerfirstname, customersurname) VALUES ('Ann', 'Lee')",
                   "INSERT INTO customers (customerfirstname, customersurname) VALUES ('Bo', 'Ng')")
    yield mirror_db


@pytest.fixture
def watch(mirror):
    watch = ListenWatch(Location.parse(mirror.url), timeout=0.5)
    watch.data_version()  # listening from here on
    yield watch
    watch.close()


class Witness:
    """A plain LISTEN session beside the watch: what the server sent on the channel, in commit order.

    Other tests' mirrors may share the database (and the channel) meanwhile; `ours` keeps to this one.
    """

    def __init__(self, url: str, schema: str):
        self.url, self.schema = url, schema
        self.con = psycopg.connect(url, autocommit=True)
        self.con.execute(f"LISTEN {CHANNEL}")

    def until_now(self) -> list[str]:
        """The payloads sent since the last call: a sentinel NOTIFY is sent now, and everything that
        earlier commits sent arrives before it."""
        token = f"sentinel-{uuid.uuid4().hex}"  # no schema's name: the watch takes it for no edit
        with psycopg.connect(self.url, autocommit=True) as con:
            con.execute("SELECT pg_notify(%s, %s)", (CHANNEL, token))
        seen: list[str] = []
        for notification in self.con.notifies(timeout=10):
            if notification.payload == token:
                return seen
            seen.append(notification.payload)
        pytest.fail("the sentinel NOTIFY did not arrive within 10 s")

    def ours(self) -> int:
        """How many notifications of this mirror's edits were sent since the last look."""
        return sum(payload == self.schema for payload in self.until_now())

    def close(self) -> None:
        self.con.close()


@pytest.fixture
def witness(mirror, watch):
    witness = Witness(mirror.url, mirror.schema)
    yield witness
    witness.close()


# A negative answer needs a window: the witness has seen that nothing was sent, and the watch's own
# session is given this long to show that it was not woken either.
QUIET = 0.5


def test_a_persons_edit_wakes_the_watch_within_a_second(mirror, watch):
    """An UPDATE a person commits in another process ends watch.wait() at once (well under a
    second after the commit), changes data_version, and the row is in pending_work. Another
    mirror's notification on the shared channel, which comes first, does not end the wait."""
    before = watch.data_version()
    woken: list[float] = []
    waiter = threading.Thread(target=lambda: woken.append(time.time()) if watch.wait(10) else None)
    waiter.start()
    with psycopg.connect(mirror.url, autocommit=True) as con:
        con.execute("SELECT pg_notify(%s, 'another_schema')", (CHANNEL,))
    committed = float(subprocess.run(
        [sys.executable, "-c", "import psycopg, sys, time\n"
         "with psycopg.connect(sys.argv[1], autocommit=True) as c:\n"
         "    c.execute(\"UPDATE customers SET customerphone2 = '0411 111 111' WHERE customerfirstname = 'Ann'\")\n"
         "    print(time.time())", mirror.url], check=True, capture_output=True, text=True).stdout)
    waiter.join(10)
    assert woken, "the person's edit did not wake the watch within 10 s"
    latency = woken[0] - committed
    print(f"edit committed -> watch woken: {latency * 1000:.1f} ms")
    assert latency < 1.0
    assert watch.data_version() != before
    ann = mirror.scalar("SELECT id FROM customers WHERE customerfirstname = 'Ann'")
    assert ann in {item.local_id for item in watch.pending_work() if item.kind == "row"}


def test_the_daemons_own_write_does_not_wake_the_watch(mirror, watch, witness):
    """A write inside store.transaction() (the daemon's, marked by SET LOCAL spmirror.writing)
    sends no notification, so the watch stays asleep and data_version stays; the same statements
    by a person send one and wake it."""
    before = watch.data_version()
    witness.until_now()
    with Store.open(mirror.url) as store:
        with store.transaction() as db:
            db.execute("UPDATE customers SET customerphone2 = '0400 999 999', sync_state = 'synced'")
            db.execute("INSERT INTO customers (customerfirstname) VALUES ('Cy')")
            db.execute("DELETE FROM customers WHERE customerfirstname = 'Cy'")
    assert witness.ours() == 0
    assert watch.wait(QUIET) is False
    assert watch.data_version() == before
    mirror.edit("UPDATE customers SET customerphone2 = '0400 888 888'")
    assert witness.ours() == 1
    assert watch.wait(10) is True
    assert watch.data_version() == before + 1


def test_a_burst_of_edits_is_one_wake_up(mirror, watch, witness):
    """Many statements committed before the watch looks are taken in one wait()."""
    before = watch.data_version()
    witness.until_now()
    mirror.edit(*[f"UPDATE customers SET customerphone2 = '0400 000 {n:03d}'" for n in range(20)])
    assert witness.ours() == 20
    assert watch.wait(10) is True
    assert watch.wait(QUIET) is False  # nothing of the burst was left for a second wake-up
    assert watch.data_version() == before + 1


def test_an_edit_of_a_mirror_in_another_schema_does_not_wake_this_one(mirror, watch, witness, tmp_path):
    """Two mirrors in one database share the channel; the payload (the edited schema) keeps them apart."""
    before = watch.data_version()
    with open_mirror_database("postgres", tmp_path) as other:
        Store.open(other.url).close()
        witness.until_now()
        other.edit("INSERT INTO customers (customerfirstname) VALUES ('Dee')")
        assert other.schema in witness.until_now()
        assert watch.wait(QUIET) is False
        assert watch.data_version() == before


def test_write_lock_free_is_false_while_a_person_holds_a_write_open(mirror, watch):
    """A transaction that wrote customers and has not committed makes write_lock_free() False
    (after waiting at most the watch's timeout); after its commit it is True again."""
    assert watch.write_lock_free() is True
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, mirror.url], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        started = time.monotonic()
        assert watch.write_lock_free() is False
        assert time.monotonic() - started < 5
        watch.pending_work()  # reads never wait for a writer
    finally:
        holder.stdin.write("\n")
        holder.stdin.close()
        assert holder.wait(30) == 0
    assert watch.write_lock_free() is True


def test_pending_work_lists_pending_rows_and_local_deletes(mirror, watch):
    """The same work items as the SQLite watch: each pending row (its content in the item), and a
    customer with a base but no row."""
    items = watch.pending_work()
    assert {i.kind for i in items} == {"row"} and len(items) == 2
    mirror.edit("UPDATE customers SET customerphone2 = '0499 000 000' WHERE customerfirstname = 'Ann'")
    changed = watch.pending_work()
    assert len(changed) == 2 and changed != items  # an edited row is a new item
    with Store.open(mirror.url) as store, store.transaction() as db:
        db.execute("INSERT INTO customer_base (pkcustomerid, raw_hash, content_hash, last_seen_at) "
                   "VALUES (777, 'r', 'c', '2024-01-01T00:00:00Z')")
    assert any(i.kind == "deleted" and i.remote_id == 777 for i in watch.pending_work())


# -- reading read-only (status) ---------------------------------------------------------------


def test_reading_an_empty_schema_says_it_holds_no_mirror_yet(mirror_db):
    with pytest.raises(StoreError, match="holds no mirror yet"):
        with open_for_reading(Location.parse(mirror_db.url)):
            pass


def test_reading_is_read_only_and_says_which_versions_it_cannot_read(mirror):
    """A current mirror opens, and nothing can be written through it; a newer version says
    'upgrade spmirror'; an older one raises OlderSchema (status then upgrades it)."""
    location = Location.parse(mirror.url)
    with open_for_reading(location) as db:
        assert db.execute("SELECT count(*) FROM customers").fetchone()[0] == 2
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            db.execute("DELETE FROM customers")
    assert mirror.scalar("SELECT count(*) FROM customers") == 2
    current = mirror.scalar("SELECT version FROM spmirror_schema")
    mirror.edit(f"UPDATE spmirror_schema SET version = {current + 1}")
    with pytest.raises(StoreError, match="upgrade spmirror"):
        with open_for_reading(location):
            pass
    mirror.edit(f"UPDATE spmirror_schema SET version = {current - 1}")
    with pytest.raises(OlderSchema):
        with open_for_reading(location):
            pass
