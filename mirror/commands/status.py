"""`spmirror status`: what the mirror holds and how the last sync went, from the database alone."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from mirror.config import Settings
from mirror.exit_codes import EXIT_OK, EXIT_USAGE
from mirror.redaction import redact_url
from mirror.store import Store
from mirror.store.runs import status_summary


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "status", parents=[common], help="show counts, rows by sync_state and the last sync",
        description="Read the mirror database and show its counts, rows by sync_state, and the last "
        "sync's time and result. Safe while the daemon runs; makes no API call.",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(handler=run, needs_api_key=False)


def run(args: argparse.Namespace, settings: Settings) -> int:
    path = settings.database_path
    if not path.exists():
        print(f"Error: no mirror at {path}\nTry: spmirror sync (or set SPMIRROR_DB / [database] path)")
        return EXIT_USAGE
    with Store.open(path) as store:
        summary = status_summary(store)
    summary["daemon"] = read_daemon_state(path)
    if args.json:
        print(json.dumps(summary, indent=2))
        return EXIT_OK
    print(render(summary))
    return EXIT_OK


def read_daemon_state(database: Path) -> dict | None:
    """The running daemon's own account of itself, if one is running."""
    from mirror.daemon import daemon_state_path

    try:
        state = json.loads(daemon_state_path(database).read_text())
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state


def render(summary: dict) -> str:
    lines = [
        f"database        {summary['database']} (schema {summary['schema_version']})",
        "account         " + (f"{redact_url(account['api_url'])} (key {account['key_fingerprint']}, pinned "
                               f"{account['pinned_at']})" if (account := summary.get("account")) else
                               "not pinned yet (the first sync pins it)"),
        f"customers       {summary['customers']}",
        "by sync_state   " + (", ".join(f"{k} {v}" for k, v in summary["sync_state"].items()) or "-"),
        f"notes/projects  {summary['notes']} / {summary['projects']}",
        f"deleted         {summary['deleted_customers']} (candidates awaiting a second walk: "
        f"{summary['delete_candidates']})",
        f"history rows    {summary['changes']}",
        f"rejected        {summary['rejected_records']}",
    ]
    daemon = summary.get("daemon")
    lines.append(f"daemon          running, pid {daemon['pid']}: {daemon['status']}" if daemon else
                 "daemon          not running")
    last, ok = summary["last_run"], summary["last_success"]
    if last:
        lines.append(f"last sync       {last['started_at']} {last['result']}"
                     + (f": {last['error']}" if last.get("error") else ""))
        lines.append(f"                created {last['created']}, updated {last['updated']}, "
                     f"deleted {last['deleted']}, unchanged {last['unchanged']}, pages {last['pages']}")
    else:
        lines.append("last sync       never")
    if ok and ok is not last and ok["run_id"] != (last or {}).get("run_id"):
        lines.append(f"last success    {ok['finished_at']}")
    rows = summary["rows_needing_attention"]
    if rows:
        lines.append("rows not synced (first 50):")
        for row in rows:
            who = row["pkcustomerid"] if row["pkcustomerid"] is not None else f"new row {row['local_id']}"
            detail = row["sync_error"] or ("waiting to be pushed" if row["sync_state"] == "pending" else "")
            lines.append(f"  {row['sync_state']:<8} {who}  {row['customeremail'] or ''}  {detail}")
    return "\n".join(lines)
