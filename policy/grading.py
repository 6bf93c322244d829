"""Whether an evaluation instance is resolved, from its listed tests' outcomes. Pure.

As SWE-bench grades: resolved means every FAIL_TO_PASS test passes and every PASS_TO_PASS test
still passes. A test the run did not report at all counts as not passing, so a suite's typo or a
run that stopped early can never pass for a fix; an expected failure (xfail) counts as passing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from contracts.eval import PASSING, Grade, TestOutcome


def grade(fail_to_pass: Sequence[str], pass_to_pass: Sequence[str], outcomes: Mapping[str, TestOutcome]) -> Grade:
    f2p = {test: outcomes.get(test, "missing") for test in fail_to_pass}
    p2p = {test: outcomes.get(test, "missing") for test in pass_to_pass}
    resolved = bool(f2p) and all(outcome in PASSING for outcome in [*f2p.values(), *p2p.values()])
    return Grade(resolved=resolved, fail_to_pass=f2p, pass_to_pass=p2p)
