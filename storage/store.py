"""Where everything a run needs beyond its history is kept: one object store, named by one URL.

`FORGEFLOW_STORAGE_URL` is a local directory by default (`file:///…`, or a plain absolute path), or
`s3://bucket/prefix` for S3 and S3-compatible stores (MinIO, Ceph, R2, …), configured by the standard
AWS variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` or
`AWS_DEFAULT_REGION`). The client is obstore (the Rust `object_store` crate's Python binding): one API
for both, async and sync, with its own retries, and no hand-written HTTP.

Objects are written whole and never changed: keys name content (a hash, a tree id, a normalised
query), so writing one twice is harmless and two workers never disagree about a key.
"""

from __future__ import annotations

import os
import re
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import obstore
from obstore.exceptions import BaseError
from obstore.store import LocalStore, MemoryStore, S3Store

SETTING = "FORGEFLOW_STORAGE_URL"
_AWS_SETTINGS = "AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION"


class StorageError(Exception):
    """The store could not be used; the message names the setting to look at."""


class ObjectMissing(StorageError, LookupError):
    """No object under the key."""

    def __init__(self, store: ObjectStore, key: str) -> None:
        super().__init__(f"object {key!r} is not in the store {store.url}")
        self.key = key


class ObjectStore:
    """An object store: put, get and check objects by key (`a/b/c`, no leading slash)."""

    def __init__(self, url: str, *, retries: int = 10) -> None:
        """`retries`: how often obstore retries a failed request (connection errors, 5xx) before
        giving up; a test of an unreachable endpoint passes 0 to fail at once."""
        self.url = _without_userinfo(url)
        self._store: LocalStore | S3Store | MemoryStore = _open(url, retries)
        # What this store was asked, by operation (put, get, head): one request each to S3.
        self.requests: Counter[str] = Counter()

    @classmethod
    def in_memory(cls) -> ObjectStore:
        """A store in this process's memory, costing no I/O: the floor the storage benchmark measures
        against. No URL names one, so no worker can be configured with it."""
        store = cls.__new__(cls)
        store.url, store._store, store.requests = "memory://", MemoryStore(), Counter()
        return store

    @property
    def kind(self) -> str:
        return {S3Store: "s3", LocalStore: "local"}.get(type(self._store), "memory")

    # --- async: what activities use --------------------------------------------------------

    async def put_async(self, key: str, data: bytes) -> None:
        self.requests["put"] += 1
        try:
            await obstore.put_async(self._store, key, data)
        except (BaseError, OSError) as err:
            raise self._failed("write", key, err) from None

    async def get_async(self, key: str) -> bytes:
        self.requests["get"] += 1
        try:
            found = await obstore.get_async(self._store, key)
            return bytes(await found.bytes_async())
        except FileNotFoundError as err:
            if _NO_BUCKET in str(err):  # S3 says 404 for a missing bucket too: a setting, not a key
                raise self._failed("read", key, err) from None
            raise ObjectMissing(self, key) from None
        except (BaseError, OSError) as err:
            raise self._failed("read", key, err) from None

    async def exists_async(self, key: str) -> bool:
        self.requests["head"] += 1
        try:
            await obstore.head_async(self._store, key)
        except FileNotFoundError:
            return False
        except (BaseError, OSError) as err:
            raise self._failed("look up", key, err) from None
        return True

    # --- sync: for code that runs in a thread already ---------------------------------------

    def put(self, key: str, data: bytes) -> None:
        self.requests["put"] += 1
        try:
            obstore.put(self._store, key, data)
        except (BaseError, OSError) as err:
            raise self._failed("write", key, err) from None

    def get(self, key: str) -> bytes:
        self.requests["get"] += 1
        try:
            return bytes(obstore.get(self._store, key).bytes())
        except FileNotFoundError as err:
            if _NO_BUCKET in str(err):
                raise self._failed("read", key, err) from None
            raise ObjectMissing(self, key) from None
        except (BaseError, OSError) as err:
            raise self._failed("read", key, err) from None

    def exists(self, key: str) -> bool:
        self.requests["head"] += 1
        try:
            obstore.head(self._store, key)
        except FileNotFoundError:
            return False
        except (BaseError, OSError) as err:
            raise self._failed("look up", key, err) from None
        return True

    # --- health -----------------------------------------------------------------------------

    async def check(self) -> None:
        """Write, read back and delete a probe object: a worker calls this at start, so a wrong
        endpoint, bucket or credential stops it there, naming the setting, not a run later."""
        key = f".forgeflow-probe/{uuid.uuid4().hex}"
        try:
            await self.put_async(key, b"probe")
            if await self.get_async(key) != b"probe":
                raise StorageError(f"the store {self.url} ({SETTING}) returned other bytes than were written")
            await obstore.delete_async(self._store, key)
        except ObjectMissing:
            raise StorageError(f"the store {self.url} ({SETTING}) lost an object just written") from None
        except (BaseError, OSError) as err:
            raise self._failed("delete", key, err) from None

    def _failed(self, what: str, key: str, err: Exception) -> StorageError:
        settings = SETTING if self.kind == "local" else f"{SETTING}, {_AWS_SETTINGS}"
        return StorageError(f"could not {what} {key!r} in the store {self.url} (check {settings}): {_reason(err)}")


_NO_BUCKET = "<Code>NoSuchBucket</Code>"
_S3_ERROR = re.compile(r"<Code>(?P<code>[^<]*)</Code>(?:<Message>(?P<message>[^<]*)</Message>)?")


def _reason(err: Exception) -> str:
    """One line from an obstore error: its first line without the XML body, plus the S3 error code
    and message from that body (`SignatureDoesNotMatch`, `NoSuchBucket`, ...) when there is one."""
    text = str(err).strip()
    if not text:
        return type(err).__name__
    first = text.splitlines()[0].split("<?xml")[0].rstrip(": ")
    found = _S3_ERROR.search(text)
    if found is None:
        return first
    message = f" ({found['message']})" if found["message"] else ""
    return f"{first}: {found['code']}{message}"


def _without_userinfo(url: str) -> str:
    """The URL as it may be logged and shown: never `user:password@` (the AWS_* variables hold keys)."""
    parsed = urlparse(url)
    if "@" not in parsed.netloc:
        return url
    return parsed._replace(netloc=parsed.netloc.rsplit("@", 1)[1]).geturl()


def _open(url: str, retries: int) -> LocalStore | S3Store:
    """The obstore store a URL names: a local directory (created) or an S3 bucket and prefix."""
    parsed, shown = urlparse(url), _without_userinfo(url)
    if parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme else url)
        if not path.is_absolute():
            raise StorageError(f"{SETTING}={shown!r}: a local store must be an absolute path or file:///absolute/path")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StorageError(f"{SETTING}={shown!r}: cannot create the directory: {err.strerror}") from None
        return LocalStore(path)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StorageError(f"{SETTING}={shown!r}: name a bucket, as in s3://bucket/prefix")
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
        try:
            return S3Store.from_url(
                url,
                client_options={"allow_http": endpoint.startswith("http://")},
                retry_config={"max_retries": retries},
            )
        except (BaseError, ValueError) as err:
            raise StorageError(f"{SETTING}={shown!r}: {err} (check {_AWS_SETTINGS})") from None
    raise StorageError(f"{SETTING}={shown!r}: use a local directory (file:///…) or s3://bucket/prefix")
