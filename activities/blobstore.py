"""A content-addressed blob store on the object store: workflow history carries keys, not contents.

Keys are `sha256:<hex>` of the bytes, kept as the object `<prefix>/<hex[:2]>/<hex[2:]>` of the one
object store (FORGEFLOW_STORAGE_URL), so any worker that shares the store reads the same bytes. With
the default store (the data directory) that is the file layout blobs have always had on disk, so runs
started before the store existed keep theirs.

A put is whole or absent (the local store writes a temporary file and renames it; an S3 put is
atomic), and writing the same content twice (an activity retry) writes the same bytes again: no
reader ever sees a partial blob, and no worker can disagree about what a key holds.

Activities use the async methods, so a round trip to S3 never blocks the event loop their
heartbeats run on; the sync ones are for code that is not on an event loop (scripts, test set-up).

The async methods also keep the blobs this process last wrote or read in memory (`Recent`, up to
RECENT_BYTES): a key names its bytes forever, so a copy is never stale. A run's next model turn
mostly lands on the worker that wrote its transcript one turn before (Temporal's sticky queue), and
reads it from there instead of from the store: one round trip less per turn (to S3, a GET), and on
a busy worker two fewer waits on its event loop (issue 14).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable

from storage.store import ObjectMissing, ObjectStore

_HEX = frozenset("0123456789abcdef")
MAX_CONCURRENT_GETS = 16  # round trips in flight for one get_many_async
# What a process keeps of the blobs it last wrote or read: a hundred runs' transcripts of 300 KB.
RECENT_BYTES = 32 * 1024 * 1024


class BlobNotFoundError(KeyError):
    """The key is not in this store (a worker on another FORGEFLOW_STORAGE_URL?)."""


class Recent:
    """Blobs by key, the least recently used dropped first once they hold more than `limit` bytes;
    a blob larger than a quarter of `limit` is not kept (it would push out many that are used)."""

    def __init__(self, limit: int = RECENT_BYTES) -> None:
        self._limit = limit
        self._blobs: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # the sync methods may run in threads

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._blobs.get(key)
            if data is not None:
                self._blobs.move_to_end(key)
            return data

    def keep(self, key: str, data: bytes) -> None:
        if len(data) > self._limit // 4:
            return
        with self._lock:
            if key in self._blobs:
                self._blobs.move_to_end(key)
                return
            self._blobs[key] = data
            self._bytes += len(data)
            while self._bytes > self._limit:
                _, dropped = self._blobs.popitem(last=False)
                self._bytes -= len(dropped)


class BlobStore:
    def __init__(self, store: ObjectStore, prefix: str = "blobs", recent: Recent | None = None) -> None:
        """`recent`: where the async methods keep the blobs last used (default: RECENT_BYTES of them)."""
        self._store = store
        self._prefix = prefix.strip("/")
        self._recent = recent if recent is not None else Recent()

    @staticmethod
    def key_for(data: bytes) -> str:
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def _object(self, key: str) -> str:
        """The object key of a blob key; ValueError if `key` is not one."""
        algo, _, digest = key.partition(":")
        if algo != "sha256" or len(digest) != 64 or not _HEX.issuperset(digest):
            raise ValueError(f"not a blob key: {key!r}")
        return f"{self._prefix}/{digest[:2]}/{digest[2:]}"

    def _missing(self, key: str) -> BlobNotFoundError:
        return BlobNotFoundError(f"blob {key} is not in the store {self._store.url} (under {self._prefix}/)")

    # --- async: for activities --------------------------------------------------------------

    async def put_async(self, data: bytes) -> str:
        key = self.key_for(data)
        await self._store.put_async(self._object(key), data)
        self._recent.keep(key, data)  # once stored: a key this process hands out is on the store
        return key

    async def get_async(self, key: str) -> bytes:
        name = self._object(key)
        kept = self._recent.get(key)
        if kept is not None:
            return kept
        try:
            data = await self._store.get_async(name)
        except ObjectMissing:
            raise self._missing(key) from None
        self._recent.keep(key, data)
        return data

    async def get_many_async(self, keys: Iterable[str]) -> dict[str, bytes]:
        """Each distinct key's bytes, fetched concurrently (a few at a time)."""
        wanted = list(dict.fromkeys(keys))
        for key in wanted:
            self._object(key)  # a malformed key fails before any round trip
        gate = asyncio.Semaphore(MAX_CONCURRENT_GETS)

        async def one(key: str) -> bytes:
            async with gate:
                return await self.get_async(key)

        return dict(zip(wanted, await asyncio.gather(*(one(key) for key in wanted)), strict=True))

    # --- sync: for code that is not on an event loop ----------------------------------------

    def put(self, data: bytes) -> str:
        key = self.key_for(data)
        self._store.put(self._object(key), data)
        return key

    def get(self, key: str) -> bytes:
        name = self._object(key)
        try:
            return self._store.get(name)
        except ObjectMissing:
            raise self._missing(key) from None
