"""customer_raw's payloads, compressed: zstd with a dictionary trained on the account's records.

A listing record is about 1 KB of JSON, most of it key names and values every record shares;
stored as text it was more than half of the file. zstd with a dictionary trained on this
account's own records keeps each one as a frame of about 150 bytes that still decodes on its
own (a per-record frame, not per page, so any one payload is read or replaced alone), at about
5 microseconds per record to compress.

- The dictionary is trained once, from the first batch large enough to learn from (a first
  import's first batch), and kept in `payload_dictionaries`; each frame names its dictionary by
  the id zstd writes into the frame header, so rows written before or without one still read.
  A smaller mirror, or rows written before there is one, get plain zstd frames.
- A payload stored as TEXT is read as it is: files written before version 4 keep their rows,
  which are compressed when the pull next rewrites them.

zstandard is imported only here. Reading a payload from SQL directly: the frames are standard
zstd, for example `zstd -D dictionary.bin -d`, with the dictionary blob of `payload_dictionaries`.
"""

from __future__ import annotations

import threading
from hashlib import blake2b

import zstandard

TRAIN_FROM = 1000  # records in a batch before a dictionary is trained from it
_DICTIONARY_BYTES = 32 * 1024  # measured: 145 B a record, against 153 at 16 KB and 168 at 8 KB
_LEVEL = 3

_cache_lock = threading.Lock()
# Dictionaries never change once stored; parsed ones are kept by content, whichever file they
# came from. Compressor objects are not shared between threads, so only dictionaries are cached.
_dictionaries: dict[bytes, zstandard.ZstdCompressionDict] = {}


class PayloadCodec:
    """Compresses payloads for one write transaction, and reads any stored payload back."""

    def __init__(self, db) -> None:
        self._by_id: dict[int, zstandard.ZstdCompressionDict] = {}
        for dictionary_id, data in db.execute("SELECT id, dictionary FROM payload_dictionaries"):
            self._by_id[dictionary_id] = _parsed(data)
        self._compressor: zstandard.ZstdCompressor | None = None

    def compress(self, text: str) -> bytes:
        if self._compressor is None:
            newest = self._by_id[max(self._by_id)] if self._by_id else None
            self._compressor = zstandard.ZstdCompressor(level=_LEVEL, dict_data=newest)
        return self._compressor.compress(text.encode())

    def decompress(self, stored: str | bytes | None) -> str | None:
        """The payload's JSON text, whether it was stored as text or as a zstd frame."""
        if stored is None or isinstance(stored, str):
            return stored
        dictionary_id = zstandard.get_frame_parameters(stored).dict_id
        dictionary = self._by_id.get(dictionary_id) if dictionary_id else None
        if dictionary_id and dictionary is None:
            raise ValueError(f"payload compressed with dictionary {dictionary_id}, which this file lacks")
        return zstandard.ZstdDecompressor(dict_data=dictionary).decompress(stored).decode()

    def learn(self, db, texts: list[str], now: str) -> None:
        """Train this file's dictionary from `texts` if it has none and they are enough."""
        if self._by_id or len(texts) < TRAIN_FROM:
            return
        try:
            trained = zstandard.train_dictionary(_DICTIONARY_BYTES, [text.encode() for text in texts])
        except zstandard.ZstdError:
            return  # records too alike or too few to learn from: plain frames serve
        data = trained.as_bytes()
        db.execute("INSERT INTO payload_dictionaries (id, trained_at, samples, dictionary) VALUES (?, ?, ?, ?)",
                   (trained.dict_id(), now, len(texts), data))
        self._by_id[trained.dict_id()] = _parsed(data)
        self._compressor = None


def _parsed(data: bytes) -> zstandard.ZstdCompressionDict:
    key = blake2b(data, digest_size=16).digest()
    with _cache_lock:
        dictionary = _dictionaries.get(key)
        if dictionary is None:
            dictionary = zstandard.ZstdCompressionDict(data)
            dictionary.precompute_compress(level=_LEVEL)
            _dictionaries[key] = dictionary
        return dictionary
