"""Reading the runners' own report files (pure): jest's JSON and vitest's/node's JUnit, in the shapes
the real runners wrote in the sandbox tests (which need the npm registry; these don't)."""

from __future__ import annotations

import json

from activities.sandbox._junit import node_namer, parse_jest, parse_junit, vitest_namer

JEST = {
    "numTotalTests": 4,
    "testResults": [
        {
            "name": "/workspace/test/math.test.js",
            "status": "failed",
            "message": "",
            "assertionResults": [
                {"ancestorTitles": [], "title": "adds", "status": "passed", "failureMessages": []},
                {"ancestorTitles": [], "title": "later", "status": "todo", "failureMessages": []},
                {"ancestorTitles": [], "title": "skipped", "status": "pending", "failureMessages": []},
                {
                    "ancestorTitles": ["group"],
                    "title": "inner bad",
                    "status": "failed",
                    "failureMessages": ["\u001b[31mError: boom\u001b[39m\n    at Object.<anonymous> (test.js:6:83)"],
                },
            ],
        },
        {
            "name": "/workspace/test/broken.test.js",
            "status": "failed",
            "message": "  ● Test suite failed to run\n\n    Jest encountered an unexpected token",
            "assertionResults": [],
        },
    ],
}


def test_jest_json() -> None:
    counts = parse_jest(json.dumps(JEST), "/workspace")
    assert (counts.total, counts.passed, counts.failed, counts.errors, counts.skipped) == (5, 1, 1, 1, 2)
    bad, broken = counts.failures
    assert (bad.name, bad.kind, bad.message) == ("test/math.test.js > group > inner bad", "failure", "Error: boom")
    assert "\u001b" not in bad.output and "at Object.<anonymous>" in bad.output
    assert (broken.name, broken.kind, broken.message) == ("test/broken.test.js", "error", "● Test suite failed to run")


VITEST = """<?xml version="1.0" encoding="UTF-8" ?>
<testsuites name="vitest tests" tests="6" failures="2" errors="0">
  <testsuite name="test/math.test.js" tests="6" failures="2" errors="0" skipped="2">
    <testcase classname="test/math.test.js" name="adds" time="0.001"/>
    <testcase classname="test/math.test.js" name="fails" time="0.002">
      <failure message="expected 2 to be 3 // Object.is equality" type="AssertionError">AssertionError: ...</failure>
    </testcase>
    <testcase classname="test/math.test.js" name="skipped" time="0"><skipped/></testcase>
    <testcase classname="test/math.test.js" name="later" time="0"><skipped/></testcase>
    <testcase classname="test/math.test.js" name="group &gt; inner ok" time="0"/>
    <testcase classname="test/math.test.js" name="group &gt; inner bad" time="0">
      <failure message="boom" type="Error">Error: boom</failure>
    </testcase>
  </testsuite>
</testsuites>"""


def test_vitest_junit() -> None:
    counts = parse_junit(VITEST, vitest_namer)
    assert (counts.total, counts.passed, counts.failed, counts.skipped) == (6, 2, 2, 2)
    assert [f.name for f in counts.failures] == ["test/math.test.js > fails", "test/math.test.js > group > inner bad"]


NODE = """<?xml version="1.0" encoding="utf-8"?>
<testsuites>
  <testcase name="adds" classname="test"/>
  <testcase name="todo" classname="test" failure="not yet">
    <skipped type="todo" message="true"/>
    <failure type="testCodeFailure" message="not yet">Error: not yet</failure>
  </testcase>
  <testsuite name="group" tests="1" failures="1">
    <testcase name="inner bad" classname="test" failure="boom"><failure message="boom">Error: boom</failure></testcase>
  </testsuite>
  <testcase name="/workspace/test/broken.test.js" classname="test" failure="test failed">
    <failure type="testCodeFailure" message="test failed">[Error: test failed]</failure>
  </testcase>
</testsuites>"""


def test_node_junit_todo_is_skipped_and_suites_name_tests() -> None:
    counts = parse_junit(NODE, node_namer)
    assert (counts.total, counts.passed, counts.failed, counts.skipped) == (4, 1, 2, 1)
    assert [f.name for f in counts.failures] == ["group > inner bad", "test/broken.test.js"]
