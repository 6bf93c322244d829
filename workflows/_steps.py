"""The agent steps of an IssueWorkflow run, and the code-host writes around them.

A step runs one role: it runs one AgentLoop inside the run (an AgentWorkflow child in runs
recorded before `agents-in-the-run`), folds the result into the run's state the
way the role's kind says (roles/spec.py StepKind: plan, change, tests, review), and returns the
outcome routing decides on. Context for the next round (test failures, review comments, human
feedback, the agent's own earlier conversation) is kept here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts import api
    from contracts.agents import (
        AgentInput,
        AgentResult,
        ChangeSummary,
        ModelSpec,
        Plan,
        Review,
        Role,
        TestReport,
        Workspace,
    )
    from contracts.codehost import (
        LandChangesInput,
        LandChangesResult,
        PostCommentInput,
        PostedResult,
        PostReviewInput,
        PublishInput,
        PublishResult,
        TaskSpec,
    )
    from contracts.graphs import GraphInput
    from contracts.run import IssueInput, OrchestrationState
    from policy.agent_settings import Resolved, resolve, turn_cap
    from policy.budgets import tokens_left
    from policy.commands import command_access
    from policy.host_rules import BRANCH_PREFIX, slug
    from policy.reviews import merged
    from policy.routing import StepOutcome
    from roles import ROLES, RoleSpec, briefs
    from roles.spec import StepKind
    from workflows import _metrics
    from workflows import activity_calls as acts
    from workflows._shape import AGENTS_IN_THE_RUN, TEST_SUMMARY, Shape
    from workflows.agent import AgentFailedError, AgentLoop

T = TypeVar("T")
TESTER_COMMIT_MESSAGE = "Add tests for the change\n\nWritten by the forgeflow tester."


# (overlay, author role, links among its paths or None) → what may be committed. With links None the
# guard judges paths by name; with links given, it asks about replacing or deleting those links.
Guard = Callable[[dict[str, str | None], str, list[str] | None], Awaitable[dict[str, str | None]]]
LINK_CHANGE = "LinkChange"  # land_changes: the overlay replaces or deletes links committed in the parent


class Steps:
    def __init__(
        self, inp: IssueInput, task: TaskSpec, state: OrchestrationState, model: ModelSpec, guard: Guard, shape: Shape
    ) -> None:
        """`guard` sees every overlay before it is committed and returns what may be committed; `shape`
        is the run's (workflows/_shape.py)."""
        self.guard = guard
        self.shape = shape
        self.inp = inp
        self.task = task
        self.st = state
        self.model = model
        self.branch = BRANCH_PREFIX + slug(workflow.info().workflow_id)
        self.head_sha: str | None = task.head_sha if inp.reviews_existing_pr else None
        self.branch_sha: str | None = None  # where our branch points; None until the first commit
        if inp.continues_pr:  # a person reviewed forgeflow's pull request: go on on its branch
            self.branch, self.head_sha, self.branch_sha = _continued_branch(task)
            state.branches_created.append(self.branch)
            state.prs_created.append(task.pr_ref or self.branch)
        # Each known commit's tree id: the key its files are on the object store under, for the sandbox.
        self.trees: dict[str, str] = {
            sha: tree
            for sha, tree in ((task.base_sha, task.base_tree), (task.head_sha, task.head_tree))
            if sha and tree
        }
        self.last_failed_tests: TestReport | None = None
        self.last_review: Review | None = None
        self.feedback_used = 0
        self.reviews_used = 0  # of st.human_reviews, given to the coder so far
        self.invocations: dict[str, int] = {}
        self.conversations: dict[str, AgentResult] = {}
        self.budgets = inp.budgets  # raised when a human chooses to go on past a spent budget
        self.change_summary = ""
        # The repository's agent settings, narrowed (policy.agent_settings); what it may not do is refused.
        team = task.team
        self.settings: dict[str, Resolved] = {
            name: resolve(f"agents.{name}", name, spec.all_tools, team.agents.get(name)) for name, spec in ROLES.items()
        }
        self.extra_reviewers: dict[str, Resolved] = {
            r.name: resolve(f"reviewers.{r.name}", "reviewer", ROLES["reviewer"].all_tools, r) for r in team.reviewers
        }
        self.refused = [
            line for found in [*self.settings.values(), *self.extra_reviewers.values()] for line in found.refused
        ]

    # --- agents -----------------------------------------------------------------------------

    async def run(self, role: RoleSpec) -> StepOutcome:
        """Run `role` and consume its submission the way its kind says."""
        kinds: dict[StepKind, Callable[[Role], Awaitable[StepOutcome]]] = {
            "plan": self.plan,
            "change": self.code,
            "tests": self.test,
            "review": self.review,
        }
        return await kinds[role.step](role.name)

    async def plan(self, role: Role) -> StepOutcome:
        result = await self._agent(role, briefs.planner_brief(self.task))
        plan = Plan.model_validate(result.submission)
        self.st.plan, self.st.tasks = plan, plan.tasks
        return StepOutcome.DONE

    async def code(self, role: Role) -> StepOutcome:
        new_feedback = self.st.human_feedback[self.feedback_used :]
        self.feedback_used = len(self.st.human_feedback)
        new_reviews = self.st.human_reviews[self.reviews_used :]
        self.reviews_used = len(self.st.human_reviews)
        brief = briefs.coder_brief(
            self.task,
            self.st.plan,
            round_=self.st.round,
            failed_tests=self.last_failed_tests,
            review=self.last_review,
            human_feedback=new_feedback,
            human_reviews=new_reviews,
        )
        self.st.round += 1
        result = await self._agent(role, brief)
        change = ChangeSummary.model_validate(result.submission)
        self.last_failed_tests, self.last_review = None, None
        if result.workspace.overlay and await self._commit(result.workspace.overlay, change.commit_message, role):
            self.change_summary = change.summary
            await self._publish()  # something was committed
        return StepOutcome.DONE

    async def test(self, role: Role) -> StepOutcome:
        commit = self._commit_under_work()
        result = await self._agent(role, briefs.tester_brief(self.task, commit), commit_sha=commit)
        report = result.test_report
        if result.workspace.overlay:  # the tester wrote tests: they join the branch as their own commit
            committed = await self._commit(result.workspace.overlay, TESTER_COMMIT_MESSAGE, role)
            if committed != result.workspace.overlay:
                report = None  # not all that was tested was committed: test the commit itself
            elif report is not None:
                # The sandbox ran exactly commit + overlay, which is the new commit's tree.
                report = report.model_copy(update={"commit_sha": self._commit_under_work()})
        # Routing trusts the runner's own report: if the tester never ran the suite, run it here.
        report = report or await self._run_tests(self._commit_under_work())
        self.st.test_results, self.st.test_failures = report, report.failures
        # Runs started before this step existed replay without it (their shape says so).
        if self.st.prs_created and self.shape.has(TEST_SUMMARY):
            await self._publish()  # the pull request now shows this round's test summary
        if report.ok:
            return StepOutcome.PASSED
        self.last_failed_tests = report
        return StepOutcome.FAILED

    async def review(self, role: Role) -> StepOutcome:
        """The role's review and, in parallel, each extra reviewer's (.forgeflow.yml `reviewers:`), posted
        as one: any of them can request changes."""
        commit = self._commit_under_work()
        brief = briefs.reviewer_brief(self.task, self.st.plan, commit, self.st.test_results)
        names = list(self.extra_reviewers)
        results = await asyncio.gather(
            self._agent(role, brief, commit_sha=commit),
            *(self._agent(role, brief, commit_sha=commit, agent=name) for name in names),
        )
        extras = [(name, Review.model_validate(r.submission)) for name, r in zip(names, results[1:], strict=True)]
        review = merged(Review.model_validate(results[0].submission), extras)
        self.st.review_verdict = review.verdict
        self.st.review_comments = review.comments
        posted = review.model_copy(update={"summary": self._labelled(review.summary)})
        await self._host(
            acts.POST_REVIEW,
            PostReviewInput(
                repo=self.inp.repo,
                pr_ref=self._review_target(),
                commit_sha=commit,
                review=posted,
                run_id=workflow.info().workflow_id,
                round=self.st.round,
            ),
            PostedResult,
            f"post {review.verdict} review",
        )
        if review.verdict == "approve":
            self.st.approval_status = "approved"
            return StepOutcome.APPROVED
        self.st.approval_status = "changes_requested"
        self.last_review = review
        return StepOutcome.CHANGES_REQUESTED

    async def _agent(
        self, role: Role, brief: str, *, commit_sha: str | None = None, agent: str | None = None
    ) -> AgentResult:
        """Run `role`'s agent (an extra reviewer's when `agent` names one); its usage counts under
        `role`, or `role:agent` for an extra reviewer."""
        who = f"{role}:{agent}" if agent else role
        n = self.invocations.get(who, 0)
        self.invocations[who] = n + 1
        earlier = self.conversations.get(who)
        base = self.head_sha or self.task.base_sha
        started = workflow.now()
        try:
            result = await self._run_agent(role, n, brief, base, earlier, commit_sha, agent)
        except BaseException:
            _metrics.agent_finished(started, role, ok=False)
            raise
        _metrics.agent_finished(started, role, ok=True)
        self.conversations[who] = result
        self.st.usage.add(who, result.usage, round_no=self.st.round)
        return result

    async def _run_agent(
        self,
        role: Role,
        n: int,
        brief: str,
        base: str,
        earlier: AgentResult | None,
        commit_sha: str | None,
        agent: str | None = None,
    ) -> AgentResult:
        spec = ROLES[role]
        shaped = self.extra_reviewers[agent] if agent else self.settings[role]
        graph = self.inp.graphs.get(f"{role}:{agent}" if agent else role)
        if graph is not None:  # the operator's LangGraph graph implements this agent: one activity
            found: AgentResult = await acts.execute(
                acts.RUN_GRAPH,
                GraphInput(
                    graph=graph,
                    role=role,
                    agent=agent,
                    run_id=workflow.info().workflow_id,
                    invocation=n,
                    brief=brief,
                    workspace=self._workspace(base),
                    commit_sha=commit_sha or base,
                    model=self._model_for(role, shaped.model),
                ),
                AgentResult,
                acts.GRAPH_CALL,
                summary=f"{agent + ' ' if agent else ''}{role} graph {graph}",
            )
            return found
        # Every agent works on a commit: the one under test or review, else the one its edits start from.
        commit_sha = commit_sha or base
        agent_input = AgentInput(
            role=role,
            run_id=workflow.info().workflow_id,
            invocation=n,
            brief=brief,
            workspace=self._workspace(base),
            commit_sha=commit_sha,
            commit_tree=self.trees.get(commit_sha),
            test_command=self.inp.test_command,
            install_command=self.inp.install_command,
            commands=command_access(
                role,
                by_default=spec.commands_by_default,
                keeps_changes=spec.keeps_command_changes,
                run_roles=self.inp.commands,
                repo_roles=self.task.command_roles,
            ),
            model=self._model_for(role, shaped.model),
            max_turns=turn_cap(spec.max_turns, self.inp.budgets.max_turns_per_agent, shaped.max_turns),
            tokens_left=tokens_left(self.st.usage, self.budgets),
            usd_left=max(0.0, self.budgets.max_usd - self.st.usage.total_cost_usd),
            transcript_key=earlier.transcript_key if earlier else None,
            carry_blocks=earlier.carry_blocks if earlier else [],
            instructions=shaped.instructions,
            tools=shaped.tools,
            agent=agent,
        )
        if self.shape.has(AGENTS_IN_THE_RUN):
            try:
                return await AgentLoop(agent_input, self.shape).run()
            except ApplicationError as err:
                raise AgentFailedError(f"the {agent + ' ' if agent else ''}{role} agent failed") from err
        result: AgentResult = await workflow.execute_child_workflow(
            api.AGENT_WORKFLOW_TYPE,
            agent_input,
            id=f"{workflow.info().workflow_id}.{role}-{agent + '-' if agent else ''}{n + 1}",
            result_type=AgentResult,
            static_summary=f"{agent + ' ' if agent else ''}{role} (run {n + 1})",
        )
        return result

    # --- code host --------------------------------------------------------------------------

    async def _commit(self, proposed: dict[str, str | None], message: str, author_role: str) -> dict[str, str | None]:
        """Commit what the guard allows of `proposed`; returns what was committed (maybe nothing).

        Protected paths are judged by name first. A change to a symbolic link of the parent commit
        is found by the code host, which alone knows the modes: it refuses, the guard asks a human,
        and the commit is tried again with the approved links (or without the rejected ones)."""
        overlay = await self.guard(proposed, author_role, None)
        approved_links: list[str] = []
        while overlay:
            try:
                landed = await self._land(overlay, approved_links, message, author_role)
            except ActivityError as err:
                links = _link_changes(err)
                if links is None:
                    raise
                overlay = await self.guard(overlay, author_role, links)
                approved_links = [path for path in links if path in overlay]
                continue
            self._record(landed)
            break
        return overlay

    def _record(self, landed: LandChangesResult) -> None:
        """The branch now points at `landed`: the run's state says so."""
        self.head_sha = self.branch_sha = landed.commit_sha
        if landed.tree is not None:
            self.trees[landed.commit_sha] = landed.tree
        self.st.commits.append(landed.commit_sha)
        self.st.files_changed = sorted({*self.st.files_changed, *landed.files_changed})
        if self.branch not in self.st.branches_created:
            self.st.branches_created.append(self.branch)

    async def _land(
        self, overlay: dict[str, str | None], approved_links: list[str], message: str, author_role: str
    ) -> LandChangesResult:
        landed: LandChangesResult = await self._host(
            acts.LAND_CHANGES,
            LandChangesInput(
                repo=self.inp.repo,
                branch=self.branch,
                parent_sha=self.head_sha or self.task.base_sha,
                expected_branch_sha=self.branch_sha,
                overlay=overlay,
                message=message,
                timestamp=workflow.now().isoformat(),
                approved_link_changes=approved_links,
            ),
            LandChangesResult,
            f"commit {author_role} round {self.st.round} to {self.branch}",
        )
        return landed

    async def _publish(self) -> None:
        """Open or update the change's pull request: summary, plan, latest tests, and the run it came from."""
        parts = [self.change_summary, _plan_text(self.st.plan), _tests_text(self.st.test_results)]
        parts.append(_run_link(self.inp.ui_url))
        published: PublishResult = await self._host(
            acts.PUBLISH_CHANGE,
            PublishInput(
                repo=self.inp.repo,
                branch=self.branch,
                base_branch=self.task.base_branch,
                title=self.task.title,
                body=self._labelled("\n\n".join(p for p in parts if p)),
                run_id=workflow.info().workflow_id,
                draft=self.inp.draft_pull_requests,
            ),
            PublishResult,
            f"publish {self.branch}",
        )
        if published.ref not in self.st.prs_created:
            self.st.prs_created.append(published.ref)

    async def _run_tests(self, commit: str) -> TestReport:
        return await acts.run_tests(
            str(self.inp.repo), commit, self.trees.get(commit), self.inp, summary=f"run_tests on {commit[:12]}"
        )

    async def post_plan(self) -> None:
        await self._comment("plan", f"## Plan\n\n{_plan_text(self.st.plan)}")

    async def post_escalation(self, reason: str) -> None:
        step = f"escalation-{self.st.round}-{len(self.st.human_feedback)}"
        await self._comment(step, f"## forgeflow needs a human\n\n{reason}\n\nAnswer with approve/reject/feedback.")

    async def _comment(self, step: str, body: str) -> None:
        await self._host(
            acts.POST_COMMENT,
            PostCommentInput(
                repo=self.inp.repo,
                issue_number=self.inp.issue_number,
                branch=self.branch if self.st.branches_created else None,
                body=self._labelled(body),
                run_id=workflow.info().workflow_id,
                step=step,
            ),
            PostedResult,
            f"comment: {step}",
        )

    async def _host(self, activity: str, arg: object, result_type: type[T], summary: str) -> T:
        return await acts.host_call(activity, arg, result_type, self.shape, summary=summary)

    def _workspace(self, base: str) -> Workspace:
        """An agent's workspace on `base`; where the run started only when elsewhere (None: at `base`),
        as every model turn's input carries it."""
        origin = self.task.base_sha if self.task.base_sha != base else None
        return Workspace(repo=self.inp.repo, base_sha=base, origin_sha=origin)

    def _model_for(self, role: Role, repository_choice: str | None = None) -> ModelSpec:
        """The run's override for this agent, else the repository's choice, else the role's own default,
        else the run's model."""
        if self.model.provider != "anthropic":
            return self.model
        chosen = self.inp.models.get(role) or repository_choice or ROLES[role].model or self.model.model
        return self.model.model_copy(update={"model": chosen})

    def _labelled(self, text: str) -> str:
        """Whatever a scripted run writes says so: it is a replay, not a model's work."""
        if self.model.provider != "scripted":
            return text
        return f"[scripted replay — no model was called]\n\n{text}"

    def _review_target(self) -> str:
        """The pull request the review belongs to: ours, the one under review, or (locally) our branch."""
        if self.st.prs_created:
            return self.st.prs_created[-1]
        return self.task.pr_ref or self.branch

    def _commit_under_work(self) -> str:
        return self.head_sha or self.task.base_sha


def _continued_branch(task: TaskSpec) -> tuple[str, str, str]:
    """(branch, head, branch head) of the pull request a person reviewed: only forgeflow's own branch."""
    branch, head = task.head_branch, task.head_sha
    if branch is None or head is None or not branch.startswith(BRANCH_PREFIX):
        raise ApplicationError(
            f"{task.source} is not forgeflow's pull request (branch {branch!r}): forgeflow continues only its "
            f"own branches ({BRANCH_PREFIX}…)",
            type="InvalidInput",
            non_retryable=True,
        )
    return branch, head, head


def _link_changes(err: ActivityError) -> list[str] | None:
    """The links a refused commit would change (land_changes' LinkChange error), else None."""
    cause = err.cause
    if not isinstance(cause, ApplicationError) or cause.type != LINK_CHANGE or not cause.details:
        return None
    links = cause.details[0]
    return [str(path) for path in links] if isinstance(links, list) and links else None


def _run_link(ui_url: str | None) -> str:
    info = workflow.info()
    run = f"forgeflow run `{info.workflow_id}`"
    if ui_url is None:
        return run
    return f"[{run}]({ui_url.rstrip('/')}/namespaces/{info.namespace}/workflows/{info.workflow_id})"


def _tests_text(report: TestReport | None) -> str:
    if report is None:
        return ""
    coverage = f", {report.coverage_percent}% line coverage" if report.coverage_percent is not None else ""
    counts = f"{report.passed} passed, {report.failed} failed, {report.errors} errors, {report.skipped} skipped"
    return f"Tests on `{report.commit_sha[:12]}`: **{report.status}** — {counts}{coverage}"


def _plan_text(plan: Plan | None) -> str:
    if plan is None:
        return ""
    tasks = "\n".join(f"{i}. {t.title}" for i, t in enumerate(plan.tasks, 1))
    return f"{plan.summary}\n\n{tasks}"
