"""`spmirror webhooks subscribe|unsubscribe|list`: this installation's Solar Proof webhooks.

The API has no call that lists subscriptions, so the mirror keeps its own record. Each event
type gets its own URL (`<url>/<event>`), because no payload says which event it is and because
unsubscribing removes every type registered for a URL.
"""

from __future__ import annotations

import argparse
import sys

from mirror.api import SolarProofClient
from mirror.clock import utc_now_text
from mirror.config import Settings
from mirror.errors import (ApiError, AuthError, EndpointError, HostNotFoundError, NotFoundError,
                           TransientApiError)
from mirror.exit_codes import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE
from mirror.store import Store, upsert
from mirror.webhooks import EVENTS


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "webhooks", parents=[common], help="subscribe to, unsubscribe from, or list Solar Proof webhooks",
        description=__doc__.split("\n\n")[1],
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    subscribe = actions.add_parser("subscribe", parents=[common], help="register URL/<event> for each event",
                                   description="Register <URL>/<event> with Solar Proof for each event. URL is "
                                   "the public HTTPS address of this daemon's receiver, ending in /webhooks/<token>.")
    subscribe.add_argument("--url", required=True, help="e.g. https://mirror.example.com.au/webhooks/<token>")
    subscribe.add_argument("--event", action="append", choices=EVENTS,
                           help="an event to subscribe (repeatable; default: both customer events)")
    subscribe.set_defaults(handler=run_subscribe)
    unsubscribe = actions.add_parser("unsubscribe", parents=[common], help="remove every subscription under URL",
                                     description="Unsubscribe every URL this installation registered under URL.")
    unsubscribe.add_argument("--url", required=True)
    unsubscribe.set_defaults(handler=run_unsubscribe)
    listing = actions.add_parser("list", parents=[common], help="show what this installation subscribed",
                                 description="Show the subscriptions recorded by `spmirror webhooks subscribe`.")
    listing.set_defaults(handler=run_list, needs_api_key=False)


def _base(url: str) -> str | None:
    url = url.rstrip("/")
    return url if url.startswith(("https://", "http://")) else None


def run_subscribe(args: argparse.Namespace, settings: Settings) -> int:
    base = _base(args.url)
    if base is None:
        print("Error: --url must be an https:// URL (Solar Proof requires HTTPS for webhooks)", file=sys.stderr)
        return EXIT_USAGE
    if not base.startswith("https://"):
        print("Warning: Solar Proof documents HTTPS hook URLs only; http:// may be refused", file=sys.stderr)
    events = args.event or list(EVENTS)
    with SolarProofClient.from_settings(settings) as client, Store.open(settings.database) as store:
        for event in events:
            hook_url = f"{base}/{event}"
            try:
                client.subscribe_webhook(hook_url, event)
            except ApiError as exc:
                return _failed(f"subscribing {event}", exc, "subscribe")
            with store.transaction() as db:
                db.execute(upsert("webhook_subscriptions", ("hook_url", "event", "base_url", "subscribed_at"),
                                  "hook_url"), (hook_url, event, base, utc_now_text()))
            print(f"subscribed {event} -> {_shown(hook_url)}")
    return EXIT_OK


def run_unsubscribe(args: argparse.Namespace, settings: Settings) -> int:
    base = _base(args.url) or args.url
    with SolarProofClient.from_settings(settings) as client, Store.open(settings.database) as store:
        hooks = [r["hook_url"] for r in store.query(
            "SELECT hook_url FROM webhook_subscriptions WHERE base_url = ? OR hook_url = ?", (base, base))]
        for hook_url in hooks or [base]:
            try:
                client.unsubscribe_webhook(hook_url)
            except NotFoundError:
                pass  # Solar Proof no longer had it; forget it here too
            except ApiError as exc:
                return _failed(f"unsubscribing {_shown(hook_url)}", exc, "unsubscribe")
            with store.transaction() as db:
                db.execute("DELETE FROM webhook_subscriptions WHERE hook_url = ?", (hook_url,))
            print(f"unsubscribed {_shown(hook_url)}")
    return EXIT_OK


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    with Store.open(settings.database) as store:
        rows = store.query("SELECT event, hook_url, subscribed_at FROM webhook_subscriptions ORDER BY base_url, event")
    if not rows:
        print("no webhooks subscribed by this installation")
    for row in rows:
        print(f"{row['event']:<24} {_shown(row['hook_url'])}  since {row['subscribed_at']}")
    return EXIT_OK


def _failed(doing: str, exc: ApiError, action: str) -> int:
    """One Error line and one Try line for a call the API did not take; 75 when trying later may work."""
    if isinstance(exc, TransientApiError):
        hint, code = f"spmirror webhooks {action} again later", EXIT_UNAVAILABLE
    elif isinstance(exc, (EndpointError, HostNotFoundError)):
        hint, code = "check [api] url / SPMIRROR_API_URL", EXIT_USAGE
    elif isinstance(exc, AuthError):
        hint, code = "check [api] key (SPMIRROR_API_KEY, [api] key_file or LoadCredential=api_key)", EXIT_USAGE
    else:
        hint, code = ("check --url (a public https:// address ending in /webhooks/<token>) and [api] url",
                      EXIT_USAGE)
    print(f"Error: {doing}: {exc}\nTry: {hint}", file=sys.stderr)
    return code


def _shown(url: str) -> str:
    """The URL with its token (the path segment after /webhooks/) masked."""
    head, sep, tail = url.partition("/webhooks/")
    if not sep:
        return url
    _token, slash, rest = tail.partition("/")
    return f"{head}/webhooks/***{slash}{rest}"
