"""PostgreSQL's own half of the schema: the version table, PL/pgSQL capture, tsvector search, and
that the tables people see are the same as SQLite's. (The conformance suite runs the rest.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import mirror.store.postgres.schema as postgres_schema
from backends import open_mirror_database, postgres_server, sql_text
from mirror.store import Store, StoreError, StoreUnreachable
from mirror.store.schema_version import SCHEMA_VERSION

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


@pytest.fixture
def pg(backend, tmp_path):
    with open_mirror_database("postgres", tmp_path) as database:
        yield database


def _columns(database, table: str) -> list[str]:
    return list(database.column_types(table))


def test_the_same_tables_columns_and_views_as_sqlite(pg, tmp_path):
    """What people query is the same on both: every table and view of a SQLite mirror, with the
    same columns in the same order, exists in the PostgreSQL one."""
    Store.open(pg.url).close()
    with open_mirror_database("sqlite", tmp_path) as lite:
        Store.open(lite.url).close()
        shared = {name for name in lite.table_names() if not name.startswith(("customers_fts", "sqlite_"))}
        shared -= {"sync_control"}  # SQLite's trigger switches; PostgreSQL uses SET LOCAL instead
        assert shared <= pg.table_names(), shared - pg.table_names()
        for table in sorted(shared | {"customers_labeled"}):
            assert _columns(pg, table) == _columns(lite, table), table
    assert "customers_fts" in pg.table_names() and "spmirror_schema" in pg.table_names()


def test_a_new_schema_records_its_version(pg):
    with Store.open(pg.url) as store:
        assert store.schema_version == SCHEMA_VERSION
    assert pg.query("SELECT version FROM spmirror_schema")[0]["version"] == SCHEMA_VERSION


def test_a_newer_schema_is_refused_and_left_alone(pg):
    Store.open(pg.url).close()
    pg.edit(f"UPDATE spmirror_schema SET version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer than this spmirror"):
        Store.open(pg.url)
    assert pg.query("SELECT version FROM spmirror_schema")[0]["version"] == SCHEMA_VERSION + 1


def test_a_customers_table_that_is_not_a_mirror_is_refused(pg):
    pg.edit("CREATE TABLE customers (id integer primary key, name text)")
    with pytest.raises(StoreError, match="has a customers table but no spmirror schema version"):
        Store.open(pg.url)
    assert "spmirror_schema" not in pg.table_names()


def test_the_version_table_drives_an_upgrade_once(pg, monkeypatch):
    """The next version's step runs once, in its transaction with the new version stamp; opening
    the upgraded schema again changes nothing."""
    Store.open(pg.url).close()
    pg.edit("INSERT INTO customers (customerfirstname, sync_state) VALUES ('Kept', 'synced')")
    monkeypatch.setattr(postgres_schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setattr(postgres_schema, "STEPS",
                        {SCHEMA_VERSION: ("ALTER TABLE customers ADD COLUMN test_extra TEXT",)})
    for _ in range(2):
        Store.open(pg.url).close()
    assert pg.query("SELECT version FROM spmirror_schema")[0]["version"] == SCHEMA_VERSION + 1
    assert "test_extra" in pg.column_types("customers")
    assert [r["customerfirstname"] for r in pg.query("SELECT customerfirstname FROM customers")] == ["Kept"]


def test_two_processes_creating_the_schema_at_once_make_one(pg):
    """A daemon and its standby starting together: one creates, the other finds it made."""
    program = "import sys; from mirror.store import Store; Store.open(sys.argv[1]).close()"
    runs = [subprocess.Popen([sys.executable, "-c", program, pg.url], stderr=subprocess.PIPE, text=True)
            for _ in range(3)]
    for run in runs:
        assert run.wait(timeout=60) == 0, run.stderr.read()
    assert pg.query("SELECT count(*) AS n FROM spmirror_schema")[0]["n"] == 1
    assert pg.query("SELECT count(*) AS n FROM customer_statuses")[0]["n"] > 0


# -- capture -------------------------------------------------------------------------------------


def _synced_customer(store: Store, remote_id: int, **fields) -> None:
    """A customer as a pull leaves it: base and row equal, 'synced' (written as the daemon)."""
    columns = {"pkcustomerid": remote_id, "customerfirstname": "Ada", "customersurname": "Lovelace",
               "customeremail": f"ada{remote_id}@example.com", **fields}
    names = ", ".join(columns)
    marks = ", ".join("?" * len(columns))
    with store.transaction() as db:
        db.execute(f"INSERT INTO customer_base ({names}, content_hash, raw_hash, last_seen_at) "
                   f"VALUES ({marks}, 'h', 'r', 'now')", tuple(columns.values()))
        db.execute(f"INSERT INTO customers ({names}, sync_state) VALUES ({marks}, 'synced')", tuple(columns.values()))


def _state(pg, remote_id: int) -> str:
    return pg.query("SELECT sync_state FROM customers WHERE pkcustomerid = ?", (remote_id,))[0]["sync_state"]


def test_a_persons_edit_is_captured_and_the_daemons_is_not(pg):
    with Store.open(pg.url) as store:
        _synced_customer(store, 501)
        _synced_customer(store, 502)
        with store.transaction() as db:  # the daemon writing a pulled change
            db.execute("UPDATE customers SET customersurname = 'Byron' WHERE pkcustomerid = 501")
        assert _state(pg, 501) == "synced"
    pg.edit("UPDATE customers SET customersurname = 'King' WHERE pkcustomerid = 502")
    assert _state(pg, 502) == "pending"


def test_an_edit_that_changes_nothing_leaves_the_row_synced(pg):
    with Store.open(pg.url) as store:
        _synced_customer(store, 503)
    pg.edit("UPDATE customers SET customerfirstname = customerfirstname, customeremail = customeremail "
            "WHERE pkcustomerid = 503")
    assert _state(pg, 503) == "synced"


def test_a_row_in_conflict_stays_in_conflict_until_a_person_changes_its_state(pg):
    with Store.open(pg.url) as store:
        _synced_customer(store, 504)
        with store.transaction() as db:
            db.execute("UPDATE customers SET sync_state = 'conflict' WHERE pkcustomerid = 504")
    pg.edit("UPDATE customers SET customersurname = 'Other' WHERE pkcustomerid = 504")
    assert _state(pg, 504) == "conflict"


def test_solar_proofs_id_cannot_be_changed_by_a_person(pg):
    with Store.open(pg.url) as store:
        _synced_customer(store, 505)
    with pytest.raises(subprocess.CalledProcessError) as refused:
        pg.edit("UPDATE customers SET pkcustomerid = 999 WHERE pkcustomerid = 505")
    assert "pkcustomerid is Solar Proof's id for this customer and cannot be changed" in refused.value.stderr
    assert pg.query("SELECT count(*) AS n FROM customers WHERE pkcustomerid = 505")[0]["n"] == 1


def test_a_row_a_person_inserts_is_pending_and_searchable(pg):
    Store.open(pg.url).close()
    pg.edit("INSERT INTO customers (customerfirstname, customersurname, customeremail) "
            f"VALUES ('Grace', 'Hopper', {sql_text('grace@example.com')})")
    row = pg.query("SELECT id, sync_state FROM customers WHERE customersurname = 'Hopper'")[0]
    assert row["sync_state"] == "pending"
    assert pg.search("hopper") == {row["id"]}
    pg.edit("UPDATE customers SET customersurname = 'Brewster' WHERE customersurname = 'Hopper'")
    assert pg.search("hopper") == set() and pg.search("brewster") == {row["id"]}
    pg.edit("DELETE FROM customers WHERE customersurname = 'Brewster'")
    assert pg.query("SELECT count(*) AS n FROM customers_fts")[0]["n"] == 0


# -- where the mirror lives ----------------------------------------------------------------------


def test_a_schema_the_url_names_is_made_on_first_use_and_every_session_agrees_on_it(backend):
    """`options=-csearch_path=NAME` for a schema that does not exist yet: the first connection of
    any kind makes it, so the daemon's lock (keyed by schema) is the same before and after."""
    import psycopg

    from mirror.store import run_lock
    from mirror.store.errors import LockBusy

    server = postgres_server()
    name = f"spmt_new_{os.getpid()}"
    url = f"{server.url}?options=-csearch_path%3D{name}"
    admin = psycopg.connect(server.url, autocommit=True)
    try:
        first = run_lock(url, "spmirror run")
        first.acquire()  # before any table exists
        try:
            Store.open(url).close()
            second = run_lock(url, "spmirror run")
            with pytest.raises(LockBusy):
                second.acquire()
        finally:
            first.release()
        assert admin.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (name,)).fetchone()[0] == 1
    finally:
        admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        admin.close()


def test_a_database_that_does_not_exist_is_a_configuration_error(backend):
    server = postgres_server()
    url = server.url.rsplit("/", 1)[0] + "/spmt_no_such_database"
    with pytest.raises(StoreError, match="PostgreSQL refused the connection .*does not exist.*check the database") as caught:
        Store.open(url)
    assert not isinstance(caught.value, StoreUnreachable)


def test_a_row_inserted_with_its_own_id_does_not_block_the_daemons_next_insert(pg):
    """A CSV restored with its id column: the id sequence catches up, so the rows the daemon
    adds next (a pull's new customers) do not collide with it."""
    with Store.open(pg.url) as store:
        pg.edit("INSERT INTO customers (id, customerfirstname) VALUES (40, 'Restored')")
        _synced_customer(store, 601)  # the daemon's INSERT, through the sequence
    assert [r["id"] for r in pg.query("SELECT id FROM customers ORDER BY id")] == [40, 41]


def test_a_mixed_case_schema_name_is_read_as_postgresql_reads_it(backend):
    """options=-csearch_path=MirrorA names the schema mirrora (unquoted names fold to lower case):
    that is the one made and used."""
    import psycopg

    server = postgres_server()
    name = f"Spmt_Mixed_{os.getpid()}"
    url = f"{server.url}?options=-csearch_path%3D{name}"
    admin = psycopg.connect(server.url, autocommit=True)
    try:
        Store.open(url).close()
        made = admin.execute("SELECT nspname FROM pg_namespace WHERE lower(nspname) = lower(%s)", (name,)).fetchall()
        assert made == [(name.lower(),)]
    finally:
        admin.execute(f'DROP SCHEMA IF EXISTS "{name.lower()}" CASCADE')
        admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        admin.close()


# -- transactions ---------------------------------------------------------------------------------


def test_a_write_transaction_inside_another_is_refused_as_on_sqlite(pg):
    """A BEGIN inside a transaction only warns on PostgreSQL, and the inner COMMIT would commit
    the outer work early: refused, and the outer transaction still rolls back whole."""
    with Store.open(pg.url) as store:
        with pytest.raises(StoreError, match="already open"):
            with store.transaction() as db:
                db.execute("INSERT INTO customers (customerfirstname, sync_state) VALUES ('Outer', 'synced')")
                with store.transaction():
                    pass
        assert pg.query("SELECT count(*) AS n FROM customers")[0]["n"] == 0
        with store.transaction() as db:  # the session is usable again
            db.execute("INSERT INTO customers (customerfirstname, sync_state) VALUES ('After', 'synced')")
    assert pg.query("SELECT customerfirstname FROM customers")[0]["customerfirstname"] == "After"


def test_a_write_transaction_that_cannot_begin_leaves_the_session_usable(pg):
    """The table lock refused (another session holds customers): StoreBusy, and the next
    transaction on the same store works: no aborted transaction left behind."""
    import psycopg

    from mirror.store import StoreBusy

    Store.open(pg.url).close()
    holder = psycopg.connect(pg.url)  # a person's transaction left open
    holder.execute("LOCK TABLE customers IN ROW EXCLUSIVE MODE")
    try:
        with Store.open(pg.url, busy_timeout=0.2) as store:
            with pytest.raises(StoreBusy, match="pg_stat_activity"):
                with store.transaction():
                    pass
            holder.rollback()
            with store.transaction() as db:
                db.execute("INSERT INTO customers (customerfirstname, sync_state) VALUES ('Next', 'synced')")
    finally:
        holder.close()
    assert pg.query("SELECT count(*) AS n FROM customers")[0]["n"] == 1
