"""`spmirror datasette`: how to browse the mirror with Datasette, with the metadata shipped here.

Datasette names a database after its file (mirror.db is "mirror") and looks its metadata up by
that name, so the shipped file (mirror/datasette/metadata.json, written for "mirror") is used as
it is for a file called mirror.db, and given the file's own name otherwise (`--print-metadata`).
Datasette itself is not a dependency: it is one program among the many that read the file.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from mirror.config import Settings
from mirror.exit_codes import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE
from mirror.store import Store, StoreBusy, StoreError

SHIPPED_NAME = "mirror"  # the database name the shipped metadata is written for


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "datasette", parents=[common], help="print the command that browses the mirror with Datasette",
        description="Print the `datasette` command line that serves the mirror with its metadata: titles, "
        "descriptions, the search box on customers, links from notes, projects and history to the customer, "
        "and the daemon's own tables hidden. Opens the file first, so an older one is upgraded (the search "
        "box needs schema 3). Datasette only reads the file: edits still go through SQL.",
    )
    parser.add_argument("--print-metadata", action="store_true",
                        help="print the metadata JSON for this file's database name instead")
    parser.set_defaults(handler=run, needs_api_key=False)


def metadata_path() -> Path:
    """The shipped metadata file (package data)."""
    return Path(str(resources.files("mirror") / "datasette" / "metadata.json"))


def metadata_for(database_name: str) -> dict[str, Any]:
    """The shipped metadata with its database entry under `database_name` (a file's stem)."""
    metadata = json.loads(metadata_path().read_text(encoding="utf-8"))
    databases = metadata["databases"]
    databases[database_name] = databases.pop(SHIPPED_NAME)
    return metadata


def datasette_program() -> str | None:
    """How to run datasette: its name when it is on PATH, else its path beside this Python (the
    same virtualenv, not activated), else None."""
    if shutil.which("datasette"):
        return "datasette"
    beside = Path(sys.executable).parent / "datasette"
    return str(beside) if beside.exists() else None


def command_lines(database: Path, options: list[str] = (), program: str = "datasette") -> list[str]:
    """The shell lines that serve `database` with the right metadata: one for a file named
    mirror.db; otherwise first the line that writes its metadata (into the current directory),
    with the same `options` (--config, --db) this command was given."""
    database = database.resolve()
    if database.stem == SHIPPED_NAME:
        return [shlex.join([program, str(database), "--metadata", str(metadata_path())])]
    written = f"{database.stem}-datasette.json"
    again = ["spmirror", *options, "datasette", "--print-metadata"]
    return [f"{shlex.join(again)} > {shlex.quote(written)}",
            shlex.join([program, str(database), "--metadata", written])]


def run(args: argparse.Namespace, settings: Settings) -> int:
    if settings.database.is_postgres:
        print(f"Error: Datasette browses SQLite files, and this mirror is in PostgreSQL ({settings.database})\n"
              f"Try: a PostgreSQL client (psql, pgAdmin, Metabase) on the same database, or "
              f"spmirror --db mirror.db datasette for a SQLite mirror", file=sys.stderr)
        return EXIT_USAGE
    path = settings.database_path
    if not path.exists():
        print(f"Error: no mirror at {path}\nTry: spmirror sync (or set SPMIRROR_DB / [database] path)", file=sys.stderr)
        return EXIT_USAGE
    try:
        Store.open(path).close()  # upgrades an older file in place, as every command does
    except StoreBusy as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except StoreError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.print_metadata:
        print(json.dumps(metadata_for(path.resolve().stem), indent=2, ensure_ascii=False))
        return EXIT_OK
    options = [item for name in ("config", "db") if getattr(args, name, None)
               for item in (f"--{name}", str(getattr(args, name)))]
    program = datasette_program()
    for line in command_lines(path, options, program or "datasette"):
        print(line)
    if program is None:
        print("Note: datasette is not installed here: pipx install datasette (or pip install datasette)",
              file=sys.stderr)
    return EXIT_OK
