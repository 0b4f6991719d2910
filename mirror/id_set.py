"""A set of positive customer ids held as a bitmap: the walk's "listed" set at any account size.

A Python set of a million ints costs about 60 MB (a hash slot and an int object each); Solar
Proof's ids are positive and close together, so one bit per possible id costs 125 KB per
million ids. Ids far beyond the bitmap's reach (more than 256 Mi, which would cost 32 MB of
bits) go to an ordinary set instead, so an odd id can never make the bitmap huge.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Iterable, Iterator

_BITMAP_LIMIT = 1 << 28  # ids below this are bits; above, set members


class IdSet(Set):
    """A read-mostly set of ints (add / in / len / iteration, and set comparisons and
    operators from collections.abc.Set), compact for dense positive ids."""

    __slots__ = ("_bits", "_far", "_count")

    def __init__(self, ids: Iterable[int] = ()) -> None:
        self._bits = bytearray()
        self._far: set[int] = set()
        self._count = 0
        for remote_id in ids:
            self.add(remote_id)

    def add(self, remote_id: int) -> None:
        if remote_id >= _BITMAP_LIMIT or remote_id < 0:
            if remote_id not in self._far:
                self._far.add(remote_id)
                self._count += 1
            return
        byte, bit = remote_id >> 3, 1 << (remote_id & 7)
        bits = self._bits
        if byte >= len(bits):
            # Grow by at least half again, so a walk in rising id order costs O(n) copying.
            bits.extend(bytes(max(byte + 1 - len(bits), len(bits) // 2, 1024)))
        if not bits[byte] & bit:
            bits[byte] |= bit
            self._count += 1

    def __contains__(self, remote_id: object) -> bool:
        if not isinstance(remote_id, int):
            return False
        if remote_id >= _BITMAP_LIMIT or remote_id < 0:
            return remote_id in self._far
        byte = remote_id >> 3
        return byte < len(self._bits) and bool(self._bits[byte] & (1 << (remote_id & 7)))

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[int]:
        for byte_index, byte in enumerate(self._bits):
            if byte:
                base = byte_index << 3
                for bit in range(8):
                    if byte & (1 << bit):
                        yield base + bit
        yield from sorted(self._far)
