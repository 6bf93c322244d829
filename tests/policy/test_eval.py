"""Evaluation suites read line by line, and grading as SWE-bench grades: tables."""

from __future__ import annotations

import json

import pytest

from contracts.eval import TestOutcome
from policy.eval_suite import parse_suite
from policy.grading import grade

GOOD = {
    "instance_id": "acme__calc-1",
    "repo": "acme/calc",
    "base_commit": "0123456789abcdef0123456789abcdef01234567",
    "problem_statement": "subtract is missing",
    "FAIL_TO_PASS": '["tests/test_calc.py::test_subtract"]',  # SWE-bench's datasets: JSON text
    "PASS_TO_PASS": ["tests/test_calc.py::test_add"],
    "test_patch": "diff --git a/tests/test_calc.py b/tests/test_calc.py\n",
    "install_command": "pip install -e .",
    "hints_text": "a field this does not use",
}


def line(**changes: object) -> str:
    return json.dumps({**GOOD, **changes})


def test_a_swe_bench_line_is_read_and_unknown_fields_are_ignored() -> None:
    suite = parse_suite(line() + "\n")
    (instance,) = suite.instances
    assert suite.problems == []
    assert instance.FAIL_TO_PASS == ["tests/test_calc.py::test_subtract"]
    assert instance.PASS_TO_PASS == ["tests/test_calc.py::test_add"]
    assert instance.install_command == ["pip", "install", "-e", "."]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        (line(base_commit="HEAD; rm -rf /"), "base_commit"),
        (line(FAIL_TO_PASS="[]"), "FAIL_TO_PASS"),
        (line(FAIL_TO_PASS="tests/x.py"), "FAIL_TO_PASS: Value error, must be a list of test ids"),
        (line(problem_statement=""), "problem_statement"),
        (line(instance_id="acme__calc-1"), "instance_id 'acme__calc-1' was on line 1"),
    ],
)
def test_a_bad_line_is_named_by_number_and_the_rest_still_runs(bad: str, message: str) -> None:
    suite = parse_suite("\n".join([line(), bad, "", line(instance_id="acme__calc-2")]))
    assert [i.instance_id for i in suite.instances] == ["acme__calc-1", "acme__calc-2"]
    (problem,) = suite.problems
    assert problem.line == 2 and message in str(problem)


F2P, P2P = ["t::fixed"], ["t::kept", "t::other"]


@pytest.mark.parametrize(
    ("outcomes", "resolved"),
    [
        ({"t::fixed": "passed", "t::kept": "passed", "t::other": "passed"}, True),
        ({"t::fixed": "xfailed", "t::kept": "passed", "t::other": "passed"}, True),  # as SWE-bench counts it
        ({"t::fixed": "failed", "t::kept": "passed", "t::other": "passed"}, False),  # not fixed
        ({"t::fixed": "passed", "t::kept": "failed", "t::other": "passed"}, False),  # broke a passing test
        ({"t::fixed": "passed", "t::kept": "error", "t::other": "passed"}, False),
        ({"t::fixed": "passed", "t::kept": "passed"}, False),  # a listed test the run never reported
        ({"t::fixed": "skipped", "t::kept": "passed", "t::other": "passed"}, False),
    ],
)
def test_resolved_means_every_listed_test_passes(outcomes: dict[str, TestOutcome], resolved: bool) -> None:
    graded = grade(F2P, P2P, outcomes)
    assert graded.resolved is resolved
    assert set(graded.fail_to_pass) == set(F2P) and set(graded.pass_to_pass) == set(P2P)


def test_what_a_grade_says() -> None:
    graded = grade(F2P, P2P, {"t::fixed": "passed", "t::kept": "failed"})
    assert (graded.fixed, graded.broken) == (1, ["t::kept", "t::other"])
    assert graded.pass_to_pass["t::other"] == "missing"
