"""The mirror database itself: schema version, refusing foreign databases, upgrades in place, and rows
linked to their customer; on both backends, plus what only a SQLite file has (pragmas, WAL, file
mode, the SQLite schema's own migrations from real version-1 and version-2 files)."""

from __future__ import annotations

import gc
import os
import sqlite3
import stat
from pathlib import Path

import pytest

import mirror.store.sqlite.connection
import mirror.store.sqlite.schema
from mirror.store.sqlite.schema import MIGRATIONS, SCHEMA_VERSION
from mirror.store import Store, StoreError

sqlite_only = pytest.mark.sqlite_only


def pragma(path, name: str):
    con = sqlite3.connect(path)
    try:
        return con.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        con.close()


def stamped_version(mirror_db) -> int:
    """The schema version the database records, read as any client would (not through the Store)."""
    if mirror_db.kind == "sqlite":
        return mirror_db.scalar("PRAGMA user_version")
    if not mirror_db.has_table("spmirror_schema"):
        return 0
    return mirror_db.scalar("SELECT version FROM spmirror_schema")


def test_new_database_is_stamped_with_the_current_version(mirror_db):
    """A new mirror is stamped SCHEMA_VERSION, where other clients see it, and holds no customer."""
    with Store.open(mirror_db.url) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.count_customers() == 0
    assert stamped_version(mirror_db) == SCHEMA_VERSION


@sqlite_only(reason="PRAGMAs, WAL and the file's mode are SQLite's")
def test_new_database_gets_version_wal_and_foreign_keys(tmp_path):
    """A new file is stamped SCHEMA_VERSION, uses WAL, and the store's connection enforces foreign keys."""
    path = tmp_path / "sub" / "mirror.db"
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.count_customers() == 0
    assert pragma(path, "user_version") == SCHEMA_VERSION
    assert pragma(path, "journal_mode") == "wal"  # persistent in the file, seen by other clients
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_new_database_has_the_documented_tables_view_and_lookups(mirror_db):
    """A new mirror has the customer tables, the labeled view, the search index (SQLite: customers_fts) and the
    status/type rows."""
    Store.open(mirror_db.url).close()
    names = mirror_db.table_names()
    assert {"customers", "customer_base", "customer_raw", "customer_notes", "customer_projects", "users",
            "customer_changes", "deleted_customers", "sync_runs", "rejected_records", "customers_labeled",
            "customer_statuses", "customer_types", "customer_conflicts", "create_intents", "unconfirmed_writes",
            "webhook_subscriptions"} <= names
    if mirror_db.kind == "sqlite":
        assert "customers_fts" in names
    assert [tuple(r.values()) for r in mirror_db.query("SELECT id, label FROM customer_statuses ORDER BY id")] == [
        (0, "No Status Set"), (1, "New Contacts"), (2, "Signed"), (3, "Mega Status")]
    assert [tuple(r.values()) for r in mirror_db.query("SELECT id, write_word FROM customer_types ORDER BY id")] == [
        (1, "RESIDENTIAL"), (2, "COMMERCIAL"), (3, "LARGE-SCALE")]


def test_reopening_keeps_data_and_version(mirror_db):
    """Opening an existing current mirror changes nothing: rows and version stay."""
    Store.open(mirror_db.url).close()
    mirror_db.edit("INSERT INTO customers (customerfirstname, customersurname) VALUES ('Ada', 'Lovelace')")
    with Store.open(mirror_db.url) as store:
        assert store.count_customers() == 1 and store.schema_version == SCHEMA_VERSION
    assert mirror_db.scalar("SELECT customersurname FROM customers") == "Lovelace"


def test_a_newer_schema_is_refused_with_a_clear_message(mirror_db):
    """A database stamped with a version above SCHEMA_VERSION raises StoreError saying to upgrade spmirror."""
    future = SCHEMA_VERSION + 1
    if mirror_db.kind == "sqlite":
        mirror_db.edit("CREATE TABLE customers (id INTEGER PRIMARY KEY)", f"PRAGMA user_version={future}")
    else:
        mirror_db.edit("CREATE TABLE customers (id INTEGER PRIMARY KEY)",
                       "CREATE TABLE spmirror_schema (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)",
                       f"INSERT INTO spmirror_schema (id, version) VALUES (1, {future})")
    with pytest.raises(StoreError) as raised:
        Store.open(mirror_db.url)
    message = str(raised.value)
    assert f"schema version {future}" in message and "upgrade spmirror" in message
    where = mirror_db.url if mirror_db.kind == "sqlite" else mirror_db.url.split("?")[0]
    assert where in message
    assert stamped_version(mirror_db) == future  # left untouched


@sqlite_only(reason="a file of another format is a SQLite matter")
def test_a_non_sqlite_file_is_refused(tmp_path):
    """A file that is not SQLite raises StoreError naming the file, and is not overwritten."""
    path = tmp_path / "notes.txt"
    content = b"these are my notes, not a database\n" * 200
    path.write_bytes(content)
    with pytest.raises(StoreError, match="not a usable SQLite database") as raised:
        Store.open(path)
    assert str(path) in str(raised.value)
    assert path.read_bytes() == content


def test_an_unversioned_database_with_a_customers_table_is_refused(mirror_db):
    """Another program's database that happens to have a customers table is not adopted, nor changed."""
    mirror_db.edit("CREATE TABLE customers (name TEXT)", "INSERT INTO customers VALUES ('x')")
    with pytest.raises(StoreError, match="no spmirror schema version"):
        Store.open(mirror_db.url)
    assert stamped_version(mirror_db) == 0
    assert mirror_db.table_names() == {"customers"}
    assert mirror_db.query("SELECT * FROM customers") == [{"name": "x"}]


FIXTURES = Path(__file__).parent / "fixtures"
V1_DUMP = FIXTURES / "mirror-v1.sql"
V2_DUMP = FIXTURES / "mirror-v2.sql"


def _schema(path) -> dict[str, object]:
    """Everything about a file's schema that a new and an upgraded file must share: each table's
    columns, foreign keys and indexes, the triggers (by their SQL, spaces aside), views and the
    search index's declaration."""
    con = sqlite3.connect(path)
    try:
        master = con.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
        tables = sorted(name for kind, name, _t, sql in master
                        if kind == "table" and not name.startswith("customers_fts"))
        schema: dict[str, object] = {}
        for table in tables:
            schema[f"columns {table}"] = [(r[1], r[2].upper(), r[3], r[4], r[5])
                                          for r in con.execute(f"PRAGMA table_info({table})")]
            schema[f"foreign keys {table}"] = sorted(tuple(r[2:]) for r in
                                                     con.execute(f"PRAGMA foreign_key_list({table})"))
            schema[f"indexes {table}"] = sorted(
                (r[1], r[2], r[3], tuple(c[2] for c in con.execute(f"PRAGMA index_info('{r[1]}')")))
                for r in con.execute(f"PRAGMA index_list({table})"))
        for kind in ("trigger", "view"):
            schema[kind] = {name: " ".join(sql.split()) for k, name, _t, sql in master if k == kind}
        schema["search"] = [" ".join(sql.split()) for _k, name, _t, sql in master if name == "customers_fts"]
        return schema
    finally:
        con.close()


def _load(dump: Path, path) -> None:
    con = sqlite3.connect(path)
    con.executescript(dump.read_text())
    con.close()


def _assert_same_schema_as_a_new_file(path, tmp_path) -> None:
    new = tmp_path / "new.db"
    Store.open(new).close()
    upgraded, made = _schema(path), _schema(new)
    assert upgraded.keys() == made.keys()
    for key in made:
        assert upgraded[key] == made[key], key
    assert 'content="customers"' in made["search"][0]  # the form Datasette recognises


@sqlite_only(reason="a real version-1 SQLite file; PostgreSQL starts at the current version")
def test_a_file_made_by_schema_version_1_upgrades_with_its_pending_edits(tmp_path):
    """A real version-1 file (a synced mirror with a pending edit and a pending INSERT) upgrades to the current
    schema: every row, note, edit and search entry kept, and the same tables, columns, keys, indexes, triggers and
    search index as a new file."""
    path = tmp_path / "old.db"
    _load(V1_DUMP, path)
    con = sqlite3.connect(path)
    before = con.execute("SELECT * FROM customers ORDER BY id").fetchall()
    notes = con.execute("SELECT id, pkcustomerid, noted_at, note FROM customer_notes ORDER BY id").fetchall()
    con.close()
    assert pragma(path, "user_version") == 1
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
    con = sqlite3.connect(path)
    assert con.execute("SELECT * FROM customers ORDER BY id").fetchall() == before
    assert con.execute("SELECT id, pkcustomerid, sync_state FROM customers WHERE sync_state='pending' ORDER BY id"
                       ).fetchall() == [(1, 70001, "pending"), (6, None, "pending")]
    assert con.execute("SELECT rowid FROM customers_fts WHERE customers_fts MATCH 'vera'").fetchall() == [(6,)]
    assert con.execute("SELECT id, pkcustomerid, noted_at, note FROM customer_notes ORDER BY id").fetchall() == notes
    assert con.execute("SELECT count(*) FROM customer_notes n JOIN customers c ON c.id = n.customer_row "
                       "AND c.pkcustomerid = n.pkcustomerid").fetchone()[0] == len(notes)
    con.close()
    _assert_same_schema_as_a_new_file(path, tmp_path)


@sqlite_only(reason="a real version-2 SQLite file; PostgreSQL starts at the current version")
def test_a_file_made_by_schema_version_2_upgrades_with_its_edits_history_and_search(tmp_path):
    """A real version-2 file (synced, with remote changes in history, a pushed edit not yet confirmed, a pending
    edit and a pending INSERT) upgrades with every row kept: history and sent values come back as the integers
    they were, text stays text, notes, projects and history point at their customer's row, the search index
    answers, and the schema is a new file's."""
    path = tmp_path / "v2.db"
    _load(V2_DUMP, path)
    con = sqlite3.connect(path)
    customers = con.execute("SELECT * FROM customers ORDER BY id").fetchall()
    history = con.execute("SELECT id, changed_at, pkcustomerid, field, source, run_id FROM customer_changes "
                          "ORDER BY id").fetchall()
    notes = con.execute("SELECT id, pkcustomerid, noted_at, note FROM customer_notes ORDER BY id").fetchall()
    projects = con.execute("SELECT project_id, pkcustomerid, title FROM customer_projects ORDER BY 1").fetchall()
    base = con.execute("SELECT * FROM customer_base ORDER BY pkcustomerid").fetchall()
    con.close()
    assert pragma(path, "user_version") == 2
    Store.open(path).close()
    con = sqlite3.connect(path)
    assert con.execute("SELECT * FROM customers ORDER BY id").fetchall() == customers
    assert con.execute("SELECT * FROM customer_base ORDER BY pkcustomerid").fetchall() == base
    assert con.execute("SELECT id, pkcustomerid, sync_state FROM customers WHERE sync_state != 'synced' ORDER BY id"
                       ).fetchall() == [(1, 70001, "pending"), (6, None, "pending")]
    assert con.execute("SELECT id, changed_at, pkcustomerid, field, source, run_id FROM customer_changes "
                       "ORDER BY id").fetchall() == history
    typed = {(r[0], r[1]): r[2:] for r in con.execute(
        "SELECT pkcustomerid, field, old_value, typeof(old_value), new_value, typeof(new_value) "
        "FROM customer_changes")}
    assert typed[(70002, "fkcustomerstatusid")] == (1, "integer", 3, "integer")
    assert typed[(70003, "fkcustomertypeid")] == (1, "integer", 2, "integer")
    assert typed[(70003, "customergstregistered")] == (0, "integer", 1, "integer")
    assert typed[(70005, "fkcustomertypeid")] == (1, "integer", 3, "integer")
    assert typed[(70003, "customerphone2")] == ("0419 738 485", "text", "0400 222 333", "text")
    assert typed[(70002, "customer_status_text")] == ("New Contacts", "text", "Mega Status", "text")
    assert typed[(70005, "customercompanyname")] == (None, "null", "Leota Solar", "text")
    assert con.execute("SELECT field, sent_value, typeof(sent_value) FROM unconfirmed_writes WHERE pkcustomerid = "
                       "70005 ORDER BY field").fetchall() == [("customercompanyname", "Leota Solar", "text"),
                                                              ("fkcustomertypeid", 3, "integer")]
    assert con.execute("SELECT id, pkcustomerid, noted_at, note FROM customer_notes ORDER BY id").fetchall() == notes
    assert con.execute("SELECT project_id, pkcustomerid, title FROM customer_projects ORDER BY 1").fetchall() == projects
    for child in ("customer_notes", "customer_projects", "customer_changes"):
        assert con.execute(f"SELECT count(*) FROM {child} x LEFT JOIN customers c ON c.pkcustomerid = x.pkcustomerid "
                           f"WHERE x.customer_row IS NOT c.id").fetchone()[0] == 0, child
    assert con.execute("SELECT count(*) FROM customer_notes WHERE customer_row IS NOT NULL").fetchone()[0] == len(notes)
    for word, rows in (("vera", [(6,)]), ("diallo", [(3,)]), ("banksia", [(5,)])):
        assert con.execute("SELECT rowid FROM customers_fts WHERE customers_fts MATCH ?", (word,)).fetchall() == rows
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()
    _assert_same_schema_as_a_new_file(path, tmp_path)


@sqlite_only(reason="follows the SQLite version-2 upgrade")
def test_an_upgraded_file_keeps_working(tmp_path):
    """After the upgrade from version 2 the triggers work: `SET x = x` leaves a row synced, a real edit marks it
    pending and is found by search, and a deleted row's notes stay, unlinked."""
    path = tmp_path / "v2.db"
    _load(V2_DUMP, path)
    Store.open(path).close()
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("UPDATE customers SET customersurname = customersurname, fkcustomertypeid = '2' WHERE id = 2")
    assert con.execute("SELECT sync_state FROM customers WHERE id = 2").fetchone() == ("synced",)
    con.execute("UPDATE customers SET customersurname = 'Quokka' WHERE id = 2")
    assert con.execute("SELECT sync_state FROM customers WHERE id = 2").fetchone() == ("pending",)
    assert con.execute("SELECT rowid FROM customers_fts WHERE customers_fts MATCH 'quokka'").fetchall() == [(2,)]
    con.execute("DELETE FROM customers WHERE id = 4")
    assert con.execute("SELECT count(*), count(customer_row) FROM customer_notes WHERE pkcustomerid = 70004"
                       ).fetchone() == (2, 0)
    con.close()


def pending_migrations(monkeypatch, kind: str, *steps: tuple[str, ...]) -> int:
    """Make this spmirror `len(steps)` versions newer than the database, `steps` being its backend's
    migrations to those versions; returns the new version."""
    newer = SCHEMA_VERSION + len(steps)
    if kind == "sqlite":
        monkeypatch.setattr(mirror.store.sqlite.connection, "SCHEMA_VERSION", newer)
        monkeypatch.setattr(mirror.store.sqlite.schema, "MIGRATIONS", (*MIGRATIONS, *steps))
    else:
        import mirror.store.postgres.schema as postgres_schema

        monkeypatch.setattr(postgres_schema, "SCHEMA_VERSION", newer)
        monkeypatch.setattr(postgres_schema, "STEPS", {SCHEMA_VERSION + i: step for i, step in enumerate(steps)})
    return newer


def current_database_with_rows(mirror_db) -> None:
    Store.open(mirror_db.url).close()
    mirror_db.edit("INSERT INTO customers (customerfirstname, customersurname) VALUES ('Ada', 'Lovelace')",
                   "INSERT INTO customers (customerfirstname, customersurname) VALUES ('Alan', 'Turing')")


def test_an_older_database_is_upgraded_in_place(mirror_db, monkeypatch):
    """A current database with rows gets the next version's migration: same rows, the new column, the new
    version, and the search index still follows the rows."""
    current_database_with_rows(mirror_db)
    newer = pending_migrations(monkeypatch, mirror_db.kind, ("ALTER TABLE customers ADD COLUMN test_extra TEXT",))
    with Store.open(mirror_db.url) as store:
        assert store.schema_version == newer
    assert "test_extra" in mirror_db.column_types("customers")
    assert [(r["customersurname"], r["test_extra"]) for r in mirror_db.query(
        "SELECT customersurname, test_extra FROM customers ORDER BY id")] == [("Lovelace", None), ("Turing", None)]
    assert stamped_version(mirror_db) == newer
    mirror_db.edit("UPDATE customers SET customersurname = 'Hopper' WHERE customerfirstname = 'Alan'")
    alan = mirror_db.scalar("SELECT id FROM customers WHERE customerfirstname = 'Alan'")
    assert mirror_db.search("Hopper") == {alan}


def test_upgrades_run_every_step_in_order(mirror_db, monkeypatch):
    """Two pending versions run both steps, in order, ending at the newest version."""
    current_database_with_rows(mirror_db)
    newer = pending_migrations(monkeypatch, mirror_db.kind,
                               ("CREATE TABLE step_log (n INTEGER PRIMARY KEY, step INTEGER)",
                                "INSERT INTO step_log (n, step) VALUES (1, 1)"),
                               ("INSERT INTO step_log (n, step) SELECT max(n) + 1, 2 FROM step_log",))
    Store.open(mirror_db.url).close()
    assert [r["step"] for r in mirror_db.query("SELECT step FROM step_log ORDER BY n")] == [1, 2]
    assert stamped_version(mirror_db) == newer
    assert mirror_db.scalar("SELECT count(*) FROM customers") == 2


def test_a_failing_migration_leaves_the_database_as_it_was(mirror_db, monkeypatch):
    """A step that fails rolls back whole: StoreError, old version, rows intact, no half-added column."""
    current_database_with_rows(mirror_db)
    pending_migrations(monkeypatch, mirror_db.kind, ("ALTER TABLE customers ADD COLUMN test_extra TEXT",
                                                     "INSERT INTO no_such_table VALUES (1)"))
    with pytest.raises(StoreError):
        Store.open(mirror_db.url)
    assert stamped_version(mirror_db) == SCHEMA_VERSION
    assert "test_extra" not in mirror_db.column_types("customers")
    assert mirror_db.scalar("SELECT count(*) FROM customers") == 2


def _open_files_under(directory) -> list[str]:
    fd_dir = "/proc/self/fd"
    found = []
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory)):
            found.append(target)
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
@sqlite_only(reason="file descriptors on the SQLite file and its WAL")
def test_a_refused_file_is_not_left_open(tmp_path):
    """After Store.open refuses a file, no file descriptor on it (or its WAL companions) stays open."""
    path = tmp_path / "future.db"
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    was_enabled = gc.isenabled()
    gc.disable()  # only reference counting: what a long-running process can rely on between collections
    try:
        try:
            Store.open(path)
        except StoreError:
            pass
        assert _open_files_under(tmp_path) == []
    finally:
        if was_enabled:
            gc.enable()
        gc.collect()


@sqlite_only(reason="the journal mode is SQLite's")
def test_a_refused_foreign_database_keeps_its_journal_mode(tmp_path):
    """Refusing another program's database leaves it as it was, including its rollback-journal mode."""
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (name TEXT)")
    con.commit()
    con.close()
    assert pragma(path, "journal_mode") == "delete"
    with pytest.raises(StoreError):
        Store.open(path)
    gc.collect()
    assert pragma(path, "journal_mode") == "delete"


# -- notes, projects and history linked to the customer's row ---------------------------------


@pytest.fixture
def synced(mirror_db):
    """A mirror synced from a simulator on 127.0.0.1, with remote changes in history: (sim, db, sync)."""
    from conftest import API_KEY
    from mirror.commands.sync import sync_once
    from mirror.config import load_settings
    from mirror.simulator.server import SimulatorServer

    with SimulatorServer(customers=12, seed=29, api_key=API_KEY) as sim:
        settings = load_settings(env={"SPMIRROR_API_URL": sim.url, "SPMIRROR_API_KEY": API_KEY,
                                      "SPMIRROR_DB": mirror_db.url})

        def sync() -> int:
            return sync_once(settings)[0]

        assert sync() == 0
        for remote_id in sim.account.ids():
            sim.account.edit_customer(remote_id, phone2="0400 000 999")
        assert sync() == 0
        yield sim, mirror_db, sync


_CHILD_ORDER = {"customer_notes": "id", "customer_projects": "project_id", "customer_changes": "id"}


def _links(db, remote_id: int) -> dict[str, list]:
    """customer_row of each note, project and history row of a customer."""
    return {child: [r["customer_row"] for r in db.query(f"SELECT customer_row FROM {child} WHERE pkcustomerid = ? "
                                                         f"ORDER BY {key}", (remote_id,))]
            for child, key in _CHILD_ORDER.items()}


def _row_id(db, remote_id: int):
    return db.scalar("SELECT id FROM customers WHERE pkcustomerid = ?", (remote_id,))


def _foreign_keys_hold(db) -> bool:
    """No row points at a customer row that is not there (PostgreSQL enforces it on every client)."""
    if db.kind == "sqlite":
        return db.query("PRAGMA foreign_key_check") == []
    return all(db.scalar(f"SELECT count(*) FROM {child} x LEFT JOIN customers c ON c.id = x.customer_row "
                         f"WHERE x.customer_row IS NOT NULL AND c.id IS NULL") == 0 for child in _CHILD_ORDER)


def _deleted_row_comes_back_linked(synced, *client_setup: str) -> None:
    sim, db, sync = synced
    target = next(i for i in sim.account.ids() if sim.account.get(i)["notes"] and sim.account.get(i)["projects"])
    before = {child: len(rows) for child, rows in _links(db, target).items()}
    assert all(before.values()) and set(sum(_links(db, target).values(), [])) == {_row_id(db, target)}
    db.edit(*client_setup, f"DELETE FROM customers WHERE pkcustomerid = {target}")
    unlinked = _links(db, target)
    assert {child: len(rows) for child, rows in unlinked.items()} == before
    assert set(sum(unlinked.values(), [])) == {None}
    assert sync() == 0
    restored = _row_id(db, target)
    assert restored is not None
    linked = _links(db, target)
    assert len(linked["customer_notes"]) == before["customer_notes"]
    assert len(linked["customer_projects"]) == before["customer_projects"]
    assert len(linked["customer_changes"]) == before["customer_changes"] + 1  # (restored)
    assert set(sum(linked.values(), [])) == {restored}
    assert _foreign_keys_hold(db)


def test_a_customer_row_deleted_by_a_person_keeps_its_notes_and_history_and_is_linked_again(synced):
    """A person deletes a customer's row from a client that enforces foreign keys (PostgreSQL, DB Browser): its
    notes, projects and history stay, unlinked; the sync restores the row and they point at it again."""
    _deleted_row_comes_back_linked(synced, *(["PRAGMA foreign_keys=ON"] if synced[1].kind == "sqlite" else []))


@sqlite_only(reason="only a SQLite client can write without enforcing foreign keys")
def test_a_customer_row_deleted_without_foreign_keys_keeps_its_notes_and_is_linked_again(synced):
    """The same from a client that does not enforce foreign keys (the sqlite3 shell's default)."""
    _deleted_row_comes_back_linked(synced, "PRAGMA foreign_keys=OFF")


def test_a_remote_delete_keeps_every_history_row_and_nothing_blocks_the_sync(synced):
    """A customer deleted in Solar Proof leaves the mirror without an error from the foreign key: every history row
    stays (unlinked, plus the (deleted) row), and its notes are kept in deleted_customers."""
    import json

    sim, db, sync = synced
    target = next(i for i in sim.account.ids() if sim.account.get(i)["notes"])
    notes = [n["note"] for n in sim.account.get(target)["notes"]]
    history = len(_links(db, target)["customer_changes"])
    sim.account.delete_customer(target)
    assert sync() == 0
    assert sync() == 0
    assert _row_id(db, target) is None
    links = _links(db, target)
    assert links["customer_notes"] == [] and links["customer_projects"] == []
    assert links["customer_changes"] == [None] * (history + 1)
    record = json.loads(db.scalar("SELECT last_record_json FROM deleted_customers WHERE pkcustomerid = ?", (target,)))
    assert [n["note"] for n in record["notes"]] == notes
    assert _foreign_keys_hold(db)
