"""Large payloads (file contents, diffs, transcripts, test output) go to external storage — the
SDK's claim check — so a run never meets Temporal's 2 MB payload limit and its history stays small.

They live on the run's object store (`FORGEFLOW_STORAGE_URL`: the data directory by default, or
`s3://bucket/prefix`), keyed by content: `payloads/<sha256[:2]>/<sha256>` of the serialized payload,
and the claim in history is `{"sha256": <hex>}`. A claim names content, not a place, so any worker
sharing the store reads it, and the same payload is stored once however many runs carry it. With the
codec on, what is stored is the encrypted payload.

Why our own driver on `ObjectStore` for both kinds, not the SDK's `S3StorageDriver` for S3 (checked
against temporalio.contrib.aws.s3driver):
- Its key is `v0/ns/<namespace>/wt/<type>/wi/<workflow id>/ri/<run id>/d/sha256/<hex>`: it dedupes
  within one workflow run or activity attempt only, so the same file in two runs (or read by two
  agents) is uploaded again — not the store-wide content addressing every other object here has.
- It knows a bucket but no prefix, and its claim names the bucket: `s3://bucket/prefix` would need
  the prefix re-applied by our client, and a claim would pin a bucket rather than follow the setting.
- Its failures are `RuntimeError`/`ValueError` with the reason in the text, so "missing" and
  "corrupt" could not be told apart and made non-retryable without parsing messages.
- A second driver for S3 means a second claim format and driver name: a worker on the other kind
  could not even look the claim up, and a local deployment moved to S3 (copy `payloads/` into the
  prefix) would orphan every claim recorded before. One driver and one claim format avoid both.
The local default keeps exactly the layout, claim and driver name/type that `LocalDiskDriver`
wrote, so histories recorded before keep decoding. The driver name is recorded in every claim,
hence it stays `local-disk` for every kind of store.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    ExternalStorage,
    StorageDriver,
    StorageDriverClaim,
    StorageDriverRetrieveContext,
    StorageDriverStoreContext,
)
from temporalio.exceptions import ApplicationError

from config.settings import Settings
from storage.store import SETTING, ObjectMissing, ObjectStore

NAME = "local-disk"  # recorded in every claim of every history: never rename
TYPE = "forgeflow.local-disk"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_T = TypeVar("_T")


class ObjectStoreDriver(StorageDriver):
    """Payloads on an `ObjectStore` under `payloads/<sha[:2]>/<sha>`, claimed as `{"sha256": sha}`.

    Retrieval raises a non-retryable `ApplicationError` of type `PayloadMissing` (not in this store:
    the workers do not share FORGEFLOW_STORAGE_URL, or it was deleted) or `PayloadCorrupt` (bytes
    that do not hash to the claim); a store that cannot be reached raises `StorageError`, which is
    retried."""

    def __init__(self, objects: ObjectStore, name: str = NAME) -> None:
        self.objects, self._name = objects, name

    def name(self) -> str:
        return self._name

    def type(self) -> str:
        return TYPE

    async def store(self, context: StorageDriverStoreContext, payloads: Sequence[Payload]) -> list[StorageDriverClaim]:
        return await _gather([self._put(p) for p in payloads])

    async def retrieve(
        self, context: StorageDriverRetrieveContext, claims: Sequence[StorageDriverClaim]
    ) -> list[Payload]:
        return await _gather([self._get(c) for c in claims])

    async def _put(self, payload: Payload) -> StorageDriverClaim:
        data = payload.SerializeToString()
        key = hashlib.sha256(data).hexdigest()
        path = payload_key(key)
        if not await self.objects.exists_async(path):  # content-addressed: a HEAD spares a re-upload
            await self.objects.put_async(path, data)  # whole-object writes: readers never see a part
        return StorageDriverClaim(claim_data={"sha256": key})

    async def _get(self, claim: StorageDriverClaim) -> Payload:
        key = claim.claim_data.get("sha256", "")
        if not _SHA256.fullmatch(key):
            raise ApplicationError(
                f"payload claim {claim.claim_data} names no sha256", type="PayloadCorrupt", non_retryable=True
            )
        try:
            data = await self.objects.get_async(payload_key(key))
        except ObjectMissing:
            raise ApplicationError(
                f"stored payload {key} is not in the store {self.objects.url}: every worker must share {SETTING}",
                type="PayloadMissing",
                non_retryable=True,
            ) from None
        if hashlib.sha256(data).hexdigest() != key:
            raise ApplicationError(
                f"stored payload {key} in the store {self.objects.url} is corrupt",
                type="PayloadCorrupt",
                non_retryable=True,
            )
        return Payload.FromString(data)


def payload_key(sha256: str) -> str:
    """The object key of a payload whose serialized bytes hash to `sha256` (the layout since the start)."""
    return f"payloads/{sha256[:2]}/{sha256}"


async def _gather(steps: Sequence[Awaitable[_T]]) -> list[_T]:
    """All steps at once (one request each to the store); the first failure cancels the rest and is
    raised as itself, not inside an ExceptionGroup, so an ApplicationError keeps its type."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def external_storage(settings: Settings, driver: StorageDriver | None = None) -> ExternalStorage | None:
    """Payloads above FORGEFLOW_PAYLOAD_THRESHOLD_KB go to `driver` (default: the settings' object
    store, FORGEFLOW_STORAGE_URL); 0 turns it off."""
    if settings.payload_threshold_kb == 0:
        return None
    return ExternalStorage(
        drivers=[driver or ObjectStoreDriver(ObjectStore(settings.storage_location))],
        payload_size_threshold=settings.payload_threshold_kb * 1024,
    )
