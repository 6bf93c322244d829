"""Large payloads (file contents, diffs, transcripts, test output) go to external storage — the
SDK's claim check — so a run never meets Temporal's 2 MB payload limit and its history stays small.

`LocalDiskDriver` keeps them content-addressed under the data directory, which every worker of a
deployment shares already (the blob store needs it too). Object storage plugs in as another
`temporalio.converter.StorageDriver` (the SDK ships S3 and GCS drivers) passed to
`external_storage`. With the codec on, what is stored is the encrypted payload.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

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


class LocalDiskDriver(StorageDriver):
    def __init__(self, root: Path, name: str = "local-disk") -> None:
        self.root, self._name = root, name

    def name(self) -> str:
        return self._name

    def type(self) -> str:
        return "forgeflow.local-disk"

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / key

    def _put(self, payload: Payload) -> StorageDriverClaim:
        data = payload.SerializeToString()
        key = hashlib.sha256(data).hexdigest()
        path = self._path(key)
        if not path.exists():  # content-addressed: the same payload is stored once
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.partial")
            partial.write_bytes(data)
            partial.replace(path)
        return StorageDriverClaim(claim_data={"sha256": key})

    def _get(self, claim: StorageDriverClaim) -> Payload:
        key = claim.claim_data["sha256"]
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            raise ApplicationError(
                f"stored payload {key} is not in {self.root}: workers must share FORGEFLOW_DATA_DIR",
                type="PayloadMissing",
                non_retryable=True,
            ) from None
        if hashlib.sha256(data).hexdigest() != key:
            raise ApplicationError(f"stored payload {key} is corrupt", type="PayloadCorrupt", non_retryable=True)
        return Payload.FromString(data)

    async def store(self, context: StorageDriverStoreContext, payloads: Sequence[Payload]) -> list[StorageDriverClaim]:
        return await asyncio.to_thread(lambda: [self._put(p) for p in payloads])

    async def retrieve(
        self, context: StorageDriverRetrieveContext, claims: Sequence[StorageDriverClaim]
    ) -> list[Payload]:
        return await asyncio.to_thread(lambda: [self._get(c) for c in claims])


def external_storage(settings: Settings, driver: StorageDriver | None = None) -> ExternalStorage | None:
    """Payloads above FORGEFLOW_PAYLOAD_THRESHOLD_KB go to `driver` (local disk by default); 0 turns it off."""
    if settings.payload_threshold_kb == 0:
        return None
    return ExternalStorage(
        drivers=[driver or LocalDiskDriver(settings.data_dir / "payloads")],
        payload_size_threshold=settings.payload_threshold_kb * 1024,
    )
