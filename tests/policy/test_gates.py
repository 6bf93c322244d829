from __future__ import annotations

import pytest

from contracts.run import PendingGate
from policy.failures import ends_run
from policy.gates import decision_error

PLAN = PendingGate(
    kind="plan_approval",
    reason="r",
    allowed=["approve", "reject", "feedback"],
    opened_at="t",
    timeout_seconds=1,
)
ESCALATION = PendingGate(
    kind="escalation", reason="r", allowed=["feedback", "reject"], opened_at="t", timeout_seconds=1
)


@pytest.mark.parametrize(
    ("gate", "decision", "comment", "error"),
    [
        (PLAN, "approve", "", None),
        (PLAN, "reject", "", None),
        (PLAN, "feedback", "use a dict", None),
        (PLAN, "feedback", "  ", "needs a comment"),
        (ESCALATION, "feedback", "try X", None),
        (ESCALATION, "reject", "", None),
        (ESCALATION, "approve", "", "accepts feedback, reject"),
        (None, "approve", "", "no gate is waiting"),
        (PLAN, None, "", "say which decision"),
    ],
)
def test_decision_error(gate: PendingGate | None, decision: str | None, comment: str, error: str | None) -> None:
    result = decision_error(gate, decision, comment)  # type: ignore[arg-type]  # table rows are literals
    if error is None:
        assert result is None
    else:
        assert result is not None and error in result


@pytest.mark.parametrize(
    ("error_type", "fatal"),
    [
        ("ProviderUnavailable", True),
        ("ScriptNotFound", True),
        ("SandboxUnavailable", False),  # an operator installs bubblewrap and retries at the gate
        ("AgentTurnBudgetExceeded", False),
        ("InvalidSubmission", False),
        (None, False),
    ],
)
def test_which_agent_failures_end_the_run(error_type: str | None, fatal: bool) -> None:
    assert ends_run(error_type) is fatal
