"""Benchmark the webhook path: seconds from a status change in Solar Proof to the mirror's row
showing it, over --changes changes made one at a time; prints JSON.

    .venv/bin/python bench/webhook_latency.py [--changes 50] [--customers 200]

The simulator runs in this process (it delivers the webhooks); `spmirror run` runs as a
subprocess with its receiver on 127.0.0.1 and a 10-minute sync interval, so after its first sync
only webhooks change the mirror. Each change is timed from the `set_status` call to the first
poll (every 10 ms, a fresh read transaction) that sees the new status, and the next change waits
for that. The receiver waits WebhookReceiver.DEBOUNCE of quiet before it fetches, so that is the
floor of every sample.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import secrets
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mirror.simulator.server import SimulatorServer
from mirror.webhooks import WebhookReceiver

POLL = 0.01
TIMEOUT = 10.0  # seconds one change may take before the benchmark gives up


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, daemon: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if daemon.poll() is not None:
            sys.exit(f"the daemon exited with {daemon.returncode} while waiting for {what}:\n"
                     f"{log.read_text(errors='replace')[-3000:]}")
        if time.monotonic() >= deadline:
            sys.exit(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL)


def percentile(sorted_values: list[float], share: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    return sorted_values[max(0, math.ceil(share * len(sorted_values)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--customers", type=int, default=200)
    args = parser.parse_args()

    with SimulatorServer(customers=args.customers, seed=3, api_key="bench-key") as sim, \
            tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "mirror.db"
        token = secrets.token_hex(16)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPMIRROR_") and k != "NOTIFY_SOCKET"}
        env.update(XDG_CONFIG_HOME=str(Path(tmp) / "xdg"), PYTHONUNBUFFERED="1", SPMIRROR_API_URL=sim.url,
                   SPMIRROR_API_KEY=sim.api_key, SPMIRROR_DB=str(db), SPMIRROR_SYNC_INTERVAL="10m",
                   SPMIRROR_LOGGING_FORMAT="json", SPMIRROR_LOGGING_LEVEL="warning",
                   SPMIRROR_WEBHOOKS_TOKEN=token, SPMIRROR_WEBHOOKS_LISTEN=f"127.0.0.1:{port}")
        log = Path(tmp) / "daemon.log"
        with open(log, "wb") as out:
            daemon = subprocess.Popen([sys.executable, "-m", "mirror", "run"], env=env, cwd=tmp, stdout=out,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            def first_sync_done() -> bool:
                if not db.exists():
                    return False
                con = sqlite3.connect(db, timeout=30)
                try:
                    return bool(con.execute("SELECT count(*) FROM sync_runs WHERE result = 'ok'").fetchone()[0])
                except sqlite3.Error:
                    return False  # the schema is not there yet
                finally:
                    con.close()
            wait_for(first_sync_done, 60, "the first sync", daemon, log)
            subscribed = subprocess.run(
                [sys.executable, "-m", "mirror", "webhooks", "subscribe", "--url",
                 f"http://127.0.0.1:{port}/webhooks/{token}", "--event", "customer_status_change"],
                env=env, cwd=tmp, capture_output=True, text=True, timeout=60)
            if subscribed.returncode != 0:
                sys.exit(f"subscribe failed: {subscribed.stderr}")

            reader = sqlite3.connect(db, timeout=30, isolation_level=None)  # each SELECT sees the latest commit
            ids = sim.account.ids()
            samples: list[float] = []
            for n in range(args.changes):
                remote_id = ids[n % len(ids)]
                status = 2 if sim.account.get(remote_id)["status"] != 2 else 3

                def shows() -> bool:
                    row = reader.execute("SELECT fkcustomerstatusid FROM customers WHERE pkcustomerid = ?",
                                         (remote_id,)).fetchone()
                    return row is not None and row[0] == status
                started = time.perf_counter()
                sim.account.set_status(remote_id, status)
                wait_for(shows, TIMEOUT, f"change {n + 1} in the mirror", daemon, log)
                samples.append(time.perf_counter() - started)
            reader.close()
            deliveries = sim.flush_webhooks()
            calls = sim.account.call_counts()
        finally:
            daemon.terminate()
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()

    ordered = sorted(samples)
    print(json.dumps({
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "changes": args.changes, "customers": args.customers, "poll_ms": POLL * 1000,
        "debounce_s": WebhookReceiver.DEBOUNCE,
        "event_to_mirror_s": {
            "median": round(statistics.median(ordered), 4), "p95": round(percentile(ordered, 0.95), 4),
            "max": round(ordered[-1], 4), "min": round(ordered[0], 4),
        },
        "deliveries_ok": sum(1 for d in deliveries if d["status"] == 200),
        "getcustomer_calls": calls.get("getcustomer", 0),
        "getallcustomers_calls": calls.get("getallcustomers", 0),
    }, indent=2))


if __name__ == "__main__":
    main()
