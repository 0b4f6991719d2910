"""Benchmark the pull against a simulator in its own process; prints JSON.

    .venv/bin/python bench/pull.py [--sizes 10000 100000] [--latency-pages 2000] [--samples 3]

For each account size, each phase runs in a fresh process (so its peak RSS is its own):
  floor          the same client and walk, every page fetched and split, no database
  first_sync     an empty mirror: every customer normalised and written
  noop_resync    nothing changed remotely: should cost about the floor and write nothing
  resync_1pct    1% of the customers edited remotely first
Each reports wall seconds, customers/s, the ratio to the floor, customer rows written, and peak
RSS. Then a walk of --latency-pages pages with 50 ms added per request, at 1 and at up to 8 pages
in flight.

Every phase is measured --samples times (at least 3) in rounds: each round runs the floor, then
a first sync into a new file, a no-op resync and a 1% resync of that file, so a slow spell of the
machine hits a phase and the floor beside it alike. Seconds and customers/s are summaries (see
bench/stats.py: median, min, max, p25, p75, iqr, and the values in round order); ratio_to_floor
summarises the per-round ratios (phase / floor of the same round); peak_rss_mb is the largest.
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
from stats import ratio_summary, sample_count, summarise_samples  # noqa: E402

TIMED = {"seconds": 3, "customers_per_s": 0}  # summarised across samples, to these digits


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
        "seconds": seconds,
        "customers": customers,
        "customers_per_s": customers / seconds,
        "customer_rows_written": rows,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


def edit_share(url: str, key: str, customers: int, share: float, round_number: int) -> int:
    """Edit `share` of the simulator's customers through its admin routes, to values no earlier
    round used (so every round changes the same number of customers); returns how many."""
    import urllib.request

    base = url.rsplit("/", 1)[0]
    step = int(1 / share)
    edited = 0
    for offset in range(0, customers, step):
        customer_id = 70001 + offset
        request = urllib.request.Request(
            f"{base}/_admin/customers/{customer_id}?api_key={key}",
            data=json.dumps({"phone2": f"04{round_number % 100:02d} {edited % 1000:03d} {offset % 1000:03d}"}).encode(),
            headers={"Content-Type": "application/json"}, method="PATCH",
        )
        urllib.request.urlopen(request, timeout=30).read()
        edited += 1
    return edited


def bench_size(customers: int, samples: int) -> dict:
    phases: dict[str, list[dict]] = {"floor": [], "first_sync": [], "noop_resync": [], "resync_1pct": []}
    edited = []
    with running_simulator(customers) as (url, key), tempfile.TemporaryDirectory() as tmp:
        run_phase("floor", url, key, str(Path(tmp) / "warm-up.db"))  # warm-up: connections, server caches, the OS
        for round_number in range(samples):
            db = Path(tmp) / f"bench-{round_number}.db"
            phases["floor"].append(run_phase("floor", url, key, str(db)))
            phases["first_sync"].append(run_phase("sync", url, key, str(db)))
            phases["noop_resync"].append(run_phase("sync", url, key, str(db)))
            edited.append(edit_share(url, key, customers, 0.01, round_number))
            phases["resync_1pct"].append(run_phase("sync", url, key, str(db)))
            for path in Path(tmp).glob(f"{db.name}*"):  # the file and its -wal/-shm: a round's disk is freed
                path.unlink()
    floor_seconds = [sample["seconds"] for sample in phases["floor"]]
    result: dict = {"customers": customers, "samples": samples,
                    "edited": edited[0] if len(set(edited)) == 1 else edited}
    for name, sampled in phases.items():
        result[name] = summarise_samples(sampled, TIMED)
        result[name]["peak_rss_mb"] = max(sample["peak_rss_mb"] for sample in sampled)
        if name != "floor":
            result[name]["ratio_to_floor"] = ratio_summary([sample["seconds"] for sample in sampled], floor_seconds)
    return result


def bench_latency(pages: int, samples: int) -> dict:
    from mirror.api import SolarProofClient
    from mirror.walk import CustomerWalk

    def walk(url, key, in_flight):
        with SolarProofClient(url, key) as client:
            started = time.perf_counter()
            walked = CustomerWalk(client, max_in_flight=in_flight)
            count = sum(1 for _ in walked)
            return {"pages": count, "seconds": time.perf_counter() - started, "peak_in_flight": walked.peak_in_flight}

    with running_simulator(pages * 50 - 1) as (url, key):
        admin(url, key, "faults", {"latency_ms": 50})
        rounds = [(walk(url, key, 1), walk(url, key, 8)) for _ in range(samples)]
    one, eight = ([pair[i] for pair in rounds] for i in (0, 1))
    return {"latency_ms": 50, "samples": samples,
            "concurrency_1": summarise_samples(one, {"seconds": 2}),
            "concurrency_8": summarise_samples(eight, {"seconds": 2}),
            "speedup": ratio_summary([s["seconds"] for s in one], [s["seconds"] for s in eight])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--latency-pages", type=int, default=2000, help="0 skips the latency walk")
    parser.add_argument("--samples", type=sample_count, default=3, help="samples per phase (at least 3)")
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
              "sizes": [bench_size(n, args.samples) for n in args.sizes]}
    if args.latency_pages:
        report["latency_walk"] = bench_latency(args.latency_pages, args.samples)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
