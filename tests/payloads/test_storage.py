"""Large payloads through the real data converter to the run's object store — a local directory and a
real S3-protocol server (moto) — by content, readable by any worker sharing the store; claims that
LocalDiskDriver recorded before still decode; a missing or corrupt payload fails for good."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import ParseDict
from temporalio.api.common.v1 import Payload
from temporalio.exceptions import ApplicationError

from config.settings import Settings
from payloads.converter import data_converter
from payloads.storage import payload_key
from storage.store import ObjectStore
from testkit.s3 import S3Server

RECORDED = Path(__file__).parent / "recorded" / "local_disk_claim.json"
# Above the 1 KB threshold the tests set, and not all one byte: rows as the coder writes them.
BIG = {"path": "data/table.csv", "content": "".join(f"{n:06d},{n * 7919 % 10007}\n" for n in range(400))}


def settings(data_dir: Path, url: str | None = None, **more: str) -> Settings:
    values = {"FORGEFLOW_DATA_DIR": str(data_dir), "FORGEFLOW_PAYLOAD_THRESHOLD_KB": "1", **more}
    if url is not None:
        values["FORGEFLOW_STORAGE_URL"] = url
    return Settings.model_validate(values)


@pytest.fixture(params=["local", "s3"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh FORGEFLOW_STORAGE_URL of each kind: a directory, or a prefix of its own in the bucket."""
    if request.param == "local":
        yield (tmp_path / "store").as_uri()
    else:
        s3: S3Server = request.getfixturevalue("s3_env")
        yield s3.url(f"payloads-tests/{tmp_path.name}")


def claimed_sha(reference: Payload) -> str:
    """The sha256 a reference payload in history claims (asserting it is our driver's claim)."""
    claim = json.loads(reference.data)
    assert claim["driverName"] == "local-disk"
    assert set(claim["claimData"]) == {"sha256"}
    sha: str = claim["claimData"]["sha256"]
    return sha


async def test_a_large_payload_goes_to_the_store_by_content_and_any_worker_reads_it(url: str, tmp_path: Path) -> None:
    writer = data_converter(settings(tmp_path / "writer", url))
    (reference,) = await writer.encode([BIG])
    assert len(reference.SerializeToString()) < 512  # only the claim stays in history
    assert b"data/table.csv" not in reference.SerializeToString()
    sha = claimed_sha(reference)

    store = ObjectStore(url)
    stored = await store.get_async(payload_key(sha))
    assert hashlib.sha256(stored).hexdigest() == sha  # the key is the content's hash
    assert b"data/table.csv" in stored

    # Another worker: its own data directory, the same FORGEFLOW_STORAGE_URL.
    reader = data_converter(settings(tmp_path / "reader", url))
    assert await reader.decode([reference], [dict[str, Any]]) == [BIG]

    (again,) = await writer.encode([BIG])  # the same content: the same claim, stored once
    assert claimed_sha(again) == sha


async def test_small_payloads_stay_in_history(url: str, tmp_path: Path) -> None:
    (payload,) = await data_converter(settings(tmp_path, url)).encode([{"path": "a.txt", "content": "short"}])
    assert b"short" in payload.data


async def test_with_the_codec_on_the_store_holds_only_ciphertext(url: str, tmp_path: Path) -> None:
    keys = json.dumps({"k1": base64.b64encode(bytes(range(32))).decode()})
    converter = data_converter(settings(tmp_path, url, FORGEFLOW_CODEC_KEYS=keys))
    (reference,) = await converter.encode([BIG])
    stored = await ObjectStore(url).get_async(payload_key(claimed_sha(reference)))
    assert b"data/table.csv" not in stored
    assert await converter.decode([reference], [dict[str, Any]]) == [BIG]


def recorded() -> dict[str, Any]:
    found: dict[str, Any] = json.loads(RECORDED.read_text())
    return found


async def test_a_claim_recorded_by_local_disk_driver_still_decodes(tmp_path: Path) -> None:
    """The reference payload LocalDiskDriver wrote into history, and its file where it put it: the
    default store (the data directory) reads it with no migration."""
    old = recorded()
    (tmp_path / old["stored_path"]).parent.mkdir(parents=True)
    (tmp_path / old["stored_path"]).write_bytes(base64.b64decode(old["stored"]))
    reference = ParseDict(old["reference"], Payload())
    assert payload_key(claimed_sha(reference)) == old["stored_path"]  # the same layout, the same claim

    converter = data_converter(settings(tmp_path))  # no FORGEFLOW_STORAGE_URL: the data directory
    assert await converter.decode([reference], [dict[str, Any]]) == [old["value"]]


async def test_the_default_store_keeps_the_old_layout(tmp_path: Path) -> None:
    (reference,) = await data_converter(settings(tmp_path)).encode([BIG])
    sha = claimed_sha(reference)
    assert (tmp_path / "payloads" / sha[:2] / sha).is_file()


async def test_a_missing_payload_fails_for_good_naming_the_store_and_the_setting(url: str, tmp_path: Path) -> None:
    (reference,) = await data_converter(settings(tmp_path / "writer", url)).encode([BIG])
    elsewhere = f"{url}-elsewhere"  # a worker on a store of the same kind that does not hold it
    with pytest.raises(ApplicationError) as raised:
        await data_converter(settings(tmp_path / "reader", elsewhere)).decode([reference], [dict[str, Any]])
    assert raised.value.type == "PayloadMissing" and raised.value.non_retryable
    assert claimed_sha(reference) in str(raised.value)
    assert elsewhere in str(raised.value) and "FORGEFLOW_STORAGE_URL" in str(raised.value)
    assert "FORGEFLOW_DATA_DIR" not in str(raised.value)


async def test_a_corrupt_payload_fails_for_good(url: str, tmp_path: Path) -> None:
    converter = data_converter(settings(tmp_path, url))
    (reference,) = await converter.encode([BIG])
    key = payload_key(claimed_sha(reference))
    store = ObjectStore(url)
    await store.put_async(key, (await store.get_async(key))[:-1] + b"!")
    with pytest.raises(ApplicationError, match="is corrupt") as raised:
        await converter.decode([reference], [dict[str, Any]])
    assert raised.value.type == "PayloadCorrupt" and raised.value.non_retryable
