"""The command line's shared parts: argument types, the global options, the settings they
select, and how to name this program in a line to paste.

Light on purpose: `spmirror --help` imports this module and nothing heavy (settings and logs
are imported where they are used).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mirror.config import Settings


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected zero or more, got {value}")
    return value


def port(text: str) -> int:
    value = non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, got {value}")
    return value


def path_text(text: str) -> str:
    """A file path: not empty (an unset shell variable, `--db "$DB"`, gives an empty one)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a file path, got nothing")
    return text


# Options every command takes, before or after its name. They are options both of the main
# parser and (through `global_options(suppress=True)`) of each subcommand's; there their
# default is SUPPRESS, so `spmirror --db x status` keeps x: argparse copies a subcommand's
# defaults over what the main parser already set.
GLOBAL_OPTIONS_WITH_VALUES = ("--db", "--config")


def add_global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Add --db, --config, --debug and -v to `parser` (the main one, or a subcommand's parent)."""
    unset = argparse.SUPPRESS if suppress else None
    parser.add_argument("--db", metavar="PATH|URL", type=path_text, default=unset,
                        help="the mirror database: a SQLite file, or a postgresql:// URL (overrides SPMIRROR_DB "
                             "and [database] path/url)")
    parser.add_argument("--config", metavar="PATH", type=path_text, default=unset,
                        help="TOML config file (default: see README, Configuration)")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS if suppress else False,
                        help="on an error, also print its traceback (for a bug report)")
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS if suppress else False,
                        help="also show per-customer events on the terminal (the JSON log always has them)")


def global_options() -> argparse.ArgumentParser:
    """A parent parser holding the global options, for each subcommand (`parents=[...]`)."""
    common = argparse.ArgumentParser(add_help=False)
    add_global_options(common, suppress=True)
    return common


def command_in(argv: list[str]) -> str | None:
    """The subcommand named in `argv`: its first word that is neither an option nor the value
    of a global option (None when there is none, as in `spmirror --help`)."""
    words = iter(argv)
    for word in words:
        if word in GLOBAL_OPTIONS_WITH_VALUES:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def settings_for(args: argparse.Namespace) -> Settings:
    """Load and check the settings a command needs (raises ConfigError listing every problem).

    `--db` wins over SPMIRROR_DB and [database] path; `spmirror config` shows it came from the
    command line.
    """
    from mirror.config import load_settings
    from mirror.errors import ConfigError

    db = getattr(args, "db", None)
    settings = load_settings(getattr(args, "config", None),
                             overrides={("database", "path"): (db, "--db")} if db else None)
    if getattr(args, "needs_api_key", True) and not settings.api_key:
        raise ConfigError(["[api] key is not set: set SPMIRROR_API_KEY, [api] key_file, "
                           "or systemd LoadCredential=api_key"])
    return settings


def apply_logging(settings: Settings, verbose: bool = False) -> None:
    """Configure logs as [logging] says (the daemon calls it again on SIGHUP); `verbose` (-v)
    also puts per-customer events on the terminal, as [logging] level = "debug" does."""
    from mirror.logs import configure_logging

    configure_logging(level=settings[("logging", "level")], json=logs_json(settings),
                      secrets=settings.secrets(), verbose=verbose or None)


def logs_json(settings: Settings) -> bool:
    """Whether the logs are JSON lines: [logging] format, or `auto` (JSON unless stdout is a terminal)."""
    fmt = settings[("logging", "format")]
    return not sys.stdout.isatty() if fmt == "auto" else fmt == "json"


def program() -> str:
    """This program as a person would type it again: `spmirror` when that is what PATH finds,
    else the path it was started by (`.venv/bin/spmirror` after `make demo`), or
    `python -m mirror` with this interpreter."""
    started = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if started is not None and started.name == "spmirror":
        on_path = shutil.which("spmirror")
        if on_path and os.path.realpath(on_path) == os.path.realpath(started):
            return "spmirror"
        return shlex.quote(_short(started))
    return f"{shlex.quote(_short(Path(sys.executable)))} -m mirror"


def _short(path: Path) -> str:
    """`path` relative to the current directory when it lies below it, else absolute."""
    absolute = path.absolute()
    try:
        relative = str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)
    return relative if "/" in relative else f"./{relative}"  # a bare name would be looked up in PATH
