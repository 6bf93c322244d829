"""The parts of GitHub's webhook payloads forgeflow reads (docs.github.com/webhooks/webhook-events-and-payloads).

GitHub's payloads are large and grow; these models name only what forgeflow uses and ignore the
rest, so a new field GitHub adds changes nothing, and a missing one is an error naming it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

_GITHUB = ConfigDict(extra="ignore")


class User(BaseModel):
    model_config = _GITHUB

    login: str
    type: str = "User"  # "Bot" for apps and forgeflow itself


class Repository(BaseModel):
    model_config = _GITHUB

    full_name: str


class Label(BaseModel):
    model_config = _GITHUB

    name: str


class IssuePullRequestLink(BaseModel):
    model_config = _GITHUB

    url: str | None = None


class Issue(BaseModel):
    model_config = _GITHUB

    number: int
    pull_request: IssuePullRequestLink | None = None  # present when the "issue" is a pull request


class Comment(BaseModel):
    model_config = _GITHUB

    id: int
    body: str | None = None
    user: User


class Branch(BaseModel):
    model_config = _GITHUB

    ref: str


class PullRequest(BaseModel):
    model_config = _GITHUB

    number: int
    head: Branch


class Review(BaseModel):
    model_config = _GITHUB

    id: int
    body: str | None = None
    state: str  # "changes_requested", "commented", "approved" (lowercase in webhooks), "dismissed"
    user: User
    html_url: str | None = None


class Delivery(BaseModel):
    """What every event forgeflow acts on carries."""

    model_config = _GITHUB

    action: str | None = None
    repository: Repository
    sender: User


class IssuesEvent(Delivery):
    issue: Issue
    label: Label | None = None


class IssueCommentEvent(Delivery):
    issue: Issue
    comment: Comment


class PullRequestReviewEvent(Delivery):
    pull_request: PullRequest
    review: Review
