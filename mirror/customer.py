"""The canonical customer: the one shape every API shape is mapped to and the mirror stores.

Column names follow the canonical "Customer Object" of the API docs (`pkcustomerid` ...
`best_contact_times`, the latter flattened to four columns), because users query them by
those names in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

# The user-visible customer columns, in table order.
CUSTOMER_COLUMNS: tuple[str, ...] = (
    "pkcustomerid",
    "customerfirstname",
    "customersurname",
    "customeremail",
    "customerphone1",
    "customerphone2",
    "customercompanyname",
    "customercompanyphone",
    "customerabn",
    "fkcustomerstatusid",
    "fkcustomertypeid",
    "customergstregistered",
    "created_at",
    "customer_site_address",
    "best_contact_mornings",
    "best_contact_middays",
    "best_contact_afternoons",
    "best_contact_evenings",
)

# The words the API used for status and type, kept as sent (so an unknown word is not lost
# when its integer column has to stay NULL).
LABEL_COLUMNS: tuple[str, ...] = ("customer_status_text", "customer_type_text")

# Canonical column -> key in the createcustomer/updatecustomer body. Nothing else is writable.
WRITABLE_FIELDS: dict[str, str] = {
    "customerfirstname": "firstname",
    "customersurname": "surname",
    "customeremail": "email",
    "customerphone1": "phone1",
    "customerphone2": "phone2",
    "fkcustomertypeid": "type",
    "customercompanyname": "companyname",
    "customercompanyphone": "companyphone",
    "customergstregistered": "gststatus",
}

BEST_CONTACT_COLUMNS: tuple[str, ...] = CUSTOMER_COLUMNS[-4:]


def email_key(value: Any) -> str:
    """An email as a person compares it: case and surrounding spaces do not matter. Solar Proof
    lets customers share an email, so this finds candidates; it never identifies anyone."""
    return str(value or "").strip().lower()


class Note(NamedTuple):
    """A customer note. The API gives notes no id, so (datetime, note) is their identity."""

    datetime: str | None
    note: str


class Owner(NamedTuple):
    """The Solar Proof user who owns (per the old docs: created) the customer."""

    user_id: int | None
    first_name: str | None
    last_name: str | None
    phone_number: str | None
    email: str | None
    work_title: str | None
    username: str | None


class Project(NamedTuple):
    """A project as the list shape embeds it; the system size is parsed to kW."""

    project_id: int
    title: str | None
    site_address: str | None  # one line: "418 Murray Street, Perth WA 6000"
    streetnum: str | None
    street: str | None
    suburb: str | None
    state: str | None
    postcode: str | None
    country: str | None
    system_size_kw: float | None
    system_size_text: str | None
    solar_panel_quantity: int | None
    solar_panel_type: str | None
    inverter_type: str | None
    inverter_quantity: int | None
    proposal_link: str | None


@dataclass(slots=True)
class Customer:
    """One customer in canonical form, as read from one API shape.

    `fields` holds every name of CUSTOMER_COLUMNS and LABEL_COLUMNS (None when unknown or
    empty). `carried` names the fields this shape actually carries: a None outside it means
    "this shape does not say", not "empty". `problems` lists tolerated oddities (an unknown
    status word, an unreadable date), each naming its field. `raw` is the payload as received.
    """

    remote_id: int
    fields: dict[str, Any]
    carried: frozenset[str]
    shape: str
    raw: Any
    notes: tuple[Note, ...] = ()
    projects: tuple[Project, ...] = ()
    owner: Owner | None = None
    problems: tuple[str, ...] = field(default=())


def as_stored(value: Any) -> Any:
    """A customer column's value for a column declared with no type (models.AnyValue: history,
    values sent): unchanged, so it keeps its SQLite type
    (integer, real, text, blob or NULL). Anything the driver cannot bind becomes its text."""
    if value is None or isinstance(value, (int, float, str, bytes)):
        return value
    return str(value)
