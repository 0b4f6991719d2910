"""From the probe's answers to findings: pure functions, so saved answers (--save-samples) give
the same findings as the live calls did.

What makes a finding a problem is whether a sync would be wrong or unsafe: a refused key, a
URL that is not the API, a listing whose end a walk cannot see (pages that repeat, an error
past the last page, a short page before the last), customer ids the mirror cannot use, a read
by id that answers for another customer or calls a listed one missing, and errors that cannot
be told from answers. Everything the mirror copes with (the other doc generation, another page
size once recorded, numeric ids, no `getcustomer`, errors inside HTTP 200, unknown words or
fields) is a note.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from typing import Any, Iterable

from mirror.api_answers import AUTH_CODES, is_html, page_title
from mirror.errors import WireError
from mirror.probe.calls import (BY_EMAIL, BY_ID, LISTING, NO_SUCH_ACTION, OF_PROJECT, UNREADABLE, Answer, ids_of,
                                is_error_object)
from mirror.probe.findings import NOTE, OK, PROBLEM, Finding
from mirror.probe.shapes import (EXPECTED_READ_KEYS, NOTE_KEYS, OWNER_KEYS, PROJECT_CUSTOMER_KEYS,
                                 PROJECT_CUSTOMER_WRAPPER, PROJECT_KEYS, READ_KEYS, SITE_KEYS, STATUS_KEYS)
from mirror.vocabulary import GST_IDS, STATUS_IDS, TYPE_IDS, lookup
from mirror.wire.fields import remote_id_of

DOCUMENTED_PAGE_SIZE = 50
SLOW_PAGE_SECONDS = 2.0
REPORT_IT = ("save the answers with spmirror check --save-samples DIR (names, emails, phones and the key are "
             "masked) and attach them to an issue for solarproof-mirror")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?")


def detect(answers: list[Answer], *, max_pages: int = 100_000) -> list[Finding]:
    """Every finding the answers support, in report order (see the module docstring)."""
    pages = {a.page: a for a in answers if a.page is not None}
    first = pages.get(1)
    if first is None:
        return []
    refusal = _listing_refused(first)
    if refusal is not None:
        return [refusal]
    findings = [Finding("key", OK, "the API accepted the key (getallcustomers answered page 1)")]
    records = _distinct([record for number in sorted(pages) for record in (pages[number].records or [])
                         if isinstance(record, dict)])
    errors = _error_framing(_find(answers, NO_SUCH_ACTION))
    if records:
        findings.append(_generation(records, errors))
    findings += _paging(pages, max_pages)
    if records:
        findings += [_order(pages), _ids(records), *_lookups(answers, records), *_errors_found(errors),
                     _dates(records), *_words(records), *_fields(records, _find(answers, OF_PROJECT))]
    else:
        findings += _errors_found(errors)
    findings.append(_times(answers, pages))
    return findings


def _distinct(records: list[dict]) -> list[dict]:
    """Each customer once (a page read twice, or served again past the end, repeats them)."""
    seen: set[int] = set()
    kept = []
    for record, remote_id in zip(records, ids_of(records)):
        if remote_id is None or remote_id not in seen:
            kept.append(record)
            if remote_id is not None:
                seen.add(remote_id)
    return kept


def _find(answers: Iterable[Answer], action: str) -> Answer | None:
    return next((a for a in answers if a.action == action), None)


# -- the key and the URL ---------------------------------------------------------------------------

def _listing_refused(first: Answer) -> Finding | None:
    body = first.body
    if isinstance(body, list):
        return None
    if is_error_object(body):
        code = str(body.get("code") or "")
        text = f"{code + ': ' if code else ''}{_short(body.get('message'))}"
        if code in AUTH_CODES or first.status in (401, 403) or "api key" in text.lower():
            return Finding("key", PROBLEM, f"the API refused the key ({text}, HTTP {first.status})",
                           "check [api] key (SPMIRROR_API_KEY or [api] key_file): Solar Proof shows a key once, "
                           "under Settings, API Access; generate a new one if it is lost", {"accepted": False})
        return Finding("listing", PROBLEM, f"getallcustomers page 1 answered an error ({text}, HTTP {first.status})",
                       REPORT_IT, {"status": first.status, "code": code})
    if first.status in (401, 403):
        return Finding("key", PROBLEM, f"the API refused the key (HTTP {first.status}, {_describe(first)})",
                       "check [api] key (SPMIRROR_API_KEY or [api] key_file)", {"accepted": False})
    if body is UNREADABLE or first.status >= 300:
        return Finding("url", PROBLEM, f"the URL does not answer as the Solar Proof API: page 1 of the listing "
                       f"came back as HTTP {first.status} with {_describe(first)}",
                       "check [api] url (SPMIRROR_API_URL); the Solar Proof API is "
                       "https://solarproof.com.au/apidata.php", {"status": first.status})
    return Finding("listing", PROBLEM, f"page 1 of the listing is {_describe(first)}, not a JSON array: a walk "
                   "would find no customers and take the account for empty", REPORT_IT, {"status": first.status})


# -- the documentation generation -----------------------------------------------------------------

def _generation(records: list[dict], errors: dict | None) -> Finding:
    older: Counter[str] = Counter()
    newer: Counter[str] = Counter()
    for record in records:
        value = record.get("customer_id")
        if isinstance(value, int) and not isinstance(value, bool):
            older["numeric ids"] += 1
        elif isinstance(value, str):
            newer["text ids"] += 1
        notes = record.get("customer_notes")  # only a customer without notes tells the generations apart
        if notes == "":
            older['no notes as ""'] += 1
        elif notes == []:
            newer["no notes as []"] += 1
        status = next((record[k] for k in STATUS_KEYS if k in record), None)
        if isinstance(status, str) and status.strip().isdigit():
            older["status as a number"] += 1
        elif isinstance(status, str) and status:
            newer["status as a word"] += 1
        created = record.get("creation_date")
        if isinstance(created, str) and _DATETIME.match(created):
            older["creation_date with a time"] += 1
        elif isinstance(created, str) and _DATE.match(created):
            newer["creation_date as a date"] += 1
    if errors is not None and errors["framing"] == "in_200":
        older["errors inside HTTP 200"] += 1
    elif errors is not None and errors["framing"] == "status":
        newer["errors with an HTTP error status"] += 1
    value = {"older": sorted(older), "newer": sorted(newer)}
    if not older:
        return Finding("docs", OK, f"the shapes match the newer docs ({', '.join(sorted(newer))})",
                       value={"generation": "newer", **value})
    if not newer:
        return Finding("docs", NOTE, f"the shapes match the older docs ({', '.join(sorted(older))}); the mirror "
                       "reads both generations", "nothing: the mirror reads both", {"generation": "older", **value})
    return Finding("docs", NOTE, f"the shapes mix the two doc generations: older docs' {', '.join(sorted(older))}; "
                   f"newer docs' {', '.join(sorted(newer))}; the mirror reads both", "nothing: the mirror reads both",
                   {"generation": "mixed", **value})


# -- paging ------------------------------------------------------------------------------------------

def _paging(pages: dict[int, Answer], max_pages: int) -> list[Finding]:
    counts = {number: len(a.records) for number, a in sorted(pages.items()) if a.records is not None}
    first = counts[1]
    if first == 0:
        return [Finding("page_size", OK, "the listing is empty, so the page size cannot be measured yet; the mirror "
                        "expects the documented 50", value={"size": None, "measured": False}),
                Finding("walk_end", OK, "page 1 answers [] for an empty account: a walk ends there",
                        value={"last_page": 0, "after_last": "[]"})]
    second = pages.get(2)
    measured = second is not None and bool(second.records)
    size = first if measured else None
    findings = [_page_size(size, first, counts)]
    findings.append(_walk_end(pages, counts, size if size is not None else DOCUMENTED_PAGE_SIZE, max_pages))
    return findings


def _page_size(size: int | None, first: int, counts: dict[int, int]) -> Finding:
    value = {"size": size, "measured": size is not None, "page_counts": {str(k): v for k, v in counts.items()}}
    if size is None:
        if first <= DOCUMENTED_PAGE_SIZE:
            return Finding("page_size", OK, f"the account fits on one page ({first} customers), so the page size "
                           "cannot be measured yet; the mirror expects the documented 50", value=value)
        return Finding("page_size", NOTE, f"page 1 holds all {first} customers, more than the documented 50; a "
                       "walk reads on until a page holds fewer than 50, so it still finds them all",
                       "nothing; spmirror check measures the size once the account holds more than one page",
                       {**value, "at_least": first})
    larger = {p: c for p, c in counts.items() if c > size}
    if larger:
        return Finding("page_size", NOTE, f"pages hold different numbers of customers (page 1: {size}; "
                       + ", ".join(f"page {p}: {c}" for p, c in larger.items()) + ")", REPORT_IT, value)
    if size == DOCUMENTED_PAGE_SIZE:
        return Finding("page_size", OK, "50 customers a page, as documented", value=value)
    if size > DOCUMENTED_PAGE_SIZE:
        return Finding("page_size", NOTE, f"{size} customers a page, more than the documented 50: a walk reads "
                       f"each page whole either way, and once this is recorded it expects pages of {size}",
                       "nothing", value)
    return Finding("page_size", NOTE, f"{size} customers a page, not the documented 50: once this is recorded in "
                   f"the mirror (spmirror check with its database, or its first sync), walks expect pages of {size}",
                   "nothing for a new mirror; a mirror synced before this was recorded stopped each walk at page 1 "
                   "(missing customers): run spmirror check with its database (--db), then spmirror sync", value)


def _walk_end(pages: dict[int, Answer], counts: dict[int, int], size: int, max_pages: int) -> Finding:
    """Can a walk that stops at the first page holding fewer than `size` customers see the end?"""
    repeat = _repeated_page(pages)
    holding = [p for p, c in counts.items() if c > 0 and (repeat is None or p < repeat[0])]
    last = max(holding)
    full_last = counts[last] >= size
    estimate = size * (last - 1) + counts[last]
    value: dict[str, Any] = {"last_page": last, "on_last_page": counts[last], "customers_about": estimate}
    early = next((p for p in holding if p < last and counts[p] < size), None)
    if early is not None:
        return Finding("walk_end", PROBLEM, f"page {early} holds {counts[early]} customers, fewer than a full "
                       f"page's {size}, yet page {last} holds more: a walk stops at the first short page and "
                       "would miss the rest", REPORT_IT, {**value, "short_page": early})
    if full_last and last >= max_pages:
        return Finding("walk_end", PROBLEM, f"every page up to {max_pages} ([api] max_pages) is full: a walk "
                       "would stop at that cap, incomplete, every time",
                       f"raise [api] max_pages if the account holds more than {max_pages * size:,} customers; "
                       "otherwise " + REPORT_IT, value)
    after = pages.get(last + 1)
    if repeat is not None:
        described = f"the customers of page {repeat[1]} again"
        value["repeats"] = list(repeat)
    else:
        described = _describe(after) if after is not None else "not asked"
    value["after_last"] = described
    about = f"the listing ends at page {last} (about {estimate:,} customers)"
    endless = repeat is not None or (after is not None and (is_error_object(after.body) or after.body is UNREADABLE
                                                            or after.status >= 300))
    if endless and full_last:
        return Finding("walk_end", PROBLEM, f"{about}, a full page, and page {last + 1} answers {described} "
                       f"(HTTP {after.status if after is not None else '?'}): a walk never sees the end, and every "
                       "sync would stop incomplete", REPORT_IT, value)
    if endless:
        return Finding("walk_end", NOTE, f"{about}: page {last} holds {counts[last]}, fewer than a full page, so a "
                       f"walk ends there today; but page {last + 1} answers {described}, so whenever the account "
                       f"holds an exact multiple of {size} customers a walk would not see its end (each sync stops "
                       "incomplete, exit 75, deleting nothing, until the count changes)", REPORT_IT, value)
    if not full_last:
        return Finding("walk_end", OK, f"{about}: page {last} holds {counts[last]}, fewer than a full page, so a "
                       f"walk sees the end there (page {last + 1} answers {described})", value=value)
    if after is None:
        return Finding("walk_end", NOTE, f"{about}, a full page; the page after it was not read",
                       "run spmirror check again", value)
    if after.records == []:
        return Finding("walk_end", OK, f"{about}, a full page; page {last + 1} answers [], so a walk sees the end",
                       value=value)
    return Finding("walk_end", NOTE, f"{about}; page {last + 1} answers {described} rather than [], which a walk "
                   "takes as the end", "nothing", value)


def _repeated_page(pages: dict[int, Answer]) -> tuple[int, int] | None:
    """(later page, earlier page) when a page holds only customers another page already held."""
    seen: dict[int, frozenset[int]] = {}
    for number in sorted(pages):
        records = pages[number].records
        ids = frozenset(i for i in ids_of(records or []) if i is not None)
        if not ids:
            continue
        earlier = next((p for p, other in seen.items() if ids <= other), None)
        if earlier is not None:
            return number, earlier
        seen[number] = ids
    return None


# -- order and ids ------------------------------------------------------------------------------------

def _order(pages: dict[int, Answer]) -> Finding:
    sequences = []
    repeat = _repeated_page(pages)  # a page served again says nothing of the order
    numbers = sorted(p for p, a in pages.items() if a.records and (repeat is None or p < repeat[0]))
    for number in numbers:
        ids = [i for i in ids_of(pages[number].records) if i is not None]
        if number - 1 in numbers and sequences:
            sequences[-1] += ids  # consecutive pages: the order runs on across them
        else:
            sequences.append(ids)
    pairs = [(a, b) for seq in sequences for a, b in zip(seq, seq[1:])]
    if not pairs:
        return Finding("order", OK, "one customer listed: no order to see", value={"order": None})
    if all(a < b for a, b in pairs):
        return Finding("order", OK, "ascending by customer id: a customer created during a walk joins the last "
                       "page", value={"order": "ascending"})
    if all(a > b for a, b in pairs):
        return Finding("order", NOTE, "newest first (descending customer id): a customer created during a walk "
                       "pushes the others onto later pages, so a walk sees some twice (the mirror drops the repeats)",
                       "nothing", {"order": "descending"})
    return Finding("order", NOTE, "in no order of customer id; the mirror does not rely on one (a customer that "
                   "moves between pages during a walk is caught by the next walk)", "nothing", {"order": "none"})


def _id_kind(values: list[Any]) -> str | None:
    kinds = {"number" if isinstance(v, int) and not isinstance(v, bool) else "text" if isinstance(v, str) else "other"
             for v in values}
    return None if not kinds else kinds.pop() if len(kinds) == 1 else "mixed"


def _ids(records: list[dict]) -> Finding:
    values = [r.get("customer_id") for r in records]
    unusable = [v for v, i in zip(values, ids_of(records)) if i is None]
    projects = [p.get("project_id") for r in records for p in (r.get("projects") or [])
                if isinstance(r.get("projects"), list) and isinstance(p, dict)]
    owners = [r["owner_user_info"].get("user_id") for r in records if isinstance(r.get("owner_user_info"), dict)]
    value = {"customer_id": _id_kind(values), "project_id": _id_kind(projects), "user_id": _id_kind(owners),
             "unusable": len(unusable)}
    if unusable:
        return Finding("ids", PROBLEM, f"{len(unusable)} of {len(records)} listed customers have no usable "
                       f"customer_id (such as {_short(unusable[0])}): a sync cannot mirror them, and would miss them",
                       REPORT_IT, value)
    kind = value["customer_id"]
    if kind == "text":
        return Finding("ids", OK, 'customer ids are text digits ("70001"), as the docs\' examples show', value=value)
    if kind == "number":
        return Finding("ids", NOTE, "customer ids are JSON numbers (70001), as the older docs type them; the mirror "
                       "reads both", "nothing", value)
    return Finding("ids", NOTE, "customer ids come both as text and as numbers; the mirror reads both", "nothing",
                   value)


# -- the lookups --------------------------------------------------------------------------------------

def _lookups(answers: list[Answer], records: list[dict]) -> list[Finding]:
    by_id = {i: r for r, i in zip(records, ids_of(records)) if i is not None}
    found = []
    lookup_id = _find(answers, BY_ID)
    if lookup_id is not None:
        found.append(_by_id(lookup_id))
    by_email = _find(answers, BY_EMAIL)
    if by_email is not None:
        email = by_email.params.get("customer_email")
        asked = next((i for i, r in by_id.items() if r.get("customer_email") == email), None)
        found.append(_by_email(by_email, asked))
    of_project = _find(answers, OF_PROJECT)
    if of_project is not None:
        project = str(of_project.params.get("project_id"))
        owner = next((i for i, r in by_id.items() for p in (r.get("projects") or [])
                      if isinstance(p, dict) and str(p.get("project_id")) == project), None)
        found.append(_of_project(of_project, project, owner))
    return found


def _answered_ids(answer: Answer) -> list[int | None]:
    """The customer ids a lookup answered: one object, or an array of them."""
    body = answer.body
    items = body if isinstance(body, list) else [body] if isinstance(body, dict) and "customer_id" in body else []
    return ids_of(items)


def _by_id(answer: Answer) -> Finding:
    asked = int(answer.params["customer_id"])
    body = answer.body
    code = str(body.get("code") or "") if is_error_object(body) else ""
    value: dict[str, Any] = {"exists": True, "status": answer.status, "code": code or None}
    if code == "CUSTOMER_NOT_FOUND" or body in ({}, [], "", None):
        return Finding("getcustomer", PROBLEM, f"getcustomer says listed customer {asked} does not exist "
                       f"({code or _describe(answer)}): a sync would take customers for deleted",
                       "run spmirror check again (a customer deleted between the two calls gives this once); if it "
                       "stays, " + REPORT_IT, value)
    if is_error_object(body) or answer.status == 404:
        return Finding("getcustomer", NOTE, f"getcustomer does not exist here ({code or 'HTTP 404'}): the mirror "
                       "reads one customer through the email lookup when it returns the same id, else waits for "
                       "the next walk", "nothing", {**value, "exists": False})
    ids = _answered_ids(answer)
    if ids and ids[0] == asked:
        return Finding("getcustomer", OK, f"getcustomer reads a customer by id (asked {asked}, answered {asked})",
                       value=value)
    if ids:
        return Finding("getcustomer", PROBLEM, f"getcustomer answered customer {ids[0]} when asked for {asked}: a "
                       "push would merge a customer's edits against another customer", REPORT_IT, value)
    return Finding("getcustomer", NOTE, f"getcustomer answered HTTP {answer.status} with {_describe(answer)}, not "
                   "a customer: the mirror reads one customer through the email lookup instead", REPORT_IT,
                   {**value, "exists": False})


def _by_email(answer: Answer, asked: int | None) -> Finding:
    body = answer.body
    ids = _answered_ids(answer)
    value = {"status": answer.status, "array": isinstance(body, list), "found": [i for i in ids if i is not None]}
    if asked is not None and asked in ids:
        shape = " (as an array)" if isinstance(body, list) else ""
        return Finding("email_lookup", OK, f"getcustomerByemail finds listed customer {asked} by its email{shape}",
                       value=value)
    if ids:
        return Finding("email_lookup", NOTE, f"getcustomerByemail answered customer {ids[0]} for the email of "
                       f"listed customer {asked}: emails may repeat, and the mirror never takes one for the other",
                       "nothing", value)
    return Finding("email_lookup", NOTE, f"getcustomerByemail did not find listed customer {asked} by its email "
                   f"(HTTP {answer.status}, {_describe(answer)}): the mirror cannot read one customer that way",
                   "nothing, unless getcustomer is missing too: then edits wait for the next walk to be confirmed",
                   value)


def _of_project(answer: Answer, project: str, owner: int | None) -> Finding:
    body = answer.body
    customer = body.get("Customer", body) if isinstance(body, dict) else None
    answered = None
    if isinstance(customer, dict) and "customerID" in customer:
        try:
            answered = remote_id_of(customer, "customerID")  # the P shape names its id customerID
        except WireError:
            answered = None
    value = {"project_id": project, "customer_id": owner, "answered": answered, "status": answer.status}
    if answered is not None and answered == owner:
        return Finding("project_lookup", OK, f"getcustomerofproject answers project {project} with its customer "
                       f"{owner} ([sync] enrich can use it for ABN, site address and contact times)", value=value)
    if answered is not None:
        return Finding("project_lookup", NOTE, f"getcustomerofproject answered customer {answered} for project "
                       f"{project} of customer {owner}", "leave [sync] enrich off", value)
    return Finding("project_lookup", NOTE, f"getcustomerofproject answered project {project} with HTTP "
                   f"{answer.status} and {_describe(answer)}", "leave [sync] enrich off", value)


# -- errors ---------------------------------------------------------------------------------------

def _error_framing(answer: Answer | None) -> dict | None:
    if answer is None:
        return None
    body = answer.body
    code = str(body.get("code") or "") if is_error_object(body) else None
    if code is not None:
        framing = "status" if answer.status >= 300 else "in_200"
    else:
        framing = "status_only" if answer.status >= 300 else "unreadable"
    return {"framing": framing, "status": answer.status, "code": code, "described": _describe(answer)}


def _errors_found(errors: dict | None) -> list[Finding]:
    if errors is None:
        return []
    framing, status, code = errors["framing"], errors["status"], errors["code"]
    value = {k: errors[k] for k in ("framing", "status", "code")}
    if framing == "status":
        return [Finding("errors", OK, f"errors come with an HTTP error status and the API's {{code, message}} (an "
                        f"unknown action: HTTP {status}, {code})", value=value)]
    if framing == "in_200":
        return [Finding("errors", NOTE, f"errors come inside HTTP {status} as {{code, message}} ({code}), as the "
                        "older docs' traffic shows: the mirror reads them by their code", "nothing", value)]
    if framing == "status_only":
        return [Finding("errors", NOTE, f"errors come as HTTP {status} without the API's {{code, message}} "
                        f"({errors['described']}): the mirror tells them by their status alone", "nothing", value)]
    return [Finding("errors", PROBLEM, f"errors cannot be told from answers: an action that does not exist answered "
                    f"HTTP {status} with {errors['described']}, not an error", "do not sync this account yet; "
                    + REPORT_IT, value)]


# -- dates, words and fields -----------------------------------------------------------------------

def _dates(records: list[dict]) -> Finding:
    kinds: Counter[str] = Counter()
    odd: list[str] = []
    for record in records:
        value = record.get("creation_date")
        if value in (None, "") or value == "0000-00-00":
            kinds["empty"] += 1
        elif isinstance(value, str) and _DATE.match(value):
            kinds["YYYY-MM-DD"] += 1
        elif isinstance(value, str) and _DATETIME.match(value):
            kinds["YYYY-MM-DD HH:MM:SS"] += 1
        else:
            kinds["other"] += 1
            odd.append(_short(value))
    note_times = Counter("YYYY-MM-DD HH:MM:SS" if isinstance(n.get("datetime"), str) and _DATETIME.match(n["datetime"])
                         else "other" for r in records for n in (r.get("customer_notes") or [])
                         if isinstance(r.get("customer_notes"), list) and isinstance(n, dict))
    value = {"creation_date": dict(kinds), "note_datetime": dict(note_times), "unreadable": odd[:5]}
    notes = f"; note times as YYYY-MM-DD HH:MM:SS" if note_times and not note_times.get("other") else ""
    if note_times.get("other"):
        notes = f"; {note_times['other']} note times in another format (kept as sent)"
    if kinds.get("other"):
        return Finding("dates", NOTE, f"{kinds['other']} creation dates are in no format the mirror reads (such as "
                       f"{odd[0]}): their created_at stays NULL{notes}", REPORT_IT, value)
    if kinds.get("YYYY-MM-DD HH:MM:SS"):
        return Finding("dates", NOTE, "creation_date carries a time (YYYY-MM-DD HH:MM:SS), as the older docs say; "
                       f"the mirror keeps the date{notes}", "nothing", value)
    return Finding("dates", OK, f"creation_date as YYYY-MM-DD{notes}", value=value)


_WORDS = (
    ("status_words", "status", STATUS_KEYS, STATUS_IDS, range(0, 4), "customer_status_text, fkcustomerstatusid"),
    ("type_words", "type", ("customer_type",), TYPE_IDS, range(1, 4), "customer_type_text, fkcustomertypeid"),
    ("gst_words", "GST", ("gst_status",), GST_IDS, range(0, 2), "the raw payload, customergstregistered"),
)


def _words(records: list[dict]) -> list[Finding]:
    findings = []
    for key, kind, fields, table, valid, columns in _WORDS:
        seen: Counter[str] = Counter()
        unknown: set[str] = set()
        for record in records:
            value = next((record[f] for f in fields if f in record), None)
            if value in (None, ""):
                continue
            word = str(value)
            seen[word] += 1
            known = (value in valid if isinstance(value, int) and not isinstance(value, bool)
                     else isinstance(value, str) and lookup(table, value, valid) is not None)
            if not known:
                unknown.add(word)
        if not seen:
            continue
        shown = ", ".join(f"{w} ({n})" for w, n in sorted(seen.items(), key=lambda item: (-item[1], item[0])))
        value = {"seen": dict(seen), "unknown": sorted(unknown)}
        if not unknown:
            findings.append(Finding(key, OK, f"{kind} words all known: {shown}", value=value))
            continue
        strange = ", ".join(f"{w!r} ({seen[w]} customers)" for w in sorted(unknown))
        text, number = columns.split(", ")
        findings.append(Finding(key, NOTE, f"{kind} words the docs do not list: {strange}; seen in all: {shown}. "
                                f"The mirror keeps such a word as sent ({text}) and leaves {number} NULL",
                                "nothing needed; tell the project what the word means so a release can map it", value))
    return findings


def _fields(records: list[dict], of_project: Answer | None) -> list[Finding]:
    unknown: Counter[str] = Counter()
    missing: Counter[str] = Counter()
    for record in records:
        keys = set(record)
        unknown.update(sorted(keys - READ_KEYS))
        missing.update(sorted(EXPECTED_READ_KEYS - keys))
        if not any(k in keys for k in STATUS_KEYS):
            missing["customer_status"] += 1
        owner = record.get("owner_user_info")
        if isinstance(owner, dict):
            unknown.update(f"owner_user_info.{k}" for k in sorted(set(owner) - OWNER_KEYS))
        notes = record.get("customer_notes")
        for note in notes if isinstance(notes, list) else []:
            if isinstance(note, dict):
                unknown.update(f"customer_notes[].{k}" for k in sorted(set(note) - NOTE_KEYS))
        projects = record.get("projects")
        for project in projects if isinstance(projects, list) else []:
            if not isinstance(project, dict):
                continue
            unknown.update(f"projects[].{k}" for k in sorted(set(project) - PROJECT_KEYS))
            missing.update(f"projects[].{k}" for k in sorted(PROJECT_KEYS - set(project)))
            site = project.get("site_address")
            if isinstance(site, dict):
                unknown.update(f"projects[].site_address.{k}" for k in sorted(set(site) - SITE_KEYS))
    if of_project is not None and isinstance(of_project.body, dict) and "Customer" in of_project.body:
        body = of_project.body
        unknown.update(f"getcustomerofproject.{k}" for k in sorted(set(body) - PROJECT_CUSTOMER_WRAPPER))
        if isinstance(body["Customer"], dict):
            keys = set(body["Customer"])
            unknown.update(f"getcustomerofproject.Customer.{k}" for k in sorted(keys - PROJECT_CUSTOMER_KEYS))
            missing.update(f"getcustomerofproject.Customer.{k}" for k in sorted(PROJECT_CUSTOMER_KEYS - keys))
    missing.pop("customer_id", None)  # the ids finding says what a missing id means
    total = len(records)
    findings = []
    if unknown:
        listed = ", ".join(f"{k} ({n})" for k, n in sorted(unknown.items()))
        findings.append(Finding("fields_unknown", NOTE, f"fields the mirror does not know (how many times seen): "
                                f"{listed}; kept in each customer's raw payload (customer_raw), not in columns",
                                "nothing needed; tell the project if one holds something worth a column",
                                {"unknown": dict(unknown), "records": total}))
    else:
        findings.append(Finding("fields_unknown", OK, "no field the mirror does not know", value={"unknown": {}}))
    if missing:
        listed = ", ".join(f"{k} ({n} of {total})" if not k.startswith(("projects", "getcustomerofproject"))
                           else f"{k} ({n})" for k, n in sorted(missing.items()))
        findings.append(Finding("fields_missing", NOTE, f"fields the mirror reads are missing: {listed}; what they "
                                "fill stays NULL", "nothing needed; " + REPORT_IT,
                                {"missing": dict(missing), "records": total}))
    else:
        findings.append(Finding("fields_missing", OK, "every field the mirror reads is there", value={"missing": {}}))
    return findings


# -- response times ---------------------------------------------------------------------------------

def _times(answers: list[Answer], pages: dict[int, Answer]) -> Finding:
    by_action: dict[str, list[float]] = {}
    for answer in answers:
        by_action.setdefault(answer.action, []).append(answer.seconds)
    every = [s for values in by_action.values() for s in values]
    slowest = max(answers, key=lambda a: a.seconds)
    page_median = statistics.median(by_action.get(LISTING, every))
    holding = [p for p, a in pages.items() if a.records]
    last = max(holding) if holding else 1
    value = {"calls": len(answers), "median_ms": _ms(statistics.median(every)), "slowest_ms": _ms(slowest.seconds),
             "slowest_action": slowest.action, "page_median_ms": _ms(page_median),
             "by_action_median_ms": {a: _ms(statistics.median(v)) for a, v in by_action.items()}}
    walk = page_median * last
    text = (f"{len(answers)} calls: median {_ms(statistics.median(every))} ms, slowest {_ms(slowest.seconds)} ms "
            f"({slowest.action}); a page takes {_ms(page_median)} ms, so walking {last} page{'s' * (last != 1)} "
            f"one at a time takes {'' if walk < 0.1 else 'about '}{_duration(walk)}")
    if page_median > SLOW_PAGE_SECONDS:
        return Finding("response_times", NOTE, text + "; the walk fetches several pages at once ([api] "
                       "max_in_flight), which hides much of that", "nothing; keep [api] max_in_flight at 8 or more",
                       value)
    return Finding("response_times", OK, text, value=value)


# -- describing an answer -----------------------------------------------------------------------------

def _describe(answer: Answer) -> str:
    """A short, plain description of a body, for messages."""
    body = answer.body
    if body is UNREADABLE:
        if is_html(answer.content_type, answer.text):
            title = page_title(answer.content_type, answer.text, ())
            return f"an HTML page{f' titled {title!r}' if title else ''}"
        text = " ".join(answer.text.split())
        return f"a body that is not JSON ({_short(text) if text else 'empty'})"
    if is_error_object(body):
        code = body.get("code")
        return f"an error ({code + ': ' if code else ''}{_short(body.get('message'))})"
    if isinstance(body, list):
        return "[]" if not body else f"an array of {len(body)}"
    if isinstance(body, dict):
        return "{}" if not body else f"an object with keys {', '.join(sorted(map(str, body))[:6])}"
    return f"the JSON value {_short(body)}"


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _duration(seconds: float) -> str:
    if seconds < 0.1:
        return "less than 0.1 s"
    if seconds < 1:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"
