"""Which Solar Proof account a mirror belongs to, and the refusal to sync any other.

A mirror file records, on its first sync, the API URL and a salted one-way fingerprint of the
key. Every later sync, push, daemon start and webhook write checks both before it writes
anything anywhere: a copy of the file pointed at another account (another URL or key) stops
with exit 2, having sent nothing and changed nothing. A new key (or URL) for the SAME account
is an explicit step, `spmirror rekey`, which first walks the listing and checks that most
mirrored customers are there under the same id with the same email or name.

Pinning needs evidence that the key works: a first sync proves it with one page of the
listing before it records anything, so a typo in the key is never pinned.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from mirror.errors import MirrorError, WireError
from mirror.redaction import redact_url
from mirror.store import Store
from mirror.store.account import AccountPin, load_pin, mirrored_people, save_pin
from mirror.store.api_facts import recorded_page_size
from mirror.walk import PAGE_SIZE, CustomerWalk, PageSource
from mirror.wire import parse_customer

# Share of mirrored customers that must be found again (same id, same email or name) for a
# listing to count as the same account.
SAME_ACCOUNT_SHARE = 0.5
SHOWN_FINGERPRINT = 12  # hex digits of the fingerprint shown to people


class AccountMismatch(MirrorError):
    """The settings point at another account than the one this file mirrors."""


def key_fingerprint(api_key: str, salt: str) -> str:
    """HMAC-SHA256 of the key under a per-file random salt: the key cannot be read back from it."""
    return hmac.new(bytes.fromhex(salt), api_key.encode(), hashlib.sha256).hexdigest()


def new_pin(api_url: str, api_key: str, now: str) -> AccountPin:
    salt = secrets.token_hex(16)
    return AccountPin(api_url, salt, key_fingerprint(api_key, salt), now)


def pinned_account(store: Store) -> AccountPin | None:
    return load_pin(store)


def check_account(store: Store, api_url: str, api_key: str) -> AccountPin | None:
    """Raise AccountMismatch if the file is pinned to another URL or key; the pin, or None if unpinned."""
    pin = load_pin(store)
    if pin is None:
        return None
    same_url = pin.api_url == api_url
    same_key = hmac.compare_digest(key_fingerprint(api_key, pin.key_salt), pin.key_fingerprint)
    if same_url and same_key:
        return pin
    what = " and ".join(part for part, differs in (("URL", not same_url), ("key", not same_key)) if differs)
    raise AccountMismatch(
        f"{store.path} mirrors the Solar Proof account at {redact_url(pin.api_url)} "
        f"(key {pin.key_fingerprint[:SHOWN_FINGERPRINT]}), but the settings give another {what}: "
        f"{redact_url(api_url)} (key {key_fingerprint(api_key, pin.key_salt)[:SHOWN_FINGERPRINT]}). "
        "Nothing was sent and the file was not changed. To mirror another account, give it its own database "
        "file (SPMIRROR_DB); if this is the same account with a new key or URL, run: spmirror rekey"
    )


def ensure_account(store: Store, remote: PageSource, api_url: str, api_key: str, now: str,
                   *, dry_run: bool = False) -> AccountPin | None:
    """Before a sync writes anything: refuse another account, and pin an unpinned file.

    An unpinned file with customers in it (made before pinning existed) is pinned only after
    the listing shows it is the same account. An empty one is pinned once the API accepts the
    key (one page). A dry run makes the same checks and records nothing.
    """
    pin = check_account(store, api_url, api_key)
    if pin is not None:
        return pin
    if mirrored_people(store):
        verify_same_account(store, remote, api_url)
    else:
        remote.fetch_customer_page(1)  # AuthError, ApiUnavailableError propagate: nothing is pinned
    if dry_run:
        return None  # checked as the real run would, and nothing recorded
    pin = new_pin(api_url, api_key, now)
    save_pin(store, pin)
    return pin


@dataclass(frozen=True, slots=True)
class SameAccountEvidence:
    mirrored: int
    recognised: int  # listed under the same id with the same email or the same name

    @property
    def same_account(self) -> bool:
        return self.mirrored == 0 or self.recognised > SAME_ACCOUNT_SHARE * self.mirrored


def compare_listing(store: Store, remote: PageSource) -> SameAccountEvidence:
    """Walk the whole listing and count mirrored customers it shows as the same people."""
    people = mirrored_people(store)
    recognised = 0
    # The page size a check or the first sync measured: a smaller true size would end the walk
    # after page 1 and show almost nobody.
    for page in CustomerWalk(remote, page_size=recorded_page_size(store) or PAGE_SIZE):
        for record in page.records:
            known = people.get(record.remote_id)
            if known is None:
                continue
            try:
                fields = parse_customer(record.value).fields
            except WireError:
                continue
            listed = tuple(str(fields.get(name) or "").strip().lower()
                           for name in ("customeremail", "customerfirstname", "customersurname"))
            if (known[0] and known[0] == listed[0]) or (known[1:] == listed[1:] and any(known[1:])):
                recognised += 1
    return SameAccountEvidence(len(people), recognised)


def verify_same_account(store: Store, remote: PageSource, api_url: str) -> SameAccountEvidence:
    """Raise AccountMismatch unless the listing at `api_url` is recognisably this mirror's account."""
    evidence = compare_listing(store, remote)
    if not evidence.same_account:
        raise AccountMismatch(
            f"the listing at {redact_url(api_url)} shows {evidence.recognised} of the {evidence.mirrored} customers "
            f"in {store.path} (same id and same email or name); more than {SAME_ACCOUNT_SHARE:.0%} are needed to "
            "treat it as the same account. Nothing was sent and the file was not changed. To mirror that account, "
            "give it its own database file (SPMIRROR_DB)"
        )
    return evidence


def rekey(store: Store, remote: PageSource, api_url: str, api_key: str, now: str) -> SameAccountEvidence:
    """Pin the file to a new key or URL of the same account, after checking the listing."""
    evidence = verify_same_account(store, remote, api_url)
    save_pin(store, new_pin(api_url, api_key, now))
    return evidence
