"""The running daemon's own account of itself, in a small file beside the database.

`spmirror run` writes `<db>.daemon.json` (its pid, last result and next sync) after each run;
`spmirror status` reads it. Kept apart from mirror.daemon so status never imports the scheduler.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def daemon_state_path(database: Path) -> Path:
    return database.with_name(database.name + ".daemon.json")


def write_daemon_state(database: Path, state: dict) -> None:
    """Replace the state file atomically (owner-only), so a reader never sees half of it."""
    path = daemon_state_path(database)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(state, handle)
    os.replace(temporary, path)


def read_daemon_state(database: Path) -> dict | None:
    """The state a daemon still running wrote, or None (none written, or its process is gone)."""
    try:
        state = json.loads(daemon_state_path(database).read_text())
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state
