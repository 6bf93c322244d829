"""How a run's outcome ends its workflow execution. Pure.

A run that reached an answer completes, whatever the answer (approved, planned, reviewed, changes
requested, or rejected by a person). A run that did not — an agent or the configuration failed, or
nobody answered a gate — ends as a *failed* execution, so the Temporal UI's status column,
`ExecutionStatus="Failed"` queries and the SDK's workflow-failed metrics count it as what it is. The
failure is an ApplicationError of the type named here, with the final IssueResult as its details.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from contracts.run import IssueResult, Outcome

FAILURE_TYPES: dict[Outcome, str] = {
    Outcome.FAILED: "RunFailed",
    Outcome.ESCALATED: "RunEscalated",
    Outcome.GATE_TIMED_OUT: "GateTimedOut",
}


def final_result(cause: BaseException | None) -> IssueResult | None:
    """The final result a run that ended without an answer carries in its failure (`cause`: the
    failed workflow's error), or None for any other failure."""
    if isinstance(cause, ApplicationError) and cause.type in FAILURE_TYPES.values() and cause.details:
        return IssueResult.model_validate(cause.details[0])
    return None


def failure_type(outcome: Outcome) -> str | None:
    """The error type a run with this outcome fails with, or None when the run completes."""
    return FAILURE_TYPES.get(outcome)
