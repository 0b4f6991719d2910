"""What the lookups answered: getcustomer (by id), getcustomerByemail and getcustomerofproject,
each for a customer the listing holds, so the answer can be checked against the listing."""

from __future__ import annotations

from typing import Any

from mirror.api_answers import NOT_FOUND_CODES
from mirror.errors import WireError
from mirror.probe.calls import BY_EMAIL, BY_ID, OF_PROJECT, Answer, find, ids_of, is_error_object
from mirror.probe.description import describe
from mirror.probe.findings import NOTE, OK, PROBLEM, REPORT_IT, Finding
from mirror.wire.fields import remote_id_of


def lookups(answers: list[Answer], records: list[dict]) -> list[Finding]:
    by_id = {i: r for r, i in zip(records, ids_of(records)) if i is not None}
    found = []
    lookup_id = find(answers, BY_ID)
    if lookup_id is not None:
        found.append(_by_id(lookup_id))
    by_email = find(answers, BY_EMAIL)
    if by_email is not None:
        email = by_email.params.get("customer_email")
        asked = next((i for i, r in by_id.items() if r.get("customer_email") == email), None)
        found.append(_by_email(by_email, asked))
    of_project = find(answers, OF_PROJECT)
    if of_project is not None:
        project = str(of_project.params.get("project_id"))
        owner = next((i for i, r in by_id.items() for p in (r.get("projects") or [])
                      if isinstance(p, dict) and str(p.get("project_id")) == project), None)
        found.append(_of_project(of_project, project, owner))
    elif found:  # the lookups ran, and no customer on the pages read has a project to ask about
        found.append(Finding("project_lookup", OK, "no customer on the pages read has a project, so "
                             "getcustomerofproject was not tried (it only enriches customers that have one)",
                             value={"project_id": None}))
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
                       f"({code or describe(answer)}): a sync would take customers for deleted",
                       "run spmirror check again (a customer deleted between the two calls gives this once); if it "
                       "stays, " + REPORT_IT, value)
    if _missing_action(answer, code):
        return Finding("getcustomer", NOTE, f"getcustomer does not exist here ({code or 'HTTP 404'}): the mirror "
                       "reads one customer through the email lookup when it returns the same id, else waits for "
                       "the next walk", "nothing", {**value, "exists": False})
    if is_error_object(body) or answer.status >= 300:
        return Finding("getcustomer", PROBLEM, f"getcustomer answered HTTP {answer.status} with {describe(answer)}: "
                       "the mirror takes only NOT_FOUND (or a 404 page) for a getcustomer that does not exist, so a "
                       "sync that re-reads a customer (before pushing an edit, before removing one missing from the "
                       "listing) would fail on this answer every time", REPORT_IT, {**value, "exists": None})
    ids = _answered_ids(answer)
    if ids and ids[0] == asked:
        return Finding("getcustomer", OK, f"getcustomer reads a customer by id (asked {asked}, answered {asked})",
                       value=value)
    if ids:
        return Finding("getcustomer", PROBLEM, f"getcustomer answered customer {ids[0]} when asked for {asked}: a "
                       "push would merge a customer's edits against another customer", REPORT_IT, value)
    return Finding("getcustomer", NOTE, f"getcustomer answered HTTP {answer.status} with {describe(answer)}, not "
                   "a customer: the mirror reads one customer through the email lookup instead", REPORT_IT,
                   {**value, "exists": False})


def _missing_action(answer: Answer, code: str) -> bool:
    """Whether the mirror's client takes this answer to getcustomer for "no such action" and
    falls back to the email lookup (mirror/api.py, fetch_customer): a not-found code other than
    CUSTOMER_NOT_FOUND, or HTTP 404 without the API's error object. Any other error it raises."""
    if is_error_object(answer.body):
        return code in NOT_FOUND_CODES and code != "CUSTOMER_NOT_FOUND"
    return answer.status == 404


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
                   f"(HTTP {answer.status}, {describe(answer)}): the mirror cannot read one customer that way",
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
                   f"{answer.status} and {describe(answer)}", "leave [sync] enrich off", value)

