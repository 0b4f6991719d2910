"""The simulator's switchable transport faults and latency, observed by a plain HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

import httpx
import pytest

from mirror.simulator import FaultPlan, SimulatorServer
from mirror.simulator.faults import Fault

KEY = "fault-test-key"
NEW = {"firstname": "Lost", "surname": "Create", "email": "lost.create@example.com",
       "phone1": "0400 123 456", "type": "RESIDENTIAL"}


@pytest.fixture(scope="module")
def shared():
    with SimulatorServer(customers=80, seed=3, api_key=KEY) as sim:
        yield sim


@pytest.fixture
def sim(shared):
    """The shared server with no faults configured."""
    shared.faults.reset()
    shared.faults.configure(seed=3)
    return shared


@pytest.fixture
def client():
    with httpx.Client(timeout=5) as c:
        yield c


def list_page(sim, client, page=1):
    return client.get(sim.url, params={"action": "getallcustomers", "api_key": KEY, "page": page})


def create(sim, client, data=NEW):
    return client.post(sim.url, params={"action": "createcustomer", "api_key": KEY},
                       json={"data": {"apikey": KEY, "action": "createcustomer", **data}})


def test_scripted_429_with_retry_after(sim, client):
    """A scripted 429 carries an integer Retry-After: the plan's default, an override, or none."""
    sim.faults.configure(retry_after=2)
    sim.faults.script("429")
    sim.faults.script("429", retry_after=9)
    sim.faults.script("429", retry_after="omit")
    first, second, third = (list_page(sim, client) for _ in range(3))
    assert [r.status_code for r in (first, second, third)] == [429, 429, 429]
    assert first.headers["retry-after"] == "2"
    assert second.headers["retry-after"] == "9"
    assert "retry-after" not in third.headers
    assert list_page(sim, client).status_code == 200  # the script is used up


def test_5xx_pages_are_nginx_html(sim, client):
    """Scripted 500, 502 and 503 answer with nginx-style HTML pages of that status."""
    for kind in ("500", "502", "503"):
        sim.faults.script(kind)
        response = list_page(sim, client)
        assert response.status_code == int(kind)
        assert response.headers["content-type"].startswith("text/html")
        assert f"<title>{kind} " in response.text and "nginx" in response.text


def test_drop_breaks_the_connection(sim, client):
    """A dropped response promises more bytes than it sends, so the client sees a protocol error."""
    sim.faults.script("drop")
    with pytest.raises(httpx.RemoteProtocolError):
        list_page(sim, client)
    assert list_page(sim, client).status_code == 200  # the next request gets a fresh connection


def test_drop_is_not_logged_as_an_error(sim, client, caplog):
    """The deliberate drop does not put a traceback in uvicorn's error log."""
    sim.faults.script("drop")
    with caplog.at_level(logging.ERROR), pytest.raises(httpx.RemoteProtocolError):
        list_page(sim, client)
    list_page(sim, client)
    assert not [r for r in caplog.records if r.name.startswith("uvicorn")]


def test_truncated_json(sim, client):
    """A truncated response is HTTP 200 with a matching Content-Length and half a JSON body."""
    full = list_page(sim, client).content
    sim.faults.script("truncate")
    response = list_page(sim, client)
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content) == len(full) // 2
    assert full.startswith(response.content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_php_fatal_error_page(sim, client):
    """The html fault is HTTP 200 with a PHP fatal-error page instead of JSON."""
    sim.faults.script("html")
    response = list_page(sim, client)
    assert response.status_code == 200
    assert "Fatal error" in response.text and response.headers["content-type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_script_matches_action_and_count(sim, client):
    """A scripted fault waits for its action and hits exactly `count` matching requests."""
    sim.faults.script("503", count=2, action="getcustomer")
    assert list_page(sim, client).status_code == 200
    lookups = [client.get(sim.url, params={"action": "getcustomer", "customer_id": "70001",
                                           "api_key": KEY}).status_code for _ in range(3)]
    assert lookups == [503, 503, 200]
    assert [(f["action"], f["kind"]) for f in sim.faults.injected()[-2:]] == [("getcustomer", "503")] * 2


def test_script_beats_rates(sim, client):
    """Scripted faults take precedence over the random rates."""
    sim.faults.configure(rate_5xx=1.0)
    sim.faults.script("429")
    assert list_page(sim, client).status_code == 429
    assert list_page(sim, client).status_code in (500, 502, 503)


def test_rates_are_seeded(sim, client):
    """The same seed gives the same faults for the same request sequence; another seed differs."""
    def run(seed):
        sim.faults.configure(seed=seed, rate_429=0.2, rate_5xx=0.2, rate_html=0.1)
        return [list_page(sim, client).status_code for _ in range(40)]

    first, again, other = run(1), run(1), run(2)
    assert first == again
    assert first != other
    assert {429, 200} <= set(first) and {500, 502, 503} & set(first)


def test_lost_create_is_applied(sim, client):
    """A lost create reaches the account, but the client gets a broken response."""
    sim.faults.script("lost_create")
    assert list_page(sim, client).status_code == 200  # not a create: untouched
    with pytest.raises(httpx.RemoteProtocolError):
        create(sim, client)
    customer_id = sim.account.find_by_email(NEW["email"])
    assert customer_id is not None
    entry = sim.account.write_log()[-1]
    assert (entry["action"], entry["applied"], entry["fault"]) == ("createcustomer", True, "lost_create")
    assert entry["response"] == {"Message": "Customer created successfully!", "id": str(customer_id)}


def test_lost_create_rate(client):
    """rate_lost_create only ever hits creates, and every hit is applied."""
    plan = FaultPlan(seed=4, rate_lost_create=1.0)
    with SimulatorServer(customers=5, api_key=KEY, faults=plan) as sim:
        assert list_page(sim, client).status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            create(sim, client)
        assert len(sim.account.ids()) == 6


def test_faulted_writes_are_not_applied(sim, client):
    """Under drop, truncate, html, 429 and 5xx a write changes nothing and is logged as such."""
    for kind in ("drop", "truncate", "html", "429", "503"):
        sim.faults.script(kind)
        with contextlib.suppress(httpx.RemoteProtocolError):
            client.put(sim.url, params={"action": "updatecustomer", "api_key": KEY},
                       json={"data": {"apikey": KEY, "pkcustomerid": 70002, "firstname": kind}})
    assert sim.account.get(70002)["first_name"] not in ("drop", "truncate", "html", "429", "503")
    entries = sim.account.write_log()[-5:]
    assert [(e["fault"], e["applied"]) for e in entries] == [
        ("drop", False), ("truncate", False), ("html", False), ("429", False), ("503", False)]


def test_admin_routes_never_fault(sim, client):
    """Faults apply to /apidata.php only, never to the admin routes."""
    sim.faults.configure(rate_5xx=1.0, latency_ms=500)
    started = time.perf_counter()
    response = client.get(sim.base_url + "/_admin/calls", params={"api_key": KEY})
    assert response.status_code == 200 and time.perf_counter() - started < 0.5
    assert list_page(sim, client).status_code in (500, 502, 503)


def test_latency_overlaps_concurrent_requests(sim):
    """Latency is an async sleep: 8 concurrent requests at 200 ms overlap instead of queueing."""
    sim.faults.configure(latency_ms=200)

    async def timed(client, page):
        start = time.perf_counter()
        response = await client.get(sim.url, params={"action": "getallcustomers", "api_key": KEY, "page": page})
        return response.status_code, time.perf_counter() - start

    async def main():
        async with httpx.AsyncClient(timeout=5, limits=httpx.Limits(max_connections=8)) as client:
            start = time.perf_counter()
            results = await asyncio.gather(*(timed(client, p) for p in range(1, 9)))
            return results, time.perf_counter() - start

    results, total = asyncio.run(main())
    assert all(status == 200 and took >= 0.2 for status, took in results)  # each one waited
    assert total < 8 * 0.2 / 2  # but together they took far less than one after another


def test_fault_plan_validates():
    """The plan rejects unknown settings, rates outside 0..1 and unknown kinds."""
    plan = FaultPlan()
    for bad in ({"rate_429": 1.5}, {"rate_nope": 0.1}, {"latency_ms": -1}, {"retry_after": "soon"}):
        with pytest.raises(ValueError):
            plan.configure(**bad)
    with pytest.raises(ValueError):
        plan.script("teapot")
    assert plan.settings()["rate_429"] == 0.0


def test_stalled_create_is_applied_before_any_response(sim):
    """A stalled create is in the account and the write log while the client still waits."""
    data = {**NEW, "email": "stalled.create@example.com"}
    sim.faults.script("stall", action="createcustomer", stall_seconds=2)
    started = time.perf_counter()
    with httpx.Client(timeout=httpx.Timeout(5, read=0.3)) as impatient, pytest.raises(httpx.ReadTimeout):
        create(sim, impatient, data)
    customer_id = sim.account.find_by_email(data["email"])
    assert customer_id is not None
    entry = sim.account.write_log()[-1]
    assert (entry["action"], entry["applied"], entry["fault"]) == ("createcustomer", True, "stall")
    assert entry["response"] == {"Message": "Customer created successfully!", "id": str(customer_id)}
    assert sim.faults.injected()[-1]["kind"] == "stall"
    assert time.perf_counter() - started < 2  # all of this before the response was due


def test_stall_serves_other_requests(sim):
    """Other requests are answered at once while a stalled response is held back, then it is sent."""
    data = {**NEW, "email": "stall.served@example.com"}
    sim.faults.script("stall", action="createcustomer", stall_seconds=1)

    async def main():
        async with httpx.AsyncClient(timeout=5) as client:
            started = time.perf_counter()
            stalled = asyncio.create_task(client.post(
                sim.url, params={"action": "createcustomer", "api_key": KEY},
                json={"data": {"apikey": KEY, "action": "createcustomer", **data}}))
            while not any(f["kind"] == "stall" for f in sim.faults.injected()):
                await asyncio.sleep(0.01)
            pages = []
            for page in (1, 2, 3):
                start = time.perf_counter()
                response = await client.get(sim.url, params={"action": "getallcustomers",
                                                             "api_key": KEY, "page": page})
                pages.append((response.status_code, time.perf_counter() - start))
            pending = not stalled.done()
            response = await stalled
            return pages, pending, response, time.perf_counter() - started

    pages, pending, response, took = asyncio.run(main())
    assert all(status == 200 and seconds < 0.5 for status, seconds in pages)
    assert pending
    assert response.status_code == 200 and took >= 1
    assert response.json() == {"Message": "Customer created successfully!",
                               "id": str(sim.account.find_by_email(data["email"]))}


def test_admin_route_sets_stall_seconds(sim, client):
    """POST /_admin/faults sets the plan's stall_seconds and a script entry's own."""
    response = client.post(sim.base_url + "/_admin/faults", params={"api_key": KEY}, json={
        "stall_seconds": 0.4, "script": [{"kind": "stall", "action": "getcustomer", "stall_seconds": 0.1},
                                         {"kind": "stall", "action": "getallcustomers"}]})
    assert response.status_code == 200
    state = response.json()
    assert state["stall_seconds"] == 0.4 == sim.faults.settings()["stall_seconds"]
    assert [e["stall_seconds"] for e in state["script"]] == [0.1, None]
    started = time.perf_counter()
    assert list_page(sim, client).status_code == 200
    assert time.perf_counter() - started >= 0.4  # the plan's value, as the entry has none
    bad = client.post(sim.base_url + "/_admin/faults", params={"api_key": KEY}, json={"stall_seconds": -1})
    assert bad.status_code == 400 and sim.faults.settings()["stall_seconds"] == 0.4


def test_stall_settings_validate_and_reset():
    """stall_seconds defaults to 30, rejects negatives and other kinds, and rate_stall picks it up."""
    plan = FaultPlan(seed=1)
    assert plan.settings()["stall_seconds"] == 30
    for bad in (-1, "soon", float("inf")):
        with pytest.raises(ValueError):
            plan.configure(stall_seconds=bad)
    with pytest.raises(ValueError):
        plan.script("429", stall_seconds=1)
    plan.configure(stall_seconds=0.5, rate_stall=1.0)
    assert plan.decide("getallcustomers") == Fault("stall", 200, stall_seconds=0.5)
    plan.script("stall", stall_seconds=2)
    assert plan.decide("createcustomer").stall_seconds == 2
    plan.reset()
    assert (plan.settings()["stall_seconds"], plan.settings()["rate_stall"]) == (30, 0.0)


# -- echo faults: error pages that show the request back --------------------------------------

# Sent as the key of the echoed requests (the fault is decided before the key is checked), with
# characters a URL encodes, so each `echo` setting shows it differently.
ECHOED_KEY = "sk-echo/slash+plus=equals~tilde!bang"


def echoed_create(sim, client, **fault):
    sim.faults.script(fault.pop("kind"), action="createcustomer", **fault)
    return client.post(sim.url, params={"action": "createcustomer", "api_key": ECHOED_KEY},
                       json={"data": {"apikey": ECHOED_KEY, "action": "createcustomer", **NEW}})


def test_echo_pages_show_the_whole_request(sim, client):
    """echo_html (500) and echo_json (400) show the parameters, the URI as sent and the body, and apply nothing."""
    before = len(sim.account.ids())
    page = echoed_create(sim, client, kind="echo_html")
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
    encoded = "sk-echo%2Fslash%2Bplus%3Dequals~tilde%21bang"  # as httpx sent it
    assert f"api_key={encoded}" in page.text  # the URI as received
    assert f"[api_key] =&gt; {ECHOED_KEY}" in page.text[:120]  # print_r($_GET), decoded, up front
    assert f"&quot;apikey&quot;:&quot;{ECHOED_KEY}&quot;" in page.text  # the body, HTML-escaped
    body = echoed_create(sim, client, kind="echo_json")
    assert body.status_code == 400 and body.headers["content-type"].startswith("application/json")
    assert ECHOED_KEY.replace("/", "\\/") in body.text and "sk-echo/" not in body.text  # PHP's "\/"
    error = body.json()
    assert error["code"] == "INVALID_PARAMETERS"
    assert f"api_key={encoded}" in error["message"] and f"[api_key] => {ECHOED_KEY}\n" in error["message"]
    assert f'"apikey":"{ECHOED_KEY}"' in error["message"]
    assert len(sim.account.ids()) == before  # neither create was applied
    assert [(e["fault"], e["applied"], e["status"]) for e in sim.account.write_log()[-2:]] == [
        ("echo_html", False, 500), ("echo_json", False, 400)]
    assert [(f["kind"], f["status"]) for f in sim.faults.injected()[-2:]] == [("echo_html", 500), ("echo_json", 400)]


def test_echo_settings_show_part_of_the_key(sim, client):
    """`prefix` shows the key's first 20 characters and `urlencoded` the key as PHP's urlencode writes it."""
    cut = echoed_create(sim, client, kind="echo_json", status=503, echo="prefix")
    assert cut.status_code == 503 and cut.json()["code"] == "SERVER_ERROR"
    message = cut.json()["message"]
    assert f"[api_key] => {ECHOED_KEY[:20]}\n" in message and f'"apikey":"{ECHOED_KEY[:20]}"' in message
    assert ECHOED_KEY[:21] not in message and "%2F" not in message
    encoded = echoed_create(sim, client, kind="echo_html", status=422, echo="urlencoded")
    assert encoded.status_code == 422
    php = "sk-echo%2Fslash%2Bplus%3Dequals%7Etilde%21bang"
    assert f"[api_key] =&gt; {php}" in encoded.text and f"api_key={php}" in encoded.text
    assert f"&quot;apikey&quot;:&quot;{php}&quot;" in encoded.text
    assert "slash+plus" not in encoded.text and "equals~" not in encoded.text


def test_echo_settings_validate(sim, client):
    """status (400..599) and echo (full, prefix, urlencoded) are for the echo kinds only; the admin route takes them."""
    plan = FaultPlan()
    for bad in ({"kind": "echo_html", "status": 200}, {"kind": "echo_json", "status": 600},
                {"kind": "echo_json", "status": True}, {"kind": "echo_html", "echo": "half"},
                {"kind": "500", "status": 500}, {"kind": "html", "echo": "full"}):
        with pytest.raises(ValueError):
            plan.script(**bad)
    plan.script("echo_json")
    assert plan.decide("getallcustomers") == Fault("echo_json", 400, echo="full")
    response = client.post(sim.base_url + "/_admin/faults", params={"api_key": KEY}, json={
        "script": [{"kind": "echo_html", "action": "getallcustomers", "status": 502, "echo": "prefix"}]})
    assert response.status_code == 200
    assert response.json()["script"][0] | {"status": 502, "echo": "prefix"} == response.json()["script"][0]
    page = list_page(sim, client)
    assert page.status_code == 502 and f"[api_key] =&gt; {KEY}" in page.text  # KEY is under 20 characters
    bad = client.post(sim.base_url + "/_admin/faults", params={"api_key": KEY},
                      json={"script": [{"kind": "echo_html", "echo": "most"}]})
    assert bad.status_code == 400
