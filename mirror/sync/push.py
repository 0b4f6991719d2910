"""The push: local edits, creates and deletes, sent to Solar Proof safely.

Order of a push:
  1. local deletes: pushed only with push_deletes (the API's delete is permanent), under the
     mass-delete guard; otherwise the row is restored from its base, and that is recorded;
  2. creates: validated, the intent (with what it sends) committed before the POST, the new id
     stored after; a create whose outcome is unknown waits for a complete walk, which adopts the
     one customer that equals what was sent (mirror.sync.creates), never one found by email;
  3. updates: read-only columns and invalid values flag the row 'error' (once per edit);
     otherwise the customer is re-read BY ID just before the update and merged field by field,
     so a change made in Solar Proof meanwhile is not blindly overwritten. A customer that
     cannot be read by id (no getcustomer, a shared email) waits for the sync's complete walk,
     after which a second pass sends it. The merge's result is recorded in a transaction that
     reads the row again, so an edit made during the HTTP calls is never lost.
API calls run on a small thread pool; every database write stays on the calling thread.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import structlog

from mirror.customer import Customer, WRITABLE_FIELDS
from mirror.errors import (
    ApiUnavailableError,
    AuthError,
    NotFoundError,
    NotIdentifiedError,
    OutcomeUnknownError,
    PermanentApiError,
    WireError,
)
from mirror.merge import merge_fields, same
from mirror.store import Store, creates
from mirror.store import local_changes as local
from mirror.sync.dry_run import describe_update
from mirror.validation import problems_of

log = structlog.get_logger()

READ_ONLY_REASON = "is read-only in the Solar Proof API (no endpoint writes it)"


class RemoteWriter(Protocol):
    """What the push needs from the API (SolarProofClient provides it)."""

    def fetch_customer(self, remote_id: int, email: str | None = None) -> Customer | None: ...

    def create_customer(self, fields: dict[str, Any], owner_email: str = "") -> int | None: ...

    def update_customer(self, remote_id: int, fields: dict[str, Any]) -> None: ...

    def delete_customer(self, remote_id: int) -> None: ...


@dataclass
class PushOptions:
    conflict_policy: str = "manual"
    push_deletes: bool = False
    max_in_flight: int = 8
    mass_delete_share: float = 0.10
    allow_mass_delete: bool = False
    dry_run: bool = False
    # Only these customers' updates (None: everything). A sync's second pass after its walk
    # pushes the updates that had to wait for it.
    only: frozenset[int] | None = None
    # Customers a complete walk of this run has just read: their base is as fresh as a re-read.
    read_by_walk: frozenset[int] = frozenset()
    # Told (phase, done, total) as each phase's rows are handled: "deletes", "creates", "updates".
    # Called on the pushing thread; for display only (mirror.progress), it decides nothing.
    on_progress: Callable[[str, int, int], None] | None = None


@dataclass
class PushReport:
    updated: int = 0
    created: int = 0
    adopted: int = 0
    deleted: int = 0
    restored: int = 0
    errors: int = 0
    conflicts: int = 0
    unknown: int = 0  # creates whose outcome is not known yet (adopted or re-sent next run)
    deferred: list[int] = field(default_factory=list)  # updates waiting for a complete walk to read them
    planned: list[str] = field(default_factory=list)  # dry run: what would be done

    def absorb(self, later: PushReport, retried: frozenset[int]) -> None:
        """Add a later pass over the `retried` deferred updates (those the walk listed) to this
        report: what still waits is what the walk did not list, plus what the pass deferred."""
        for name in ("updated", "created", "adopted", "deleted", "restored", "errors", "conflicts", "unknown"):
            setattr(self, name, getattr(self, name) + getattr(later, name))
        self.deferred = sorted((set(self.deferred) - retried) | set(later.deferred))
        self.planned += later.planned


class LocalDeleteRefused(Exception):
    def __init__(self, count: int, limit: int):
        self.count, self.limit = count, limit
        super().__init__(f"refusing to delete {count} customers in Solar Proof in one run (the guard allows "
                         f"{limit}); if the rows were deleted on purpose, run again with --allow-mass-delete")


def run_push(store: Store, remote: RemoteWriter, options: PushOptions, *, run_id: str,
             now: Callable[[], str]) -> PushReport:
    """Push every local change. Raises ApiUnavailableError if the API stops answering."""
    report = PushReport()
    if options.only is not None:
        _push_updates(store, remote, options, report, run_id, now)
        return report
    if not options.dry_run:
        local.settle_conflicts(store)
    for row in local.iter_rows_with_unknown_ids(store):
        _flag(store, row, f"pkcustomerid {row.remote_id} is not a customer this mirror has seen; to add a customer, "
              "set pkcustomerid to NULL (the push then creates it)", {"pkcustomerid": row.remote_id},
              report, run_id, now, options)
    _push_deletes(store, remote, options, report, run_id, now)
    _push_creates(store, remote, options, report, run_id, now)
    _push_updates(store, remote, options, report, run_id, now)
    if not options.dry_run:
        local.settle_pending_without_changes(store)
    return report


# -- deletes ------------------------------------------------------------------------------


def _push_deletes(store, remote, options, report, run_id, now) -> None:
    rows = local.iter_deleted_rows(store)
    if not rows:
        return
    if not options.push_deletes:
        for row in rows:
            report.planned.append(f"restore locally deleted customer {row.remote_id} (push_deletes is off)")
            if not options.dry_run:
                local.restore_deleted(store, row, run_id, now())
                log.warning("local_delete_restored", remote_id=row.remote_id,
                            reason="push_deletes is off; the API's delete is permanent")
        report.restored += len(rows)
        return
    limit = max(1, int(options.mass_delete_share * (store.count_customers() + len(rows))))
    if len(rows) > limit and not options.allow_mass_delete:
        raise LocalDeleteRefused(len(rows), limit)
    for done, row in enumerate(rows):
        _progress(options, "deletes", done, len(rows))
        report.planned.append(f"deletecustomer {row.remote_id}")
        if options.dry_run:
            continue
        try:
            remote.delete_customer(row.remote_id)
        except NotFoundError:
            pass  # already gone (or deleted by an earlier try whose answer was lost)
        local.record_remote_delete(store, row, run_id, now())
        log.info("customer_delete_pushed", remote_id=row.remote_id)
        report.deleted += 1
    _progress(options, "deletes", len(rows), len(rows))


# -- creates ------------------------------------------------------------------------------


def _push_creates(store, remote, options, report, run_id, now) -> None:
    rows = local.iter_new_rows(store)
    for done, row in enumerate(rows):
        _progress(options, "creates", done, len(rows))
        writable = {name: row.fields.get(name) for name in WRITABLE_FIELDS}
        problems = problems_of(writable, creating=True)
        if problems:
            _flag(store, row, "; ".join(problems), writable, report, run_id, now, options)
            continue
        if row.intent_needs_person:
            # A walk found candidates it could not choose between: only a person can say whether
            # one is this row's customer. An edit of the row does not change that.
            _flag(store, row, NEEDS_PERSON.format(row=row.local_id), {}, report, run_id, now, options)
            continue
        if row.intent_sent_at is not None and (row.intent_acknowledged or row.intent_walks < 2):
            # Sent before with no usable answer. Only a complete walk can tell whether Solar Proof
            # has it (the email lookup answers one customer per email, and emails are shared):
            # the pull adopts it on evidence, or flags it; after two walks with no trace it was
            # never created and is sent again below. One Solar Proof said it created is never resent.
            report.unknown += 1
            report.planned.append(f"wait for a complete walk to settle the create of row {row.local_id}")
            log.info("create_awaiting_confirmation", local_id=row.local_id,
                     reason="sent before with no usable answer; the next complete walk settles it")
            continue
        report.planned.append(f"createcustomer for row {row.local_id} ({row.fields.get('customeremail')})")
        if options.dry_run:
            continue
        sent = creates.sent_fields(writable)
        creates.record_create_intent(store, row.local_id, sent, now())
        try:
            new_id = remote.create_customer(writable)
        except OutcomeUnknownError as exc:
            report.unknown += 1
            log.warning("create_outcome_unknown", local_id=row.local_id, error=str(exc))
            creates.note_unconfirmed(store, row.local_id, f"sent {now()} but the answer was lost ({exc.detail}); the "
                                     "next complete walk adopts it if Solar Proof has it, or it is sent again")
            continue
        except AuthError:
            creates.forget_create_intent(store, row.local_id)  # refused before anything was created
            raise  # the key is wrong for every row: the run ends with exit 2 and the row stays pending
        except (PermanentApiError, WireError) as exc:
            creates.forget_create_intent(store, row.local_id)
            reason = exc.detail if isinstance(exc, PermanentApiError) else str(exc)
            _flag(store, row, f"Solar Proof refused the create: {reason}", writable, report, run_id, now, options)
            continue
        if new_id is None:
            # The old docs' create response carries no id. It exists, so it is never sent again;
            # the next complete walk finds it among the customers no row is tied to.
            report.unknown += 1
            creates.note_unconfirmed(store, row.local_id, f"created {now()}, but Solar Proof's answer gave no id; the "
                                     "next complete walk finds it", acknowledged=True)
            continue
        creates.record_created(store, row.local_id, new_id, sent, "local", run_id, now())
        report.created += 1
        log.info("customer_create_pushed", local_id=row.local_id, remote_id=new_id)
    _progress(options, "creates", len(rows), len(rows))


# -- updates ------------------------------------------------------------------------------


def _push_updates(store, remote, options, report, run_id, now) -> None:
    sendable: list[tuple[local.LocalRow, dict[str, Any]]] = []
    for row in local.iter_edited_rows(store):
        if options.only is not None and row.remote_id not in options.only:
            continue
        changed = {n: v for n, v in row.fields.items() if not same(v, row.base.get(n))}
        read_only = sorted(n for n in changed if n not in WRITABLE_FIELDS)
        writable = {n: v for n, v in changed.items() if n in WRITABLE_FIELDS}
        problems = problems_of(writable, creating=False)
        if problems:
            _flag(store, row, "; ".join(problems), changed, report, run_id, now, options)
            continue
        if read_only:
            message = (f"{', '.join(read_only)} {READ_ONLY_REASON}; the edit is kept here and not sent"
                       f" (spmirror resolve {row.remote_id} --take remote restores the remote value)")
            _flag(store, row, message, {n: changed[n] for n in read_only}, report, run_id, now, options)
        if writable:
            sendable.append((row, writable))
        elif not read_only and not options.dry_run:
            # Only differences the mirror treats as equal ("" and NULL): let the base agree.
            _record(store, row, _UpdateOutcome(converged={n: v for n, v in row.fields.items()
                                                          if v != row.base.get(n)}), run_id, now)
    if not sendable:
        return
    with ThreadPoolExecutor(max_workers=options.max_in_flight, thread_name_prefix="spmirror-push") as pool:
        futures = [(row, writable, pool.submit(_send_update, remote, row, writable, options.conflict_policy,
                                               row.remote_id in options.read_by_walk, options.dry_run))
                   for row, writable in sendable]
        unavailable: ApiUnavailableError | None = None
        for done, (row, writable, future) in enumerate(futures):
            _progress(options, "updates", done, len(futures))
            try:
                outcome = future.result()
            except ApiUnavailableError as exc:
                unavailable = exc
                continue
            if options.dry_run:
                # The same re-read and merge as a real push; only the update and the writes are left out.
                report.planned += [f"flag row {row.local_id} as error: {outcome.error}"] if outcome.error else \
                    describe_update(row.remote_id, outcome.pushed, outcome.remote_values, outcome.conflicts,
                                    outcome.deferred)
                continue
            # An update sent after the walk gets no read in this run: its row waits for the next one.
            _record_update(store, row, writable, outcome, report, run_id, now,
                           AWAITING_READ if row.remote_id in options.read_by_walk else None)
        _progress(options, "updates", len(futures), len(futures))
    if unavailable is not None:
        raise unavailable


def _progress(options: PushOptions, phase: str, done: int, total: int) -> None:
    if options.on_progress is not None:
        options.on_progress(phase, done, total)


@dataclass
class _UpdateOutcome:
    pushed: dict[str, Any] = field(default_factory=dict)
    remote_values: dict[str, Any] = field(default_factory=dict)  # to write locally (remote changed, or remote_wins)
    overridden: dict[str, tuple] = field(default_factory=dict)  # remote_wins: field -> (local, remote)
    conflicts: dict[str, tuple] = field(default_factory=dict)
    converged: dict[str, Any] = field(default_factory=dict)  # Solar Proof already holds the local value
    error: str | None = None
    deferred: str | None = None  # the customer could not be read by id: the next complete walk reads it


NEEDS_PERSON = ("the create of this row may have reached Solar Proof (a walk found customers that could be it, named "
                "before); it is not sent again until you settle it: spmirror resolve {row} --adopt PKCUSTOMERID if "
                "one is this row's customer, spmirror resolve {row} --create-again if none is")
AWAITING_READ = ("sent after the walk (this server has no getcustomer); the next complete walk confirms that "
                 "Solar Proof took it")
DEFERRED = ("waiting for a complete walk to read this customer before its update is sent: this server has no "
            "getcustomer, and the email lookup did not return it (the email is shared or changed)")


def _send_update(remote, row, writable: dict[str, Any], policy: str, read_by_walk: bool,
                 dry_run: bool = False) -> _UpdateOutcome:
    """Runs on a pool thread: re-read, merge, update (not in a dry run). Touches no database.

    The re-read must identify the customer by id. When it cannot (no getcustomer, and the email
    lookup answered someone else), nothing is sent until a complete walk has read the customer:
    `read_by_walk` says one just did, so its base is as fresh as a re-read.
    """
    if read_by_walk:
        now_remote = {n: row.base.get(n) for n in writable}
    else:
        try:
            current = remote.fetch_customer(row.remote_id, email=row.base.get("customeremail"))
        except NotIdentifiedError:
            return _UpdateOutcome(deferred=DEFERRED)
        if current is None:
            return _UpdateOutcome(error="this customer no longer exists in Solar Proof; the next syncs confirm "
                                        "the delete and move it to deleted_customers")
        now_remote = {n: current.fields.get(n) for n in writable if n in current.carried}
    merge = merge_fields(row.base, row.fields, {**{n: row.base.get(n) for n in writable}, **now_remote},
                         writable, policy)
    decided = set(merge.to_push) | set(merge.to_local) | set(merge.conflicts)
    outcome = _UpdateOutcome(remote_values=merge.to_local, overridden=merge.overridden, conflicts=merge.conflicts,
                             converged={n: row.fields[n] for n in writable if n not in decided})
    if merge.to_push and dry_run:
        outcome.pushed = merge.to_push  # what it would send
    elif merge.to_push:
        try:
            remote.update_customer(row.remote_id, merge.to_push)
        except NotFoundError:
            outcome.error = "this customer no longer exists in Solar Proof"
            return outcome
        except AuthError:
            raise
        except PermanentApiError as exc:
            outcome.error = f"Solar Proof refused the update: {exc.detail}"
            return outcome
        except WireError as exc:
            outcome.error = f"cannot be sent: {exc}"
            return outcome
        outcome.pushed = merge.to_push
    return outcome


def _record_update(store, row, writable, outcome: _UpdateOutcome, report, run_id, now,
                   awaiting_read: str | None = None) -> None:
    if outcome.error:
        _flag(store, row, outcome.error, writable, report, run_id, now, PushOptions())
        return
    if outcome.deferred:
        local.note_deferred(store, row, outcome.deferred)
        report.deferred.append(row.remote_id)
        log.info("update_deferred", remote_id=row.remote_id, reason=outcome.deferred)
        return
    _record(store, row, outcome, run_id, now, awaiting_read)
    report.conflicts += len(outcome.conflicts)
    for name in outcome.conflicts:
        log.warning("conflict_found", remote_id=row.remote_id, field=name)
    if outcome.pushed:
        report.updated += 1
        log.info("customer_update_pushed", remote_id=row.remote_id, fields=sorted(outcome.pushed))


def _record(store, row, outcome: _UpdateOutcome, run_id, now, awaiting_read: str | None = None) -> None:
    read_only = sorted(n for n, v in row.fields.items()
                       if n not in WRITABLE_FIELDS and not same(v, row.base.get(n)))
    message = f"{', '.join(read_only)} {READ_ONLY_REASON}; the edit is kept here and not sent" if read_only else None
    local.record_update(store, row, pushed=outcome.pushed, remote_values=outcome.remote_values,
                        overridden=outcome.overridden, conflicts=outcome.conflicts, converged=outcome.converged,
                        still_differs=message, run_id=run_id, now=now(), awaiting_read=awaiting_read)


def _flag(store, row, message: str, intended, report, run_id, now, options) -> None:
    report.errors += 1
    report.planned.append(f"flag row {row.local_id} as error: {message}")
    if options.dry_run:
        return
    local.mark_error(store, row.local_id, message, intended, run_id, now())
    log.warning("row_not_pushed", local_id=row.local_id, remote_id=row.remote_id, error=message)
