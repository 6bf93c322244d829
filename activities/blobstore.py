"""A content-addressed blob store on disk: workflow history carries keys, not contents.

Keys are `sha256:<hex>` of the bytes, so writing the same content twice (an activity retry)
is harmless and any worker sharing the directory reads the same bytes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class BlobNotFoundError(KeyError):
    """The key is not in this store (a worker without the shared blob directory?)."""


class BlobStore:
    def __init__(self, root: Path) -> None:
        self._root = root
        root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key_for(data: bytes) -> str:
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def _path(self, key: str) -> Path:
        algo, _, digest = key.partition(":")
        if algo != "sha256" or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a blob key: {key!r}")
        return self._root / digest[:2] / digest[2:]

    def put(self, data: bytes) -> str:
        key = self.key_for(data)
        path = self._path(key)
        if path.exists():
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)  # atomic: readers never see a partial blob
        return key

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise BlobNotFoundError(f"blob {key} is not in {self._root}") from None
