"""Measure how long a local edit takes to reach the API under `spmirror run`; prints JSON.

    .venv/bin/python bench/edit_latency.py [--edits 50] [--watch-interval 2s]

Starts a simulator and the daemon as separate processes, waits for the first sync, then makes
--edits single-row UPDATEs from this process, each after a random pause (seeded) so edits land
at random points of the daemon's watch cycle, as people's do, and times each from its COMMIT to
the moment the simulator holds the new value (polled every 10 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from simulator_process import running_simulator  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edits", type=int, default=50)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--watch-interval", default="2s", help="[daemon] watch_interval (default 2s, the default)")
    args = parser.parse_args()
    with running_simulator(args.customers) as (url, key), tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "mirror.db")
        env = dict(os.environ, SPMIRROR_API_URL=url, SPMIRROR_API_KEY=key, SPMIRROR_DB=db,
                   SPMIRROR_DAEMON_WATCH_INTERVAL=args.watch_interval, SPMIRROR_LOGGING_LEVEL="warning")
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
                                               (args.edits,))]
            latencies = []
            pauses = random.Random(7)
            cycle = float(args.watch_interval.rstrip("s"))
            for n, remote_id in enumerate(ids):
                time.sleep(pauses.uniform(0, cycle))
                value = f"0400 {n:03d} {int(time.time() * 1000) % 1000:03d}"
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
    latencies.sort()
    print(json.dumps({
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "edits": len(latencies), "watch_interval": args.watch_interval,
        "median_s": round(statistics.median(latencies), 3),
        "p95_s": round(latencies[max(0, int(len(latencies) * 0.95) - 1)], 3),
        "max_s": round(latencies[-1], 3),
    }, indent=2))


if __name__ == "__main__":
    main()
