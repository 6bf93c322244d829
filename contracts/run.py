"""The run's input, live state and result: the IssueWorkflow's durable contract.

Add optional fields only; never rename a field once a run has used it.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from contracts.agents import (
    DEFAULT_MAX_TURNS,
    DEFAULT_MODEL,
    Plan,
    PlanTask,
    ReviewComment,
    Role,
    TestFailure,
    TestReport,
)
from contracts.repo import Repo
from contracts.usage import UsageTotals
from contracts.versioning import DURABLE, STRICT

Mode = Literal["autonomous", "plan", "review"]
GRAPH_AGENT = r"^(planner|coder|tester|reviewer)(:[a-z][a-z0-9_-]{0,31})?$"
GRAPH_PATH = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"  # module:attribute
DEFAULT_MODE: Mode = "autonomous"
DEFAULT_MAX_RETRIES = 3  # coder rounds after the first, shared by the test and review loops


class RunBudgets(BaseModel):
    """Per-run spending limits; a run that would pass one stops at the escalation gate."""

    model_config = STRICT

    max_turns_per_agent: int = Field(default=DEFAULT_MAX_TURNS, ge=1, le=500, description="Model turns per agent run.")
    max_total_turns: int = Field(default=300, ge=1, description="Model turns across the whole run.")
    max_tokens: int = Field(
        default=5_000_000,
        ge=1,
        description="Tokens across the run as billed: a cache read counts 0.1 of an input token, a cache write 1.25.",
    )
    max_usd: float = Field(default=25.0, gt=0, description="Estimated spend across the run, in USD.")


class HumanReviewComment(BaseModel):
    """One line comment of a person's review: where, and what they asked."""

    path: str
    line: int | None = None
    body: str


class HumanReview(BaseModel):
    """A person's review of forgeflow's pull request: the coder's context for its next round."""

    model_config = DURABLE

    reviewer: str = Field(description="The reviewer's GitHub login.")
    state: Literal["changes_requested", "commented"]
    body: str = ""
    comments: list[HumanReviewComment] = Field(default_factory=list)
    url: str | None = None


class IssueInput(BaseModel):
    """What `temporal workflow start --type IssueWorkflow --input '{...}'` accepts."""

    model_config = STRICT

    repo: Repo = Field(description="owner/name on GitHub, or an absolute path / file:// URL of a local git repo.")
    issue_number: int | None = Field(default=None, ge=1)
    pr_number: int | None = Field(default=None, ge=1)
    spec_content: str | None = Field(default=None, description="A written task instead of an issue.")
    mode: Mode = DEFAULT_MODE
    max_retries: int = Field(
        default=DEFAULT_MAX_RETRIES,
        ge=0,
        le=10,
        description="Coder rounds after the first, shared by test and review loops.",
    )
    require_plan_approval: bool = False
    gate_timeout_seconds: int = Field(
        default=7 * 24 * 3600, ge=1, description="How long a human gate waits before the run ends."
    )
    budgets: RunBudgets = Field(default_factory=RunBudgets)
    model_script: str | None = Field(
        default=None, description="Path of a scripted conversation to replay instead of calling Claude."
    )
    model: str = Field(default=DEFAULT_MODEL, min_length=1, description="Claude model id for the agents.")
    models: dict[Role, str] = Field(
        default_factory=dict, description="Per-agent model ids, overriding `model` and the roles' defaults."
    )
    test_command: list[str] | None = Field(
        default=None, min_length=1, description="Overrides .forgeflow.yml and the detected test command."
    )
    install_command: list[str] | None = Field(
        default=None, min_length=1, description="Dependency install step before the tests (e.g. npm ci)."
    )
    draft_pull_requests: bool = Field(default=True, description="Open pull requests as drafts.")
    ui_url: str | None = Field(
        default=None,
        description="Temporal UI base URL (e.g. http://localhost:8233): pull requests link back to the run.",
    )
    trust_any_author: bool = Field(
        default=False, description="Act on issues opened by users without write access to the repository."
    )
    protected_paths: list[str] = Field(
        default_factory=list,
        description="More path patterns whose changes need approval (CI, CODEOWNERS, secrets always do).",
    )
    base_ref: str | None = Field(default=None, description="Branch or commit to start from; default: the repo's HEAD.")
    commands: list[Role] | None = Field(
        default=None,
        description="The agents that may run sandboxed shell commands (run_command); None: the coder and the "
        "tester; [] turns commands off. The planner and the reviewer run them read-only (what a command changes "
        "is discarded). A repository's .forgeflow.yml can narrow this, never widen it.",
    )

    graphs: dict[str, str] = Field(
        default_factory=dict,
        description="LangGraph graphs as agents (the forgeflow[langgraph] extra): agent (a role, or role:name for an "
        "extra reviewer) → import path module:attribute of a compiled graph, run in one activity.",
    )
    human_review: HumanReview | None = Field(
        default=None,
        description="A person's review of forgeflow's pull request `pr_number`: the run continues that pull "
        "request's branch, starting with the coder, the review's comments as its context.",
    )

    @field_validator("spec_content")
    @classmethod
    def _spec_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("spec_content is empty")
        return value

    @model_validator(mode="after")
    def _has_a_task(self) -> IssueInput:
        if self.mode == "review":
            if self.pr_number is None and self.issue_number is None and self.spec_content is None:
                raise ValueError("review mode needs pr_number (or an issue_number/spec_content to implement)")
        elif self.issue_number is None and self.spec_content is None and self.human_review is None:
            raise ValueError("give issue_number or spec_content: there is no task to work on")
        return self

    @field_validator("graphs")
    @classmethod
    def _graph_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for agent, path in value.items():
            if not re.fullmatch(GRAPH_AGENT, agent) or not re.fullmatch(GRAPH_PATH, path):
                raise ValueError(
                    f"{agent!r}: {path!r} must be an agent (coder, reviewer:security) and a module:attribute"
                )
        return value

    @model_validator(mode="after")
    def _review_continues_a_pull_request(self) -> IssueInput:
        if self.human_review is not None and (self.pr_number is None or self.mode != "autonomous"):
            raise ValueError("human_review continues a pull request: give pr_number, in autonomous mode")
        return self

    @property
    def continues_pr(self) -> bool:
        """The run answers a person's review of forgeflow's pull request, on that pull request's branch."""
        return self.human_review is not None

    @property
    def reviews_existing_pr(self) -> bool:
        return self.mode == "review" and self.pr_number is not None


class Stage(StrEnum):
    """The run's own stages. While an agent works, the stage is its role's (roles/: RoleSpec.stage,
    such as "coding"), so a new role needs nothing here. Stages are search-attribute values and
    query output: never rename one after a run has used it."""

    STARTING = "starting"
    AWAITING_PLAN_APPROVAL = "awaiting_plan_approval"
    AWAITING_ESCALATION = "awaiting_escalation"
    AWAITING_CHANGE_APPROVAL = "awaiting_change_approval"
    DONE = "done"


class Outcome(StrEnum):
    PLANNED = "planned"
    APPROVED = "approved"
    CHANGES_REQUESTED = "changes_requested"
    REVIEWED = "reviewed"
    ESCALATED = "escalated"
    REJECTED = "rejected"
    GATE_TIMED_OUT = "gate_timed_out"
    FAILED = "failed"


GateKind = Literal["plan_approval", "escalation", "protected_paths"]
Decision = Literal["approve", "reject", "feedback"]

ALLOWED_DECISIONS: dict[str, tuple[Decision, ...]] = {
    "plan_approval": ("approve", "reject", "feedback"),
    "escalation": ("feedback", "reject"),
    "protected_paths": ("approve", "reject"),
}


class PendingGate(BaseModel):
    kind: GateKind
    reason: str
    allowed: list[Decision]
    opened_at: str = Field(description="ISO time the gate opened (workflow time).")
    timeout_seconds: int


class GateDecision(BaseModel):
    """A human's answer: the input of the approve/reject/feedback signals and of the `decide` update."""

    model_config = STRICT

    decision: Decision | None = Field(default=None, description="Set by the `decide` update; signals imply it.")
    comment: str = ""
    by: str | None = None


class OrchestrationState(BaseModel):
    """The seed's OrchestrationState plus what a person needs to follow the run; returned by the `state` query."""

    repo: Repo
    mode: Mode
    stage: str = Field(default=Stage.STARTING, description="A `Stage`, or the working role's stage.")
    round: int = 0
    plan: Plan | None = None
    tasks: list[PlanTask] = Field(default_factory=list)
    files_changed: list[str] = Field(default_factory=list)
    branches_created: list[str] = Field(default_factory=list)
    commits: list[str] = Field(default_factory=list)
    prs_created: list[str] = Field(default_factory=list)
    test_results: TestReport | None = None
    test_failures: list[TestFailure] = Field(default_factory=list)
    review_comments: list[ReviewComment] = Field(default_factory=list)
    review_verdict: str | None = None
    approval_status: str | None = None
    retry_count: int = 0
    max_retries: int = DEFAULT_MAX_RETRIES
    error: str | None = None
    pending_gate: PendingGate | None = None
    human_feedback: list[str] = Field(default_factory=list)
    human_reviews: list[HumanReview] = Field(
        default_factory=list, description="People's reviews of the run's pull request, for the coder's rounds."
    )
    usage: UsageTotals = Field(default_factory=UsageTotals)
    outcome: Outcome | None = None
    scripted_replay: bool = False
    log: list[str] = Field(default_factory=list, description="One line per stage transition.")


class IssueResult(BaseModel):
    outcome: Outcome
    state: OrchestrationState
