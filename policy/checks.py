"""How a run's progress shows on its pull request's commits. Pure.

A GitHub App reports a check run per run and commit: queued when the commit lands, in progress with
the stage in its summary while agents work on it, completed with the run's outcome as its
conclusion; a commit the run moved past is completed as neutral ("superseded"). With a token,
which cannot create check runs, the same reports become commit statuses (context CONTEXT).
"""

from __future__ import annotations

from typing import Literal

from contracts.codehost import CheckConclusion, CheckStatus
from contracts.run import Outcome

StatusState = Literal["error", "failure", "pending", "success"]

CHECK_NAME = "forgeflow"
CONTEXT = "forgeflow"  # the commit status's context: one line per run's tool on the commit
DESCRIPTION_MAX = 140  # GitHub cuts a status's description there

CONCLUSIONS: dict[Outcome, CheckConclusion] = {
    Outcome.APPROVED: "success",
    Outcome.PLANNED: "success",
    Outcome.REVIEWED: "success",
    Outcome.CHANGES_REQUESTED: "failure",  # the reviewer did not approve within the retries
    Outcome.ESCALATED: "failure",
    Outcome.FAILED: "failure",
    Outcome.GATE_TIMED_OUT: "failure",
    Outcome.REJECTED: "cancelled",
}


def conclusion(outcome: Outcome) -> CheckConclusion:
    return CONCLUSIONS[outcome]


_STATES: dict[CheckConclusion, StatusState] = {
    "success": "success",
    "neutral": "success",
    "failure": "failure",
    "cancelled": "error",
}


def status_state(status: CheckStatus, concluded: CheckConclusion | None) -> StatusState:
    """The commit status that stands for a check run's status and conclusion."""
    if status != "completed":
        return "pending"
    return _STATES[concluded] if concluded else "failure"


def description(summary: str) -> str:
    """A status's description: one line, within GitHub's limit."""
    line = " ".join(summary.split())
    return line if len(line) <= DESCRIPTION_MAX else line[: DESCRIPTION_MAX - 1] + "…"
