"""The run's progress on its pull request's commits: one check run per commit (a GitHub App) or a
commit status (a token), by the code host's `report_stage` activity. GitHub runs only: a local
repository shows no checks, and its runs send nothing.

    a commit of the run lands          → queued
    a step starts, a gate opens        → in progress, the stage in the summary
    the run ends                       → completed, the outcome as the conclusion (policy.checks)
    the run moves on to a newer commit → the older commit's check completed as neutral ("superseded")

Reports never stop a run: one that fails (say, an App without the Checks permission) is noted in the
run's log, and the run reports no more.
"""

from __future__ import annotations

from collections.abc import Callable

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from contracts.codehost import CheckConclusion, CheckStatus, PostedResult, ReportStageInput
    from contracts.run import IssueInput, Outcome
    from policy.checks import conclusion
    from workflows import activity_calls as acts
    from workflows._shape import CHECKS, Shape


class StageChecks:
    def __init__(self, inp: IssueInput, note: Callable[[str], None], shape: Shape) -> None:
        """`note` adds a line to the run's log; `shape`: the run's (runs before checks report none)."""
        self._inp = inp
        self._note = note
        self._shape = shape
        self._on: bool | None = None  # decided by the first report, through the run's shape
        self._head: str | None = None  # the commit the run's check is on

    async def landed(self, head: str | None) -> None:
        """A step ended on `head`: a commit new to the run is queued for the next step."""
        if head is not None and head != self._head:
            await self._report(head, "queued", "waiting for the next step")

    async def working(self, head: str | None, summary: str) -> None:
        """A step started, or a gate opened, on `head` (nothing before the run's first commit)."""
        if head is not None:
            await self._report(head, "in_progress", summary)

    async def finished(self, head: str | None, outcome: Outcome, summary: str) -> None:
        if head is not None:
            await self._report(head, "completed", summary, conclusion(outcome))

    async def _report(
        self, head: str, status: CheckStatus, summary: str, concluded: CheckConclusion | None = None
    ) -> None:
        if not self._enabled():
            return
        if self._head is not None and head != self._head:
            await self._send(self._head, "completed", f"superseded by {head[:12]}", "neutral")
        self._head = head
        await self._send(head, status, summary, concluded)

    def _enabled(self) -> bool:
        if self._inp.repo.kind != "github":
            return False
        if self._on is None:
            self._on = self._shape.has(CHECKS)
        return self._on

    async def _send(self, head: str, status: CheckStatus, summary: str, concluded: CheckConclusion | None) -> None:
        info = workflow.info()
        ui = self._inp.ui_url
        details = f"{ui.rstrip('/')}/namespaces/{info.namespace}/workflows/{info.workflow_id}" if ui else None
        req = ReportStageInput(
            repo=self._inp.repo,
            run_id=info.workflow_id,
            head_sha=head,
            status=status,
            conclusion=concluded,
            summary=summary,
            details_url=details,
        )
        try:
            await acts.host_call(
                acts.REPORT_STAGE, req, PostedResult, self._shape, summary=f"check {status} on {head[:12]}"
            )
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            self._on = False
            self._note(f"the run's stage is no longer reported on its commits: {acts.innermost(err)[0]}")
