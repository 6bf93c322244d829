"""What the code hosts (local git now, GitHub next) take and return."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from contracts.agents import Review
from contracts.repo import Repo
from contracts.team import TeamSettings
from contracts.versioning import DURABLE


class FetchTaskInput(BaseModel):
    model_config = DURABLE

    repo: Repo
    issue_number: int | None = None
    pr_number: int | None = None
    spec_content: str | None = None
    base_ref: str | None = None
    trust_any_author: bool = Field(default=False, description="Act on issues from users without write access.")


class TaskSpec(BaseModel):
    """The task as the agents see it, and the commit the run starts from."""

    title: str
    body: str = Field(description="Untrusted text: the issue/spec as written.")
    source: str = Field(description="Where it came from, e.g. 'spec', 'issue #12', 'PR #3'.")
    base_sha: str
    base_branch: str
    head_sha: str | None = Field(default=None, description="For a PR under review: its head commit.")
    pr_ref: str | None = Field(default=None, description="For a PR under review: where its review goes.")
    head_branch: str | None = Field(default=None, description="For a pull request: the branch its head is on.")
    base_tree: str | None = Field(
        default=None, description="base_sha's git tree id: its files are on the object store under that key."
    )
    head_tree: str | None = Field(default=None, description="head_sha's git tree id, likewise.")
    protected_paths: list[str] = Field(
        default_factory=list,
        description="Patterns the repository's own .forgeflow.yml (at base_sha) adds to the protected paths.",
    )
    command_roles: list[str] | None = Field(
        default=None,
        description="The agents the repository's .forgeflow.yml lets run commands ([]: none); None: it sets no limit.",
    )
    team: TeamSettings = Field(
        default_factory=TeamSettings,
        description="The repository's agent settings and extra reviewers (its .forgeflow.yml at base_sha).",
    )


class LandChangesInput(BaseModel):
    """Commit a workspace overlay on top of parent_sha and point branch at it, atomically."""

    model_config = DURABLE

    repo: Repo
    branch: str = Field(description="Full branch name, e.g. forgeflow/<run>; never the base branch.")
    parent_sha: str
    expected_branch_sha: str | None = Field(
        default=None, description="Where the branch must point now (None: must not exist yet)."
    )
    overlay: dict[str, str | None]
    message: str
    timestamp: str = Field(
        description="ISO time for author/committer, from workflow time: retries make the same commit."
    )
    approved_link_changes: list[str] = Field(
        default_factory=list,
        description="Overlay paths that are symbolic links in parent_sha and that a human approved changing "
        "(written as regular files, or deleted). Any other change to a link fails with LinkChange.",
    )


class LandChangesResult(BaseModel):
    commit_sha: str
    branch: str
    files_changed: list[str]
    tree: str | None = Field(
        default=None, description="commit_sha's git tree id: its files are on the object store under that key."
    )


class PublishInput(BaseModel):
    """Open (or update) the change for review: a PR on GitHub, the branch itself locally."""

    model_config = DURABLE

    repo: Repo
    branch: str
    base_branch: str
    title: str
    body: str
    run_id: str
    draft: bool = True


class PublishResult(BaseModel):
    ref: str = Field(description="What prs_created records: a PR URL, or the local branch name.")


class PostReviewInput(BaseModel):
    model_config = DURABLE

    repo: Repo
    pr_ref: str
    commit_sha: str
    review: Review
    run_id: str
    round: int


class PostCommentInput(BaseModel):
    model_config = DURABLE

    repo: Repo
    issue_number: int | None = None
    branch: str | None = None
    body: str
    run_id: str
    step: str = Field(description="Marker so a retried post is found instead of posted twice.")


class PostedResult(BaseModel):
    location: str


CheckStatus = Literal["queued", "in_progress", "completed"]
CheckConclusion = Literal["success", "failure", "neutral", "cancelled"]


class ReportStageInput(BaseModel):
    """The run's stage on a commit of its pull request: a check run (GitHub App) or a commit status
    (token). One check run per run and commit, updated in place; a repeated report changes nothing."""

    model_config = DURABLE

    repo: Repo
    run_id: str
    head_sha: str
    status: CheckStatus
    conclusion: CheckConclusion | None = Field(default=None, description="Set when status is completed.")
    summary: str = Field(description="One line: the stage, or the outcome.")
    details_url: str | None = Field(default=None, description="The run in the Temporal UI.")


class SnapshotInput(BaseModel):
    """A commit an evaluation grades: its tree for the sandbox, and its change since `base_sha`."""

    model_config = DURABLE

    repo: Repo
    base_sha: str
    sha: str


class CommitSnapshot(BaseModel):
    tree: str = Field(description="The commit's git tree id; its files are on the object store under it.")
    patch: str = Field(description="base_sha → sha as a unified diff (git diff, a/ and b/ prefixes).")
