"""`spmirror check`: a handful of read calls that say whether this account's API looks as the
mirror expects, before anything is written anywhere (mirror/probe)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mirror.arguments import path_text
from mirror.config import DEFAULT, Settings
from mirror.exit_codes import EXIT_OK, EXIT_USAGE
from mirror.redaction import redact_url


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "check", parents=[common], help="read a few answers of the API and say whether a sync would work",
        description="Make a handful of read calls (never a write): the listing's first pages and its last "
        "page, a lookup by email and by id, the customer of one project, and a deliberately wrong call. Print "
        "one line per finding (ok, note, problem) and record the findings in the mirror's database when one is "
        "configured; the sync walks with the page size found. Exit codes: 0 nothing would make a sync wrong "
        "(notes are printed), 2 a problem would make a sync wrong or unsafe (each says what to do), 75 the API "
        "could not be reached.",
    )
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--save-samples", metavar="DIR", type=path_text,
                        help="also write every answer into DIR, names, emails, phones, addresses and ABNs masked "
                        "(the key is never in them), to attach to a bug report")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: `spmirror --help` stays light (see mirror/cli.py).
    from mirror.api import SolarProofClient
    from mirror.probe.calls import fetch_answers
    from mirror.probe.detect import detect
    from mirror.probe.findings import problems
    from mirror.probe.report import render_json, render_text
    from mirror.probe.samples import save_samples

    # stdout holds the report alone (a --json reader parses it whole): log lines go to stderr.
    from mirror.arguments import logs_json
    from mirror.logs import configure_logging

    configure_logging(level=settings[("logging", "level")], json=logs_json(settings), secrets=settings.secrets(),
                      stream=sys.stderr, verbose=getattr(args, "verbose", False) or None)
    samples = Path(args.save_samples) if args.save_samples else None
    if samples is not None and samples.exists() and not samples.is_dir():
        return _fail(f"--save-samples {samples} is a file, not a directory",
                     "give a directory (new or existing) for the samples")
    url = redact_url(settings.api_url)
    max_pages = settings[("api", "max_pages")]
    # ApiUnavailableError (exit 75) and a URL that cannot be the API (exit 2) go to cli.failed.
    with SolarProofClient.from_settings(settings) as client:
        answers = fetch_answers(client, max_pages=max_pages)
    findings = detect(answers, max_pages=max_pages)
    code = EXIT_USAGE if problems(findings) else EXIT_OK
    if samples is not None:
        try:
            save_samples(answers, samples, url=url)
        except OSError as exc:
            return _fail(f"cannot write the samples into {samples}: {exc.strerror or exc}",
                         "give --save-samples a directory this user can write")
    recorded_in, recorded = record(settings, findings)
    if samples is not None:
        recorded += f"\nSamples of the {len(answers)} answers are in {samples} (personal data masked, no key)."
    if args.json:
        print(render_json(findings, url=url, calls=len(answers), exit_code=code, recorded_in=recorded_in))
    else:
        print(render_text(findings, url=url, calls=len(answers), recorded=recorded))
    return code


def record(settings: Settings, findings) -> tuple[str | None, str]:
    """Keep the findings in the mirror's database when one is configured (or already exists at
    the default path) and belongs to this account: (the path or None, a line that says which)."""
    from mirror.clock import utc_now_text
    from mirror.store import Store, StoreError
    from mirror.store.api_facts import record_findings
    from mirror.sync.account import AccountMismatch, check_account

    path = settings.database
    if settings.origins.get(("database", "path"), DEFAULT) == DEFAULT and not path.exists():
        return None, ("Not recorded: no mirror database is configured (--db, SPMIRROR_DB or [database] path); a "
                      "mirror's first sync makes the same check and records it.")
    try:
        with Store.open(path, busy_timeout=settings[("database", "busy_timeout")]) as store:
            try:
                check_account(store, settings.api_url, settings.api_key)
            except AccountMismatch:
                return None, (f"Not recorded: {path} mirrors another account (another URL or key); give this "
                              "account its own database file (SPMIRROR_DB).")
            record_findings(store, findings, source="check", now=utc_now_text())
    except (StoreError, OSError) as exc:
        return None, f"Not recorded: {exc}"  # the error names the database
    return str(path), f"Recorded in {path} (table api_findings); the sync walks with what it found."


def _fail(message: str, hint: str) -> int:
    print(f"Error: {message}\nTry: {hint}", file=sys.stderr)
    return EXIT_USAGE
