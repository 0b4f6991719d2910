"""The mirror's tables, as SQLModel classes (with SQLAlchemy for what SQLModel does not cover).

What people query: `customers` (current customers only; the fixed column names of the design),
`customer_notes`, `customer_projects`, `users`, `customer_changes` (history), `deleted_customers`
(the last record of every customer deleted in Solar Proof), the lookup tables
`customer_statuses`/`customer_types`, and the `customers_labeled` view (schema.py).

What the daemon owns: `customer_base` (each customer as last seen remotely, canonical, hashed),
`customer_raw` (the payloads as sent), `sync_runs`, `rejected_records`.

Notes, projects and history carry `customer_row`: the `customers.id` of their customer's row, a
declared foreign key so that browsers (Datasette) link each one to the customer. Triggers
(schema.py) keep it current, and it is never what ties them to a customer: `pkcustomerid` is.

Every column a plain `INSERT INTO customers (...)` leaves out has a database-side default, so
any SQLite client can add a customer.
"""

from __future__ import annotations

from typing import Any, Optional

from sqlalchemy import Column, ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import UserDefinedType
from sqlmodel import Field, SQLModel

from mirror.customer import as_stored  # noqa: F401  (its home; kept importable from here)


# A key that holds an id from elsewhere (Solar Proof's, or customers.id): never generated here, so
# no sequence on PostgreSQL (SQLite's INTEGER PRIMARY KEY is the same either way).
_OUTSIDE_ID = {"autoincrement": False}


def _text_default(value: str):
    return {"server_default": text(f"'{value}'")}


class _Untyped(UserDefinedType):
    """A column declared with no type: SQLite stores each value as it is given (BLOB affinity)."""

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return ""


# For values copied from customer columns (history, values sent): 2 stays the integer 2 and
# '0412 555 019' stays text. A TEXT column would turn 2 into '2'; NUMERIC would turn the text
# '0412555019' into 412555019. SQLite: no declared type, the driver binds int, float, str and
# None natively. PostgreSQL has no typeless column: jsonb keeps the number and the string apart
# (mirror/store/postgres/connection.py wraps the values).
AnyValue = _Untyped().with_variant(JSONB(), "postgresql")

# customer_raw's listing payload: zstd frames (mirror/store/payloads.py), or the JSON text of a
# file written before version 4. SQLite keeps either in a VARCHAR column; PostgreSQL in bytea.
_Payload = String().with_variant(LargeBinary(), "postgresql")



def _customer_row() -> Any:
    # SET NULL, never CASCADE: a customer's row may be deleted by a person (the mirror restores it,
    # and the restored row is linked again) or by a confirmed remote delete, and neither may take
    # a note, project or history row with it. The link is only a pointer for browsers.
    return Field(default=None, sa_column=Column(
        "customer_row", Integer, ForeignKey("customers.id", ondelete="SET NULL", onupdate="CASCADE")))


class CustomerColumns(SQLModel):
    """The user-visible customer columns, shared by `customers` and `customer_base`."""

    pkcustomerid: Optional[int] = Field(default=None)
    customerfirstname: Optional[str] = None
    customersurname: Optional[str] = None
    customeremail: Optional[str] = None
    customerphone1: Optional[str] = None
    customerphone2: Optional[str] = None
    customercompanyname: Optional[str] = None
    customercompanyphone: Optional[str] = None
    customerabn: Optional[str] = None
    fkcustomerstatusid: Optional[int] = None
    fkcustomertypeid: Optional[int] = None
    customergstregistered: Optional[int] = None
    created_at: Optional[str] = None
    customer_site_address: Optional[str] = None
    best_contact_mornings: Optional[int] = None
    best_contact_middays: Optional[int] = None
    best_contact_afternoons: Optional[int] = None
    best_contact_evenings: Optional[int] = None
    customer_status_text: Optional[str] = None
    customer_type_text: Optional[str] = None


class CustomerRow(CustomerColumns, table=True):
    """One current customer. `id` is local; `pkcustomerid` is Solar Proof's (NULL until pushed)."""

    __tablename__ = "customers"
    __table_args__ = (
        Index("ix_customers_pkcustomerid", "pkcustomerid", unique=True),
        Index("ix_customers_email", "customeremail"),
        Index("ix_customers_phone1", "customerphone1"),
        Index("ix_customers_surname", "customersurname"),
        Index("ix_customers_sync_state", "sync_state"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    # 'synced', 'pending', 'conflict' or 'error'. A row someone INSERTs is 'pending' by default.
    sync_state: str = Field(default="pending", sa_column_kwargs={**_text_default("pending"), "nullable": False})
    sync_error: Optional[str] = None


class CustomerBase(CustomerColumns, table=True):
    """The remote record as last seen: the merge base. Written only by the daemon."""

    __tablename__ = "customer_base"

    pkcustomerid: Optional[int] = Field(default=None, primary_key=True, sa_column_kwargs=_OUTSIDE_ID)
    content_hash: str  # of the canonical customer, notes, projects and owner
    raw_hash: str  # of the listing's JSON text: an unchanged record is skipped before parsing
    owner_user_id: Optional[int] = None
    last_seen_at: str
    # Set by the first complete listing that lacked this customer; cleared when it reappears.
    missing_since_run: Optional[str] = None


_BASE_ID = "customer_base.pkcustomerid"


class CustomerRaw(SQLModel, table=True):
    """Payloads exactly as the API sent them, so no field is ever lost."""

    __tablename__ = "customer_raw"

    pkcustomerid: int = Field(primary_key=True, foreign_key=_BASE_ID, ondelete="CASCADE")
    listing_json: bytes = Field(sa_column=Column("listing_json", _Payload, nullable=False))
    project_customer_json: Optional[str] = None  # getcustomerofproject, when enrichment is on
    fetched_at: str


class CustomerNote(SQLModel, table=True):
    """A note; the API gives notes no id, so (customer, datetime, text) is all there is."""

    __tablename__ = "customer_notes"
    __table_args__ = (Index("ix_customer_notes_customer", "pkcustomerid"),
                      Index("ix_customer_notes_row", "customer_row"))

    id: Optional[int] = Field(default=None, primary_key=True)
    pkcustomerid: int = Field(foreign_key=_BASE_ID, ondelete="CASCADE")
    noted_at: Optional[str] = None
    note: str
    customer_row: Optional[int] = _customer_row()


class CustomerProject(SQLModel, table=True):
    """A project as the listing embeds it, with its site address parts and size in kW."""

    __tablename__ = "customer_projects"
    __table_args__ = (Index("ix_customer_projects_customer", "pkcustomerid"),
                      Index("ix_customer_projects_row", "customer_row"))

    project_id: int = Field(primary_key=True, sa_column_kwargs=_OUTSIDE_ID)
    pkcustomerid: int = Field(foreign_key=_BASE_ID, ondelete="CASCADE")
    title: Optional[str] = None
    site_address: Optional[str] = None
    streetnum: Optional[str] = None
    street: Optional[str] = None
    suburb: Optional[str] = None
    state: Optional[str] = None
    postcode: Optional[str] = None
    country: Optional[str] = None
    system_size_kw: Optional[float] = None
    system_size_text: Optional[str] = None
    solar_panel_quantity: Optional[int] = None
    solar_panel_type: Optional[str] = None
    inverter_type: Optional[str] = None
    inverter_quantity: Optional[int] = None
    proposal_link: Optional[str] = None
    customer_row: Optional[int] = _customer_row()


class User(SQLModel, table=True):
    """A Solar Proof user who owns customers (from `owner_user_info`)."""

    __tablename__ = "users"

    user_id: int = Field(primary_key=True, sa_column_kwargs=_OUTSIDE_ID)
    first_name: Optional[str] = None
    last_name: Optional[str] = None
    phone_number: Optional[str] = None
    email: Optional[str] = None
    work_title: Optional[str] = None
    username: Optional[str] = None


class CustomerChange(SQLModel, table=True):
    """One changed field of one customer. field '(created)'/'(deleted)' for whole records.

    old_value and new_value hold each value as the customer column held it (see AnyValue): a
    type change from 1 to 2 reads back as the integers 1 and 2, a phone as text.
    """

    __tablename__ = "customer_changes"
    __table_args__ = (Index("ix_customer_changes_customer", "pkcustomerid", "changed_at"),
                      Index("ix_customer_changes_row", "customer_row"))

    id: Optional[int] = Field(default=None, primary_key=True)
    changed_at: str
    pkcustomerid: Optional[int] = None
    field: str
    old_value: Any = Field(default=None, sa_column=Column("old_value", AnyValue))
    new_value: Any = Field(default=None, sa_column=Column("new_value", AnyValue))
    source: str  # 'remote' or 'local'
    run_id: Optional[str] = None
    customer_row: Optional[int] = _customer_row()


class DeletedCustomer(SQLModel, table=True):
    """The last known record of a customer deleted in Solar Proof (JSON: fields, notes, projects, raw)."""

    __tablename__ = "deleted_customers"

    pkcustomerid: int = Field(primary_key=True, sa_column_kwargs=_OUTSIDE_ID)
    deleted_at: str
    run_id: Optional[str] = None
    customeremail: Optional[str] = None
    customerfirstname: Optional[str] = None
    customersurname: Optional[str] = None
    last_record_json: str


class SyncRun(SQLModel, table=True):
    """One sync: when, how it ended, what it did."""

    __tablename__ = "sync_runs"

    run_id: str = Field(primary_key=True)
    started_at: str
    finished_at: Optional[str] = None
    result: str = "running"  # running, ok, incomplete, refused, failed
    pages: int = 0
    listed: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    delete_candidates: int = 0
    rejected: int = 0
    pushed: int = 0  # updates, creates and deletes sent to Solar Proof
    push_errors: int = 0  # rows flagged 'error' this run
    conflicts: int = 0
    error: Optional[str] = None


class RejectedRecord(SQLModel, table=True):
    """A listing element that could not be mirrored (no usable id), kept with the reason."""

    __tablename__ = "rejected_records"

    id: Optional[int] = Field(default=None, primary_key=True)
    seen_at: str
    run_id: str
    page: int
    payload: str = Field(sa_column=Column(Text, nullable=False))
    reason: str


class CustomerStatus(SQLModel, table=True):
    __tablename__ = "customer_statuses"

    id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    label: str


class CustomerType(SQLModel, table=True):
    __tablename__ = "customer_types"

    id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    label: str
    write_word: str


class CustomerConflict(SQLModel, table=True):
    """One field changed on both sides to different values, waiting for a decision.

    The customers row keeps the local value and sync_state 'conflict'; the remote value is here
    (and in customer_base). `spmirror resolve ID --take local|remote`, or an SQL update that sets
    the field to the remote value or the row's sync_state to 'pending', settles it.
    """

    __tablename__ = "customer_conflicts"
    __table_args__ = (Index("ix_customer_conflicts_customer", "pkcustomerid", "field", unique=True),)

    id: Optional[int] = Field(default=None, primary_key=True)
    pkcustomerid: int
    field: str
    base_value: Optional[str] = None
    local_value: Optional[str] = None
    remote_value: Optional[str] = None
    seen_at: str


class CreateIntent(SQLModel, table=True):
    """A create about to be sent, recorded (and committed) before the POST.

    If the process dies after the POST and before the new id is stored, or the response is lost,
    a complete walk later looks for a customer tied to no row whose every field equals
    `sent_json`: exactly one is adopted; none (after two walks) means the create never arrived;
    several, or a near miss, leave the row in 'error' for a person (spmirror resolve).
    """

    __tablename__ = "create_intents"

    local_id: int = Field(primary_key=True, sa_column_kwargs=_OUTSIDE_ID)  # customers.id
    email: str
    sent_at: str
    # Complete walks since the POST that did not list the customer: after two, it was not created.
    complete_walks_since: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    # The canonical columns the create sent, as JSON: what a candidate must equal, and the base.
    sent_json: Optional[str] = None
    # 1 when Solar Proof answered success without an id: it exists, so it is never sent again.
    acknowledged: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    # 1 once a walk found several candidates or a near miss: only `spmirror resolve ROW --adopt ID |
    # --create-again` settles it (an edit of the row does not send the create again).
    needs_person: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})


class UnconfirmedWrite(SQLModel, table=True):
    """A field value sent to Solar Proof that no read has confirmed yet.

    The base takes what Solar Proof holds, not what was sent: the next pull (or webhook fetch)
    of the customer compares each value here with what the API returns, and a value Solar Proof
    did not take leaves the row in 'error' with both values named.
    """

    __tablename__ = "unconfirmed_writes"

    pkcustomerid: int = Field(primary_key=True)
    field: str = Field(primary_key=True)
    # As the customer column held it, like history values (AnyValue); NULL for "cleared".
    sent_value: Any = Field(default=None, sa_column=Column("sent_value", AnyValue))
    sent_at: str
    run_id: Optional[str] = None


class MirrorAccount(SQLModel, table=True):
    """The one Solar Proof account this file mirrors, pinned on its first sync.

    The key itself is never stored: only a salted one-way fingerprint (HMAC-SHA256), enough to
    tell that a later sync uses another key, and nothing that gives the key back.
    """

    __tablename__ = "mirror_account"

    id: int = Field(default=1, sa_column=Column(Integer, primary_key=True, autoincrement=False))
    api_url: str
    key_salt: str
    key_fingerprint: str
    pinned_at: str


class WebhookSubscription(SQLModel, table=True):
    """A webhook this installation registered with Solar Proof (the API has no list call)."""

    __tablename__ = "webhook_subscriptions"

    hook_url: str = Field(primary_key=True)
    event: str
    base_url: str  # what `spmirror webhooks subscribe --url` was given
    subscribed_at: str
