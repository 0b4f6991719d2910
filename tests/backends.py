"""The mirror database a conformance test runs against: a SQLite file or a PostgreSQL schema.

The same tests run on both backends (the `backend` and `mirror_db` fixtures in conftest.py). A
test gives the product `mirror_db.url` (Store.open, `--db`, SPMIRROR_DB), reads what the product
wrote with `mirror_db.query` (a separate connection of the test process: sqlite3 or psycopg,
never the product's Store), and edits the mirror the way a person does with `mirror_db.edit`:
another process, each statement its own transaction, so the daemon can only tell a person's
writes from its own through what any client of that database sees.

SQL a test passes should be portable (`ON CONFLICT` rather than `INSERT OR ...`, `?` marks in
`query`); where the two dialects differ the test picks by `mirror_db.kind`, or uses a helper here
(`count_writes`, `newest_run_first`).

PostgreSQL: each test (or each module-scoped fixture) gets a schema of its own, named
`spmt_<pid>_<n>`, reached through `?options=-csearch_path%3D<schema>` in its URL, and dropped
after. The server is SPMIRROR_TEST_POSTGRES_URL, else postgresql://postgres@127.0.0.1:5432/test;
when it cannot be reached the PostgreSQL half of the suite is skipped with the reason, and
SPMIRROR_TEST_REQUIRE_POSTGRES=1 (set by .ci/run) turns that skip into a failure.
"""

from __future__ import annotations

import functools
import itertools
import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

KINDS = ("sqlite", "postgres")
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
POSTGRES_URL_VARIABLE = "SPMIRROR_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_VARIABLE = "SPMIRROR_TEST_REQUIRE_POSTGRES"
# How every skip of a PostgreSQL test for want of a server begins.
UNREACHABLE = "PostgreSQL not reachable at"
SCHEMA_PREFIX = "spmt_"

SQLITE3_SHELL = shutil.which("sqlite3")
PSQL_SHELL = shutil.which("psql")

# A person's edit: each statement in its own autocommit transaction, as typed into a shell.
_SQLITE_EDIT = r"""
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
try:
    for statement in sys.argv[2:]:
        con.execute(statement)
finally:
    con.close()
"""

_POSTGRES_EDIT = r"""
import psycopg, sys
with psycopg.connect(sys.argv[1], autocommit=True, connect_timeout=10) as con:
    for statement in sys.argv[2:]:
        con.execute(statement)
"""


def sql_text(value: str) -> str:
    """`value` as an SQL string literal (the same on both: PostgreSQL's standard_conforming_strings)."""
    return "'" + value.replace("'", "''") + "'"


def redact(url: str) -> str:
    """`url` without its password, for skip reasons and summaries."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, host = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}"))


class MirrorDatabase:
    """One mirror database under test. Subclasses: SqliteDatabase, PostgresDatabase."""

    kind: str
    url: str
    # The driver's base exception, for a test polling a database whose schema is still being made.
    Error: type[Exception]
    # ORDER BY for sync_runs, the newest first, from what the database itself records (SQLite's
    # rowid; PostgreSQL's xmin, the transaction that last wrote the row), never from the product's
    # own ordering, so a test can catch that being wrong. Runs never overlap (the sync lock), so the
    # last written is the last started.
    newest_run_first: str
    oldest_run_first: str

    def query(self, sql: str, params: tuple | list = ()) -> list[dict]:
        raise NotImplementedError

    def edit(self, *statements: str, timeout: float = 60) -> None:
        """Run each statement, one transaction each, in a separate process (a person's edit)."""
        raise NotImplementedError

    def edit_with_shell(self, *statements: str, timeout: float = 60) -> None:
        """The same statements through the database's command-line shell (sqlite3, psql)."""
        raise NotImplementedError

    def exists(self) -> bool:
        """Whether the mirror has been created: the file (SQLite), its tables (PostgreSQL)."""
        raise NotImplementedError

    def table_names(self) -> set[str]:
        """Tables and views the mirror has."""
        raise NotImplementedError

    def column_types(self, table: str) -> dict[str, str]:
        """Each column of `table` with its declared type, lower case."""
        raise NotImplementedError

    def count_writes(self, *tables: str) -> None:
        """Install (from another process) triggers counting every row INSERT, UPDATE and DELETE on each table."""
        raise NotImplementedError

    def search(self, words: str, column: str | None = None) -> set[int]:
        """customers.id of the rows the full-text index finds for `words` (SQLite: FTS5's customers_fts;
        PostgreSQL: the tsvector in customers_fts), optionally only where `column` holds them."""
        raise NotImplementedError

    def search_index_matches_customers(self) -> bool:
        """The search index has an entry for every customers row and none for a row that is gone."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    # -- the same on both ------------------------------------------------------------------

    sql_text = staticmethod(sql_text)

    def scalar(self, sql: str, params: tuple | list = ()):
        """The first column of the first row of `sql`, or None when there is no row."""
        rows = self.query(sql, params)
        return next(iter(rows[0].values())) if rows else None

    def row_of(self, remote_id: int) -> dict | None:
        """The customers row of one customer, or None."""
        rows = self.query("SELECT * FROM customers WHERE pkcustomerid = ?", (remote_id,))
        return rows[0] if rows else None

    def writes(self, table: str) -> int:
        """How many row writes the counting triggers saw on `table`."""
        return self.scalar("SELECT n FROM writes WHERE tbl = ?", (table,))

    def has_table(self, name: str) -> bool:
        try:
            return name in self.table_names()
        except self.Error:
            return False

    def last_run(self) -> dict:
        return self.query(f"SELECT * FROM sync_runs ORDER BY {self.newest_run_first} LIMIT 1")[0]

    def __repr__(self) -> str:
        return f"<{self.kind} mirror {redact(self.url)}>"


class SqliteDatabase(MirrorDatabase):
    kind = "sqlite"
    Error = sqlite3.Error
    newest_run_first = "rowid DESC"
    oldest_run_first = "rowid"

    def __init__(self, path: Path):
        self.path = Path(path)
        self.url = str(self.path)

    def query(self, sql: str, params: tuple | list = ()) -> list[dict]:
        con = sqlite3.connect(self.path, timeout=30)
        con.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in con.execute(sql, tuple(params))]
        finally:
            con.close()

    def edit(self, *statements: str, timeout: float = 60) -> None:
        _run_edit([sys.executable, "-c", _SQLITE_EDIT, self.url, *statements], timeout)

    def edit_with_shell(self, *statements: str, timeout: float = 60) -> None:
        assert SQLITE3_SHELL, "the sqlite3 shell is not installed"
        script = ".timeout 30000\n" + "\n".join(s.rstrip(";") + ";" for s in statements) + "\n"
        result = subprocess.run([SQLITE3_SHELL, "-bail", self.url], input=script, timeout=timeout,
                                capture_output=True, text=True)
        assert result.returncode == 0 and not result.stderr, result.stderr

    def exists(self) -> bool:
        return self.path.exists()

    def table_names(self) -> set[str]:
        return {r["name"] for r in self.query("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}

    def column_types(self, table: str) -> dict[str, str]:
        return {r["name"]: r["type"].lower() for r in self.query(f"PRAGMA table_info({table})")}

    def search(self, words: str, column: str | None = None) -> set[int]:
        phrase = '"' + words.replace('"', '""') + '"'
        expression = f"{column}:{phrase}" if column else phrase
        return {r["id"] for r in self.query("SELECT rowid AS id FROM customers_fts WHERE customers_fts MATCH ?",
                                            (expression,))}

    def search_index_matches_customers(self) -> bool:
        try:
            self.edit("INSERT INTO customers_fts(customers_fts) VALUES ('integrity-check')")
        except subprocess.CalledProcessError:
            return False
        return True

    def count_writes(self, *tables: str) -> None:
        statements = ["CREATE TABLE IF NOT EXISTS writes (tbl TEXT PRIMARY KEY, n INTEGER NOT NULL)"]
        for table in tables:
            statements.append(f"INSERT INTO writes VALUES ('{table}', 0) ON CONFLICT (tbl) DO UPDATE SET n = 0")
            for op in ("INSERT", "UPDATE", "DELETE"):
                statements.append(f"CREATE TRIGGER IF NOT EXISTS count_{table}_{op.lower()} AFTER {op} ON {table} "
                                  f"BEGIN UPDATE writes SET n = n + 1 WHERE tbl = '{table}'; END")
        self.edit(*statements)


class PostgresDatabase(MirrorDatabase):
    kind = "postgres"
    # The insertion or last update's transaction id: sync_runs rows are written in run order.
    newest_run_first = "xmin::text::bigint DESC"
    oldest_run_first = "xmin::text::bigint"

    def __init__(self, url: str, schema: str):
        import psycopg

        self.Error = psycopg.Error
        self.schema = schema
        self.url = url
        self._connection = None

    def _connect(self):
        import psycopg

        if self._connection is None or self._connection.closed:
            # Autocommit: no read holds a snapshot or a lock between queries. No prepared
            # statements: a migration may change what `SELECT *` returns between two reads.
            self._connection = psycopg.connect(self.url, autocommit=True, connect_timeout=10,
                                               prepare_threshold=None, application_name="spmirror-test-reader")
        return self._connection

    def query(self, sql: str, params: tuple | list = ()) -> list[dict]:
        from psycopg.rows import dict_row

        params = tuple(params)
        text = _percent_marks(sql) if params else sql
        with self._connect().cursor(row_factory=dict_row) as cursor:
            cursor.execute(text, params or None)
            return list(cursor.fetchall()) if cursor.description else []

    def edit(self, *statements: str, timeout: float = 60) -> None:
        _run_edit([sys.executable, "-c", _POSTGRES_EDIT, self.url, *statements], timeout)

    def edit_with_shell(self, *statements: str, timeout: float = 60) -> None:
        assert PSQL_SHELL, "the psql shell is not installed"
        script = "\n".join(s.rstrip(";") + ";" for s in statements) + "\n"
        result = subprocess.run([PSQL_SHELL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.url], input=script,
                                timeout=timeout, capture_output=True, text=True)
        assert result.returncode == 0 and not result.stderr, result.stderr

    def exists(self) -> bool:
        return self.scalar("SELECT to_regclass('customers') IS NOT NULL") is True

    def table_names(self) -> set[str]:
        return {r["table_name"] for r in self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")}

    def column_types(self, table: str) -> dict[str, str]:
        return {r["column_name"]: r["data_type"].lower() for r in self.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ?", (table,))}

    def search(self, words: str, column: str | None = None) -> set[int]:
        # A tsvector has no columns: `column` narrows the index's answer to rows whose column holds the words.
        narrowed = (f" AND to_tsvector('simple', coalesce(c.{column}, '')) @@ plainto_tsquery('simple', ?)"
                    if column else "")
        return {r["id"] for r in self.query(
            "SELECT c.id FROM customers_fts f JOIN customers c ON c.id = f.id "
            f"WHERE f.document @@ plainto_tsquery('simple', ?){narrowed}", (words, words) if column else (words,))}

    def search_index_matches_customers(self) -> bool:
        return self.scalar("SELECT count(*) FROM customers c FULL JOIN customers_fts f ON f.id = c.id "
                           "WHERE c.id IS NULL OR f.id IS NULL") == 0

    def count_writes(self, *tables: str) -> None:
        statements = [
            "CREATE TABLE IF NOT EXISTS writes (tbl TEXT PRIMARY KEY, n INTEGER NOT NULL)",
            # The trigger's table name, not a per-table function: one function serves every table.
            "CREATE OR REPLACE FUNCTION count_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "UPDATE writes SET n = n + 1 WHERE tbl = TG_TABLE_NAME; RETURN NULL; END $$",
        ]
        for table in tables:
            statements.append(f"INSERT INTO writes VALUES ('{table}', 0) ON CONFLICT (tbl) DO UPDATE SET n = 0")
            statements.append(f"CREATE OR REPLACE TRIGGER count_{table}_writes AFTER INSERT OR UPDATE OR DELETE "
                              f"ON {table} FOR EACH ROW EXECUTE FUNCTION count_write()")
        self.edit(*statements)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def as_mirror_database(db: MirrorDatabase | Path | str) -> MirrorDatabase:
    """`db` itself, or the SQLite file at that path (for SQLite-only tests that pass paths around)."""
    return db if isinstance(db, MirrorDatabase) else SqliteDatabase(Path(db))


def _run_edit(command: list[str], timeout: float) -> None:
    """Run the editing process; a refused edit raises CalledProcessError (tests expect some refusals),
    with the database's error shown beside it."""
    done = subprocess.run(command, timeout=timeout, capture_output=True, text=True)
    if done.returncode != 0:
        error = subprocess.CalledProcessError(done.returncode, command, done.stdout, done.stderr)
        error.add_note(done.stderr[-3000:])
        raise error


def _percent_marks(sql: str) -> str:
    """`?` marks (outside quotes) as psycopg's `%s`, and every literal `%` doubled."""
    out, quote = [], None
    for ch in sql:
        if quote:
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        out.append("%%" if ch == "%" else ch)
    return "".join(out)


# -- the PostgreSQL server, found once per session ----------------------------------------------


@dataclass(frozen=True)
class PostgresServer:
    url: str  # the server's database URL, without a schema
    error: str | None  # why it cannot be used, or None

    @property
    def reason(self) -> str:
        return f"{UNREACHABLE} {redact(self.url)}: {self.error}; set {POSTGRES_URL_VARIABLE}"


@functools.cache
def postgres_server() -> PostgresServer:
    """The server the PostgreSQL tests use, tried once (a short connect timeout)."""
    url = os.environ.get(POSTGRES_URL_VARIABLE) or DEFAULT_POSTGRES_URL
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3, autocommit=True) as con:
            con.execute("SELECT 1")
            _drop_abandoned_schemas(con)
    except Exception as exc:  # psycopg missing, refused, bad password, no such database...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return PostgresServer(url, first)
    return PostgresServer(url, None)


def postgres_required() -> bool:
    return os.environ.get(REQUIRE_POSTGRES_VARIABLE, "") not in ("", "0")


def _drop_abandoned_schemas(con) -> None:
    """Schemas left by earlier sessions on this host whose process is gone (killed mid-run)."""
    for (name,) in con.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                               (SCHEMA_PREFIX + "%",)).fetchall():
        pid = name[len(SCHEMA_PREFIX):].split("_", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            try:
                con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            except Exception:  # another session is dropping it too, or it is still locked
                pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_schema_numbers = itertools.count(1)


def _with_schema(url: str, schema: str) -> str:
    """`url` with `options=-csearch_path=<schema>` added to its query."""
    parts = urlsplit(url)
    option = f"options=-csearch_path%3D{schema}"
    return urlunsplit(parts._replace(query=f"{parts.query}&{option}" if parts.query else option))


@contextmanager
def open_postgres_schema(server: PostgresServer) -> Iterator[PostgresDatabase]:
    """A fresh, empty schema on `server` for one test or fixture; dropped (with everything in it) after."""
    import psycopg

    schema = f"{SCHEMA_PREFIX}{os.getpid()}_{next(_schema_numbers)}"
    with psycopg.connect(server.url, autocommit=True, connect_timeout=10) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    database = PostgresDatabase(_with_schema(server.url, schema), schema)
    try:
        yield database
    finally:
        database.close()
        with psycopg.connect(server.url, autocommit=True, connect_timeout=10) as admin:
            # A session a test left behind (a daemon not yet gone) must not hang the suite.
            admin.execute("SET lock_timeout = '10s'")
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def open_mirror_database(kind: str, directory: Path, name: str = "mirror.db") -> Iterator[MirrorDatabase]:
    """A fresh mirror database of `kind`: a file path in `directory` (not created yet), or a new schema."""
    if kind == "sqlite":
        yield SqliteDatabase(Path(directory) / name)
        return
    assert kind == "postgres", kind
    server = postgres_server()
    assert server.error is None, server.reason
    with open_postgres_schema(server) as database:
        yield database
