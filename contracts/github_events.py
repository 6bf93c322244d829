"""What a GitHub webhook delivery asks forgeflow to do: the GitHubEventWorkflow's durable contract.

`forgeflow webhook` verifies a delivery, reads it (policy.github_events.interpret) into one
`GitHubEvent`, and starts a GitHubEventWorkflow with it, whose id is the delivery's id. Everything
after that (the sender's access, the reaction, the run started or the gate answered, the reply) is
durable work in that workflow.

Add optional fields only; never rename a field once a run has used it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from contracts.repo import Repo
from contracts.run import Decision, Mode
from contracts.versioning import DURABLE

EVENT_WORKFLOW_TYPE = "GitHubEventWorkflow"
SIGNAL_HUMAN_REVIEW = "human_review"  # a person's review of the run's pull request, for its next coder round
Reaction = Literal["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"]


class StartRun(BaseModel):
    """`/forgeflow plan|run|review`, or the trigger label on an issue: start a run in `mode`."""

    kind: Literal["start"] = "start"
    mode: Mode


class AnswerGate(BaseModel):
    """`/approve`, `/reject` or `/feedback <text>`: answer the gate the thread's run waits at."""

    kind: Literal["gate"] = "gate"
    decision: Decision
    comment: str = ""


class ReviseFromReview(BaseModel):
    """A person reviewed forgeflow's pull request: the coder's next round on its branch."""

    kind: Literal["review"] = "review"
    review_id: int
    state: Literal["changes_requested", "commented"]
    body: str = ""
    url: str | None = None


class Explain(BaseModel):
    """A command forgeflow cannot follow as written: the reply says why and what it understands."""

    kind: Literal["explain"] = "explain"
    message: str


Action = Annotated[StartRun | AnswerGate | ReviseFromReview | Explain, Field(discriminator="kind")]


class GitHubEvent(BaseModel):
    """One delivery, read: who asked, on which thread, for what. The input of GitHubEventWorkflow."""

    model_config = DURABLE

    delivery_id: str = Field(description="GitHub's X-GitHub-Delivery: the event's identity across redeliveries.")
    event: str = Field(description="GitHub's X-GitHub-Event, e.g. issue_comment.")
    repo: Repo
    sender: str = Field(description="The login of the person whose action sent the event.")
    number: int = Field(ge=1, description="The issue or pull request the event happened on.")
    on_pull_request: bool = False
    comment_id: int | None = Field(default=None, description="The comment that carried a command (reacted to).")
    action: Action
    run_options: dict[str, Any] = Field(
        default_factory=dict,
        description="IssueInput options for runs this event starts (the webhook's settings), e.g. ui_url.",
    )


class EventOutcome(BaseModel):
    """What the GitHubEventWorkflow did, in one line, and the run it started or answered, if any."""

    done: Literal["started", "answered", "refused", "not_allowed", "explained", "nothing_to_do", "forwarded"]
    message: str
    run_id: str | None = None


class AccessInput(BaseModel):
    model_config = DURABLE

    repo: Repo
    login: str


# The permissions (AccessResult.permission) that let a person act on a run.
WRITE_PERMISSIONS = ("admin", "maintain", "write")


class AccessResult(BaseModel):
    permission: str = Field(description="GitHub's answer: admin, maintain, write, triage, read or none.")
    can_write: bool


class ReactInput(BaseModel):
    model_config = DURABLE

    repo: Repo
    comment_id: int
    content: Reaction = "eyes"


class ReviewCommentsInput(BaseModel):
    model_config = DURABLE

    repo: Repo
    pr_number: int
    review_id: int


class FindRunInput(BaseModel):
    """The running IssueWorkflow on a repository's issue or pull request, found by search attributes."""

    model_config = DURABLE

    repo: Repo
    number: int


class FoundRun(BaseModel):
    run_id: str | None = None


class GateAnswerInput(BaseModel):
    """The `decide` update sent to `run_id`, under `update_id` (the delivery's): sent twice, taken once."""

    model_config = DURABLE

    run_id: str
    update_id: str
    decision: Decision
    comment: str = ""
    by: str


class GateAnswerResult(BaseModel):
    accepted: bool
    message: str = Field(description="The gate's answer, or why it refused the decision.")
