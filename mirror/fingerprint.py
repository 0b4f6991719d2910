"""Content fingerprints that decide whether a customer changed since it was last seen.

Two per customer: `raw_hash` of the listing's JSON text (a cheap pre-check: an identical text
needs no parsing at all) and `content_hash` of the canonical customer with its notes, projects
and owner (the real test: a change in wire format alone, such as ids turning from strings into
integers, is not a change of the customer).
"""

from __future__ import annotations

from hashlib import blake2b

from mirror.customer import Customer


def raw_hash(text: str) -> str:
    return blake2b(text.encode(), digest_size=16).hexdigest()


def content_hash(customer: Customer) -> str:
    # repr of tuples of str/int/float/None is stable across runs and Python versions.
    content = (tuple(customer.fields.values()), customer.notes, customer.projects, customer.owner)
    return blake2b(repr(content).encode(), digest_size=16).hexdigest()
