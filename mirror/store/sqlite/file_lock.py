"""File locks beside the database: one daemon per mirror, one sync at a time.

`<db>.run.lock` is held by `spmirror run` for its whole life, so a second daemon is refused.
`<db>.sync.lock` is held for the length of each sync (the daemon's or `spmirror sync`'s), so two
processes never push the same edit. The kernel drops a lock when its holder dies, even by
SIGKILL, so a crash never leaves the mirror locked.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from mirror.store.errors import LockBusy  # noqa: F401  (importable from here)


class FileLock:
    """An exclusive flock on a file created owner-only (0600)."""

    standby = False  # a second daemon is refused: one file, one host

    def __init__(self, path: Path, role: str):
        self.path = path
        self.role = role
        self._fd: int | None = None

    def acquire(self, wait_seconds: float = 0.0, poll: float = 0.1) -> None:
        """Take the lock, waiting up to `wait_seconds`; raise LockBusy if it stays taken."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
                    os.close(fd)
                    raise LockBusy(self.path, holder) from None
                time.sleep(poll)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({self.role})\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        if self._fd is None:
            self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def run_lock(database: Path) -> FileLock:
    return FileLock(database.with_name(database.name + ".run.lock"), "spmirror run")


def sync_lock(database: Path, role: str) -> FileLock:
    return FileLock(database.with_name(database.name + ".sync.lock"), role)
