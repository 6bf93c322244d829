"""Parse a test runner's JUnit XML report into counts and failures. Pure."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field

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


def parse_junit(xml_text: str, is_file: Callable[[str], bool]) -> JUnitCounts:
    root = ET.fromstring(xml_text)
    counts = JUnitCounts()
    for case in root.iter("testcase"):
        counts.total += 1
        name = test_id(case.get("classname", ""), case.get("name", ""), is_file)
        failure, error = case.find("failure"), case.find("error")
        if failure is not None:
            counts.failed += 1
            counts.failures.append(_failure(name, "failure", failure))
        elif error is not None:
            counts.errors += 1
            counts.failures.append(_failure(name, "error", error))
        elif case.find("skipped") is not None:
            counts.skipped += 1
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
