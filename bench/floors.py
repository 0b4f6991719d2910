"""The floors bench/pull.py compares the mirror with: the least work that reads, or writes, the
same customers.

  bare walk   plain sequential httpx GETs of every page, each body parsed with json.loads
  bare write  the same customers, one row each, written the plainest way into a table with no
              index, no key, no trigger, in one transaction: SQLite's executemany, PostgreSQL's
              executemany (psycopg 3 pipelines it) and PostgreSQL's COPY. A row holds the record's
              top-level fields as text (its notes, projects and owner as JSON text), so it carries
              every byte the API sent, once, and none of the mirror's other tables, indexes or
              search documents.

Each runs in a child process of bench/pull.py, timed inside it; the bare write's pages are read
first and its clock covers only CREATE TABLE, the rows and the COMMIT.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Iterator

TABLE = "bare_customers"


def iter_bare_pages(url: str, key: str) -> Iterator[list]:
    """Every page of customers, parsed, fetched one after the other with no retry and no pool
    beyond httpx's own keep-alive."""
    import httpx

    with httpx.Client(timeout=60) as client:
        page = 1
        while True:
            body = json.loads(client.get(url, params={"action": "getallcustomers", "page": page,
                                                      "api_key": key}).content)
            yield body
            if len(body) < 50:
                break
            page += 1


def bare_rows(url: str, key: str) -> tuple[list[str], list[tuple]]:
    """(columns, rows): every customer the API lists, a row each, fields as text."""
    records = [record for page in iter_bare_pages(url, key) for record in page]
    columns = list(dict.fromkeys(name for record in records[:50] for name in record))
    rows = [tuple(_text(record.get(name)) for name in columns) for record in records]
    return columns, rows


def _text(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def time_sqlite_executemany(path: str, columns: list[str], rows: list[tuple]) -> float:
    """Seconds to write `rows` into a new unindexed table of the SQLite file at `path`, with the
    product's own durability (WAL, synchronous=NORMAL)."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        started = time.perf_counter()
        db.execute("BEGIN")
        db.execute(f"CREATE TABLE {TABLE} ({', '.join(f'{name} TEXT' for name in columns)})")
        db.executemany(f"INSERT INTO {TABLE} VALUES ({', '.join('?' for _ in columns)})", rows)
        db.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        db.close()


def time_postgres_executemany(url: str, columns: list[str], rows: list[tuple]) -> float:
    """Seconds to write `rows` with one INSERT per row (psycopg's executemany, pipelined), as the
    store writes today, into a new unindexed table of the schema `url` reaches."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        started = time.perf_counter()
        with db.transaction():
            db.execute(f"CREATE TABLE {TABLE}_executemany ({', '.join(f'{name} text' for name in columns)})")
            db.cursor().executemany(
                f"INSERT INTO {TABLE}_executemany VALUES ({', '.join('%s' for _ in columns)})", rows)
        return time.perf_counter() - started


def time_postgres_copy(url: str, columns: list[str], rows: list[tuple]) -> float:
    """Seconds to write `rows` with COPY ... FROM STDIN into a new unindexed table."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        started = time.perf_counter()
        with db.transaction():
            db.execute(f"CREATE TABLE {TABLE}_copy ({', '.join(f'{name} text' for name in columns)})")
            with db.cursor().copy(f"COPY {TABLE}_copy FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return time.perf_counter() - started
