"""The PostgreSQL backend's session: psycopg 3 (its URL read by SQLAlchemy's dialect), with the store's SQL.

The store's shared modules write SQL once, with `?` placeholders and the few attributes a
connection carries (`distinct`, `same`, `newest_run_first`, `group_text`, `schema_version`, `stream`); PgConnection
speaks that to psycopg (`%s` placeholders). SQLAlchemy's psycopg dialect reads the URL into
psycopg's connect arguments and compiles the models' DDL; the store writes through the DBAPI
connection, as it does on SQLite, because executemany there is several times faster than Core.

Write transactions: `LOCK TABLE customers IN EXCLUSIVE MODE` is SQLite's BEGIN IMMEDIATE here:
people keep reading, and their writes to customers wait until the daemon commits, so nobody
changes a row between what the daemon read and what it writes. `SET LOCAL spmirror.writing` marks
the daemon's own writes for the capture triggers, for that transaction only.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Iterable, Iterator
from urllib.parse import urlsplit

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from mirror.store.errors import StoreBusy, StoreError, StoreUnreachable
from mirror.store.location import Location, redact_url

# Statements that write a column keeping each value's own type (models.AnyValue: history, values
# sent). PostgreSQL has no typeless column; these are jsonb, so 2 stays the number 2 and
# '0412 555 019' the string. The values are wrapped here, where the dialect is known.
_TYPED_COLUMNS = {"customer_changes": ("old_value", "new_value"), "unconfirmed_writes": ("sent_value",)}
_INSERT = re.compile(r"^\s*INSERT\s+INTO\s+(\w+)\s*\(([^)]*)\)\s*VALUES\s*\(([^()]|\([^()]*\))*\)\s*(ON\s|$)",
                     re.IGNORECASE | re.DOTALL)


@lru_cache(maxsize=512)
def _translated(sql: str) -> tuple[str, tuple[int, ...]]:
    """`sql` with `?` placeholders as psycopg's `%s` (and literal `%` doubled), outside quoted text,
    comments and dollar-quoted bodies; and the positions of the parameters that bind to a
    typed-value column (an INSERT into one of _TYPED_COLUMNS' tables it cannot read is refused,
    never sent with its values unwrapped)."""
    out: list[str] = []
    at, end = 0, len(sql)
    while at < end:
        char = sql[at]
        if char in ("'", '"'):  # '' and "" inside are two quotes in a row: still inside
            close = sql.find(char, at + 1)
            while close != -1 and sql.startswith(char, close + 1):
                close = sql.find(char, close + 2)
            stop = end if close == -1 else close + 1
        elif sql.startswith("--", at):
            stop = end if sql.find("\n", at) == -1 else sql.find("\n", at) + 1
        elif sql.startswith("/*", at):
            stop = end if sql.find("*/", at) == -1 else sql.find("*/", at) + 2
        elif char == "$" and (tag := re.match(r"\$\w*\$", sql[at:])):
            close = sql.find(tag.group(0), at + len(tag.group(0)))
            stop = end if close == -1 else close + len(tag.group(0))
        else:
            out.append("%s" if char == "?" else "%%" if char == "%" else char)
            at += 1
            continue
        out.append(sql[at:stop].replace("%", "%%"))
        at = stop
    return "".join(out), _typed_positions(sql)


def _typed_positions(sql: str) -> tuple[int, ...]:
    match = _INSERT.match(sql)
    table = match.group(1).lower() if match else None
    if table in _TYPED_COLUMNS:
        columns = [name.strip().lower() for name in match.group(2).split(",")]
        return tuple(i for i, name in enumerate(columns) if name in _TYPED_COLUMNS[table])
    mentioned = re.match(r"^\s*INSERT\s+INTO\s+\"?(\w+)", sql, re.IGNORECASE)
    if mentioned and mentioned.group(1).lower() in _TYPED_COLUMNS:
        raise ValueError(f"an INSERT into {mentioned.group(1)} must name its columns and bind one row of VALUES "
                         f"(?, ...): its typed values are wrapped by position")
    return ()


def _typed_params(params: Iterable[Any], typed: tuple[int, ...]) -> tuple:
    values = tuple(params)
    if not typed:
        return values
    return tuple(Jsonb(v) if i in typed and v is not None else v for i, v in enumerate(values))


def error_line(exc: BaseException) -> str:
    """The first line of a driver error, any URL in it without its password."""
    text = str(exc).strip()
    return redact_url(text.splitlines()[0]) if text else type(exc).__name__


def busy_error(location: Location, seconds: float) -> StoreBusy:
    return StoreBusy(str(location), seconds, message=(
        f"{location}: the customers table stayed locked by another session for {seconds:g}s: a transaction left "
        f"open in psql, a GUI or a script; find it in pg_stat_activity (state 'idle in transaction'). Nothing "
        f"was lost; the next sync carries on"))


class PgConnection:
    """A psycopg connection the store's shared SQL runs on unchanged (see the module docstring).

    Autocommit: transactions are the store's to begin, as on SQLite. Not shared between threads
    (see Store): each of the daemon's jobs opens its own.
    """

    distinct = "IS DISTINCT FROM"
    same = "IS NOT DISTINCT FROM"
    # sync_runs has no rowid here, and started_at has whole seconds. Runs never overlap (the
    # sync lock), so within one second the newest is the one still open (finished_at NULL), else
    # the one finished last, else the one whose row a transaction wrote last (xmin).
    newest_run_first = "started_at DESC, finished_at DESC NULLS FIRST, xmin::text::bigint DESC"

    def __init__(self, raw: psycopg.Connection, location: Location):
        self.raw = raw
        self.location = location

    @staticmethod
    def group_text(expression: str, separator: str) -> str:
        return f"string_agg({expression}, '{separator}')"

    def schema_version(self) -> int:
        row = self.execute("SELECT to_regclass('spmirror_schema') IS NOT NULL").fetchone()
        if not row[0]:
            return 0
        row = self.execute("SELECT version FROM spmirror_schema WHERE id = 1").fetchone()
        return row[0] if row else 0

    def execute(self, sql: str, params: Iterable[Any] = ()) -> psycopg.Cursor:
        text, typed = _translated(sql)
        cursor = self.raw.cursor()
        cursor.execute(text, _typed_params(params, typed))
        return cursor

    def stream(self, sql: str, params: Iterable[Any] = ()) -> Iterator[tuple]:
        """Rows of a large read as the server sends them, not all held in memory first."""
        text, _typed = _translated(sql)
        return self.raw.cursor().stream(text, tuple(params))

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> psycopg.Cursor:
        text, typed = _translated(sql)
        cursor = self.raw.cursor()
        batch = [_typed_params(row, typed) for row in rows]
        if batch:
            cursor.executemany(text, batch)
        return cursor

    def close(self) -> None:
        self.raw.close()


# What the server says when the URL itself is wrong (no such database or role, a password it
# refuses): a configuration to fix, not a server to wait for.
_REFUSED_URL = ("does not exist", "authentication failed", "no pg_hba.conf entry", "permission denied", "invalid")


def connect(location: Location, *, application_name: str = "spmirror", make_schema: bool = True) -> psycopg.Connection:
    """A raw psycopg connection to `location`, made by SQLAlchemy's psycopg dialect from the URL
    (so every libpq parameter a URL may carry works: host, port, sslmode, options=-csearch_path...).
    Raises StoreUnreachable, with the URL's password masked, if the server cannot be reached, and
    StoreError if it refuses the URL's database, role or password. With `make_schema`, the schema
    the URL's search_path names is created if it does not exist yet (see `_ensure_schema`)."""
    from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
    from sqlalchemy.engine import make_url

    assert location.url is not None
    if urlsplit(location.url).netloc.count("@") > 1:
        # libpq would read the rest of the password as the host, and say so in its error.
        raise StoreError(f"{redact_url(location.url)}: the URL holds more than one @ before the host; write an @ "
                         f"in the user or password as %40")
    try:
        url = make_url(location.url).set(drivername="postgresql+psycopg")
    except Exception as exc:  # sqlalchemy.exc.ArgumentError: not a URL it can read
        raise StoreError(f"{redact_url(location.url)}: not a PostgreSQL URL SQLAlchemy can read ({exc}); "
                         f"write it as postgresql://user@host:5432/database") from None
    if "application_name" not in url.query:
        url = url.update_query_dict({"application_name": application_name})
    # The dialect turns the URL into psycopg's connect arguments; the connection is ours alone
    # (no pool: a daemon keeps one for its life, a command for its run).
    arguments, keywords = psycopg_dialect().create_connect_args(url)
    try:
        dbapi = psycopg.connect(*arguments, **keywords)
    except psycopg.Error as exc:
        reason = error_line(exc)
        if any(words in reason for words in _REFUSED_URL):
            raise StoreError(f"{redact_url(location.url)}: PostgreSQL refused the connection ({reason}); check the "
                             f"database, role and password the URL names") from None
        raise StoreUnreachable(f"{redact_url(location.url)}: cannot connect to PostgreSQL ({reason})") from None
    dbapi.autocommit = True
    if make_schema:
        _ensure_schema(dbapi, location)
    return dbapi


def _ensure_schema(dbapi: psycopg.Connection, location: Location) -> None:
    """Create the schema `options=-csearch_path=NAME` names, the first time anything connects.

    Every session of a mirror (the store, the daemon's locks and LISTEN) must resolve the same
    schema: the advisory lock keys and NOTIFY payloads are named after it, so a daemon that
    connected before the schema existed would otherwise hold another key than one after.
    """
    if dbapi.execute("SELECT current_schema()").fetchone()[0] is not None:
        return
    names = [n.strip() for n in dbapi.execute("SHOW search_path").fetchone()[0].split(",")]
    first = next((n for n in names if n and n != '"$user"'), None)
    # As PostgreSQL reads the name: unquoted folds to lower case ("Mirror" stays Mirror).
    wanted = dbapi.execute("SELECT (parse_ident(%s))[1]", (first,)).fetchone()[0] if first else None
    if wanted is None:
        raise StoreError(f"{redact_url(location.url or '')}: the search_path names no schema; add "
                         f"options=-csearch_path%3DNAME to the URL")
    try:
        dbapi.execute(f'CREATE SCHEMA IF NOT EXISTS "{wanted.replace(chr(34), chr(34) * 2)}"')
    except psycopg.Error as exc:
        raise StoreError(f"{redact_url(location.url or '')}: schema {wanted} does not exist and this role cannot "
                         f"create it ({error_line(exc)}); CREATE SCHEMA {wanted} AUTHORIZATION <the daemon's role> "
                         f"as an owner of the database") from None


class PostgresBackend:
    """What differs for a PostgreSQL database; the same interface as SqliteBackend."""

    name = "postgres"

    def __init__(self, location: Location, busy_timeout: float):
        self.location = location
        self.busy_timeout = busy_timeout

    # -- connection ----------------------------------------------------------------------

    def connect(self) -> PgConnection:
        return PgConnection(connect(self.location), self.location)

    def unusable(self, exc: BaseException) -> StoreError | None:
        if isinstance(exc, psycopg.Error):
            return StoreError(f"{self.location}: not a usable spmirror database ({error_line(exc)})")
        return None

    # -- schema --------------------------------------------------------------------------

    def schema_version(self, db: PgConnection) -> int:
        return db.schema_version()

    def prepare_schema(self, store) -> None:
        from mirror.store.postgres.schema import prepare

        prepare(store)

    @staticmethod
    def ddl_dialect():
        from sqlalchemy.dialects import postgresql

        return postgresql.dialect()

    # -- write transactions --------------------------------------------------------------

    def begin(self, db: PgConnection, mark_daemon: bool) -> None:
        if db.raw.info.transaction_status != TransactionStatus.IDLE:
            # As SQLite refuses it: a BEGIN inside would only warn, and the inner COMMIT would
            # commit the outer transaction's work before it was done.
            raise StoreError("a write transaction is already open on this connection")
        try:
            db.execute("BEGIN")
            db.execute(f"SET LOCAL lock_timeout = '{int(self.busy_timeout * 1000)}ms'")
            if mark_daemon:
                try:
                    db.execute("LOCK TABLE customers IN EXCLUSIVE MODE")
                except psycopg.errors.LockNotAvailable as exc:
                    raise self.busy() from exc
                db.execute("SET LOCAL spmirror.writing = 'on'")
        except BaseException:
            self.rollback(db)  # never leave the session in an aborted transaction
            raise

    def commit(self, db: PgConnection, mark_daemon: bool) -> None:
        db.execute("COMMIT")

    def rollback(self, db: PgConnection) -> None:
        # Not on a session already lost: its ROLLBACK would fail and hide why it was lost.
        status = db.raw.info.transaction_status
        if not db.raw.closed and status not in (TransactionStatus.IDLE, TransactionStatus.UNKNOWN):
            db.execute("ROLLBACK")

    def busy(self, seconds: float | None = None) -> StoreBusy:
        """What a write that waited `seconds` for another session's lock on customers says."""
        return busy_error(self.location, self.busy_timeout if seconds is None else seconds)

    # -- first import --------------------------------------------------------------------
    # Nothing is deferred: the GIN index and the secondary indexes are kept current row by row
    # (measured in bench/pull.py --db postgresql://...).

    def begin_first_import(self, store) -> None:
        return None

    def first_import_unfinished(self, store) -> bool:
        return False

    def finish_first_import(self, store) -> None:
        return None

    # -- the daemon's side ---------------------------------------------------------------

    def run_lock(self, role: str = "spmirror run"):
        from mirror.store.postgres.advisory_lock import run_lock

        return run_lock(self.location, role)

    def sync_lock(self, role: str):
        from mirror.store.postgres.advisory_lock import sync_lock

        return sync_lock(self.location, role)

    def watch(self, timeout: float = 0.5):
        from mirror.store.postgres.listen import ListenWatch

        return ListenWatch(self.location, timeout)

    def open_for_reading(self) -> Iterator:
        from mirror.store.postgres.reading import open_for_reading

        return open_for_reading(self.location)
