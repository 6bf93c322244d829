"""EvalWorkflow: a suite's instances, each run once per variant as an IssueWorkflow child and then
graded in the sandbox.

A child runs autonomously from the instance's problem statement at its base commit. Its final
commit is graded with the instance's hidden test patch applied (by blob key: the text is in no
history and no model request) and the listed tests watched, as policy.grading says. Child workflow
ids are the eval's id, the variant and the instance, so a resumed or replayed eval never starts an
instance twice; Temporal history is the eval's progress, and the `progress` query shows it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from contracts import api
    from contracts.codehost import CommitSnapshot, SnapshotInput
    from contracts.eval import (
        EVAL_GATE_SECONDS,
        EVAL_WORKFLOW_TYPE,
        EvalInput,
        EvalResult,
        EvalTask,
        InstanceResult,
        LoadedSuite,
    )
    from contracts.run import IssueInput, IssueResult
    from policy.grading import grade
    from policy.host_rules import slug
    from policy.outcomes import final_result
    from workflows import activity_calls as acts

PROGRESS_QUERY = "progress"


@workflow.defn(name=EVAL_WORKFLOW_TYPE)
class EvalWorkflow:
    def __init__(self) -> None:
        self._planned: list[str] = []  # "<variant>/<instance id>", in the suite's order
        self._done: dict[str, InstanceResult] = {}
        self._problems: list[str] = []

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> EvalResult:
        """The instances graded so far, and the suite's bad lines."""
        done = [self._done[k] for k in self._planned if k in self._done]
        return EvalResult(results=done, problems=self._problems, planned=len(self._planned))

    @workflow.run
    async def run(self, inp: EvalInput) -> EvalResult:
        suite = await acts.execute(
            acts.LOAD_SUITE, inp.suite_key, LoadedSuite, acts.HOST_CALL, summary="load the suite"
        )
        self._problems = suite.problems
        jobs = [(name, overrides, task) for name, overrides in inp.variants.items() for task in suite.tasks]
        self._planned = [f"{name}/{task.instance_id}" for name, _, task in jobs]
        slots = asyncio.Semaphore(inp.concurrency)

        async def one(name: str, overrides: dict[str, Any], task: EvalTask) -> None:
            async with slots:
                self._done[f"{name}/{task.instance_id}"] = await _Instance(name, overrides, task).run()

        await asyncio.gather(*(one(*job) for job in jobs))
        return self.progress()


class _Instance:
    """One instance under one variant: its run, then its grade."""

    def __init__(self, variant: str, overrides: dict[str, Any], task: EvalTask) -> None:
        self.variant, self.overrides, self.task = variant, overrides, task
        self.child_id = f"{workflow.info().workflow_id}.{slug(variant)}.{slug(task.instance_id)}"

    async def run(self) -> InstanceResult:
        started = workflow.now()
        try:
            inp = IssueInput.model_validate(self._start_input())
        except ValidationError as err:  # a variant's override that no run accepts
            return self._result(outcome="failed", error=f"the run's input is not valid: {err}")
        try:
            ran: IssueResult = await workflow.execute_child_workflow(
                api.WORKFLOW_TYPE, inp, id=self.child_id, result_type=IssueResult, static_summary=self.child_id
            )
        except ChildWorkflowError as err:
            ended = final_result(err.cause)  # a run with no answer (escalated, …) still carries its result
            if ended is None:
                return self._result(outcome="failed", error=f"the run failed: {acts.innermost(err)[0]}")
            ran = ended
        seconds = (workflow.now() - started).total_seconds()
        usage = self._usage(ran, seconds)
        final = ran.state.commits[-1] if ran.state.commits else None
        if final is None:
            return self._result(**usage, error="the run made no commit: nothing to grade")
        snapshot = await acts.execute(
            acts.COMMIT_SNAPSHOT,
            SnapshotInput(repo=self.task.repo, base_sha=self.task.base_commit, sha=final),
            CommitSnapshot,
            acts.HOST_CALL,
            summary=f"snapshot {final[:12]}",
        )
        report = await acts.run_tests(
            self.task.repo,
            final,
            snapshot.tree,
            self.task,
            summary=f"grade {self.task.instance_id}",
            patch_key=self.task.test_patch_key,
            watch=[*self.task.fail_to_pass, *self.task.pass_to_pass],
        )
        graded = grade(self.task.fail_to_pass, self.task.pass_to_pass, report.outcomes)
        error = None if report.status not in ("error", "timed_out") else report.output_tail[:2000]
        return self._result(
            **usage, resolved=graded.resolved, grade=graded, final_commit=final, patch=snapshot.patch, error=error
        )

    def _start_input(self) -> dict[str, Any]:
        task = self.task
        params: dict[str, Any] = {
            "repo": task.repo,
            "spec_content": task.problem_statement,
            "base_ref": task.base_commit,
            "mode": "autonomous",
            "gate_timeout_seconds": EVAL_GATE_SECONDS,
            "install_command": task.install_command,
            "test_command": task.test_command,
            "model_script": task.model_script,
        }
        return {k: v for k, v in params.items() if v is not None} | self.overrides

    def _usage(self, ran: IssueResult, seconds: float) -> dict[str, Any]:
        totals = ran.state.usage
        agents = totals.by_agent.values()
        return {
            "outcome": ran.outcome.value,
            "rounds": ran.state.round,
            "turns": totals.total_turns,
            "input_tokens": sum(a.usage.input_tokens for a in agents),
            "output_tokens": sum(a.usage.output_tokens for a in agents),
            "cache_read_tokens": sum(a.usage.cache_read_input_tokens for a in agents),
            "cache_write_tokens": sum(a.usage.cache_creation_input_tokens for a in agents),
            "cost_usd": round(totals.total_cost_usd, 6),
            "wall_seconds": round(seconds, 3),
        }

    def _result(self, **fields: Any) -> InstanceResult:
        return InstanceResult(instance_id=self.task.instance_id, variant=self.variant, **fields)
