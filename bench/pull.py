"""Benchmark the pull against a simulator in its own process; prints JSON.

    .venv/bin/python bench/pull.py [--sizes 100000 1000000] [--latency-pages 2000] [--samples 3]
                                   [--db postgresql://user@host:5432/database]

For each account size, each phase runs in a fresh process (so its peak RSS is its own):
  bare_walk      the floor: plain sequential httpx GETs of every page, each body parsed with
                 json.loads, no database (timed inside its process, after the imports)
  walk           the mirror's own client and walk (8 pages in flight, records split), no database
  first_sync     `spmirror sync` into an empty mirror: every customer normalised and written
  noop_resync    `spmirror sync` again, nothing changed remotely: should cost about the walk and
                 write no row
  resync_1pct    `spmirror sync` after 1% of the customers were edited remotely
The three syncs run the real CLI in a subprocess and are timed from outside it, so their seconds
include the interpreter's start and the imports. Each phase reports wall seconds, customers/s,
its ratio to the bare walk of the same round (`ratio_to_bare_walk`), customer rows written (from
the run's own record in sync_runs), peak RSS (the phase's process alone, from wait4), and for the
syncs the database's size after it (file plus WAL) and bytes per customer; the first sync adds
the size of each table and index (SQLite's dbstat).

Rounds: each runs the bare walk, the walk, then a first sync into a new file, a no-op resync and a
1% resync of that file, so a slow spell of the machine hits a phase and the floor beside it alike.
--samples rounds (at least 3) for sizes up to 200,000 customers; --large-samples (default 1) above
that, where one round of a million customers takes several minutes. Seconds and customers/s are
summaries (bench/stats.py: median, min, max, p25, p75, iqr, and the values in round order);
ratios summarise the per-round ratios; peak_rss_mb is the largest. Then a walk of
--latency-pages pages with 50 ms added per request, at 1 and at up to 8 pages in flight.

--db postgresql://...: SQLite and PostgreSQL in the same run, each size's SQLite figures where
they always were and PostgreSQL's beside them, under "postgres". Each round then adds, after the
SQLite phases (so a slow spell of the machine hits both backends and their floors alike):
  bare_write     the floor of the writes (bench/floors.py): the same customers into an unindexed
                 table, by SQLite's executemany, PostgreSQL's executemany and PostgreSQL's COPY
  postgres       first_sync, noop_resync and resync_1pct as above, into a schema of its own in
                 that database (created for the round, reached by `?options=-csearch_path%3D...`
                 in SPMIRROR_DB, dropped after); each with ratio_to_bare_walk and ratio_to_sqlite
                 (against the SQLite phase of the same round), and the first sync with
                 ratio_to_bare_walk_and_write (against the bare walk plus the COPY floor; SQLite's
                 first sync gets the same against its executemany floor)
The database's size is that of the schema's tables and indexes (pg_table_size, pg_relation_size);
the server's WAL and its memory are not counted, nor is the server's CPU in peak_rss_mb.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import floors  # noqa: E402
import postgres_schema  # noqa: E402
from simulator_process import admin, running_simulator  # noqa: E402
from stats import ratio_summary, sample_count, summarise_samples, summary  # noqa: E402

TIMED = {"seconds": 3, "customers_per_s": 0}  # summarised across samples, to these digits
SPMIRROR = Path(sys.executable).with_name("spmirror")
LARGE = 200_000  # above this many customers, --large-samples rounds
SYNCS = ("first_sync", "noop_resync", "resync_1pct")


def run_phase(phase: str, url: str, key: str, targets: tuple[str, ...] = ()) -> dict:
    """Run one phase in a child process and return what it printed."""
    output = subprocess.run(
        [sys.executable, __file__, "--phase", phase, "--url", url, "--key", key, "--targets", *targets],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def run_sync(url: str, key: str, db: Path | str, customers: int, with_tables: bool = False) -> dict:
    """`spmirror sync` as a user runs it, timed from outside; its own peak RSS from wait4.
    `db` is a SQLite file, or the URL of a PostgreSQL schema (bench/postgres_schema.py)."""
    env = {**os.environ, "SPMIRROR_API_URL": url, "SPMIRROR_API_KEY": key, "SPMIRROR_DB": str(db),
           "SPMIRROR_LOGGING_LEVEL": "error", "SPMIRROR_SYNC_MASS_DELETE_SHARE": "1"}
    started = time.perf_counter()
    process = subprocess.Popen([str(SPMIRROR), "sync"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"spmirror sync exited {os.waitstatus_to_exitcode(status)}: {process.stderr.read()[-2000:]!r}")
    if isinstance(db, Path):
        with sqlite3.connect(db) as con:
            listed, written = con.execute(
                "SELECT listed, created + updated + deleted FROM sync_runs ORDER BY started_at DESC LIMIT 1").fetchone()
            tables = dict(con.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")) \
                if with_tables else None
        size = sum(path.stat().st_size for path in (db, db.with_name(db.name + "-wal")) if path.exists())
    else:
        listed, written = postgres_schema.last_run(db)
        relations = postgres_schema.relation_bytes(db)
        tables = relations if with_tables else None
        size = sum(relations.values())
    result = {"seconds": seconds, "customers": listed, "customers_per_s": listed / seconds,
              "customer_rows_written": written, "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
              "db_mb": round(size / 1e6, 1), "db_bytes_per_customer": round(size / max(customers, 1))}
    if tables is not None:
        result["table_bytes_per_customer"] = {name: round(pages / max(customers, 1)) for name, pages in tables.items()
                                              if pages / max(customers, 1) >= 1}
    return result


def phase_main(phase: str, url: str, key: str, targets: list[str]) -> None:
    if phase == "bare_write":
        bare_write_main(url, key, targets)
        return

    from mirror.api import SolarProofClient
    from mirror.walk import CustomerWalk

    started = time.perf_counter()  # after the imports: the floor is the walk itself
    if phase == "bare_walk":
        customers = sum(len(body) for body in floors.iter_bare_pages(url, key))
    else:
        with SolarProofClient(url, key) as client:
            walk = CustomerWalk(client, max_in_flight=8)
            customers = sum(len(page.records) for page in walk)
    seconds = time.perf_counter() - started
    print(json.dumps({
        "seconds": seconds,
        "customers": customers,
        "customers_per_s": customers / seconds,
        "customer_rows_written": 0,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


def bare_write_main(url: str, key: str, targets: list[str]) -> None:
    """The write floors (bench/floors.py) into each target: a SQLite file, or a PostgreSQL schema's URL."""
    columns, rows = floors.bare_rows(url, key)
    seconds: dict[str, float] = {}
    for target in targets:
        if postgres_schema.is_postgres_url(target):
            seconds["postgres_executemany"] = floors.time_postgres_executemany(target, columns, rows)
            seconds["postgres_copy"] = floors.time_postgres_copy(target, columns, rows)
        else:
            seconds["sqlite_executemany"] = floors.time_sqlite_executemany(target, columns, rows)
    print(json.dumps({"rows": len(rows), "columns": len(columns), **seconds}))


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


def sync_rounds(url: str, key: str, db: Path | str, customers: int, phases: dict[str, list[dict]],
                edited: list[int], edit_round: int, with_tables: bool) -> None:
    """A first sync into an empty `db`, a no-op resync, and a resync after 1% was edited remotely."""
    phases["first_sync"].append(run_sync(url, key, db, customers, with_tables=with_tables))
    phases["noop_resync"].append(run_sync(url, key, db, customers))
    edited.append(edit_share(url, key, customers, 0.01, edit_round))
    phases["resync_1pct"].append(run_sync(url, key, db, customers))


def summarise_phases(phases: dict[str, list[dict]], floor_seconds: list[float]) -> dict:
    """Each phase's samples folded (bench/stats.py), with its ratio to the bare walk of each round."""
    result: dict = {}
    for name, sampled in phases.items():
        tables = sampled[0].pop("table_bytes_per_customer", None)  # the first round's only
        result[name] = summarise_samples(sampled, TIMED)
        result[name]["peak_rss_mb"] = max(sample["peak_rss_mb"] for sample in sampled)
        if "db_mb" in sampled[0]:
            result[name]["db_mb"] = max(sample["db_mb"] for sample in sampled)
            result[name]["db_bytes_per_customer"] = max(sample["db_bytes_per_customer"] for sample in sampled)
        if tables is not None:
            result[name]["table_bytes_per_customer"] = tables
        if name != "bare_walk":
            result[name]["ratio_to_bare_walk"] = ratio_summary([s["seconds"] for s in sampled], floor_seconds)
    return result


def bench_size(customers: int, samples: int, postgres_url: str | None = None) -> dict:
    phases: dict[str, list[dict]] = {"bare_walk": [], "walk": [], "first_sync": [], "noop_resync": [],
                                     "resync_1pct": []}
    postgres: dict[str, list[dict]] = {name: [] for name in SYNCS}
    writes: list[dict] = []
    edited: list[int] = []
    with running_simulator(customers) as (url, key), tempfile.TemporaryDirectory() as tmp:
        run_phase("bare_walk", url, key)  # warm-up: connections, server caches, the OS
        for round_number in range(samples):
            db = Path(tmp) / f"bench-{round_number}.db"
            phases["bare_walk"].append(run_phase("bare_walk", url, key))
            phases["walk"].append(run_phase("walk", url, key))
            # With two backends a round edits twice; each edit to values no other edit used.
            sqlite_edit, postgres_edit = ((2 * round_number, 2 * round_number + 1) if postgres_url
                                          else (round_number, None))
            sync_rounds(url, key, db, customers, phases, edited, sqlite_edit, with_tables=round_number == 0)
            for path in Path(tmp).glob(f"{db.name}*"):  # the file and its -wal/-shm: a round's disk is freed
                path.unlink()
            if postgres_url:
                bare = Path(tmp) / "bare.db"
                with postgres_schema.fresh_schema(postgres_url, prefix="spbench_floor") as floor_url:
                    writes.append(run_phase("bare_write", url, key, (str(bare), floor_url)))
                for path in Path(tmp).glob(f"{bare.name}*"):
                    path.unlink()
                with postgres_schema.fresh_schema(postgres_url) as schema_url:
                    sync_rounds(url, key, schema_url, customers, postgres, edited, postgres_edit,
                                with_tables=round_number == 0)
    floor_seconds = [sample["seconds"] for sample in phases["bare_walk"]]
    result: dict = {"customers": customers, "samples": samples,
                    "edited": edited[0] if len(set(edited)) == 1 else edited}
    result.update(summarise_phases(phases, floor_seconds))
    if postgres_url:
        write_floors = {name: [sample[name] for sample in writes]
                        for name in ("sqlite_executemany", "postgres_executemany", "postgres_copy")}
        result["bare_write"] = {"rows": writes[0]["rows"], "columns": writes[0]["columns"],
                                **{name: summary(values) for name, values in write_floors.items()},
                                "postgres_executemany_to_copy": ratio_summary(write_floors["postgres_executemany"],
                                                                              write_floors["postgres_copy"])}
        result["first_sync"]["ratio_to_bare_walk_and_write"] = ratio_summary(
            [s["seconds"] for s in phases["first_sync"]],
            [walk + write for walk, write in zip(floor_seconds, write_floors["sqlite_executemany"])])
        result["postgres"] = summarise_phases(postgres, floor_seconds)
        result["postgres"]["first_sync"]["ratio_to_bare_walk_and_write"] = ratio_summary(
            [s["seconds"] for s in postgres["first_sync"]],
            [walk + write for walk, write in zip(floor_seconds, write_floors["postgres_copy"])])
        for name in SYNCS:
            result["postgres"][name]["ratio_to_sqlite"] = ratio_summary(
                [s["seconds"] for s in postgres[name]], [s["seconds"] for s in phases[name]])
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


def postgres_url(text: str) -> str:
    """argparse type of --db: a PostgreSQL URL (SQLite always runs, in a temporary directory)."""
    if not postgres_schema.is_postgres_url(text):
        raise argparse.ArgumentTypeError(f"expected a postgresql:// URL (SQLite always runs beside it); got {text!r}")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--latency-pages", type=int, default=2000, help="0 skips the latency walk")
    parser.add_argument("--samples", type=sample_count, default=3, help="samples per phase (at least 3)")
    parser.add_argument("--large-samples", type=int, default=1,
                        help=f"samples per phase above {LARGE:,} customers (default 1)")
    parser.add_argument("--db", type=postgres_url, metavar="postgresql://...",
                        help="also sync into this PostgreSQL database, a new schema each round, beside SQLite")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--targets", nargs="*", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        phase_main(args.phase, args.url, args.key, args.targets)
        return
    from mirror.logs import configure_logging
    from mirror.store.location import redact_url

    configure_logging(level="error", json=True, stream=open(os.devnull, "w"))
    report: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "platform": platform.platform(),
                                "load_average_at_start": [round(load, 2) for load in os.getloadavg()]}}
    if args.db:
        report["postgres"] = {"url": redact_url(args.db), **postgres_schema.server(args.db)}
    report["sizes"] = [bench_size(n, args.samples if n <= LARGE else max(1, args.large_samples), args.db)
                       for n in args.sizes]
    if args.latency_pages:
        report["latency_walk"] = bench_latency(args.latency_pages, args.samples)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
