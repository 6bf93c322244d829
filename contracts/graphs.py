"""A LangGraph graph run as an agent (the `forgeflow[langgraph]` extra): the run_graph activity's input.

Add optional fields only; never rename a field once a run has used it.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from contracts.agents import ModelSpec, Role, Workspace
from contracts.run import GRAPH_PATH
from contracts.versioning import DURABLE


class GraphInput(BaseModel):
    model_config = DURABLE

    graph: str = Field(pattern=GRAPH_PATH, description="Import path of the compiled graph, module:attribute.")
    role: Role
    agent: str | None = Field(default=None, description="An extra reviewer's name; None for the role's own agent.")
    run_id: str
    invocation: int
    brief: str
    workspace: Workspace
    commit_sha: str | None = None
    model: ModelSpec
