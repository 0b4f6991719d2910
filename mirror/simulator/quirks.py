"""Switchable behaviours from the two generations of Solar Proof's API docs.

Every quirk defaults to the newer docs' behaviour (digest §0: the new layout is the newer one).
Each of the first seven reproduces something an old page showed in its example traffic, which
the digest says "may show real server behaviour", so a client must survive every combination:

* `int_ids`: `customer_id`, `project_id` and the owner's `user_id` as JSON integers instead of
  strings (canonical/webhook docs type them as integers).
* `notes_as_string`: `customer_notes` is `""` instead of `[]` for a customer without notes
  (old get-id example).
* `status_as_number`: `customer_status` is `"0"`..`"3"` instead of the status name (old get-id).
* `datetime_creation`: `creation_date` is `"YYYY-MM-DD HH:MM:SS"` (old field text).
* `create_without_id`: the create response is `{"Message": ...}` with no `id` (old example).
* `update_id_key`: the key holding the id in the update response: `"CustomerId"` (new page and
  old example) or `"id"` (old field text).
* `errors_in_200`: `{code, message}` error bodies come with HTTP 200 instead of 4xx (the docs
  never map codes to statuses; PHP scripts often answer 200 regardless).

The last three are things neither generation rules out, a real server might do, and a client
must not take on trust (`old_docs()` leaves them at their defaults):

* `getcustomer` (default true): whether the `getcustomer` action exists at all. It is
  undocumented (seen only as the old get-id page's example request), so a server without it is
  just as plausible: false makes `action=getcustomer` whatever an unknown action gets (404
  `NOT_FOUND`, or 200 under `errors_in_200`). The other lookups are unchanged.
* `ignored_fields` (default `()`): write-body field names (`WRITE_FIELD_NAMES`) that
  `createcustomer` and `updatecustomer` validate as usual and answer success for, but do not
  store (the write log still shows them as applied). An update leaves the stored value as it
  was; a create stores a new customer's default instead: `""` for a text field (even a
  required one such as `email`), 0 for `gststatus`, 1 (Residential) for `type`. Set with a
  list or tuple; kept as a tuple.
* `empty_clears` (default true): whether an update sending `""` or null for an optional text
  field (`phone2`, `companyname`, `companyphone`) clears it. False keeps the stored value and
  still answers success (the docs never say that `""` clears a field).

Two more are surprises a live account may hold, for `spmirror check` to recognise (also left at
their defaults by `old_docs()`):

* `page_size` (default 50): customers per `getallcustomers` page. Both doc generations say 50;
  a server with another size would make a walk that trusts 50 stop early (a smaller size) or
  read more per page (a larger one). 1..1000.
* `unknown_status` (default `""`): a status word the docs do not list (say `"Site Visit
  Booked"`), served as `customer_status` of every fifth customer by id (ids divisible by 5)
  instead of its status; `""` serves none.
* `past_end` (default `"empty"`): what a `getallcustomers` page past the last one answers,
  which neither generation documents: `"empty"` (`[]`), `"last"` (the last page again, as a
  server that clamps the page number would) or `"error"` (`INVALID_PARAMETERS` "Page out of
  range", framed as every error is). The last two leave a walk unable to see the end whenever
  the last page is full.

Quirks are read on every request, so flipping one takes effect on the next request. The account
keys its rendered-JSON cache on `Quirks.key()`, so caches never serve a stale shape (getcustomer,
ignored_fields, empty_clears, page_size and past_end never change the shape of one record, so
they are not part of the key).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

UPDATE_ID_KEYS = ("CustomerId", "id")
# The W names of the create/update bodies, in the create page's order (actions.WRITE_FIELDS).
WRITE_FIELD_NAMES = ("firstname", "surname", "email", "phone1", "phone2", "type",
                     "companyname", "companyphone", "gststatus")
_NOT_BOOL = frozenset({"update_id_key", "ignored_fields", "page_size", "unknown_status", "past_end"})
PAST_END = ("empty", "last", "error")
MAX_PAGE_SIZE = 1000


@dataclass
class Quirks:
    """The quirk switches; mutate with `update()` (validates) or set attributes directly."""

    int_ids: bool = False
    notes_as_string: bool = False
    status_as_number: bool = False
    datetime_creation: bool = False
    create_without_id: bool = False
    update_id_key: str = "CustomerId"
    errors_in_200: bool = False
    getcustomer: bool = True
    ignored_fields: tuple[str, ...] = ()
    empty_clears: bool = True
    page_size: int = 50
    unknown_status: str = ""
    past_end: str = "empty"

    def __post_init__(self) -> None:
        # Validate constructor arguments the same way (and keep ignored_fields as a tuple).
        self.update(**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    @classmethod
    def old_docs(cls) -> Quirks:
        """Every quirk the old doc generation showed, switched on at once."""
        return cls(int_ids=True, notes_as_string=True, status_as_number=True,
                   datetime_creation=True, create_without_id=True, update_id_key="id",
                   errors_in_200=True)

    def update(self, **changes) -> Quirks:
        """Set the named quirks; raises ValueError on an unknown name or a bad value."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown quirk(s): {', '.join(sorted(unknown))}")
        merged = {**{name: getattr(self, name) for name in names}, **changes}
        # Validate everything before setting anything, so a bad request changes nothing.
        if merged["update_id_key"] not in UPDATE_ID_KEYS:
            raise ValueError(f"update_id_key must be one of {UPDATE_ID_KEYS}, not {merged['update_id_key']!r}")
        merged["ignored_fields"] = _field_names(merged["ignored_fields"])
        size = merged["page_size"]
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE:
            raise ValueError(f"quirk page_size must be a whole number 1..{MAX_PAGE_SIZE}, not {size!r}")
        if merged["past_end"] not in PAST_END:
            raise ValueError(f"quirk past_end must be one of {PAST_END}, not {merged['past_end']!r}")
        if not isinstance(merged["unknown_status"], str):
            raise ValueError("quirk unknown_status must be text (\"\" for none)")
        for name in names - _NOT_BOOL:
            if not isinstance(merged[name], bool):
                raise ValueError(f"quirk {name} must be true or false")
        for name in changes:
            setattr(self, name, merged[name])
        return self

    def reset(self) -> Quirks:
        """Back to the new-docs behaviour (every quirk at its default)."""
        return self.update(**dataclasses.asdict(Quirks()))

    def key(self) -> tuple:
        """A hashable summary of everything that changes the rendered read shape."""
        return (self.int_ids, self.notes_as_string, self.status_as_number, self.datetime_creation,
                self.unknown_status)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _field_names(value) -> tuple[str, ...]:
    """`ignored_fields` as a tuple without repeats; ValueError unless a list/tuple of W names."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError("quirk ignored_fields must be a list of write field names")
    unknown = [v for v in value if v not in WRITE_FIELD_NAMES]
    if unknown:
        raise ValueError(f"unknown write field(s) in ignored_fields: {', '.join(unknown)}; "
                         f"expected some of {', '.join(WRITE_FIELD_NAMES)}")
    return tuple(dict.fromkeys(value))
