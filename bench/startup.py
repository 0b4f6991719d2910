"""How long `spmirror` takes to start: `--help`, `status` and `config`, beside the floor of a
bare interpreter (`python -c pass`); prints JSON.

    .venv/bin/python bench/startup.py [--samples 7] [--budget 0.3]

Each command runs as a user runs it (`python -m mirror ...` in a fresh process, wall-clock
time from start to exit), --samples times (at least 3), the commands taking turns in each round
so a slow spell of the machine hits them alike. `status` reads an empty mirror made for the
run, `config` the defaults (no config file, no SPMIRROR_* variable). Figures are summaries
(bench/stats.py): median, min, max, p25, p75, iqr and the values in measured order; `over_floor`
is the median of each round's command time minus that round's floor. `within_budget` compares
each median with --budget seconds. `imports` lists which heavy libraries each command loaded.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stats import sample_count, summary  # noqa: E402

HEAVY = ("httpx", "sqlalchemy", "sqlmodel", "apscheduler", "uvicorn", "structlog")
FLOOR = "python -c pass"


def commands(db: Path) -> dict[str, list[str]]:
    return {
        FLOOR: ["-c", "pass"],
        "--help": ["-m", "mirror", "--help"],
        "status": ["-m", "mirror", "--db", str(db), "status"],
        "config": ["-m", "mirror", "--db", str(db), "config"],
    }


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPMIRROR_")
           and k not in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY", "CONFIGURATION_DIRECTORY")}
    env["XDG_CONFIG_HOME"] = str(home / "xdg")  # no user config file
    return env


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, *argv], env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def heavy_imports(argv: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    """The heavy libraries a command imported (one extra run, with -X importtime, untimed)."""
    if argv[0] != "-m":
        return []
    run = subprocess.run([sys.executable, "-X", "importtime", *argv], env=env, cwd=cwd, check=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    loaded = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines()}
    return [name for name in HEAVY if name in loaded]


def make_mirror(db: Path) -> None:
    """An empty mirror (schema only) for `status` to read."""
    from mirror.store import Store

    Store.open(db).close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=sample_count, default=7, help="runs of each command (at least 3)")
    parser.add_argument("--budget", type=float, default=0.3, help="seconds each command should stay within")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spmirror-startup-") as tmp:
        home = Path(tmp)
        db = home / "mirror.db"
        make_mirror(db)
        env, todo = clean_env(home), commands(db)
        for argv in todo.values():  # warm the file cache and the .pyc files once, untimed
            timed(argv, env, home)
        times: dict[str, list[float]] = {name: [] for name in todo}
        for _ in range(args.samples):
            for name, argv in todo.items():
                times[name].append(timed(argv, env, home))
        imports = {name: heavy_imports(argv, env, home) for name, argv in todo.items() if name != FLOOR}
    result = {
        "benchmark": "startup",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "samples": args.samples,
        "budget_seconds": args.budget,
        "seconds": {name: summary(values) for name, values in times.items()},
        "over_floor": {name: summary([t - f for t, f in zip(values, times[FLOOR])])
                       for name, values in times.items() if name != FLOOR},
        "within_budget": {name: summary(values)["median"] <= args.budget for name, values in times.items()
                          if name != FLOOR},
        "imports": imports,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
