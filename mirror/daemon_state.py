"""The running daemon's own account of itself, in a small file on the daemon's host.

`spmirror run` writes its pid, last result and next sync there after each run; `spmirror status`
reads it. Kept apart from mirror.daemon so status never imports the scheduler.

Where: beside a SQLite mirror (`<db>.daemon.json`). A PostgreSQL mirror has no file to sit
beside, and its daemon may run on another host than the one asking; the file goes in this host's
state directory ($STATE_DIRECTORY under systemd, else $XDG_STATE_HOME/spmirror or
~/.local/state/spmirror), named after the database and schema, so `spmirror status` on the
daemon's host finds it. Only the daemon that holds the run lock writes it; a standby does not
(it would overwrite the active daemon's account on a shared host), and says so in its log.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from mirror.store.location import Location


def daemon_state_path(where: str | Path | Location, env: dict[str, str] | None = None) -> Path:
    location = Location.parse(where)
    if location.path is not None:
        return location.path.with_name(location.path.name + ".daemon.json")
    # The URL without its password: the same mirror whichever password a config file holds.
    digest = hashlib.sha256(str(location).encode()).hexdigest()[:16]
    return _state_directory(os.environ if env is None else env) / f"daemon-{digest}.json"


def write_daemon_state(where: str | Path | Location, state: dict) -> None:
    """Replace the state file atomically (owner-only), so a reader never sees half of it."""
    path = daemon_state_path(where)
    path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(state, handle)
    os.replace(temporary, path)


def read_daemon_state(where: str | Path | Location) -> dict | None:
    """The state a daemon still running wrote, or None (none written, or its process is gone)."""
    try:
        state = json.loads(daemon_state_path(where).read_text())
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state


def _state_directory(env) -> Path:
    if env.get("STATE_DIRECTORY"):  # systemd StateDirectory=: may list several, the first is ours
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]) / "spmirror"
    return Path(env.get("HOME") or Path.home()) / ".local" / "state" / "spmirror"
