"""The simulator's control surface (Python and /_admin/), its journal, shifts, data and speed."""

from __future__ import annotations

import ast
import collections
import datetime as dt
import pathlib
import re
import subprocess
import sys
import time

import httpx
import pytest

from mirror.simulator import Account, SimulatorServer
from mirror.simulator.people import abn_is_valid

KEY = "control-test-key"
TODAY = dt.date(2026, 2, 3)
PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "mirror" / "simulator"


@pytest.fixture
def sim():
    with SimulatorServer(customers=150, seed=21, api_key=KEY, today=lambda: TODAY) as server:
        yield server


@pytest.fixture
def client():
    with httpx.Client(timeout=5) as c:
        yield c


def api(sim, client, action, **params):
    return client.get(sim.url, params={"action": action, "api_key": KEY, **params})


def admin(sim, client, method, path, body=None, key=KEY):
    return client.request(method, f"{sim.base_url}/_admin/{path}", params={"api_key": key}, json=body)


def walk(sim, client):
    """Every id a naive client sees walking page 1, 2, ... until a short page."""
    seen, page = [], 1
    while True:
        rows = api(sim, client, "getallcustomers", page=page).json()
        seen += [int(r["customer_id"]) for r in rows]
        if len(rows) < 50:
            return seen
        page += 1


# -- the Python handle -----------------------------------------------------------------------

def test_control_changes_show_in_the_api(sim, client):
    """Changes made as a web-app user (status, ABN, owner, notes, projects) show in the API."""
    account = sim.account
    account.set_status(70003, 2)
    account.edit_customer(70003, owner="mei.chen@bigsolarcity.com.au", abn="51 824 753 556",
                          contact_time="Mornings")
    account.add_note(70003, "Rang back about battery", when="2026-01-05 10:00:00")
    project_id = account.add_project(70003, site_address={"streetnum": "9", "street": "Yarra Street",
                                                          "suburb": "Geelong", "state": "VIC",
                                                          "postcode": "3220"},
                                     system_size="6.6kW", solar_panel_quantity="15")
    row = api(sim, client, "getcustomer", customer_id="70003").json()
    assert row["customer_status"] == "Signed"
    assert row["owner_user_info"]["user_id"] == "518"
    assert row["customer_notes"][-1] == {"datetime": "2026-01-05 10:00:00", "note": "Rang back about battery"}
    assert row["projects"][-1]["project_id"] == str(project_id)
    assert row["projects"][-1]["site_address"]["country"] == "Australia"
    p = api(sim, client, "getcustomerofproject", project_id=project_id).json()["Customer"]
    assert (p["customerabn"], p["contactTime"], p["siteAddress"]) == (
        "51 824 753 556", "Mornings", "9 Yarra Street, Geelong, VIC, 3220")


def test_control_create_and_delete(sim, client):
    """create_customer makes a listed customer dated `today`; delete_customer removes it."""
    customer_id = sim.account.create_customer(first_name="Mia", last_name="Rossi", type="Commercial",
                                              company_name="Rossi Bakery Pty Ltd", status=0)
    assert customer_id == 70151
    row = api(sim, client, "getcustomer", customer_id=customer_id).json()
    assert (row["customer_first_name"], row["customer_type"], row["customer_status"]) == (
        "Mia", "Commercial", "No Status Set")
    assert row["creation_date"] == "2026-02-03"
    assert row["customer_email"] and row["customer_phone_1"]  # generated when not given
    sim.account.delete_customer(customer_id)
    assert api(sim, client, "getcustomer", customer_id=customer_id).status_code == 404
    with pytest.raises(KeyError):
        sim.account.delete_customer(customer_id)


def test_control_validates_fields():
    """The control surface rejects unknown fields and out-of-range values, changing nothing."""
    account = Account(customers=3, seed=1)
    for bad in ({"colour": "red"}, {"status": 7}, {"type": "Castle"}, {"gst": 2},
                {"owner": "nobody@example.com"}, {"created": "yesterday"}, {"notes": "hi"}):
        with pytest.raises(ValueError):
            account.edit_customer(70001, **bad)
    assert account.get(70001) == Account(customers=3, seed=1).get(70001)


def test_get_returns_a_copy():
    """get() returns a copy: changing it does not change the account."""
    account = Account(customers=2, seed=1)
    record = account.get(70001)
    record["first_name"] = "Changed"
    record["notes"].append({"datetime": "2020-01-01 00:00:00", "note": "x"})
    assert account.get(70001)["first_name"] != "Changed"
    assert account.get(99999) is None


def test_snapshot():
    """snapshot() holds every customer in id order plus users, webhooks, order and quirks."""
    account = Account(customers=12, seed=2, order="newest")
    account.subscriptions.subscribe("https://example.com/h", "customer_created")
    snap = account.snapshot()
    assert [c["id"] for c in snap["customers"]] == list(range(70001, 70013))
    assert len(snap["users"]) == 6 and snap["order"] == "newest"
    assert snap["webhooks"] == [{"hookUrl": "https://example.com/h", "type_request": "customer_created"}]
    assert snap["quirks"]["update_id_key"] == "CustomerId"


def test_write_log_and_call_counts(sim, client):
    """The write log records each write in order with the key redacted; counts are per action."""
    client.post(sim.url, params={"action": "createcustomer", "api_key": KEY},
                json={"data": {"apikey": KEY, "firstname": "A", "surname": "B", "email": "a@b.co",
                               "phone1": "0400 000 000", "type": "RESIDENTIAL"}})
    client.put(sim.url, params={"action": "updatecustomer", "api_key": KEY},
               json={"data": {"apikey": KEY, "pkcustomerid": 1, "firstname": "C"}})
    client.request("DELETE", sim.url, params={"action": "deletecustomer", "api_key": KEY},
                   json={"data": {"apikey": KEY, "pkcustomerid": 70001}})
    api(sim, client, "getallcustomers")
    api(sim, client, "getallcustomers", page=2)
    log = sim.account.write_log()
    assert [(e["seq"], e["action"], e["method"], e["status"], e["applied"]) for e in log] == [
        (1, "createcustomer", "POST", 200, True), (2, "updatecustomer", "PUT", 404, False),
        (3, "deletecustomer", "DELETE", 200, True)]
    assert all(e["body"]["data"]["apikey"] == "***" for e in log)
    assert KEY not in repr(log)
    assert log[0]["response"] == {"Message": "Customer created successfully!", "id": "70151"}
    assert log[1]["response"]["code"] == "CUSTOMER_NOT_FOUND"
    assert sim.account.call_counts() == {"createcustomer": 1, "updatecustomer": 1,
                                         "deletecustomer": 1, "getallcustomers": 2}


# -- the admin routes ------------------------------------------------------------------------

def test_admin_requires_the_key(sim, client):
    """Admin routes answer 401 without the simulator's key and 404 for unknown routes."""
    assert admin(sim, client, "GET", "state", key="wrong").status_code == 401
    assert admin(sim, client, "GET", "nothing").status_code == 404
    response = client.post(f"{sim.base_url}/_admin/order", params={"api_key": KEY}, content=b"{oops")
    assert response.status_code == 400


def test_admin_customers(sim, client):
    """Admin customer routes create, patch, set status, add notes and projects, and delete."""
    customer_id = admin(sim, client, "POST", "customers", {"first_name": "Kirra", "type": 3}).json()["id"]
    assert admin(sim, client, "PATCH", f"customers/{customer_id}", {"phone2": "0499 000 111"}).status_code == 200
    assert admin(sim, client, "POST", f"customers/{customer_id}/status", {"status": 3}).json()["status"] == 3
    admin(sim, client, "POST", f"customers/{customer_id}/notes", {"note": "Called", "datetime": "2026-02-03 09:30:00"})
    project = admin(sim, client, "POST", f"customers/{customer_id}/projects",
                    {"site_address": {"suburb": "Darwin", "state": "NT", "postcode": "0800"}}).json()
    row = api(sim, client, "getcustomer", customer_id=customer_id).json()
    assert (row["customer_first_name"], row["customer_type"], row["customer_status"]) == (
        "Kirra", "Large-Scale", "Mega Status")
    assert row["customer_phone_2"] == "0499 000 111" and row["customer_notes"][0]["note"] == "Called"
    assert row["projects"][0]["project_id"] == str(project["project_id"])
    assert admin(sim, client, "GET", f"customers/{customer_id}").json()["id"] == customer_id
    assert admin(sim, client, "PATCH", f"customers/{customer_id}", {"status": 9}).status_code == 400
    assert admin(sim, client, "DELETE", f"customers/{customer_id}").json() == {"deleted": customer_id}
    assert admin(sim, client, "DELETE", f"customers/{customer_id}").status_code == 404


def test_admin_state_writes_calls(sim, client):
    """state, writes and calls mirror snapshot(), write_log() and call_counts()."""
    client.post(sim.url, params={"action": "deletecustomer", "api_key": KEY},
                json={"data": {"apikey": KEY, "pkcustomerid": 70009}})
    state = admin(sim, client, "GET", "state").json()
    assert len(state["customers"]) == 149 and state["order"] == "id"
    writes = admin(sim, client, "GET", "writes").json()
    assert writes[0]["body"]["data"]["apikey"] == "***" and writes[0]["applied"] is True
    assert admin(sim, client, "GET", "calls").json() == {"deletecustomer": 1}


def test_admin_faults_quirks_order(sim, client):
    """Faults (with a script), quirks and the order can all be set over HTTP."""
    settings = admin(sim, client, "POST", "faults", {"latency_ms": 0, "script": [{"kind": "503", "count": 1}]}).json()
    assert settings["script"][0]["kind"] == "503"
    assert api(sim, client, "getallcustomers").status_code == 503
    assert admin(sim, client, "GET", "faults").json()["injected"][0]["kind"] == "503"
    assert admin(sim, client, "POST", "faults", {"rate_429": 3}).status_code == 400
    assert admin(sim, client, "POST", "quirks", {"int_ids": True}).json()["int_ids"] is True
    assert api(sim, client, "getallcustomers").json()[0]["customer_id"] == 70001
    admin(sim, client, "POST", "quirks", {"reset": True})
    assert admin(sim, client, "POST", "order", {"order": "newest"}).json() == {"order": "newest"}
    assert api(sim, client, "getallcustomers").json()[0]["customer_id"] == "70150"
    assert admin(sim, client, "POST", "order", {"order": "random"}).status_code == 400


def test_admin_shift(sim, client):
    """A shift scheduled over HTTP runs after its page and is reported over HTTP."""
    report = admin(sim, client, "POST", "shift", {"after_page": 1, "delete_served": 2}).json()
    assert report["done"] is False
    api(sim, client, "getallcustomers", page=1)
    report = admin(sim, client, "GET", "shift").json()
    assert report["done"] is True and len(report["deleted"]) == 2


# -- mid-walk shifts -------------------------------------------------------------------------

def test_shift_deletes_make_a_walker_miss_records(sim, client):
    """In id order, deleting served customers after page 2 makes a walker miss later records."""
    sim.account.schedule_shift(after_page=2, delete_served=3)
    seen = walk(sim, client)
    report = sim.account.shift_report()
    assert report["done"] and len(report["deleted"]) == 3
    assert all(70001 <= i <= 70100 for i in report["deleted"])
    missed = set(sim.account.ids()) - set(seen)
    assert missed == set(report["missed"]) and len(missed) == 3
    assert len(seen) == len(set(seen))  # no duplicates in this scenario


def test_shift_creates_make_a_walker_see_duplicates(sim, client):
    """In newest order, creating customers after page 1 makes a walker see some twice."""
    sim.account.set_order("newest")
    sim.account.schedule_shift(after_page=1, create=4)
    seen = walk(sim, client)
    report = sim.account.shift_report()
    twice = {i for i, n in collections.Counter(seen).items() if n > 1}
    assert twice == set(report["duplicated"]) and len(twice) == 4
    assert set(sim.account.ids()) - set(seen) == set(report["created"])  # new ones sit on page 1
    assert walk(sim, client) == sorted(sim.account.ids(), reverse=True)  # one-shot: next walk clean


# -- data ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def book():
    return Account(customers=2000, seed=1).snapshot()["customers"]


def test_data_is_realistic(book):
    """2,000 seeded customers have valid ABNs, 04 mobiles, all states, types and statuses."""
    abns = [c["abn"] for c in book if c["abn"]]
    assert abns and all(abn_is_valid(a) for a in abns)
    assert all(re.sub(r"\s", "", c["phone1"]).startswith(("04", "+614")) for c in book)
    sites = [p["site_address"] for c in book for p in c["projects"]]
    assert {s["state"] for s in sites} == {"NSW", "VIC", "QLD", "WA", "SA", "TAS", "ACT", "NT"}
    assert all(re.fullmatch(r"\d{4}", s["postcode"]) and s["country"] == "Australia" for s in sites)
    assert collections.Counter(c["type"] for c in book).keys() == {1, 2, 3}
    assert collections.Counter(c["type"] for c in book).most_common(1)[0][0] == 1  # mostly residential
    assert {c["status"] for c in book} == {0, 1, 2, 3}
    assert {len(c["notes"]) for c in book} == {0, 1, 2, 3}
    assert {len(c["projects"]) for c in book} == {0, 1, 2}
    project_ids = [p["project_id"] for c in book for p in c["projects"]]
    assert len(project_ids) == len(set(project_ids))
    assert all(p["proposal_link"] in ("", f"/uploads/pdfs/{p['project_id']}/proposal_{p['project_id']}.pdf")
               for c in book for p in c["projects"])
    created = [c["created"] for c in book]
    assert created == sorted(created) and created[0][:4] >= "2018" and created[-1][:4] <= "2026"
    emails = collections.Counter(c["email"].lower() for c in book)
    assert 0 < sum(n - 1 for n in emails.values()) < 100  # a few shared emails, legal in Solar Proof
    commercial = [c for c in book if c["type"] != 1]
    assert sum(bool(c["abn"]) for c in commercial) > 0.8 * len(commercial)
    assert all(c["company_name"] for c in commercial)
    assert all(c["uid"] is None or re.fullmatch(r"[0-9a-f]{8}", c["uid"]) for c in book)


def test_data_is_deterministic():
    """The same seed gives the same account; another seed gives another."""
    assert Account(customers=300, seed=9).snapshot() == Account(customers=300, seed=9).snapshot()
    assert Account(customers=300, seed=9).snapshot() != Account(customers=300, seed=10).snapshot()


def test_build_100k_customers():
    """100,000 customers build in a few seconds (printed; bounded loosely)."""
    started = time.perf_counter()
    account = Account(customers=100_000, seed=1)
    took = time.perf_counter() - started
    print(f"\nbuilt 100,000 customers in {took:.2f} s")
    assert account.ids()[-1] == 170_000
    assert took < 30


# -- packaging -------------------------------------------------------------------------------

def test_serve_forever_announces_itself():
    """serve_forever prints exactly the two documented lines, with the real port, and serves."""
    code = "from mirror.simulator import serve_forever; serve_forever(port=0, customers=30, seed=1, api_key='cli-key')"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        first, second = process.stdout.readline(), process.stdout.readline()
        match = re.fullmatch(r"Solar Proof simulator listening on (http://127\.0\.0\.1:(\d+)/apidata\.php)\n", first)
        assert match and int(match[2]) > 0
        assert second == "API key: cli-key\n"
        response = httpx.get(match[1], params={"action": "getallcustomers", "api_key": "cli-key"})
        assert len(response.json()) == 30
    finally:
        process.terminate()
        rest, _ = process.communicate(timeout=10)
    assert rest == ""


def test_simulator_is_independent_of_the_client():
    """No simulator module imports from `mirror` outside `mirror.simulator`."""
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                assert not (node.module.startswith("mirror") and not node.module.startswith("mirror.simulator")), path
            if isinstance(node, ast.ImportFrom) and node.level > 1:
                raise AssertionError(f"{path} imports from outside the package")
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("mirror") and not a.name.startswith("mirror.simulator")
                               for a in node.names), path
