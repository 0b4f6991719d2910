"""Benchmark `spmirror sync` beside a peer, dlt, and beside the bare walk; prints JSON.

    .venv/bin/python bench/peer_dlt.py [--customers 100000] [--samples 3]
    .venv/bin/python bench/peer_dlt.py --customers 500          # a smoke run of a few seconds

Needs the optional extra: pip install -e '.[bench]' (dlt with its sqlalchemy destination).

One simulator in its own process (bench/simulator_process.py) serves every phase, and each
phase runs in a fresh process of its own, so its peak RSS is its own:
  walk           the bare walk floor: plain httpx GETs of `getallcustomers` page 1, 2, ... one
                 at a time, each body json-parsed, until the first short or empty page of 50; no
                 database. Timed inside the process after its imports (process start excluded).
  sync_first     `.venv/bin/spmirror sync` into a new SQLite file, the real CLI as users run it
                 (SPMIRROR_API_URL / SPMIRROR_API_KEY / SPMIRROR_DB), stdout to a file.
  sync_noop      the same command again on that file: nothing changed remotely.
  dlt_first      dlt's `rest_api` source -> `sqlalchemy` destination on a new SQLite file,
                 resource `customers` with primary_key customer_id and write_disposition
                 merge; page-number pagination that stops at the first short or empty page (the
                 listing's end, as the walk's); data_selector "$" (the body is a bare array). Its
                 pipelines_dir is a new directory too, so nothing of an earlier run is reused.
  dlt_reload     the same pipeline again, with the first load's pipelines_dir and database:
                 nothing changed remotely (dlt merges every row again; it keeps no content hash).

Each phase reports two times: `process_seconds`, the wall time of its whole process (interpreter
start and imports included), and `in_process_seconds`, the time after its imports (for the CLI:
the `seconds` of its `sync_finished` log line, from the start of the sync to its end). Peak RSS
is the process's ru_maxrss, from os.wait4 on that one child. Rows written: the CLI's
created+updated+deleted; for dlt the rows its normaliser produced per table (the customers table
and all tables). `db_mb` is the database files' size after the phase.

The phases are measured --samples times (at least 3) in rounds, each round running the walk,
then a first sync into a new file and a no-op resync of it, then a dlt first load into a new
file and its unchanged reload, so a slow spell of the machine hits a phase and the walk beside
it alike (a warm-up walk comes first). Times are summaries (bench/stats.py: median, min, max,
p25, p75, iqr, and the values in round order). Ratios are per round, then summarised:
  over_walk      each phase's process_seconds and in_process_seconds / the walk's
                 in_process_seconds of the same round (the issue's "x the bare walk";
                 its no-op target counts process start, so `process` is the one to read there)
  dlt_vs_spmirror  dlt_first / sync_first and dlt_reload / sync_noop, process and in-process.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from simulator_process import running_simulator  # noqa: E402
from stats import ratio_summary, sample_count, summary  # noqa: E402

PAGE_SIZE = 50  # getallcustomers answers 50 per page; a shorter page is the last
SPMIRROR = Path(sys.executable).with_name("spmirror")  # the venv's console script
MISSING_DLT = ("bench/peer_dlt.py needs dlt with its sqlalchemy destination, which is not installed; "
               "install the bench extra: pip install -e '.[bench]'")
PHASES = ("walk", "sync_first", "sync_noop", "dlt_first", "dlt_reload")
# dlt keeps its global files under ~/.dlt (DLT_DATA_DIR moves them into the run's directory) and
# sends anonymous telemetry by default: off, since a benchmark has no business on the internet.
DLT_ENV = {"RUNTIME__DLTHUB_TELEMETRY": "false", "RUNTIME__LOG_LEVEL": "WARNING"}


# --- in a child process: the walk and the dlt loads ---------------------------------------------

def walk_main(url: str, key: str) -> dict:
    import httpx

    started = time.perf_counter()  # after the imports: process start is not part of the floor
    customers = pages = 0
    with httpx.Client(timeout=60) as client:
        while True:
            pages += 1
            response = client.get(url, params={"action": "getallcustomers", "page": pages, "api_key": key})
            response.raise_for_status()
            records = json.loads(response.content)
            customers += len(records)
            if len(records) < PAGE_SIZE:
                break
    return {"in_process_seconds": time.perf_counter() - started, "customers": customers, "pages": pages}


def dlt_main(url: str, key: str, directory: Path) -> dict:
    os.environ.update(DLT_ENV, DLT_DATA_DIR=str(directory / "dlt-home"))  # before dlt reads them
    import dlt
    from dlt.sources.helpers.rest_client.paginators import PageNumberPaginator
    from dlt.sources.rest_api import rest_api_source

    class ShortPagePaginator(PageNumberPaginator):
        """Page 1, 2, ... until a page shorter than 50 (an empty one included): the listing's end,
        found without asking for the empty page after a short one."""

        def update_state(self, response, data=None) -> None:
            super().update_state(response, data)
            if data is not None and len(data) < PAGE_SIZE:
                self._has_next_page = False

    started = time.perf_counter()  # after the imports, as the walk's
    base_url, _, path = url.rpartition("/")
    source = rest_api_source({
        "client": {"base_url": base_url + "/"},
        "resources": [{
            "name": "customers",
            "primary_key": "customer_id",
            "write_disposition": "merge",
            "endpoint": {
                "path": path,
                "params": {"action": "getallcustomers", "api_key": key},
                "paginator": ShortPagePaginator(base_page=1, page_param="page", total_path=None,
                                                stop_after_empty_page=True),
                "data_selector": "$",
            },
        }],
    })
    pipeline = dlt.pipeline(
        pipeline_name="solarproof_peer", pipelines_dir=str(directory / "pipelines"),
        # create_primary_keys: without them dlt's merge (an EXISTS per destination row over the
        # staging table, dlt 1.31) scans the whole staging table for every row on SQLite: an
        # unchanged reload of 100,000 customers ran past 10 minutes. With them, it uses the index.
        destination=dlt.destinations.sqlalchemy(credentials=f"sqlite:///{directory / 'dlt.db'}",
                                                create_primary_keys=True),
        dataset_name="solarproof", progress=None,
    )
    pipeline.run(source)
    seconds = time.perf_counter() - started
    rows = {table: count for table, count in pipeline.last_trace.last_normalize_info.row_counts.items()
            if not table.startswith("_dlt")}
    return {"in_process_seconds": seconds, "customer_rows_written": rows.get("customers", 0),
            "rows_written": sum(rows.values()), "tables": len(rows)}


def phase_main(phase: str, url: str, key: str, directory: str) -> None:
    result = walk_main(url, key) if phase == "walk" else dlt_main(url, key, Path(directory))
    print(json.dumps(result))


# --- in the parent: one process per phase, timed from outside ----------------------------------

class PhaseFailed(Exception):
    """A phase's process exited non-zero; the message is one line naming it."""


def run_process(name: str, argv: list[str], env: dict, cwd: Path, key: str) -> tuple[float, float, str]:
    """Run `argv` to its end; return (wall seconds, peak RSS in MB, stdout)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage, not all children's
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        last = (stderr.strip().splitlines() or stdout.strip().splitlines() or ["(no output)"])[-1]
        raise PhaseFailed(f"{name} exited {process.returncode}: {last.replace(key, '***')}")
    return seconds, usage.ru_maxrss / 1024, stdout


def files_mb(directory: Path, pattern: str) -> float:
    return round(sum(p.stat().st_size for p in directory.glob(pattern) if p.is_file()) / 2**20, 1)


def python_phase(phase: str, url: str, key: str, directory: Path) -> dict:
    argv = [sys.executable, __file__, "--phase", phase, "--url", url, "--key", key, "--dir", str(directory)]
    seconds, rss, stdout = run_process(phase, argv, dict(os.environ), directory, key)
    result = json.loads(stdout.strip().splitlines()[-1])
    result.update(process_seconds=seconds, peak_rss_mb=round(rss, 1))
    if phase != "walk":
        result["db_mb"] = files_mb(directory, "dlt*.db*")  # the file and each dataset's attached file
    return result


def cli_sync(name: str, url: str, key: str, database: Path) -> dict:
    env = dict(os.environ, SPMIRROR_API_URL=url, SPMIRROR_API_KEY=key, SPMIRROR_DB=str(database))
    seconds, rss, stdout = run_process(name, [str(SPMIRROR), "sync"], env, database.parent, key)
    finished = next((record for record in map(_json_or_none, reversed(stdout.splitlines()))
                     if record and record.get("event") == "sync_finished"), None)
    if finished is None:
        raise PhaseFailed(f"{name}: spmirror sync printed no sync_finished line")
    return {"process_seconds": seconds, "in_process_seconds": finished["seconds"],
            "customers": finished["listed"],
            "customer_rows_written": finished["created"] + finished["updated"] + finished["deleted"],
            "peak_rss_mb": round(rss, 1), "db_mb": files_mb(database.parent, database.name + "*")}


def _json_or_none(line: str) -> dict | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def run_round(url: str, key: str, tmp: Path, number: int) -> dict[str, dict]:
    measured = {"walk": python_phase("walk", url, key, tmp)}
    spmirror_dir, dlt_dir = tmp / f"spmirror-{number}", tmp / f"dlt-{number}"
    spmirror_dir.mkdir()
    dlt_dir.mkdir()
    database = spmirror_dir / "mirror.db"
    measured["sync_first"] = cli_sync("spmirror sync (first)", url, key, database)
    measured["sync_noop"] = cli_sync("spmirror sync (no-op)", url, key, database)
    measured["dlt_first"] = python_phase("dlt_first", url, key, dlt_dir)
    measured["dlt_reload"] = python_phase("dlt_reload", url, key, dlt_dir)  # the same pipelines_dir and file
    shutil.rmtree(spmirror_dir)  # a round's disk is freed before the next
    shutil.rmtree(dlt_dir)
    return measured


def fold(samples: list[dict]) -> dict:
    """One phase's samples: the times summarised, RSS as its largest and its values, the rest
    kept once when every round agrees."""
    folded: dict = {"samples": len(samples)}
    for field in samples[0]:
        column = [sample[field] for sample in samples]
        if field.endswith("seconds"):
            folded[field] = summary(column, 3)
        elif field == "peak_rss_mb":
            folded[field] = {"max": max(column), "values": column}
        else:
            folded[field] = column[0] if all(value == column[0] for value in column) else column
    return folded


def bench(customers: int, samples: int) -> dict:
    rounds: list[dict[str, dict]] = []
    with running_simulator(customers) as (url, key), tempfile.TemporaryDirectory(prefix="peer-dlt-") as tmp:
        python_phase("walk", url, key, Path(tmp))  # warm-up: server caches, the OS, the file cache
        for number in range(samples):
            rounds.append(run_round(url, key, Path(tmp), number))
    by_phase = {phase: [measured[phase] for measured in rounds] for phase in PHASES}

    def column(phase: str, field: str) -> list[float]:
        return [sample[field] for sample in by_phase[phase]]

    walk = column("walk", "in_process_seconds")
    result: dict = {"customers": customers, "samples": samples}
    for phase in PHASES:
        result[phase] = fold(by_phase[phase])
        if phase != "walk":
            result[phase]["over_walk"] = {
                "process": ratio_summary(column(phase, "process_seconds"), walk),
                "in_process": ratio_summary(column(phase, "in_process_seconds"), walk)}
    result["dlt_vs_spmirror"] = {
        f"{dlt_phase}/{ours}": {timing: ratio_summary(column(dlt_phase, f"{timing}_seconds"),
                                                      column(ours, f"{timing}_seconds"))
                                for timing in ("process", "in_process")}
        for dlt_phase, ours in (("dlt_first", "sync_first"), ("dlt_reload", "sync_noop"))}
    return result


def dlt_version() -> str | None:
    """dlt's version when dlt and SQLAlchemy (its sqlalchemy destination) are importable."""
    if importlib.util.find_spec("dlt") is None or importlib.util.find_spec("sqlalchemy") is None:
        return None
    from importlib.metadata import version

    return version("dlt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000, help="simulated customers (default 100000)")
    parser.add_argument("--samples", type=sample_count, default=3, help="rounds of every phase (at least 3)")
    parser.add_argument("--phase", choices=("walk", "dlt_first", "dlt_reload"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        phase_main(args.phase, args.url, args.key, args.dir)
        return
    if args.customers < 1:
        parser.error(f"--customers must be at least 1; got {args.customers}")
    version = dlt_version()
    if version is None:
        print(MISSING_DLT, file=sys.stderr)
        sys.exit(2)
    if not SPMIRROR.exists():
        print(f"bench/peer_dlt.py runs the spmirror CLI, not found at {SPMIRROR}; run it with the venv's "
              "python after make install", file=sys.stderr)
        sys.exit(2)
    try:
        report = bench(args.customers, args.samples)
    except PhaseFailed as exc:
        print(f"bench/peer_dlt.py: {exc}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                  "platform": platform.platform(), "dlt": version},
                      **report}, indent=2))


if __name__ == "__main__":
    main()
