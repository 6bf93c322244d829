"""How a sandbox report reads to the model: the limit it hit, and why an install failed."""

from __future__ import annotations

import pytest

from contracts.testing import InstallReport, TestFailure, TestReport
from roles.briefs import report_text

SHA = "a" * 40


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (
            TestReport(commit_sha=SHA, command=["pytest"], status="passed", total=3, passed=3, exit_code=0),
            ["status: passed; total 3, passed 3"],
        ),
        (
            TestReport(
                commit_sha=SHA, command=["pytest"], status="too_many_processes", total=1, failed=1,
                failures=[TestFailure(name="tests/test_x.py::test_bomb", message="fork failed")],
                output_tail="hit the limit of 256 processes\n...pytest output...",
            ),
            ["The sandbox stopped the run: hit the limit of 256 processes", "tests/test_x.py::test_bomb: fork failed"],
        ),
        (
            TestReport(
                commit_sha=SHA, command=[], status="error", output_tail="the install step failed",
                install=InstallReport(command=["npm", "ci"], cached=False, exit_code=1, output_tail="ERR! 404 pad"),
            ),
            ["The install step `npm ci` failed (exit code 1):", "ERR! 404 pad", "the install step failed"],
        ),
    ],
)  # fmt: skip
def test_report_text_for_the_model(report: TestReport, expected: list[str]) -> None:
    text = report_text(report)
    for part in expected:
        assert part in text
    if report.ok:
        assert "\n" not in text  # a passing run is one line of counts
