"""Benchmark the pull against a simulator in its own process; prints JSON.

    .venv/bin/python bench/pull.py [--sizes 10000 100000] [--latency-pages 2000]

For each account size, each phase runs in a fresh process (so its peak RSS is its own):
  floor          the same client and walk, every page fetched and split, no database
  first_sync     an empty mirror: every customer normalised and written
  noop_resync    nothing changed remotely: should cost about the floor and write nothing
  resync_1pct    1% of the customers edited remotely first
Each reports wall seconds, customers/s, the ratio to the floor of the same run, customer rows
written, and peak RSS. Then a walk of --latency-pages pages with 50 ms added per request, at 1
and at up to 8 pages in flight.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from simulator_process import admin, running_simulator  # noqa: E402


def run_phase(phase: str, url: str, key: str, db: str) -> dict:
    """Run one phase in a child process and return what it printed."""
    output = subprocess.run(
        [sys.executable, __file__, "--phase", phase, "--url", url, "--key", key, "--db", db],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def phase_main(phase: str, url: str, key: str, db: str) -> None:
    from mirror.api import SolarProofClient
    from mirror.commands.sync import sync_once
    from mirror.config import load_settings
    from mirror.logs import configure_logging
    from mirror.walk import CustomerWalk

    configure_logging(level="error", json=True, stream=open(os.devnull, "w"))
    started = time.perf_counter()  # after the imports: the phases compare work, not start-up
    if phase == "floor":
        with SolarProofClient(url, key) as client:
            walk = CustomerWalk(client, max_in_flight=8)
            customers = sum(len(page.records) for page in walk)
        rows = 0
    else:
        settings = load_settings(env={"SPMIRROR_API_URL": url, "SPMIRROR_API_KEY": key, "SPMIRROR_DB": db})
        code, report = sync_once(settings, allow_mass_delete=True)
        assert code == 0, f"sync exited {code}"
        customers = report.listed
        rows = report.created + report.updated + report.deleted
    seconds = time.perf_counter() - started
    print(json.dumps({
        "seconds": round(seconds, 3),
        "customers": customers,
        "customers_per_s": round(customers / seconds),
        "customer_rows_written": rows,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


def edit_share(url: str, key: str, customers: int, share: float) -> int:
    """Edit `share` of the simulator's customers through its admin routes; returns how many."""
    import urllib.request

    base = url.rsplit("/", 1)[0]
    step = int(1 / share)
    edited = 0
    for offset in range(0, customers, step):
        customer_id = 70001 + offset
        request = urllib.request.Request(
            f"{base}/_admin/customers/{customer_id}?api_key={key}",
            data=json.dumps({"phone2": f"0400 {edited:03d} {offset % 1000:03d}"}).encode(),
            headers={"Content-Type": "application/json"}, method="PATCH",
        )
        urllib.request.urlopen(request, timeout=30).read()
        edited += 1
    return edited


def bench_size(customers: int) -> dict:
    result: dict = {"customers": customers}
    with running_simulator(customers) as (url, key), tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.db")
        run_phase("floor", url, key, db)  # warm-up: connections, server caches, the OS
        floor = run_phase("floor", url, key, db)
        result["floor"] = floor
        result["first_sync"] = run_phase("sync", url, key, db)
        result["noop_resync"] = run_phase("sync", url, key, db)
        result["edited"] = edit_share(url, key, customers, 0.01)
        result["resync_1pct"] = run_phase("sync", url, key, db)
        for name in ("first_sync", "noop_resync", "resync_1pct"):
            result[name]["ratio_to_floor"] = round(result[name]["seconds"] / floor["seconds"], 2)
    return result


def bench_latency(pages: int) -> dict:
    from mirror.api import SolarProofClient
    from mirror.walk import CustomerWalk

    def walk(url, key, in_flight):
        with SolarProofClient(url, key) as client:
            started = time.perf_counter()
            walked = CustomerWalk(client, max_in_flight=in_flight)
            count = sum(1 for _ in walked)
            return {"pages": count, "seconds": round(time.perf_counter() - started, 2),
                    "peak_in_flight": walked.peak_in_flight}

    with running_simulator(pages * 50 - 1) as (url, key):
        admin(url, key, "faults", {"latency_ms": 50})
        one, eight = walk(url, key, 1), walk(url, key, 8)
    return {"latency_ms": 50, "concurrency_1": one, "concurrency_8": eight,
            "speedup": round(one["seconds"] / eight["seconds"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--latency-pages", type=int, default=2000, help="0 skips the latency walk")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        phase_main(args.phase, args.url, args.key, args.db)
        return
    from mirror.logs import configure_logging

    configure_logging(level="error", json=True, stream=open(os.devnull, "w"))
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
              "sizes": [bench_size(n) for n in args.sizes]}
    if args.latency_pages:
        report["latency_walk"] = bench_latency(args.latency_pages)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
