"""Benchmark the customer walk against a simulator in its own process; prints JSON.

    .venv/bin/python bench/walk.py [--customers 100000] [--latency-pages 2000] [--samples 3]

Reports pages/s for: the walk alone (fetch + split into records) at 1 and at up to 8 pages
in flight; the walk plus normalising every record to the canonical customer; and, with 50 ms
added per request, a walk of `--latency-pages` pages at 1 and at up to 8 in flight.

Each phase is measured --samples times (at least 3), the phases taking turns in each round so a
slow spell of the machine hits them alike. Timed figures are summaries (bench/stats.py): median,
min, max, p25, p75, iqr and the values in measured order; the speedup at 50 ms is the median of
the per-round ratios (1 in flight / 8 in flight), with its spread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from simulator_process import admin, running_simulator  # noqa: E402
from stats import ratio_summary, sample_count, summarise_samples  # noqa: E402

from mirror.api import SolarProofClient  # noqa: E402
from mirror.logs import configure_logging  # noqa: E402
from mirror.walk import CustomerWalk  # noqa: E402
from mirror.wire import customer_from_read  # noqa: E402


def timed_walk(url: str, key: str, max_in_flight: int, normalise: bool = False, max_pages: int = 100_000) -> dict:
    with SolarProofClient(url, key) as client:
        walk = CustomerWalk(client, max_in_flight=max_in_flight, max_pages=max_pages)
        started = time.perf_counter()
        records = 0
        try:
            for page in walk:
                for record in page.records:
                    if normalise:
                        customer_from_read(record.value)
                    records += 1
        except Exception as exc:  # a capped latency walk ends by the page cap on purpose
            if "page cap" not in str(exc):
                raise
        elapsed = time.perf_counter() - started
    return {
        "max_in_flight": max_in_flight,
        "normalised": normalise,
        "pages": walk.pages,
        "customers": records,
        "seconds": elapsed,
        "pages_per_s": walk.pages / elapsed,
        "customers_per_s": records / elapsed,
        "peak_in_flight": walk.peak_in_flight,
    }


TIMED = {"seconds": 3, "pages_per_s": 1, "customers_per_s": 0}  # summarised, to these digits


def fold(samples: list[dict]) -> dict:
    return summarise_samples(samples, TIMED)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--latency-pages", type=int, default=2000, help="pages walked at 50 ms (0 skips)")
    parser.add_argument("--samples", type=sample_count, default=3, help="samples per phase (at least 3)")
    args = parser.parse_args()
    # Quiet: structlog's default would print a debug line per page onto the JSON on stdout.
    configure_logging(level="error", json=True, stream=open(os.devnull, "w"))
    result: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "platform": platform.platform()},
                    "customers": args.customers, "samples": args.samples}
    with running_simulator(args.customers) as (url, key):
        timed_walk(url, key, 1, max_pages=20)  # warm up connections and caches
        rounds = [(timed_walk(url, key, 1), timed_walk(url, key, 8), timed_walk(url, key, 8, normalise=True))
                  for _ in range(args.samples)]
        result["walk_1"], result["walk_8"], result["walk_8_normalised"] = (fold(list(s)) for s in zip(*rounds))
        if args.latency_pages:
            admin(url, key, "faults", {"latency_ms": 50})
            slow = [(timed_walk(url, key, 1, max_pages=args.latency_pages),
                     timed_walk(url, key, 8, max_pages=args.latency_pages)) for _ in range(args.samples)]
            slow_1, slow_8 = (list(s) for s in zip(*slow))
            result["latency_50ms"] = {
                "walk_1": fold(slow_1), "walk_8": fold(slow_8),
                "speedup": ratio_summary([s["seconds"] for s in slow_1], [s["seconds"] for s in slow_8]),
            }
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
