"""Benchmark pushing local edits: edits/s for --edits local updates, 50 ms per API request,
at 1 and at 8 requests in flight; prints JSON.

    .venv/bin/python bench/push.py [--edits 1000] [--latency-ms 50]

Each edited row costs two calls (a re-read of the customer, then the update), which is the price
of never overwriting a change made in Solar Proof meanwhile.
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

from mirror.commands.sync import sync_once  # noqa: E402
from mirror.config import load_settings  # noqa: E402
from mirror.logs import configure_logging  # noqa: E402


def push_round(url: str, key: str, db: str, edits: int, in_flight: int, tag: str) -> dict:
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
    return {"in_flight": in_flight, "edits": edits, "seconds": round(seconds, 2),
            "edits_per_s": round(edits / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edits", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50)
    args = parser.parse_args()
    configure_logging(level="error", json=True, stream=open(os.devnull, "w"))
    with running_simulator(args.edits + 100) as (url, key), tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "push.db")
        code, _ = sync_once(load_settings(env={"SPMIRROR_API_URL": url, "SPMIRROR_API_KEY": key, "SPMIRROR_DB": db}))
        assert code == 0
        admin(url, key, "faults", {"latency_ms": args.latency_ms})
        one = push_round(url, key, db, args.edits, 1, "11")
        eight = push_round(url, key, db, args.edits, 8, "22")
    print(json.dumps({
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "latency_ms": args.latency_ms, "concurrency_1": one, "concurrency_8": eight,
        "speedup": round(one["seconds"] / eight["seconds"], 2),
    }, indent=2))


if __name__ == "__main__":
    main()
