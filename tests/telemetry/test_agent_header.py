"""telemetry/agents.py reads the agent header a workflow wrote with its payload converter."""

from __future__ import annotations

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter

from telemetry.agents import _agent_in


@pytest.mark.parametrize("name", ["planner", "reviewer:security", "ünïcode"])
def test_the_agent_as_the_workflow_wrote_it(name: str) -> None:
    payload = DataConverter.default.payload_converter.to_payload(name)
    assert _agent_in(payload) == name


def test_a_header_that_is_not_a_name_names_no_agent() -> None:
    assert _agent_in(Payload(metadata={"encoding": b"json/plain"}, data=b'{"not": "a name"}')) is None
