"""`spmirror rekey`: pin the mirror to a new key (or URL) of the same Solar Proof account."""

from __future__ import annotations

import argparse
import sys

from mirror.api import SolarProofClient
from mirror.clock import utc_now_text
from mirror.config import Settings
from mirror.errors import ApiUnavailableError, AuthError
from mirror.exit_codes import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE
from mirror.redaction import redact_url
from mirror.store import LockBusy, Store, sync_lock
from mirror.sync.account import AccountMismatch, check_account, pinned_account, rekey


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "rekey", parents=[common], help="accept a new API key or URL for the same account",
        description="A mirror remembers the account it mirrors (the API URL and a one-way fingerprint of "
        "the key) and refuses to sync with other settings. After rotating the key in Solar Proof, or when "
        "the API moves, run this with the new settings: it walks the listing (read calls only), checks that "
        "most mirrored customers are there under the same id with the same email or name, and only then "
        "records the new URL and key fingerprint. Exit 2 if the listing looks like another account.",
    )
    parser.add_argument("--wait", type=float, default=60.0, metavar="SECONDS",
                        help="how long to wait for a sync another process is running (default 60)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    path = settings.database
    if not path.exists():
        print(f"Error: no mirror at {path}\nTry: spmirror sync, which pins a new mirror by itself", file=sys.stderr)
        return EXIT_USAGE
    url = settings[("api", "url")]
    try:
        lock = sync_lock(path, "spmirror rekey")
        lock.acquire(wait_seconds=args.wait)
    except LockBusy as exc:
        print(f"Error: a sync of this mirror is running: {exc.holder}\nTry: spmirror rekey --wait 300",
              file=sys.stderr)
        return EXIT_UNAVAILABLE
    with lock, Store.open(path) as store, SolarProofClient.from_settings(settings) as client:
        before = pinned_account(store)
        try:
            check_account(store, url, settings.api_key)
        except AccountMismatch:
            pass  # the reason to be here
        else:
            if before is not None:
                print(f"{path} is already pinned to {redact_url(url)} with this key; nothing to do")
                return EXIT_OK
        try:
            evidence = rekey(store, client, url, settings.api_key, utc_now_text())
        except AccountMismatch as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except AuthError as exc:
            print(f"Error: {exc}\nTry: check [api] key / SPMIRROR_API_KEY", file=sys.stderr)
            return EXIT_USAGE
        except ApiUnavailableError as exc:
            print(f"Error: {exc}\nTry: spmirror rekey again later; nothing was changed", file=sys.stderr)
            return EXIT_UNAVAILABLE
    old = f" (was {redact_url(before.api_url)})" if before is not None and before.api_url != url else ""
    print(f"{path} is now pinned to {redact_url(url)}{old} with the new key: the listing showed "
          f"{evidence.recognised} of {evidence.mirrored} mirrored customers")
    return EXIT_OK
