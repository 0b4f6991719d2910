"""Measure how long a local edit takes to reach the API under `spmirror run`; prints JSON.

    .venv/bin/python bench/edit_latency.py [--edits 50] [--watch-interval SECONDS] [--samples 3]

Starts a simulator and the daemon as separate processes, waits for the first sync, then makes
--edits single-row UPDATEs from this process, each after a random pause (seeded) so edits land
at random points of the daemon's watch cycle, as people's do, and times each from its COMMIT to
the moment the simulator holds the new value (polled every 10 ms).

That is one sample run; --samples runs (at least 3) each start a new daemon on a new mirror
file. `latency_s` summarises every edit of every run (bench/stats.py: median, min, max, p25,
p75, iqr, the values in order) and `p95_s` is its 95th percentile, interpolated between the
nearest ranks (over 50 edits, between the 47th and 48th fastest); `runs` gives each run's median
and p95, and `run_medians` how much the runs differ from each other.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

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


def edit_run(url: str, key: str, edits: int, watch_interval: float | None, run_number: int) -> list[float]:
    """One sample run: a new mirror file and daemon, `edits` timed edits; returns their latencies.
    `watch_interval` None leaves the daemon at its default."""
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "mirror.db")
        env = dict(os.environ, SPMIRROR_API_URL=url, SPMIRROR_API_KEY=key, SPMIRROR_DB=db,
                   SPMIRROR_LOGGING_LEVEL="warning")
        if watch_interval is not None:
            env["SPMIRROR_DAEMON_WATCH_INTERVAL"] = f"{watch_interval}s"
        cycle = watch_interval if watch_interval is not None else default_watch_interval()
        daemon = subprocess.Popen([sys.executable, "-m", "mirror", "run"], env=env, stdout=subprocess.DEVNULL)
        try:
            def synced() -> bool:
                try:
                    with sqlite3.connect(db) as c:
                        return c.execute("SELECT count(*) FROM sync_runs WHERE result='ok'").fetchone()[0] > 0
                except sqlite3.Error:
                    return False

            assert wait_until(synced, 120), "the first sync did not finish"
            with sqlite3.connect(db) as c:
                ids = [r[0] for r in c.execute("SELECT pkcustomerid FROM customers ORDER BY pkcustomerid LIMIT ?",
                                               (edits,))]
            latencies = []
            pauses = random.Random(7 + run_number)
            for n, remote_id in enumerate(ids):
                time.sleep(pauses.uniform(0, cycle))
                # The run number in the value: every run changes the customer from what the last one left.
                value = f"04{run_number % 100:02d} {n % 1000:03d} {int(time.time() * 1000) % 1000:03d}"
                connection = sqlite3.connect(db)
                connection.execute("UPDATE customers SET customerphone2=? WHERE pkcustomerid=?", (value, remote_id))
                connection.commit()
                committed = time.monotonic()
                connection.close()
                assert wait_until(lambda: customer(url, key, remote_id).get("phone2") == value, 30), remote_id
                latencies.append(time.monotonic() - committed)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edits", type=int, default=50, help="edits per run")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--watch-interval", type=float, default=None,
                        help="[daemon] watch_interval in seconds (default: the daemon's own default)")
    parser.add_argument("--samples", type=sample_count, default=3, help="runs, each a new daemon (at least 3)")
    args = parser.parse_args()
    with running_simulator(args.customers) as (url, key):
        runs = [edit_run(url, key, args.edits, args.watch_interval, n) for n in range(args.samples)]
    every = [latency for run in runs for latency in run]
    print(json.dumps({
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
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
