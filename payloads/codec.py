"""AES-GCM encryption of every payload forgeflow puts in Temporal (inputs, results, signals,
queries, memos), so workflow history holds no plaintext prompt, code or issue text.

Each encrypted payload names its key in its metadata, so keys rotate without breaking old runs:
new payloads use the active key, and any key still in the ring decrypts what it once wrote. The key
id is also the AES-GCM associated data, so a payload can't be relabelled to another key.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# cryptography is imported where a key is used, not with this module: its bindings are 6 MB of every
# process's memory (a worker's, the CLI's), and most deployments run without a key ring.

ENCODING = b"binary/encrypted"
CIPHER = b"AES-256-GCM"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12
TAG_BYTES = 16  # AES-GCM appends a 128-bit tag


class CodecError(ValueError):
    """A key ring that can't be used, or a payload that can't be decrypted; the message says why."""


def new_key() -> str:
    """A fresh 256-bit key, base64 (what FORGEFLOW_CODEC_KEYS holds)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


def parse_keys(text: str) -> dict[str, bytes]:
    """`{"key-id": "<base64 32 bytes>", ...}`, the active key first."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise CodecError(f"FORGEFLOW_CODEC_KEYS is not JSON: {err.msg}") from None
    if not isinstance(raw, dict) or not raw:
        raise CodecError('FORGEFLOW_CODEC_KEYS must be a JSON object {"key-id": "<base64 key>"}, active key first')
    keys = {}
    for key_id, value in raw.items():
        try:
            key = base64.b64decode(str(value), validate=True)
        except ValueError:
            raise CodecError(f"codec key {key_id!r} is not base64") from None
        if len(key) != 32:
            raise CodecError(f"codec key {key_id!r} is {len(key)} bytes; AES-256 needs 32 (forgeflow codec-key)")
        keys[str(key_id)] = key
    return keys


class AesGcmCodec(PayloadCodec):
    def __init__(self, keys: Mapping[str, bytes], active: str | None = None) -> None:
        if not keys:
            raise CodecError("the codec needs at least one key")
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._ciphers: dict[str, AESGCM] = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.active = active or next(iter(keys))
        if self.active not in self._ciphers:
            raise CodecError(f"the active codec key {self.active!r} is not in the key ring")

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return self.encrypt(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return self.decrypt(payloads)

    def encrypt(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._encrypt(p) for p in payloads]

    def decrypt(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decrypt(p) for p in payloads]

    def _encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.active].encrypt(nonce, payload.SerializeToString(), self.active.encode())
        return Payload(
            metadata={"encoding": ENCODING, "encryption-cipher": CIPHER, KEY_ID: self.active.encode()},
            data=nonce + sealed,
        )

    def _decrypt(self, payload: Payload) -> Payload:
        """Every way a payload can be wrong is a CodecError: the codec server decrypts what strangers
        send it, and anything else would surface there as a crash instead of a 400."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before the codec was turned on
        key_id = _key_id(payload)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise CodecError(f"payload was encrypted with key {key_id!r}, which is not in this key ring")
        if len(payload.data) < NONCE_BYTES + TAG_BYTES:
            raise CodecError(f"payload is {len(payload.data)} bytes, too short to hold a nonce and a tag")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        from cryptography.exceptions import InvalidTag  # imported already, with AESGCM

        try:
            plain = cipher.decrypt(nonce, sealed, key_id.encode())
        except InvalidTag:
            raise CodecError(f"payload does not decrypt with key {key_id!r} (altered, or a different key)") from None
        try:
            return Payload.FromString(plain)
        except DecodeError:  # authentic, so sealed by a key holder, but not by this codec
            raise CodecError(f"payload decrypted with key {key_id!r} is not a Temporal payload") from None


def _key_id(payload: Payload) -> str:
    raw = payload.metadata.get(KEY_ID, b"")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise CodecError(f"payload's {KEY_ID} is not UTF-8: {raw[:64]!r}") from None
