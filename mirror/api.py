"""The Solar Proof API client: the only module that speaks HTTP (and the only httpx user).

Everything goes to one `apidata.php` script, chosen by `action=`, with the key in the query
string. Errors arrive as any non-2xx status, or as HTTP 200 with a `{"code", "message"}` body
(`{"success": false, ...}` for webhook calls); both become the typed errors of
`mirror.errors`, each naming the action. Transient failures are retried with backoff and
jitter within a deadline; a write that is not safe to repeat (create) is never re-sent once it
may have reached the server, and raises OutcomeUnknownError instead. What an answer means
(which error, and whether the URL is the API at all) is mirror.api_answers's to say.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import httpx
import structlog

from mirror import __version__
from mirror.api_answers import (
    LISTING,
    HtmlAnswer,
    describe_body,
    endpoint_tls,
    error_for_status,
    error_from_body,
    host_not_found,
    html_everywhere,
    is_api_answer,
    is_html,
    not_the_api,
    tls_mismatch,
    unreadable_answer,
    unresolved_host,
)
from mirror.config import Settings
from mirror.customer import Customer
from mirror.errors import (
    ApiUnavailableError,
    NotFoundError,
    NotIdentifiedError,
    OutcomeUnknownError,
    PermanentApiError,
    TransientApiError,
)
from mirror.redaction import redact_text
from mirror.retry import RetryPolicy, parse_retry_after
from mirror.wire import parse_customer, write_body
from mirror.wire.page import RawRecord, split_page

log = structlog.get_logger()

DEFAULT_URL = "https://solarproof.com.au/apidata.php"

# Transport failures that prove the request never reached the server, so even a create may be re-sent.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-request limits in seconds (the overall limit per call is RetryPolicy.deadline)."""

    connect: float = 10.0
    read: float = 30.0
    write: float = 30.0
    pool: float = 30.0


class ApiStats:
    """Counts of calls by (action, outcome), shared by the threads of a walk."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[tuple[str, str]] = Counter()
        self.throttled = 0

    def record(self, action: str, outcome: str) -> None:
        with self._lock:
            self.calls[(action, outcome)] += 1
            if outcome == "throttled":
                self.throttled += 1


class SolarProofClient:
    """A thread-safe client for one account. Close it (or use `with`) to release connections.

    `transport`, `sleep`, `clock` and `rng` are seams for tests; production leaves them unset.
    `update_method`/`delete_method` exist because the two doc generations disagree (PUT/DELETE
    badges, POST in every curl example); POST is the default.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeouts: Timeouts = Timeouts(),
        retry: RetryPolicy = RetryPolicy(),
        update_method: str = "POST",
        delete_method: str = "POST",
        max_connections: int = 16,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ):
        self.url = url
        self._api_key = api_key
        self.retry = retry
        self.update_method = update_method.upper()
        self.delete_method = delete_method.upper()
        self.stats = ApiStats()
        self._has_getcustomer = True
        # Whether this URL ever answered as the API (JSON, or one of its error objects).
        self._answered = False
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._http = httpx.Client(
            timeout=httpx.Timeout(
                connect=timeouts.connect, read=timeouts.read, write=timeouts.write, pool=timeouts.pool
            ),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"User-Agent": f"solarproof-mirror/{__version__}", "Accept": "application/json"},
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **seams: Any) -> SolarProofClient:
        """A client configured by the `[api]` settings (`seams` for tests: transport, sleep...)."""
        return cls(
            settings[("api", "url")],
            settings[("api", "key")],
            timeouts=Timeouts(connect=settings[("api", "connect_timeout")], read=settings[("api", "read_timeout")]),
            retry=RetryPolicy(
                attempts=settings[("api", "attempts")],
                deadline=settings[("api", "deadline")],
                max_retry_after=settings[("api", "max_retry_after")],
            ),
            update_method=settings[("api", "update_method")],
            delete_method=settings[("api", "delete_method")],
            max_connections=settings[("api", "max_in_flight")] + 2,
            **seams,
        )

    def __repr__(self) -> str:
        return f"SolarProofClient(url={redact_text(self.url, (self._api_key,))!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SolarProofClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reads ---------------------------------------------------------------------------

    def fetch_customer_page(self, page: int) -> list[RawRecord] | None:
        """One page of `getallcustomers` (1-based): its records with their exact JSON text.

        Returns None for a valid JSON body that is not an array (the walk treats it as the end).
        """
        body = self._call("getallcustomers", params={"page": page}, parse=_parse_page)
        return body if isinstance(body, list) else None

    def fetch_customers_by_email(self, email: str) -> list[Customer]:
        """Customers with this email via `getcustomerByemail`: [] when none, usually one.

        The docs return a single object; an array is accepted too, in case duplicates (which are
        legal) come back together.
        """
        return self._lookup("getcustomerByemail", {"customer_email": email})

    def fetch_customer_id_by_email(self, email: str) -> list[Customer]:
        """The same lookup through `getcustomerid`, which returns the full object too."""
        return self._lookup("getcustomerid", {"customer_email": email})

    def fetch_customer(self, remote_id: int, email: str | None = None) -> Customer | None:
        """One customer by id; None only when the API says no customer has that id.

        Uses `getcustomer`, which only an old docs example shows. If the server has no such
        action (NOT_FOUND), the client remembers that and asks the email lookup for the
        customer's last known `email` instead. That lookup answers one customer per email, so
        it identifies this customer only when it returns this id; another customer, or none
        (the email may have changed), raises NotIdentifiedError: never read as a delete.
        """
        if self._has_getcustomer:
            try:
                found = self._lookup("getcustomer", {"customer_id": remote_id})
                return found[0] if found else None
            except NotFoundError:
                self._has_getcustomer = False
                log.warning("getcustomer_unavailable", fallback="getcustomerByemail when it returns the same id")
        if email:
            found = next((c for c in self.fetch_customers_by_email(email) if c.remote_id == remote_id), None)
            if found is not None:
                return found
        raise NotIdentifiedError("getcustomer", f"customer {remote_id} cannot be read by id: the server has no "
                                 "getcustomer, and the email lookup did not return this customer")

    @property
    def reads_by_id(self) -> bool:
        """False once the server showed it has no `getcustomer`."""
        return self._has_getcustomer

    def fetch_customer_of_project(self, project_id: int) -> Customer | None:
        """The customer of a project (`getcustomerofproject`: ABN, site address, contact time)."""
        found = self._lookup("getcustomerofproject", {"project_id": project_id})
        return found[0] if found else None

    def _lookup(self, action: str, params: dict[str, Any]) -> list[Customer]:
        try:
            body = self._call(action, params=params)
        except NotFoundError as exc:
            if action == "getcustomer" and exc.code != "CUSTOMER_NOT_FOUND":
                raise  # the action itself is missing (NOT_FOUND, or a bare 404 page)
            return []
        if body in (None, "", [], {}):
            return []
        items = body if isinstance(body, list) else [body]
        return [parse_customer(item) for item in items if item not in (None, {}, "")]

    # -- writes --------------------------------------------------------------------------

    def create_customer(self, fields: dict[str, Any], owner_email: str = "") -> int | None:
        """Create a customer from canonical writable fields; return its new id, or None when the
        response carries none (an old-docs quirk: look it up by email then).

        Never re-sent once it may have reached the server: a lost response raises
        OutcomeUnknownError, and the caller must find out whether the customer exists.
        """
        data = {"useremail": owner_email, **write_body(fields)}
        response = self._call("createcustomer", method="POST", data=data, idempotent=False)
        return _id_from_write_response(response)

    def update_customer(self, remote_id: int, fields: dict[str, Any]) -> None:
        """Send only `fields` (canonical writable columns) for customer `remote_id`."""
        data = {"pkcustomerid": remote_id, **write_body(fields)}
        self._call("updatecustomer", method=self.update_method, data=data)

    def delete_customer(self, remote_id: int) -> None:
        """Delete a customer permanently. A retry after a lost response may raise NotFoundError."""
        self._call("deletecustomer", method=self.delete_method, data={"pkcustomerid": remote_id})

    def subscribe_webhook(self, hook_url: str, event: str) -> None:
        """Register `hook_url` for one event type (`subscribe_customer`; no `data` wrapper)."""
        self._call("subscribe_customer", method="POST", json_body={"hookUrl": hook_url, "type_request": event})

    def unsubscribe_webhook(self, hook_url: str) -> None:
        """Remove every event type registered for `hook_url`."""
        self._call("unsubscribe_customer", method="POST", json_body={"hookUrl": hook_url})

    # -- the request loop ----------------------------------------------------------------

    def _call(
        self,
        action: str,
        *,
        method: str = "GET",
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        json_body: dict[str, Any] | None = None,
        idempotent: bool = True,
        parse: Callable[[str], Any] = json.loads,
    ) -> Any:
        """Send one request, retrying transient failures; return the decoded body."""
        query = {"action": action, "api_key": self._api_key, **(params or {})}
        if data is not None:
            # The docs want the key and action inside `data` too; sending both is safest.
            json_body = {"data": {"apikey": self._api_key, "action": action, **data}}
        started = self._clock()
        failures = html_answers = 0
        while True:
            try:
                result = self._send_once(action, method, query, json_body, idempotent, parse)
                self.stats.record(action, "ok")
                return result
            except TransientApiError as exc:
                self.stats.record(action, "throttled" if exc.status == 429 else "failed")
                if isinstance(exc, OutcomeUnknownError):
                    raise
                failures += 1
                html_answers += isinstance(exc, HtmlAnswer)
                delay = self.retry.delay(failures, exc.retry_after, self._rng)
                elapsed = self._clock() - started
                if failures >= self.retry.attempts or elapsed + delay > self.retry.deadline:
                    if html_answers == failures and action == LISTING and not self._answered:
                        # A PHP error page now and then is the API failing; but a URL that gave
                        # nothing but HTML since this client first called it is a web page, not
                        # the API. Only the listing decides: it is what meets a new URL first
                        # (pinning a new mirror, rekey); later calls go to a URL already pinned.
                        self.stats.record(action, "refused")
                        raise html_everywhere(action, failures, exc) from exc
                    raise ApiUnavailableError(
                        action,
                        f"gave up after {failures} tries in {elapsed:.1f}s: {exc.detail}",
                        status=exc.status,
                        code=exc.code,
                    ) from exc
                log.warning("api_retried", action=action, failures=failures, delay=round(delay, 3), reason=exc.detail)
                self._sleep(delay)
            except PermanentApiError:
                self.stats.record(action, "refused")
                raise

    def _send_once(self, action, method, query, json_body, idempotent, parse) -> Any:
        """One request. Its errors are built only from server and transport text already
        redacted of the key and its pieces, whatever an error page echoed back."""
        secrets = (self._api_key,)
        try:
            response = self._http.request(method, self.url, params=query, json=json_body)
        except httpx.TransportError as exc:
            exc.args = (redact_text(str(exc), secrets),)  # the cause: tracebacks print it too
            if isinstance(exc, httpx.ConnectError) and unresolved_host(exc):
                raise host_not_found(action, self.url) from exc  # a typo: retrying will not fix it
            if isinstance(exc, httpx.ConnectError) and (tls := tls_mismatch(exc)):
                raise endpoint_tls(action, tls) from exc
            reason = f"{type(exc).__name__}: {exc.args[0] or 'no detail'}"
            if idempotent or isinstance(exc, _NOT_SENT):
                raise TransientApiError(action, f"network error ({reason})") from exc
            raise OutcomeUnknownError(action, f"request sent but no response arrived ({reason})") from exc
        status = response.status_code
        text = response.text
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise TransientApiError(action, "rate limited", status=status, retry_after=retry_after)
        try:
            body = parse(text)
        except (ValueError, RecursionError):
            body = _UNREADABLE
        content_type = response.headers.get("Content-Type", "")
        if is_api_answer(body):
            self._answered = True
            error = error_from_body(action, status, body, secrets)
        elif status >= 500 or (status < 300 and body is _UNREADABLE):
            error = unreadable_answer(action, status, describe_body(content_type, text, secrets),
                                      parse_retry_after(response.headers.get("Retry-After")),
                                      not_the_api(content_type, text, secrets) if is_html(content_type, text) else None)
        elif status >= 300:
            error = error_for_status(action, status, describe_body(content_type, text, secrets),
                                     location=response.headers.get("Location"), secrets=secrets,
                                     page=not_the_api(content_type, text, secrets))
        else:
            self._answered = True
            return body
        if isinstance(error, TransientApiError) and not idempotent:
            # The server got the request; whatever went wrong, it may have applied it.
            raise OutcomeUnknownError(action, f"the write may have been applied: {error.detail}",
                                      status=error.status, code=error.code)
        raise error

    # probe: ------------------------------------------------------------------------------
    # For `spmirror check` (mirror/probe), which must see each answer as the server framed it.

    def probe_read(self, action: str, params: dict[str, Any] | None = None) -> tuple[int, str, str, float]:
        """GET one read and return (HTTP status, content type, body text, seconds) as answered:
        an error object, an HTML page or a 404 is something to look at here, not an exception.

        Only the read actions, and `spmirror-check-no-such-action` (to see how errors come back),
        are sent: a server that routes on `action` alone would apply a write sent as GET.
        Network failures, 429 and 5xx pages without the API's JSON are retried as `_call`
        retries (ApiUnavailableError when they last); a garbled 2xx body is retried twice, then
        returned. A host that does not resolve and TLS that cannot work raise as in
        `_send_once`. The text is redacted of the key, which a server may echo.
        """
        if action not in ("getallcustomers", "getcustomerByemail", "getcustomerid", "getcustomer",
                          "getcustomerofproject", "spmirror-check-no-such-action"):
            raise ValueError(f"probe_read sends reads only, not {action!r}")
        secrets = (self._api_key,)
        query = {"action": action, "api_key": self._api_key, **(params or {})}
        started, failures = self._clock(), 0
        while True:
            sent = time.perf_counter()
            status, retry_after = None, None
            try:
                response = self._http.get(self.url, params=query)
            except httpx.TransportError as exc:
                exc.args = (redact_text(str(exc), secrets),)
                if isinstance(exc, httpx.ConnectError) and unresolved_host(exc):
                    raise host_not_found(action, self.url) from exc
                if isinstance(exc, httpx.ConnectError) and (tls := tls_mismatch(exc)):
                    raise endpoint_tls(action, tls) from exc
                reason = f"network error ({type(exc).__name__}: {exc.args[0] or 'no detail'})"
            else:
                seconds = time.perf_counter() - sent
                status, text = response.status_code, redact_text(response.text, secrets)
                content_type = response.headers.get("Content-Type", "")
                try:
                    body = json.loads(text)
                except (ValueError, RecursionError):
                    body = _UNREADABLE
                garbled = status < 300 and body is _UNREADABLE
                if status != 429 and not (status >= 500 and not is_api_answer(body)) and not garbled:
                    self.stats.record(action, "ok" if status < 300 else "refused")
                    return status, content_type, text, seconds
                if garbled and failures + 1 >= min(3, self.retry.attempts):  # a page, not a glitch
                    self.stats.record(action, "ok")
                    return status, content_type, text, seconds  # what this server answers: let the probe say
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                reason = f"HTTP {status}: {describe_body(content_type, text, secrets)}"
            self.stats.record(action, "throttled" if status == 429 else "failed")
            failures += 1
            delay = self.retry.delay(failures, retry_after, self._rng)
            elapsed = self._clock() - started
            if failures >= self.retry.attempts or elapsed + delay > self.retry.deadline:
                raise ApiUnavailableError(action, f"gave up after {failures} tries in {elapsed:.1f}s: {reason}",
                                          status=status)
            log.warning("api_retried", action=action, failures=failures, delay=round(delay, 3), reason=reason)
            self._sleep(delay)


_UNREADABLE = object()


def _parse_page(text: str) -> list[RawRecord] | None | dict:
    """A page body: its records, or the decoded value when it is not an array (error objects)."""
    records = split_page(text)
    if records is None:
        return json.loads(text)
    return records


def _id_from_write_response(body: Any) -> int | None:
    """The id a write response names: `id`, `CustomerId` or `customer_id`, string or integer."""
    if not isinstance(body, dict):
        return None
    for key in ("id", "CustomerId", "customer_id", "customerId"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
            return int(value)
    return None
