"""What SIGHUP may change in a running daemon, and what only a restart may.

A live setting is one the daemon reads again for each run or can apply on the spot (the
schedule, the policies, logging). Everything else was bound at start: the database file (whose
run and sync locks the daemon holds), the API client (URL, key, timeouts, retries, connection
pool), the webhook receiver's socket and token, the metrics socket. Taking a new value for one
of those in the middle of a run would half-apply it, for instance syncing a file whose locks
the daemon does not hold, so a reload keeps the old value and names the setting.
A setting added later is restart-only until it is listed here.
"""

from __future__ import annotations

from dataclasses import dataclass

from mirror.config import SETTINGS, Settings

LIVE: frozenset[tuple[str, str]] = frozenset({
    ("sync", "interval"),
    ("sync", "mass_delete_share"),
    ("sync", "enrich"),
    ("sync", "conflict_policy"),
    ("sync", "push_deletes"),
    ("daemon", "watch_interval"),
    ("logging", "level"),
    ("logging", "format"),
    ("api", "max_pages"),  # read by each walk
    ("database", "busy_timeout"),  # read by each run's connection
})


def setting_name(key: tuple[str, str]) -> str:
    return f"[{key[0]}] {key[1]}"


@dataclass(frozen=True)
class Reload:
    """The outcome of comparing the running settings with the file and environment now."""

    settings: Settings  # the new live values over the running values of everything else
    applied: tuple[str, ...]  # live settings that changed, as "[section] key"
    refused: tuple[str, ...]  # changed settings that keep their running value until a restart


def plan_reload(running: Settings, loaded: Settings) -> Reload:
    """Split what changed between `running` and `loaded` into applied and refused settings.

    Names only, never values: a changed key or token is reported without showing it.
    """
    keys = [(s.section, s.key) for s in SETTINGS]
    changed = [key for key in keys if running.values.get(key) != loaded.values.get(key)]
    values = dict(running.values)
    origins = dict(running.origins)
    for key in changed:
        if key in LIVE:
            values[key] = loaded.values[key]
            if key in loaded.origins:
                origins[key] = loaded.origins[key]
    return Reload(
        settings=Settings(values, loaded.source, origins),
        applied=tuple(setting_name(k) for k in changed if k in LIVE),
        refused=tuple(setting_name(k) for k in changed if k not in LIVE),
    )
