"""The loopback GitHub as the other side of GitHub-native operation: people's actions become GitHub's
own webhook payloads (githubkit's webhook models parse them), delivered signed as GitHub signs them;
and the REST endpoints forgeflow answers with, through the real githubkit client."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from githubkit import AppInstallationAuthStrategy, GitHub, webhooks
from githubkit.exception import RequestFailed
from githubkit_schemas.latest.models import (
    PullRequestReview,
    PullRequestReviewComment,
    ReviewComment,
    WebhookIssueCommentCreated,
    WebhookIssuesLabeled,
    WebhookPullRequestReviewSubmitted,
)
from pydantic import TypeAdapter

from testkit.loopback._server import LoopbackServer
from testkit.loopback.github_api import GitHubLoopback, Issue
from testkit.loopback.json_api import JsonHandler
from testkit.loopback.webhooks import WebhookSender
from testkit.tools import git

TOKEN = "ghp_loopback_webhooks"
SECRET = "It's a Secret to Everybody"
APP_ID, INSTALLATION_ID = 4242, 99
SUBTRACT = "def add(a, b):\n    return a + b\n\n\ndef subtract(a, b):\n    return a - b\n"


@pytest.fixture(scope="module")
def app_key() -> tuple[str, str]:
    """(private, public) PEM of the GitHub App the loopback accepts installation tokens for."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    return private, key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture
def server(sample_repo: Path, app_key: tuple[str, str]) -> Iterator[GitHubLoopback]:
    """acme/calc as a GitHub App's installation: issue #7, and forgeflow's pull request #101 adding subtract."""
    git(sample_repo, "checkout", "-qb", "forgeflow/r1")
    (sample_repo / "calc" / "__init__.py").write_text(SUBTRACT)
    git(sample_repo, "commit", "-qam", "Add subtract")
    git(sample_repo, "checkout", "-q", "main")
    with GitHubLoopback("acme", "calc", sample_repo, TOKEN, app=(APP_ID, INSTALLATION_ID, app_key[1])) as gh:
        gh.issues[7] = Issue(title="Add subtract", body="Please add calc.subtract.", labels=["enhancement"])
        gh.pulls[101] = {"title": "Add subtract", "body": "Fixes #7", "state": "open", "draft": False,
                         "head": {"ref": "forgeflow/r1"}, "base": {"ref": "main"},
                         "user": {"login": "forgeflow[bot]"}}  # fmt: skip
        yield gh


def client(server: GitHubLoopback, auth: str | AppInstallationAuthStrategy = TOKEN) -> GitHub[Any]:
    return GitHub(auth, base_url=server.base_url, auto_retry=False, http_cache=False)


def app_client(server: GitHubLoopback, app_key: tuple[str, str]) -> GitHub[Any]:
    """Authenticated as the app's installation: githubkit mints the installation token from a JWT."""
    return client(server, AppInstallationAuthStrategy(APP_ID, app_key[0], INSTALLATION_ID))


class HookReceiver(LoopbackServer):
    """A tiny webhook endpoint: keeps each request (lowercase headers, raw body); 202 when signed with
    `secret`, 401 when not."""

    def __init__(self, secret: str) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                signed = webhooks.verify(secret, body, self.headers.get("x-hub-signature-256", ""))
                self.send_json(202 if signed else 401, {}, {})

        super().__init__(Handler)


@pytest.fixture
def receiver() -> Iterator[HookReceiver]:
    with HookReceiver(SECRET) as hooks:
        yield hooks


def test_payloads_are_githubs_own_shapes(server: GitHubLoopback, sample_repo: Path) -> None:
    labeled = webhooks.parse("issues", json.dumps(server.label_issue(7, "forgeflow", "maintainer")))
    assert isinstance(labeled, WebhookIssuesLabeled) and labeled.label and labeled.label.name == "forgeflow"
    assert [label.name for label in labeled.issue.labels or []] == ["enhancement", "forgeflow"]
    assert labeled.sender.type == "User" and labeled.installation and labeled.installation.id == INSTALLATION_ID
    asked = webhooks.parse("issue_comment", json.dumps(server.comment(7, "octocat", "/forgeflow plan")))
    assert isinstance(asked, WebhookIssueCommentCreated) and not asked.issue.pull_request
    assert asked.comment.user and asked.comment.user.type == "User"
    assert asked.comment.author_association == "COLLABORATOR"  # octocat can write
    answered = webhooks.parse("issue_comment", json.dumps(server.comment(101, "forgeflow[bot]", "On it.")))
    assert isinstance(answered, WebhookIssueCommentCreated) and answered.comment.user
    assert answered.comment.user.type == "Bot" and answered.issue.pull_request
    assert answered.issue.pull_request.html_url == "https://github.test/acme/calc/pull/101"
    assert asked.comment.id != answered.comment.id  # one id sequence across threads
    assert [c["id"] for c in server.issues[7].comments + server.pulls[101]["comments"]] == [
        asked.comment.id,
        answered.comment.id,
    ]
    head = git(sample_repo, "rev-parse", "forgeflow/r1")
    for state in ("changes_requested", "commented", "approved"):
        payload = server.review(101, "maintainer", state, "Rename it?", [("calc/__init__.py", 5, "subtract?")])
        review = webhooks.parse("pull_request_review", json.dumps(payload))
        assert isinstance(review, WebhookPullRequestReviewSubmitted) and review.review.state == state
        assert review.review.commit_id == head and review.pull_request.head.sha == head
        assert review.pull_request.head.ref == "forgeflow/r1" and review.pull_request.base.ref == "main"
    with pytest.raises(ValueError, match="Can not approve your own pull request"):
        server.review(101, "forgeflow[bot]", "approved")


def test_a_repository_hook_names_no_installation(sample_repo: Path) -> None:
    with GitHubLoopback("acme", "calc", sample_repo, TOKEN) as plain:
        plain.issues[7] = Issue(title="Add subtract", body="")
        assert "installation" not in plain.label_issue(7, "forgeflow", "octocat")


def test_deliveries_are_signed_as_github_signs_them(server: GitHubLoopback, receiver: HookReceiver) -> None:
    sender = WebhookSender(f"{receiver.base_url}/webhook", SECRET)
    payload = server.comment(7, "octocat", "/forgeflow run — ünïcode too")
    assert sender.deliver("issue_comment", payload).status_code == 202
    (headers, body), sent = receiver.received[0], sender.deliveries[0]
    assert body == sent.body and json.loads(body) == payload
    assert webhooks.verify(SECRET, body, headers["x-hub-signature-256"])
    assert webhooks.verify(SECRET, body, headers["x-hub-signature"])  # the legacy SHA-1 one
    assert headers["x-github-event"] == "issue_comment" and headers["x-github-hook-id"] == "1"
    assert uuid.UUID(headers["x-github-delivery"]).version == 4 and sent.delivery_id == headers["x-github-delivery"]
    assert headers["user-agent"].startswith("GitHub-Hookshot/") and headers["content-type"] == "application/json"
    assert isinstance(webhooks.parse(headers["x-github-event"], body), WebhookIssueCommentCreated)

    assert sender.deliver("issue_comment", payload, delivery_id=sent.delivery_id).status_code == 202  # redelivered
    assert receiver.received[1] == receiver.received[0]
    forged = sender.deliver("issue_comment", payload, signature="sha256=" + "0" * 64)
    unsigned = sender.deliver("issue_comment", payload, signature="")
    assert (forged.status_code, unsigned.status_code) == (401, 401)
    assert "x-hub-signature" not in receiver.received[2][0] and "x-hub-signature-256" not in receiver.received[3][0]
    assert [d.status for d in sender.deliveries] == [202, 202, 401, 401]
    assert all(d.elapsed < 10 for d in sender.deliveries)  # GitHub gives up after 10 s


async def test_async_delivery(server: GitHubLoopback, receiver: HookReceiver) -> None:
    sender = WebhookSender(f"{receiver.base_url}/webhook", SECRET)
    payload = server.label_issue(7, "forgeflow", "maintainer")
    assert (await sender.deliver_async("issues", payload)).status_code == 202
    assert receiver.received[0][1] == sender.deliveries[0].body and sender.deliveries[0].event == "issues"


async def test_reactions_are_idempotent(server: GitHubLoopback) -> None:
    gh = client(server)
    comment_id = server.comment(7, "octocat", "/forgeflow run")["comment"]["id"]
    first = await gh.rest.reactions.async_create_for_issue_comment("acme", "calc", comment_id, content="eyes")
    again = await gh.rest.reactions.async_create_for_issue_comment("acme", "calc", comment_id, content="eyes")
    assert (first.status_code, again.status_code) == (201, 200) and first.json() == again.json()
    assert first.parsed_data.user and first.parsed_data.user.login == "forgeflow[bot]"
    listed = await gh.rest.reactions.async_list_for_issue_comment("acme", "calc", comment_id)
    assert [r.content for r in listed.parsed_data] == ["eyes"]
    on_issue = await gh.rest.reactions.async_create_for_issue("acme", "calc", 7, content="+1")
    assert on_issue.status_code == 201 and server.reactions[("issue", 7)][0]["content"] == "+1"
    issue = (await gh.rest.issues.async_get("acme", "calc", 7)).parsed_data
    assert issue.reactions and issue.reactions.plus_one == 1
    with pytest.raises(RequestFailed) as missing:
        await gh.rest.reactions.async_create_for_issue_comment("acme", "calc", 999_999, content="eyes")
    assert missing.value.response.status_code == 404


async def test_bot_comments_have_unique_ids_across_threads(server: GitHubLoopback) -> None:
    gh = client(server)
    on_issue = (await gh.rest.issues.async_create_comment("acme", "calc", 7, body="Plan")).parsed_data
    on_pull = (await gh.rest.issues.async_create_comment("acme", "calc", 101, body="Done")).parsed_data
    assert on_issue.id != on_pull.id and on_issue.user and on_issue.user.type == "Bot"
    assert on_pull.html_url == f"https://github.test/acme/calc/pull/101#issuecomment-{on_pull.id}"


async def test_review_comments_are_listed_for_their_review(server: GitHubLoopback) -> None:
    gh, path = client(server), "calc/__init__.py"
    asked = server.review(101, "maintainer", "changes_requested", "Two things.",
                          [(path, 5, "Name it sub?"), (path, 6, "Check types.")])  # fmt: skip
    server.review(101, "octocat", "commented", "", [(path, 2, "Fine.")])
    review_id = asked["review"]["id"]
    # Validated with githubkit's models by hand: mypy cannot read the pulls namespace's `list[...]`
    # annotations (its method named `list` shadows the builtin), so `parsed_data` is untyped there.
    listed = await gh.rest.pulls.async_list_comments_for_review("acme", "calc", 101, review_id)
    ours = TypeAdapter(list[ReviewComment]).validate_json(listed.content)
    assert [(c.path, c.body, c.pull_request_review_id) for c in ours] == [
        (path, "Name it sub?", review_id),
        (path, "Check types.", review_id),
    ]
    assert (ours[0].line, ours[0].side, ours[0].position) == (5, "RIGHT", 5)
    assert ours[0].diff_hunk.startswith("@@ -1,2 +1,6 @@") and ours[0].diff_hunk.endswith("+def subtract(a, b):")
    every = await gh.rest.pulls.async_list_review_comments("acme", "calc", 101)
    assert [c.body for c in TypeAdapter(list[PullRequestReviewComment]).validate_json(every.content)] == [
        "Name it sub?",
        "Check types.",
        "Fine.",
    ]
    reviews = await gh.rest.pulls.async_list_reviews("acme", "calc", 101)
    assert [r.state for r in TypeAdapter(list[PullRequestReview]).validate_json(reviews.content)] == [
        "CHANGES_REQUESTED",
        "COMMENTED",
    ]


async def test_check_runs_are_for_github_apps_only(
    server: GitHubLoopback, sample_repo: Path, app_key: tuple[str, str]
) -> None:
    head, plain, app = git(sample_repo, "rev-parse", "forgeflow/r1"), client(server), app_client(server, app_key)
    with pytest.raises(RequestFailed) as refused:  # (clients kept referenced while their namespaces are in use)
        await plain.rest.checks.async_create("acme", "calc", name="forgeflow", head_sha=head)
    assert refused.value.response.status_code == 403
    assert refused.value.response.json()["message"] == "Resource not accessible by personal access token"

    created = await app.rest.checks.async_create(
        "acme", "calc", name="forgeflow", head_sha=head, status="queued", external_id="r1", details_url="https://x.test"
    )
    run_id = created.parsed_data.id
    assert created.status_code == 201 and created.parsed_data.status == "queued"
    await app.rest.checks.async_update(
        "acme", "calc", run_id, status="in_progress", output={"title": "Coding", "summary": "Round 1"}
    )
    done = await app.rest.checks.async_update(
        "acme", "calc", run_id, conclusion="success", output={"title": "Done", "summary": "PR ready"}
    )
    assert done.parsed_data.status == "completed" and done.parsed_data.completed_at is not None
    assert server.check_run_states[run_id] == [
        ("queued", None, None),
        ("in_progress", None, "Round 1"),
        ("completed", "success", "PR ready"),
    ]
    listed = (await plain.rest.checks.async_list_for_ref("acme", "calc", "forgeflow/r1")).parsed_data
    assert listed.total_count == 1 and listed.check_runs[0].conclusion == "success"
    assert [p.number for p in listed.check_runs[0].pull_requests] == [101]


async def test_commit_statuses_are_listed_newest_first(server: GitHubLoopback, sample_repo: Path) -> None:
    gh, head = client(server), git(sample_repo, "rev-parse", "forgeflow/r1")
    for state in ("pending", "success"):
        posted = await gh.rest.repos.async_create_commit_status(
            "acme", "calc", head, state=state, context="forgeflow", target_url="https://x.test/r1", description=state
        )
        assert posted.status_code == 201
    listed = (await gh.rest.repos.async_list_commit_statuses_for_ref("acme", "calc", "forgeflow/r1")).parsed_data
    assert [(s.state, s.context) for s in listed] == [("success", "forgeflow"), ("pending", "forgeflow")]
    with pytest.raises(RequestFailed) as unknown:
        await gh.rest.repos.async_create_commit_status("acme", "calc", "f" * 40, state="success")
    assert unknown.value.response.status_code == 422
