"""The probe's read calls, each kept as the server answered it (status, content type, text, time).

Never a write: every call goes through `probe_read` of the API client, which sends read actions
only. In order: the listing's page 1 and page 2; the last page, found by doubling the page
number until a page is not full and then halving the gap (about 2 x log2(pages) calls: 22 for
100,000 customers) plus the page after it, to see how the listing says it has ended; with
`lookups`, one listed customer by email (`getcustomerByemail`) and by id (`getcustomer`), and
the customer of one project (`getcustomerofproject`) when a listed customer has one; last, an
action no server has, to see how errors come back.

A refused key or a URL that is not the API stops after page 1: nothing else can be learnt.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, Protocol

from mirror.errors import ApiUnavailableError, WireError
from mirror.wire.fields import remote_id_of

LISTING = "getallcustomers"
BY_EMAIL = "getcustomerByemail"
BY_ID = "getcustomer"
OF_PROJECT = "getcustomerofproject"
NO_SUCH_ACTION = "spmirror-check-no-such-action"
UNREADABLE = object()  # a body that is not JSON


class ReadSource(Protocol):
    """What the probe needs from the API client (mirror.api.SolarProofClient.probe_read)."""

    def probe_read(self, action: str, params: dict[str, Any] | None = None) -> tuple[int, str, str, float]: ...


@dataclass(frozen=True)
class Answer:
    """One call and what came back. `params` never holds the key (probe_read adds it)."""

    action: str
    params: dict[str, Any]
    status: int
    content_type: str
    text: str
    seconds: float

    @cached_property
    def body(self) -> Any:
        """The decoded JSON, or UNREADABLE."""
        try:
            return json.loads(self.text)
        except (ValueError, RecursionError):
            return UNREADABLE

    @property
    def page(self) -> int | None:
        return int(self.params["page"]) if self.action == LISTING and "page" in self.params else None

    @property
    def records(self) -> list | None:
        """A listing page's elements, or None when the body is not a JSON array."""
        return self.body if isinstance(self.body, list) else None

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "params": self.params, "status": self.status,
                "content_type": self.content_type, "seconds": round(self.seconds, 4)}


def is_error_object(body: Any) -> bool:
    """The API's own error framing: {"code", "message"} (or {"success": false, ...})."""
    return isinstance(body, dict) and (("code" in body and "message" in body) or body.get("success") is False)


def find(answers: Iterable[Answer], action: str) -> Answer | None:
    """The first answer to `action`, or None when it was not asked."""
    return next((a for a in answers if a.action == action), None)


def ids_of(records: list) -> list[int | None]:
    """Each element's customer id, None where it has no usable one."""
    found: list[int | None] = []
    for record in records:
        try:
            found.append(remote_id_of(record, "customer_id"))
        except WireError:
            found.append(None)
    return found


@dataclass
class _Calls:
    source: ReadSource
    answers: list[Answer] = field(default_factory=list)

    def read(self, action: str, **params: Any) -> Answer:
        started = time.perf_counter()
        try:
            answer = Answer(action, params, *self.source.probe_read(action, params))
        except ApiUnavailableError as exc:
            # Once page 1 has answered, a server error that lasts through the retries on one call
            # (a page past the end, an action it lacks: a PHP script that dies on them) is what
            # this server answers to that call, for the findings to judge; it does not make the
            # API unreachable. A network failure, or a failure on page 1, is that (exit 75).
            if not self.answers or exc.status is None or exc.status < 500:
                raise
            answer = Answer(action, params, exc.status, "text/plain", exc.detail, time.perf_counter() - started)
        self.answers.append(answer)
        return answer


def fetch_answers(source: ReadSource, *, lookups: bool = True, max_pages: int = 100_000,
                  page_one: Answer | None = None) -> list[Answer]:
    """Make the probe's calls (see the module docstring) and return every answer, in call order.

    `page_one`: the listing's first page when the caller read it already (the first sync reads
    it as every sync does, so a refused key or a wrong URL is said the usual way).
    ApiUnavailableError (the API could not be reached) and the client's endpoint errors (a host
    that does not exist, TLS that cannot work) propagate.
    """
    calls = _Calls(source)
    if page_one is not None:
        calls.answers.append(page_one)
    first = page_one or calls.read(LISTING, page=1)
    if first.records is None or not first.records:
        if first.records is not None:  # an empty account: only how errors come back is left to see
            calls.read(NO_SUCH_ACTION)
        return calls.answers  # refused, not the API, or empty
    _find_last_page(calls, len(first.records), max_pages)
    if lookups:
        _lookups(calls)
    calls.read(NO_SUCH_ACTION)
    return calls.answers


def _find_last_page(calls: _Calls, size: int, max_pages: int) -> None:
    """Double the page number while pages are full, then bisect to the first page that is not,
    then read one page past the last one that holds customers."""
    seen: dict[int, frozenset[int]] = {1: frozenset(i for i in ids_of(calls.answers[0].records) if i is not None)}

    def full(page: int) -> bool:
        answer = calls.read(LISTING, page=page)
        records = answer.records
        if not records or len(records) < size:
            return False
        ids = frozenset(i for i in ids_of(records) if i is not None)
        if ids and any(ids <= earlier for earlier in seen.values()):
            return False  # a page seen before, served again: no end to find this way
        seen[page] = ids
        return True

    low, high, page = 1, None, 2
    while high is None:
        if full(page):
            low = page
            if page >= max_pages:
                return  # every page up to the cap is full: detect says so
            page = min(page * 2, max_pages)
        else:
            high = page
    while high - low > 1:
        middle = (low + high) // 2
        if full(middle):
            low = middle
        else:
            high = middle
    last = next(a for a in reversed(calls.answers) if a.page == high)
    if last.records and not any(a.page == high + 1 for a in calls.answers):
        calls.read(LISTING, page=high + 1)  # a short page ends the listing; what comes after it?


def _lookups(calls: _Calls) -> None:
    pages = sorted((a for a in calls.answers if a.records), key=lambda a: a.page or 0)
    records = [r for a in pages for r in a.records if isinstance(r, dict)]
    listed = [(r, i) for r, i in zip(records, ids_of(records)) if i is not None]
    with_email = next(((r, i) for r, i in listed if isinstance(r.get("customer_email"), str)
                       and "@" in r["customer_email"]), None)
    if with_email is not None:
        calls.read(BY_EMAIL, customer_email=with_email[0]["customer_email"])
    if listed:
        calls.read(BY_ID, customer_id=str(listed[0][1]))
    project_id = next((pid for r, _i in listed for pid in _project_ids(r)), None)
    if project_id is not None:
        calls.read(OF_PROJECT, project_id=str(project_id))


def _project_ids(record: dict) -> list[int]:
    projects = record.get("projects")
    found = []
    for project in projects if isinstance(projects, list) else []:
        try:
            found.append(remote_id_of(project, "project_id"))
        except WireError:
            continue
    return found
