"""Deciding what a pull changes, as pure functions of what is known: no I/O, no clock.

Decision table for one listed customer against its base (the remote record as last seen):

    no base                               -> create the row
    base, same content hash               -> refresh: only the stored payload differs
    base, different content hash          -> update the fields that differ (maybe none, when
                                             only notes, projects or owner changed)
    a field the shape does not carry      -> keeps the base's value (absence is not emptiness)

and for customers with a base that a complete listing did not contain:

    first complete listing without it     -> candidate (nothing is removed)
    listed again                          -> no longer a candidate
    still missing on a later complete one -> confirmed, unless a lookup finds it
    more confirmed than the guard allows  -> refuse every delete of this run
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Container, Mapping

from mirror.changes import CREATE, REFRESH, UPDATE, Pulled, RemoteChange

def plan_remote_change(pulled: Pulled, base_content_hash: str | None, base_fields: Mapping[str, Any] | None) -> RemoteChange:
    """The change one pulled customer makes, given its base (None when never seen).

    Fields the pulled shape does not carry keep the base's value: absence is not emptiness.
    """
    customer = pulled.customer
    if base_content_hash is None or base_fields is None:
        return RemoteChange(CREATE, pulled, customer.fields)
    carried = customer.carried
    fields = {name: value if name in carried else base_fields.get(name) for name, value in customer.fields.items()}
    if base_content_hash == pulled.content_hash:
        return RemoteChange(REFRESH, pulled, fields)
    changed = {name: (base_fields.get(name), value) for name, value in fields.items() if base_fields.get(name) != value}
    return RemoteChange(UPDATE, pulled, fields, changed)


@dataclass(frozen=True, slots=True)
class DeletePlan:
    """What a complete listing means for customers it did not contain."""

    new_candidates: frozenset[int]  # missing for the first time: remember, remove nothing
    confirmed: frozenset[int]  # missing from two complete listings: remove (after a lookup)
    reappeared: frozenset[int]  # listed again: forget they were missing
    refused: bool  # more confirmed than the guard allows: remove none this run
    limit: int  # the most deletes the guard allows in one run


def plan_deletes(
    missing_since: Mapping[int, str | None],
    listed: Container[int],
    mirror_size: int,
    max_share: float,
    allow_mass_delete: bool,
) -> DeletePlan:
    """Plan deletes from a COMPLETE listing. Never call this for a partial walk.

    `missing_since` maps customers with a base to the run that first missed them (or None). It
    must hold every such customer that is not `listed` or that an earlier listing missed; the
    others (listed, never missed) may be left out, which keeps it small for a large account.
    The guard allows max(1, share x mirror size) deletes: removing one customer is never "mass".
    """
    absent = [i for i in missing_since if i not in listed]
    new_candidates = frozenset(i for i in absent if missing_since[i] is None)
    confirmed = frozenset(i for i in absent if missing_since[i] is not None)
    reappeared = frozenset(i for i, since in missing_since.items() if since is not None and i in listed)
    limit = max(1, int(max_share * mirror_size))
    refused = len(confirmed) > limit and not allow_mass_delete
    return DeletePlan(new_candidates, confirmed, reappeared, refused, limit)
