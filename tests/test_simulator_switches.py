"""The simulator's server-behaviour switches: `getcustomer`, `ignored_fields` and `empty_clears`,
set through the Python handle, the /_admin/quirks route and `spmirror simulate` flags."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import httpx
import pytest

from mirror.cli import build_parser
from mirror.commands.simulate import quirks_from
from mirror.simulator import Quirks, SimulatorServer
from mirror.simulator.actions import WRITE_FIELDS
from mirror.simulator.quirks import WRITE_FIELD_NAMES

KEY = "switches-test-key"
TODAY = dt.date(2026, 4, 1)
NOT_FOUND = {"code": "NOT_FOUND", "message": "The requested endpoint does not exist"}
NEW = {"firstname": "Ada", "surname": "Nguyen", "email": "ada.nguyen@example.com.au",
       "phone1": "0412 345 678", "type": "COMMERCIAL", "phone2": "0400 999 888",
       "companyname": "Nguyen Solar Pty Ltd", "companyphone": "03 9000 1111", "gststatus": 1}


@pytest.fixture
def sim():
    with SimulatorServer(customers=30, seed=9, api_key=KEY, today=lambda: TODAY) as server:
        yield server


@pytest.fixture(scope="module")
def client():
    with httpx.Client(timeout=5) as c:
        yield c


def get(sim, client, action, method="GET", **params):
    return client.request(method, sim.url, params={"action": action, "api_key": KEY, **params})


def write(sim, client, action, data):
    return client.post(sim.url, params={"action": action, "api_key": KEY},
                       json={"data": {"apikey": KEY, "action": action, **data}})


def admin(sim, client, body, method="POST"):
    return client.request(method, f"{sim.base_url}/_admin/quirks", params={"api_key": KEY}, json=body)


def stored(sim, customer_id):
    """The customer's W-relevant internal fields, as the account holds them."""
    record = sim.account.get(customer_id)
    return {internal: record[internal] for internal in WRITE_FIELDS.values()}


def with_optionals(sim, customer_id=70005):
    sim.account.edit_customer(customer_id, phone2="0400 000 001", company_name="Acme Pty Ltd",
                              company_phone="03 9555 0000")
    return customer_id


# -- getcustomer -----------------------------------------------------------------------------

def assert_no_getcustomer(sim, client, status=404):
    for method in ("GET", "POST"):  # as an unknown action: 404 whatever the method, never 405
        response = get(sim, client, "getcustomer", method=method, customer_id="70003")
        unknown = get(sim, client, "nosuchaction", method=method, customer_id="70003")
        assert (response.status_code, response.json()) == (status, NOT_FOUND)
        assert (response.status_code, response.content) == (unknown.status_code, unknown.content)


def test_getcustomer_switch_through_the_python_handle(sim, client):
    """getcustomer=False answers getcustomer as an unknown action; the other lookups are unchanged."""
    row = get(sim, client, "getcustomer", customer_id="70003")
    assert row.status_code == 200 and row.json()["customer_id"] == "70003"
    sim.quirks.update(getcustomer=False)
    assert_no_getcustomer(sim, client)
    email = row.json()["customer_email"]
    assert get(sim, client, "getcustomerByemail", customer_email=email).json() == row.json()
    assert get(sim, client, "getcustomerid", customer_email=email).json() == row.json()
    assert get(sim, client, "getcustomerByemail", customer_id="70003").json() == row.json()
    sim.quirks.update(errors_in_200=True)
    assert_no_getcustomer(sim, client, status=200)
    sim.quirks.reset()
    assert get(sim, client, "getcustomer", customer_id="70003").json() == row.json()


def test_getcustomer_switch_under_a_fault(sim, client):
    """With getcustomer off, a truncated getcustomer is what a truncated unknown action gets."""
    sim.quirks.update(getcustomer=False)
    bodies = []
    for action in ("getcustomer", "nosuchaction"):
        sim.faults.script("truncate", action=action)
        bodies.append(get(sim, client, action, customer_id="70003").content)
    assert bodies[0] == bodies[1] and b"customer" not in bodies[0]


def test_getcustomer_switch_through_the_admin_route(sim, client):
    """POST /_admin/quirks {"getcustomer": false} takes effect on the next request; reset undoes it."""
    assert admin(sim, client, None, method="GET").json()["getcustomer"] is True
    assert admin(sim, client, {"getcustomer": False}).json()["getcustomer"] is False
    assert sim.quirks.getcustomer is False
    assert_no_getcustomer(sim, client)
    assert admin(sim, client, {"getcustomer": "no"}).status_code == 400
    assert admin(sim, client, {"getcustomer": True}).json()["getcustomer"] is True
    assert get(sim, client, "getcustomer", customer_id="70003").status_code == 200


# -- ignored_fields --------------------------------------------------------------------------

def test_ignored_fields_on_update(sim, client):
    """An ignored field is validated and answered for, but the stored value stays as it was."""
    customer_id = with_optionals(sim)
    before = stored(sim, customer_id)
    get(sim, client, "getallcustomers")  # render (cache) the customer first
    sim.quirks.update(ignored_fields=["phone2", "email", "gststatus"])
    assert sim.quirks.ignored_fields == ("phone2", "email", "gststatus")
    response = write(sim, client, "updatecustomer", {"pkcustomerid": customer_id, "firstname": "Zed",
                                                     "phone2": "0499 111 222", "email": "zed@example.com",
                                                     "gststatus": 1 - before["gst"]})
    assert response.status_code == 200
    assert response.json() == {"Message": "Customer updated successfully!", "CustomerId": str(customer_id)}
    assert stored(sim, customer_id) == {**before, "first_name": "Zed"}
    row = get(sim, client, "getallcustomers").json()[customer_id - 70001]
    assert row["customer_first_name"] == "Zed" and row["customer_phone_2"] == "0400 000 001"
    assert sim.account.find_by_email(before["email"]) == customer_id
    assert sim.account.find_by_email("zed@example.com") is None
    assert sim.account.write_log()[-1]["applied"] is True
    bad = write(sim, client, "updatecustomer", {"pkcustomerid": customer_id, "gststatus": 7})
    assert bad.status_code == 400  # validation is unchanged
    sim.quirks.update(ignored_fields=())
    write(sim, client, "updatecustomer", {"pkcustomerid": customer_id, "phone2": "0499 111 222"})
    assert stored(sim, customer_id)["phone2"] == "0499 111 222"


def test_ignored_fields_on_create(sim, client):
    """A create stores a new customer's default for an ignored field: "", 0, or type 1."""
    created = write(sim, client, "createcustomer", NEW).json()
    assert stored(sim, int(created["id"])) == {
        "first_name": "Ada", "last_name": "Nguyen", "email": NEW["email"], "phone1": "0412 345 678",
        "phone2": "0400 999 888", "type": 2, "company_name": "Nguyen Solar Pty Ltd",
        "company_phone": "03 9000 1111", "gst": 1}
    sim.quirks.update(ignored_fields=("email", "phone2", "companyname", "type", "gststatus"))
    response = write(sim, client, "createcustomer", NEW)
    assert response.status_code == 200
    customer_id = int(response.json()["id"])
    assert stored(sim, customer_id) == {
        "first_name": "Ada", "last_name": "Nguyen", "email": "", "phone1": "0412 345 678",
        "phone2": "", "type": 1, "company_name": "", "company_phone": "03 9000 1111", "gst": 0}
    row = get(sim, client, "getcustomer", customer_id=str(customer_id)).json()
    assert (row["customer_type"], row["gst_status"], row["customer_email"]) == ("Residential", "Not GST Registered", "")
    assert sim.account.write_log()[-1]["applied"] is True
    missing = write(sim, client, "createcustomer", {k: v for k, v in NEW.items() if k != "email"})
    assert missing.json() == {"code": "INVALID_PARAMETERS", "message": "Required field 'email' is missing"}
    assert write(sim, client, "createcustomer", {**NEW, "type": "HOUSE"}).status_code == 400
    assert sim.account.ids()[-1] == customer_id  # nothing more was created


def test_ignored_fields_through_the_admin_route(sim, client):
    """The admin route takes a JSON list (kept as a tuple) and refuses unknown names, changing nothing."""
    customer_id = with_optionals(sim)
    response = admin(sim, client, {"ignored_fields": ["companyname", "companyname", "surname"]})
    assert response.status_code == 200 and response.json()["ignored_fields"] == ["companyname", "surname"]
    assert sim.quirks.ignored_fields == ("companyname", "surname")
    before = stored(sim, customer_id)
    write(sim, client, "updatecustomer", {"pkcustomerid": customer_id, "companyname": "Other",
                                          "surname": "Other", "phone1": "0411 000 000"})
    assert stored(sim, customer_id) == {**before, "phone1": "0411 000 000"}
    for bad in (["companyname", "notes"], "phone2", [1], {"getcustomer": False, "ignored_fields": ["x"]}):
        body = bad if isinstance(bad, dict) else {"ignored_fields": bad}
        response = admin(sim, client, body)
        assert response.status_code == 400 and "ignored_fields" in response.json()["error"], bad
    assert sim.quirks.ignored_fields == ("companyname", "surname") and sim.quirks.getcustomer is True
    assert admin(sim, client, {"reset": True}).json()["ignored_fields"] == []
    write(sim, client, "updatecustomer", {"pkcustomerid": customer_id, "companyname": "Other"})
    assert stored(sim, customer_id)["company_name"] == "Other"


# -- empty_clears ----------------------------------------------------------------------------

def test_empty_clears_switch(sim, client):
    """With empty_clears off, "" or null for an optional text field keeps the stored value."""
    customer_id = with_optionals(sim)
    before = stored(sim, customer_id)
    sim.quirks.update(empty_clears=False)
    for blank in ("", None):
        response = write(sim, client, "updatecustomer", {"pkcustomerid": customer_id, "phone2": blank,
                                                         "companyname": blank, "companyphone": blank,
                                                         "firstname": f"Kept{blank!r}"})
        assert response.status_code == 200 and response.json()["CustomerId"] == str(customer_id)
        assert stored(sim, customer_id) == {**before, "first_name": f"Kept{blank!r}"}
        assert sim.account.write_log()[-1]["applied"] is True
    write(sim, client, "updatecustomer", {"pkcustomerid": customer_id, "companyname": "New Name"})
    assert stored(sim, customer_id)["company_name"] == "New Name"  # a value still changes it
    assert write(sim, client, "updatecustomer", {"pkcustomerid": customer_id, "surname": ""}).status_code == 400
    sim.quirks.update(empty_clears=True)
    write(sim, client, "updatecustomer", {"pkcustomerid": customer_id, "phone2": "", "companyname": None})
    after = stored(sim, customer_id)
    assert (after["phone2"], after["company_name"], after["company_phone"]) == ("", "", "03 9555 0000")
    row = get(sim, client, "getcustomer", customer_id=str(customer_id)).json()
    assert (row["customer_phone_2"], row["company_name"]) == ("", "")


def test_empty_clears_through_the_admin_route(sim, client):
    customer_id = with_optionals(sim)
    assert admin(sim, client, {"empty_clears": False}).json()["empty_clears"] is False
    write(sim, client, "updatecustomer", {"pkcustomerid": customer_id, "phone2": ""})
    assert stored(sim, customer_id)["phone2"] == "0400 000 001"
    assert admin(sim, client, {"empty_clears": 0}).status_code == 400
    assert admin(sim, client, {"reset": True}).json()["empty_clears"] is True
    write(sim, client, "updatecustomer", {"pkcustomerid": customer_id, "phone2": ""})
    assert stored(sim, customer_id)["phone2"] == ""


# -- the Quirks object, old_docs and the CLI -------------------------------------------------

def test_switch_defaults_validation_and_reset():
    """Defaults keep today's behaviour; bad values raise; reset() and old_docs() leave the key alone."""
    quirks = Quirks()
    assert (quirks.getcustomer, quirks.ignored_fields, quirks.empty_clears) == (True, (), True)
    assert WRITE_FIELD_NAMES == tuple(WRITE_FIELDS)
    for bad in ({"ignored_fields": ["nope"]}, {"ignored_fields": "email"}, {"getcustomer": None},
                {"empty_clears": "false"}):
        with pytest.raises(ValueError):
            Quirks().update(**bad)
        with pytest.raises(ValueError):
            Quirks(**bad)
    assert Quirks(ignored_fields=["type"]).ignored_fields == ("type",)
    key = quirks.key()
    quirks.update(getcustomer=False, ignored_fields=list(WRITE_FIELD_NAMES), empty_clears=False)
    assert quirks.key() == key and quirks.ignored_fields == WRITE_FIELD_NAMES
    assert quirks.reset() == Quirks()
    old = Quirks.old_docs()
    assert (old.getcustomer, old.ignored_fields, old.empty_clears) == (True, (), True)


def test_admin_old_docs_leaves_the_switches_alone(sim, client):
    """{"old_docs": true} switches on the old docs' seven quirks and no others."""
    admin(sim, client, {"getcustomer": False, "ignored_fields": ["phone2"], "empty_clears": False})
    state = admin(sim, client, {"old_docs": True}).json()
    assert state == {**Quirks.old_docs().as_dict(), "getcustomer": False, "ignored_fields": ["phone2"],
                     "empty_clears": False}
    state = admin(sim, client, {"reset": True, "old_docs": True}).json()
    assert state == {**Quirks.old_docs().as_dict(), "ignored_fields": []}


def test_simulate_flags_parse_into_quirks():
    """`spmirror simulate` flags set the three switches; no flags means the default Quirks."""
    parser = build_parser()
    assert quirks_from(parser.parse_args(["simulate"])) == Quirks()
    args = parser.parse_args(["simulate", "--no-getcustomer", "--ignore-field", "phone2",
                              "--ignore-field", "type", "--empty-keeps-value"])
    assert quirks_from(args) == Quirks(getcustomer=False, ignored_fields=("phone2", "type"),
                                       empty_clears=False)
    for name in WRITE_FIELD_NAMES:
        assert quirks_from(parser.parse_args(["simulate", "--ignore-field", name])).ignored_fields == (name,)
    with pytest.raises(SystemExit):
        parser.parse_args(["simulate", "--ignore-field", "notes"])


@pytest.mark.timeout(30)
def test_simulate_serves_with_the_flags(tmp_path):
    """A `spmirror simulate` process started with the flags serves with those switches."""
    proc = subprocess.Popen([sys.executable, "-m", "mirror", "simulate", "--port", "0", "--customers", "3",
                             "--no-getcustomer", "--ignore-field", "email", "--empty-keeps-value"],
                            cwd=tmp_path, env={**os.environ, "HOME": str(tmp_path)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().rsplit(" ", 1)[1].strip()
        key = proc.stdout.readline().split(": ", 1)[1].strip()
        quirks = httpx.get(url.replace("/apidata.php", "/_admin/quirks"), params={"api_key": key}, timeout=10)
        assert quirks.json() == {**Quirks().as_dict(), "getcustomer": False, "ignored_fields": ["email"],
                                 "empty_clears": False}
        response = httpx.get(url, params={"action": "getcustomer", "customer_id": "70001", "api_key": key},
                             timeout=10)
        assert (response.status_code, response.json()) == (404, NOT_FOUND)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
