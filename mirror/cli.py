"""The `spmirror` command line: parse arguments, load settings, configure logs, dispatch, and
turn what goes wrong into one line that says what to do.

Start-up stays light: the parser is built from the COMMANDS table, and only the module of the
command being run is imported (bringing httpx, SQLAlchemy or APScheduler only if that command
needs them), so `spmirror --help` answers at once.

Exit codes (mirror.exit_codes): 0 ok; 1 an unexpected failure (a bug: `--debug` shows its
traceback); 2 a mistake to fix (usage, settings, a path that cannot hold a database, a file
this user may not write); 4 refused by a safety guard; 75 try again later (the API was
unavailable, the disk is full, another program holds a lock).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from pathlib import Path
from typing import Collection, Sequence

from mirror import __version__
from mirror.arguments import add_global_options, apply_logging, command_in, global_options, logs_json, settings_for
from mirror.errors import (ApiUnavailableError, AuthError, ConfigError, EndpointError, HostNotFoundError,
                           MirrorError, TransientApiError)
from mirror.exit_codes import EXIT_FAILURE, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE
from mirror.store.location import Location

# Each command's module, imported only to run that command (or to build the whole parser), and
# the line `spmirror --help` shows for it: the module's register() gives the same (a test checks).
COMMANDS = {
    "check": ("mirror.commands.check", "read a few answers of the API and say whether a sync would work"),
    "sync": ("mirror.commands.sync", "push local edits and pull every customer now, then exit"),
    "run": ("mirror.commands.run", "run as a service: sync on a schedule, push local edits within seconds"),
    "status": ("mirror.commands.status", "show counts, rows by sync_state and the last sync"),
    "config": ("mirror.commands.config", "show the effective settings and where each came from"),
    "resolve": ("mirror.commands.resolve", "settle a row in conflict or error"),
    "retry": ("mirror.commands.resolve", "requeue rows in error for the next push"),
    "rekey": ("mirror.commands.rekey", "accept a new API key or URL for the same account"),
    "webhooks": ("mirror.commands.webhooks", "subscribe to, unsubscribe from, or list Solar Proof webhooks"),
    "datasette": ("mirror.commands.datasette", "print the command that browses the mirror with Datasette"),
    "demo": ("mirror.commands.demo", "sync a freshly started simulator into a demo database and show what happened"),
    "simulate": ("mirror.commands.simulate", "serve the bundled Solar Proof API simulator"),
}


def build_parser(commands: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command (None: each command's module is imported), or one where only
    `commands` are complete and the others stand in with their help line."""
    parser = argparse.ArgumentParser(
        prog="spmirror",
        description="A local two-way mirror of a Solar Proof account's customers, in SQLite or PostgreSQL. "
        "The options below work before or after the command's name.",
    )
    parser.add_argument("--version", action="version", version=f"spmirror {__version__}")
    add_global_options(parser, suppress=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = global_options()
    wanted = COMMANDS if commands is None else [name for name in COMMANDS if name in commands]
    for module in dict.fromkeys(COMMANDS[name][0] for name in wanted):
        importlib.import_module(module).register(subparsers, common)
    for name, (_module, summary) in COMMANDS.items():
        if name not in subparsers.choices:
            subparsers.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    name = command_in(argv)
    args = build_parser({name} if name in COMMANDS else ()).parse_args(argv)
    settings = None
    try:
        if getattr(args, "needs_settings", True):
            try:
                settings = settings_for(args)
            except ConfigError as exc:
                print(f"Error: {exc}\nTry: spmirror {args.command} --help; spmirror config --example documents "
                      "every setting", file=sys.stderr)
                return EXIT_USAGE
            apply_logging(settings, verbose=getattr(args, "verbose", False))
        return args.handler(args, settings)
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as exc:  # the last line of defence: one line saying what to do, never a traceback
        return failed(args, settings, exc)


def failed(args: argparse.Namespace, settings, exc: Exception) -> int:
    """Say what went wrong on stderr (one `Error:` line and a `Try:` line) and return the exit code.

    The traceback goes to stderr only with --debug, and to the log only when it is JSON lines
    (a service's journal), both scrubbed of secrets.
    """
    from mirror.redaction import redact_text

    secrets = settings.secrets() if settings is not None else ()
    database = settings.database if settings is not None else (Location.parse(args.db) if getattr(args, "db", None)
                                                                else None)
    problem = (mirror_problem(exc, settings, database) if isinstance(exc, MirrorError)
               else system_problem(exc, database))
    code = problem[2] if problem else EXIT_FAILURE
    if settings is not None and logs_json(settings):
        import structlog

        structlog.get_logger().exception("command_failed", command=args.command, exit_code=code)
    if getattr(args, "debug", False):
        import traceback

        print(redact_text("".join(traceback.format_exception(exc)), secrets), file=sys.stderr, end="")
    if problem is None:
        print(f"Error: unexpected {type(exc).__name__}: {redact_text(str(exc), secrets)}\n"
              f"Try: spmirror --debug {args.command} ... shows where it happened (please include it in a bug report)",
              file=sys.stderr)
        return EXIT_FAILURE
    message, hint, code = problem
    print(f"Error: {redact_text(message, secrets)}\nTry: {redact_text(hint, secrets)}", file=sys.stderr)
    return code


def mirror_problem(exc: MirrorError, settings, database: Location | None) -> tuple[str, str, int] | None:
    """(message, hint, exit code) for an error of the mirror's own that a command let through."""
    store = sys.modules.get("mirror.store")  # if it was never imported, no error can come from it
    if store is not None and isinstance(exc, store.StoreError) and not isinstance(exc, store.StoreBusy):
        # "not a usable SQLite database" may be a file this user may not write: say which.
        found = system_problem(exc.__cause__, database) if exc.__cause__ is not None else None
        if found is not None:
            return found
    if isinstance(exc, ConfigError):
        return str(exc), "spmirror config shows every setting and where it came from", EXIT_USAGE
    if isinstance(exc, (EndpointError, HostNotFoundError)):
        url = settings.api_url if settings is not None else "the URL"
        return str(exc), f"check [api] url / SPMIRROR_API_URL (now {_shown_url(url)})", EXIT_USAGE
    if isinstance(exc, AuthError):
        return (f"the API refused the key: {exc}", "check [api] key (SPMIRROR_API_KEY, [api] key_file or "
                "LoadCredential=api_key)", EXIT_USAGE)
    if isinstance(exc, (ApiUnavailableError, TransientApiError)):
        return str(exc), "run it again later; nothing was lost", EXIT_UNAVAILABLE
    if store is not None and isinstance(exc, store.StoreBusy):
        return str(exc), "close what holds the database open for writing, then run it again", EXIT_UNAVAILABLE
    if store is not None and isinstance(exc, store.StoreUnreachable):
        return (str(exc), "check that the PostgreSQL server is up and the URL (--db / SPMIRROR_DB / [database] url) "
                "names it; nothing was lost, run it again then", EXIT_UNAVAILABLE)
    if store is not None and isinstance(exc, store.StoreError) and database is not None and database.is_postgres:
        return str(exc), ("check --db / SPMIRROR_DB / [database] url: a PostgreSQL database and schema "
                          "(options=-csearch_path%3DNAME) this role owns, one per account"), EXIT_USAGE
    if store is not None and isinstance(exc, store.StoreError):
        return str(exc), "point --db (or SPMIRROR_DB) at the mirror's file, or at a new path for a new mirror", \
            EXIT_USAGE
    return None


# Failures that pass by themselves (a full disk is emptied, a lock released): exit 75, not 2.
TRANSIENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN, errno.EBUSY, errno.ENOMEM, errno.EMFILE,
                    errno.ENFILE, errno.ETIMEDOUT, errno.ECONNREFUSED, errno.ECONNRESET, errno.ENETUNREACH,
                    errno.EHOSTUNREACH}
OTHER_PATH = "give spmirror another path with --db PATH (or SPMIRROR_DB)"


def system_problem(exc: BaseException, database: Location | None) -> tuple[str, str, int] | None:
    """(message, hint, exit code) when `exc` is, or was caused by, a file or SQLite error; None
    for anything else (a bug)."""
    file = database.path if database is not None else None  # None for a PostgreSQL mirror
    for cause in _causes(exc):
        if isinstance(cause, OSError):
            return _os_problem(cause, file)
        if type(cause).__module__ == "sqlite3" and isinstance(cause, Exception):
            return _sqlite_problem(cause, file)
        if type(cause).__module__.startswith("psycopg") and isinstance(cause, Exception):
            return _postgres_problem(cause, database)
    return None


def _postgres_problem(exc: Exception, database) -> tuple[str, str, int]:
    """A PostgreSQL error met mid-run: the server's first line, what to check, and 75 when the
    session was lost (the next run reconnects) or 1 otherwise."""
    from mirror.store.location import redact_url

    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    # Lost, by SQLSTATE class: 08 the connection, 57 the server shutting down or ending the
    # session (AdminShutdown, IdleSessionTimeout...), 25P03 an idle transaction timed out; with no
    # SQLSTATE, the client's own OperationalError ("the connection is closed").
    state = getattr(exc, "sqlstate", None)
    lost = (state[:2] in ("08", "57") or state == "25P03") if state else type(exc).__name__ in (
        "OperationalError", "InterfaceError")
    where = str(database) if database is not None else "the PostgreSQL mirror"
    if state == "42501":  # insufficient_privilege
        return (f"{where}: this role may not do that ({redact_url(first)})",
                "run spmirror as the role that owns the mirror's schema (README: Running against PostgreSQL)",
                EXIT_USAGE)
    if lost:
        return (f"{where}: the PostgreSQL session ended ({redact_url(first)})",
                "check the server is up and reachable, then run the command again", EXIT_UNAVAILABLE)
    return (f"{where}: PostgreSQL refused a statement ({redact_url(first)})",
            "spmirror status; if it persists, report it with the log (--debug)", EXIT_FAILURE)


def _causes(exc: BaseException):
    """`exc`, then what caused it, breadth first, including the DBAPI error SQLAlchemy wraps (`.orig`)."""
    seen: set[int] = set()
    queue: list[BaseException | None] = [exc]
    while queue:
        current = queue.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        queue += [orig if isinstance(orig, BaseException) else None, current.__cause__, current.__context__]


def _os_problem(exc: OSError, database: Path | None) -> tuple[str, str, int]:
    path = exc.filename if exc.filename is not None else (database or "the file")
    reason = exc.strerror or str(exc)
    code = exc.errno
    if code in (errno.EACCES, errno.EPERM):
        elsewhere = f", or {OTHER_PATH}" if database is not None and _beside(Path(path), database) else ""
        if Path(path).exists():
            return (f"permission denied: {path}",
                    f"run spmirror as the user that owns it (ls -l {path}){elsewhere}", EXIT_USAGE)
        folder = Path(path).parent
        return (f"permission denied: cannot create {path} (this user may not write in {folder})",
                f"make {folder} writable by the user that runs spmirror (ls -ld {folder}){elsewhere}", EXIT_USAGE)
    if code == errno.EROFS:
        return f"{path} is on a read-only file system", OTHER_PATH + " on a writable disk", EXIT_USAGE
    if code in (errno.EEXIST, errno.ENOTDIR):
        target = Path(database or path)
        blocker = next((p for p in target.parents if p.exists() and not p.is_dir()), Path(path))
        return f"{blocker} is a file, not a directory, so {target} cannot be made under it", OTHER_PATH, EXIT_USAGE
    if code == errno.EISDIR:
        return f"{path} is a directory, not a database file", f"give a file path, such as --db {path}/mirror.db", \
            EXIT_USAGE
    if code == errno.EADDRINUSE:
        return (f"{reason}: another program already listens there",
                "choose another port (--port 0 picks a free one), or stop the other program", EXIT_USAGE)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left for {path}", "free some space on that disk, then run it again", EXIT_UNAVAILABLE
    if code in TRANSIENT_ERRNOS:
        return f"{reason}: {path}", "run it again later", EXIT_UNAVAILABLE
    return f"{reason}: {path}", OTHER_PATH, EXIT_USAGE


def _beside(path: Path, database: Path) -> bool:
    """Whether `path` is the database, a file SQLite or the mirror keeps beside it, or a folder above it."""
    return path.name.startswith(database.name) or path in database.parents


def _sqlite_problem(exc: Exception, database: Path | None) -> tuple[str, str, int] | None:
    path = database or "the database"
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc).lower()
    if name.startswith("SQLITE_READONLY") or "readonly" in text:
        return (f"{path} is read-only for this user ({exc})",
                f"make it and its directory writable by the user that runs spmirror (ls -l {path}), or copy it and "
                f"use --db COPY", EXIT_USAGE)
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        return (f"cannot open {path} ({exc})",
                f"check that its directory exists and that this user may read and write both (SQLite creates "
                f"{Path(str(path)).name}-wal and -shm beside it), or {OTHER_PATH}", EXIT_USAGE)
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return f"the disk holding {path} is full", "free some space, then run it again", EXIT_UNAVAILABLE
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return (f"{path} is locked by another program ({exc})",
                "close what holds it open for writing, then run it again", EXIT_UNAVAILABLE)
    if name.startswith("SQLITE_IOERR") or "i/o error" in text:
        return f"disk I/O error on {path} ({exc})", "check the disk, then run it again", EXIT_UNAVAILABLE
    if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) or "not a database" in text or "malformed" in text:
        return f"{path} is not a usable SQLite database ({exc})", OTHER_PATH, EXIT_USAGE
    return None


def _shown_url(url: str) -> str:
    from mirror.redaction import redact_url

    return redact_url(url)


if __name__ == "__main__":
    sys.exit(main())
