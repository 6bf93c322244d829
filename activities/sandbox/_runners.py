"""Which test runner a repository uses, and the command that makes it write a machine-readable
report. Pure.

Precedence: the run's own options, then the repository's `.forgeflow.yml`, then detection from its
files. pytest writes JUnit XML with --junitxml, unittest through unittest-xml-reporting, node's test
runner (directly or under `npm test`) and vitest through their junit reporters; jest writes its own
JSON report. A custom command must write JUnit XML to $FORGEFLOW_JUNIT_XML itself.
"""

from __future__ import annotations

import configparser
import json
import re
import tomllib
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel, Field

from activities.sandbox._layout import COVERAGE, JUNIT, OUT, WORKSPACE
from contracts.testing import RunnerName
from policy.repo_config import RepoConfig

NPM_PLACEHOLDER = 'echo "Error: no test specified" && exit 1'
JS_RUNNERS = ("node", "vitest", "jest")  # their dependencies live in node_modules, not a virtualenv
JEST_JSON = f"{OUT}/jest.json"
JEST_FLAGS = ("--ci", "--json", f"--outputFile={JEST_JSON}")
VITEST_FLAGS = ("--run", "--reporter=default", "--reporter=junit", f"--outputFile.junit={JUNIT}")
NODE_REPORTERS = (
    f"--test-reporter=spec --test-reporter-destination=stdout --test-reporter=junit --test-reporter-destination={JUNIT}"
)


class RunnerPlan(BaseModel):
    runner: RunnerName
    command: list[str]
    env: dict[str, str] = Field(default_factory=dict)


Read = Callable[[str], str | None]  # a repository file's text, None if absent


def _package_json(read: Read) -> dict[str, Any] | None:
    text = read("package.json")
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _npm_test_script(read: Read) -> str | None:
    scripts = (_package_json(read) or {}).get("scripts")
    script = scripts.get("test") if isinstance(scripts, dict) else None
    return script if isinstance(script, str) and script.strip() != NPM_PLACEHOLDER else None


def _pytest_configured(read: Read) -> bool:
    if read("pytest.ini") is not None or read("conftest.py") is not None:
        return True
    pyproject = read("pyproject.toml")
    if pyproject is not None:
        try:
            if "pytest" in tomllib.loads(pyproject).get("tool", {}):
                return True
        except tomllib.TOMLDecodeError:
            pass
    for name, section in (("setup.cfg", "tool:pytest"), ("tox.ini", "pytest")):
        text = read(name)
        if text is not None:
            parser = configparser.ConfigParser()
            try:
                parser.read_string(text)
            except configparser.Error:
                continue
            if parser.has_section(section):
                return True
    return False


def _is_python_test(path: str) -> bool:
    name = PurePosixPath(path).name
    return name.startswith("test") and name.endswith(".py")


def detect_runner(paths: list[str], read: Read) -> RunnerName:
    """pytest where it is configured; node where package.json has tests; unittest where the Python
    tests only use unittest; pytest otherwise (it runs unittest-style tests too)."""
    if _pytest_configured(read):
        return "pytest"
    python_tests = [p for p in paths if _is_python_test(p)]
    has_js_tests = any(p.endswith((".test.js", ".test.mjs", ".test.cjs")) or p.startswith("test/") for p in paths)
    script = _npm_test_script(read)
    if script is not None and "vitest" in script:
        return "vitest"
    if script is not None and re.search(r"\bjest\b", script):
        return "jest"
    if script is not None or (read("package.json") is not None and has_js_tests):
        return "node"
    if python_tests:
        texts = [read(p) or "" for p in python_tests]
        if any("unittest" in t for t in texts) and not any("pytest" in t for t in texts):
            return "unittest"
    return "pytest"


def runner_plan(runner: RunnerName, *, python: str, coverage: bool, read: Read) -> RunnerPlan:
    """The default command of a detected runner."""
    if runner == "unittest":
        command = [python, "-m", "xmlrunner", "--output-file", JUNIT, "discover", "-s", ".", "-p", "test*.py"]
        return RunnerPlan(runner=runner, command=command)
    if runner == "vitest":
        return RunnerPlan(runner=runner, command=["npm", "test", "--", *VITEST_FLAGS])
    if runner == "jest":
        return RunnerPlan(runner=runner, command=["npm", "test", "--", *JEST_FLAGS])
    if runner == "node":
        command = ["npm", "test"] if _npm_test_script(read) is not None else ["node", "--test"]
        return RunnerPlan(runner=runner, command=command, env={"NODE_OPTIONS": NODE_REPORTERS})
    command = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={JUNIT}"]
    if coverage:
        command += [f"--cov={WORKSPACE}", f"--cov-report=xml:{COVERAGE}"]
    return RunnerPlan(runner="pytest", command=command)


def _is_pytest(command: list[str]) -> bool:
    head = [PurePosixPath(a).name for a in command[:3]]
    return head[:1] == ["pytest"] or head[1:3] == ["-m", "pytest"]


def custom_plan(command: list[str], *, python: str) -> RunnerPlan:
    """A configured command, made to report JUnit XML where its runner is one we know."""
    head = PurePosixPath(command[0]).name
    if _is_pytest(command):
        return RunnerPlan(runner="pytest", command=[*command, "-p", "no:cacheprovider", f"--junitxml={JUNIT}"])
    if head.startswith("python") and command[1:3] == ["-m", "unittest"]:
        rest = command[3:] or ["discover", "-s", ".", "-p", "test*.py"]
        return RunnerPlan(runner="unittest", command=[python, "-m", "xmlrunner", "--output-file", JUNIT, *rest])
    if "jest" in command:  # e.g. npx jest tests/unit
        return RunnerPlan(runner="jest", command=[*command, *JEST_FLAGS])
    if "vitest" in command:  # e.g. npx vitest run tests/unit
        return RunnerPlan(runner="vitest", command=[*command, *VITEST_FLAGS[1:]])
    if head in ("npm", "node", "npx"):
        return RunnerPlan(runner="node", command=command, env={"NODE_OPTIONS": NODE_REPORTERS})
    return RunnerPlan(runner="custom", command=command)


class SelectionError(ValueError):
    """Tests that cannot be selected: a custom test command, or an item that is not a test's name."""


MAX_SELECTED = 50


def _check_selected(item: str) -> str:
    if not item.strip() or item.startswith("-") or any(ord(ch) < 32 for ch in item) or len(item) > 500:
        raise SelectionError(f"{item[:80]!r} is not a test file or test id (options are not accepted)")
    return item


def with_selection(plan: RunnerPlan, selection: list[str]) -> RunnerPlan:
    """The plan run on `selection` only (test files or ids, in the runner's own naming). Pure."""
    if not selection:
        return plan
    if len(selection) > MAX_SELECTED:
        raise SelectionError(f"at most {MAX_SELECTED} tests can be selected at once, not {len(selection)}")
    chosen = [_check_selected(item) for item in selection]
    if plan.runner == "unittest":  # [python, -m, xmlrunner, --output-file, JUNIT, <what to run>...]
        return plan.model_copy(update={"command": [*plan.command[:5], *chosen]})
    if plan.runner == "custom":
        raise SelectionError(
            "the repository's test command is its own, so its tests cannot be selected by name; run the whole "
            "suite, or run the tests you want with run_command"
        )
    if plan.command[:2] == ["npm", "test"] and "--" not in plan.command:
        return plan.model_copy(update={"command": [*plan.command, "--", *chosen]})
    return plan.model_copy(update={"command": [*plan.command, *chosen]})


def choose(
    *,
    run_command: list[str] | None,
    config: RepoConfig,
    paths: list[str],
    read: Read,
    python: str,
    coverage: bool,
) -> RunnerPlan:
    command = run_command or config.test.command
    if command:
        return custom_plan(command, python=python)
    return runner_plan(detect_runner(paths, read), python=python, coverage=coverage, read=read)
