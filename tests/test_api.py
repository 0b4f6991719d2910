"""The API client against the simulator over 127.0.0.1: every action, error, quirk and fault."""

from __future__ import annotations

import pytest

from conftest import API_KEY, FakeClock, make_client
from mirror.api import SolarProofClient, Timeouts
from mirror.errors import (
    ApiUnavailableError,
    AuthError,
    EndpointError,
    HostNotFoundError,
    InvalidRequestError,
    NotIdentifiedError,
    NotFoundError,
    OutcomeUnknownError,
    PermanentApiError,
)
from mirror.retry import RetryPolicy

NEW_CUSTOMER = {
    "customerfirstname": "Matilda",
    "customersurname": "Nguyen",
    "customeremail": "matilda.nguyen@example.com.au",
    "customerphone1": "0412 555 019",
    "fkcustomertypeid": 1,
}


def some_customer(sim) -> dict:
    return sim.account.snapshot()["customers"][0]


def test_page_one_holds_fifty_read_shape_records(client):
    """getallcustomers page 1 returns 50 records with their JSON text as sent."""
    records = client.fetch_customer_page(1)
    assert len(records) == 50
    assert records[0].text.startswith("{") and records[0].value["customer_id"]


def test_lookups_by_email_and_id(client, sim):
    """getcustomerByemail, getcustomerid and getcustomer all return the canonical customer."""
    known = some_customer(sim)
    by_email = client.fetch_customers_by_email(known["email"])
    assert [c.remote_id for c in by_email][:1] == [known["id"]] or known["id"] in [c.remote_id for c in by_email]
    assert client.fetch_customer_id_by_email(known["email"])[0].fields["customeremail"].lower() == known["email"].lower()
    found = client.fetch_customer(known["id"])
    assert found.remote_id == known["id"] and found.fields["customerfirstname"] == known["first_name"]


def test_lookups_of_missing_customers_return_nothing(client):
    """A lookup that the API answers with CUSTOMER_NOT_FOUND is an empty result, not an error."""
    assert client.fetch_customers_by_email("nobody-at-all@example.invalid") == []
    assert client.fetch_customer_id_by_email("nobody-at-all@example.invalid") == []
    assert client.fetch_customer(9_999_999) is None


def test_customer_of_project_carries_abn_and_site(client, sim):
    """getcustomerofproject gives the enrichment fields of the project's customer."""
    owner = next(c for c in sim.account.snapshot()["customers"] if c["projects"] and c["abn"])
    project_id = owner["projects"][0]["project_id"]
    customer = client.fetch_customer_of_project(int(project_id))
    assert customer.remote_id == owner["id"]
    assert customer.fields["customerabn"] == owner["abn"]
    assert customer.fields["customer_site_address"]


def test_create_returns_the_new_id_and_the_customer_exists(client, sim):
    """createcustomer sends the write body and returns the id the API assigned."""
    new_id = client.create_customer(NEW_CUSTOMER)
    stored = sim.account.get(new_id)
    assert stored["first_name"] == "Matilda" and stored["type"] == 1
    last = sim.account.write_log()[-1]
    assert last["action"] == "createcustomer" and last["body"]["data"]["type"] == "RESIDENTIAL"
    assert last["body"]["data"]["apikey"] == "***"  # the simulator's log redacts it too


def test_create_without_id_in_response_returns_none(client, sim):
    """The old docs' create response has no id; the client says so with None."""
    sim.quirks.update(create_without_id=True)
    assert client.create_customer(dict(NEW_CUSTOMER, customeremail="noid@example.com")) is None
    assert client.fetch_customers_by_email("noid@example.com")


def test_create_missing_a_required_field_is_a_typed_refusal(client):
    """INVALID_PARAMETERS becomes InvalidRequestError naming the action and the API's message."""
    fields = dict(NEW_CUSTOMER)
    del fields["customerfirstname"]
    with pytest.raises(InvalidRequestError) as caught:
        client.create_customer(fields)
    assert caught.value.code == "INVALID_PARAMETERS"
    assert "createcustomer" in str(caught.value) and "firstname" in str(caught.value)


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_update_sends_only_the_given_fields(sim, clock, method):
    """updatecustomer carries only the changed fields, with the configured HTTP method."""
    target = some_customer(sim)
    with make_client(sim, clock, update_method=method) as client:
        client.update_customer(target["id"], {"customerphone2": "0400 111 222"})
    entry = sim.account.write_log()[-1]
    assert entry["method"] == method
    assert set(entry["body"]["data"]) == {"apikey", "action", "pkcustomerid", "phone2"}
    assert sim.account.get(target["id"])["phone2"] == "0400 111 222"
    assert sim.account.get(target["id"])["first_name"] == target["first_name"]


def test_update_of_a_missing_customer_is_not_found(client):
    """CUSTOMER_NOT_FOUND on update is a NotFoundError with the API's code."""
    with pytest.raises(NotFoundError) as caught:
        client.update_customer(9_999_999, {"customerfirstname": "X"})
    assert caught.value.code == "CUSTOMER_NOT_FOUND" and "updatecustomer" in str(caught.value)


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_delete_with_either_method(sim, clock, method):
    """deletecustomer removes the customer; deleting it again is NotFoundError."""
    with make_client(sim, clock, delete_method=method) as client:
        new_id = client.create_customer(dict(NEW_CUSTOMER, customeremail=f"del-{method}@example.com"))
        client.delete_customer(new_id)
        assert client.fetch_customer(new_id) is None
        with pytest.raises(NotFoundError):
            client.delete_customer(new_id)
    assert sim.account.write_log()[-2]["method"] == method


def test_webhook_subscription_calls(client):
    """subscribe/unsubscribe succeed; a bad event or an unknown URL is a typed refusal."""
    client.subscribe_webhook("https://mirror.example.com/webhooks/t1/created", "customer_created")
    with pytest.raises(InvalidRequestError, match="Invalid webhook type"):
        client.subscribe_webhook("https://mirror.example.com/x", "customer_updated")
    client.unsubscribe_webhook("https://mirror.example.com/webhooks/t1/created")
    with pytest.raises(NotFoundError, match="No matching webhook"):
        client.unsubscribe_webhook("https://mirror.example.com/webhooks/t1/created")


@pytest.mark.parametrize("errors_in_200", [False, True])
def test_wrong_key_is_an_auth_error_whatever_the_status(sim, clock, errors_in_200):
    """INVALID_API_KEY is AuthError both as a 4xx and inside HTTP 200, and is not retried."""
    sim.quirks.update(errors_in_200=errors_in_200)
    with SolarProofClient(sim.url, "wrong-key", sleep=clock.sleep, clock=clock) as client:
        with pytest.raises(AuthError) as caught:
            client.fetch_customer_page(1)
    assert caught.value.code == "INVALID_API_KEY"
    assert caught.value.status == (200 if errors_in_200 else 401)
    assert clock.sleeps == []


def test_errors_inside_http_200_are_still_errors(client, sim):
    """With the errors-in-200 quirk a missing customer is still NotFoundError on update."""
    sim.quirks.update(errors_in_200=True)
    with pytest.raises(NotFoundError):
        client.update_customer(9_999_999, {"customerfirstname": "X"})
    assert client.fetch_customers_by_email("nobody-at-all@example.invalid") == []


@pytest.mark.parametrize(
    "quirk", [{"int_ids": True}, {"notes_as_string": True}, {"status_as_number": True},
              {"datetime_creation": True}, {"update_id_key": "id"}],
)
def test_every_quirk_still_reads_the_same_customer(client, sim, quirk):
    """Each doc-generation quirk changes the wire format, never the canonical customer."""
    plain = [customer.fields for customer in map(_parse, client.fetch_customer_page(1))]
    sim.quirks.update(**quirk)
    quirky = [customer.fields for customer in map(_parse, client.fetch_customer_page(1))]
    assert plain == quirky


def _parse(record):
    from mirror.wire import parse_customer

    return parse_customer(record.value)


@pytest.mark.parametrize("kind", ["429", "500", "502", "503", "drop", "truncate", "html"])
def test_transient_faults_are_retried_until_success(client, sim, clock, kind):
    """Two faults in a row, then success: the read succeeds after two waits."""
    sim.faults.script(kind, count=2, action="getallcustomers")
    records = client.fetch_customer_page(2)
    assert len(records) == 50
    assert len(clock.sleeps) == 2
    assert client.stats.calls[("getallcustomers", "ok")] == 1


def test_retry_after_is_honoured(client, sim, clock):
    """A 429 with Retry-After: 7 makes the client wait exactly 7 s (on the fake clock)."""
    sim.faults.script("429", count=1, retry_after=7)
    client.fetch_customer_page(1)
    assert clock.sleeps == [7.0]
    assert client.stats.throttled == 1


def test_429_without_retry_after_backs_off_with_jitter(client, sim, clock):
    """Without Retry-After the wait comes from the jittered backoff window."""
    sim.faults.script("429", count=2, retry_after="omit")
    client.fetch_customer_page(1)
    assert len(clock.sleeps) == 2 and all(0 <= s <= 1.0 for s in clock.sleeps)


def test_persistent_failure_gives_up_with_a_clear_error(client, sim, clock):
    """After every try fails the client raises ApiUnavailableError naming action and cause."""
    sim.faults.script("503", count=10)
    with pytest.raises(ApiUnavailableError) as caught:
        client.fetch_customer_page(1)
    message = str(caught.value)
    assert "getallcustomers" in message and "gave up after 4 tries" in message and "HTTP 503" in message
    assert len(clock.sleeps) == 3


def test_the_deadline_stops_retries_early(sim, clock):
    """A Retry-After that would pass the deadline ends the call instead of waiting."""
    sim.faults.script("429", count=5, retry_after=40)
    with make_client(sim, clock, retry=RetryPolicy(attempts=10, deadline=60)) as client:
        with pytest.raises(ApiUnavailableError):
            client.fetch_customer_page(1)
    assert clock.sleeps == [40.0]


def test_a_lost_create_response_is_never_resent(client, sim):
    """A create whose response is lost raises OutcomeUnknownError; exactly one customer exists."""
    sim.faults.script("lost_create")
    fields = dict(NEW_CUSTOMER, customeremail="lost.response@example.com")
    with pytest.raises(OutcomeUnknownError) as caught:
        client.create_customer(fields)
    assert "createcustomer" in str(caught.value)
    creates = [e for e in sim.account.write_log() if e["action"] == "createcustomer"
               and e["body"]["data"]["email"] == "lost.response@example.com"]
    assert len(creates) == 1
    assert len(client.fetch_customers_by_email("lost.response@example.com")) == 1


@pytest.mark.parametrize("kind", ["500", "html", "truncate"])
def test_an_ambiguous_create_failure_is_outcome_unknown(client, sim, kind):
    """A create answered by a 5xx or a garbled body may have been applied: not re-sent."""
    sim.faults.script(kind, action="createcustomer")
    with pytest.raises(OutcomeUnknownError):
        client.create_customer(dict(NEW_CUSTOMER, customeremail=f"ambiguous-{kind}@example.com"))
    assert sum(1 for e in sim.account.write_log() if e["action"] == "createcustomer"
               and e["body"]["data"]["email"] == f"ambiguous-{kind}@example.com") == 1


def test_a_throttled_create_is_retried(client, sim, clock):
    """A 429 proves the create was not processed, so it is sent again."""
    sim.faults.script("429", action="createcustomer", retry_after=2)
    new_id = client.create_customer(dict(NEW_CUSTOMER, customeremail="throttled@example.com"))
    assert sim.account.get(new_id) and clock.sleeps == [2.0]


def test_read_timeout_is_transient_and_bounded(sim, clock):
    """A server slower than the read timeout is retried, then reported unavailable."""
    sim.faults.configure(latency_ms=400)
    with make_client(sim, clock, timeouts=Timeouts(connect=2, read=0.1, write=2, pool=2),
                     retry=RetryPolicy(attempts=2, deadline=60)) as client:
        with pytest.raises(ApiUnavailableError, match="ReadTimeout"):
            client.fetch_customer_page(1)


def test_an_unreachable_server_is_unavailable(clock):
    """Connection refused ends in ApiUnavailableError after the retries."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with SolarProofClient(f"http://127.0.0.1:{port}/apidata.php", API_KEY, sleep=clock.sleep, clock=clock,
                          retry=RetryPolicy(attempts=3)) as client:
        with pytest.raises(ApiUnavailableError, match="ConnectError"):
            client.fetch_customer_page(1)
    assert len(clock.sleeps) == 2


def test_unknown_action_is_a_permanent_error(client):
    """The API's NOT_FOUND for an unknown action is permanent and names the action."""
    with pytest.raises(PermanentApiError, match="get_all_projects"):
        client._call("get_all_projects")


def test_fetch_customer_falls_back_to_email_when_getcustomer_is_missing(clock):
    """A server without the undocumented getcustomer is asked by email instead, and only once by id. The email
    lookup identifies the customer only when it returns that very id: another customer, or none (the email may have
    changed), is NotIdentifiedError, never "this customer does not exist"."""
    import httpx

    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        action = request.url.params["action"]
        seen.append(action)
        if action == "getcustomer":
            return httpx.Response(404, json={"code": "NOT_FOUND", "message": "The requested endpoint does not exist"})
        if request.url.params["customer_email"] == "gone@example.com":
            return httpx.Response(404, json={"code": "CUSTOMER_NOT_FOUND", "message": "No customer with that email"})
        return httpx.Response(200, json={"customer_id": "5", "customer_first_name": "Ann",
                                         "customer_email": request.url.params["customer_email"]})

    with SolarProofClient("https://example.test/apidata.php", API_KEY, transport=httpx.MockTransport(handler),
                          sleep=clock.sleep, clock=clock) as client:
        assert client.fetch_customer(5, email="ann@example.com").fields["customerfirstname"] == "Ann"
        with pytest.raises(NotIdentifiedError):
            client.fetch_customer(6, email="ann@example.com")  # the email's customer is 5, not 6
        with pytest.raises(NotIdentifiedError):
            client.fetch_customer(7, email="gone@example.com")  # nobody has the email now: not proof of a delete
        with pytest.raises(NotIdentifiedError):
            client.fetch_customer(5)
        assert not client.reads_by_id
    assert seen == ["getcustomer", "getcustomerByemail", "getcustomerByemail", "getcustomerByemail"]


# -- answers that say the URL is wrong ------------------------------------------------------

NGINX_404 = ("<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1>"
             "</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
HOME_PAGE = "<!DOCTYPE html><html><head><title>Solar Proof | Solar CRM</title></head><body>Welcome</body></html>"


def scripted_client(clock, answers, **options) -> tuple[SolarProofClient, list[str]]:
    """A client whose every request gets the next of `answers` (an httpx.Response, or an exception to raise; the
    last one repeats), and the list of the actions it was asked."""
    import httpx

    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params["action"])
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    options.setdefault("retry", RetryPolicy(attempts=4, deadline=60))
    return SolarProofClient("https://example.test/apidata.php", API_KEY, transport=httpx.MockTransport(handler),
                            sleep=clock.sleep, clock=clock, **options), seen


def html(status: int, page: str):
    import httpx

    return httpx.Response(status, text=page, headers={"Content-Type": "text/html"})


def test_a_404_page_on_the_listing_is_a_wrong_url_at_once(clock):
    """The listing answered by a web server's 404 page (not the API's JSON) is EndpointError on the first try,
    naming the page by its title."""
    client, seen = scripted_client(clock, [html(404, NGINX_404)])
    with client, pytest.raises(EndpointError) as caught:
        client.fetch_customer_page(1)
    assert seen == ["getallcustomers"] and clock.sleeps == []
    assert "no Solar Proof API at this URL" in str(caught.value) and "'404 Not Found'" in str(caught.value)
    assert str(caught.value).count("404") == 2  # the title and the status, not the status twice


def test_a_404_page_elsewhere_is_still_not_found(clock):
    """Only the listing never answers 404 of its own: a bare 404 on a lookup stays NotFoundError (how the API
    answers a missing email is undocumented)."""
    client, _seen = scripted_client(clock, [html(404, NGINX_404)])
    with client:
        assert client.fetch_customers_by_email("nobody@example.com") == []
        with pytest.raises(NotFoundError):
            client.update_customer(5, {"customerphone1": "0400 000 000"})


def test_html_on_every_try_of_a_new_url_is_a_wrong_url(clock):
    """A URL that answers every try of the listing with an HTML page, and never answered as the API, is
    EndpointError once the retries run out (not 'unavailable, try later')."""
    client, seen = scripted_client(clock, [html(200, HOME_PAGE)])
    with client, pytest.raises(EndpointError) as caught:
        client.fetch_customer_page(1)
    assert len(seen) == 4 and len(clock.sleeps) == 3  # retried first: a broken PHP script answers so too
    assert "4 tries in a row answered an HTML page titled 'Solar Proof | Solar CRM'" in str(caught.value)


def test_an_html_page_now_and_then_is_retried_and_recovers(clock):
    """HTML pages followed by the API's JSON are a transient failure: the call returns the page."""
    import httpx

    client, seen = scripted_client(clock, [html(200, HOME_PAGE), html(200, HOME_PAGE), httpx.Response(200, json=[])])
    with client:
        assert client.fetch_customer_page(1) == []
    assert len(seen) == 3


def test_html_after_the_api_answered_is_the_api_failing(clock):
    """Once the URL answered as the API, HTML on every try is an outage (ApiUnavailableError), as it is on any call
    other than the listing (whose URL a pinned mirror has seen answer)."""
    import httpx

    client, _seen = scripted_client(clock, [httpx.Response(200, json=[]), html(200, HOME_PAGE)])
    with client:
        client.fetch_customer_page(1)
        with pytest.raises(ApiUnavailableError):
            client.fetch_customer_page(2)
    client, _seen = scripted_client(FakeClock(), [html(200, HOME_PAGE)])
    with client, pytest.raises(ApiUnavailableError):
        client.fetch_customer(5)


def test_a_redirect_is_a_wrong_url_naming_where_it_points(clock):
    """A redirect is not followed (the key is in the query string): EndpointError naming the target, key masked."""
    import httpx

    target = f"https://solarproof.example/apidata.php?action=getallcustomers&api_key={API_KEY}"
    client, seen = scripted_client(clock, [httpx.Response(301, headers={"Location": target}, text="Moved")])
    with client, pytest.raises(EndpointError) as caught:
        client.fetch_customer_page(1)
    assert seen == ["getallcustomers"] and "redirects to https://solarproof.example/apidata.php" in str(caught.value)
    assert API_KEY not in str(caught.value) and API_KEY[:12] not in str(caught.value)


@pytest.mark.parametrize("code, expected", [("EAI_NONAME", HostNotFoundError), ("EAI_AGAIN", ApiUnavailableError)])
def test_a_host_that_does_not_exist_is_not_retried(clock, code, expected):
    """A name the resolver says does not exist is HostNotFoundError at once; a resolver that could not answer
    (EAI_AGAIN: no network) is an outage, retried and then ApiUnavailableError."""
    import socket

    import httpx

    def unresolved() -> httpx.ConnectError:
        try:
            try:
                raise socket.gaierror(getattr(socket, code), "name resolution failed")
            except socket.gaierror as exc:
                raise httpx.ConnectError(str(exc)) from exc
        except httpx.ConnectError as exc:
            return exc

    client, seen = scripted_client(clock, [unresolved()])
    with client, pytest.raises(expected) as caught:
        client.fetch_customer_page(1)
    if expected is HostNotFoundError:
        assert seen == ["getallcustomers"] and clock.sleeps == []
        assert "'example.test' does not exist" in str(caught.value)
    else:
        assert len(seen) == 4


def test_https_to_a_plain_http_server_is_a_wrong_url(sim, clock):
    """https:// given for a server that speaks plain HTTP fails the TLS handshake the same way every time:
    EndpointError at once, not six retries and 'try later'."""
    with make_client(sim, clock) as client:
        client.url = sim.url.replace("http://", "https://")
        with pytest.raises(EndpointError, match="does not speak TLS"):
            client.fetch_customer_page(1)
    assert clock.sleeps == []
