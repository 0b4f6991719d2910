"""Another program holding the mirror's write lock: `spmirror sync` waits, then says who to look for.

A GUI editor (DB Browser and the like) keeps a write transaction open until its "Write Changes"
button; a script may do the same. The holder here is a real second process with `BEGIN
IMMEDIATE` on the file, as such a program has.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import API_KEY
from mirror.commands.sync import sync_once
from mirror.config import load_settings
from mirror.simulator.server import SimulatorServer
from polling import wait_until
from sqlite_edit import query, scalar

CUSTOMERS = 80

_HOLDER = r"""
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
con.execute("UPDATE customers SET customerphone2 = '0400 000 321' WHERE id = 1")
print("holding", flush=True)
sys.stdin.readline()  # until the test says to commit
con.execute("COMMIT")
"""


@pytest.fixture
def synced(tmp_path):
    with SimulatorServer(customers=CUSTOMERS, seed=3, api_key=API_KEY) as sim:
        env = {"SPMIRROR_API_URL": sim.url, "SPMIRROR_API_KEY": sim.api_key, "SPMIRROR_DB": str(tmp_path / "m.db")}
        assert sync_once(load_settings(env=env))[0] == 0
        yield sim, tmp_path / "m.db", env


def hold_write_lock(db: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == "holding"
    return holder


def spmirror(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SPMIRROR_")}
    return subprocess.run([sys.executable, "-m", "mirror", *args], env={**base, **env,
                          "SPMIRROR_LOGGING_LEVEL": "warning"}, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_sync_exits_75_naming_the_lock_when_another_program_holds_it(synced, tmp_path):
    """With another program's write transaction open past [database] busy_timeout, `spmirror sync` exits 75 with one
    clear error naming the file and how to find the holder, no traceback, nothing sent; once the holder commits,
    the next sync pushes its edit and records its run."""
    sim, db, env = synced
    holder = hold_write_lock(db)
    try:
        result = spmirror(env | {"SPMIRROR_DATABASE_BUSY_TIMEOUT": "0.5s"}, "sync", cwd=tmp_path)
    finally:
        holder.communicate("commit\n", timeout=10)
    assert result.returncode == 75, result.stderr
    assert f"{db} stayed locked by another program" in result.stderr and f"fuser {db}" in result.stderr
    assert "Traceback" not in result.stderr and "OperationalError" not in result.stderr
    assert sim.account.write_log() == []
    runs = scalar(db, "SELECT count(*) FROM sync_runs")
    result = spmirror(env, "sync", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    target = scalar(db, "SELECT pkcustomerid FROM customers WHERE id = 1")
    assert sim.account.get(target)["phone2"] == "0400 000 321"
    assert scalar(db, "SELECT count(*) FROM sync_runs") == runs + 1


def test_sync_waits_for_a_lock_released_within_the_bound(synced, tmp_path):
    """A sync that starts while another program holds the write lock waits (SQLite's busy handler backs off) and
    completes once the holder commits, well within [database] busy_timeout."""
    sim, db, env = synced
    holder = hold_write_lock(db)
    sync = subprocess.Popen([sys.executable, "-m", "mirror", "sync"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**{k: v for k, v in os.environ.items() if not k.startswith("SPMIRROR_")}, **env,
                                 "SPMIRROR_LOGGING_LEVEL": "warning", "SPMIRROR_DATABASE_BUSY_TIMEOUT": "30s"})
    try:
        # The sync reads before it writes (the account check); its first write waits for the lock.
        wait_until(lambda: _waiting_on(db, sync.pid), timeout=15, message="the sync to wait on the lock")
    finally:
        holder.communicate("commit\n", timeout=10)
    out, err = sync.communicate(timeout=60)
    assert sync.returncode == 0, err
    assert query(db, "SELECT result FROM sync_runs ORDER BY rowid DESC LIMIT 1") == [{"result": "ok"}]


def _waiting_on(db: Path, pid: int) -> bool:
    """The process has the database file open (it reached the point where it writes)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fd) == str(db) for fd in fd_dir.iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return False
