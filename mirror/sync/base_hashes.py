"""Every mirrored customer's raw hash, held compactly for the pull's "unchanged?" test.

A no-op pull must recognise each listed record as unchanged, and for that it needs the hash of
the text it stored last time. Asking the database page by page costs little alone, but the
walk's threads hold the interpreter while they parse, so each of a query's many steps waits for
them: in a real sync the page-by-page reads took several times their own cost. Reading every
hash once, before the walk starts, and keeping them as two flat arrays (8 bytes of id and 16 of
digest a customer: 24 MB for a million, where a dict of them took more than 150 MB) makes the
test a binary search in memory.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from typing import Iterable

_DIGEST = 16  # bytes of fingerprint.raw_hash (its hex text is twice as long)
_NO_DIGEST = bytes(_DIGEST)  # a base with no usable hash: never equal to a real one


class BaseHashes:
    """Lookup of stored raw hashes by customer id; build with `load` from rows in id order."""

    __slots__ = ("_ids", "_digests")

    def __init__(self) -> None:
        self._ids = array("q")
        self._digests = bytearray()

    @classmethod
    def load(cls, rows: Iterable[tuple[int, str | None]]) -> BaseHashes:
        """`rows`: (pkcustomerid, raw_hash hex) in ascending id order, as the store streams them."""
        index = cls()
        ids, digests = index._ids, index._digests
        for remote_id, text_hash in rows:
            ids.append(remote_id)
            digests += _digest(text_hash)
        return index

    def __len__(self) -> int:
        return len(self._ids)

    def unchanged(self, remote_id: int, text_hash: str) -> bool:
        """Whether the stored hash of this customer is `text_hash` (False if none is stored)."""
        ids = self._ids
        position = bisect_left(ids, remote_id)
        if position == len(ids) or ids[position] != remote_id:
            return False
        start = position * _DIGEST
        digest = _digest(text_hash)
        return digest != _NO_DIGEST and self._digests[start:start + _DIGEST] == digest


def _digest(text_hash: str | None) -> bytes:
    try:
        digest = bytes.fromhex(text_hash or "")
    except ValueError:
        return _NO_DIGEST
    return digest if len(digest) == _DIGEST else _NO_DIGEST
