"""The `spmirror` command line: parse arguments, load settings, configure logs, dispatch.

Exit codes (mirror.exit_codes): 0 ok, 1 unexpected failure, 2 usage or config error, 4 refused
by a safety guard, 75 the API was unavailable.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import structlog

from mirror import __version__
from mirror.commands import demo, rekey, resolve, run, simulate, status, sync, webhooks
from mirror.config import Settings, load_settings
from mirror.errors import ConfigError
from mirror.exit_codes import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from mirror.logs import configure_logging
from mirror.redaction import redact_text

COMMANDS = (sync, run, status, resolve, rekey, webhooks, demo, simulate)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", help="TOML config file (default: see README, Configuration)")
    parser = argparse.ArgumentParser(
        prog="spmirror",
        description="A local two-way SQLite mirror of a Solar Proof account's customers.",
    )
    parser.add_argument("--version", action="version", version=f"spmirror {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(commands, common)
    return parser


def settings_for(args: argparse.Namespace) -> Settings:
    """Load and check the settings a command needs (raises ConfigError listing every problem)."""
    settings = load_settings(args.config)
    if getattr(args, "needs_api_key", True) and not settings.api_key:
        raise ConfigError(["[api] key is not set: set SPMIRROR_API_KEY, [api] key_file, "
                           "or systemd LoadCredential=api_key"])
    return settings


def apply_logging(settings: Settings) -> None:
    fmt = settings[("logging", "format")]
    configure_logging(level=settings[("logging", "level")], json=None if fmt == "auto" else fmt == "json",
                      secrets=settings.secrets())


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code."""
    args = build_parser().parse_args(argv)
    settings = None
    if getattr(args, "needs_settings", True):
        try:
            settings = settings_for(args)
        except ConfigError as exc:
            print(f"Error: {exc}\nTry: spmirror {args.command} --help; every setting is in config.example.toml",
                  file=sys.stderr)
            return EXIT_USAGE
        apply_logging(settings)
    try:
        return args.handler(args, settings)
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as exc:  # the last line of defence: log it scrubbed, say it plainly, exit 1
        structlog.get_logger().exception("command_failed", command=args.command)
        secrets = settings.secrets() if settings else ()
        print(f"Error: unexpected {type(exc).__name__}: {redact_text(str(exc), secrets)}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
