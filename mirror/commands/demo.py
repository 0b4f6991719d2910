"""`spmirror demo`: the whole story on the bundled simulator, in one command.

Starts a simulator with a few thousand customers, syncs them into a fresh demo database,
changes some customers the way a Solar Proof user would (edits, a status change, creates,
deletes), syncs again (twice: a delete is confirmed by a second complete walk), and prints
what the mirror recorded, then the exact commands to look inside and to sync it yourself.
"""

from __future__ import annotations

import argparse
import io
import shlex
import socket
from pathlib import Path

from mirror.arguments import non_negative_int, port, program
from mirror.exit_codes import EXIT_OK

DEMO_KEY = "demo-key"
DEMO_DB = "demo/mirror.db"
# The port `spmirror simulate` listens on by default, when free: the demo's URL is then the one
# a plain `spmirror simulate` serves, and the demo database syncs against it as it is.
DEMO_PORT = 8765

QUERIES = """\
  sqlite3 {db} "SELECT pkcustomerid, customerfirstname, customersurname, status_label, type_label
                FROM customers_labeled LIMIT 5"
  sqlite3 {db} "SELECT state, count(*) FROM customer_projects GROUP BY state ORDER BY 2 DESC"
  sqlite3 {db} "SELECT c.customerfirstname, c.customersurname, n.noted_at, n.note
                FROM customers c JOIN customer_notes n USING (pkcustomerid) LIMIT 5"
  sqlite3 {db} "SELECT pkcustomerid, customeremail FROM customers
                WHERE id IN (SELECT rowid FROM customers_fts WHERE customers_fts MATCH 'smith')"
  sqlite3 {db} "SELECT changed_at, pkcustomerid, field, old_value, new_value, source
                FROM customer_changes ORDER BY id DESC LIMIT 10"
  sqlite3 {db} "SELECT pkcustomerid, customeremail, deleted_at FROM deleted_customers"
"""


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "demo", parents=[common],
        help="sync a freshly started simulator into a demo database and show what happened",
        description=__doc__.split("\n\n")[1] + f" The database is --db PATH (default {DEMO_DB}), made afresh.",
    )
    parser.add_argument("--customers", type=non_negative_int, default=3000, help="simulator customers (default 3000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the simulated account (default 1)")
    parser.add_argument("--port", type=port, default=None,
                        help=f"port of the demo's simulator (default {DEMO_PORT} when free, else any free one; "
                        "0 picks a free one)")
    parser.set_defaults(handler=run, needs_settings=False)


def run(args: argparse.Namespace, _settings) -> int:
    from mirror.commands.sync import sync_once
    from mirror.config import load_settings
    from mirror.logs import configure_logging
    from mirror.store import Store

    args.db = args.db or DEMO_DB  # set here, not as a default: an error message names it too
    db = Path(args.db)
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)
    # The demo narrates in plain text; log lines would only bury it.
    configure_logging(level="error", json=True, stream=io.StringIO())
    with _simulator(args) as sim:
        settings = load_settings(env={"SPMIRROR_API_URL": sim.url, "SPMIRROR_API_KEY": DEMO_KEY,
                                      "SPMIRROR_DB": str(db)})
        print(f"Simulator: {args.customers} customers at {sim.url}")
        code, report = sync_once(settings)
        print(f"1. First sync into {db}: {report.created} customers from {report.pages} pages "
              f"in {report.seconds:.2f}s (exit {code})")

        ids = sim.account.ids()
        edited, status_changed, deleted = ids[10:12], ids[20:22], ids[30:32]
        sim.account.edit_customer(edited[0], phone1="0499 000 111")
        sim.account.edit_customer(edited[1], company_name="Sunny Side Up Pty Ltd", type="Commercial")
        for remote_id in status_changed:
            sim.account.set_status(remote_id, 2)
        created = [sim.account.create_customer(first_name=f"Demo{n}", last_name="Customer",
                                               email=f"demo{n}@example.com.au", phone1=f"0400 000 00{n}",
                                               type="Residential") for n in range(3)]
        for remote_id in deleted:
            sim.account.delete_customer(remote_id)
        print(f"2. In Solar Proof (the simulator): edited {edited}, signed {status_changed}, "
              f"created {created}, deleted {deleted}")

        code, report = sync_once(settings)
        print(f"3. Second sync: {report.created} created, {report.updated} updated, {report.unchanged} unchanged, "
              f"{report.delete_candidates} missing (delete candidates) (exit {code})")
        code, report = sync_once(settings)
        print(f"4. Third sync: deletes confirmed by a second complete walk: {report.deleted} deleted, "
              f"{report.unchanged} unchanged (exit {code})")
        url = sim.url

    with Store.open(db) as store:
        changes = store.query("SELECT pkcustomerid, field, old_value, new_value FROM customer_changes ORDER BY id")
        total = store.count_customers()
    print(f"\nThe mirror now holds {total} customers. What it recorded:")
    for change in changes:
        print(f"  {change['pkcustomerid']}: {change['field']}: {change['old_value']!r} -> {change['new_value']!r}")
    print()
    print(next_steps(db, url, args.customers, args.seed))
    return EXIT_OK


def _simulator(args: argparse.Namespace):
    """The demo's simulator, on --port, else on DEMO_PORT when that is free, else on any free port."""
    from mirror.simulator.server import SimulatorServer

    chosen = args.port if args.port is not None else DEMO_PORT if _free(DEMO_PORT) else 0
    return SimulatorServer(customers=args.customers, seed=args.seed, api_key=DEMO_KEY, port=chosen)


def _free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the simulator binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def next_steps(db: Path, url: str, customers: int, seed: int) -> str:
    """The commands to paste next, exact for this run: how to look inside `db`, and how to sync it
    against a simulator of the same account at the same URL (so the mirror recognises it)."""
    me, path = program(), shlex.quote(str(db))
    port = url.rsplit(":", 1)[1].split("/", 1)[0]
    return "\n".join([
        "Look inside (any SQLite client can read it, even while a sync runs):",
        f"  {me} --db {path} status",
        QUERIES.format(db=path).rstrip("\n"),
        "",
        "Sync it yourself: the demo's simulator stopped with the demo. Start the same account again in another",
        "terminal (the same URL and key, so the mirror recognises it; the demo's changes are not in it):",
        f"  {me} simulate --customers {customers} --seed {seed} --port {port}",
        "then here:",
        f"  export SPMIRROR_API_URL={shlex.quote(url)} SPMIRROR_API_KEY={DEMO_KEY}",
        f"  {me} --db {path} sync",
        f"  {me} --db {path} status",
    ])
