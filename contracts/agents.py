"""What each agent submits (its structured result) and what an agent run takes and returns."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, Field

from contracts.commands import CommandAccess
from contracts.repo import Repo
from contracts.testing import TestFailure, TestReport
from contracts.usage import AgentUsage
from contracts.versioning import DURABLE, STRICT

__all__ = [
    "DEFAULT_MAX_TURNS",
    "DEFAULT_MODEL",
    "ROLE_NAMES",
    "AgentInput",
    "AgentResult",
    "ChangeSummary",
    "ModelSpec",
    "Plan",
    "PlanTask",
    "Review",
    "ReviewComment",
    "Role",
    "TestFailure",
    "TestReport",
    "TesterReport",
    "Workspace",
]

# The role names live here, not in roles/, because contracts (AgentInput.role, IssueInput.models)
# need them and must not import roles/. `roles.ROLES` is keyed by exactly these (a test checks it).
Role = Literal["planner", "coder", "tester", "reviewer"]
ROLE_NAMES: tuple[Role, ...] = get_args(Role)

DEFAULT_MODEL = "claude-sonnet-4-6"  # the Claude model an agent uses unless the run or its role names another
DEFAULT_MAX_TURNS = 40  # model turns per agent run, unless the role or the run's budget says fewer


class PlanTask(BaseModel):
    id: str
    title: str
    files: list[str] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list)


class Plan(BaseModel):
    """The planner's submission."""

    model_config = STRICT

    summary: str
    tasks: list[PlanTask] = Field(min_length=1)
    risks: list[str] = Field(default_factory=list)
    test_strategy: str = ""
    research_used: bool = False


class ChangeSummary(BaseModel):
    """The coder's submission."""

    model_config = STRICT

    summary: str
    commit_message: str = Field(min_length=1, max_length=2000)


class TesterReport(BaseModel):
    """The tester's submission; the counts that routing trusts come from the sandbox, not from here."""

    model_config = STRICT

    summary: str


class ReviewComment(BaseModel):
    path: str
    line: int | None = None
    severity: Literal["info", "minor", "major", "critical"] = "minor"
    category: Literal["bug", "performance", "security", "style", "tests"] = "bug"
    body: str


class Review(BaseModel):
    """The reviewer's submission."""

    model_config = STRICT

    verdict: Literal["approve", "request_changes"]
    summary: str
    comments: list[ReviewComment] = Field(default_factory=list)


class Workspace(BaseModel):
    """A durable view of the code: a base commit plus the files changed on top of it.

    `overlay` maps a repository path to the blob key of its new content, or None when deleted.
    Contents live in the blob store; history carries only keys.
    """

    repo: Repo
    base_sha: str
    overlay: dict[str, str | None] = Field(default_factory=dict)
    origin_sha: str | None = Field(default=None, description="Where the run started; view_diff shows origin → here.")


class ModelSpec(BaseModel):
    provider: Literal["scripted", "anthropic"] = "anthropic"
    model: str = DEFAULT_MODEL
    script: str | None = Field(default=None, description="Scripted replay file (provider=scripted).")


class AgentInput(BaseModel):
    """One run of one agent: a child workflow."""

    model_config = DURABLE

    role: Role
    run_id: str = Field(description="The IssueWorkflow's workflow id.")
    invocation: int = Field(description="How many times this role ran before in this run (0-based).")
    brief: str = Field(description="The first user message: task, plan, failures, comments, feedback.")
    workspace: Workspace
    commit_sha: str | None = Field(default=None, description="The commit under test/review, if any.")
    commit_tree: str | None = Field(
        default=None, description="commit_sha's git tree id: the sandbox fetches its files from the object store."
    )
    test_command: list[str] | None = None
    install_command: list[str] | None = None
    commands: CommandAccess = Field(
        default="off", description="Sandboxed commands (run_command): off, read_only (changes discarded), write."
    )
    model: ModelSpec
    max_turns: int = DEFAULT_MAX_TURNS
    tokens_left: int | None = Field(default=None, description="Run budget left, in tokens; None: unlimited.")
    usd_left: float | None = Field(default=None, description="Run budget left, in USD; None: unlimited.")
    transcript_key: str | None = Field(default=None, description="Continue this role's earlier conversation.")
    carry_blocks: list[dict[str, Any]] = Field(
        default_factory=list, description="tool_result blocks owed to the earlier conversation's last turn."
    )
    instructions: str | None = Field(
        default=None, description="The repository's guidance for this agent (.forgeflow.yml), added to its prompt."
    )
    tools: list[str] | None = Field(
        default=None, description="The subset of the role's tools the repository allows; None: all of them."
    )
    agent: str | None = Field(
        default=None, description="An extra reviewer's name (e.g. security); None for the role's own agent."
    )


class AgentResult(BaseModel):
    role: Role
    submission: dict[str, Any] = Field(description="The role's result model, validated, as JSON.")
    workspace: Workspace
    usage: AgentUsage
    test_report: TestReport | None = Field(default=None, description="The tester's last sandbox run.")
    transcript_key: str | None = None
    carry_blocks: list[dict[str, Any]] = Field(default_factory=list)
