"""The field-level three-way merge of base, local and remote: pure, per field.

    local == remote                       -> nothing to do (unchanged, or both made the same edit)
    local == base, remote differs         -> remote changed: write it into the local row
    remote == base, local differs         -> local changed: push it
    all three differ                      -> a conflict, settled by the policy:
        remote_wins  write the remote value locally (the local edit is recorded in history)
        local_wins   push the local value
        manual       keep both (local in the row, remote in customer_conflicts) for a person
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

POLICIES = ("manual", "remote_wins", "local_wins")


@dataclass
class FieldMerge:
    """What to write locally, what to push, and what is left for a person."""

    to_local: dict[str, Any] = field(default_factory=dict)
    to_push: dict[str, Any] = field(default_factory=dict)
    conflicts: dict[str, tuple[Any, Any, Any]] = field(default_factory=dict)  # field -> (base, local, remote)
    overridden: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # remote_wins: field -> (local, remote)


def same(a: Any, b: Any) -> bool:
    """Equal as the mirror means it: NULL and "" are both "empty"; 2 and "2" are the same value
    (SQLite's loose typing lets a client store either)."""
    if a in (None, "") and b in (None, ""):
        return True
    if a == b:
        return True
    return a is not None and b is not None and str(a) == str(b)


def merge_fields(
    base: Mapping[str, Any], local: Mapping[str, Any], remote: Mapping[str, Any], names: Iterable[str], policy: str
) -> FieldMerge:
    """Merge each named field of base, local and remote under `policy` (one of POLICIES)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown conflict policy {policy!r}")
    result = FieldMerge()
    for name in names:
        b, l, r = base.get(name), local.get(name), remote.get(name)
        if same(l, r):
            continue
        if same(l, b):
            result.to_local[name] = r
        elif same(r, b):
            result.to_push[name] = l
        elif policy == "remote_wins":
            result.to_local[name] = r
            result.overridden[name] = (l, r)
        elif policy == "local_wins":
            result.to_push[name] = l
        else:
            result.conflicts[name] = (b, l, r)
    return result
