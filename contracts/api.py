"""Names other tools use to talk to a run: workflow type, queries, signals, updates. Never rename."""

WORKFLOW_TYPE = "IssueWorkflow"
AGENT_WORKFLOW_TYPE = "AgentWorkflow"
QUERY_STATE = "state"
SIGNAL_APPROVE = "approve"
SIGNAL_REJECT = "reject"
SIGNAL_FEEDBACK = "feedback"
UPDATE_DECIDE = "decide"


def sandbox_queue(task_queue: str) -> str:
    """The sandbox activities' queue beside a workflow queue: `forgeflow` → `forgeflow-sandbox`."""
    return f"{task_queue}-sandbox"


# The header naming the agent an activity works for (`planner`, `reviewer:security`), set by the
# workflow that runs the agent (workflows/_agent_header.py) and read by the worker's telemetry.
AGENT_HEADER = "forgeflow-agent"
