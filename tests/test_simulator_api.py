"""The simulator's /apidata.php over real HTTP: every action, its errors, paging and quirks."""

from __future__ import annotations

import datetime as dt
import re

import httpx
import pytest

from mirror.simulator import Quirks, SimulatorServer

KEY = "0123456789abcdef0123456789abcdef0123"
TODAY = dt.date(2026, 3, 14)
R_KEYS = ["customer_id", "gst_status", "customer_first_name", "customer_last_name",
          "customer_phone_1", "customer_phone_2", "customer_email", "customer_type",
          "company_name", "company_phone", "owner_user_info", "creation_date", "customer_notes",
          "customer_status", "projects"]
PROJECT_KEYS = ["project_id", "project_title", "site_address", "solar_panel_quantity",
                "solar_panel_type", "inverter_type", "inverter_quantity", "system_size",
                "proposal_link"]


@pytest.fixture(scope="module")
def shared():
    """A 120-customer account for tests that only read."""
    with SimulatorServer(customers=120, seed=11, api_key=KEY, today=lambda: TODAY) as sim:
        yield sim


@pytest.fixture
def sim(shared):
    """The shared account with quirks, faults and order back to their defaults."""
    shared.quirks.reset()
    shared.faults.reset()
    shared.account.set_order("id")
    return shared


@pytest.fixture
def fresh():
    """A private 60-customer account for tests that write."""
    with SimulatorServer(customers=60, seed=5, api_key=KEY, today=lambda: TODAY) as sim:
        yield sim


@pytest.fixture(scope="module")
def client():
    with httpx.Client(timeout=5) as c:
        yield c


def get(sim, client, action, **params):
    return client.get(sim.url, params={"action": action, "api_key": KEY, **params})


def write(sim, client, action, data, method="POST", query_key=True, body_key=True, **kw):
    params = {"action": action, **({"api_key": KEY} if query_key else {})}
    body = {"data": {**({"apikey": KEY} if body_key else {}), "action": action, **data}}
    return client.request(method, sim.url, params=params, json=body, **kw)


def page(sim, client, n):
    response = get(sim, client, "getallcustomers", page=n)
    assert response.status_code == 200
    return response.json()


NEW = {"firstname": "Ada", "surname": "Nguyen", "email": "ada.nguyen@example.com.au",
       "phone1": "0412 345 678", "type": "RESIDENTIAL"}


# -- listing ---------------------------------------------------------------------------------

def test_list_page_is_read_shape(sim, client):
    """A page is a bare array of 50 read-shape objects with the documented key order and types."""
    rows = page(sim, client, 1)
    assert len(rows) == 50
    assert all(list(row) == R_KEYS for row in rows)
    assert [row["customer_id"] for row in rows] == [str(i) for i in range(70001, 70051)]
    first = rows[0]
    assert set(first["owner_user_info"]) == {"user_id", "first_name", "last_name", "phone_number",
                                             "email", "work_title", "username"}
    assert isinstance(first["owner_user_info"]["user_id"], str)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", first["creation_date"])
    assert first["gst_status"] in ("GST Registered", "Not GST Registered")
    assert first["customer_type"] in ("Residential", "Commercial", "Large-Scale")
    assert first["customer_status"] in ("No Status Set", "New Contacts", "Signed", "Mega Status")
    projects = [p for row in rows for p in row["projects"]]
    assert projects and all(list(p) == PROJECT_KEYS for p in projects)
    assert all(p["project_title"] == f"Project #{p['project_id']}" for p in projects)
    assert all(isinstance(p["project_id"], str) and p["system_size"].endswith("kW") for p in projects)
    notes = [n for row in rows for n in row["customer_notes"]]
    assert notes and all(set(n) == {"datetime", "note"} for n in notes)


def test_pagination_in_id_order(sim, client):
    """Pages hold 50, the last page is short, a page past the end is [], and no id repeats."""
    pages = [page(sim, client, n) for n in (1, 2, 3, 4, 99)]
    assert [len(p) for p in pages] == [50, 50, 20, 0, 0]
    ids = [int(r["customer_id"]) for p in pages for r in p]
    assert ids == list(range(70001, 70121))


def test_pagination_in_newest_order(sim, client):
    """In newest order page 1 starts with the highest id and ids descend across pages."""
    sim.account.set_order("newest")
    pages = [page(sim, client, n) for n in (1, 2, 3, 4)]
    assert [len(p) for p in pages] == [50, 50, 20, 0]
    ids = [int(r["customer_id"]) for p in pages for r in p]
    assert ids == list(range(70120, 70000, -1))


def test_page_defaults_and_bad_pages(sim, client):
    """page defaults to 1; a non-numeric or zero page is INVALID_PARAMETERS with HTTP 400."""
    assert get(sim, client, "getallcustomers").json() == page(sim, client, 1)
    for bad in ("two", "0", "-1", "1.5"):
        response = get(sim, client, "getallcustomers", page=bad)
        assert response.status_code == 400
        assert response.json()["code"] == "INVALID_PARAMETERS"


# -- routing and auth ------------------------------------------------------------------------

def test_wrong_or_missing_key(sim, client):
    """A wrong or missing api_key is 401 INVALID_API_KEY with the documented message."""
    for params in ({"api_key": "nope"}, {}):
        response = client.get(sim.url, params={"action": "getallcustomers", **params})
        assert response.status_code == 401
        assert response.json() == {"code": "INVALID_API_KEY", "message": "Invalid API key"}


def test_unknown_or_missing_action(sim, client):
    """An unknown or missing action is 404 NOT_FOUND, as the old docs' API-wide code says."""
    expected = {"code": "NOT_FOUND", "message": "The requested endpoint does not exist"}
    for params in ({"action": "getprojectinfo"}, {"action": "GetAllCustomers"}, {}):
        response = client.get(sim.url, params={"api_key": KEY, **params})
        assert response.status_code == 404
        assert response.json() == expected


def test_methods_per_action(sim, client):
    """Each action accepts only its documented methods; others get 405 with a code/message body."""
    for method, action in (("POST", "getallcustomers"), ("GET", "createcustomer"),
                           ("PUT", "deletecustomer"), ("DELETE", "updatecustomer"),
                           ("GET", "subscribe_customer"), ("PUT", "unsubscribe_customer")):
        response = client.request(method, sim.url, params={"action": action, "api_key": KEY})
        assert response.status_code == 405, (method, action)
        assert set(response.json()) == {"code", "message"}


def test_other_paths_are_nginx_404(sim, client):
    """A path other than /apidata.php (like the old update URL without it) is an HTML 404."""
    response = client.post(sim.base_url + "/", params={"action": "updatecustomer", "api_key": KEY})
    assert response.status_code == 404
    assert "nginx" in response.text and response.headers["content-type"].startswith("text/html")


# -- lookups ---------------------------------------------------------------------------------

def test_lookup_by_email_returns_one_full_object(sim, client):
    """getcustomerByemail and getcustomerid return the same single read-shape object, any case."""
    listed = page(sim, client, 1)[7]
    email = listed["customer_email"]
    for action in ("getcustomerByemail", "getcustomerid"):
        for variant in (email, email.upper()):
            response = get(sim, client, action, customer_email=variant)
            assert response.status_code == 200
            assert response.json() == listed
    assert get(sim, client, "getcustomerByemail", customer_id=listed["customer_id"]).json() == listed
    assert get(sim, client, "getcustomer", customer_id=listed["customer_id"]).json() == listed


def test_lookup_errors(sim, client):
    """Unknown email or id is 404 CUSTOMER_NOT_FOUND; a missing or non-numeric parameter is 400."""
    for action, params in (("getcustomerByemail", {"customer_email": "nobody@example.com"}),
                           ("getcustomerid", {"customer_email": "nobody@example.com"}),
                           ("getcustomer", {"customer_id": "99999"}),
                           ("getcustomerByemail", {"customer_id": "99999"})):
        response = get(sim, client, action, **params)
        assert response.status_code == 404
        assert response.json()["code"] == "CUSTOMER_NOT_FOUND"
    for action, params in (("getcustomerByemail", {}), ("getcustomer", {}),
                           ("getcustomer", {"customer_id": "abc"})):
        response = get(sim, client, action, **params)
        assert response.status_code == 400
        assert response.json()["code"] == "INVALID_PARAMETERS"


def test_duplicate_email_lookup_returns_lowest_id(fresh, client):
    """When customers share an email, the lookup returns the one with the lowest id."""
    first = fresh.account.create_customer(email="Shared@Example.com")
    fresh.account.create_customer(email="shared@example.com")
    response = get(fresh, client, "getcustomerid", customer_email="SHARED@example.com")
    assert response.json()["customer_id"] == str(first)


def test_customer_of_project(sim, client):
    """getcustomerofproject returns the P shape in its Message wrapper for that project."""
    row = next(r for r in page(sim, client, 1) if r["projects"] and r["customer_notes"])
    project = row["projects"][-1]
    response = get(sim, client, "getcustomerofproject", project_id=project["project_id"])
    assert response.status_code == 200
    body = response.json()
    assert body["Message"] == "Customer details retrieved successfully!"
    customer = body["Customer"]
    assert list(customer) == ["customerID", "uid", "gstRegistered", "firstName", "surname",
                              "phone1", "phone2", "email", "companyName", "companyPhone",
                              "customerabn", "siteAddress", "note", "contactTime"]
    assert customer["customerID"] == int(row["customer_id"])
    assert customer["gstRegistered"] == (1 if row["gst_status"] == "GST Registered" else 0)
    site = project["site_address"]
    assert customer["siteAddress"] == (
        f"{site['streetnum']} {site['street']}, {site['suburb']}, {site['state']}, {site['postcode']}")
    assert customer["note"] == max(row["customer_notes"], key=lambda n: n["datetime"])["note"]
    assert customer["uid"] is None or re.fullmatch(r"[0-9a-f]{8}", customer["uid"])


def test_customer_of_project_errors(sim, client):
    """An unknown project is 404 CAMPAIGN_NOT_FOUND (the page's own code); a bad id is 400."""
    response = get(sim, client, "getcustomerofproject", project_id="1")
    assert response.status_code == 404
    assert response.json() == {"code": "CAMPAIGN_NOT_FOUND", "message": "No project exists with ID: 1"}
    for params in ({}, {"project_id": "x"}):
        assert get(sim, client, "getcustomerofproject", **params).status_code == 400


# -- writes ----------------------------------------------------------------------------------

def test_create_customer(fresh, client):
    """A create returns its id as a string; the customer is New Contacts, dated today, bare."""
    response = write(fresh, client, "createcustomer", {**NEW, "phone2": "", "companyname": "",
                                                       "companyphone": "", "gststatus": "1",
                                                       "useremail": ""})
    assert response.status_code == 200
    body = response.json()
    assert body == {"Message": "Customer created successfully!", "id": body["id"]}
    assert body["id"] == "70061"
    row = get(fresh, client, "getcustomer", customer_id=body["id"]).json()
    assert row["customer_first_name"] == "Ada" and row["customer_phone_1"] == "0412 345 678"
    assert row["customer_status"] == "New Contacts"
    assert row["creation_date"] == "2026-03-14"
    assert row["gst_status"] == "GST Registered"
    assert row["customer_notes"] == [] and row["projects"] == []
    assert row["owner_user_info"]["user_id"] == "221"  # the key's owner
    assert page(fresh, client, 2)[-1] == row


def test_create_type_words(fresh, client):
    """The type is accepted in either doc generation's spelling, in any case."""
    expected = {"RESIDENTIAL": "Residential", "Commercial": "Commercial",
                "LARGE-SCALE": "Large-Scale", "Large Scale": "Large-Scale", "large-scale": "Large-Scale"}
    for sent, shown in expected.items():
        created = write(fresh, client, "createcustomer", {**NEW, "type": sent}).json()
        row = get(fresh, client, "getcustomer", customer_id=created["id"]).json()
        assert row["customer_type"] == shown


def test_create_missing_required_fields(fresh, client):
    """A missing or blank required field is 400 INVALID_PARAMETERS naming the field."""
    response = write(fresh, client, "createcustomer", {k: v for k, v in NEW.items() if k != "firstname"})
    assert response.status_code == 400
    assert response.json() == {"code": "INVALID_PARAMETERS",
                               "message": "Required field 'firstname' is missing"}
    for name in ("surname", "email", "phone1", "type"):
        response = write(fresh, client, "createcustomer", {**NEW, name: ""})
        assert response.json()["message"] == f"Required field '{name}' is missing"
    assert fresh.account.ids()[-1] == 70060  # nothing was created


def test_create_invalid_values(fresh, client):
    """An unknown type, a bad gststatus or an unknown useremail is INVALID_PARAMETERS."""
    for extra in ({"type": "HOUSE"}, {"gststatus": 2}, {"gststatus": "yes"},
                  {"useremail": "stranger@example.com"}):
        response = write(fresh, client, "createcustomer", {**NEW, **extra})
        assert response.status_code == 400, extra
        assert response.json()["code"] == "INVALID_PARAMETERS"


def test_create_owner_by_useremail(fresh, client):
    """useremail naming an existing user makes that user the owner."""
    created = write(fresh, client, "createcustomer", {**NEW, "useremail": "Priya.Raman@bigsolarcity.com.au"}).json()
    row = get(fresh, client, "getcustomer", customer_id=created["id"]).json()
    assert row["owner_user_info"]["user_id"] == "305"


def test_create_key_placement(fresh, client):
    """Create takes the key in the URL or the body; none, or two that differ, is 401."""
    assert write(fresh, client, "createcustomer", NEW, query_key=False).status_code == 200
    assert write(fresh, client, "createcustomer", NEW, body_key=False).status_code == 200
    assert write(fresh, client, "createcustomer", NEW, query_key=False, body_key=False).status_code == 401
    response = client.post(fresh.url, params={"action": "createcustomer", "api_key": "wrong"},
                           json={"data": {"apikey": KEY, **NEW}})
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_API_KEY"


def test_action_in_body_only(fresh, client):
    """The action may come from data.action alone, with the key in the body."""
    response = client.post(fresh.url, json={"data": {"apikey": KEY, "action": "createcustomer", **NEW}})
    assert response.status_code == 200 and "id" in response.json()


def test_update_is_partial(fresh, client):
    """An update changes only the fields sent, takes PUT or POST and a string or int id."""
    before = get(fresh, client, "getcustomer", customer_id="70010").json()
    response = write(fresh, client, "updatecustomer", {"pkcustomerid": 70010, "firstname": "Zed"}, method="PUT")
    assert response.status_code == 200
    assert response.json() == {"Message": "Customer updated successfully!", "CustomerId": "70010"}
    after = get(fresh, client, "getcustomer", customer_id="70010").json()
    assert after == {**before, "customer_first_name": "Zed"}
    write(fresh, client, "updatecustomer", {"pkcustomerid": "70010", "phone2": "0400 111 222",
                                            "type": "COMMERCIAL", "gststatus": 1})
    after = get(fresh, client, "getcustomer", customer_id="70010").json()
    assert (after["customer_phone_2"], after["customer_type"], after["gst_status"]) == (
        "0400 111 222", "Commercial", "GST Registered")


def test_update_empty_string_clears_optional_field(fresh, client):
    """Sending "" clears an optional field; a blank required field is refused."""
    write(fresh, client, "updatecustomer", {"pkcustomerid": 70011, "companyname": "Acme", "phone2": "0400 000 001"})
    write(fresh, client, "updatecustomer", {"pkcustomerid": 70011, "companyname": "", "phone2": ""})
    row = get(fresh, client, "getcustomer", customer_id="70011").json()
    assert (row["company_name"], row["customer_phone_2"]) == ("", "")
    response = write(fresh, client, "updatecustomer", {"pkcustomerid": 70011, "surname": ""})
    assert response.status_code == 400 and response.json()["code"] == "INVALID_PARAMETERS"


def test_update_errors(fresh, client):
    """Unknown id is 404 with the documented message; a missing id is 400; the body key is required."""
    response = write(fresh, client, "updatecustomer", {"pkcustomerid": 79461, "firstname": "X"})
    assert response.status_code == 404
    assert response.json() == {"code": "CUSTOMER_NOT_FOUND", "message": "No customer exists with ID: 79461"}
    response = write(fresh, client, "updatecustomer", {"firstname": "X"})
    assert response.status_code == 400 and response.json()["code"] == "INVALID_PARAMETERS"
    response = write(fresh, client, "updatecustomer", {"pkcustomerid": 70001, "firstname": "X"}, body_key=False)
    assert response.status_code == 401


def test_delete(fresh, client):
    """Delete (DELETE or POST) removes the customer; an unknown id is 404 with the documented text."""
    response = write(fresh, client, "deletecustomer", {"pkcustomerid": 70005}, method="DELETE")
    assert response.json() == {"Message": "Customer Deleted Permanently!", "CustomerId": "70005"}
    response = write(fresh, client, "deletecustomer", {"pkcustomerid": "70006"})
    assert response.status_code == 200
    ids = [r["customer_id"] for r in page(fresh, client, 1) + page(fresh, client, 2)]
    assert "70005" not in ids and "70006" not in ids and len(ids) == 58
    assert get(fresh, client, "getcustomer", customer_id="70005").status_code == 404
    response = write(fresh, client, "deletecustomer", {"pkcustomerid": 70005})
    assert response.status_code == 404
    assert response.json() == {"code": "CUSTOMER_NOT_FOUND", "message": "The specified customer does not exist"}
    assert write(fresh, client, "deletecustomer", {}).status_code == 400


def test_malformed_bodies(fresh, client):
    """The old docs' trailing-comma JSON is 400 "Invalid JSON body"; a body without data is 400."""
    trailing_comma = b'{"data": {"apikey": "%s", "pkcustomerid": 70001, "type": "RESIDENTIAL",}}' % KEY.encode()
    response = client.post(fresh.url, params={"action": "updatecustomer", "api_key": KEY}, content=trailing_comma)
    assert response.status_code == 400
    assert response.json() == {"code": "INVALID_PARAMETERS", "message": "Invalid JSON body"}
    response = client.post(fresh.url, params={"action": "createcustomer", "api_key": KEY}, json=NEW)
    assert response.status_code == 400 and response.json()["code"] == "INVALID_PARAMETERS"


# -- webhook subscriptions -------------------------------------------------------------------

def hook(sim, client, action, body, method="POST", key=KEY):
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    return client.request(method, sim.url, params={"action": action, "api_key": key}, **kwargs)


def test_subscribe_and_unsubscribe(fresh, client):
    """Subscribing stores one type per call; unsubscribing a URL removes all its types."""
    url = "http://127.0.0.1:9/hooks/created"
    for kind in ("customer_created", "customer_status_change"):
        response = hook(fresh, client, "subscribe_customer", {"hookUrl": url, "type_request": kind})
        assert response.json() == {"success": True, "message": "Webhook subscribed successfully"}
    hook(fresh, client, "subscribe_customer", {"hookUrl": "https://example.com/h", "type_request": "customer_created"})
    assert len(fresh.account.webhooks()) == 3
    response = hook(fresh, client, "unsubscribe_customer", {"hookUrl": url}, method="DELETE")
    assert response.json() == {"success": True, "message": "Webhook unsubscribed successfully"}
    assert fresh.account.webhooks() == [{"hookUrl": "https://example.com/h", "type_request": "customer_created"}]
    response = hook(fresh, client, "unsubscribe_customer", {"hookUrl": url})
    assert response.status_code == 400
    assert response.json() == {"success": False, "message": "No matching webhook found for this user"}


@pytest.mark.parametrize(("body", "key", "message"), [
    (b"", KEY, "Empty request body"),
    (b'{"hookUrl": "https://x.example/h",}', KEY, "Invalid JSON"),
    ({"type_request": "customer_created"}, KEY, "hookUrl parameter is required"),
    ({"hookUrl": "", "type_request": "customer_created"}, KEY, "hookUrl parameter is required"),
    ({"hookUrl": "example.com/hook", "type_request": "customer_created"}, KEY, "Invalid webhook URL format"),
    ({"hookUrl": "ftp://example.com/h", "type_request": "customer_created"}, KEY, "Invalid webhook URL format"),
    ({"hookUrl": "https://x.example/h", "type_request": "contract_signed"}, KEY, "Invalid webhook type"),
    ({"hookUrl": "https://x.example/h", "type_request": "customer_created"}, "bad", "Invalid API key"),
])
def test_subscribe_validation(sim, client, body, key, message):
    """Each invalid subscribe request gets its documented message with HTTP 400."""
    response = hook(sim, client, "subscribe_customer", body, key=key)
    assert response.status_code == 400
    assert response.json() == {"success": False, "message": message}


# -- quirks ----------------------------------------------------------------------------------

def test_quirk_int_ids(sim, client):
    """int_ids sends customer, project and user ids as integers, from the next request on."""
    assert isinstance(page(sim, client, 1)[0]["customer_id"], str)
    sim.quirks.update(int_ids=True)
    rows = page(sim, client, 1)
    assert rows[0]["customer_id"] == 70001
    assert isinstance(rows[0]["owner_user_info"]["user_id"], int)
    assert all(isinstance(p["project_id"], int) for r in rows for p in r["projects"])


def test_quirk_notes_as_string(sim, client):
    """notes_as_string sends "" for a customer without notes and still a list for others."""
    sim.quirks.update(notes_as_string=True)
    rows = page(sim, client, 1)
    notes = [r["customer_notes"] for r in rows]
    assert "" in notes and [] not in notes
    assert any(isinstance(n, list) and n for n in notes)


def test_quirk_status_as_number(sim, client):
    """status_as_number sends the status as "0".."3"."""
    names = [r["customer_status"] for r in page(sim, client, 1)]
    sim.quirks.update(status_as_number=True)
    numbers = [r["customer_status"] for r in page(sim, client, 1)]
    words = ["No Status Set", "New Contacts", "Signed", "Mega Status"]
    assert numbers == [str(words.index(n)) for n in names]


def test_quirk_datetime_creation(sim, client):
    """datetime_creation sends creation_date as "YYYY-MM-DD HH:MM:SS"."""
    sim.quirks.update(datetime_creation=True)
    row = get(sim, client, "getcustomer", customer_id="70001").json()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", row["creation_date"])


def test_quirk_write_responses(fresh, client):
    """create_without_id drops the create's id; update_id_key="id" moves the update's id."""
    fresh.quirks.update(create_without_id=True, update_id_key="id")
    assert write(fresh, client, "createcustomer", NEW).json() == {"Message": "Customer created successfully!"}
    assert fresh.account.find_by_email(NEW["email"]) == 70061
    response = write(fresh, client, "updatecustomer", {"pkcustomerid": 70061, "surname": "Tran"})
    assert response.json() == {"Message": "Customer updated successfully!", "id": "70061"}


def test_quirk_errors_in_200(sim, client):
    """errors_in_200 sends the same error bodies with HTTP 200."""
    sim.quirks.update(errors_in_200=True)
    response = client.get(sim.url, params={"action": "getallcustomers", "api_key": "nope"})
    assert response.status_code == 200
    assert response.json() == {"code": "INVALID_API_KEY", "message": "Invalid API key"}
    response = get(sim, client, "getcustomer", customer_id="1")
    assert response.status_code == 200 and response.json()["code"] == "CUSTOMER_NOT_FOUND"


def test_quirks_validate():
    """Quirks reject unknown names and bad values, and old_docs() switches every one on."""
    with pytest.raises(ValueError):
        Quirks().update(nope=True)
    with pytest.raises(ValueError):
        Quirks(update_id_key="customer_id")
    quirks = Quirks.old_docs()
    assert quirks.int_ids and quirks.errors_in_200 and quirks.update_id_key == "id"
    assert quirks.reset() == Quirks()
