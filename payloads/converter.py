"""The one data converter every client of forgeflow uses (worker, starter, CLI, codec server):
pydantic models as JSON, encrypted when FORGEFLOW_CODEC_KEYS is set, large ones stored outside history."""

from __future__ import annotations

import dataclasses

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

from config.settings import Settings
from payloads.codec import AesGcmCodec, parse_keys
from payloads.storage import external_storage


def codec(settings: Settings) -> AesGcmCodec | None:
    if settings.codec_keys is None or not settings.codec_keys.get_secret_value().strip():
        return None  # unset, or set to "" (as docker-compose passes an unset variable)
    return AesGcmCodec(parse_keys(settings.codec_keys.get_secret_value()))


def data_converter(settings: Settings) -> DataConverter:
    return dataclasses.replace(
        pydantic_data_converter, payload_codec=codec(settings), external_storage=external_storage(settings)
    )
