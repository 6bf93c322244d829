"""The blob store on the object store: content keys, the object layout, and both backends (a local
directory, and a real S3-protocol server through obstore's own client)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from activities.blobstore import BlobNotFoundError, BlobStore, Recent
from config.settings import Settings
from storage.store import ObjectStore
from testkit.s3 import S3Server
from tests.blobs import local_blobs, settings_blobs

TRANSCRIPT = b'[{"role": "user", "content": [{"type": "text", "text": "hello"}]}]'


@pytest.fixture(params=["local", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    """A fresh blob store of each kind: a directory of its own, or a prefix of its own in the bucket.
    It keeps no blob in memory (Recent(0)), so every get here is answered by the store."""
    if request.param == "local":
        yield BlobStore(ObjectStore(str(tmp_path / "store")), recent=Recent(0))
    else:
        s3: S3Server = request.getfixturevalue("s3_env")
        yield BlobStore(ObjectStore(s3.url(f"blobs-test/{tmp_path.name}")), recent=Recent(0))


async def test_a_put_returns_the_content_key_and_a_get_its_bytes(blobs: BlobStore) -> None:
    for data in (b"", TRANSCRIPT, bytes(range(256)) * 4096):
        key = await blobs.put_async(data)
        assert key == "sha256:" + hashlib.sha256(data).hexdigest() == BlobStore.key_for(data)
        assert await blobs.get_async(key) == data


async def test_the_same_content_twice_is_one_blob(blobs: BlobStore) -> None:
    first, second = await blobs.put_async(TRANSCRIPT), await blobs.put_async(TRANSCRIPT)
    assert first == second
    assert await blobs.get_async(first) == TRANSCRIPT


async def test_sync_and_async_see_the_same_blobs(blobs: BlobStore) -> None:
    assert blobs.get(await blobs.put_async(b"async")) == b"async"
    assert await blobs.get_async(blobs.put(b"sync")) == b"sync"


async def test_get_many_fetches_each_distinct_key(blobs: BlobStore) -> None:
    keys = [await blobs.put_async(f"file {n}\n".encode()) for n in range(40)]
    found = await blobs.get_many_async([*keys, keys[0]])
    assert found == {key: f"file {n}\n".encode() for n, key in enumerate(keys)}
    assert await blobs.get_many_async([]) == {}


async def test_a_missing_blob_names_the_key_and_the_store(blobs: BlobStore) -> None:
    key = BlobStore.key_for(b"never written")
    for attempt in (blobs.get_async(key), blobs.get_many_async([key])):
        with pytest.raises(BlobNotFoundError) as caught:
            await attempt
        assert key in str(caught.value) and blobs._store.url in str(caught.value)
    with pytest.raises(BlobNotFoundError, match=key):
        blobs.get(key)


@pytest.mark.parametrize(
    "key",
    ["", "sha256:", "sha256:abc", "md5:" + "0" * 64, "sha256:" + "A" * 64, "sha256:../" + "0" * 61, "0" * 64],
)
async def test_a_malformed_key_is_refused_before_any_round_trip(tmp_path: Path, key: str) -> None:
    blobs = local_blobs(tmp_path / "store")
    with pytest.raises(ValueError, match="not a blob key"):
        await blobs.get_async(key)
    with pytest.raises(ValueError, match="not a blob key"):
        await blobs.get_many_async([BlobStore.key_for(b"x"), key])
    with pytest.raises(ValueError, match="not a blob key"):
        blobs.get(key)


async def test_blobs_written_before_the_object_store_are_read_through_it(tmp_path: Path) -> None:
    """Today's layout: a file at <data_dir>/blobs/<hex[:2]>/<hex[2:]>, written by the old BlobStore.
    The default store is the data directory, so a run in flight keeps its transcripts and edits."""
    data_dir = tmp_path / "data"
    digest = hashlib.sha256(TRANSCRIPT).hexdigest()
    old = data_dir / "blobs" / digest[:2] / digest[2:]
    old.parent.mkdir(parents=True)
    old.write_bytes(TRANSCRIPT)

    blobs = settings_blobs(Settings.model_validate({"FORGEFLOW_DATA_DIR": str(data_dir)}))
    assert await blobs.get_async(f"sha256:{digest}") == TRANSCRIPT
    key = await blobs.put_async(b"new content")  # and new blobs land in the same layout
    assert (data_dir / "blobs" / key[7:9] / key[9:]).read_bytes() == b"new content"


async def test_on_s3_a_blob_is_one_object_under_the_prefix(s3_env: S3Server, tmp_path: Path) -> None:
    blobs = BlobStore(ObjectStore(s3_env.url(f"runs/{tmp_path.name}")))
    key = await blobs.put_async(TRANSCRIPT)
    digest = key.removeprefix("sha256:")
    bucket = ObjectStore(s3_env.url())  # the whole bucket: the blob's full object key
    assert await bucket.get_async(f"runs/{tmp_path.name}/blobs/{digest[:2]}/{digest[2:]}") == TRANSCRIPT
    fresh = BlobStore(ObjectStore(s3_env.url(f"runs/{tmp_path.name}")))  # another worker on the same store
    assert await fresh.get_async(key) == TRANSCRIPT


async def test_a_blob_this_process_wrote_or_read_is_read_again_from_memory(tmp_path: Path) -> None:
    store = ObjectStore(str(tmp_path / "store"))
    writer = BlobStore(store)
    key = await writer.put_async(TRANSCRIPT)
    assert await writer.get_async(key) == TRANSCRIPT
    assert await writer.get_many_async([key]) == {key: TRANSCRIPT}
    assert store.requests["get"] == 0  # the worker that wrote it: no round trip

    reader = BlobStore(store)  # another worker on the same store: one round trip, then none
    assert [await reader.get_async(key) for _ in range(3)] == [TRANSCRIPT] * 3
    assert store.requests["get"] == 1

    with pytest.raises(BlobNotFoundError):  # what the store has not is still missing
        await writer.get_async(BlobStore.key_for(b"never written"))


@pytest.mark.parametrize(
    ("steps", "kept"),
    [
        # limit 100 bytes; each step keeps (k) or reads (g) a key; a to e hold 25 bytes, big 26
        (["k a", "k b", "k c", "k d"], {"a", "b", "c", "d"}),
        (["k a", "k b", "k c", "k d", "k e"], {"b", "c", "d", "e"}),  # 125 > 100: the least recent goes
        (["k a", "k b", "k c", "k d", "g a", "k e"], {"a", "c", "d", "e"}),  # a read makes a key recent
        (["k a", "k b", "k c", "k d", "k a", "k e"], {"a", "c", "d", "e"}),  # and so does keeping it again
        (["k a", "k big"], {"a"}),  # more than a quarter of the limit: not kept
    ],
)
def test_recent_keeps_the_blobs_last_used_within_its_limit(steps: list[str], kept: set[str]) -> None:
    sizes = {"a": 25, "b": 25, "c": 25, "d": 25, "e": 25, "big": 26}
    recent = Recent(limit=100)
    for step in steps:
        op, key = step.split()
        if op == "k":
            recent.keep(key, b"x" * sizes[key])
        else:
            assert recent.get(key) == b"x" * sizes[key]
    assert {key for key in sizes if recent.get(key) is not None} == kept
