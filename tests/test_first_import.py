"""A first import builds its indexes, link triggers and search index once, at the end.

What must hold whatever the speed: a file that finished a first import has exactly the schema a
new file has (every index and trigger, the same text), every note and project points at its
customer's row, search works; and a first import that stopped half-way leaves a file the next
sync finishes before anything else.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from conftest import API_KEY, FailingFromPage, FakeClock
from mirror.commands.sync import sync_once
from mirror.config import load_settings
from mirror.errors import IncompleteWalkError
from mirror.exit_codes import EXIT_OK
from mirror.simulator.server import SimulatorServer
from mirror.store import Store
from mirror.sync.pull import PullOptions, run_pull

CUSTOMERS = 240


@pytest.fixture(scope="module")
def server():
    with SimulatorServer(customers=CUSTOMERS, seed=11, api_key=API_KEY) as sim:
        yield sim


def settings_for(sim: SimulatorServer, db: Path):
    return load_settings(env={"SPMIRROR_API_URL": sim.url, "SPMIRROR_API_KEY": sim.api_key,
                              "SPMIRROR_DB": str(db), "SPMIRROR_API_MAX_IN_FLIGHT": "1"})


def schema_objects(db: Path) -> set[tuple[str, str, str]]:
    with sqlite3.connect(db) as con:
        return set(con.execute("SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') "
                               "AND sql IS NOT NULL"))


def fresh_schema(tmp_path: Path) -> set[tuple[str, str, str]]:
    path = tmp_path / "fresh.db"
    Store.open(path).close()
    return schema_objects(path)


def unlinked_children(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return sum(con.execute(
            f"SELECT count(*) FROM {child} AS x WHERE x.customer_row IS NOT "
            f"(SELECT c.id FROM customers c WHERE c.pkcustomerid = x.pkcustomerid)").fetchone()[0]
            for child in ("customer_notes", "customer_projects"))


def deferred(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT fts_deferred FROM sync_control").fetchone()[0]


def search(db: Path, word: str) -> set[int]:
    with sqlite3.connect(db) as con:
        return {row[0] for row in con.execute(
            "SELECT c.pkcustomerid FROM customers_fts f JOIN customers c ON c.id = f.rowid "
            "WHERE customers_fts MATCH ?", (word,))}


def test_a_finished_first_import_has_the_schema_of_a_new_file(server, tmp_path):
    db = tmp_path / "mirror.db"
    code, report = sync_once(settings_for(server, db))
    assert code == EXIT_OK and report.created == CUSTOMERS
    assert schema_objects(db) == fresh_schema(tmp_path)
    assert deferred(db) == 0
    with sqlite3.connect(db) as con:
        notes, projects = (con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                           for t in ("customer_notes", "customer_projects"))
        remote_id, surname = con.execute("SELECT pkcustomerid, customersurname FROM customers "
                                         "WHERE customersurname IS NOT NULL ORDER BY id LIMIT 1").fetchone()
    assert notes > 0 and projects > 0 and unlinked_children(db) == 0
    assert remote_id in search(db, f'"{surname}"')


def test_a_first_import_stopped_half_way_is_finished_by_the_next_sync(server, tmp_path):
    db = tmp_path / "mirror.db"
    clock = FakeClock()
    store = Store.open(db)
    try:
        with FailingFromPage(server.url, server.api_key, server=server, fail_from=3, sleep=clock.sleep,
                             clock=clock) as client:
            with pytest.raises(IncompleteWalkError):
                # A batch per page, so the two pages that arrived are written before page 3 fails.
                run_pull(store, client, PullOptions(max_in_flight=1, batch_records=1), run_id="stopped",
                         now=lambda: "2026-12-01T00:00:00Z")
    finally:
        server.faults.reset()
        store.close()
    # Two pages are in and the rest of the work is owed: the file says so, and lacks the indexes.
    assert deferred(db) == 1
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*) FROM customers").fetchone()[0] == 100
    assert schema_objects(db) < fresh_schema(tmp_path)
    # A person's edit meanwhile is still captured: the capture triggers never go away.
    with sqlite3.connect(db) as con:
        con.execute("UPDATE customers SET customerphone2 = '0400 000 001' WHERE id = 1")
        assert con.execute("SELECT sync_state FROM customers WHERE id = 1").fetchone()[0] == "pending"
    code, _report = sync_once(settings_for(server, db))
    assert code == EXIT_OK
    assert schema_objects(db) == fresh_schema(tmp_path) and deferred(db) == 0
    assert unlinked_children(db) == 0
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*) FROM customers").fetchone()[0] == CUSTOMERS
        assert con.execute("SELECT count(*) FROM customers_fts").fetchone()[0] == CUSTOMERS
        assert con.execute("SELECT customerphone2 FROM customers WHERE id = 1").fetchone()[0] == "0400 000 001"
