"""Editing a SQLite mirror file the way people do, and reading it, for tests that run on SQLite only.

A thin face over tests/backends.py's SqliteDatabase (the conformance suite's SQLite side), kept
for the tests that take a file path: edits run in another process (Python's sqlite3, or the
sqlite3 shell), never through the test process's own connections or the mirror's Store, so the
daemon must tell a person's writes from its own only through what any SQLite client sees.
"""

from __future__ import annotations

from pathlib import Path

from backends import SQLITE3_SHELL, SqliteDatabase, sql_text  # noqa: F401  (importable from here)


def edit(db: Path | str, *statements: str, timeout: float = 60) -> None:
    """Run each SQL statement, one transaction each, in a separate Python process using sqlite3."""
    SqliteDatabase(db).edit(*statements, timeout=timeout)


def edit_with_shell(db: Path | str, *statements: str, timeout: float = 60) -> None:
    """Run the SQL statements with the `sqlite3` command-line shell (callers skip when it is missing)."""
    SqliteDatabase(db).edit_with_shell(*statements, timeout=timeout)


# -- reading the mirror (reads are not edits: these may run in the test process) ----------


def query(db: Path | str, sql: str, params: tuple = ()) -> list[dict]:
    """Rows of `sql` from the mirror file, through a separate sqlite3 connection of the test process."""
    return SqliteDatabase(db).query(sql, params)


def scalar(db: Path | str, sql: str, params: tuple = ()):
    """The first column of the first row of `sql`, or None when there is no row."""
    return SqliteDatabase(db).scalar(sql, params)


def row_of(db: Path | str, remote_id: int) -> dict | None:
    """The customers row of one customer, or None."""
    return SqliteDatabase(db).row_of(remote_id)


def count_writes(db: Path | str, *tables: str) -> None:
    """Install triggers (from another process) that count every INSERT, UPDATE and DELETE on each table."""
    SqliteDatabase(db).count_writes(*tables)


def writes(db: Path | str, table: str) -> int:
    """How many row writes the counting triggers saw on `table`."""
    return SqliteDatabase(db).writes(table)
