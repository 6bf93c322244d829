"""Parse a test runner's machine-readable report (JUnit XML, or jest's JSON) into counts and
failures. Pure.

The report is written by the code under test, so it is hostile input: XML is parsed as a stream
without entity expansion, at any depth, and every string kept is bounded; the counts are exact, and
the failures listed with details stop at MAX_FAILURES.
"""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException

from activities.sandbox._layout import WORKSPACE
from contracts.eval import TestOutcome
from contracts.testing import TestFailure

MAX_DETAIL = 2000  # characters of one failure's message, and of its details
MAX_NAME = 500  # characters of a test's name
MAX_FAILURES = 100  # failures listed with details; the counts stay exact
MAX_DEPTH = 32  # enclosing suites that name a test


@dataclass
class JUnitCounts:
    total: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    failures: list[TestFailure] = field(default_factory=list)
    failures_omitted: int = 0  # failed or errored tests past MAX_FAILURES, counted but not listed
    watch: frozenset[str] = frozenset()  # tests whose outcome is kept one by one (grading)
    outcomes: dict[str, TestOutcome] = field(default_factory=dict)  # of the watched tests that ran

    def saw(self, name: str, outcome: TestOutcome) -> None:
        if name in self.watch:
            self.outcomes[name] = outcome

    def add_failure(self, failure: TestFailure) -> None:
        if len(self.failures) < MAX_FAILURES:
            self.failures.append(failure)
        else:
            self.failures_omitted += 1

    @property
    def passed(self) -> int:
        return self.total - self.failed - self.errors - self.skipped


def case_id(classname: str, name: str, is_file: Callable[[str], bool]) -> str:
    """pytest's node id from JUnit's classname + name: `tests.test_x.TestY` → `tests/test_x.py::TestY::name`."""
    parts = classname.split(".") if classname else []
    for cut in range(len(parts), 0, -1):
        module = "/".join(parts[:cut]) + ".py"
        if is_file(module):
            return "::".join([module, *parts[cut:], name])
    if not parts:  # a collection error names the module as the test
        module = name.replace(".", "/") + ".py"
        return module if is_file(module) else name
    return f"{classname}::{name}"


# How a runner names a test from the JUnit report: (enclosing suites, classname, name) → id.
Namer = Callable[[list[str], str, str], str]


def pytest_namer(is_file: Callable[[str], bool]) -> Namer:
    return lambda _suites, classname, name: case_id(classname, name, is_file)


def unittest_namer(is_file: Callable[[str], bool]) -> Namer:
    """unittest's own ids (`test_mod.TestX.test_y`); a module that failed to import names its file."""

    def name_of(_suites: list[str], classname: str, name: str) -> str:
        failed_import = "unittest.loader._FailedTest"
        if classname == failed_import or classname.startswith(f"{failed_import}."):
            dotted = ".".join([classname.removeprefix(failed_import).lstrip("."), name]).lstrip(".")
            module = dotted.replace(".", "/") + ".py"
            return module if is_file(module) else dotted
        return f"{classname}.{name}" if classname else name

    return name_of


def node_namer(suites: list[str], _classname: str, name: str) -> str:
    """node's test runner: describe blocks (nested testsuites) then the test, as its spec reporter prints."""
    return " > ".join([*suites, name.removeprefix(f"{WORKSPACE}/")])  # a file that failed to load


def vitest_namer(_suites: list[str], classname: str, name: str) -> str:
    """vitest's own ids: `test/math.test.js > group > inner bad` (classname is the file)."""
    return f"{classname} > {name}" if classname else name


def _is_case(path: list[str]) -> bool:
    """A testcase directly in the root element or in testsuites below it (the runners' shapes)."""
    return len(path) >= 2 and path[-1] == "testcase" and all(tag == "testsuite" for tag in path[1:-1])


def parse_junit(xml: str | bytes, name_of: Namer, watch: frozenset[str] = frozenset()) -> JUnitCounts:
    """Counts and failures of a JUnit XML report, parsed as a stream: no DTD entities, no
    recursion, any depth and size (the caller bounds the bytes); and the outcome of each test named
    in `watch`."""
    data = xml.encode() if isinstance(xml, str) else xml
    counts = JUnitCounts(watch=watch)
    path: list[str] = []  # tags of the open elements, root first
    suites: list[str] = []  # names of the open testsuites below the root
    for event, element in DefusedET.iterparse(io.BytesIO(data), events=("start", "end")):
        if event == "start":
            path.append(element.tag)
            if element.tag == "testsuite" and len(path) > 1:
                suites.append(element.get("name", "")[:MAX_NAME])
            continue
        if _is_case(path):
            _count(
                counts,
                element,
                _bounded_name(name_of(suites[-MAX_DEPTH:], element.get("classname", ""), element.get("name", ""))),
            )
            element.clear()  # a report of 40,000 cases needs no tree of 40,000 cases
        if element.tag == "testsuite" and len(path) > 1:
            suites.pop()
        path.pop()
    return counts


def _count(counts: JUnitCounts, case: ET.Element, name: str) -> None:
    counts.total += 1
    failure, error, skipped = case.find("failure"), case.find("error"), case.find("skipped")
    if skipped is not None:  # node's todo tests carry a failure too, but don't fail
        counts.skipped += 1
        counts.saw(name, "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped")
    elif failure is not None:
        counts.failed += 1
        counts.add_failure(_failure(name, "failure", failure))
        counts.saw(name, "failed")
    elif error is not None:
        counts.errors += 1
        counts.add_failure(_failure(name, "error", error))
        counts.saw(name, "error")
    else:
        counts.saw(name, "passed")


def _bounded_name(name: str) -> str:
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + "…"


def _failure(name: str, kind: str, element: ET.Element) -> TestFailure:
    detail = (element.text or "").strip()
    if len(detail) > MAX_DETAIL:
        detail = "…" + detail[-MAX_DETAIL:]
    return TestFailure(
        name=name,
        kind="failure" if kind == "failure" else "error",
        message=(element.get("message") or "")[:MAX_DETAIL],
        output=detail,
    )


def parse_coverage(xml: str | bytes) -> float | None:
    """Line coverage in percent from a Cobertura report (coverage.py's XML), if it has one: the root
    element's attribute, read without parsing the rest."""
    data = xml.encode() if isinstance(xml, str) else xml
    try:
        for _event, element in DefusedET.iterparse(io.BytesIO(data), events=("start",)):
            rate = element.get("line-rate")
            return round(float(rate) * 100, 1) if rate is not None else None
    except (ET.ParseError, ValueError, DefusedXmlException):
        return None
    return None


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_JEST_SKIPPED = {"pending", "skipped", "todo", "disabled", "focused"}


def _bounded(text: str) -> str:
    text = _ANSI.sub("", text).strip()
    return text if len(text) <= MAX_DETAIL else "…" + text[-MAX_DETAIL:]


def _first_line(text: str) -> str:
    lines = [line.strip() for line in _ANSI.sub("", text[: MAX_DETAIL * 4]).splitlines() if line.strip()]
    return lines[0][:MAX_DETAIL] if lines else ""


def parse_jest(json_text: str | bytes, workspace: str, watch: frozenset[str] = frozenset()) -> JUnitCounts:
    """jest's `--json` report. A test file that failed to run counts as one errored test (as pytest
    counts a module that failed to collect); todo and skipped tests count as skipped. A report of
    another shape is a ValueError."""
    report = json.loads(json_text)
    if not isinstance(report, dict) or not isinstance(report.get("testResults", []), list):
        raise ValueError("not a jest --json report")
    counts = JUnitCounts(watch=watch)
    for suite in report.get("testResults", []):
        if not isinstance(suite, dict):
            raise ValueError("not a jest --json report")
        path = str(suite.get("name", ""))[:MAX_NAME].removeprefix(f"{workspace}/")
        cases = [c for c in suite.get("assertionResults") or [] if isinstance(c, dict)]
        if not cases and suite.get("status") == "failed":
            counts.total += 1
            counts.errors += 1
            message = str(suite.get("message", ""))
            counts.add_failure(
                TestFailure(
                    name=_bounded_name(path), kind="error", message=_first_line(message), output=_bounded(message)
                )
            )
            counts.saw(_bounded_name(path), "error")
        for case in cases:
            _count_jest(counts, path, case)
    return counts


def _count_jest(counts: JUnitCounts, path: str, case: dict[str, Any]) -> None:
    counts.total += 1
    titles = _list(case.get("ancestorTitles"))
    name = _bounded_name(
        " > ".join([path, *(str(t)[:MAX_NAME] for t in titles[:MAX_DEPTH]), str(case.get("title", ""))])
    )
    status = case.get("status")
    if status in _JEST_SKIPPED:
        counts.skipped += 1
        counts.saw(name, "skipped")
    elif status == "failed":
        counts.failed += 1
        messages = _list(case.get("failureMessages"))
        detail = "\n".join(str(m) for m in messages)
        counts.add_failure(TestFailure(name=name, message=_first_line(detail), output=_bounded(detail)))
        counts.saw(name, "failed")
    else:
        counts.saw(name, "passed")


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
