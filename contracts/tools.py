"""One tool call made by an agent, executed as one activity."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from contracts.agents import Role, Workspace
from contracts.versioning import DURABLE

# The tools that change the workspace: the agent loop runs a turn that calls one in order, and the
# tool activity holds the tester to test files with them. Tool names are durable (they are in histories).
WRITE_TOOLS = frozenset({"write_file", "str_replace", "insert"})
# The workspace tools that only read. A turn whose calls are all among these (and `submit`) has them
# run inside its model-turn activity (contracts.model.ReadScope), not one local activity each.
READ_TOOLS = frozenset({"list_files", "read_file", "search", "view_diff"})


class ToolCallInput(BaseModel):
    model_config = DURABLE

    role: Role
    run_id: str
    tool_use_id: str
    name: str
    input: dict[str, Any]
    workspace: Workspace
    tests_only: bool | None = Field(
        default=None,
        description="The role may write test files only (RoleSpec.tests_only). None: sent by a workflow "
        "from before this field, where the tester alone was limited.",
    )


class ToolCallResult(BaseModel):
    """What a tool answered. A long answer travels by content key, so history holds it once (in the
    blob store) instead of twice (this result and the next model turn's input): `content` is then a
    short preview for people reading the history, and the model reads the blob (see
    contracts.model.result_block)."""

    tool_use_id: str
    content: str
    content_key: str | None = Field(
        default=None, description="Blob key of the whole answer, when it is too long to travel inline."
    )
    is_error: bool = False
    overlay_updates: dict[str, str | None] = Field(
        default_factory=dict, description="Paths this call changed: new blob key, or None if deleted."
    )
