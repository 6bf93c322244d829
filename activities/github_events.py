"""The GitHubEventWorkflow's activities: the sender's access, reactions, a review's comments (GitHub),
and finding and answering the thread's run (Temporal, through the worker's own client).

Each is safe to repeat: GitHub keeps one reaction per user and content, reads change nothing, and
the gate's answer is a `decide` update sent under the delivery's id, which Temporal takes once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities._heartbeat import heartbeats
from contracts import api, search
from contracts.github_events import (
    WRITE_PERMISSIONS,
    AccessInput,
    AccessResult,
    FindRunInput,
    FoundRun,
    GateAnswerInput,
    GateAnswerResult,
    ReactInput,
    ReviewCommentsInput,
)
from contracts.run import GateDecision, HumanReviewComment

if TYPE_CHECKING:  # githubkit is imported only by a worker that has GitHub settings (starter/workers.py)
    from activities.codehost.github import GitHubHost


class GitHubEventActivities:
    def __init__(self, github: GitHubHost | None) -> None:
        """`github`: the worker's GitHub host; None on a worker without GitHub settings (each call refuses)."""
        self._github = github

    def _host(self) -> GitHubHost:
        if self._github is None:
            raise ApplicationError(
                "GitHub is not configured on this worker (GITHUB_TOKEN or the GitHub App settings)",
                type="CodeHostUnavailable",
                non_retryable=True,
            )
        return self._github

    @activity.defn
    @heartbeats
    async def check_access(self, req: AccessInput) -> AccessResult:
        """`login`'s access to the repository, asked of GitHub for every command."""
        permission = await self._host().permission(req.repo, req.login)
        return AccessResult(permission=permission, can_write=permission in WRITE_PERMISSIONS)

    @activity.defn
    @heartbeats
    async def react(self, req: ReactInput) -> None:
        await self._host().react(req.repo, req.comment_id, req.content)

    @activity.defn
    @heartbeats
    async def review_comments(self, req: ReviewCommentsInput) -> list[HumanReviewComment]:
        return await self._host().review_comments(req.repo, req.pr_number, req.review_id)

    @activity.defn
    @heartbeats
    async def find_run(self, req: FindRunInput) -> FoundRun:
        """The newest running IssueWorkflow of the repository that belongs to the issue or pull request."""
        query = (
            f"WorkflowType = '{api.WORKFLOW_TYPE}' AND ExecutionStatus = 'Running' "
            f"AND {search.REPO.name} = '{req.repo}' AND {search.THREADS.name} = '{search.thread(req.number)}'"
        )
        async for found in activity.client().list_workflows(query, limit=1):
            return FoundRun(run_id=found.id)
        return FoundRun()

    @activity.defn
    @heartbeats
    async def answer_gate(self, req: GateAnswerInput) -> GateAnswerResult:
        """The `decide` update to the run: the gate's answer, or why the gate refused the decision."""
        handle = activity.client().get_workflow_handle(req.run_id)
        decision = GateDecision(decision=req.decision, comment=req.comment, by=req.by)
        try:
            said = await handle.execute_update(api.UPDATE_DECIDE, decision, id=req.update_id, result_type=str)
        except WorkflowUpdateFailedError as err:
            return GateAnswerResult(accepted=False, message=_reason(err))
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:  # the run ended between finding it and answering
                return GateAnswerResult(accepted=False, message=f"run {req.run_id} has ended")
            raise
        return GateAnswerResult(accepted=True, message=said)


def _reason(err: WorkflowUpdateFailedError) -> str:
    """The validator's words (the gate's reason for refusing), without the SDK's wrapping."""
    cause = err.cause
    return cause.message if isinstance(cause, ApplicationError) else str(cause or err)
