"""What can go wrong with a mirror database, in words a person can act on."""

from __future__ import annotations

from mirror.errors import MirrorError


class StoreError(MirrorError):
    """The database cannot be used (a newer schema, not a mirror, unreadable, unreachable)."""


class StoreBusy(StoreError):
    """Another program held the database's write lock for longer than the busy timeout. Each
    backend says it in its own words (SqliteBackend.busy, PostgresBackend.busy)."""

    def __init__(self, where: str, seconds: float, message: str | None = None):
        self.path, self.seconds = where, seconds
        super().__init__(message or f"{where} stayed locked by another program for {seconds:g}s; nothing was lost")


class StoreUnavailable(StoreError):
    """The database cannot be read right now (a file being recovered, a session lost): worth a
    later try."""


class StoreUnreachable(StoreUnavailable):
    """The database server could not be reached (down, refused, a wrong host): worth a later try."""


class OlderSchema(StoreError):
    """The database is a mirror of an older schema: opening it with Store.open upgrades it first."""


class LockBusy(Exception):
    """Another process holds the lock; `holder` is what it wrote there (its pid and role)."""

    def __init__(self, path: object, holder: str):
        self.path, self.holder = path, holder
        super().__init__(f"{path} is held by another spmirror ({holder or 'unknown holder'})")
