"""What the listing's pages say about walking it: the page size, whether a walk that stops at
the first page holding fewer than a full page sees the end, and the order of the customers."""

from __future__ import annotations

from typing import Any

from mirror.probe.calls import UNREADABLE, Answer, ids_of, is_error_object
from mirror.probe.description import describe
from mirror.probe.findings import NOTE, OK, PROBLEM, REPORT_IT, Finding

DOCUMENTED_PAGE_SIZE = 50


def paging(pages: dict[int, Answer], max_pages: int) -> list[Finding]:
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
    repeat = repeated_page(pages)
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
        described = describe(after) if after is not None else "not asked"
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


def repeated_page(pages: dict[int, Answer]) -> tuple[int, int] | None:
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

def order(pages: dict[int, Answer]) -> Finding:
    sequences = []
    repeat = repeated_page(pages)  # a page served again says nothing of the order
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

