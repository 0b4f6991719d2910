"""From the probe's answers to findings: pure functions, so saved answers (--save-samples) give
the same findings as the live calls did.

What makes a finding a problem is whether a sync would be wrong or unsafe: a refused key, a
URL that is not the API, a listing whose end a walk cannot see (pages that repeat, an error
past the last page, a short page before the last), customer ids the mirror cannot use, a read
by id that answers for another customer or calls a listed one missing, and errors that cannot
be told from answers. Everything the mirror copes with (the other doc generation, another page
size once recorded, numeric ids, no `getcustomer`, errors inside HTTP 200, unknown words or
fields) is a note.

Each finding has its module, by what it looks at: `access` (the key and the URL), `generation`
(the doc generation), `listing` (page size, walk end, order), `record_values` (ids, dates,
words, fields), `lookups`, `error_framing` and `timing`; `description` names an answer in a
message. This module only runs them in report order.
"""

from __future__ import annotations

from mirror.probe.access import listing_refused
from mirror.probe.calls import OF_PROJECT, Answer, find, ids_of
from mirror.probe.error_framing import error_framing, errors_found
from mirror.probe.findings import OK, Finding
from mirror.probe.generation import generation
from mirror.probe.listing import DOCUMENTED_PAGE_SIZE, order, paging
from mirror.probe.lookups import lookups
from mirror.probe.record_values import dates, fields, ids, words
from mirror.probe.timing import SLOW_PAGE_SECONDS, times

__all__ = ["DOCUMENTED_PAGE_SIZE", "SLOW_PAGE_SECONDS", "detect"]


def detect(answers: list[Answer], *, max_pages: int = 100_000) -> list[Finding]:
    """Every finding the answers support, in report order (see the module docstring)."""
    pages = {a.page: a for a in answers if a.page is not None}
    first = pages.get(1)
    if first is None:
        return []
    refusal = listing_refused(first)
    if refusal is not None:
        return [refusal]
    findings = [Finding("key", OK, "the API accepted the key (getallcustomers answered page 1)")]
    records = _distinct([record for number in sorted(pages) for record in (pages[number].records or [])
                         if isinstance(record, dict)])
    errors = error_framing(answers)
    if records:
        findings.append(generation(records, errors))
    findings += paging(pages, max_pages)
    if records:
        findings += [order(pages), ids(records), *lookups(answers, records), *errors_found(errors),
                     dates(records), *words(records), *fields(records, find(answers, OF_PROJECT))]
    else:
        findings += errors_found(errors)
    findings.append(times(answers, pages))
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
