"""Measure how long a local edit takes to reach the API under `spmirror run`; prints JSON.

    .venv/bin/python bench/edit_latency.py [--edits 50] [--watch-interval SECONDS] [--samples 3]
                                           [--db postgresql://user@host:5432/database]

Starts a simulator and the daemon as separate processes, waits for the first sync, then makes
--edits single-row UPDATEs from this process, each after a random pause (seeded) so edits land
at random points of the daemon's watch cycle, as people's do, and times each from its COMMIT to
the moment the simulator holds the new value (polled every 10 ms).

That is one sample run; --samples runs (at least 3) each start a new daemon on a new mirror
file. `latency_s` summarises every edit of every run (bench/stats.py: median, min, max, p25,
p75, iqr, the values in order) and `p95_s` is its 95th percentile, interpolated between the
nearest ranks (over 50 edits, between the 47th and 48th fastest); `runs` gives each run's median
and p95, and `run_medians` how much the runs differ from each other.

--db postgresql://...: the mirror is a PostgreSQL schema instead, a new one per run in that
database (reached by `?options=-csearch_path%3D...` in SPMIRROR_DB, dropped after). Each edit is
then an UPDATE from a new psycopg session of this process, in autocommit, timed from the moment
the server acknowledged its COMMIT; the daemon is woken by the capture trigger's NOTIFY rather
than by its watch (whose interval is still reported: it is the listener's longest wait).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))

import postgres_schema  # noqa: E402
from simulator_process import running_simulator  # noqa: E402
from stats import percentile, sample_count, summary  # noqa: E402


def customer(url: str, key: str, remote_id: int) -> dict:
    base = url.rsplit("/", 1)[0]
    with urllib.request.urlopen(f"{base}/_admin/customers/{remote_id}?api_key={key}", timeout=10) as response:
        return json.loads(response.read())


def wait_until(predicate, timeout: float, poll: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return False


def default_watch_interval() -> float:
    from mirror.config import load_settings

    return load_settings(env={})[("daemon", "watch_interval")]


class SqliteMirror:
    """A mirror file in a temporary directory; edits and reads by sqlite3, as a person's client."""

    Error = sqlite3.Error

    def __init__(self, path: Path):
        self.path = path
        self.address = str(path)  # SPMIRROR_DB

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        connection = sqlite3.connect(self.path)
        try:
            return connection.execute(sql, params).fetchall()
        finally:
            connection.close()

    def edit(self, sql: str, params: tuple) -> None:
        """Run one UPDATE in its own session and transaction; return once it is committed."""
        connection = sqlite3.connect(self.path)
        try:
            connection.execute(sql, params)
            connection.commit()
        finally:
            connection.close()


class PostgresMirror:
    """A mirror in a schema of its own; edits and reads by psycopg, as a person's client."""

    def __init__(self, url: str):
        import psycopg

        self.Error = psycopg.Error
        self.address = url  # SPMIRROR_DB

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with postgres_schema.connect(self.address) as connection:
            return connection.execute(sql.replace("?", "%s"), params).fetchall()

    def edit(self, sql: str, params: tuple) -> None:
        """Run one UPDATE in its own session, autocommit: it returns once the COMMIT is acknowledged."""
        with postgres_schema.connect(self.address) as connection:
            connection.execute(sql.replace("?", "%s"), params)


@contextmanager
def new_mirror(postgres_url: str | None) -> Iterator[SqliteMirror | PostgresMirror]:
    """An empty place for one run's mirror, removed after."""
    if postgres_url:
        with postgres_schema.fresh_schema(postgres_url, prefix="spbench_edit") as url:
            yield PostgresMirror(url)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            yield SqliteMirror(Path(tmp) / "mirror.db")


def edit_run(url: str, key: str, edits: int, watch_interval: float | None, run_number: int,
             postgres_url: str | None = None) -> list[float]:
    """One sample run: a new mirror and daemon, `edits` timed edits; returns their latencies.
    `watch_interval` None leaves the daemon at its default; `postgres_url` None keeps SQLite."""
    with new_mirror(postgres_url) as mirror:
        env = dict(os.environ, SPMIRROR_API_URL=url, SPMIRROR_API_KEY=key, SPMIRROR_DB=mirror.address,
                   SPMIRROR_LOGGING_LEVEL="warning")
        if watch_interval is not None:
            env["SPMIRROR_DAEMON_WATCH_INTERVAL"] = f"{watch_interval}s"
        cycle = watch_interval if watch_interval is not None else default_watch_interval()
        daemon = subprocess.Popen([sys.executable, "-m", "mirror", "run"], env=env, stdout=subprocess.DEVNULL)
        try:
            def synced() -> bool:
                if daemon.poll() is not None:
                    raise SystemExit(f"spmirror run exited {daemon.returncode} before its first sync finished")
                try:
                    return mirror.query("SELECT count(*) FROM sync_runs WHERE result='ok'")[0][0] > 0
                except mirror.Error:
                    return False

            assert wait_until(synced, 120), "the first sync did not finish"
            ids = [r[0] for r in mirror.query("SELECT pkcustomerid FROM customers ORDER BY pkcustomerid LIMIT ?",
                                              (edits,))]
            latencies = []
            pauses = random.Random(7 + run_number)
            for n, remote_id in enumerate(ids):
                time.sleep(pauses.uniform(0, cycle))
                # The run number in the value: every run changes the customer from what the last one left.
                value = f"04{run_number % 100:02d} {n % 1000:03d} {int(time.time() * 1000) % 1000:03d}"
                mirror.edit("UPDATE customers SET customerphone2=? WHERE pkcustomerid=?", (value, remote_id))
                committed = time.monotonic()
                assert wait_until(lambda: customer(url, key, remote_id).get("phone2") == value, 30), remote_id
                latencies.append(time.monotonic() - committed)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
    return latencies


def postgres_url(text: str) -> str:
    """argparse type of --db: a PostgreSQL URL (without it the mirror is a SQLite file)."""
    if not postgres_schema.is_postgres_url(text):
        raise argparse.ArgumentTypeError(
            f"expected a postgresql:// URL (without --db the mirror is SQLite); got {text!r}")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edits", type=int, default=50, help="edits per run")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--watch-interval", type=float, default=None,
                        help="[daemon] watch_interval in seconds (default: the daemon's own default)")
    parser.add_argument("--samples", type=sample_count, default=3, help="runs, each a new daemon (at least 3)")
    parser.add_argument("--db", type=postgres_url, metavar="postgresql://...",
                        help="the mirror in this PostgreSQL database (a new schema each run) instead of SQLite")
    args = parser.parse_args()
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
               "load_average_at_start": [round(load, 2) for load in os.getloadavg()]}
    with running_simulator(args.customers) as (url, key):
        runs = [edit_run(url, key, args.edits, args.watch_interval, n, args.db) for n in range(args.samples)]
    every = [latency for run in runs for latency in run]
    backend: dict = {"backend": "sqlite"}
    if args.db:
        from mirror.store.location import redact_url

        backend = {"backend": "postgres", "postgres": {"url": redact_url(args.db), **postgres_schema.server(args.db)}}
    print(json.dumps({
        "machine": machine,
        **backend,
        "edits": len(every), "samples": args.samples, "watch_interval_s": args.watch_interval if args.watch_interval is not None else default_watch_interval(),
        "median_s": round(percentile(every, 50), 3),
        "p95_s": round(percentile(every, 95), 3),
        "max_s": round(max(every), 3),
        "latency_s": summary(every),
        "runs": [{"edits": len(run), "median_s": round(percentile(run, 50), 3), "p95_s": round(percentile(run, 95), 3)}
                 for run in runs],
        "run_medians": summary([percentile(run, 50) for run in runs]),
    }, indent=2))


if __name__ == "__main__":
    main()
