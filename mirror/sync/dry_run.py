"""What a dry run says it would do: sentences for the planned writes, pure (no I/O).

A dry run walks, re-reads and checks exactly as the real run does (every guard and refusal
included); only the writes, here and in Solar Proof, are replaced by these lines.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from mirror.changes import CREATE, UPDATE, RemoteChange
from mirror.sync.creates import ADOPT, CreateMatch

SHOWN_PER_KIND = 20  # a first import would otherwise print a line per customer


def shown(value: Any) -> str:
    return "(empty)" if value in (None, "") else repr(value)


def describe_update(remote_id: int, pushed: Mapping[str, Any], remote_values: Mapping[str, Any],
                    conflicts: Mapping[str, tuple], deferred: str | None) -> list[str]:
    """What the push would do with one edited customer, after its re-read and merge."""
    if deferred:
        return [f"wait for the walk to read customer {remote_id} before updating it (no read by id)"]
    lines = []
    if pushed:
        lines.append(f"updatecustomer {remote_id}: " + ", ".join(f"{n} {shown(v)}" for n, v in sorted(pushed.items())))
    if remote_values:
        lines.append(f"take Solar Proof's values for customer {remote_id}: "
                     + ", ".join(f"{n} {shown(v)}" for n, v in sorted(remote_values.items())))
    for name, (_base, local, remote) in sorted(conflicts.items()):
        lines.append(f"leave customer {remote_id} in conflict on {name}: here {shown(local)}, "
                     f"Solar Proof {shown(remote)}")
    return lines


def describe_remote_changes(changes: Iterable[RemoteChange], counts: dict[str, int], lines: list[str]) -> None:
    """Add a line per remote create and update (up to SHOWN_PER_KIND of each), counting them all."""
    for change in changes:
        if change.kind == CREATE:
            kind, text = "add", f"add customer {change.remote_id} ({change.fields.get('customeremail')})"
        elif change.kind == UPDATE and change.changed:
            kind = "update"
            text = f"write Solar Proof's change to customer {change.remote_id}: " + ", ".join(
                f"{n} {shown(old)} -> {shown(new)}" for n, (old, new) in sorted(change.changed.items()))
        else:
            continue
        counts[kind] = counts.get(kind, 0) + 1
        if counts[kind] <= SHOWN_PER_KIND:
            lines.append(text)
        elif counts[kind] == SHOWN_PER_KIND + 1:
            lines.append(f"... and more ({kind}): see the counts below")


def describe_create_decisions(decisions: Mapping[int, CreateMatch], waiting_walks: Mapping[int, int]) -> list[str]:
    """What a complete walk would decide for each unconfirmed create (local row id -> decision)."""
    lines = []
    for local_id, decision in sorted(decisions.items()):
        if decision.kind == ADOPT:
            lines.append(f"adopt customer {decision.remote_ids[0]} for row {local_id} (it equals what the create sent)")
        elif decision.remote_ids:
            ids = ", ".join(str(i) for i in decision.remote_ids)
            lines.append(f"flag row {local_id} as error: its create cannot be matched with certainty ({ids})")
        else:
            lines.append(f"count a walk without a trace of row {local_id}'s create "
                         f"({waiting_walks.get(local_id, 0) + 1} of 2 before it is sent again)")
    return lines


def describe_deletes(candidates: int, doomed: Iterable[int]) -> list[str]:
    lines = [f"mark {candidates} customers missing (a second complete walk without them deletes them)"] \
        if candidates else []
    lines += [f"delete customer {remote_id} (missing from two complete walks, not found by id)" for remote_id in doomed]
    return lines
