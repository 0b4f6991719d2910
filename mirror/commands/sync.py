"""`spmirror sync`: one pull (and, later, push) now, then exit with a code that says how it went."""

from __future__ import annotations

import argparse
import sys
import time
import uuid

import structlog

from mirror.api import SolarProofClient
from mirror.config import Settings
from mirror.errors import ApiUnavailableError, AuthError, MirrorError, PermanentApiError
from mirror.exit_codes import EXIT_FAILURE, EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_USAGE
from mirror.clock import utc_now_text
from mirror.progress import WalkProgress
from mirror.store import Store
from mirror.store.runs import finish_run, start_run
from mirror.sync.pull import MassDeleteRefused, PullOptions, PullReport, run_pull

log = structlog.get_logger()


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "sync", parents=[common], help="pull every customer into the mirror now, then exit",
        description="Walk every customer page, write what changed into the SQLite mirror, and remove "
        "customers Solar Proof deleted (confirmed over two complete walks). Exit codes: 0 done, "
        "1 unexpected failure, 2 usage or config error, 4 refused by the mass-delete guard, "
        "75 the API was unavailable.",
    )
    parser.add_argument("--allow-mass-delete", action="store_true",
                        help="apply deletes even beyond [sync] mass_delete_share of the mirror")
    parser.add_argument("--no-progress", action="store_true", help="no progress line on a terminal")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    progress = None if args.no_progress or not sys.stderr.isatty() else True
    code, _report = sync_once(settings, allow_mass_delete=args.allow_mass_delete, show_progress=bool(progress))
    return code


def pull_options(settings: Settings, allow_mass_delete: bool) -> PullOptions:
    return PullOptions(
        max_in_flight=settings[("api", "max_in_flight")],
        max_pages=settings[("api", "max_pages")],
        mass_delete_share=settings[("sync", "mass_delete_share")],
        allow_mass_delete=allow_mass_delete,
        enrich=settings[("sync", "enrich")],
    )


def sync_once(settings: Settings, *, allow_mass_delete: bool = False, show_progress: bool = False,
              client: SolarProofClient | None = None) -> tuple[int, PullReport | None]:
    """One sync run, recorded in sync_runs and logged as one `sync_finished` line."""
    run_id = uuid.uuid4().hex[:12]
    structlog.contextvars.bind_contextvars(run_id=run_id)
    started = time.perf_counter()
    report: PullReport | None = None
    result, error, code = "failed", None, EXIT_FAILURE
    own_client = client is None
    client = client or SolarProofClient.from_settings(settings)
    try:
        with Store.open(settings.database_path) as store:
            start_run(store, run_id, utc_now_text())
            expected = store.count_customers()
            try:
                report = run_pull(
                    store, client, pull_options(settings, allow_mass_delete), run_id=run_id, now=utc_now_text,
                    on_page=WalkProgress(expected) if show_progress else None,
                )
                result, code = "ok", EXIT_OK
            except MassDeleteRefused as exc:
                result, error, code = "refused", str(exc), EXIT_REFUSED
            except AuthError as exc:
                result, error, code = "failed", f"{exc} (check [api] key / SPMIRROR_API_KEY)", EXIT_USAGE
            except ApiUnavailableError as exc:
                result, error, code = "incomplete", str(exc), EXIT_UNAVAILABLE
            except PermanentApiError as exc:
                result, error = "failed", str(exc)
            finally:
                counts = report.counts() if report else {}
                finish_run(store, run_id, utc_now_text(), result, counts, error)
    except MirrorError as exc:
        error = str(exc)
    finally:
        if own_client:
            client.close()
        structlog.contextvars.unbind_contextvars("run_id")
    fields = report.counts() if report else {}
    event = log.info if code == EXIT_OK else log.error
    event("sync_finished", run_id=run_id, result=result, exit_code=code, seconds=round(time.perf_counter() - started, 3),
          error=error, api_calls=sum(client.stats.calls.values()), **fields)
    if error:
        print(f"Error: {error}", file=sys.stderr)
        hint = {EXIT_REFUSED: "spmirror sync --allow-mass-delete, if the deletes are real",
                EXIT_UNAVAILABLE: "spmirror sync again later; nothing was deleted",
                EXIT_USAGE: "set the API key: SPMIRROR_API_KEY, [api] key_file, or LoadCredential=api_key"}.get(code)
        if hint:
            print(f"Try: {hint}", file=sys.stderr)
    return code, report
