"""`spmirror status`: what the mirror holds and how the last sync went, from the database alone."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mirror.arguments import non_negative_int
from mirror.config import Settings
from mirror.daemon_state import read_daemon_state
from mirror.exit_codes import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE
from mirror.redaction import redact_url
from mirror.store import Store, StoreBusy, StoreError, StoreUnavailable, StoreUnreachable, run_lock
from mirror.store.runs import OlderSchema, open_for_reading, status_summary

DEFAULT_LIMIT = 10


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "status", parents=[common], help="show counts, rows by sync_state and the last sync",
        description="Read the mirror database and show its counts, rows by sync_state, the last "
        "sync's time, result and counts, and the rows not synced (conflicts and errors first) with "
        "their messages. Safe while the daemon runs; makes no API call.",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--all", action="store_true", help="list every row not synced")
    shown.add_argument("--limit", type=non_negative_int, default=DEFAULT_LIMIT, metavar="N",
                       help=f"list at most N rows not synced (default {DEFAULT_LIMIT})")
    parser.set_defaults(handler=run, needs_api_key=False)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Print the summary (text or JSON) on stdout; every error goes to stderr."""
    path = settings.database
    if not path.exists():
        return _fail(f"no mirror at {path}", "spmirror sync (or set SPMIRROR_DB / [database] path)", EXIT_USAGE)
    try:
        summary = read_summary(path, None if args.all else args.limit)
    except StoreBusy as exc:  # only an older file's upgrade writes, and waits for the write lock
        return _fail(str(exc), "spmirror status again once the other program is done", EXIT_UNAVAILABLE)
    except StoreUnreachable as exc:
        return _fail(str(exc), "check that the PostgreSQL server is up, then spmirror status again", EXIT_UNAVAILABLE)
    except StoreUnavailable as exc:
        return _fail(str(exc), "spmirror status again in a moment", EXIT_UNAVAILABLE)
    except StoreError as exc:
        if path.is_postgres:
            return _fail(str(exc), "check SPMIRROR_DB / [database] url: the PostgreSQL database and schema "
                         "(options=-csearch_path%3DNAME) spmirror sync writes", EXIT_USAGE)
        return _fail(str(exc), "check SPMIRROR_DB / [database] path: it names the mirror file spmirror sync "
                     "writes", EXIT_USAGE)
    summary["daemon"] = read_daemon_state(path) or _daemon_elsewhere(path)
    if args.json:
        print(json.dumps(summary, indent=2))
        return EXIT_OK
    print(render(summary))
    return EXIT_OK


def _daemon_elsewhere(location) -> dict | None:
    """A PostgreSQL mirror's daemon may run on another host (its state file is there): the
    session holding the run lock says who it is (application_name: spmirror run pid N on HOST)."""
    if not location.is_postgres:
        return None
    holder = run_lock(location).holder()
    return {"holder": holder} if holder else None


def read_summary(path: Path, limit: int | None) -> dict:
    """The status summary, read-only. A file of an older schema is upgraded first, as any
    command of this version would (the daemon's start does it too)."""
    try:
        with open_for_reading(path) as db:
            return status_summary(db, path, limit)
    except OlderSchema:
        Store.open(path).close()  # the only write status ever makes: the schema upgrade
    with open_for_reading(path) as db:
        return status_summary(db, path, limit)


def _fail(message: str, hint: str, code: int) -> int:
    print(f"Error: {message}\nTry: {hint}", file=sys.stderr)
    return code


def render(summary: dict) -> str:
    lines = [
        f"database        {summary['database']} (schema {summary['schema_version']})",
        "account         " + (f"{redact_url(account['api_url'])} (key {account['key_fingerprint']}, pinned "
                               f"{account['pinned_at']})" if (account := summary.get("account")) else
                               "not pinned yet (the first sync pins it)"),
        f"customers       {summary['customers']:,}",
        "by sync_state   " + (", ".join(f"{k} {v:,}" for k, v in summary["sync_state"].items()) or "-"),
        f"notes/projects  {summary['notes']:,} / {summary['projects']:,}",
        f"deleted         {summary['deleted_customers']:,} (candidates awaiting a second walk: "
        f"{summary['delete_candidates']:,})",
        f"history rows    {summary['changes']:,}",
        f"rejected        {summary['rejected_records']:,}",
    ]
    daemon = summary.get("daemon")
    if daemon and daemon.get("holder"):
        lines.append(f"daemon          running on another host or user: {daemon['holder']}")
    else:
        lines.append(f"daemon          running, pid {daemon['pid']}: {daemon['status']}" if daemon else
                     "daemon          not running")
    last, ok = summary["last_run"], summary["last_success"]
    if last:
        lines.append(f"last sync       {last['started_at']} {last['result']}"
                     + (f": {last['error']}" if last.get("error") else ""))
        lines.append("                pulled: " + _counts(last, "created", "updated", "deleted", "unchanged", "pages"))
        lines.append("                " + _counts(last, "pushed", "push_errors", "conflicts"))
    else:
        lines.append("last sync       never")
    if ok and ok["run_id"] != (last or {}).get("run_id"):
        lines.append(f"last success    {ok['finished_at']}")
    lines += _render_rows(summary["rows_needing_attention"], summary["rows_needing_attention_count"])
    return "\n".join(lines)


def _counts(run: dict, *names: str) -> str:
    # A run still going (or an interrupted one) may hold NULLs.
    return ", ".join(f"{name.replace('_', ' ')} {run.get(name) or 0:,}" for name in names)


def _render_rows(rows: list[dict], total: int) -> list[str]:
    """Conflicts and errors first (they need a person), then edits waiting to be pushed."""
    if not total:
        return []
    shown = f"first {len(rows):,} of {total:,}" if len(rows) < total else f"{total:,}"
    lines = [f"rows not synced ({shown}):"]
    for row in rows:
        who = row["pkcustomerid"] if row["pkcustomerid"] is not None else f"new row {row['local_id']}"
        detail = row["sync_error"] or ("waiting to be pushed" if row["sync_state"] == "pending" else "")
        lines.append(f"  {row['sync_state']:<8} {who}  {row['customeremail'] or ''}  {detail}")
    if len(rows) < total:
        lines.append(f"  and {total - len(rows):,} more (spmirror status --all)")
    return lines
