"""The changes a pull finds: what the planner emits and the store applies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from mirror.customer import Customer

# What kind of change a pulled record makes.
CREATE, UPDATE, REFRESH = "create", "update", "refresh"


@dataclass(frozen=True, slots=True)
class Pulled:
    """One listed customer as fetched: canonical form, payload text, and both fingerprints."""

    customer: Customer
    raw_text: str
    raw_hash: str
    content_hash: str


@dataclass(frozen=True, slots=True)
class RemoteChange:
    """An action for the executor.

    `fields` is what the mirror should hold: the pulled values of the fields the shape carries,
    the base's values of the others (the list shape has no ABN; a failed enrichment says
    nothing). `changed` maps field -> (old, new) for updates.
    """

    kind: str
    pulled: Pulled
    fields: Mapping[str, Any]
    changed: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def remote_id(self) -> int:
        return self.pulled.customer.remote_id
