"""The account a mirror file belongs to: read and written only here (table mirror_account)."""

from __future__ import annotations

from dataclasses import dataclass

from mirror.store import Store


@dataclass(frozen=True, slots=True)
class AccountPin:
    """The API URL and the salted key fingerprint recorded by a mirror's first sync."""

    api_url: str
    key_salt: str
    key_fingerprint: str
    pinned_at: str


def load_pin(store: Store) -> AccountPin | None:
    row = store.db.execute("SELECT api_url, key_salt, key_fingerprint, pinned_at FROM mirror_account "
                           "WHERE id = 1").fetchone()
    return AccountPin(*row) if row else None


def save_pin(store: Store, pin: AccountPin) -> None:
    """Record (or, after a checked rekey, replace) the account this file mirrors."""
    with store.transaction() as db:
        db.execute(
            "INSERT INTO mirror_account (id, api_url, key_salt, key_fingerprint, pinned_at) VALUES (1, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET api_url=excluded.api_url, key_salt=excluded.key_salt, "
            "key_fingerprint=excluded.key_fingerprint, pinned_at=excluded.pinned_at",
            (pin.api_url, pin.key_salt, pin.key_fingerprint, pin.pinned_at),
        )


def mirrored_people(store: Store) -> dict[int, tuple[str, str, str]]:
    """Every customer with a base: (email, first name, surname), lower-cased, to recognise an account by."""
    rows = store.db.execute("SELECT pkcustomerid, customeremail, customerfirstname, customersurname FROM customer_base")
    return {row[0]: tuple((value or "").strip().lower() for value in row[1:]) for row in rows}
