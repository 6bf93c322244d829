"""Activity names, how the workflows call them (time limits, retries), and the one call path.

Workflows refer to activities by name so they never import activity modules (which do I/O).
Every policy has a cap: never Temporal's unlimited default.

Every activity heartbeats while it runs (activities/_heartbeat.py, a tick every 3 s; a call done
sooner sends none), so a killed worker is noticed after its heartbeat timeout (counted from the
attempt's start until a first heartbeat), not its start-to-close timeout, and the next attempt
starts on another worker. The SDK forwards the first heartbeat at once and then one per 0.8 x the
heartbeat timeout: the server hears from a live activity every 8 s under the 10 s timeout, which
leaves 2 s for a heartbeat's trip. One timeout serves every call: 5 s for the idempotent ones
(code host, tools) gave false alarms on a loaded machine, when a freshly started worker's first
call imported its libraries on the event loop for seconds before its first heartbeat (the ten-kill
e2e test lost fetch_task's first attempt that way in 3 of 7 full runs). A lost call starts again
after the timeout plus the retry policy's first interval: 11-12 s. A workspace tool and the code
host's quick calls are local activities, which cannot heartbeat (execute_local): a lost one is
noticed by its workflow task's timeout instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, TypeVar

from temporalio import exceptions, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from contracts.api import sandbox_queue
    from contracts.commands import CommandResult, RunCommandInput
    from contracts.testing import RunTestsInput, TestReport
    from policy.worker_loss import schedule_again
    from workflows._shape import LOCAL_HOST_CALLS, Shape

T = TypeVar("T")

MODEL_TURN = "model_turn"
RUN_TOOL = "run_tool"
RUN_TESTS = "run_tests"
RUN_COMMAND = "run_command"
RESEARCH = "research"
FETCH_TASK = "fetch_task"
LAND_CHANGES = "land_changes"
PUBLISH_CHANGE = "publish_change"
POST_REVIEW = "post_review"
POST_COMMENT = "post_comment"
LOAD_SUITE = "load_suite"
COMMIT_SNAPSHOT = "commit_snapshot"
REPORT_STAGE = "report_stage"
CALL_MCP_TOOL = "call_mcp_tool"
RUN_GRAPH = "run_graph"


def _retry(*, first: int, attempts: int, longest: int | None) -> RetryPolicy:
    """Seconds to the first retry, the cap on attempts, the longest wait between two in seconds
    (None: 100 x the first). Waits double. An error a retry cannot fix (InvalidInput, UnsafePath,
    BranchMoved, ScriptDiverged, SandboxUnavailable, ...) is raised by its activity as an
    ApplicationError with non_retryable=True, so the policies name no error types: a scheduled
    activity's event carries its policy, and the five names cost 100 bytes of history per call
    (issue 14; tests/workflows/test_activity_calls.py holds the activities to it)."""
    return RetryPolicy(
        initial_interval=timedelta(seconds=first),
        backoff_coefficient=2.0,
        maximum_interval=None if longest is None else timedelta(seconds=longest),
        maximum_attempts=attempts,
    )


MODEL_RETRY = _retry(first=2, attempts=8, longest=60)
TOOL_RETRY = _retry(first=1, attempts=3, longest=10)
HOST_RETRY = _retry(first=1, attempts=6, longest=30)
RESEARCH_RETRY = _retry(first=2, attempts=3, longest=30)  # then the planner goes on without research
# Attempts for errors; a crashed sandbox worker is scheduled again (policy.worker_loss).
SANDBOX_RETRY = _retry(first=2, attempts=2, longest=None)

# Also bounds how long a workflow's cancellation takes to reach the sandbox and kill the tests'
# processes (cancellation arrives with a heartbeat's reply).
HEARTBEAT = timedelta(seconds=10)


@dataclass(frozen=True)
class Options:
    """How one kind of activity is called: its time limits, and its retry policy for errors."""

    start_to_close: timedelta
    heartbeat: timedelta
    retry: RetryPolicy


MODEL_CALL = Options(timedelta(minutes=10), HEARTBEAT, MODEL_RETRY)
RESEARCH_CALL = Options(timedelta(minutes=10), HEARTBEAT, RESEARCH_RETRY)
TOOL_CALL = Options(timedelta(seconds=30), HEARTBEAT, TOOL_RETRY)
HOST_CALL = Options(timedelta(minutes=1), HEARTBEAT, HOST_RETRY)
# An operator's MCP tool: the server's own timeout (at most a few minutes) bounds the call inside.
MCP_CALL = Options(timedelta(minutes=10), HEARTBEAT, TOOL_RETRY)
# A LangGraph graph as an agent: its model calls inside, resumed from its checkpoints on a retry.
GRAPH_CALL = Options(timedelta(minutes=30), HEARTBEAT, MODEL_RETRY)


def sandbox_call(test_timeout_seconds: int) -> Options:
    """The sandbox enforces the test timeout itself; the activity gets a margin on top."""
    return Options(timedelta(seconds=test_timeout_seconds + 60), HEARTBEAT, SANDBOX_RETRY)


# Marks histories that may schedule a call again after worker loss; histories recorded before
# this existed replay as they ran (the failure ended the call).
WORKER_LOSS_PATCH = "schedule-again-after-worker-loss"


async def execute(
    name: str, arg: object, result_type: type[T], options: Options, *, summary: str, task_queue: str | None = None
) -> T:
    """Run activity `name` the way every workflow call runs one: its retry policy for errors, and
    when its last attempt was lost with its worker, the same call scheduled again
    (policy.worker_loss decides, a bounded number of times). A call that never loses its last
    attempt sends exactly the commands a plain execute_activity sends."""
    rescheduled = 0
    while True:
        try:
            result: T = await workflow.execute_activity(
                name,
                arg,
                result_type=result_type,
                task_queue=task_queue,
                start_to_close_timeout=options.start_to_close,
                heartbeat_timeout=options.heartbeat,
                retry_policy=options.retry,
                summary=summary,
            )
            return result
        except exceptions.ActivityError as err:
            decision = schedule_again(_timeout_type(err), rescheduled)
            if not decision.again or not workflow.patched(WORKER_LOSS_PATCH):
                raise
            workflow.logger.warning("%s: %s", summary, decision.reason)
            rescheduled += 1


async def execute_local(
    name: str, arg: object, result_type: type[T], options: Options, *, summary: str, wrap_failures: bool = True
) -> T:
    """Run activity `name` as a local activity: in this worker, inside the workflow task that asked for
    it, its result recorded as one marker event when that task completes. No task queue, no
    activity events, no workflow task of its own: for quick, idempotent calls only (the workspace
    tools, the code host's QUICK_HOST_CALLS). A worker lost mid-call is noticed by the workflow
    task's timeout, and the next worker runs the call again; `options.retry` retries its errors in
    the worker. No heartbeat timeout: a local activity cannot heartbeat.

    A call that failed for good raises ActivityError, its cause the call's own failure, as an
    activity's does: the SDK raises a local activity's failure bare (ApplicationError, TimeoutError).
    `wrap_failures=False` lets it through bare, as runs before shape level 1 had it (a failed tool
    failed its agent), so that they replay."""
    try:
        result: T = await workflow.execute_local_activity(
            name,
            arg,
            result_type=result_type,
            start_to_close_timeout=options.start_to_close,
            retry_policy=options.retry,
            summary=summary,
        )
    except exceptions.FailureError as err:
        if not wrap_failures or isinstance(err, exceptions.CancelledError):
            raise
        raise exceptions.ActivityError(
            f"local activity {name} failed",
            scheduled_event_id=0,
            started_event_id=0,
            identity="",
            activity_type=name,
            activity_id="",
            retry_state=None,
        ) from err
    return result


# The code host's quick calls: a few requests each (fetch_task reads the task and the repository's
# settings, and puts the commit's files on the object store unless they are there; the others post one
# comment, review or check). A run at shape level 1 (workflows/_shape.py) makes them local activities;
# the code host's commits and pushes (land_changes, publish_change, commit_snapshot) stay activities.
QUICK_HOST_CALLS = frozenset({FETCH_TASK, POST_COMMENT, POST_REVIEW, REPORT_STAGE})


async def host_call(name: str, arg: object, result_type: type[T], shape: Shape, *, summary: str) -> T:
    """A call to the code host: a local activity when it is one of QUICK_HOST_CALLS and the run's
    `shape` is level 1 or above."""
    if name in QUICK_HOST_CALLS and shape.at_least(LOCAL_HOST_CALLS):
        return await execute_local(name, arg, result_type, HOST_CALL, summary=summary)
    return await execute(name, arg, result_type, HOST_CALL, summary=summary)


def _timeout_type(err: exceptions.ActivityError) -> str | None:
    """The TimeoutType name of the call's final failure, None when it was not a timeout."""
    cause = err.cause
    if isinstance(cause, exceptions.TimeoutError) and cause.type is not None:
        return cause.type.name
    return None


class SuiteCommands(Protocol):
    """The run's own test and install commands (IssueInput and AgentInput both carry them)."""

    @property
    def test_command(self) -> list[str] | None: ...

    @property
    def install_command(self) -> list[str] | None: ...


async def run_tests(
    repository: str,
    commit_sha: str,
    tree: str | None,
    commands: SuiteCommands,
    *,
    summary: str,
    overlay: dict[str, str | None] | None = None,
    selection: list[str] | None = None,
    patch_key: str | None = None,
    watch: list[str] | None = None,
) -> TestReport:
    """Run the suite (or the `selection` of its tests) at `commit_sha` (its files: `tree` on the object
    store; plus `overlay`, when given; then the patch under `patch_key`) in the sandbox, on its own task
    queue beside this workflow's; the report names the outcome of each test in `watch`."""
    req = RunTestsInput(
        repository=repository,
        commit_sha=commit_sha,
        tree=tree,
        overlay=overlay or {},
        test_command=commands.test_command,
        install_command=commands.install_command,
        selection=selection or [],
        patch_key=patch_key,
        watch=watch or [],
    )
    return await _in_sandbox(RUN_TESTS, req, TestReport, req.timeout_seconds, summary)


async def run_command(req: RunCommandInput, *, summary: str) -> CommandResult:
    """Run an agent's shell command in the sandbox, on its own task queue beside this workflow's."""
    return await _in_sandbox(RUN_COMMAND, req, CommandResult, req.timeout_seconds, summary)


async def _in_sandbox(name: str, req: object, result_type: type[T], seconds: int, summary: str) -> T:
    """A sandbox activity that may run `seconds`, on the sandbox queue beside this workflow's."""
    queue = sandbox_queue(workflow.info().task_queue)
    return await execute(name, req, result_type, sandbox_call(seconds), summary=summary, task_queue=queue)


def innermost(err: BaseException) -> tuple[str, str | None]:
    """The innermost failure of a cause chain: its message and, for an application error, its type."""
    while err.__cause__ is not None:
        err = err.__cause__
    return str(err), err.type if isinstance(err, exceptions.ApplicationError) else None
