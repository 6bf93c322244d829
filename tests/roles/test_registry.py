"""The role registry and the role names the contracts use are one list."""

from typing import get_args

import pytest
from pydantic import ValidationError

from contracts.agents import ROLE_NAMES, Role
from contracts.run import IssueInput
from roles import ROLES
from roles.tools import DEFINITIONS


def test_registry_covers_exactly_the_contract_role_names() -> None:
    assert tuple(ROLES) == ROLE_NAMES == get_args(Role)


def test_each_role_is_registered_under_its_own_name() -> None:
    assert all(name == spec.name for name, spec in ROLES.items())


def test_every_role_tool_is_defined() -> None:
    assert all(name in DEFINITIONS for spec in ROLES.values() for name in spec.tool_names)


def test_per_agent_models_accept_every_role_and_nothing_else() -> None:
    models = {name: "m" for name in ROLES}
    assert IssueInput(repo="/tmp/r", spec_content="s", models=models).models == models
    with pytest.raises(ValidationError, match=r"models\.designer"):
        IssueInput.model_validate({"repo": "/tmp/r", "spec_content": "s", "models": {"designer": "m"}})
