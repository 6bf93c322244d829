"""What each webhook delivery asks of forgeflow: one line per case."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.github_events import AnswerGate, Explain, GitHubEvent, ReviseFromReview, StartRun
from policy.github_events import COMMAND_HELP, TEXT_MAX, Ignored, WebhookPayloadError, interpret, parse_command

REPO = {"full_name": "acme/widgets", "id": 1}
PERSON = {"login": "octocat", "type": "User"}
BOT = {"login": "forgeflow[bot]", "type": "Bot"}


def labeled(label: str = "forgeflow", sender: dict[str, str] = PERSON, pull: bool = False) -> dict[str, Any]:
    issue: dict[str, Any] = {"number": 7, "title": "t"}
    if pull:
        issue["pull_request"] = {"url": "https://api.github.test/repos/acme/widgets/pulls/7"}
    return {"action": "labeled", "issue": issue, "label": {"name": label}, "repository": REPO, "sender": sender}


def commented(
    body: str, *, pull: bool = False, user: dict[str, str] = PERSON, action: str = "created"
) -> dict[str, Any]:
    issue: dict[str, Any] = {"number": 12 if pull else 7}
    if pull:
        issue["pull_request"] = {"url": "https://api.github.test/repos/acme/widgets/pulls/12"}
    comment = {"id": 901, "body": body, "user": user}
    return {"action": action, "issue": issue, "comment": comment, "repository": REPO, "sender": user}


def reviewed(
    state: str, *, branch: str = "forgeflow/run-1", user: dict[str, str] = PERSON, body: str = ""
) -> dict[str, Any]:
    review = {"id": 55, "state": state, "body": body, "user": user, "html_url": "https://github.test/r/55"}
    pull = {"number": 12, "head": {"ref": branch, "sha": "a" * 40}}
    return {"action": "submitted", "review": review, "pull_request": pull, "repository": REPO, "sender": user}


# body, on a pull request -> the command read from the comment (None: not a forgeflow command)
COMMANDS: list[tuple[str, bool, object]] = [
    ("/forgeflow run", False, StartRun(mode="autonomous")),
    ("  /forgeflow plan  \n", False, StartRun(mode="plan")),
    ("/ForgeFlow RUN please", False, StartRun(mode="autonomous")),
    ("/forgeflow review", True, StartRun(mode="review")),
    ("/approve", False, AnswerGate(decision="approve")),
    ("/approve looks right", True, AnswerGate(decision="approve", comment="looks right")),
    ("/reject", False, AnswerGate(decision="reject")),
    (
        "/feedback use a dict\nand keep the order",
        False,
        AnswerGate(decision="feedback", comment="use a dict\nand keep the order"),
    ),
    ("/feedback", False, AnswerGate(decision="feedback")),  # the gate refuses it, and the reply says why
    ("please /approve", False, None),
    ("/assign @me", False, None),
    ("", False, None),
]


@pytest.mark.parametrize(("body", "pull", "expected"), COMMANDS)
def test_commands(body: str, pull: bool, expected: object) -> None:
    assert parse_command(body, on_pull_request=pull) == expected


@pytest.mark.parametrize(
    ("body", "pull", "says"),
    [
        ("/forgeflow review", False, "works on a pull request"),
        ("/forgeflow run", True, "works on an issue"),
        ("/forgeflow plan", True, "works on an issue"),
        ("/forgeflow deploy", False, "`/forgeflow deploy` is not a command"),
        ("/forgeflow", False, "needs a command"),
    ],
)
def test_commands_that_cannot_be_followed_are_explained(body: str, pull: bool, says: str) -> None:
    command = parse_command(body, on_pull_request=pull)
    assert isinstance(command, Explain)
    assert says in command.message and COMMAND_HELP in command.message


def test_a_long_feedback_is_bounded() -> None:
    command = parse_command("/feedback " + "x" * 100_000, on_pull_request=False)
    assert isinstance(command, AnswerGate) and len(command.comment) < TEXT_MAX + 200


# event, payload -> the action, the thread's number, on a pull request, the comment reacted to
ACTED_ON: list[tuple[str, dict[str, Any], object, int, bool, int | None]] = [
    ("issues", labeled(), StartRun(mode="autonomous"), 7, False, None),
    ("issues", labeled("ForgeFlow"), StartRun(mode="autonomous"), 7, False, None),
    ("issue_comment", commented("/forgeflow plan"), StartRun(mode="plan"), 7, False, 901),
    ("issue_comment", commented("/approve", pull=True), AnswerGate(decision="approve"), 12, True, 901),
    (
        "pull_request_review",
        reviewed("changes_requested", body="rename it"),
        ReviseFromReview(review_id=55, state="changes_requested", body="rename it", url="https://github.test/r/55"),
        12,
        True,
        None,
    ),
    (
        "pull_request_review",
        reviewed("COMMENTED"),
        ReviseFromReview(review_id=55, state="commented", url="https://github.test/r/55"),
        12,
        True,
        None,
    ),
]


@pytest.mark.parametrize(("event", "payload", "action", "number", "pull", "comment_id"), ACTED_ON)
def test_deliveries_acted_on(
    event: str, payload: dict[str, Any], action: object, number: int, pull: bool, comment_id: int | None
) -> None:
    read = interpret(event, payload, delivery_id="d-1", run_options={"ui_url": "http://ui"})
    assert isinstance(read, GitHubEvent)
    assert (read.action, read.number, read.on_pull_request, read.comment_id) == (action, number, pull, comment_id)
    assert (str(read.repo), read.sender, read.delivery_id, read.event) == ("acme/widgets", "octocat", "d-1", event)
    assert read.run_options == {"ui_url": "http://ui"}


IGNORED: list[tuple[str, dict[str, Any], str]] = [
    ("ping", {"zen": "Keep it logically awesome."}, "ping"),
    ("push", {"ref": "refs/heads/main"}, "push events are not acted on"),
    ("issues", labeled("bug"), "not the trigger label"),
    ("issues", {**labeled(), "action": "opened"}, "issues.opened"),
    ("issues", labeled(sender=BOT), "app or bot"),
    ("issues", labeled(pull=True), "not pull requests"),
    ("issue_comment", commented("/approve", action="edited"), "only new comments"),
    ("issue_comment", commented("/approve", user=BOT), "app or bot"),
    ("issue_comment", commented("<!-- forgeflow:run-1:plan -->\n/approve"), "forgeflow's own"),
    ("issue_comment", commented("thanks!"), "no forgeflow command"),
    ("pull_request_review", reviewed("approved"), "asks for no change"),
    ("pull_request_review", reviewed("changes_requested", branch="feature/x"), "not forgeflow's pull request"),
    ("pull_request_review", reviewed("commented", user=BOT), "app or bot"),
    ("pull_request_review", reviewed("commented", body="<!-- forgeflow:run-1:review-1 -->\nok"), "forgeflow's own"),
    ("pull_request_review", {**reviewed("changes_requested"), "action": "dismissed"}, "only submitted"),
    ("pull_request_review_comment", {"action": "created"}, "not acted on"),
]


@pytest.mark.parametrize(("event", "payload", "why"), IGNORED)
def test_deliveries_ignored(event: str, payload: dict[str, Any], why: str) -> None:
    read = interpret(event, payload, delivery_id="d-1")
    assert isinstance(read, Ignored)
    assert why in read.reason


def test_the_trigger_label_is_a_setting() -> None:
    assert isinstance(interpret("issues", labeled("ai-fix"), delivery_id="d", trigger_label="ai-fix"), GitHubEvent)
    assert isinstance(interpret("issues", labeled("forgeflow"), delivery_id="d", trigger_label="ai-fix"), Ignored)


def test_a_payload_without_its_fields_is_an_error_naming_them() -> None:
    with pytest.raises(WebhookPayloadError, match="comment"):
        interpret("issue_comment", {"action": "created", "issue": {"number": 1}, "repository": REPO, "sender": PERSON},
                  delivery_id="d")  # fmt: skip
