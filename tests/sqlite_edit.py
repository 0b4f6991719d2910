"""Editing the mirror the way people do: from another process, through Python's sqlite3 or the sqlite3 shell.

The daemon must tell a person's writes from its own only through what any SQLite client sees
(triggers reading sync_control), so test edits never go through the test process's own
connections or the mirror's Store.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

# Each statement runs in its own autocommit transaction, as a person typing in a shell would.
_PYTHON_EDIT = r"""
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
try:
    for statement in sys.argv[2:]:
        con.execute(statement)
finally:
    con.close()
"""

SQLITE3_SHELL = shutil.which("sqlite3")


def edit(db: Path | str, *statements: str, timeout: float = 60) -> None:
    """Run each SQL statement, one transaction each, in a separate Python process using sqlite3."""
    subprocess.run([sys.executable, "-c", _PYTHON_EDIT, str(db), *statements], check=True, timeout=timeout,
                   capture_output=True, text=True)


def edit_with_shell(db: Path | str, *statements: str, timeout: float = 60) -> None:
    """Run the SQL statements with the `sqlite3` command-line shell (callers skip when it is missing)."""
    assert SQLITE3_SHELL, "the sqlite3 shell is not installed"
    script = ".timeout 30000\n" + "\n".join(s.rstrip(";") + ";" for s in statements) + "\n"
    result = subprocess.run([SQLITE3_SHELL, "-bail", str(db)], input=script, timeout=timeout, capture_output=True,
                            text=True)
    assert result.returncode == 0 and not result.stderr, result.stderr


def sql_text(value: str) -> str:
    """`value` as an SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


# -- reading the mirror (reads are not edits: these may run in the test process) ----------


def query(db: Path | str, sql: str, params: tuple = ()) -> list[dict]:
    """Rows of `sql` from the mirror file, through a separate sqlite3 connection of the test process."""
    con = sqlite3.connect(db, timeout=30)
    con.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in con.execute(sql, params)]
    finally:
        con.close()


def scalar(db: Path | str, sql: str, params: tuple = ()):
    """The first column of the first row of `sql`, or None when there is no row."""
    rows = query(db, sql, params)
    return next(iter(rows[0].values())) if rows else None


def row_of(db: Path | str, remote_id: int) -> dict | None:
    """The customers row of one customer, or None."""
    rows = query(db, "SELECT * FROM customers WHERE pkcustomerid = ?", (remote_id,))
    return rows[0] if rows else None


def count_writes(db: Path | str, *tables: str) -> None:
    """Install triggers (from another process) that count every INSERT, UPDATE and DELETE on each table."""
    statements = ["CREATE TABLE IF NOT EXISTS writes (tbl TEXT PRIMARY KEY, n INTEGER NOT NULL)"]
    for table in tables:
        statements.append(f"INSERT OR REPLACE INTO writes VALUES ('{table}', 0)")
        for op in ("INSERT", "UPDATE", "DELETE"):
            statements.append(f"CREATE TRIGGER IF NOT EXISTS count_{table}_{op.lower()} AFTER {op} ON {table} "
                              f"BEGIN UPDATE writes SET n = n + 1 WHERE tbl = '{table}'; END")
    edit(db, *statements)


def writes(db: Path | str, table: str) -> int:
    """How many row writes the counting triggers saw on `table`."""
    return scalar(db, "SELECT n FROM writes WHERE tbl = ?", (table,))
