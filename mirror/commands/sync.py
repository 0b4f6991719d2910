"""`spmirror sync`: push local edits, pull remote changes, then exit with a code that says how."""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from dataclasses import dataclass

import structlog

from mirror.api import SolarProofClient
from mirror.clock import utc_now_text
from mirror.config import Settings
from mirror.errors import (ApiUnavailableError, AuthError, EndpointError, HostNotFoundError, Interrupted,
                           MirrorError, PermanentApiError)
from mirror.redaction import redact_url
from mirror.exit_codes import EXIT_FAILURE, EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_USAGE
from mirror.logs import hide_on_console
from mirror.progress import PushProgress, StatusLine, WalkProgress, format_duration
from mirror.probe.calls import LISTING, Answer, fetch_answers
from mirror.probe.detect import detect
from mirror.probe.findings import UnsafeApi, problems
from mirror.store import LockBusy, Store, StoreBusy, StoreError, StoreUnreachable, WriteHolds, sync_lock
from mirror.store.account import load_pin, mirrored_people
from mirror.store.api_facts import record_findings, recorded_page_size
from mirror.store.local_changes import listed_by_last_walk
from mirror.store.runs import finish_run, last_walk_pages, open_for_reading, rows_by_state, start_run
from mirror.sync.account import AccountMismatch, check_account, ensure_account
from mirror.sync.pull import MassDeleteRefused, PullOptions, PullReport, run_pull
from mirror.sync.push import LocalDeleteRefused, PushOptions, PushReport, run_push

log = structlog.get_logger()


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "sync", parents=[common], help="push local edits and pull every customer now, then exit",
        description="Push edits made in the SQLite mirror (updates, inserted rows, and deletes when "
        "[sync] push_deletes is on) to Solar Proof, then walk every customer page and write what "
        "changed remotely. Exit codes: 0 done, 1 unexpected failure, 2 usage or config error, "
        "4 refused by the mass-delete guard, 75 the API was unavailable.",
    )
    sides = parser.add_mutually_exclusive_group()
    sides.add_argument("--pull-only", action="store_true", help="only pull remote changes")
    sides.add_argument("--push-only", action="store_true", help="only push local edits")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the planned API writes and local writes; perform none")
    parser.add_argument("--allow-mass-delete", action="store_true",
                        help="apply deletes even beyond [sync] mass_delete_share of the mirror")
    parser.add_argument("--no-progress", action="store_true", help="no progress line on a terminal")
    parser.add_argument("--wait", type=float, default=60.0, metavar="SECONDS",
                        help="how long to wait for a sync another process is running (default 60)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    show_progress = not args.no_progress and sys.stderr.isatty()
    # A person at a terminal gets one line at the end instead of the sync_finished record. Off a
    # terminal (cron, systemd) nothing is added: cron mails any output, so a line on every
    # success would be mail every five minutes; sync_finished (JSON) and Error lines say it all.
    summary_to = next((s for s in (sys.stderr, sys.stdout) if s.isatty()), None)
    if summary_to is not None:
        hide_on_console("sync_finished", "initial_import_finished")
    try:
        lock = sync_lock(settings.database, "spmirror sync")
        lock.acquire(wait_seconds=args.wait)
    except LockBusy as exc:
        print(f"Error: another sync of this mirror is running: {exc.holder}\n"
              f"Try: wait for it (spmirror status), or spmirror sync --wait {int(args.wait * 2 or 60)}",
              file=sys.stderr)
        return EXIT_UNAVAILABLE
    with lock:
        started = time.perf_counter()
        code, report = sync_once(settings, allow_mass_delete=args.allow_mass_delete, show_progress=show_progress,
                                 pull=not args.push_only, push=not args.pull_only, dry_run=args.dry_run)
        seconds = time.perf_counter() - started
    if args.dry_run and report is not None:
        print(render_plan(report))
    elif summary_to is not None:
        line = render_summary(report, seconds, pull=not args.push_only, push=not args.pull_only,
                              states=_states_after(settings) if report.result == "ok" else None)
        if line:
            print(line, file=summary_to)
    return code


def _states_after(settings: Settings) -> dict[str, int] | None:
    """Rows by sync_state once the run is over (None if the file cannot be read now)."""
    try:
        with open_for_reading(settings.database) as db:
            return rows_by_state(db)
    except StoreError:  # each backend's reading turns its driver's errors into these
        return None


def render_summary(report: SyncReport, seconds: float, *, pull: bool = True, push: bool = True,
                   states: dict[str, int] | None = None) -> str | None:
    """The line a person at a terminal reads when a sync ends, e.g. "Pulled 100,000 customers
    (3 new, 12 changed, 1 deleted) and pushed 4 edits in 19 s; 1 conflict: spmirror status".
    None unless the run completed: the Error and Try lines say what happened.

    The tail counts the rows that are not synced now (`states`, rows by sync_state after the
    run), from this run or an earlier one, since the per-customer log lines are not on a
    terminal without verbose.
    """
    if report.result != "ok":
        return None
    pushed = report.counts().get("pushed", 0)
    if pull:
        changes = [f"{n:,} {what}" for n, what in ((report.created, "new"), (report.updated, "changed"),
                                                   (report.deleted, "deleted"),
                                                   (report.delete_candidates, "missing")) if n]
        text = f"Pulled {_n(report.listed, 'customer')} ({', '.join(changes) or 'no changes'})"
        if pushed:
            text += f" and pushed {_n(pushed, 'edit')}"
    else:
        text = f"Pushed {_n(pushed, 'edit')}" if pushed else "Nothing to push"
    text += f" in {format_duration(seconds)}"
    if push and report.push is not None and report.push.restored:
        text += f"; restored {_n(report.push.restored, 'row')} deleted here (push_deletes is off)"
    if states is None:
        counts = report.counts()
        states = {"conflict": counts.get("conflicts", 0), "error": counts.get("push_errors", 0)}
    attention = [_n(states[state], noun) for state, noun in
                 (("conflict", "conflict"), ("error", "error"), ("pending", "edit waiting")) if states.get(state)]
    if attention:
        text += f"; {', '.join(attention)}: spmirror status"
    return text


def _n(count: int, noun: str) -> str:
    """`1 edit`, `4 edits`, `100,000 customers` (the first word of `noun` takes the plural)."""
    first, _, rest = noun.partition(" ")
    return f"{count:,} {first}{'' if count == 1 else 's'}" + (f" {rest}" if rest else "")


def _finish(store: Store, run_id: str, result: str, report: SyncReport, error: str | None) -> None:
    """Record the run's end; a database another program holds locked cannot take it, so say so."""
    try:
        finish_run(store, run_id, utc_now_text(), result, report.counts(), error)
    except StoreBusy as exc:
        log.warning("sync_not_recorded", reason=str(exc))


class _NotStarted(Exception):
    """The run was refused before it began: the settings point at another account."""


@dataclass
class SyncReport(PullReport):
    """A pull's report, with the push that went before it."""

    push: PushReport | None = None
    result: str = ""  # how the run ended: ok, incomplete, busy, refused, failed, interrupted

    def counts(self) -> dict[str, int]:
        counts = super().counts()
        if self.push is not None:
            counts["pushed"] = (self.push.updated + self.push.created + self.push.adopted + self.adopted
                                + self.push.deleted)
            counts["push_errors"] = self.push.errors
            counts["conflicts"] = self.push.conflicts + self.conflicts
        else:
            counts["conflicts"] = self.conflicts
        return counts


def render_plan(report: SyncReport) -> str:
    lines = ["Dry run: nothing was written, in Solar Proof or in the mirror."]
    if report.push is not None:
        lines += [f"  would {line}" for line in report.push.planned] or ["  nothing to push"]
    lines += [f"  would {line}" for line in report.planned]
    lines.append(f"  pull would create {report.created}, update {report.updated}, leave {report.unchanged} "
                 f"unchanged, mark {report.delete_candidates} missing, delete {len(report.deleted_ids)}")
    return "\n".join(lines)


def pull_options(settings: Settings, allow_mass_delete: bool, dry_run: bool = False,
                 stop: threading.Event | None = None, confirming: bool = False,
                 page_size: int | None = None) -> PullOptions:
    """`page_size`: what spmirror check or the first sync measured (None: the documented 50)."""
    measured = {"page_size": page_size} if page_size else {}
    return PullOptions(
        **measured,
        max_in_flight=settings[("api", "max_in_flight")],
        max_pages=settings[("api", "max_pages")],
        mass_delete_share=settings[("sync", "mass_delete_share")],
        allow_mass_delete=allow_mass_delete,
        enrich=settings[("sync", "enrich")],
        conflict_policy=settings[("sync", "conflict_policy")],
        dry_run=dry_run,
        stop=stop,
        confirming=confirming,
    )


def first_contact(store: Store, client: SolarProofClient, settings: Settings, *, dry_run: bool) -> int | None:
    """On a mirror's first sync (no account pinned, no customer ever pulled), before anything is
    written here or in Solar Proof: spmirror check's detection, from the listing and a wrong call
    (no lookups). Its findings are recorded (not on a dry run), and a problem raises UnsafeApi
    with the lines spmirror check prints. Returns the page size to walk with: the measured one,
    or the one recorded earlier (None: the documented 50).

    Page 1 is read as every sync reads it, so a refused key or a URL that is not the API raises
    the usual error (AuthError, EndpointError) before anything else is asked.
    """
    if load_pin(store) is not None or mirrored_people(store):
        return recorded_page_size(store)
    started = time.perf_counter()
    records = client.fetch_customer_page(1)
    text = "null" if records is None else "[" + ",".join(record.text for record in records) + "]"
    page_one = Answer(LISTING, {"page": 1}, 200, "application/json", text, time.perf_counter() - started)
    max_pages = settings[("api", "max_pages")]
    findings = detect(fetch_answers(client, lookups=False, max_pages=max_pages, page_one=page_one),
                      max_pages=max_pages)
    if not dry_run:
        record_findings(store, findings, source="first_sync", now=utc_now_text())
    found = problems(findings)
    if found:
        raise UnsafeApi(found)
    size = next((f.value for f in findings if f.key == "page_size"), None)
    measured = size.get("size") if isinstance(size, dict) and size.get("measured") else None
    return measured or (None if dry_run else recorded_page_size(store))


def push_options(settings: Settings, allow_mass_delete: bool, dry_run: bool = False,
                 only: frozenset[int] | None = None, on_progress=None) -> PushOptions:
    return PushOptions(
        only=only,
        read_by_walk=only or frozenset(),
        conflict_policy=settings[("sync", "conflict_policy")],
        push_deletes=settings[("sync", "push_deletes")],
        max_in_flight=settings[("api", "max_in_flight")],
        mass_delete_share=settings[("sync", "mass_delete_share")],
        allow_mass_delete=allow_mass_delete,
        dry_run=dry_run,
        on_progress=on_progress,
    )


def sync_once(settings: Settings, *, allow_mass_delete: bool = False, show_progress: bool = False,
              pull: bool = True, push: bool = True, dry_run: bool = False,
              client: SolarProofClient | None = None,
              stop: threading.Event | None = None) -> tuple[int, SyncReport]:
    """One sync run (push, then pull), recorded in sync_runs and logged as one `sync_finished` line.

    Pushing first sends local edits while their base is fresh; the pull that follows then sees
    the pushed values come back as nothing new.
    """
    run_id = uuid.uuid4().hex[:12]
    structlog.contextvars.bind_contextvars(run_id=run_id)
    started = time.perf_counter()
    report = SyncReport(run_id)
    result, error, code = "failed", None, EXIT_FAILURE
    own_client = client is None
    client = client or SolarProofClient.from_settings(settings)
    holds = WriteHolds()
    # One line on the terminal for the whole run: the push's "n of m", then the walk's pages.
    line = StatusLine() if show_progress else None
    try:
        with Store.open(settings.database, busy_timeout=settings[("database", "busy_timeout")]) as store:
            holds = store.write_holds
            # Before anything is written, here or in Solar Proof: is this the file's own account?
            try:
                check_account(store, settings[("api", "url")], settings.api_key)
            except AccountMismatch as exc:
                result, error, code = "refused", str(exc), EXIT_USAGE
                raise _NotStarted from exc
            if not dry_run:
                start_run(store, run_id, utc_now_text())
            expected_pages = last_walk_pages(store)
            try:
                page_size = first_contact(store, client, settings, dry_run=dry_run)
                # An unpinned file is pinned once the API accepts the key (and, if it holds
                # customers already, once the listing shows they are this account's).
                ensure_account(store, client, settings[("api", "url")], settings.api_key, utc_now_text(),
                               dry_run=dry_run)
                if push:
                    report.push = run_push(store, client, push_options(
                        settings, allow_mass_delete, dry_run, on_progress=line and PushProgress(line)),
                        run_id=run_id, now=utc_now_text)
                if pull:
                    pulled = run_pull(
                        store, client, pull_options(settings, allow_mass_delete, dry_run, stop, page_size=page_size),
                        run_id=run_id,
                        now=utc_now_text, on_page=line and WalkProgress(line, expected_pages),
                    )
                    for name in PullReport.__dataclass_fields__:
                        if name != "run_id":
                            setattr(report, name, getattr(pulled, name))
                    if push and report.push is not None and report.push.deferred and not dry_run:
                        # Updates that could not re-read their customer by id: the complete walk
                        # just read every listed one, so they go now, merged against it.
                        walked = frozenset(listed_by_last_walk(store, report.push.deferred))
                        if walked:
                            later = run_push(store, client, push_options(
                                settings, allow_mass_delete, only=walked, on_progress=line and PushProgress(line)),
                                run_id=run_id, now=utc_now_text)
                            report.push.absorb(later, walked)
                            if later.updated:
                                # Nothing can read these by id: one more walk reads what Solar Proof
                                # took, so no row ends this sync 'synced' on trust, or waits a sync.
                                confirmed = run_pull(store, client, pull_options(
                                    settings, allow_mass_delete, stop=stop, confirming=True, page_size=page_size),
                                    run_id=run_id, now=utc_now_text)
                                report.not_taken += confirmed.not_taken
                                report.conflicts += confirmed.conflicts
                result, code = "ok", EXIT_OK
            except (AccountMismatch, UnsafeApi) as exc:
                result, error, code = "refused", str(exc), EXIT_USAGE
            except (MassDeleteRefused, LocalDeleteRefused) as exc:
                result, error, code = "refused", str(exc), EXIT_REFUSED
            except Interrupted as exc:
                result, error, code = "interrupted", str(exc), EXIT_OK
            except AuthError as exc:
                result, code = "failed", EXIT_USAGE
                error = f"the API refused the key: {exc} (check [api] key / SPMIRROR_API_KEY)"
            except (EndpointError, HostNotFoundError) as exc:
                result, error, code = "failed", str(exc), EXIT_USAGE
            except ApiUnavailableError as exc:
                result, error, code = "incomplete", str(exc), EXIT_UNAVAILABLE
            except PermanentApiError as exc:
                result, error = "failed", str(exc)
            except StoreBusy as exc:
                result, error, code = "busy", str(exc), EXIT_UNAVAILABLE
            finally:
                if not dry_run:
                    _finish(store, run_id, result, report, error)
    except _NotStarted:
        pass  # refused before the run began: no sync_runs row, no write anywhere
    except StoreBusy as exc:
        result, error, code = "busy", str(exc), EXIT_UNAVAILABLE
    except StoreUnreachable as exc:  # the PostgreSQL server is down or unreachable: try again later
        result, error, code = "unavailable", str(exc), EXIT_UNAVAILABLE
    except StoreError as exc:  # a file that is not a usable mirror: a user's path, not a bug
        error, code = str(exc), EXIT_USAGE
    except MirrorError as exc:
        error = str(exc)
    finally:
        if line is not None:
            line.close()
        if own_client:
            client.close()
        structlog.contextvars.unbind_contextvars("run_id")
    report.result = result
    event = log.info if code == EXIT_OK else log.error
    event("sync_finished", run_id=run_id, result=result, exit_code=code, dry_run=dry_run,
          seconds=round(time.perf_counter() - started, 3), error=error,
          api_calls=sum(client.stats.calls.values()), longest_write_lock_ms=round(holds.longest * 1000, 1),
          **report.counts())
    if error and result != "interrupted":
        print(f"Error: {error}", file=sys.stderr)
        hint = {EXIT_REFUSED: "spmirror sync --allow-mass-delete, if the deletes are real",
                EXIT_UNAVAILABLE: "spmirror sync again later; nothing was deleted"}.get(code)
        if result == "refused" and code == EXIT_USAGE:
            hint = None  # the account message says what to do
        elif code == EXIT_USAGE and error.startswith("the API refused the key"):
            hint = ("check [api] key (SPMIRROR_API_KEY, [api] key_file or LoadCredential=api_key): a new key for "
                    "this account needs spmirror rekey; a key of another account needs its own database file")
        elif code == EXIT_USAGE and error.startswith(str(settings.database)) and settings.database.is_postgres:
            hint = ("check --db / SPMIRROR_DB / [database] url: a PostgreSQL database and schema this role owns, "
                    "one per account")
        elif code == EXIT_USAGE and error.startswith(str(settings.database)):
            hint = "check --db / SPMIRROR_DB / [database] path: it must be a mirror file this user can write"
        elif code == EXIT_USAGE:
            hint = (f"check [api] url (now {redact_url(settings[('api', 'url')])}); the Solar Proof API is "
                    "https://solarproof.com.au/apidata.php")
        if result == "busy":
            hint = "save or close what holds the database open for writing, then spmirror sync again"
        if hint:
            print(f"Try: {hint}", file=sys.stderr)
    return code, report
