"""Parse a test runner's machine-readable report (JUnit XML, or jest's JSON) into counts and
failures. Pure."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from activities._bwrap import WORKSPACE
from contracts.testing import TestFailure

MAX_DETAIL = 2000


@dataclass
class JUnitCounts:
    total: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    failures: list[TestFailure] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return self.total - self.failed - self.errors - self.skipped


def test_id(classname: str, name: str, is_file: Callable[[str], bool]) -> str:
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


test_id.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite its name


# How a runner names a test from the JUnit report: (enclosing suites, classname, name) → id.
Namer = Callable[[list[str], str, str], str]


def pytest_namer(is_file: Callable[[str], bool]) -> Namer:
    return lambda _suites, classname, name: test_id(classname, name, is_file)


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


def _cases(element: ET.Element, suites: list[str]) -> Iterator[tuple[list[str], ET.Element]]:
    """Every testcase with the names of the testsuites it sits in (below the root element)."""
    for child in element:
        if child.tag == "testcase":
            yield suites, child
        elif child.tag == "testsuite":
            yield from _cases(child, [*suites, child.get("name", "")])


def parse_junit(xml_text: str, name_of: Namer) -> JUnitCounts:
    root = ET.fromstring(xml_text)
    counts = JUnitCounts()
    for suites, case in _cases(root, []):
        counts.total += 1
        name = name_of(suites, case.get("classname", ""), case.get("name", ""))
        failure, error = case.find("failure"), case.find("error")
        if case.find("skipped") is not None:  # node's todo tests carry a failure too, but don't fail
            counts.skipped += 1
        elif failure is not None:
            counts.failed += 1
            counts.failures.append(_failure(name, "failure", failure))
        elif error is not None:
            counts.errors += 1
            counts.failures.append(_failure(name, "error", error))
    return counts


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


def parse_coverage(xml_text: str) -> float | None:
    """Line coverage in percent from a Cobertura report (coverage.py's XML), if it has one."""
    try:
        rate = ET.fromstring(xml_text).get("line-rate")
        return round(float(rate) * 100, 1) if rate is not None else None
    except (ET.ParseError, ValueError):
        return None


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_JEST_SKIPPED = {"pending", "skipped", "todo", "disabled", "focused"}


def _bounded(text: str) -> str:
    text = _ANSI.sub("", text).strip()
    return text if len(text) <= MAX_DETAIL else "…" + text[-MAX_DETAIL:]


def _first_line(text: str) -> str:
    lines = [line.strip() for line in _ANSI.sub("", text).splitlines() if line.strip()]
    return lines[0][:MAX_DETAIL] if lines else ""


def parse_jest(json_text: str, workspace: str) -> JUnitCounts:
    """jest's `--json` report. A test file that failed to run counts as one errored test (as pytest
    counts a module that failed to collect); todo and skipped tests count as skipped."""
    counts = JUnitCounts()
    for suite in json.loads(json_text).get("testResults", []):
        path = str(suite.get("name", "")).removeprefix(f"{workspace}/")
        cases = suite.get("assertionResults") or []
        if not cases and suite.get("status") == "failed":
            counts.total += 1
            counts.errors += 1
            message = str(suite.get("message", ""))
            counts.failures.append(
                TestFailure(name=path, kind="error", message=_first_line(message), output=_bounded(message))
            )
        for case in cases:
            counts.total += 1
            name = " > ".join([path, *case.get("ancestorTitles", []), str(case.get("title", ""))])
            status = case.get("status")
            if status in _JEST_SKIPPED:
                counts.skipped += 1
            elif status == "failed":
                counts.failed += 1
                detail = "\n".join(case.get("failureMessages") or [])
                counts.failures.append(TestFailure(name=name, message=_first_line(detail), output=_bounded(detail)))
    return counts
