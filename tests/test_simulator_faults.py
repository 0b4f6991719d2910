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
