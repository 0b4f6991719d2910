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


# -- notes, projects and history linked to the customer's row ---------------------------------


@pytest.fixture
def synced(tmp_path):
    """A mirror synced from a simulator on 127.0.0.1, with remote changes in history: (sim, db, sync)."""
    from conftest import API_KEY
    from mirror.commands.sync import sync_once
    from mirror.config import load_settings
    from mirror.simulator.server import SimulatorServer

    with SimulatorServer(customers=12, seed=29, api_key=API_KEY) as sim:
        db = tmp_path / "mirror.db"
        settings = load_settings(env={"SPMIRROR_API_URL": sim.url, "SPMIRROR_API_KEY": API_KEY,
                                      "SPMIRROR_DB": str(db)})

        def sync() -> int:
            return sync_once(settings)[0]

        assert sync() == 0
        for remote_id in sim.account.ids():
            sim.account.edit_customer(remote_id, phone2="0400 000 999")
        assert sync() == 0
        yield sim, db, sync


def _links(db, remote_id: int) -> dict[str, list]:
    """customer_row of each note, project and history row of a customer."""
    con = sqlite3.connect(db)
    try:
        return {child: [r[0] for r in con.execute(f"SELECT customer_row FROM {child} WHERE pkcustomerid = ? "
                                                   f"ORDER BY rowid", (remote_id,))]
                for child in ("customer_notes", "customer_projects", "customer_changes")}
    finally:
        con.close()


def _row_id(db, remote_id: int):
    con = sqlite3.connect(db)
    try:
        row = con.execute("SELECT id FROM customers WHERE pkcustomerid = ?", (remote_id,)).fetchone()
        return row[0] if row else None
    finally:
        con.close()


@pytest.mark.parametrize("foreign_keys", ["ON", "OFF"])
def test_a_customer_row_deleted_by_a_person_keeps_its_notes_and_history_and_is_linked_again(synced, foreign_keys):
    """A person deletes a customer's row, from a client that enforces foreign keys (DB Browser) or not (the sqlite3
    shell): its notes, projects and history stay, unlinked; the sync restores the row and they point at it again."""
    from sqlite_edit import edit

    sim, db, sync = synced
    target = next(i for i in sim.account.ids() if sim.account.get(i)["notes"] and sim.account.get(i)["projects"])
    before = {child: len(rows) for child, rows in _links(db, target).items()}
    assert all(before.values()) and set(sum(_links(db, target).values(), [])) == {_row_id(db, target)}
    edit(db, f"PRAGMA foreign_keys={foreign_keys}", f"DELETE FROM customers WHERE pkcustomerid = {target}")
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
    assert sqlite3.connect(db).execute("PRAGMA foreign_key_check").fetchall() == []


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
    con = sqlite3.connect(db)
    record = json.loads(con.execute("SELECT last_record_json FROM deleted_customers WHERE pkcustomerid = ?",
                                    (target,)).fetchone()[0])
    assert [n["note"] for n in record["notes"]] == notes
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    con.close()
