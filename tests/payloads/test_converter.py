"""payloads/converter.py: the data converter every client of forgeflow uses."""

from __future__ import annotations

from pathlib import Path

from config.settings import Settings
from contracts.agents import Workspace
from payloads.converter import data_converter


def test_every_payload_converter_the_sdk_builds_is_the_one_built_first(tmp_path: Path) -> None:
    converter = data_converter(Settings.model_validate({"FORGEFLOW_DATA_DIR": str(tmp_path)}))
    built = [converter.payload_converter_class() for _ in range(3)]
    assert built[0] is built[1] is built[2]
    ws = Workspace(repo="/r", base_sha="0" * 40, overlay={"a.py": None})
    (payload,) = built[0].to_payloads([ws])
    assert built[2].from_payloads([payload], [Workspace]) == [ws]
