"""How long a first import holds SQLite's write lock, as the mirror sees it and as another writer feels it.

    .venv/bin/python bench/lock_hold.py [--customers 100000] [--samples 3]

Each sample imports the whole account into an empty file with `spmirror sync` (a subprocess,
JSON logs), while a probe process, standing in for a person's SQLite client, keeps trying to
write: BEGIN IMMEDIATE, ROLLBACK, a 5 ms pause, again. It reports:
  mirror_longest_ms   the longest write transaction of the sync (`longest_write_lock_ms` of its
                      `sync_finished` line: from BEGIN IMMEDIATE to COMMIT)
  probe_wait_*_ms     how long the probe's BEGIN IMMEDIATE waited (its busy timeout is 60 s,
                      so it never fails): median, p95 and max of its tries during the import
Prints one JSON object: each figure's median and spread over the samples (bench/stats.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from simulator_process import running_simulator  # noqa: E402
from stats import percentile, sample_count, summarise_samples  # noqa: E402

_PROBE = r"""
import sqlite3, sys, time, json, os
path, stop = sys.argv[1], sys.argv[2]
while not os.path.exists(path):
    time.sleep(0.005)
waits = []
con = None
while not os.path.exists(stop):
    try:
        if con is None:
            con = sqlite3.connect(path, timeout=60, isolation_level=None)
        started = time.perf_counter()
        con.execute("BEGIN IMMEDIATE")
        waits.append(time.perf_counter() - started)
        con.execute("ROLLBACK")
    except sqlite3.OperationalError:
        con = None  # the file is still being created; try again
    time.sleep(0.005)
print(json.dumps(waits))
"""


def one_sample(url: str, key: str, directory: Path) -> dict:
    db, stop = directory / "mirror.db", directory / "stop"
    probe = subprocess.Popen([sys.executable, "-c", _PROBE, str(db), str(stop)], stdout=subprocess.PIPE, text=True)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SPMIRROR_")},
           "SPMIRROR_API_URL": url, "SPMIRROR_API_KEY": key, "SPMIRROR_DB": str(db),
           "SPMIRROR_LOGGING_FORMAT": "json", "SPMIRROR_LOGGING_LEVEL": "info"}
    started = time.perf_counter()
    sync = subprocess.run([sys.executable, "-m", "mirror", "sync"], env=env, capture_output=True, text=True,
                          check=True)
    seconds = time.perf_counter() - started
    stop.touch()
    waits = json.loads(probe.communicate(timeout=120)[0])
    finished = [json.loads(line) for line in sync.stdout.splitlines() if '"sync_finished"' in line][-1]
    waits_ms = [w * 1000 for w in waits] or [0.0]  # no try at all: the import never let it in
    return {
        "seconds": round(seconds, 2),
        "customers": finished["created"],
        "mirror_longest_ms": finished["longest_write_lock_ms"],
        "probe_tries": len(waits),
        "probe_wait_median_ms": round(percentile(waits_ms, 50), 2),
        "probe_wait_p95_ms": round(percentile(waits_ms, 95), 2),
        "probe_wait_max_ms": round(max(waits_ms), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--samples", type=sample_count, default=3)
    args = parser.parse_args()
    samples = []
    with running_simulator(args.customers) as (url, key):
        for _ in range(args.samples):
            with tempfile.TemporaryDirectory() as directory:
                samples.append(one_sample(url, key, Path(directory)))
    folded = summarise_samples(samples, {"seconds": 2, "mirror_longest_ms": 1, "probe_wait_median_ms": 2,
                                         "probe_wait_p95_ms": 2, "probe_wait_max_ms": 2, "probe_tries": 0})
    print(json.dumps({"benchmark": "lock_hold", "customers": args.customers, "machine": {
        "cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "summary": folded}, indent=2))


if __name__ == "__main__":
    main()
