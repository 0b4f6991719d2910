"""Benchmark pushing local edits: edits/s for --edits local updates, 50 ms per API request,
at 1 and at 8 requests in flight; prints JSON.

    .venv/bin/python bench/push.py [--edits 1000] [--latency-ms 50] [--samples 3]

Each edited row costs two calls (a re-read of the customer, then the update), which is the price
of never overwriting a change made in Solar Proof meanwhile.

Each concurrency is measured --samples times (at least 3), 1 and 8 in flight taking turns in
each round, every round editing the same rows to new values. Seconds and edits/s are summaries
(bench/stats.py: median, min, max, p25, p75, iqr, the values in round order); the speedup is the
median of the per-round ratios, with its spread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from simulator_process import admin, running_simulator  # noqa: E402
from stats import ratio_summary, sample_count, summarise_samples  # noqa: E402

from mirror.commands.sync import sync_once  # noqa: E402
from mirror.config import load_settings  # noqa: E402
from mirror.logs import configure_logging  # noqa: E402


TIMED = {"seconds": 2, "edits_per_s": 1}  # summarised across samples, to these digits


def push_round(url: str, key: str, db: str, edits: int, in_flight: int, tag: str) -> dict:
    """Edit the first `edits` rows (phone2 = 04 + the two-character `tag` + the row id) and push them."""
    with sqlite3.connect(db) as connection:  # a person's bulk edit, from outside the daemon
        connection.execute(
            "UPDATE customers SET customerphone2 = ? || printf('%06d', id) WHERE id <= ?", (f"04{tag}", edits)
        )
    settings = load_settings(env={"SPMIRROR_API_URL": url, "SPMIRROR_API_KEY": key, "SPMIRROR_DB": db,
                                  "SPMIRROR_API_MAX_IN_FLIGHT": str(in_flight)})
    started = time.perf_counter()
    code, report = sync_once(settings, pull=False)
    seconds = time.perf_counter() - started
    assert code == 0 and report.push.updated == edits, (code, report.push)
    return {"in_flight": in_flight, "edits": edits, "seconds": seconds, "edits_per_s": edits / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edits", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--samples", type=sample_count, default=3, help="samples per concurrency (at least 3)")
    args = parser.parse_args()
    configure_logging(level="error", json=True, stream=open(os.devnull, "w"))
    with running_simulator(args.edits + 100) as (url, key), tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "push.db")
        code, _ = sync_once(load_settings(env={"SPMIRROR_API_URL": url, "SPMIRROR_API_KEY": key, "SPMIRROR_DB": db}))
        assert code == 0
        admin(url, key, "faults", {"latency_ms": args.latency_ms})
        one, eight = [], []
        for round_number in range(args.samples):
            # Tags "1<n>" then "2<n>": each push changes every edited row from the value before it.
            one.append(push_round(url, key, db, args.edits, 1, f"1{round_number % 10}"))
            eight.append(push_round(url, key, db, args.edits, 8, f"2{round_number % 10}"))
    print(json.dumps({
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "latency_ms": args.latency_ms, "samples": args.samples,
        "concurrency_1": summarise_samples(one, TIMED), "concurrency_8": summarise_samples(eight, TIMED),
        "speedup": ratio_summary([s["seconds"] for s in one], [s["seconds"] for s in eight]),
    }, indent=2))


if __name__ == "__main__":
    main()
