"""The mirror file itself: pragmas, schema version, refusing foreign files, and upgrades in place."""

from __future__ import annotations

import gc
import os
import sqlite3
import stat
from pathlib import Path

import pytest

import mirror.store
from mirror.schema import MIGRATIONS, SCHEMA_VERSION
from mirror.store import Store, StoreError


def pragma(path, name: str):
    con = sqlite3.connect(path)
    try:
        return con.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        con.close()


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


def test_new_database_has_the_documented_tables_view_and_lookups(tmp_path):
    """A new file has the customer tables, the FTS index, the labeled view and the status/type rows."""
    path = tmp_path / "mirror.db"
    Store.open(path).close()
    con = sqlite3.connect(path)
    names = {row[0] for row in con.execute("SELECT name FROM sqlite_master")}
    assert {"customers", "customer_base", "customer_raw", "customer_notes", "customer_projects", "users",
            "customer_changes", "deleted_customers", "sync_runs", "rejected_records", "customers_fts",
            "customers_labeled", "customer_statuses", "customer_types"} <= names
    assert con.execute("SELECT id, label FROM customer_statuses ORDER BY id").fetchall() == [
        (0, "No Status Set"), (1, "New Contacts"), (2, "Signed"), (3, "Mega Status")]
    assert con.execute("SELECT id, write_word FROM customer_types ORDER BY id").fetchall() == [
        (1, "RESIDENTIAL"), (2, "COMMERCIAL"), (3, "LARGE-SCALE")]


def test_reopening_keeps_data_and_version(tmp_path):
    """Opening an existing current file changes nothing: rows and version stay."""
    path = tmp_path / "mirror.db"
    Store.open(path).close()
    con = sqlite3.connect(path)
    con.execute("INSERT INTO customers (customerfirstname, customersurname) VALUES ('Ada', 'Lovelace')")
    con.commit()
    con.close()
    with Store.open(path) as store:
        assert store.count_customers() == 1 and store.schema_version == SCHEMA_VERSION


def test_a_newer_schema_is_refused_with_a_clear_message(tmp_path):
    """A file stamped with a version above SCHEMA_VERSION raises StoreError saying to upgrade spmirror."""
    path = tmp_path / "future.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    con.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    with pytest.raises(StoreError) as raised:
        Store.open(path)
    message = str(raised.value)
    assert f"schema version {SCHEMA_VERSION + 1}" in message and "upgrade spmirror" in message
    assert str(path) in message
    assert pragma(path, "user_version") == SCHEMA_VERSION + 1  # left untouched


def test_a_non_sqlite_file_is_refused(tmp_path):
    """A file that is not SQLite raises StoreError naming the file, and is not overwritten."""
    path = tmp_path / "notes.txt"
    content = b"these are my notes, not a database\n" * 200
    path.write_bytes(content)
    with pytest.raises(StoreError, match="not a usable SQLite database") as raised:
        Store.open(path)
    assert str(path) in str(raised.value)
    assert path.read_bytes() == content


def test_an_unversioned_sqlite_file_with_a_customers_table_is_refused(tmp_path):
    """Another program's database that happens to have a customers table is not adopted."""
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (name TEXT)")
    con.execute("INSERT INTO customers VALUES ('x')")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="no spmirror schema version"):
        Store.open(path)
    assert pragma(path, "user_version") == 0


def _current_file_with_rows(path) -> None:
    Store.open(path).close()
    con = sqlite3.connect(path)
    con.executemany("INSERT INTO customers (customerfirstname, customersurname) VALUES (?, ?)",
                    [("Ada", "Lovelace"), ("Alan", "Turing")])
    con.commit()
    con.close()


V1_DUMP = Path(__file__).parent / "fixtures" / "mirror-v1.sql"


def _columns(path) -> dict[str, list[tuple]]:
    con = sqlite3.connect(path)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                            "AND name NOT LIKE 'customers_fts%' ORDER BY name")]
        return {t: [(r[1], r[2].upper(), r[3], r[4], r[5]) for r in con.execute(f"PRAGMA table_info({t})")]
                for t in tables}
    finally:
        con.close()


def test_a_file_made_by_schema_version_1_upgrades_with_its_pending_edits(tmp_path):
    """A real version-1 file (a synced mirror with a pending edit and a pending INSERT) upgrades to the current
    schema: every row, edit and search entry kept, and the same tables and columns as a new file."""
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.executescript(V1_DUMP.read_text())
    before = con.execute("SELECT * FROM customers ORDER BY id").fetchall()
    con.close()
    assert pragma(path, "user_version") == 1
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
    con = sqlite3.connect(path)
    assert con.execute("SELECT * FROM customers ORDER BY id").fetchall() == before
    assert con.execute("SELECT id, pkcustomerid, sync_state FROM customers WHERE sync_state='pending' ORDER BY id"
                       ).fetchall() == [(1, 70001, "pending"), (6, None, "pending")]
    assert con.execute("SELECT rowid FROM customers_fts WHERE customers_fts MATCH 'vera'").fetchall() == [(6,)]
    con.close()
    Store.open(tmp_path / "new.db").close()
    assert _columns(path) == _columns(tmp_path / "new.db")


def test_an_older_file_is_upgraded_in_place(tmp_path, monkeypatch):
    """A current file with rows gets the next version's migration: same rows, the new column, the new version."""
    path = tmp_path / "mirror.db"
    _current_file_with_rows(path)
    monkeypatch.setattr(mirror.store, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setattr(mirror.store, "MIGRATIONS", (*MIGRATIONS, ("ALTER TABLE customers ADD COLUMN test_extra TEXT",)))
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION + 1
    con = sqlite3.connect(path)
    columns = [row[1] for row in con.execute("PRAGMA table_info(customers)")]
    assert "test_extra" in columns
    assert con.execute("SELECT customersurname, test_extra FROM customers ORDER BY id").fetchall() == [
        ("Lovelace", None), ("Turing", None)]
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    # The search index still follows the rows after the upgrade.
    con.execute("UPDATE customers SET customersurname = 'Hopper' WHERE customerfirstname = 'Alan'")
    con.commit()
    assert con.execute("SELECT rowid FROM customers_fts WHERE customers_fts MATCH 'Hopper'").fetchall() == [(2,)]


def test_upgrades_run_every_step_in_order(tmp_path, monkeypatch):
    """Two pending versions run both steps, in order, ending at the newest version."""
    path = tmp_path / "mirror.db"
    _current_file_with_rows(path)
    monkeypatch.setattr(mirror.store, "SCHEMA_VERSION", SCHEMA_VERSION + 2)
    monkeypatch.setattr(mirror.store, "MIGRATIONS", (
        *MIGRATIONS,
        ("CREATE TABLE step_log (step INTEGER)", "INSERT INTO step_log VALUES (1)"),
        ("INSERT INTO step_log VALUES (2)",),
    ))
    Store.open(path).close()
    con = sqlite3.connect(path)
    assert con.execute("SELECT step FROM step_log ORDER BY rowid").fetchall() == [(1,), (2,)]
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 2
    assert con.execute("SELECT count(*) FROM customers").fetchone() == (2,)


def test_a_failing_migration_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    """A step that fails rolls back whole: StoreError, old version, rows intact, no half-added column."""
    path = tmp_path / "mirror.db"
    _current_file_with_rows(path)
    monkeypatch.setattr(mirror.store, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setattr(mirror.store, "MIGRATIONS", (*MIGRATIONS, (
        "ALTER TABLE customers ADD COLUMN test_extra TEXT",
        "INSERT INTO no_such_table VALUES (1)",
    )))
    with pytest.raises(StoreError):
        Store.open(path)
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert "test_extra" not in [row[1] for row in con.execute("PRAGMA table_info(customers)")]
    assert con.execute("SELECT count(*) FROM customers").fetchone() == (2,)


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
