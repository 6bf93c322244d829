"""What a GitHub webhook delivery asks of forgeflow. Pure: the webhook verifies, this reads, a workflow acts.

    issues, labeled with the trigger label        → start an autonomous run on the issue
    issue_comment, created, `/forgeflow run|plan`  → start that run on the issue
    issue_comment, created, `/forgeflow review`    → review the pull request it is on
    issue_comment, created, `/approve|/reject [text]`, `/feedback <text>`
                                                   → answer the gate the thread's run waits at
    pull_request_review, submitted, changes requested or commented, on forgeflow's pull request
                                                   → the coder's next round on its branch
    anything sent by an app or bot, or carrying forgeflow's own marker → nothing (its own posts)

Who may ask is not decided here: the workflow checks the sender's access through GitHub's API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from contracts import github_webhooks as gh
from contracts.github_events import AnswerGate, Explain, GitHubEvent, ReviseFromReview, StartRun
from contracts.run import Decision
from policy.host_rules import BRANCH_PREFIX
from policy.untrusted import bound

DEFAULT_TRIGGER_LABEL = "forgeflow"
COMMAND_HELP = (
    "forgeflow understands, at the start of a comment:\n"
    "- `/forgeflow run` (on an issue): work on it and open a pull request\n"
    "- `/forgeflow plan` (on an issue): post a plan only\n"
    "- `/forgeflow review` (on a pull request): review it\n"
    "- `/approve`, `/reject`, `/feedback <what to change>`: answer the gate a run here waits at"
)
# The most of a comment or review a delivery carries (characters): well inside the workflow start's
# payload, which a bigger one would send to the webhook's own external storage, out of workers' reach.
TEXT_MAX = 20_000
_GATES: dict[str, Decision] = {"/approve": "approve", "/reject": "reject", "/feedback": "feedback"}
_MARKER = "<!-- forgeflow:"  # the first line of everything forgeflow posts (policy.host_rules.marker)
Command = StartRun | AnswerGate | Explain
_REVISABLE: dict[str, Literal["changes_requested", "commented"]] = {
    "changes_requested": "changes_requested",
    "commented": "commented",
}


class WebhookPayloadError(ValueError):
    """A delivery whose payload is not the shape its event promises; the message names the field."""


@dataclass(frozen=True)
class Ignored:
    """A delivery forgeflow does not act on, and why (the webhook's answer says so)."""

    reason: str


def parse_command(body: str, *, on_pull_request: bool) -> Command | None:
    """The command a comment starts with, or None when it starts with none of forgeflow's."""
    text = body.strip()
    first, _, rest = text.partition("\n")
    word, _, argument = first.strip().partition(" ")
    argument = "\n".join(part for part in (argument.strip(), rest.strip()) if part)
    word = word.lower()
    if word in _GATES:
        return AnswerGate(decision=_GATES[word], comment=bound(argument, TEXT_MAX))
    if word != "/forgeflow":
        return None
    sub = argument.split()[0].lower() if argument else ""
    if sub == "review":
        if on_pull_request:
            return StartRun(mode="review")
        return Explain(message=f"`/forgeflow review` works on a pull request.\n\n{COMMAND_HELP}")
    if sub in ("run", "plan"):
        if on_pull_request:
            return Explain(
                message=f"`/forgeflow {sub}` works on an issue; on a pull request, use `/forgeflow review`, "
                f"or review forgeflow's pull request to start its next round.\n\n{COMMAND_HELP}"
            )
        return StartRun(mode="autonomous" if sub == "run" else "plan")
    said = f"`/forgeflow {sub}` is not a command." if sub else "That needs a command."
    return Explain(message=f"{said}\n\n{COMMAND_HELP}")


def interpret(
    event: str,
    payload: dict[str, Any],
    *,
    delivery_id: str,
    trigger_label: str = DEFAULT_TRIGGER_LABEL,
    run_options: dict[str, Any] | None = None,
) -> GitHubEvent | Ignored:
    """The event a verified delivery asks for, or why it asks for nothing (WebhookPayloadError when
    the payload lacks a field its event must carry)."""
    reader = _READERS.get(event)
    if reader is None:
        return Ignored(f"{event} events are not acted on" if event != "ping" else "ping: the webhook is set up")
    try:
        read = reader(payload, trigger_label)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()[:5])
        raise WebhookPayloadError(f"a {event} payload without what it must carry: {problems}") from None
    if isinstance(read, Ignored):
        return read
    delivery, number, on_pull_request, comment_id, action = read
    return GitHubEvent(
        delivery_id=delivery_id,
        event=event,
        repo=delivery.repository.full_name,
        sender=delivery.sender.login,
        number=number,
        on_pull_request=on_pull_request,
        comment_id=comment_id,
        action=action,
        run_options=run_options or {},
    )


_Read = tuple[gh.Delivery, int, bool, int | None, StartRun | AnswerGate | ReviseFromReview | Explain]


def _issues(payload: dict[str, Any], trigger_label: str) -> _Read | Ignored:
    found = gh.IssuesEvent.model_validate(payload)
    if found.action != "labeled" or found.label is None:
        return Ignored(f"issues.{found.action} is not acted on")
    if found.label.name.casefold() != trigger_label.casefold():
        return Ignored(f"the label {found.label.name!r} is not the trigger label {trigger_label!r}")
    if _is_bot(found.sender):
        return Ignored(f"labelled by {found.sender.login}, an app or bot")
    if found.issue.pull_request is not None:
        return Ignored("the trigger label starts runs on issues, not pull requests")
    return found, found.issue.number, False, None, StartRun(mode="autonomous")


def _issue_comment(payload: dict[str, Any], trigger_label: str) -> _Read | Ignored:
    found = gh.IssueCommentEvent.model_validate(payload)
    if found.action != "created":
        return Ignored(f"issue_comment.{found.action} is not acted on (only new comments)")
    body = found.comment.body or ""
    if _is_bot(found.comment.user) or _is_bot(found.sender) or _ours(body):
        return Ignored("a comment by an app or bot, or forgeflow's own")
    on_pull_request = found.issue.pull_request is not None
    command = parse_command(body, on_pull_request=on_pull_request)
    if command is None:
        return Ignored("the comment starts with no forgeflow command")
    return found, found.issue.number, on_pull_request, found.comment.id, command


def _pull_request_review(payload: dict[str, Any], trigger_label: str) -> _Read | Ignored:
    found = gh.PullRequestReviewEvent.model_validate(payload)
    review = found.review
    if found.action != "submitted":
        return Ignored(f"pull_request_review.{found.action} is not acted on (only submitted reviews)")
    if _is_bot(review.user) or _is_bot(found.sender) or _ours(review.body or ""):
        return Ignored("a review by an app or bot, or forgeflow's own")
    if not found.pull_request.head.ref.startswith(BRANCH_PREFIX):
        return Ignored(f"not forgeflow's pull request (its branch is not {BRANCH_PREFIX}…)")
    state = _REVISABLE.get(review.state.lower())
    if state is None:
        return Ignored(f"a review in state {review.state.lower()!r} asks for no change")
    action = ReviseFromReview(
        review_id=review.id, state=state, body=bound(review.body or "", TEXT_MAX), url=review.html_url
    )
    return found, found.pull_request.number, True, None, action


def _is_bot(user: gh.User) -> bool:
    return user.type == "Bot" or user.login.endswith("[bot]")


def _ours(body: str) -> bool:
    """forgeflow's own post (a comment or review it made with a token that is a person's)."""
    return body.lstrip().startswith(_MARKER)


_READERS = {
    "issues": _issues,
    "issue_comment": _issue_comment,
    "pull_request_review": _pull_request_review,
}
