"""The first message each agent gets: the task, the plan, and what went wrong last round.

Pure functions of durable values, so the workflow can build them deterministically; this is how
context is carried across retries.
"""

from __future__ import annotations

from contracts.agents import Plan, Review, TestReport
from contracts.codehost import TaskSpec
from contracts.run import HumanReview
from policy.untrusted import bound, fence


def _task(task: TaskSpec) -> str:
    return f"Task ({task.source}): {task.title}\n{fence('task', task.body)}"


def _plan(plan: Plan) -> str:
    lines = [f"Plan: {plan.summary}"]
    for t in plan.tasks:
        deps = f" (after {', '.join(t.depends_on)})" if t.depends_on else ""
        files = f" [{', '.join(t.files)}]" if t.files else ""
        lines.append(f"- {t.id}: {t.title}{files}{deps}")
    if plan.test_strategy:
        lines.append(f"Test strategy: {plan.test_strategy}")
    return "\n".join(lines)


LIMIT_STATUSES = ("timed_out", "out_of_memory", "too_many_processes", "too_much_output")
MAX_FAILURES_SHOWN = 30  # failures the model reads in full; the rest are counted
MAX_REPORT_TEXT = 30_000  # characters of one test report as the model reads it


def _failures(report: TestReport) -> str:
    lines = [
        f"The tests failed on commit {report.commit_sha[:12]}: {report.failed} failed, "
        f"{report.errors} errors, {report.passed} passed (status {report.status})."
    ]
    if report.status in LIMIT_STATUSES and report.output_tail:  # the sandbox says which limit it hit
        lines.append(f"The sandbox stopped the run: {report.output_tail.splitlines()[0]}")
    install = report.install
    if install is not None and not install.cached and install.exit_code != 0:
        lines.append(f"The install step `{' '.join(install.command)}` failed (exit code {install.exit_code}):")
        lines.append(install.output_tail)
    shown = report.failures[:MAX_FAILURES_SHOWN]
    for f in shown:
        lines.append(f"- {f.name}: {f.message}\n{f.output}".rstrip())
    hidden = len(report.failures) - len(shown) + report.failures_omitted
    if hidden:
        lines.append(f"… {hidden} more failures not shown")
    if not report.failures and report.output_tail:
        lines.append(report.output_tail)
    return bound("\n".join(lines), MAX_REPORT_TEXT)


def _review(review: Review) -> str:
    lines = [f"The reviewer requested changes: {review.summary}"]
    for c in review.comments:
        where = f"{c.path}:{c.line}" if c.line else c.path
        lines.append(f"- {where} [{c.severity}/{c.category}] {fence('comment', c.body)}")
    return "\n".join(lines)


def _human_review(review: HumanReview) -> str:
    """A maintainer's review of the pull request: what they asked, where. Their words are untrusted text."""
    asked = "requested changes" if review.state == "changes_requested" else "commented"
    lines = [
        f"A maintainer (@{review.reviewer}) reviewed the pull request and {asked}. The change so far is "
        "committed on its branch, and your edits go on top of it: address every point."
    ]
    if review.body.strip():
        lines.append(fence("review", review.body))
    for c in review.comments:
        where = f"{c.path}:{c.line}" if c.line else c.path
        lines.append(f"- {where} {fence('comment', c.body)}")
    return "\n".join(lines)


def planner_brief(task: TaskSpec) -> str:
    return f"{_task(task)}\n\nExplore the repository and submit a plan."


def coder_brief(
    task: TaskSpec,
    plan: Plan | None,
    *,
    round_: int,
    failed_tests: TestReport | None,
    review: Review | None,
    human_feedback: list[str],
    human_reviews: list[HumanReview] | None = None,
) -> str:
    parts = [_task(task)]
    if plan is not None:
        parts.append(_plan(plan))
    if round_ > 0:
        parts.append(f"This is round {round_ + 1}: your previous change is committed; fix what follows.")
    if failed_tests is not None:
        parts.append(_failures(failed_tests))
    if review is not None:
        parts.append(_review(review))
    for note in human_feedback:
        parts.append(f"Guidance from a human maintainer:\n{fence('feedback', note)}")
    for human in human_reviews or []:
        parts.append(_human_review(human))
    parts.append("Implement the change, then submit.")
    return "\n\n".join(parts)


def tester_brief(task: TaskSpec, commit_sha: str) -> str:
    return f"{_task(task)}\n\nThe change is committed as {commit_sha}. Run the tests and report."


def reviewer_brief(task: TaskSpec, plan: Plan | None, commit_sha: str, tests: TestReport | None) -> str:
    parts = [_task(task)]
    if plan is not None:
        parts.append(_plan(plan))
    parts.append(f"Review the change at commit {commit_sha} (use view_diff).")
    if tests is not None:
        parts.append(f"Tests: {tests.passed} passed, {tests.failed} failed, {tests.errors} errors.")
    return "\n\n".join(parts)


def report_text(report: TestReport) -> str:
    """How a sandbox run reads to the model: the runner's counts, then what failed."""
    head = (
        f"status: {report.status}; total {report.total}, passed {report.passed}, failed {report.failed}, "
        f"errors {report.errors}, skipped {report.skipped} (exit code {report.exit_code})"
    )
    if report.coverage_percent is not None:
        head += f"; line coverage {report.coverage_percent}%"
    if report.ok:
        return head
    return f"{head}\n{_failures(report)}"
