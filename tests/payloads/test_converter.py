"""payloads/converter.py: the data converter every client of forgeflow uses."""

from __future__ import annotations

import importlib
import json
import pkgutil
import types
import typing
from pathlib import Path

from pydantic import BaseModel

from config.settings import Settings
from contracts.agents import Workspace
from contracts.codehost import TaskSpec
from contracts.run import IssueInput
from payloads.converter import SharedPydanticPayloadConverter, data_converter


def test_every_payload_converter_the_sdk_builds_is_the_one_built_first(tmp_path: Path) -> None:
    converter = data_converter(Settings.model_validate({"FORGEFLOW_DATA_DIR": str(tmp_path)}))
    built = [converter.payload_converter_class() for _ in range(3)]
    assert built[0] is built[1] is built[2]
    ws = Workspace(repo="/r", base_sha="0" * 40, overlay={"a.py": None})
    (payload,) = built[0].to_payloads([ws])
    assert built[2].from_payloads([payload], [Workspace]) == [ws]


def test_a_field_that_is_none_travels_as_nothing_and_comes_back_none() -> None:
    converter = SharedPydanticPayloadConverter()
    task = TaskSpec(title="t", body="b", source="spec", base_sha="0" * 40, base_branch="main", head_sha=None)
    (payload,) = converter.to_payloads([task])
    assert b"null" not in payload.data and b"head_sha" not in payload.data
    assert converter.from_payloads([payload], [TaskSpec]) == [task]
    # None as data, not as a field: a deleted file in an overlay, a tool input's null, a list's item.
    ws = Workspace(repo="/r", base_sha="0" * 40, overlay={"gone.py": None})
    (payload,) = converter.to_payloads([ws])
    assert b'"gone.py":null' in payload.data
    assert converter.from_payloads([payload], [Workspace]) == [ws]
    (free,) = converter.to_payloads([{"input": {"path": None}, "items": [None]}])
    assert json.loads(free.data) == {"input": {"path": None}, "items": [None]}


def _nullable(annotation: object) -> bool:
    if annotation is type(None):
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_nullable(arg) for arg in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _nullable(typing.get_args(annotation)[0])
    return False


# The packages whose models travel through Temporal (as inputs, results, signals, queries, markers).
TRAVELLING = ("contracts", "activities", "workflows", "roles", "policy", "payloads", "storage", "telemetry", "graphs")


def _models() -> list[type[BaseModel]]:
    found: dict[type[BaseModel], None] = {}
    for name in TRAVELLING:
        package = importlib.import_module(name)
        modules = [package] + [
            importlib.import_module(info.name) for info in pkgutil.walk_packages(package.__path__, f"{name}.")
        ]
        for module in modules:
            for value in vars(module).values():
                if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == module.__name__:
                    found[value] = None
    return list(found)


def test_every_model_that_can_travel_defaults_each_field_that_may_be_none_to_none() -> None:
    """What makes leaving None out lossless: a field left out is read back as its default."""
    models = _models()
    assert len(models) > 80 and TaskSpec in models and IssueInput in models
    wrong = [
        f"{model.__module__}.{model.__name__}.{name}"
        for model in models
        for name, field in model.model_fields.items()
        if _nullable(field.annotation) and (field.is_required() or field.default is not None)
    ]
    assert wrong == []
