"""The object store's contract, held by both backends: a local directory and a real S3-protocol
server (moto, through obstore's own HTTP and SigV4 client)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.store import SETTING, ObjectMissing, ObjectStore, StorageError
from testkit.s3 import S3Server

MEGABYTE = bytes(range(256)) * 4096


@pytest.fixture(params=["local", "s3", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    """A fresh store of each kind: a directory of its own, a prefix of its own in the bucket, or the
    in-memory store the storage benchmark measures against."""
    if request.param == "local":
        yield ObjectStore((tmp_path / "store").as_uri())
    elif request.param == "memory":
        yield ObjectStore.in_memory()
    else:
        s3: S3Server = request.getfixturevalue("s3_env")
        yield ObjectStore(s3.url(f"tests/{tmp_path.name}"))


async def test_put_then_get_returns_the_bytes(store: ObjectStore) -> None:
    for key, data in [("empty", b""), ("small", b"hello"), ("big", MEGABYTE), ("a/b/c.txt", b"nested")]:
        await store.put_async(key, data)
        assert await store.get_async(key) == data
        assert store.get(key) == data


async def test_writing_the_same_content_twice_is_harmless(store: ObjectStore) -> None:
    await store.put_async("same", b"content")
    await store.put_async("same", b"content")
    store.put("same", b"content")
    assert await store.get_async("same") == b"content"


async def test_exists(store: ObjectStore) -> None:
    assert not await store.exists_async("k/1") and not store.exists("k/1")
    store.put("k/1", b"x")
    assert await store.exists_async("k/1") and store.exists("k/1")
    assert not store.exists("k")  # a key's prefix is not an object


async def test_a_missing_key_names_the_key_and_the_store(store: ObjectStore) -> None:
    with pytest.raises(ObjectMissing, match=r"'no/such/key'") as async_err:
        await store.get_async("no/such/key")
    with pytest.raises(ObjectMissing) as sync_err:
        store.get("no/such/key")
    for err in (async_err.value, sync_err.value):
        assert err.key == "no/such/key" and store.url in str(err)
        assert isinstance(err, StorageError) and isinstance(err, LookupError)


async def test_sync_and_async_see_the_same_objects(store: ObjectStore) -> None:
    store.put("from/sync", b"1")
    await store.put_async("from/async", b"2")
    assert await store.get_async("from/sync") == b"1" and store.get("from/async") == b"2"


async def test_check_passes_on_a_working_store(store: ObjectStore) -> None:
    await store.check()
    await store.check()


def test_the_kind(tmp_path: Path, s3_env: S3Server) -> None:
    assert ObjectStore(str(tmp_path)).kind == "local"  # a plain absolute path is a local store too
    assert ObjectStore(s3_env.url("p")).kind == "s3"
    assert ObjectStore.in_memory().kind == "memory"


def test_no_url_names_the_in_memory_store() -> None:
    """Workers in two processes could not share one: only a benchmark builds it, in code."""
    with pytest.raises(StorageError, match="use a local directory"):
        ObjectStore("memory://")


async def test_requests_are_counted_by_operation(store: ObjectStore) -> None:
    await store.put_async("a", b"1")
    store.put("b", b"2")
    assert await store.get_async("a") == b"1"
    assert not await store.exists_async("missing") and store.exists("b")
    with pytest.raises(ObjectMissing):
        store.get("missing")
    assert store.requests == {"put": 2, "get": 2, "head": 2}


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("relative/dir", "absolute path"),
        ("s3:///prefix", "name a bucket"),
        ("ftp://host/dir", "s3://bucket/prefix"),
        ("gs://bucket/dir", "s3://bucket/prefix"),
    ],
)
def test_an_unusable_url_names_the_setting(url: str, says: str) -> None:
    with pytest.raises(StorageError, match=SETTING) as err:
        ObjectStore(url)
    assert says in str(err.value)


def test_the_url_shown_never_holds_a_password() -> None:
    with pytest.raises(StorageError) as err:
        ObjectStore("ftp://user:hunter2@host/dir")
    assert "hunter2" not in str(err.value)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed when the socket is: nothing listens there


async def _check_fails(store: ObjectStore, *named: str) -> str:
    with pytest.raises(StorageError) as err:
        await store.check()
    message = str(err.value)
    assert SETTING in message and store.url in message and "\n" not in message
    assert all(name in message for name in named), message
    return message


async def test_check_names_the_settings_for_a_closed_endpoint(
    s3_env: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    await _check_fails(ObjectStore(s3_env.url("x"), retries=0), "AWS_ENDPOINT_URL")


async def test_check_names_a_missing_bucket(s3_env: S3Server) -> None:
    store = ObjectStore("s3://no-such-bucket/x", retries=0)
    await _check_fails(store, "NoSuchBucket")
    with pytest.raises(StorageError) as err:  # a setting to fix, not a missing object
        await store.get_async("k")
    assert not isinstance(err.value, ObjectMissing) and "NoSuchBucket" in str(err.value)


@pytest.mark.parametrize(
    ("variable", "code"),
    [("AWS_SECRET_ACCESS_KEY", "SignatureDoesNotMatch"), ("AWS_ACCESS_KEY_ID", "InvalidAccessKeyId")],
)
async def test_check_refuses_wrong_credentials(
    s3_env: S3Server, monkeypatch: pytest.MonkeyPatch, variable: str, code: str
) -> None:
    """The test server enforces SigV4 authentication (testkit/s3.py), as AWS and MinIO do."""
    monkeypatch.setenv(variable, "wrong" + os.environ[variable][5:])
    message = await _check_fails(ObjectStore(s3_env.url("x"), retries=0), variable, code)
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in message and s3_env.secret_access_key not in message


def test_a_directory_that_cannot_be_made_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match=SETTING):
        ObjectStore((blocker / "store").as_uri())
