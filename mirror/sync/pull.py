"""The pull: walk every page, keep what changed, and remove what Solar Proof deleted, safely.

Pages are parsed and written while later pages are in flight (the walk prefetches on its own
threads). A listed record whose JSON text is byte-identical to last time is skipped before it is
even normalised, so an unchanged account costs the fetch and nothing more: zero row writes.
Deletes are planned only from a complete walk (see planner.plan_deletes).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Protocol

import structlog

from mirror.changes import CREATE, REFRESH, UPDATE, Pulled, RemoteChange
from mirror.customer import Customer, email_key
from mirror.errors import ApiError, IncompleteWalkError, Interrupted, MirrorError, NotIdentifiedError, WireError
from mirror.fingerprint import content_hash, raw_hash
from mirror.store import BaseEntry, Store, to_json
from mirror.store.creates import count_walk_for_intents, flag_candidates, open_intents, waiting_emails
from mirror.store.remote_writes import adopt_found, apply_remote_changes, delete_customers, mark_missing
from mirror.store.runs import record_rejected
from mirror.sync.base_hashes import BaseHashes
from mirror.sync.creates import ABSENT, ADOPT, match_creates
from mirror.sync.dry_run import describe_create_decisions, describe_deletes, describe_remote_changes
from mirror.sync.planner import plan_deletes, plan_remote_change
from mirror.walk import CustomerWalk, Page, PageSource
from mirror.wire import parse_customer

log = structlog.get_logger()

ENRICHED_FIELDS = (
    "customerabn",
    "customer_site_address",
    "best_contact_mornings",
    "best_contact_middays",
    "best_contact_afternoons",
    "best_contact_evenings",
)


class RemoteCustomers(PageSource, Protocol):
    """What the pull needs from the API (SolarProofClient provides it)."""

    def fetch_customer(self, remote_id: int, email: str | None = None) -> Customer | None: ...

    def fetch_customer_of_project(self, project_id: int) -> Customer | None: ...


class MassDeleteRefused(MirrorError):
    """More customers would be deleted in one run than the guard allows."""

    def __init__(self, count: int, limit: int, mirror_size: int):
        self.count, self.limit, self.mirror_size = count, limit, mirror_size
        super().__init__(
            f"refusing to delete {count} of {mirror_size} customers in one run (the guard allows {limit}); "
            "if Solar Proof really lost them, run again with --allow-mass-delete"
        )


@dataclass
class PullOptions:
    max_in_flight: int = 8
    max_pages: int = 100_000
    mass_delete_share: float = 0.10
    allow_mass_delete: bool = False
    enrich: bool = False
    conflict_policy: str = "manual"
    dry_run: bool = False  # walk and plan, write nothing
    # A second walk in the same sync, only to read what was just sent: it plans no delete and does
    # not count as one of the walks a create or a delete waits for (those must be syncs apart).
    confirming: bool = False
    stop: threading.Event | None = None  # set by a signal: stop after the current page
    batch_records: int = 2000  # pending changed records that trigger a write (whole pages only)
    page_size: int = 50  # records on a full listing page (walk.PAGE_SIZE unless a check found otherwise)


@dataclass
class PullReport:
    run_id: str
    complete: bool = False
    pages: int = 0
    listed: int = 0
    created: int = 0
    updated: int = 0
    refreshed: int = 0
    unchanged: int = 0
    deleted: int = 0
    delete_candidates: int = 0
    rejected: int = 0
    duplicates: int = 0
    conflicts: int = 0
    adopted: int = 0  # unconfirmed creates this walk proved, tied to their rows
    unsettled_creates: int = 0  # creates left in 'error' for a person: several candidates, or a near miss
    not_taken: int = 0  # customers where Solar Proof did not keep a value this mirror sent
    seconds: float = 0.0
    deleted_ids: list[int] = field(default_factory=list)
    held: list[RemoteChange] = field(default_factory=list, repr=False)  # new customers awaiting the create check
    planned: list[str] = field(default_factory=list)  # dry run: the writes it would make
    planned_counts: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "pages": self.pages, "listed": self.listed, "created": self.created, "updated": self.updated,
            "unchanged": self.unchanged + self.refreshed, "deleted": self.deleted,
            "delete_candidates": self.delete_candidates, "rejected": self.rejected,
        }


def run_pull(
    store: Store,
    remote: RemoteCustomers,
    options: PullOptions,
    *,
    run_id: str,
    now: Callable[[], str],
    on_page: Callable[[Page, PullReport], None] | None = None,
) -> PullReport:
    """Pull every customer into `store`. Raises if the walk is incomplete (nothing deleted then)."""
    started = time.perf_counter()
    report = PullReport(run_id)
    # The first import of an account records no per-customer history or log lines: one summary.
    initial_import = not store.has_base()
    if store.first_import_unfinished() and not options.dry_run:
        store.finish_first_import()  # an earlier first import stopped before it built its indexes
    if initial_import and not options.dry_run:
        store.begin_first_import()
    walk = CustomerWalk(remote, max_in_flight=options.max_in_flight, max_pages=options.max_pages,
                         page_size=options.page_size)
    pending: list[Pulled] = []
    base: dict[int, BaseEntry] = {}  # the base of the customers in `pending`, read page by page
    # Read before the walk's threads start: see base_hashes.py for why not page by page.
    stored = BaseHashes() if initial_import else BaseHashes.load(store.raw_hashes())
    for page in walk:
        report.pages += 1
        report.listed += len(page.records)
        report.duplicates += page.duplicates
        if page.rejected and not options.dry_run:
            _reject(store, page, run_id, now(), [(item.text, str(error)) for item, error in page.rejected], report)
        changed = []
        for record in page.records:
            text_hash = raw_hash(record.text)
            if stored.unchanged(record.remote_id, text_hash):
                report.unchanged += 1
                continue
            try:
                customer = parse_customer(record.value)
            except WireError as exc:
                _reject(store, page, run_id, now(), [(record.text, str(exc))], report)
                continue
            pending.append(Pulled(customer, record.text, text_hash, ""))
            changed.append(record.remote_id)
        if changed and len(stored):
            base.update(store.base_entries(changed))
        if len(pending) >= options.batch_records or page.is_last:
            _flush(store, remote, options, pending, base, report, run_id, now(), initial_import)
            pending, base = [], {}
        if on_page is not None:
            on_page(page, report)
        if options.stop is not None and options.stop.is_set():
            # Pages so far are written, each whole; no deletes are applied from a partial walk.
            _flush(store, remote, options, pending, base, report, run_id, now(), initial_import)
            if initial_import and not options.dry_run:
                store.finish_first_import()
            raise Interrupted(f"stopped after page {page.number} of the listing, as asked")
    report.complete = walk.complete
    if initial_import and not options.dry_run:
        store.finish_first_import()
    if not walk.complete:  # the walk raises first; this keeps the rule in plain sight
        raise IncompleteWalkError("getallcustomers", "the listing ended early; no deletes applied")
    _settle_creates(store, options, report, run_id, now)
    if options.confirming:
        report.seconds = time.perf_counter() - started
        return report
    _apply_deletes(store, remote, options, walk.remote_ids, report, run_id, now)
    if not options.dry_run:
        count_walk_for_intents(store)
    report.seconds = time.perf_counter() - started
    if initial_import:
        log.info("initial_import_finished", customers=report.created, run_id=run_id)
    return report


def _reject(store: Store, page: Page, run_id: str, when: str, items: list[tuple[str, str]], report: PullReport) -> None:
    report.rejected += len(items)
    record_rejected(store, run_id, when, page.number, items)
    for _text, reason in items:
        log.warning("record_rejected", page=page.number, reason=reason)


def _flush(store, remote, options, pending: list[Pulled], base, report, run_id, when, initial_import) -> None:
    if not pending:
        return
    payloads: dict[int, str] = {}
    if options.enrich:
        pending = _enrich(remote, options, pending, payloads)
    pending = [Pulled(p.customer, p.raw_text, p.raw_hash, content_hash(p.customer)) for p in pending]
    known = [p.customer.remote_id for p in pending if p.customer.remote_id in base]
    base_fields = store.base_fields(known) if known else {}
    changes: list[RemoteChange] = []
    for pulled in pending:
        entry = base.get(pulled.customer.remote_id)
        changes.append(plan_remote_change(pulled, entry.content_hash if entry else None,
                                          base_fields.get(pulled.customer.remote_id, {} if entry else None)))
    if options.dry_run:
        waiting = waiting_emails(store.db)
        held = [c for c in changes if c.kind == CREATE and email_key(c.fields.get("customeremail")) in waiting]
        report.held.extend(held)
        held_ids = {c.remote_id for c in held}
        rest = [c for c in changes if c.remote_id not in held_ids]
        describe_remote_changes(rest, report.planned_counts, report.planned)
        _count(rest, report, quiet=True)
        return
    applied = apply_remote_changes(store, changes, run_id=run_id, now=when, record_history=not initial_import,
                                   project_payloads=payloads, conflict_policy=options.conflict_policy,
                                   first_import=initial_import)
    _note_applied(applied, report)
    held = {c.remote_id for c in applied.held}
    report.held.extend(applied.held)
    # A customer this mirror wrote has an emptied content hash: its values coming back unchanged
    # confirm the write, and are not a remote change.
    ours = {c.remote_id for c in changes if c.remote_id in base and not base[c.remote_id].content_hash}
    _count([c for c in changes if c.remote_id not in held], report, quiet=initial_import, confirmations=ours)


def _note_applied(applied, report: PullReport) -> None:
    for remote_id, name in applied.conflicts:
        log.warning("conflict_found", remote_id=remote_id, field=name)
    for remote_id, fields in applied.not_taken.items():
        log.warning("write_not_taken", remote_id=remote_id, fields=sorted(fields))
    report.conflicts += len(applied.conflicts)
    report.not_taken += len(applied.not_taken)


def _settle_creates(store: Store, options: PullOptions, report: PullReport, run_id: str, now) -> None:
    """After a COMPLETE walk: tie each unconfirmed create to the customer it certainly made, flag
    the uncertain ones for a person, and write every other new customer as a row of its own."""
    held, report.held = report.held, []
    intents = {intent.local_id: intent for intent in open_intents(store.db)}
    decisions = match_creates({i: intent.sent for i, intent in intents.items()},
                              [(c.remote_id, c.fields) for c in held])
    if options.dry_run:
        report.planned += describe_create_decisions(decisions, {i: intent.walks for i, intent in intents.items()})
        adopted = {d.remote_ids[0] for d in decisions.values() if d.kind == ADOPT}
        rest = [c for c in held if c.remote_id not in adopted]
        describe_remote_changes(rest, report.planned_counts, report.planned)
        _count(rest, report, quiet=True)
        return
    by_id = {c.remote_id: c for c in held}
    for local_id, decision in decisions.items():
        intent = intents[local_id]
        if decision.kind == ADOPT:
            conflicts = adopt_found(store, local_id, intent.sent, by_id[decision.remote_ids[0]],
                                    options.conflict_policy, run_id, now())
            if conflicts is None:
                continue
            del by_id[decision.remote_ids[0]]
            report.adopted += 1
            report.conflicts += len(conflicts)
            log.info("customer_create_adopted", local_id=local_id, remote_id=decision.remote_ids[0])
        elif decision.kind != ABSENT or (intent.acknowledged and intent.walks >= 1):
            # Several candidates, a near miss, or "created" said twice over with nothing listed.
            with store.transaction() as db:
                message = flag_candidates(db, local_id, decision.kind, decision.remote_ids, intent.sent_at)
            report.unsettled_creates += 1
            log.warning("create_not_matched", local_id=local_id, candidates=list(decision.remote_ids),
                        error=message)
    if by_id:
        rest = list(by_id.values())
        applied = apply_remote_changes(store, rest, run_id=run_id, now=now(), conflict_policy=options.conflict_policy,
                                       hold_for_creates=False)
        _note_applied(applied, report)
        _count(rest, report, quiet=False)


def _count(changes: list[RemoteChange], report: PullReport, quiet: bool,
           confirmations: frozenset[int] | set[int] = frozenset()) -> None:
    """Count what was applied, logging each change unless `quiet` (first import, dry run).
    A customer in `confirmations` that comes back with no changed field is a confirmed write."""
    for change in changes:
        if change.kind == CREATE:
            report.created += 1
            if not quiet:
                log.info("customer_created", remote_id=change.remote_id)
        elif change.kind == UPDATE and (change.changed or change.remote_id not in confirmations):
            report.updated += 1
            if not quiet:
                log.info("customer_updated", remote_id=change.remote_id, fields=sorted(change.changed))
        else:
            report.refreshed += 1


def _enrich(remote: RemoteCustomers, options: PullOptions, pending: list[Pulled], payloads: dict[int, str]) -> list[Pulled]:
    """Fill ABN, site address and contact times from getcustomerofproject (one call each)."""

    def enrich_one(pulled: Pulled) -> Pulled:
        customer = pulled.customer
        if not customer.projects:
            return pulled
        project_id = min(p.project_id for p in customer.projects)
        try:
            extra = remote.fetch_customer_of_project(project_id)
        except ApiError as exc:
            log.warning("enrichment_failed", remote_id=customer.remote_id, project_id=project_id, error=str(exc))
            # Say nothing about the enriched fields, so the values learned earlier are kept.
            return Pulled(_with_carried(customer, customer.carried - frozenset(ENRICHED_FIELDS)),
                          pulled.raw_text, pulled.raw_hash, "")
        if extra is None or extra.remote_id != customer.remote_id:
            return pulled
        fields = dict(customer.fields)
        for name in ENRICHED_FIELDS:
            if extra.fields.get(name) is not None:
                fields[name] = extra.fields[name]
        payloads[customer.remote_id] = to_json(extra.raw)
        enriched = _with_carried(customer, customer.carried | frozenset(ENRICHED_FIELDS), fields,
                                 customer.problems + extra.problems)
        return Pulled(enriched, pulled.raw_text, pulled.raw_hash, "")

    with ThreadPoolExecutor(max_workers=options.max_in_flight, thread_name_prefix="spmirror-enrich") as pool:
        return list(pool.map(enrich_one, pending))


def _with_carried(customer: Customer, carried: frozenset[str], fields=None, problems=None) -> Customer:
    return Customer(customer.remote_id, fields if fields is not None else customer.fields, carried, customer.shape,
                    customer.raw, customer.notes, customer.projects, customer.owner,
                    problems if problems is not None else customer.problems)


def _apply_deletes(store, remote, options, listed, report: PullReport, run_id, now) -> None:
    """Deletes from a complete walk: the same guard, refusal and re-check by id in a dry run,
    which only says what it would remove."""
    plan = plan_deletes(store.missing_since(listed), listed, store.count_customers(), options.mass_delete_share,
                        options.allow_mass_delete)
    report.delete_candidates = len(plan.new_candidates)
    if not options.dry_run:
        mark_missing(store, plan.reappeared, None)
        mark_missing(store, plan.new_candidates, run_id)
    if len(plan.new_candidates) > plan.limit:
        log.warning("mass_delete_suspected", missing=len(plan.new_candidates), limit=plan.limit)
    if plan.refused:
        raise MassDeleteRefused(len(plan.confirmed), plan.limit, store.count_customers())
    # A second check before a permanent local removal: does the API still know the customer? Only
    # a read that returns this very id counts; a lookup that cannot identify it (no getcustomer,
    # its email now someone else's) proves nothing either way, and two complete walks stand.
    emails = store.base_fields(plan.confirmed)
    found_again = set()
    for remote_id in sorted(plan.confirmed):
        try:
            found = remote.fetch_customer(remote_id, email=emails.get(remote_id, {}).get("customeremail"))
        except NotIdentifiedError:
            continue
        if found is not None and found.remote_id == remote_id:
            found_again.add(remote_id)
    doomed = sorted(plan.confirmed - found_again)
    report.deleted_ids = doomed
    if options.dry_run:
        report.planned += describe_deletes(len(plan.new_candidates), doomed)
        return
    mark_missing(store, found_again, None)
    for record in delete_customers(store, doomed, run_id=run_id, now=now()):
        log.info("customer_deleted", remote_id=record["pkcustomerid"], email=record["fields"].get("customeremail"))
    report.deleted = len(doomed)
