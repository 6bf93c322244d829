"""Activity names and their timeouts/retry policies, as the workflows call them.

Workflows refer to activities by name so they never import activity modules (which do I/O).
Every policy has a cap: never Temporal's unlimited default.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

MODEL_TURN = "model_turn"
RUN_TOOL = "run_tool"
RUN_TESTS = "run_tests"
RESEARCH = "research"
FETCH_TASK = "fetch_task"
LAND_CHANGES = "land_changes"
PUBLISH_CHANGE = "publish_change"
POST_REVIEW = "post_review"
POST_COMMENT = "post_comment"

# Errors a retry cannot fix; activities raise ApplicationError(non_retryable=True) for their own.
_NON_RETRYABLE = ["InvalidInput", "ScriptDiverged", "UnsafePath", "BranchMoved", "CommitNotFound"]

MODEL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=8,
    non_retryable_error_types=_NON_RETRYABLE,
)
TOOL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=3,
    non_retryable_error_types=_NON_RETRYABLE,
)
HOST_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=6,
    non_retryable_error_types=_NON_RETRYABLE,
)
RESEARCH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=3,  # then the planner goes on without research
    non_retryable_error_types=_NON_RETRYABLE,
)
SANDBOX_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_attempts=2,
    non_retryable_error_types=[*_NON_RETRYABLE, "SandboxUnavailable"],
)

MODEL_TIMEOUT = timedelta(minutes=10)
MODEL_HEARTBEAT = timedelta(seconds=20)  # the activity heartbeats every 5 s while the model answers
TOOL_TIMEOUT = timedelta(seconds=30)
HOST_TIMEOUT = timedelta(minutes=1)
# run_tests heartbeats while tests run; the SDK sends at most one per 0.8 x this, which also bounds
# how long a workflow's cancellation takes to reach the sandbox and kill its processes.
SANDBOX_HEARTBEAT = timedelta(seconds=10)


def sandbox_timeout(test_timeout_seconds: int) -> timedelta:
    """The sandbox enforces the test timeout itself; the activity gets a margin on top."""
    return timedelta(seconds=test_timeout_seconds + 60)
