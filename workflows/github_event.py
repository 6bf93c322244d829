"""GitHubEventWorkflow: one webhook delivery, acted on durably. Its id is the delivery's id, so a
redelivered event finds this workflow and starts nothing new.

    the sender's access (GitHub's API, every time) → without write access: one polite reply, nothing runs
    a command's comment gets a reaction (eyes)
    start a run        → an IssueWorkflow child that outlives this workflow; the reply links it
    answer a gate      → the `decide` update to the thread's running run; the reply says what the gate said
    a person's review  → its comments to the thread's running run (signal), or a new run that continues
                         the pull request's branch; the reply links the run
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from contracts import api
    from contracts.codehost import PostCommentInput, PostedResult
    from contracts.github_events import (
        EVENT_WORKFLOW_TYPE,
        SIGNAL_HUMAN_REVIEW,
        AccessInput,
        AccessResult,
        AnswerGate,
        EventOutcome,
        Explain,
        FindRunInput,
        FoundRun,
        GateAnswerInput,
        GateAnswerResult,
        GitHubEvent,
        ReactInput,
        ReviewCommentsInput,
        ReviseFromReview,
        StartRun,
    )
    from contracts.run import HumanReview, HumanReviewComment, IssueInput
    from policy.host_rules import slug
    from workflows import activity_calls as acts

CHECK_ACCESS = "check_access"
REACT = "react"
REVIEW_COMMENTS = "review_comments"
FIND_RUN = "find_run"
ANSWER_GATE = "answer_gate"
ONE_RUN_PER_THREAD = "one-run-per-thread"  # workflow.patched: a started run's id names its thread


@workflow.defn(name=EVENT_WORKFLOW_TYPE)
class GitHubEventWorkflow:
    @workflow.run
    async def run(self, event: GitHubEvent) -> EventOutcome:
        self._event = event
        access = await self._call(CHECK_ACCESS, AccessInput(repo=event.repo, login=event.sender), AccessResult)
        if not access.can_write:
            return await self._reply(
                EventOutcome(
                    done="not_allowed",
                    message=f"Thanks, @{event.sender}! forgeflow takes commands only from people with write access "
                    f"to this repository (yours: {access.permission}), so nothing was started or answered.",
                )
            )
        if event.comment_id is not None:
            await self._call(REACT, ReactInput(repo=event.repo, comment_id=event.comment_id), type(None))
        match event.action:
            case StartRun(mode=mode):
                outcome = await self._start_run(mode)
            case AnswerGate():
                outcome = await self._answer_gate(event.action)
            case ReviseFromReview():
                outcome = await self._revise(event.action)
            case Explain(message=message):
                outcome = EventOutcome(done="explained", message=message)
        return await self._reply(outcome)

    # --- the actions ------------------------------------------------------------------------

    async def _start_run(self, mode: str) -> EventOutcome:
        ev = self._event
        running = await self._running_run()
        if running is not None:
            return self._already_working(running)
        number = {"issue_number": ev.number} if not ev.on_pull_request else {"pr_number": ev.number}
        try:
            run_id = await self._start({**number, "mode": mode})
        except WorkflowAlreadyStartedError as err:  # started since the search above, by a trigger at the same time
            return self._already_working(err.workflow_id)
        what = {"plan": "a plan", "review": "a review of this pull request"}.get(mode, "a pull request")
        return EventOutcome(done="started", message=f"On it: {self._link(run_id)} is working on {what}.", run_id=run_id)

    async def _answer_gate(self, gate: AnswerGate) -> EventOutcome:
        ev = self._event
        running = await self._running_run()
        if running is None:
            return EventOutcome(
                done="refused",
                message=f"No forgeflow run is waiting here, so `/{gate.decision}` has nothing to answer.",
            )
        answer = await self._call(
            ANSWER_GATE,
            GateAnswerInput(
                run_id=running,
                update_id=ev.delivery_id,
                decision=gate.decision,
                comment=gate.comment,
                by=ev.sender,
            ),
            GateAnswerResult,
        )
        if not answer.accepted:
            return EventOutcome(
                done="refused",
                message=f"{self._link(running)} did not take `/{gate.decision}`: {answer.message}.",
                run_id=running,
            )
        return EventOutcome(done="answered", message=f"{self._link(running)}: {answer.message}.", run_id=running)

    async def _revise(self, asked: ReviseFromReview) -> EventOutcome:
        ev = self._event
        comments = await self._call(
            REVIEW_COMMENTS,
            ReviewCommentsInput(repo=ev.repo, pr_number=ev.number, review_id=asked.review_id),
            list[HumanReviewComment],
        )
        if not comments and not asked.body.strip():
            return EventOutcome(
                done="nothing_to_do", message="The review has no comments, so there is nothing to change."
            )
        review = HumanReview(reviewer=ev.sender, state=asked.state, body=asked.body, comments=comments, url=asked.url)
        running = await self._running_run()
        count = f"{len(comments)} comment{'s' if len(comments) != 1 else ''}"
        if running is not None:
            return await self._forward(running, review, count)
        try:
            run_id = await self._start(
                {"pr_number": ev.number, "mode": "autonomous", "human_review": review.model_dump(mode="json")}
            )
        except WorkflowAlreadyStartedError as err:  # started since the search above, by a review at the same time
            return await self._forward(err.workflow_id, review, count)
        return EventOutcome(
            done="started",
            message=f"On it: {self._link(run_id)} takes your review ({count}) as the coder's next round on this "
            "pull request.",
            run_id=run_id,
        )

    async def _forward(self, running: str, review: HumanReview, count: str) -> EventOutcome:
        await workflow.get_external_workflow_handle(running).signal(SIGNAL_HUMAN_REVIEW, review)
        return EventOutcome(
            done="forwarded",
            message=f"Your review ({count}) goes to the coder's next round in {self._link(running)}.",
            run_id=running,
        )

    # --- helpers ----------------------------------------------------------------------------

    def _already_working(self, running: str) -> EventOutcome:
        return EventOutcome(
            done="refused",
            message=f"A forgeflow run is already working here: {self._link(running)}. "
            "Answer its gates with `/approve`, `/reject` or `/feedback`, or cancel it first.",
            run_id=running,
        )

    async def _running_run(self) -> str | None:
        found: FoundRun = await self._call(
            FIND_RUN, FindRunInput(repo=self._event.repo, number=self._event.number), FoundRun
        )
        return found.run_id

    async def _start(self, fields: dict[str, Any]) -> str:
        """Start the run as a child that outlives this workflow. Its id names the thread, so while one
        run works on an issue or pull request no second one starts there, however close together the
        triggers came (the search for a running run can miss one started a moment ago): the start is
        refused with WorkflowAlreadyStartedError. Runs recorded before this took their id from the
        delivery."""
        ev = self._event
        # A person with write access asked for this run: they vouch for the issue whoever opened it (its
        # text stays untrusted data to the agents, fenced as ever). The webhook's options can say otherwise.
        try:
            inp = IssueInput.model_validate(
                {"trust_any_author": True, **ev.run_options, "repo": str(ev.repo), **fields}
            )
        except ValidationError as err:
            raise ApplicationError(
                f"the webhook's run options are invalid: {err}", type="InvalidInput", non_retryable=True
            ) from None
        if workflow.patched(ONE_RUN_PER_THREAD):
            run_id = f"forgeflow-{slug(ev.repo.owner)}-{slug(ev.repo.name)}-{ev.number}"
        else:
            run_id = f"forgeflow-{slug(ev.repo.name)}-{ev.number}-{slug(ev.delivery_id)[:13]}"
        await workflow.start_child_workflow(
            api.WORKFLOW_TYPE,
            inp.model_dump(mode="json", exclude_defaults=True),
            id=run_id,
            parent_close_policy=ParentClosePolicy.ABANDON,
            static_summary=f"{inp.mode} run for #{ev.number}, asked by @{ev.sender}",
        )
        return run_id

    async def _reply(self, outcome: EventOutcome) -> EventOutcome:
        """The answer on the thread, posted once (the hidden marker names this delivery)."""
        ev = self._event
        body = f"@{ev.sender} {outcome.message}"
        req = PostCommentInput(
            repo=ev.repo, issue_number=ev.number, body=body, run_id=workflow.info().workflow_id, step="reply"
        )
        await self._call(acts.POST_COMMENT, req, PostedResult)
        return outcome

    def _link(self, run_id: str) -> str:
        ui = self._event.run_options.get("ui_url")
        if not ui:
            return f"run `{run_id}`"
        return f"[run `{run_id}`]({str(ui).rstrip('/')}/namespaces/{workflow.info().namespace}/workflows/{run_id})"

    async def _call(self, name: str, arg: object, result_type: Any) -> Any:
        return await acts.execute(name, arg, result_type, acts.HOST_CALL, summary=name)
