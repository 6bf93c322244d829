"""The one data converter every client of forgeflow uses (worker, starter, CLI, codec server):
pydantic models as JSON without their empty fields, encrypted when a key ring is configured
(FORGEFLOW_CODEC_KEYS, or the file FORGEFLOW_CODEC_KEYS_FILE names), large ones stored outside history."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from pydantic import SecretStr
from pydantic_core import to_json
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter, pydantic_data_converter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)

from config.settings import Settings
from payloads.codec import AesGcmCodec, CodecError, parse_keys
from payloads.storage import external_storage


def key_ring(settings: Settings) -> str | None:
    """The key ring's JSON, from FORGEFLOW_CODEC_KEYS or the file FORGEFLOW_CODEC_KEYS_FILE names (not
    both); None when neither is set, or set empty (as docker-compose passes an unset variable)."""
    inline = settings.codec_keys.get_secret_value().strip() if settings.codec_keys else ""
    if settings.codec_keys_file is None:
        return inline or None
    if inline:
        raise CodecError("set FORGEFLOW_CODEC_KEYS or FORGEFLOW_CODEC_KEYS_FILE, not both")
    try:
        return settings.codec_keys_file.read_text().strip() or None
    except OSError as err:
        raise CodecError(
            f"FORGEFLOW_CODEC_KEYS_FILE {settings.codec_keys_file} cannot be read: {err.strerror}"
        ) from None


def with_key_ring_read(settings: Settings) -> Settings:
    """`settings` with the ring of FORGEFLOW_CODEC_KEYS_FILE read into memory. A worker calls this once
    at start-up: the file may be a pipe (/dev/fd/N from the worker that started it), which holds the
    ring for one read, while the process builds several clients."""
    if settings.codec_keys_file is None:
        return settings
    ring = key_ring(settings)
    return settings.model_copy(
        update={"codec_keys": None if ring is None else SecretStr(ring), "codec_keys_file": None}
    )


def codec(settings: Settings) -> AesGcmCodec | None:
    ring = key_ring(settings)
    return None if ring is None else AesGcmCodec(parse_keys(ring))


class NoneLeftOutJSON(PydanticJSONPlainPayloadConverter):
    """The SDK's pydantic JSON, less each model field whose value is None: `"head_sha":null` and its
    like were about a tenth of a plan-mode run's history (issue 14). Reading fills them back in, as
    every field that may be None defaults to None (tests/payloads/test_converter.py checks every
    model that can travel); None inside free-form data, such as a deletion in a workspace's overlay
    or a tool's input, stays, because only model fields are left out."""

    def to_payload(self, value: Any) -> Payload | None:
        return Payload(metadata={"encoding": self.encoding.encode()}, data=to_json(value, exclude_none=True))


class SharedPydanticPayloadConverter(CompositePayloadConverter):
    """The SDK's default payload converters with NoneLeftOutJSON for JSON, built once per process. The
    SDK builds a data converter, and with it a payload converter, for every workflow activation and
    for every payload it sends to external storage: 2-4% of a busy worker's main thread (issue 14).
    The converter holds nothing of a run (its one state is a cache of pydantic type adapters, which
    every run may then share), so each of those gets this one."""

    _the_one: ClassVar[SharedPydanticPayloadConverter | None] = None

    def __new__(cls) -> SharedPydanticPayloadConverter:
        if cls._the_one is None:
            one = super().__new__(cls)
            json = NoneLeftOutJSON()
            CompositePayloadConverter.__init__(
                one,
                *(
                    json if isinstance(c, JSONPlainPayloadConverter) else c
                    for c in DefaultPayloadConverter.default_encoding_payload_converters
                ),
            )
            cls._the_one = one
        return cls._the_one

    def __init__(self) -> None:
        """Built in __new__, once."""


def data_converter(settings: Settings) -> DataConverter:
    return dataclasses.replace(
        pydantic_data_converter,
        payload_converter_class=SharedPydanticPayloadConverter,
        payload_codec=codec(settings),
        external_storage=external_storage(settings),
    )
