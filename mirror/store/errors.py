"""What can go wrong with a mirror database, in words a person can act on."""

from __future__ import annotations

from mirror.errors import MirrorError


class StoreError(MirrorError):
    """The database cannot be used (a newer schema, not a mirror, unreadable, unreachable)."""


class StoreBusy(StoreError):
    """Another program held the database's write lock for longer than the busy timeout."""

    def __init__(self, where: str, seconds: float, postgres: bool = False):
        self.path, self.seconds = where, seconds
        if postgres:
            super().__init__(
                f"{where}: the customers table stayed locked by another session for {seconds:g}s: a transaction "
                f"left open in psql, a GUI or a script; find it in pg_stat_activity (state 'idle in "
                f"transaction'). Nothing was lost; the next sync carries on"
            )
            return
        super().__init__(
            f"{where} stayed locked by another program for {seconds:g}s: a write transaction left open, such as a "
            f"GUI editor with unsaved changes (DB Browser: Write Changes) or a script; find it with "
            f"`fuser {where}` or `lsof {where}`. Nothing was lost; the next sync carries on"
        )


class StoreUnreachable(StoreError):
    """The database server could not be reached (down, refused, a wrong host): worth a later try."""


class OlderSchema(StoreError):
    """The database is a mirror of an older schema: opening it with Store.open upgrades it first."""


class LockBusy(Exception):
    """Another process holds the lock; `holder` is what it wrote there (its pid and role)."""

    def __init__(self, path: object, holder: str):
        self.path, self.holder = path, holder
        super().__init__(f"{path} is held by another spmirror ({holder or 'unknown holder'})")
