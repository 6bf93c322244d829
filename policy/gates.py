"""Which human decisions a pending gate accepts. Pure; the Update validator and signals share it."""

from __future__ import annotations

from contracts.run import ALLOWED_DECISIONS, Decision, PendingGate


def decision_error(gate: PendingGate | None, decision: Decision | None, comment: str) -> str | None:
    """Why this decision can't be taken now, or None when it can."""
    if decision is None:
        return "say which decision: approve, reject or feedback"
    if gate is None:
        return f"no gate is waiting for a decision; {decision!r} has nothing to answer"
    allowed = ALLOWED_DECISIONS[gate.kind]
    if decision not in allowed:
        return f"the {gate.kind} gate accepts {', '.join(allowed)}, not {decision!r}"
    if decision == "feedback" and not comment.strip():
        return "feedback needs a comment saying what to change"
    return None
