"""Benchmark the webhook path of `spmirror run`; prints JSON.

    .venv/bin/python bench/webhook_latency.py [--samples 3] [--customers 600] [--changes 20]
        [--burst-events 500] [--burst-senders 32] [--burst-customers 100]
        [--batch-customers 400] [--latency-ms 50] [--edits 3]

One simulator subprocess (`spmirror simulate`, its own process, driven through `/_admin/`) serves
every run; each of the --samples runs (at least 3) starts a new daemon (`spmirror run`, receiver
on 127.0.0.1, a 10-minute sync interval, so after its first sync only webhooks and pushes change
anything) on a new mirror file, and measures three phases:

  event_to_mirror    --changes status changes made in Solar Proof one at a time (subscribed to
                     customer_status_change, so the simulator delivers them), each timed from the
                     change to the first poll (every 10 ms, a fresh read) that sees it in the
                     mirror. The receiver waits WebhookReceiver.DEBOUNCE of quiet first: the floor.
  burst              --burst-customers customers get a new phone number in Solar Proof (no event),
                     then --burst-events status-change events naming them (shuffled, payload
                     versions A and B) are POSTed by --burst-senders threads at once, each on a
                     fresh connection; each answer is timed from connecting to the whole answer.
                     `reads_per_changed_customer`: getcustomer calls until every change is in the
                     mirror and the receiver is idle, over the customers changed.
  edit_during_batch  with --latency-ms added to every API call, --batch-customers events (one per
                     customer) are POSTed; once the batch is being fetched, up to --edits single-row
                     UPDATEs are committed from this process (a random pause of up to 1 s before
                     each, seeded), each only while the batch is still running, and each timed
                     from its COMMIT until the simulator holds the value (pushed by the watch job).

Every timing is summarised over all runs with bench/stats.py (median, min, max, p25, p75, iqr,
values in order) and its p95 interpolated between the nearest ranks; `per_run` gives each run's
median (or p95 for the burst) so the spread between runs shows.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from simulator_process import running_simulator  # noqa: E402
from stats import percentile, sample_count, summary  # noqa: E402

from mirror.webhooks import WebhookReceiver  # noqa: E402

POLL = 0.01
TIMEOUT = 60.0  # seconds one step may take before the benchmark gives up


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def admin(url: str, key: str, method: str, route: str, payload: dict | None = None) -> dict:
    """Call one of the simulator's /_admin/ routes."""
    base = url.rsplit("/", 1)[0]
    request = urllib.request.Request(f"{base}/_admin/{route}?api_key={key}", method=method,
                                     data=None if payload is None else json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def reads(url: str, key: str) -> int:
    return admin(url, key, "GET", "calls").get("getcustomer", 0)


def post_all(port: int, path: str, bodies: list[bytes], senders: int) -> list[tuple[int, float]]:
    """POST each body from `senders` threads at once, each on a fresh connection: (status or 0 when
    refused or reset, seconds from connecting to the whole answer) per body."""
    def send(body: bytes) -> tuple[int, float]:
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            answer = connection.getresponse()
            answer.read()
            return answer.status, time.perf_counter() - started
        except OSError:
            return 0, time.perf_counter() - started
        finally:
            connection.close()
    with ThreadPoolExecutor(max_workers=senders) as pool:
        return list(pool.map(send, bodies))


def status_event(remote_id: int, email: str, status: int, version: str) -> bytes:
    if version == "A":
        return json.dumps({"pkcustomerid": remote_id, "fkuserid": 1, "customer_email": email,
                           "customer_name": "Bench Customer", "old_status": 1, "new_status": status}).encode()
    return json.dumps([{"customer_id": remote_id, "customer_email": email, "customer_name": "Bench Customer",
                        "old_status": 1, "new_status": status, "customer_status_id": status}]).encode()


def wait_for(predicate, what: str, daemon: "Daemon", timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if daemon.process.poll() is not None:
            sys.exit(f"the daemon exited with {daemon.process.returncode} while waiting for {what}:\n"
                     f"{daemon.log.read_text(errors='replace')[-3000:]}")
        if time.monotonic() >= deadline:
            sys.exit(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL)


class Daemon:
    """`spmirror run` on a new mirror file in `tmp`, its JSON log in a file."""

    def __init__(self, tmp: Path, url: str, key: str):
        self.db = tmp / "mirror.db"
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.hook_base = f"http://127.0.0.1:{self.port}/webhooks/{self.token}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SPMIRROR_") and k != "NOTIFY_SOCKET"}
        self.env.update(XDG_CONFIG_HOME=str(tmp / "xdg"), PYTHONUNBUFFERED="1", SPMIRROR_API_URL=url,
                        SPMIRROR_API_KEY=key, SPMIRROR_DB=str(self.db), SPMIRROR_SYNC_INTERVAL="10m",
                        SPMIRROR_LOGGING_FORMAT="json", SPMIRROR_LOGGING_LEVEL="info",
                        SPMIRROR_WEBHOOKS_TOKEN=self.token, SPMIRROR_WEBHOOKS_LISTEN=f"127.0.0.1:{self.port}")
        self.tmp = tmp
        self.log = tmp / "daemon.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "mirror", "run"], env=self.env, cwd=tmp,
                                            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for(self._first_sync_done, "the first sync", self)
        self.reader = sqlite3.connect(self.db, timeout=30, isolation_level=None)  # each SELECT sees the latest

    def _first_sync_done(self) -> bool:
        if not self.db.exists():
            return False
        con = sqlite3.connect(self.db, timeout=30)
        try:
            return bool(con.execute("SELECT count(*) FROM sync_runs WHERE result = 'ok'").fetchone()[0])
        except sqlite3.Error:
            return False  # the schema is not there yet
        finally:
            con.close()

    def cli(self, *args: str) -> None:
        done = subprocess.run([sys.executable, "-m", "mirror", *args], env=self.env, cwd=self.tmp,
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            sys.exit(f"spmirror {args[0]} {args[1]} failed: {done.stderr}")

    def events(self, name: str) -> list[dict]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{") and f'"{name}"' in line:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # a line still being written
                if event.get("event") == name:
                    found.append(event)
        return found

    def value(self, column: str, remote_id: int):
        row = self.reader.execute(f"SELECT {column} FROM customers WHERE pkcustomerid = ?", (remote_id,)).fetchone()
        return None if row is None else row[0]

    def stop(self) -> None:
        self.reader.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def event_to_mirror(daemon: Daemon, url: str, key: str, ids: list[int], changes: int) -> list[float]:
    daemon.cli("webhooks", "subscribe", "--url", daemon.hook_base, "--event", "customer_status_change")
    samples = []
    for n in range(changes):
        remote_id = ids[n % len(ids)]
        status = 2 if admin(url, key, "GET", f"customers/{remote_id}")["status"] != 2 else 3
        started = time.perf_counter()
        admin(url, key, "POST", f"customers/{remote_id}/status", {"status": status})
        wait_for(lambda: daemon.value("fkcustomerstatusid", remote_id) == status, f"change {n + 1}", daemon)
        samples.append(time.perf_counter() - started)
    daemon.cli("webhooks", "unsubscribe", "--url", daemon.hook_base)
    return samples


def idle(daemon: Daemon, quiet: float = 1.5) -> None:
    """Wait until the receiver logged nothing for `quiet` seconds (longer than a burst's longest wait)."""
    while True:
        size = daemon.log.stat().st_size
        time.sleep(quiet)
        if daemon.log.stat().st_size == size:
            return


def burst(daemon: Daemon, url: str, key: str, ids: list[int], run: int, events: int, senders: int) -> dict:
    phones = {remote_id: f"04{run % 100:02d} {n:03d} {secrets.randbelow(1000):03d}" for n, remote_id in enumerate(ids)}
    records = {remote_id: admin(url, key, "PATCH", f"customers/{remote_id}", {"phone1": phone})
               for remote_id, phone in phones.items()}  # a change no event announces
    idle(daemon, 0.5)
    before = reads(url, key)
    bodies = [status_event(ids[n % len(ids)], records[ids[n % len(ids)]]["email"],
                           records[ids[n % len(ids)]]["status"], "AB"[n % 2]) for n in range(events)]
    random.Random(run).shuffle(bodies)
    answers = post_all(daemon.port, f"/webhooks/{daemon.token}/customer_status_change", bodies, senders)
    wait_for(lambda: all(daemon.value("customerphone1", i) == p for i, p in phones.items()),
             "every burst change in the mirror", daemon)
    idle(daemon)
    return {"seconds": [s for _status, s in answers], "refused": sum(1 for status, _s in answers if status != 200),
            "reads_per_changed_customer": (reads(url, key) - before) / len(ids)}


def edit_during_batch(daemon: Daemon, url: str, key: str, batch_ids: list[int], edit_ids: list[int], run: int,
                      edits: int, latency_ms: float) -> dict:
    records = {remote_id: admin(url, key, "GET", f"customers/{remote_id}") for remote_id in batch_ids}
    admin(url, key, "POST", "faults", {"latency_ms": latency_ms})
    try:
        batches_done = len(daemon.events("webhook_batch_done"))
        before = reads(url, key)
        bodies = [status_event(i, r["email"], r["status"], "A") for i, r in records.items()]
        posted = time.perf_counter()
        answers = post_all(daemon.port, f"/webhooks/{daemon.token}", bodies, 32)
        wait_for(lambda: reads(url, key) > before, "the batch's fetches to start", daemon)
        pauses = random.Random(100 + run)
        writer = sqlite3.connect(daemon.db, timeout=30, isolation_level=None)
        delays = []
        for n, remote_id in enumerate(edit_ids[:edits]):
            time.sleep(pauses.uniform(0, 1.0))
            if len(daemon.events("webhook_batch_done")) > batches_done:
                break  # the batch is over: later edits would not be made during it
            phone = f"04{run % 100:02d} {n:03d} {int(time.time() * 1000) % 1000:03d}"
            writer.execute("UPDATE customers SET customerphone2 = ? WHERE pkcustomerid = ?", (phone, remote_id))
            committed = time.perf_counter()
            wait_for(lambda: admin(url, key, "GET", f"customers/{remote_id}")["phone2"] == phone,
                     f"edit {n + 1} in Solar Proof", daemon)
            delays.append(time.perf_counter() - committed)
        writer.close()
        done = wait_for(lambda: daemon.events("webhook_batch_done")[batches_done:], "the batch to finish", daemon)
        batch_seconds = sum(e["seconds"] for e in done)
        return {"delays": delays, "batch_seconds": batch_seconds, "posted_to_done_s": time.perf_counter() - posted,
                "refused": sum(1 for status, _s in answers if status != 200)}
    finally:
        admin(url, key, "POST", "faults", {"latency_ms": 0})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=sample_count, default=3, help="runs, each on a new daemon (at least 3)")
    parser.add_argument("--customers", type=int, default=600)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--burst-events", type=int, default=500)
    parser.add_argument("--burst-senders", type=int, default=32)
    parser.add_argument("--burst-customers", type=int, default=100)
    parser.add_argument("--batch-customers", type=int, default=400)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--edits", type=int, default=3)
    args = parser.parse_args()
    needed = args.burst_customers + args.batch_customers + args.edits
    if args.customers < needed:
        parser.error(f"--customers must be at least {needed} (burst + batch customers + edits)")

    runs = []
    with running_simulator(args.customers, seed=3) as (url, key):
        ids = [c["id"] for c in admin(url, key, "GET", "state")["customers"]]
        burst_ids = ids[:args.burst_customers]
        batch_ids = ids[args.burst_customers:args.burst_customers + args.batch_customers]
        edit_ids = ids[-args.edits:]
        for run in range(args.samples):
            with tempfile.TemporaryDirectory() as tmp:
                daemon = Daemon(Path(tmp), url, key)
                try:
                    runs.append({
                        "event_to_mirror": event_to_mirror(daemon, url, key, ids, args.changes),
                        "burst": burst(daemon, url, key, burst_ids, run, args.burst_events, args.burst_senders),
                        "edit": edit_during_batch(daemon, url, key, batch_ids, edit_ids, run, args.edits,
                                                  args.latency_ms),
                    })
                finally:
                    daemon.stop()

    def pooled(values: list[float], digits: int = 4) -> dict:
        return {**summary(values, digits), "p95": round(percentile(values, 95), digits)}

    changes = [s for r in runs for s in r["event_to_mirror"]]
    answers = [s for r in runs for s in r["burst"]["seconds"]]
    delays = [d for r in runs for d in r["edit"]["delays"]]
    print(json.dumps({
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "samples": args.samples, "customers": args.customers, "poll_ms": POLL * 1000,
        "receiver": {"debounce_s": WebhookReceiver.DEBOUNCE, "longest_wait_s": WebhookReceiver.LONGEST_WAIT,
                     "apply_every": WebhookReceiver.APPLY_EVERY},
        "event_to_mirror_s": {"changes_per_run": args.changes, **pooled(changes),
                              "per_run_median": summary([percentile(r["event_to_mirror"], 50) for r in runs], 4)},
        "burst": {
            "events": args.burst_events, "senders": args.burst_senders, "customers_changed": args.burst_customers,
            "refused": sum(r["burst"]["refused"] for r in runs),
            "answer_s": {**pooled(answers), "values": f"{len(answers)} values, omitted"},
            "per_run_p95_s": summary([percentile(r["burst"]["seconds"], 95) for r in runs], 4),
            "reads_per_changed_customer": summary([r["burst"]["reads_per_changed_customer"] for r in runs], 3),
        },
        "edit_during_batch": {
            "batch_customers": args.batch_customers, "api_latency_ms": args.latency_ms,
            "edits_made_during_the_batch": len(delays),
            "refused": sum(r["edit"]["refused"] for r in runs),
            "delay_s": pooled(delays) if delays else None,
            "batch_fetch_and_write_s": summary([r["edit"]["batch_seconds"] for r in runs], 3),
        },
    }, indent=2))


if __name__ == "__main__":
    main()
