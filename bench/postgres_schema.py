"""A throwaway PostgreSQL schema per benchmark sample, and what the benchmarks read back from it.

Each sample gets a schema of its own in the database the URL names, reached the way a user
reaches one (`?options=-csearch_path%3D<schema>` in SPMIRROR_DB), and dropped after, so no sample
sees another's rows and the database is left as it was found. The benchmarks read with psycopg
directly, never through the product's Store, as a person's client would.
"""

from __future__ import annotations

import itertools
import os
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")
# The server settings that change how fast a write commits, reported beside the figures.
SETTINGS = ("fsync", "synchronous_commit", "shared_buffers", "max_wal_size", "checkpoint_timeout")
_numbers = itertools.count(1)


def is_postgres_url(text: str) -> bool:
    return text.split("://", 1)[0].lower() in POSTGRES_SCHEMES if "://" in text else False


def schema_url(url: str, schema: str) -> str:
    """`url` with `schema` first on its search_path (any other options it carries are kept)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = [value for name, value in query if name == "options"]
    query = [(name, value) for name, value in query if name != "options"]
    query.append(("options", " ".join(options + [f"-csearch_path={schema}"])))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def connect(url: str):
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=10)


@contextmanager
def fresh_schema(url: str, prefix: str = "spbench") -> Iterator[str]:
    """Create an empty schema in `url`'s database; yield a URL whose search_path is that schema;
    drop it, and all it holds, after."""
    schema = f"{prefix}_{os.getpid()}_{next(_numbers)}"
    with connect(url) as admin:
        admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema_url(url, schema)
    finally:
        with connect(url) as admin:
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def server(url: str) -> dict:
    """The server's version and the settings that bear on write speed."""
    with connect(url) as db:
        version = db.execute("SHOW server_version").fetchone()[0]
        settings = dict(db.execute("SELECT name, setting || coalesce(unit, '') FROM pg_settings "
                                   "WHERE name = ANY(%s) ORDER BY name", (list(SETTINGS),)))
    return {"version": version, "settings": settings}


def last_run(url: str) -> tuple[int, int]:
    """(customers listed, customer rows written) of the newest sync run in the schema."""
    with connect(url) as db:
        return db.execute(
            "SELECT listed, created + updated + deleted FROM sync_runs "
            "ORDER BY started_at DESC, finished_at DESC NULLS FIRST, run_id DESC LIMIT 1").fetchone()


def relation_bytes(url: str) -> dict[str, int]:
    """Bytes on disk of each table (with its TOAST, free-space and visibility maps) and each index
    of the schema, by name: what SQLite's dbstat gives per b-tree."""
    with connect(url) as db:
        return dict(db.execute(
            "SELECT c.relname, CASE c.relkind WHEN 'i' THEN pg_relation_size(c.oid) ELSE pg_table_size(c.oid) END "
            "FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'i', 'm') "
            "ORDER BY 2 DESC"))
