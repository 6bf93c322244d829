"""IssueWorkflow: the seed's planner → coder → tester → reviewer state machine, with human gates.

The routing decision is `policy.routing.route` over its table; this module runs the role each step
names (every role the same way: roles/ says its stage and step kind), keeps the live state (query
`state`), and waits at gates answered by signal or by the `decide` update.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from contracts import api, search
    from contracts.agents import ModelSpec
    from contracts.codehost import FetchTaskInput, TaskSpec
    from contracts.github_events import SIGNAL_HUMAN_REVIEW
    from contracts.run import (
        ALLOWED_DECISIONS,
        Decision,
        GateDecision,
        GateKind,
        HumanReview,
        IssueInput,
        IssueResult,
        OrchestrationState,
        Outcome,
        PendingGate,
        RunBudgets,
        Stage,
    )
    from contracts.usage import AgentUsage
    from policy.budgets import budget_exceeded
    from policy.failures import ends_run
    from policy.gates import decision_error
    from policy.outcomes import failure_type
    from policy.protected import protected_paths
    from policy.routing import AFTER_FEEDBACK, END, Route, first_step, retries_left, route
    from roles import RoleSpec, spec_of
    from workflows import _metrics
    from workflows import activity_calls as acts
    from workflows._checks import StageChecks
    from workflows._shape import FAILED_RUNS_FAIL, LOCAL_HOST_CALLS, Shape
    from workflows._steps import Steps
    from workflows.agent import AgentFailedError


def parse_input(params: dict[str, Any] | IssueInput) -> IssueInput:
    """Validate the start input; a bad field fails the run at once, naming the field."""
    if isinstance(params, IssueInput):
        return params
    try:
        return IssueInput.model_validate(params)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in err.errors())
        raise ApplicationError(
            f"invalid IssueWorkflow input: {problems}", type="InvalidInput", non_retryable=True
        ) from None


@workflow.defn(name=api.WORKFLOW_TYPE)
class IssueWorkflow:
    def __init__(self) -> None:
        self._state: OrchestrationState | None = None
        self._decision: GateDecision | None = None
        self._gate_timeout = 0
        self._protected_patterns: list[str] = []
        self._human_reviews: list[HumanReview] = []  # signalled before the state exists, or any time
        self._threads: set[str] = set()
        self._steps: Steps | None = None
        self._shape = Shape(0)

    # --- messages ---------------------------------------------------------------------------

    @workflow.query(name=api.QUERY_STATE)
    def state(self) -> OrchestrationState:
        if self._state is None:
            raise ApplicationError("the run has not started yet")
        return self._state

    @workflow.signal(name=api.SIGNAL_APPROVE)
    def approve(self, decision: GateDecision | None = None) -> None:
        self._signal("approve", decision)

    @workflow.signal(name=api.SIGNAL_REJECT)
    def reject(self, decision: GateDecision | None = None) -> None:
        self._signal("reject", decision)

    @workflow.signal(name=api.SIGNAL_FEEDBACK)
    def feedback(self, decision: GateDecision | None = None) -> None:
        self._signal("feedback", decision)

    @workflow.update(name=api.UPDATE_DECIDE)
    def decide(self, decision: GateDecision) -> str:
        gate = self._pending()
        self._decision = decision
        return f"{decision.decision} recorded for the {gate.kind if gate else 'pending'} gate"

    @decide.validator
    def _validate_decide(self, decision: GateDecision) -> None:
        error = decision_error(self._pending(), decision.decision, decision.comment)
        if error is not None:
            raise ValueError(error)

    @workflow.signal(name=SIGNAL_HUMAN_REVIEW)
    def human_review(self, review: HumanReview) -> None:
        """A person reviewed the run's pull request: the coder's next round takes it (see _after_route)."""
        self._human_reviews.append(review)

    def _pending(self) -> PendingGate | None:
        return self._state.pending_gate if self._state else None

    def _signal(self, kind: Decision, decision: GateDecision | None) -> None:
        decision = (decision or GateDecision()).model_copy(update={"decision": kind})
        error = decision_error(self._pending(), kind, decision.comment)
        if error is not None:
            # A signal can't be refused, so an invalid one is recorded and ignored.
            workflow.logger.warning("ignored %s signal: %s", kind, error)
            if self._state is not None:
                self._state.log.append(f"ignored {kind} signal: {error}")
            return
        self._decision = decision

    # --- the run ----------------------------------------------------------------------------

    @workflow.run
    async def run(self, params: dict[str, Any]) -> IssueResult:
        shape = self._shape = Shape.of_this_run()
        inp = parse_input(params)
        self._gate_timeout = inp.gate_timeout_seconds
        st = self._state = OrchestrationState(
            repo=inp.repo,
            mode=inp.mode,
            max_retries=inp.max_retries,
            scripted_replay=inp.model_script is not None,
            human_reviews=[inp.human_review] if inp.human_review else [],
        )
        self._human_reviews = st.human_reviews = [*st.human_reviews, *self._human_reviews]
        self._threads = _threads(inp)
        run_attributes = [search.REPO.value_set(str(inp.repo)), search.MODE.value_set(inp.mode)]
        if not shape.at_least(LOCAL_HOST_CALLS):
            workflow.upsert_search_attributes(run_attributes)
            run_attributes = []
        self._set_stage(Stage.STARTING, f"run started in {inp.mode} mode", run_attributes)
        task = await self._fetch_task(inp)
        self._protected_patterns = [*inp.protected_paths, *task.protected_paths]  # the repository's only add
        steps = self._steps = Steps(inp, task, st, self._model_spec(inp), self._guard, shape)
        for refused in steps.refused:  # what the repository's .forgeflow.yml may not do, by key
            self._note(refused)
        self._checks = StageChecks(inp, self._note, shape)
        step = first_step(inp.mode, reviews_existing_pr=inp.reviews_existing_pr, answers_human_review=inp.continues_pr)
        while step != END:
            if not await self._within_budget(steps, inp):
                break
            try:
                decision = await self._run_step(step, steps, inp)
            except _GateTimedOut:
                break
            except (ChildWorkflowError, AgentFailedError, ActivityError) as err:
                if is_cancelled_exception(err):
                    raise  # cancelled by a person (temporal workflow cancel): the run ends as cancelled
                if not await self._recover(step, steps, inp, err):
                    break
                continue  # the same step again, after a human's feedback
            decision = self._after_route(decision, steps)
            if decision.uses_retry:
                st.retry_count += 1
                _metrics.retried(step)
            self._note(decision.reason)
            if decision.escalate and not await self._escalate(steps, decision.reason):
                break
            step = AFTER_FEEDBACK if decision.escalate else decision.next
        outcome = self._final_outcome()
        await self._checks.finished(steps.head_sha, outcome, f"run finished: {outcome.value}")
        return self._finish()

    def _after_route(self, decision: Route, steps: Steps) -> Route:
        """A person's review of the run's pull request that came while the run worked: where the run
        would end, it gets the coder's next round instead, while retries last."""
        st = self._require_state()
        waiting = len(st.human_reviews) - steps.reviews_used
        if decision.next != END or decision.escalate or waiting <= 0 or not st.prs_created:
            return decision
        if st.outcome in (Outcome.REJECTED, Outcome.GATE_TIMED_OUT):
            return decision
        if retries_left(st.retry_count, st.max_retries) == 0:
            self._note(f"{waiting} review(s) by a person not taken: no retries left")
            return decision
        st.outcome = None
        return Route(next="coder", reason=f"{waiting} review(s) by a person on the pull request", uses_retry=True)

    async def _within_budget(self, steps: Steps, inp: IssueInput) -> bool:
        """True to go on; a spent budget waits for a human, whose feedback grants it once more."""
        over = budget_exceeded(self._require_state().usage, steps.budgets)
        if over is None:
            return True
        if not await self._escalate(steps, over):
            return False
        steps.budgets = _extend(steps.budgets, inp.budgets)
        return True

    async def _recover(self, step: str, steps: Steps, inp: IssueInput, err: BaseException) -> bool:
        """A step failed: end on misconfiguration, else escalate; True when a human says try again."""
        st = self._require_state()
        _count_failed_spend(st, step, err)
        message, error_type = acts.innermost(err)
        st.error = f"the {step} step failed: {message}"
        self._note(st.error)
        if ends_run(error_type) or not await self._escalate(steps, st.error):
            return False
        if error_type == "BudgetExceeded":
            steps.budgets = _extend(steps.budgets, inp.budgets)
        return True

    async def _run_step(self, step: str, steps: Steps, inp: IssueInput) -> Route:
        """Every role runs the same way: its stage, the step its kind names, then the routing table.
        The hooks are per kind: after a plan, plan mode posts it or the approval gate waits; a
        review the run ends on sets the run's outcome."""
        st = self._require_state()
        left = retries_left(st.retry_count, st.max_retries)
        role = spec_of(step)
        self._set_stage(role.stage, _started(role, st.round))
        await self._checks.working(steps.head_sha, f"{role.stage}: {_started(role, st.round)}")
        outcome = await steps.run(role)
        await self._checks.landed(steps.head_sha)
        if role.step == "plan" and (stop := await self._after_plan(steps, inp)) is not None:
            return stop
        decision = route(
            role.name,
            mode=inp.mode,
            outcome=outcome,
            retries_left=left,
            reviews_existing_pr=inp.reviews_existing_pr,
            answers_human_review=inp.continues_pr,
        )
        if role.step == "review" and decision.next == END:
            st.outcome = _review_outcome(st.review_verdict, inp.reviews_existing_pr)
        return decision

    async def _after_plan(self, steps: Steps, inp: IssueInput) -> Route | None:
        """Plan mode posts the plan (the run's outcome); a plan that needs approval waits for it.
        A route that ends the run when the plan was rejected, else None: routing decides."""
        if inp.mode == "plan":
            await steps.post_plan()
            self._require_state().outcome = Outcome.PLANNED
        elif inp.require_plan_approval and not await self._plan_gate():
            return Route(next=END, reason="plan rejected")
        return None

    # --- gates ------------------------------------------------------------------------------

    async def _plan_gate(self) -> bool:
        """True to go on coding; False when a human rejected the plan or nobody answered."""
        st = self._require_state()
        answer = await self._gate("plan_approval", "the plan needs a human's approval before coding")
        if answer is None:
            return False
        if answer.decision == "reject":
            st.approval_status, st.outcome = "rejected", Outcome.REJECTED
            self._note(f"plan rejected by {answer.by or 'a human'}: {answer.comment}".rstrip(": "))
            return False
        st.approval_status = "approved"
        if answer.decision == "feedback":
            st.human_feedback.append(answer.comment)
        self._note(f"plan {answer.decision} by {answer.by or 'a human'}")
        return True

    async def _escalate(self, steps: Steps, reason: str) -> bool:
        """Stop for a human: True (with feedback) grants one more coder round, False ends the run."""
        st = self._require_state()
        st.approval_status = "escalated"
        await steps.post_escalation(reason)
        answer = await self._gate("escalation", reason)
        if answer is None:
            return False
        if answer.decision == "reject":
            st.approval_status, st.outcome = "rejected", Outcome.REJECTED
            self._note(f"escalation answered with reject by {answer.by or 'a human'}")
            return False
        st.human_feedback.append(answer.comment)
        st.max_retries += 1
        st.retry_count += 1
        st.error = None
        st.approval_status = None
        self._note(f"human feedback received from {answer.by or 'a human'}: one more round")
        return True

    async def _guard(self, overlay: dict[str, str | None], role: str, links: list[str] | None) -> dict[str, str | None]:
        """Changes to protected paths (or, when `links` is given, to those symbolic links of the
        repository) wait for a human: approved they are committed, rejected dropped."""
        if links is None:
            guarded = protected_paths(list(overlay), tuple(self._protected_patterns))
            what = "protected paths"
        else:
            guarded = sorted(path for path in links if path in overlay)
            what = "symbolic links of the repository (each would become a regular file, or be deleted)"
        if not guarded:
            return overlay
        st = self._require_state()
        answer = await self._gate("protected_paths", f"the {role} changed {what}: {', '.join(guarded)}")
        if answer is None:
            raise _GateTimedOut
        if answer.decision == "approve":
            self._note(f"changes to {', '.join(guarded)} approved by {answer.by or 'a human'}")
            return overlay
        st.human_feedback.append(
            f"Do not change {', '.join(guarded)}: a maintainer rejected it. {answer.comment}".strip()
        )
        self._note(f"changes to {', '.join(guarded)} rejected by {answer.by or 'a human'}; the rest goes on")
        return {path: key for path, key in overlay.items() if path not in guarded}

    async def _gate(self, kind: GateKind, reason: str) -> GateDecision | None:
        """Wait for a valid decision; None (and the run's end recorded) when the gate times out."""
        st = self._require_state()
        timeout = self._gate_timeout
        st.pending_gate = PendingGate(
            kind=kind,
            reason=reason,
            allowed=list(ALLOWED_DECISIONS[kind]),
            opened_at=workflow.now().isoformat(),
            timeout_seconds=timeout,
        )
        stage, opened = _GATE_STAGES[kind], workflow.now()
        self._set_stage(stage, f"waiting for a human at the {kind} gate: {reason}")
        if self._steps is not None:
            await self._checks.working(self._steps.head_sha, f"waiting for a human at the {kind} gate")
        self._decision = None
        try:
            await workflow.wait_condition(lambda: self._decision is not None, timeout=timedelta(seconds=timeout))
        except TimeoutError:
            st.approval_status, st.outcome = "timed_out", Outcome.GATE_TIMED_OUT
            st.error = f"the {kind} gate timed out after {timeout} s without a decision ({reason})"
            self._note(st.error)
            return None
        finally:
            st.pending_gate = None
        answer, self._decision = self._decision, None
        _metrics.gate_answered(opened, kind, answer.decision if answer else "timed_out")
        return answer

    # --- helpers ----------------------------------------------------------------------------

    async def _fetch_task(self, inp: IssueInput) -> TaskSpec:
        req = FetchTaskInput(
            repo=inp.repo,
            issue_number=inp.issue_number,
            pr_number=inp.pr_number,
            spec_content=inp.spec_content,
            base_ref=inp.base_ref,
            trust_any_author=inp.trust_any_author,
        )
        return await acts.host_call(acts.FETCH_TASK, req, TaskSpec, self._shape, summary=f"fetch task from {inp.repo}")

    @staticmethod
    def _model_spec(inp: IssueInput) -> ModelSpec:
        if inp.model_script is not None:
            return ModelSpec(provider="scripted", model="scripted-replay", script=inp.model_script)
        return ModelSpec(provider="anthropic", model=inp.model)

    def _require_state(self) -> OrchestrationState:
        assert self._state is not None, "state exists once run() started"
        return self._state

    def _set_stage(self, stage: str, line: str, also: Sequence[SearchAttributeUpdate[Any]] = ()) -> None:
        """The run's stage, in its state, its search attributes (with `also`) and its details."""
        st = self._require_state()
        stage = str(stage)  # a Stage member's value, or a role's stage
        st.stage = stage
        self._note(line)
        workflow.logger.info("stage: %s", line, extra={"stage": stage, "round": st.round})  # not on replay
        threads = sorted(self._threads | {t for ref in st.prs_created if (t := _pull_thread(ref))})
        found = [search.THREADS.value_set(threads)] if threads else []  # a local run has none
        workflow.upsert_search_attributes([*also, search.STAGE.value_set(stage), *found])
        retries = f"retries {st.retry_count}/{st.max_retries}"
        workflow.set_current_details(f"**{stage}** — round {max(st.round, 1)}, {retries}\n\n{line}")

    def _note(self, line: str) -> None:
        self._require_state().log.append(f"[{workflow.now().strftime('%H:%M:%S')}] {line}")

    def _final_outcome(self) -> Outcome:
        """The run's outcome as it ends: the one set, else escalated (a human was asked) or failed."""
        st = self._require_state()
        if st.outcome is not None:
            return st.outcome
        return Outcome.ESCALATED if st.approval_status == "escalated" else Outcome.FAILED

    def _finish(self) -> IssueResult:
        st = self._require_state()
        st.outcome = self._final_outcome()
        st.stage = Stage.DONE
        self._note(f"run finished: {st.outcome.value}")
        workflow.upsert_search_attributes(
            [search.STAGE.value_set(Stage.DONE.value), search.OUTCOME.value_set(st.outcome.value)]
        )
        workflow.set_current_details(f"**done** — {st.outcome.value}")
        _metrics.run_finished(workflow.info().start_time, st.outcome.value, st.mode)
        result = IssueResult(outcome=st.outcome, state=st)
        # A failure fails the execution; `patched` replays histories recorded before that as they ran.
        if (error_type := failure_type(st.outcome)) and self._shape.has(FAILED_RUNS_FAIL):
            message = f"run {st.outcome.value}: {st.error or 'see the run log'}"
            raise ApplicationError(message, result.model_dump(mode="json"), type=error_type, non_retryable=True)
        return result


class _GateTimedOut(Exception):
    """Nobody answered a gate in the middle of a step: the run ends (the reason is recorded)."""


_GATE_STAGES = {
    "plan_approval": Stage.AWAITING_PLAN_APPROVAL,
    "escalation": Stage.AWAITING_ESCALATION,
    "protected_paths": Stage.AWAITING_CHANGE_APPROVAL,
}


def _threads(inp: IssueInput) -> set[str]:
    """The issue and pull request the run was started on, as kept in the THREADS search attribute."""
    return {search.thread(n) for n in (inp.issue_number, inp.pr_number) if n is not None and inp.repo.kind == "github"}


def _pull_thread(ref: str) -> str | None:
    """A pull request's thread from its URL (…/pull/12); None for a local branch."""
    head, _, number = ref.rstrip("/").rpartition("/")
    return search.thread(int(number)) if head.endswith("/pull") and number.isdigit() else None


def _extend(current: RunBudgets, original: RunBudgets) -> RunBudgets:
    """A human chose to go on past a budget: grant the original budget once more."""
    return RunBudgets(
        max_turns_per_agent=current.max_turns_per_agent,
        max_total_turns=current.max_total_turns + original.max_total_turns,
        max_tokens=current.max_tokens + original.max_tokens,
        max_usd=current.max_usd + original.max_usd,
    )


def _review_outcome(verdict: str | None, existing_pr: bool) -> Outcome:
    if existing_pr:
        return Outcome.REVIEWED
    return Outcome.APPROVED if verdict == "approve" else Outcome.CHANGES_REQUESTED


def _started(role: RoleSpec, round_no: int) -> str:
    """The log line a step starts with; a change step counts the rounds."""
    if role.step == "change":
        return f"{role.name} round {round_no + 1} started"
    return f"{role.name} started"


def _count_failed_spend(st: OrchestrationState, step: str, err: BaseException) -> None:
    """An agent that failed still spent tokens: its ApplicationError carries its usage."""
    cause = err.__cause__
    if (
        isinstance(err, (ChildWorkflowError, AgentFailedError))
        and isinstance(cause, ApplicationError)
        and cause.details
    ):
        st.usage.add(step, AgentUsage.model_validate(cause.details[0]), round_no=st.round)
