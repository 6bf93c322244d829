"""The history codec with real AES-GCM: round trip, key rotation, tampering, bad key rings."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter

from config.settings import Settings
from payloads.codec import ENCODING, KEY_ID, AesGcmCodec, CodecError, new_key, parse_keys
from payloads.converter import data_converter

SECRET_TEXT = "def slugify(text, max_length=None): ...  # the model's code"


def plain() -> Payload:
    (payload,) = pydantic_data_converter.payload_converter.to_payloads([{"content": SECRET_TEXT}])
    return payload


def ring(**keys: str) -> dict[str, bytes]:
    return parse_keys(json.dumps(keys))


async def test_round_trip_hides_the_plaintext() -> None:
    codec = AesGcmCodec(ring(k1=new_key()))
    (sealed,) = await codec.encode([plain()])
    assert sealed.metadata["encoding"] == ENCODING and sealed.metadata[KEY_ID] == b"k1"
    assert b"slugify" not in sealed.SerializeToString()
    (opened,) = await codec.decode([sealed])
    assert opened == plain()


async def test_encryption_is_randomised() -> None:
    codec = AesGcmCodec(ring(k1=new_key()))
    first, second = await codec.encode([plain(), plain()])
    assert first.data != second.data


async def test_a_payload_written_with_an_old_key_still_decodes_after_rotation() -> None:
    old, new = new_key(), new_key()
    (written_before,) = await AesGcmCodec(ring(k1=old)).encode([plain()])
    rotated = AesGcmCodec(ring(k2=new, k1=old))  # the new key is active, the old one kept to read
    (written_after,) = await rotated.encode([plain()])
    assert written_after.metadata[KEY_ID] == b"k2"
    assert await rotated.decode([written_before, written_after]) == [plain(), plain()]
    with pytest.raises(CodecError, match="encrypted with key 'k1', which is not in this key ring"):
        await AesGcmCodec(ring(k2=new)).decode([written_before])  # the old key retired too early


async def test_tampering_and_relabelling_are_refused() -> None:
    k1, k2 = new_key(), new_key()
    codec = AesGcmCodec(ring(k1=k1, k2=k2))
    (sealed,) = await codec.encode([plain()])
    flipped = Payload(metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(CodecError, match="does not decrypt with key 'k1'"):
        await codec.decode([flipped])
    relabelled = Payload(metadata={**sealed.metadata, KEY_ID: b"k2"}, data=sealed.data)
    with pytest.raises(CodecError, match="does not decrypt with key 'k2'"):
        await codec.decode([relabelled])


async def test_malformed_payloads_are_codec_errors() -> None:
    """The codec server decrypts what strangers send: each malformation must be a CodecError (a 400),
    never a crash of the handler."""
    key = new_key()
    codec = AesGcmCodec(ring(k1=key))
    not_utf8 = Payload(metadata={"encoding": ENCODING, KEY_ID: b"\xff\xfek1"}, data=b"x" * 40)
    with pytest.raises(CodecError, match="encryption-key-id is not UTF-8"):
        await codec.decode([not_utf8])
    short = Payload(metadata={"encoding": ENCODING, KEY_ID: b"k1"}, data=b"x" * 27)
    with pytest.raises(CodecError, match="27 bytes, too short to hold a nonce and a tag"):
        await codec.decode([short])
    nonce = b"n" * 12  # sealed with the right key, but around bytes that are not a Payload
    sealed = AESGCM(base64.b64decode(key)).encrypt(nonce, b"\xff\xff\xff", b"k1")
    garbage = Payload(metadata={"encoding": ENCODING, KEY_ID: b"k1"}, data=nonce + sealed)
    with pytest.raises(CodecError, match="is not a Temporal payload"):
        await codec.decode([garbage])


async def test_unencrypted_payloads_pass_through() -> None:
    """Runs started before the codec was turned on still read."""
    codec = AesGcmCodec(ring(k1=new_key()))
    assert await codec.decode([plain()]) == [plain()]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "is not JSON"),
        ("[]", "must be a JSON object"),
        ("{}", "must be a JSON object"),
        ('{"k1": "%%%"}', "'k1' is not base64"),
        (json.dumps({"k1": base64.b64encode(b"short").decode()}), "'k1' is 5 bytes; AES-256 needs 32"),
    ],
)
def test_bad_key_rings_are_named(text: str, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        parse_keys(text)


@pytest.mark.parametrize(
    ("value", "on"), [(None, False), ("", False), (json.dumps({"k": new_key()}), True)], ids=["unset", "empty", "a-key"]
)
def test_one_setting_turns_the_codec_on(value: str | None, on: bool) -> None:
    settings = Settings.model_validate({} if value is None else {"FORGEFLOW_CODEC_KEYS": value})
    converter = data_converter(settings)
    assert (converter.payload_codec is not None) is on
    assert converter.external_storage is not None  # large payloads go outside history either way
