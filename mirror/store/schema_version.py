"""The mirror's schema version, shared by both backends: SQLite keeps it in `PRAGMA user_version`,
PostgreSQL in its `spmirror_schema` table. A backend's migration list takes version n to n+1.
Also what either backend says of a database whose version it cannot use."""

from __future__ import annotations

from mirror.store.errors import OlderSchema, StoreError

SCHEMA_VERSION = 4


def newer_schema(where: object, version: int) -> StoreError:
    return StoreError(f"{where} has schema version {version}, newer than this spmirror understands "
                      f"({SCHEMA_VERSION}); upgrade spmirror")


def check_readable(where: object, version: int, has_tables: bool, has_customers: bool, place: str = "") -> None:
    """Raise what a read-only open of the mirror at `where` (its tables `place`, e.g. "in schema
    x") must say when it cannot read it as this version: newer, empty, not a mirror, or older
    (OlderSchema: opening it with Store.open upgrades it first)."""
    if version > SCHEMA_VERSION:
        raise newer_schema(where, version)
    if not has_tables:
        raise StoreError(f"{where} holds no mirror yet (no tables{' ' + place if place else ''})")
    if version == 0 or not has_customers:
        raise StoreError(f"{where} is not a spmirror database (no spmirror schema version or customers table"
                         f"{' ' + place if place else ''})")
    if version < SCHEMA_VERSION:
        raise OlderSchema(f"{where} has schema version {version}; this spmirror upgrades it to {SCHEMA_VERSION}")
