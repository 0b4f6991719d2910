"""Switchable behaviours from the two generations of Solar Proof's API docs.

All quirks are off by default, which is the newer docs' behaviour (digest §0: the new layout is
the newer one). Each quirk reproduces something an old page showed in its example traffic, which
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

Quirks are read on every request, so flipping one takes effect on the next request. The account
keys its rendered-JSON cache on `Quirks.key()`, so caches never serve a stale shape.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

UPDATE_ID_KEYS = ("CustomerId", "id")


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

    def __post_init__(self) -> None:
        self.update()  # validate constructor arguments the same way

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
        for name in names - {"update_id_key"}:
            if not isinstance(merged[name], bool):
                raise ValueError(f"quirk {name} must be true or false")
        for name, value in changes.items():
            setattr(self, name, value)
        return self

    def reset(self) -> Quirks:
        """Back to the new-docs behaviour (all off)."""
        return self.update(**dataclasses.asdict(Quirks()))

    def key(self) -> tuple:
        """A hashable summary of everything that changes the rendered read shape."""
        return (self.int_ids, self.notes_as_string, self.status_as_number, self.datetime_creation)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
