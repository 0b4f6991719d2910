"""`sync_once` against a real simulator and a real mirror database (a SQLite file, a PostgreSQL schema):
what each sync writes, and what it must not."""

from __future__ import annotations

import io
import json
from contextlib import contextmanager

import pytest
import structlog

from backends import MirrorDatabase, open_mirror_database
from conftest import API_KEY, FailingFromPage, FakeClock, make_client
from mirror.api import SolarProofClient
from mirror.commands.sync import sync_once
from mirror.config import load_settings
from mirror.exit_codes import EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_USAGE
from mirror.logs import configure_logging
from mirror.simulator.server import SimulatorServer
from mirror.store import Store
from mirror.sync.pull import PullOptions, run_pull
from mirror.wire.page import split_json_array

CUSTOMERS = 200
SEED = 7
TYPE_WORDS = {1: "Residential", 2: "Commercial", 3: "Large-Scale"}
STATUS_WORDS = {0: "No Status Set", 1: "New Contacts", 2: "Signed", 3: "Mega Status"}
CONTACT_TIMES = ("mornings", "middays", "afternoons", "evenings")


# -- helpers ------------------------------------------------------------------------------


def settings_for(sim: SimulatorServer, db: MirrorDatabase, **env: str):
    """Settings for a sync of `sim` into `db`; extra SPMIRROR_* values as keyword arguments."""
    return load_settings(env={"SPMIRROR_API_URL": sim.url, "SPMIRROR_API_KEY": sim.api_key,
                              "SPMIRROR_DB": db.url, **env})


def mirror_ids(db: MirrorDatabase) -> set[int]:
    return {row["pkcustomerid"] for row in db.query("SELECT pkcustomerid FROM customers "
                                                    "WHERE pkcustomerid IS NOT NULL")}


def deleted_ids(db: MirrorDatabase) -> set[int]:
    return {row["pkcustomerid"] for row in db.query("SELECT pkcustomerid FROM deleted_customers")}


@contextmanager
def captured_events():
    """structlog events at every level (the suite's default config drops info) as dicts."""
    configure_logging(level="debug", json=True, stream=io.StringIO())
    try:
        with structlog.testing.capture_logs() as events:
            yield events
    finally:
        configure_logging(level="warning", json=True, stream=io.StringIO())


def address_line(site: dict) -> str:
    """'418 Murray Street, Perth WA 6000' from the simulator's address parts."""
    street = " ".join(p for p in (site["streetnum"], site["street"]) if p)
    locality = " ".join(p for p in (site["suburb"], site["state"], site["postcode"]) if p)
    return ", ".join(p for p in (street, locality) if p)


def project_line(site: dict) -> str:
    """getcustomerofproject's siteAddress format: '132 Mono Drive, Brisbane, QLD, 4321'."""
    street = " ".join(p for p in (site["streetnum"], site["street"]) if p)
    return ", ".join(p for p in (street, site["suburb"], site["state"], site["postcode"]) if p)


def expected_row(record: dict) -> dict:
    """The customers row a simulator record must become (no enrichment)."""
    projects = sorted(record["projects"], key=lambda p: p["project_id"])
    return {
        "pkcustomerid": record["id"],
        "customerfirstname": record["first_name"] or None,
        "customersurname": record["last_name"] or None,
        "customeremail": record["email"] or None,
        "customerphone1": record["phone1"] or None,
        "customerphone2": record["phone2"] or None,
        "customercompanyname": record["company_name"] or None,
        "customercompanyphone": record["company_phone"] or None,
        "customerabn": None,
        "fkcustomerstatusid": record["status"],
        "fkcustomertypeid": record["type"],
        "customergstregistered": record["gst"],
        "created_at": record["created"][:10],
        "customer_site_address": address_line(projects[0]["site_address"]) if projects else None,
        "best_contact_mornings": None,
        "best_contact_middays": None,
        "best_contact_afternoons": None,
        "best_contact_evenings": None,
        "customer_status_text": STATUS_WORDS[record["status"]],
        "customer_type_text": TYPE_WORDS[record["type"]],
        "sync_state": "synced",
        "sync_error": None,
    }


def customer_row(db: MirrorDatabase, remote_id: int) -> dict | None:
    rows = db.query("SELECT * FROM customers WHERE pkcustomerid = ?", (remote_id,))
    if not rows:
        return None
    rows[0].pop("id")
    return rows[0]


def find(records: list[dict], predicate) -> dict:
    return next(r for r in records if predicate(r))


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def server():
    """A fresh simulator of 200 customers for one test that changes it."""
    with SimulatorServer(customers=CUSTOMERS, seed=SEED, api_key=API_KEY) as sim:
        yield sim


@pytest.fixture
def db(mirror_db) -> MirrorDatabase:
    return mirror_db


@pytest.fixture(scope="module")
def synced(tmp_path_factory, backend):
    """One simulator that nobody changes, synced once into a module-wide database (read-only tests)."""
    with SimulatorServer(customers=CUSTOMERS, seed=SEED, api_key=API_KEY) as sim, \
            open_mirror_database(backend, tmp_path_factory.mktemp("synced")) as db:
        code, report = sync_once(settings_for(sim, db))
        yield sim, db, code, report


# -- the first sync -----------------------------------------------------------------------


def test_first_sync_mirrors_every_customer_with_canonical_values(synced):
    """Every simulator customer becomes one customers row whose columns equal the canonical values."""
    sim, db, code, report = synced
    assert code == EXIT_OK
    records = sim.account.snapshot()["customers"]
    assert mirror_ids(db) == {r["id"] for r in records}
    assert report.created == len(records) == CUSTOMERS
    for record in records:
        assert customer_row(db, record["id"]) == expected_row(record), record["id"]
    # Spot-check the value formats against the simulator's own `get`, independent of expected_row.
    with_project = find(records, lambda r: r["projects"])
    row = customer_row(db, with_project["id"])
    source = sim.account.get(with_project["id"])
    assert row["customeremail"] == source["email"]
    assert row["customerphone1"] == source["phone1"]  # as sent: no reformatting
    assert isinstance(row["fkcustomertypeid"], int) and isinstance(row["fkcustomerstatusid"], int)
    assert len(row["created_at"]) == 10 and row["created_at"] == source["created"].split(" ")[0]
    lowest = min(source["projects"], key=lambda p: p["project_id"])["site_address"]
    assert row["customer_site_address"] == (f"{lowest['streetnum']} {lowest['street']}, "
                                            f"{lowest['suburb']} {lowest['state']} {lowest['postcode']}")


INTEGER_COLUMNS = ("pkcustomerid", "fkcustomertypeid", "fkcustomerstatusid", "customergstregistered")


def test_first_sync_stores_values_as_integers(synced):
    """Ids, type, status and GST are stored as integers (SQLite: each value's type integer; PostgreSQL: integer
    columns), empty strings as NULL."""
    _sim, db, _code, _report = synced
    if db.kind == "sqlite":
        types = db.query("SELECT DISTINCT " + ", ".join(f"typeof({c}) AS {c}" for c in INTEGER_COLUMNS)
                         + " FROM customers")
        assert types == [{c: "integer" for c in INTEGER_COLUMNS}]
    else:
        declared = db.column_types("customers")
        assert {c: declared[c] for c in INTEGER_COLUMNS} == {c: "integer" for c in INTEGER_COLUMNS}
    assert all(type(r[c]) is int for r in db.query("SELECT * FROM customers") for c in INTEGER_COLUMNS)
    assert db.scalar("SELECT count(*) FROM customers WHERE customerphone2 = '' OR customercompanyname = ''") == 0


def test_first_sync_fills_notes(synced):
    """Every note of every customer is in customer_notes with its datetime and text."""
    sim, db, _code, _report = synced
    expected = sorted((r["id"], n["datetime"], n["note"]) for r in sim.account.snapshot()["customers"] for n in r["notes"])
    stored = sorted((r["pkcustomerid"], r["noted_at"], r["note"]) for r in db.query("SELECT * FROM customer_notes"))
    assert expected and stored == expected


def test_first_sync_fills_projects_with_float_sizes(synced):
    """Every project is in customer_projects, its address split, its system size a REAL number of kW."""
    sim, db, _code, _report = synced
    projects = {p["project_id"]: (r["id"], p) for r in sim.account.snapshot()["customers"] for p in r["projects"]}
    stored_type = "typeof(system_size_kw)" if db.kind == "sqlite" else "pg_typeof(system_size_kw)::text"
    rows = {r["project_id"]: r for r in db.query(f"SELECT *, {stored_type} AS size_type FROM customer_projects")}
    assert projects and set(rows) == set(projects)
    for project_id, (customer_id, project) in projects.items():
        row = rows[project_id]
        assert row["pkcustomerid"] == customer_id
        assert row["size_type"] == ("real" if db.kind == "sqlite" else "double precision")
        assert type(row["system_size_kw"]) is float
        assert row["system_size_kw"] == pytest.approx(float(project["system_size"].removesuffix("kW")))
        assert row["system_size_text"] == project["system_size"]
        assert row["suburb"] == project["site_address"]["suburb"]
        assert row["postcode"] == project["site_address"]["postcode"]
        assert row["site_address"] == address_line(project["site_address"])


def test_first_sync_fills_users_from_owners(synced):
    """Every owner of a customer is a users row with the user's details."""
    sim, db, _code, _report = synced
    snapshot = sim.account.snapshot()
    owners = {r["owner"] for r in snapshot["customers"]}
    users = {u["user_id"]: u for u in snapshot["users"]}
    rows = {r["user_id"]: r for r in db.query("SELECT * FROM users")}
    assert {int(o) for o in owners} <= set(rows)
    for owner in owners:
        assert rows[int(owner)]["first_name"] == users[owner]["first_name"]
        assert rows[int(owner)]["email"] == users[owner]["email"]


def test_first_sync_records_an_ok_run(synced):
    """The run is one sync_runs row: result ok, no error, counts of pages and creates."""
    _sim, db, _code, report = synced
    runs = db.query("SELECT * FROM sync_runs")
    assert len(runs) == 1
    run = runs[0]
    assert run["run_id"] == report.run_id
    assert run["result"] == "ok" and run["error"] is None and run["finished_at"]
    assert run["created"] == CUSTOMERS and run["pages"] == 5 and run["listed"] == CUSTOMERS
    assert run["deleted"] == 0 and run["rejected"] == 0


def test_first_sync_writes_no_history(synced):
    """The initial import is one summary, not a '(created)' history row per customer."""
    _sim, db, _code, _report = synced
    assert db.scalar("SELECT count(*) FROM customer_changes") == 0


def test_without_enrichment_abn_and_contact_times_stay_null(synced):
    """The list shape has no ABN or contact time, so those columns stay NULL even when Solar Proof knows them."""
    sim, db, _code, _report = synced
    records = sim.account.snapshot()["customers"]
    assert any(r["abn"] for r in records) and any(r["contact_time"] for r in records)
    assert db.scalar("SELECT count(*) FROM customers WHERE customerabn IS NOT NULL OR best_contact_mornings "
                      "IS NOT NULL OR best_contact_evenings IS NOT NULL") == 0
    assert db.scalar("SELECT count(*) FROM customer_raw WHERE project_customer_json IS NOT NULL") == 0
    assert sim.account.call_counts().get("getcustomerofproject", 0) == 0


def test_labeled_view_gives_words_and_owner(synced):
    """customers_labeled shows status, type and GST as words and the owner's name."""
    sim, db, _code, _report = synced
    snapshot = sim.account.snapshot()
    users = {u["user_id"]: u for u in snapshot["users"]}
    rows = {r["pkcustomerid"]: r for r in db.query("SELECT * FROM customers_labeled")}
    assert len(rows) == CUSTOMERS
    for record in snapshot["customers"]:
        row = rows[record["id"]]
        owner = users[record["owner"]]
        assert row["status_label"] == STATUS_WORDS[record["status"]]
        assert row["type_label"] == TYPE_WORDS[record["type"]]
        assert row["gst_label"] == ("GST Registered" if record["gst"] else "Not GST Registered")
        assert row["owner_name"] == f"{owner['first_name']} {owner['last_name']}"
        assert row["owner_email"] == owner["email"]


# -- later syncs: change detection ----------------------------------------------------------


def test_unchanged_account_costs_zero_row_writes(server, db):
    """A second sync of an unchanged account writes no row to customers or customer_base."""
    settings = settings_for(server, db)
    assert sync_once(settings)[0] == EXIT_OK
    db.count_writes("customers", "customer_base", "customer_notes", "customer_projects")
    code, report = sync_once(settings)
    assert code == EXIT_OK
    assert report.unchanged == CUSTOMERS and report.updated == report.created == 0
    for table in ("customers", "customer_base", "customer_notes", "customer_projects"):
        assert db.writes(table) == 0, table
    assert db.last_run()["result"] == "ok"


def test_remote_edit_updates_only_that_row_with_history(server, db):
    """An edit in Solar Proof updates that one row's changed fields, writes history and logs the fields."""
    settings = settings_for(server, db)
    sync_once(settings)
    target = server.account.ids()[42]
    before = {r["pkcustomerid"]: r for r in db.query("SELECT * FROM customers")}
    old = server.account.get(target)
    db.count_writes("customers")
    server.account.edit_customer(target, phone1="0499 000 111", last_name="Quokkaworth")
    with captured_events() as events:
        code, report = sync_once(settings)
    assert code == EXIT_OK and report.updated == 1
    assert db.writes("customers") == 1
    after = {r["pkcustomerid"]: r for r in db.query("SELECT * FROM customers")}
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {target}
    assert after[target]["customerphone1"] == "0499 000 111"
    assert after[target]["customersurname"] == "Quokkaworth"
    assert after[target]["sync_state"] == "synced"
    history = db.query("SELECT field, old_value, new_value, source, run_id FROM customer_changes "
                        "WHERE pkcustomerid = ? ORDER BY field", (target,))
    assert history == [
        {"field": "customerphone1", "old_value": old["phone1"], "new_value": "0499 000 111", "source": "remote",
         "run_id": report.run_id},
        {"field": "customersurname", "old_value": old["last_name"], "new_value": "Quokkaworth", "source": "remote",
         "run_id": report.run_id},
    ]
    assert db.scalar("SELECT count(*) FROM customer_changes") == 2
    updated = [e for e in events if e["event"] == "customer_updated"]
    assert len(updated) == 1 and updated[0]["remote_id"] == target
    assert updated[0]["fields"] == ["customerphone1", "customersurname"]
    finished = [e for e in events if e["event"] == "sync_finished"]
    assert len(finished) == 1 and finished[0]["updated"] == 1 and finished[0]["run_id"] == report.run_id


def test_remote_note_rewrites_notes_but_no_customer_row(server, db):
    """A note added in Solar Proof lands in customer_notes without writing the customers row."""
    settings = settings_for(server, db)
    sync_once(settings)
    target = server.account.ids()[7]
    db.count_writes("customers")
    server.account.add_note(target, "Asked for a battery quote.", when="2030-01-02 03:04:05")
    assert sync_once(settings)[0] == EXIT_OK
    assert db.writes("customers") == 0
    notes = db.query("SELECT noted_at, note FROM customer_notes WHERE pkcustomerid = ?", (target,))
    assert {"noted_at": "2030-01-02 03:04:05", "note": "Asked for a battery quote."} in notes
    assert len(notes) == len(server.account.get(target)["notes"])


def test_remote_create_adds_a_row_and_created_history(server, db):
    """A customer created in Solar Proof becomes a new synced row with a '(created)' history row."""
    settings = settings_for(server, db)
    sync_once(settings)
    new_id = server.account.create_customer(first_name="Wendy", last_name="Wombat", email="wendy@example.com.au",
                                            phone1="0400 123 456", type="Commercial")
    with captured_events() as events:
        code, report = sync_once(settings)
    assert code == EXIT_OK and report.created == 1
    row = customer_row(db, new_id)
    assert row["customerfirstname"] == "Wendy" and row["customersurname"] == "Wombat"
    assert row["customeremail"] == "wendy@example.com.au" and row["fkcustomertypeid"] == 2
    assert row["fkcustomerstatusid"] == 1 and row["sync_state"] == "synced"
    history = db.query("SELECT field, old_value, new_value, source FROM customer_changes WHERE pkcustomerid = ?",
                    (new_id,))
    assert history == [{"field": "(created)", "old_value": None, "new_value": "wendy@example.com.au",
                        "source": "remote"}]
    assert [e["remote_id"] for e in events if e["event"] == "customer_created"] == [new_id]
    assert len(mirror_ids(db)) == CUSTOMERS + 1


def test_site_address_comes_from_the_lowest_numbered_project(server, db):
    """With projects listed out of order, customer_site_address is the lowest project id's address, one line."""
    target = server.account.ids()[0]
    server.account.edit_customer(target, projects=[
        {"project_id": 99002, "site_address": {"streetnum": "1", "street": "Second Road", "suburb": "Hobart",
                                               "state": "TAS", "postcode": "7000"}},
        {"project_id": 99001, "site_address": {"streetnum": "418", "street": "Murray Street", "suburb": "Perth",
                                               "state": "WA", "postcode": "6000"}},
    ])
    assert sync_once(settings_for(server, db))[0] == EXIT_OK
    assert customer_row(db, target)["customer_site_address"] == "418 Murray Street, Perth WA 6000"
    assert customer_row(db, target)["customerabn"] is None


# -- deletes ------------------------------------------------------------------------------


def test_remote_delete_is_a_candidate_first_and_removed_on_the_second_walk(server, db):
    """A deleted customer stays as a candidate after one sync and moves to deleted_customers after the next."""
    settings = settings_for(server, db)
    sync_once(settings)
    records = server.account.snapshot()["customers"]
    victim = find(records, lambda r: r["notes"] and r["projects"])
    server.account.delete_customer(victim["id"])

    code, report = sync_once(settings)
    assert code == EXIT_OK and report.delete_candidates == 1 and report.deleted == 0
    assert victim["id"] in mirror_ids(db)
    assert db.scalar("SELECT missing_since_run FROM customer_base WHERE pkcustomerid = ?", (victim["id"],)) \
        == report.run_id
    assert deleted_ids(db) == set()

    with captured_events() as events:
        code, report = sync_once(settings)
    assert code == EXIT_OK and report.deleted == 1 and report.deleted_ids == [victim["id"]]
    assert victim["id"] not in mirror_ids(db)
    assert len(mirror_ids(db)) == CUSTOMERS - 1
    gone = db.query("SELECT * FROM deleted_customers")
    assert len(gone) == 1
    assert gone[0]["pkcustomerid"] == victim["id"] and gone[0]["customeremail"] == victim["email"]
    assert gone[0]["run_id"] == report.run_id
    last = json.loads(gone[0]["last_record_json"])
    assert last["fields"]["customersurname"] == victim["last_name"]
    assert [n["note"] for n in last["notes"]] == [n["note"] for n in victim["notes"]]
    assert sorted(p["project_id"] for p in last["projects"]) == sorted(p["project_id"] for p in victim["projects"])
    assert json.loads(last["listing_json"])["customer_id"] == str(victim["id"])
    # The children went with it.
    for table in ("customer_base", "customer_notes", "customer_projects", "customer_raw"):
        assert db.scalar(f"SELECT count(*) FROM {table} WHERE pkcustomerid = ?", (victim["id"],)) == 0, table
    history = db.query("SELECT field, old_value, new_value, source FROM customer_changes WHERE pkcustomerid = ?",
                    (victim["id"],))
    assert history == [{"field": "(deleted)", "old_value": victim["email"], "new_value": None, "source": "remote"}]
    deleted_events = [e for e in events if e["event"] == "customer_deleted"]
    assert [e["remote_id"] for e in deleted_events] == [victim["id"]]


def test_id_order_shift_mid_walk_causes_no_false_delete(server, db):
    """Deletes mid-walk (id order) make later customers move back unseen; none of them is ever deleted."""
    settings = settings_for(server, db, SPMIRROR_API_MAX_IN_FLIGHT="1")
    sync_once(settings)
    victims: set[int] = set()
    for _ in range(2):  # two walks in a row each miss customers that still exist
        server.account.schedule_shift(after_page=2, delete_served=5)
        code, _report = sync_once(settings)
        shift = server.account.shift_report()
        assert code == EXIT_OK and shift["done"] and shift["missed"]
        victims |= set(shift["deleted"])
        assert set(server.account.ids()) <= mirror_ids(db)
        assert not deleted_ids(db) & set(server.account.ids())
    for _ in range(2):  # two clean walks settle everything (the last victims were listed before they went)
        code, _report = sync_once(settings)
        assert code == EXIT_OK
    assert mirror_ids(db) == set(server.account.ids())
    assert deleted_ids(db) == victims and len(victims) == 10
    # Customers that were only missed are no longer candidates.
    live = ",".join(map(str, server.account.ids()))
    assert db.scalar(f"SELECT count(*) FROM customer_base WHERE missing_since_run IS NOT NULL "
                      f"AND pkcustomerid IN ({live})") == 0


def test_newest_order_shift_mid_walk_causes_no_false_delete(server, db):
    """Creates mid-walk (newest first) push customers forward; duplicates are dropped and nothing is deleted."""
    server.account.set_order("newest")
    settings = settings_for(server, db, SPMIRROR_API_MAX_IN_FLIGHT="1")
    sync_once(settings)
    existing = set(server.account.ids())
    server.account.schedule_shift(after_page=2, create=7)
    code, report = sync_once(settings)
    shift = server.account.shift_report()
    assert code == EXIT_OK and shift["done"] and len(shift["duplicated"]) == 7
    assert report.duplicates == 7
    assert existing <= mirror_ids(db)
    assert deleted_ids(db) == set()
    assert db.scalar("SELECT count(*) FROM customer_base WHERE missing_since_run IS NOT NULL") == 0
    code, report = sync_once(settings)
    assert code == EXIT_OK
    assert mirror_ids(db) == set(server.account.ids()) == existing | set(shift["created"])
    assert deleted_ids(db) == set()


class HidingClient(SolarProofClient):
    """A client whose listing never shows the given customers (as an unlucky shifting walk would)."""

    def __init__(self, *args, hidden: set[int], **kwargs):
        super().__init__(*args, **kwargs)
        self.hidden = {str(i) for i in hidden}

    def fetch_customer_page(self, page):
        records = super().fetch_customer_page(page)
        return [r for r in records if str(r.value.get("customer_id")) not in self.hidden]


@pytest.mark.parametrize("reads_by_id", [True, False], ids=["getcustomer", "no-getcustomer"])
def test_customer_missed_by_two_walks_is_kept_when_the_lookup_finds_it(server, db, reads_by_id):
    """A customer absent from two complete listings but still read by id (getcustomer, or an email lookup that
    returns that same id) is not deleted."""
    server.quirks.update(getcustomer=reads_by_id)
    settings = settings_for(server, db)
    sync_once(settings)
    hidden = server.account.ids()[-1]  # on the last page, so hiding it keeps the walk complete
    for _ in range(2):
        with HidingClient(server.url, server.api_key, hidden={hidden}) as client:
            code, report = sync_once(settings, client=client)
        assert code == EXIT_OK and report.deleted == 0
    assert hidden in mirror_ids(db) and deleted_ids(db) == set()
    assert server.account.call_counts().get("getcustomer" if reads_by_id else "getcustomerByemail", 0) >= 1
    # Found again, so it is no longer a candidate either.
    assert db.scalar("SELECT missing_since_run FROM customer_base WHERE pkcustomerid = ?", (hidden,)) is None


def test_mass_delete_is_refused_then_allowed(server, db):
    """30% deleted remotely: the confirming sync exits 4 and deletes nothing; --allow-mass-delete then deletes them."""
    settings = settings_for(server, db)
    sync_once(settings)
    victims = server.account.ids()[::10] + server.account.ids()[1::10] + server.account.ids()[2::10]
    assert len(victims) == 60
    for remote_id in victims:
        server.account.delete_customer(remote_id)

    with captured_events() as events:
        code, report = sync_once(settings)
    assert code == EXIT_OK and report.delete_candidates == 60 and report.deleted == 0
    assert any(e["event"] == "mass_delete_suspected" for e in events)

    code, report = sync_once(settings)
    assert code == EXIT_REFUSED and report.deleted == 0
    assert len(mirror_ids(db)) == CUSTOMERS and deleted_ids(db) == set()
    run = db.last_run()
    assert run["result"] == "refused" and run["deleted"] == 0
    assert "refusing to delete 60 of 200" in run["error"]

    code, report = sync_once(settings, allow_mass_delete=True)
    assert code == EXIT_OK and report.deleted == 60
    assert mirror_ids(db) == set(server.account.ids())
    assert deleted_ids(db) == set(victims)
    assert db.last_run()["result"] == "ok"


def _with_candidates(server, db, settings, count=2) -> list[int]:
    """Sync, delete `count` customers remotely, sync again: they are candidates the next walk would delete."""
    sync_once(settings)
    victims = server.account.ids()[5:5 + count]
    for remote_id in victims:
        server.account.delete_customer(remote_id)
    code, report = sync_once(settings)
    assert code == EXIT_OK and report.delete_candidates == count
    return victims


def test_unavailable_listing_exits_75_and_applies_no_deletes(server, db):
    """A listing that keeps failing exits 75, records 'incomplete' and deletes nothing; a later good walk does."""
    settings = settings_for(server, db)
    victims = _with_candidates(server, db, settings)
    server.faults.script("503", count=100, action="getallcustomers")
    clock = FakeClock()
    with make_client(server, clock) as client:
        code, report = sync_once(settings, client=client)
    assert code == EXIT_UNAVAILABLE and not report.complete and report.deleted == 0
    assert clock.sleeps  # it did retry, on the fake clock
    assert set(victims) <= mirror_ids(db) and deleted_ids(db) == set()
    run = db.last_run()
    assert run["result"] == "incomplete" and run["deleted"] == 0 and "getallcustomers" in run["error"]
    server.faults.reset()
    with make_client(server, FakeClock()) as client:
        code, report = sync_once(settings, client=client)
    assert code == EXIT_OK and sorted(report.deleted_ids) == sorted(victims)



def test_walk_failing_after_some_pages_applies_no_deletes(server, db):
    """Pages 1-2 arrive, page 3 keeps failing: exit 75, result 'incomplete', candidates are not deleted."""
    settings = settings_for(server, db, SPMIRROR_API_MAX_IN_FLIGHT="1")
    victims = _with_candidates(server, db, settings)
    clock = FakeClock()
    with FailingFromPage(server.url, server.api_key, server=server, fail_from=3, sleep=clock.sleep,
                         clock=clock) as client:
        code, _report = sync_once(settings, client=client)
    assert code == EXIT_UNAVAILABLE
    assert server.account.call_counts()["getallcustomers"] > 2 * 5  # two earlier walks, pages 1-2, retries of 3
    assert set(victims) <= mirror_ids(db) and deleted_ids(db) == set()
    assert db.last_run()["result"] == "incomplete"
    assert len(mirror_ids(db)) == CUSTOMERS


def test_wrong_api_key_exits_2(server, db):
    """A key the API refuses ends the sync with exit 2 and a failed run naming the key setting."""
    settings = load_settings(env={"SPMIRROR_API_URL": server.url, "SPMIRROR_API_KEY": "not-the-key",
                                  "SPMIRROR_DB": db.url})
    code, report = sync_once(settings)
    assert code == EXIT_USAGE and not report.complete
    run = db.last_run()
    assert run["result"] == "failed" and "SPMIRROR_API_KEY" in run["error"]
    assert db.scalar("SELECT count(*) FROM customers") == 0


# -- enrichment and quirks ----------------------------------------------------------------


def test_enrichment_fills_abn_site_address_and_contact_times(server, db):
    """With SPMIRROR_SYNC_ENRICH, customers with projects get ABN, site address and contact times from getcustomerofproject."""
    code, report = sync_once(settings_for(server, db, SPMIRROR_SYNC_ENRICH="true"))
    assert code == EXIT_OK
    records = server.account.snapshot()["customers"]
    with_projects = [r for r in records if r["projects"]]
    assert server.account.call_counts()["getcustomerofproject"] == len(with_projects)
    assert any(r["abn"] for r in with_projects) and any(r["contact_time"] for r in with_projects)
    for record in records:
        row = customer_row(db, record["id"])
        raw = db.scalar("SELECT project_customer_json FROM customer_raw WHERE pkcustomerid = ?", (record["id"],))
        if not record["projects"]:
            assert row["customerabn"] is None and row["customer_site_address"] is None and raw is None
            assert row["best_contact_mornings"] is None
            continue
        lowest = min(record["projects"], key=lambda p: p["project_id"])
        assert row["customerabn"] == record["abn"]
        assert row["customer_site_address"] == project_line(lowest["site_address"])
        if record["contact_time"]:
            said = {part.strip().lower() for part in record["contact_time"].split(",")}
            assert [row[f"best_contact_{t}"] for t in CONTACT_TIMES] == [int(t in said) for t in CONTACT_TIMES]
        else:
            assert all(row[f"best_contact_{t}"] is None for t in CONTACT_TIMES)
        payload = json.loads(raw)
        assert payload["Customer"]["customerID"] == record["id"]


def test_failed_enrichment_keeps_what_enrichment_learned_before(server, db):
    """When getcustomerofproject fails for a changed customer, its known ABN and contact times are kept."""
    settings = settings_for(server, db, SPMIRROR_SYNC_ENRICH="true")
    sync_once(settings)
    record = find(server.account.snapshot()["customers"],
                  lambda r: r["projects"] and r["abn"] and r["contact_time"])
    before = customer_row(db, record["id"])
    assert before["customerabn"] == record["abn"]
    server.account.edit_customer(record["id"], phone1="0400 000 999")
    server.faults.script("html", count=50, action="getcustomerofproject")
    with make_client(server, FakeClock()) as client:
        assert sync_once(settings, client=client)[0] == EXIT_OK
    after = customer_row(db, record["id"])
    assert after["customerphone1"] == "0400 000 999"
    assert after["customerabn"] == record["abn"]
    assert [after[f"best_contact_{t}"] for t in CONTACT_TIMES] == [before[f"best_contact_{t}"] for t in CONTACT_TIMES]


@pytest.mark.parametrize("quirks", [
    {"int_ids": True},
    {"notes_as_string": True},
    {"status_as_number": True},
    {"int_ids": True, "status_as_number": True, "notes_as_string": True},
], ids=["int_ids", "notes_as_string", "status_as_number", "all_three"])
def test_old_docs_wire_quirks_cause_no_row_writes(server, db, quirks):
    """Switching the listing to the old docs' shapes after a first sync is a refresh only: no customers row is written."""
    settings = settings_for(server, db)
    sync_once(settings)
    db.count_writes("customers")
    server.quirks.update(**quirks)
    code, report = sync_once(settings)
    assert code == EXIT_OK and report.created == 0
    assert db.writes("customers") == 0
    assert report.updated == 0
    assert db.scalar("SELECT count(*) FROM customer_changes") == 0


# -- rejected records ---------------------------------------------------------------------

VALID_RECORD = {
    "customer_id": "71553", "gst_status": "Not GST Registered", "customer_first_name": "Will",
    "customer_last_name": "Jones", "customer_phone_1": "0400 000 888", "customer_phone_2": "",
    "customer_email": "mygreatcustomer@willibags.com", "customer_type": "Residential", "company_name": "",
    "company_phone": "", "owner_user_info": {"user_id": "221", "first_name": "John", "last_name": "User",
                                             "phone_number": "0415 644 644", "email": "user@bigsolarcity.com.au",
                                             "work_title": "Director", "username": "user1"},
    "creation_date": "2020-05-26", "customer_notes": [], "customer_status": "No Status Set", "projects": [],
}


class TinySource:
    """A page source of one page holding a bad element and a good one."""

    def __init__(self, body: str):
        self.body = body

    def fetch_customer_page(self, page):
        return split_json_array(self.body) if page == 1 else []

    def fetch_customers_by_email(self, email):
        return []

    def fetch_customer_of_project(self, project_id):
        return None


def test_rejected_record_is_kept_with_its_reason_and_the_rest_mirrored(db):
    """A listed element without a usable customer_id goes to rejected_records; the valid one is mirrored."""
    bad = '{"customer_id": "x"}'
    body = f"[{bad}, {json.dumps(VALID_RECORD)}]"
    with Store.open(db.url) as store:
        report = run_pull(store, TinySource(body), PullOptions(), run_id="run-1", now=lambda: "2024-01-01T00:00:00Z")
    assert report.rejected == 1 and report.created == 1
    rejected = db.query("SELECT * FROM rejected_records")
    assert len(rejected) == 1
    assert rejected[0]["payload"] == bad
    assert "customer_id" in rejected[0]["reason"]
    assert rejected[0]["run_id"] == "run-1" and rejected[0]["page"] == 1
    row = customer_row(db, 71553)
    assert row["customerfirstname"] == "Will" and row["customeremail"] == "mygreatcustomer@willibags.com"
    assert mirror_ids(db) == {71553}


# -- SQL surface --------------------------------------------------------------------------


def fts_ids(db: MirrorDatabase, words: str, column: str | None = None) -> set[int]:
    """pkcustomerid of the customers the search index finds (a row with none added locally is None)."""
    ids = db.search(words, column)
    if not ids:
        return set()
    return {r["pkcustomerid"] for r in db.query(f"SELECT pkcustomerid FROM customers WHERE id IN "
                                                f"({', '.join(map(str, ids))})")}


def test_full_text_search_finds_by_surname_and_follows_remote_edits(server, db):
    """The search index finds a customer by surname, after a remote rename by the new name only, and not once
    deleted."""
    settings = settings_for(server, db)
    sync_once(settings)
    target = server.account.ids()[12]
    old_surname = server.account.get(target)["last_name"]
    assert target in fts_ids(db, old_surname, "customersurname")
    server.account.edit_customer(target, last_name="Quokkaworth")
    sync_once(settings)
    assert fts_ids(db, "Quokkaworth") == {target}
    assert target not in fts_ids(db, old_surname, "customersurname")
    # A remote delete takes the customer out of the index too; the index matches its content table.
    server.account.delete_customer(target)
    sync_once(settings)
    sync_once(settings)
    assert target in deleted_ids(db)
    assert fts_ids(db, "Quokkaworth") == set()
    assert db.search_index_matches_customers()


def test_plain_insert_from_another_client_gets_pending_and_survives_a_sync(server, db):
    """A bare INSERT naming two customer columns succeeds as 'pending'; a sync keeps it, flagged for what it lacks."""
    settings = settings_for(server, db)
    sync_once(settings)
    db.edit("INSERT INTO customers (customerfirstname, customersurname) VALUES ('Ada', 'Lovelace')")
    rows = db.query("SELECT * FROM customers WHERE customersurname = 'Lovelace'")
    assert len(rows) == 1
    assert rows[0]["pkcustomerid"] is None
    assert rows[0]["sync_state"] == "pending" and rows[0]["sync_error"] is None
    assert fts_ids(db, "Lovelace") == {None}
    code, _report = sync_once(settings)
    assert code == EXIT_OK
    (row,) = db.query("SELECT customerfirstname, sync_state, sync_error FROM customers "
                       "WHERE customersurname = 'Lovelace'")
    assert row["customerfirstname"] == "Ada" and row["sync_state"] == "error"
    for missing in ("customeremail", "customerphone1", "fkcustomertypeid"):
        assert f"{missing} is required" in row["sync_error"]
