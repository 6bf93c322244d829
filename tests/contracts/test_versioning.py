"""A contract crossing a version boundary skips the fields a newer version added; what a person or
the model writes names an unknown field as an error. Checked through the data converter the
workers use, as a payload of a newer worker would arrive."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from temporalio.contrib.pydantic import pydantic_data_converter

from contracts import agents
from contracts.agents import ChangeSummary, Plan, Review
from contracts.codehost import FetchTaskInput
from contracts.run import GateDecision, IssueInput, RunBudgets
from contracts.testing import RunTestsInput, TestReport
from contracts.tools import ToolCallInput

NEWER = {"added_in_a_newer_version": {"any": "shape"}}

# A newer worker's test report: an unknown field at the top and inside its nested reports.
REPORT: dict[str, Any] = {
    "commit_sha": "abc",
    "command": ["pytest"],
    "status": "passed",
    "install": {"command": ["npm", "ci"], "cached": True, **NEWER},
    "limits": {"wall_seconds": 1, "cpu_seconds": 1, "memory_bytes": 1, "max_processes": 1, "output_bytes": 1, **NEWER},
    **NEWER,
}
DURABLE_CASES: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (TestReport, REPORT),
    (FetchTaskInput, {"repo": "acme/calc", "issue_number": 7}),
    (RunTestsInput, {"repo_path": "/r", "commit_sha": "abc"}),
    (
        ToolCallInput,
        {
            "role": "coder",
            "run_id": "r",
            "tool_use_id": "t",
            "name": "read_file",
            "input": {},
            "workspace": {"repo": "/r", "base_sha": "abc", **NEWER},
        },
    ),
]


def through_the_converter(value: dict[str, Any], kind: type[BaseModel]) -> BaseModel:
    converter = pydantic_data_converter.payload_converter
    decoded = converter.from_payloads(converter.to_payloads([value]), [kind])[0]
    assert isinstance(decoded, kind)
    return decoded


@pytest.mark.parametrize(("kind", "value"), DURABLE_CASES, ids=[kind.__name__ for kind, _ in DURABLE_CASES])
def test_what_crosses_a_version_boundary_skips_a_newer_field(kind: type[BaseModel], value: dict[str, Any]) -> None:
    decoded = through_the_converter({**value, **NEWER}, kind)
    assert "added_in_a_newer_version" not in decoded.model_dump()


def test_the_newer_report_keeps_every_field_this_version_knows() -> None:
    report = through_the_converter(REPORT, TestReport)
    assert isinstance(report, TestReport)
    assert report.install is not None and report.install.cached and report.limits is not None


STRICT_CASES: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (IssueInput, {"repo": "acme/calc", "issue_number": 7}),
    (RunBudgets, {}),
    (GateDecision, {"comment": "ok"}),
    (Plan, {"summary": "s", "tasks": [{"id": "1", "title": "t"}]}),
    (ChangeSummary, {"summary": "s", "commit_message": "m"}),
    (agents.TesterReport, {"summary": "s"}),  # by its module: pytest would collect a Test* name
    (Review, {"verdict": "approve", "summary": "s"}),
]


@pytest.mark.parametrize(("kind", "value"), STRICT_CASES, ids=[kind.__name__ for kind, _ in STRICT_CASES])
def test_what_people_and_the_model_write_names_an_unknown_field(kind: type[BaseModel], value: dict[str, Any]) -> None:
    kind.model_validate(value)  # valid as written
    with pytest.raises(ValidationError, match="added_in_a_newer_version"):
        kind.model_validate({**value, **NEWER})
