"""Deciding whether a customer found in the listing is the one an unconfirmed create made: pure.

A create whose answer was lost (or that said "created" without an id) may or may not exist in
Solar Proof. Emails are not identities (Solar Proof allows duplicates), so a customer is taken
for ours only on evidence, judged against every customer a COMPLETE walk found that no row is
tied to yet:

    exactly one equals every field the create sent, and no other create claims it  -> adopt it
    several equal it, or it equals what two creates sent                           -> ambiguous
    none equals it, but some share its email (a near miss: a colleague's customer,
      or ours with a field the server changed)                                     -> near miss
    none shares its email                                                          -> absent

Ambiguous and near-miss rows go to 'error' listing the candidates; a person decides with
`spmirror resolve ROW --adopt PKCUSTOMERID | --create-again`. An absent create is sent again
only after two complete walks (offset paging can hide a record from one walk).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from mirror.customer import email_key
from mirror.merge import same

ADOPT, AMBIGUOUS, NEAR_MISS, ABSENT = "adopt", "ambiguous", "near_miss", "absent"


@dataclass(frozen=True, slots=True)
class CreateMatch:
    """What a walk says about one unconfirmed create."""

    kind: str
    remote_ids: tuple[int, ...] = ()  # the adopted id, or the candidates a person chooses from


def equals_what_was_sent(sent: Mapping[str, Any], found: Mapping[str, Any]) -> bool:
    """Every field the create sent has the same value in the found customer."""
    return all(same(value, found.get(name)) for name, value in sent.items())


def match_creates(sent_by_row: Mapping[int, Mapping[str, Any]],
                  untied: Iterable[tuple[int, Mapping[str, Any]]]) -> dict[int, CreateMatch]:
    """For each row (local id -> what its create sent), what the untied customers found say."""
    found = list(untied)
    exact: dict[int, list[int]] = {}
    near: dict[int, list[int]] = {}
    for local_id, sent in sent_by_row.items():
        email = email_key(sent.get("customeremail"))
        same_email = [(remote_id, fields) for remote_id, fields in found
                      if email and email_key(fields.get("customeremail")) == email]
        exact[local_id] = sorted(remote_id for remote_id, fields in same_email if equals_what_was_sent(sent, fields))
        near[local_id] = sorted(remote_id for remote_id, fields in same_email if remote_id not in exact[local_id])
    claims = Counter(remote_id for ids in exact.values() for remote_id in ids)
    decisions: dict[int, CreateMatch] = {}
    for local_id in sent_by_row:
        ids = exact[local_id]
        if len(ids) == 1 and claims[ids[0]] == 1:
            decisions[local_id] = CreateMatch(ADOPT, (ids[0],))
        elif ids:
            decisions[local_id] = CreateMatch(AMBIGUOUS, tuple(sorted(set(ids) | set(near[local_id]))))
        elif near[local_id]:
            decisions[local_id] = CreateMatch(NEAR_MISS, tuple(near[local_id]))
        else:
            decisions[local_id] = CreateMatch(ABSENT)
    return decisions
