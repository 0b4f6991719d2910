"""`spmirror run`: the daemon (see mirror.daemon), as systemd or a terminal runs it."""

from __future__ import annotations

import argparse
import sys

from mirror.config import Settings
from mirror.errors import ListenError
from mirror.exit_codes import EXIT_UNAVAILABLE, EXIT_USAGE
from mirror.store import LockBusy, StoreBusy, StoreError, StoreUnreachable
from mirror.sync.account import AccountMismatch


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "run", parents=[common], help="run as a service: sync on a schedule, push local edits within seconds",
        description="Sync every [sync] interval (default 5m) and push local edits within seconds of "
        "their commit. For systemd (Type=notify: READY, STATUS and WATCHDOG messages) or a terminal. "
        "SIGTERM or Ctrl-C stops it cleanly. SIGHUP rereads the settings and applies what can change live "
        "(intervals, policies, logging); a changed database path, API URL or key, webhook or metrics "
        "setting is refused with a warning until a restart. On a SQLite file a second `spmirror run` is "
        "refused; on PostgreSQL it waits as a hot standby and takes over when the first one's session ends.",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from mirror.arguments import apply_logging, settings_for
    from mirror.daemon import Daemon

    try:
        verbose = getattr(args, "verbose", False)
        return Daemon(settings, lambda: settings_for(args), lambda s: apply_logging(s, verbose=verbose)).run()
    except LockBusy as exc:
        print(f"Error: another spmirror run already serves {settings.database}: {exc.holder}\n"
              f"Try: systemctl status spmirror, or stop the other process first", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except StoreBusy as exc:  # at start only (creating or upgrading the file); later runs back off
        print(f"Error: {exc}\nTry: save or close the program that holds it open for writing, then start "
              f"spmirror run again (under systemd it restarts by itself)", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except StoreUnreachable as exc:  # the PostgreSQL server is down or unreachable: a restart may find it
        print(f"Error: {exc}\nTry: check that the server is up and reachable from this host (pg_isready); under "
              f"systemd spmirror run restarts by itself", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except ListenError as exc:  # an address taken: restarting will not help until the config changes
        print(f"Error: {exc}\nTry: give each instance its own {exc.setting} in its config.toml", file=sys.stderr)
        return EXIT_USAGE
    except (AccountMismatch, StoreError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_USAGE
