"""`spmirror resolve` and `spmirror retry`: settle rows the push could not send."""

from __future__ import annotations

import argparse
import sys
import uuid

from mirror.clock import utc_now_text
from mirror.config import Settings
from mirror.exit_codes import EXIT_OK, EXIT_USAGE
from mirror.store import Store
from mirror.store import creates, local_changes


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    resolve = commands.add_parser(
        "resolve", parents=[common], help="settle a row in conflict or error",
        description="Settle a customer whose sync_state is 'conflict' or 'error'. --take remote puts the "
        "conflicting fields (for an error row: every edited field) back to Solar Proof's value; --take "
        "local queues the row's own values to be pushed by the next sync. For a new row whose create got no "
        "usable answer (pkcustomerid NULL, ID is then customers.id): --adopt PKCUSTOMERID ties it to that "
        "customer, --create-again sends the create again. Works on the database only.",
    )
    resolve.add_argument("id", type=int, metavar="ID",
                         help="the customer's pkcustomerid (--take), or the new row's customers.id (--adopt, "
                              "--create-again)")
    how = resolve.add_mutually_exclusive_group(required=True)
    how.add_argument("--take", choices=("local", "remote"), help="which side wins")
    how.add_argument("--adopt", type=int, metavar="PKCUSTOMERID",
                     help="this new row is that Solar Proof customer (its create did arrive)")
    how.add_argument("--create-again", action="store_true",
                     help="none of the candidates is this row's customer: create it again")
    resolve.set_defaults(handler=run_resolve, needs_api_key=False)

    retry = commands.add_parser(
        "retry", parents=[common], help="requeue rows in error for the next push",
        description="Set rows in 'error' back to 'pending', so the next sync validates and sends them "
        "again (a row fixed with SQL is requeued by itself). Give ids, or --all.",
    )
    retry.add_argument("pkcustomerid", type=int, nargs="*", help="customers to requeue")
    retry.add_argument("--all", action="store_true", help="every row in error, unpushed new rows included")
    retry.set_defaults(handler=run_retry, needs_api_key=False)


def run_resolve(args: argparse.Namespace, settings: Settings) -> int:
    run_id, now = uuid.uuid4().hex[:12], utc_now_text()
    with Store.open(settings.database) as store:
        try:
            if args.adopt is not None:
                print(creates.adopt_by_hand(store, args.id, args.adopt, run_id, now))
            elif args.create_again:
                print(creates.create_again(store, args.id))
            else:
                print(local_changes.resolve(store, args.id, args.take, run_id, now))
        except LookupError as exc:
            print(f"Error: {exc}\nTry: spmirror status, which lists the rows in conflict and error", file=sys.stderr)
            return EXIT_USAGE
    return EXIT_OK


def run_retry(args: argparse.Namespace, settings: Settings) -> int:
    if not args.all and not args.pkcustomerid:
        print("Error: name the customers to requeue, or --all\nTry: spmirror retry --all")
        return EXIT_USAGE
    with Store.open(settings.database) as store:
        count = local_changes.retry(store, None if args.all else args.pkcustomerid)
    print(f"{count} row(s) requeued; the next sync pushes them")
    return EXIT_OK
