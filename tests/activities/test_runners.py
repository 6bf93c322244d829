"""Runner detection and .forgeflow.yml: which runner, which command, which JUnit flags. Pure."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from activities.sandbox._install import as_module_call, cache_key
from activities.sandbox._layout import JUNIT
from activities.sandbox._runners import (
    JEST_FLAGS,
    NODE_REPORTERS,
    VITEST_FLAGS,
    RunnerPlan,
    SelectionError,
    choose,
    detect_runner,
    with_selection,
)
from policy.repo_config import RepoConfigError, load_config

PYPROJECT_PYTEST = "[tool.pytest.ini_options]\ntestpaths = ['tests']\n"
UNITTEST_FILE = "import unittest\n\nclass T(unittest.TestCase):\n    def test_a(self):\n        pass\n"
PYTEST_FILE = "import pytest\n\ndef test_a():\n    pass\n"


def reader(files: dict[str, str]) -> Callable[[str], str | None]:
    return files.get


@pytest.mark.parametrize(
    ("files", "runner"),
    [
        ({"pyproject.toml": PYPROJECT_PYTEST, "test_u.py": UNITTEST_FILE}, "pytest"),  # configured wins
        ({"setup.cfg": "[tool:pytest]\naddopts = -q\n", "test_u.py": UNITTEST_FILE}, "pytest"),
        ({"tox.ini": "[pytest]\n", "test_u.py": UNITTEST_FILE}, "pytest"),
        ({"pytest.ini": "[pytest]\n"}, "pytest"),
        ({"tests/test_u.py": UNITTEST_FILE}, "unittest"),
        ({"tests/test_u.py": UNITTEST_FILE, "tests/test_p.py": PYTEST_FILE}, "pytest"),
        ({"tests/test_p.py": "def test_a():\n    pass\n"}, "pytest"),  # plain functions: pytest
        ({"package.json": '{"scripts": {"test": "node --test"}}', "test/a.test.js": ""}, "node"),
        ({"package.json": '{"name": "x"}', "test/a.test.js": ""}, "node"),
        ({"package.json": '{"scripts": {"test": "vitest"}}', "src/a.test.js": ""}, "vitest"),
        ({"package.json": '{"scripts": {"test": "vitest run --coverage"}}'}, "vitest"),
        ({"package.json": '{"scripts": {"test": "jest --coverage"}}'}, "jest"),
        ({"package.json": '{"scripts": {"test": "node scripts/jestish.js"}}'}, "node"),  # a word, not jest
        ({"package.json": '{"scripts": {"test": "echo \\"Error: no test specified\\" && exit 1"}}'}, "pytest"),
        ({"pyproject.toml": "not [valid toml", "tests/test_u.py": UNITTEST_FILE}, "unittest"),
        ({}, "pytest"),
    ],
)
def test_detect_runner(files: dict[str, str], runner: str) -> None:
    assert detect_runner(sorted(files), reader(files)) == runner


def plan_for(files: dict[str, str], run_command: list[str] | None = None) -> RunnerPlan:
    config = load_config(files.get(".forgeflow.yml"))
    return choose(
        run_command=run_command, config=config, paths=sorted(files), read=reader(files), python="py", coverage=False
    )


def test_default_commands_write_junit_where_the_report_is_read() -> None:
    pytest_plan = plan_for({"tests/test_p.py": PYTEST_FILE})
    assert pytest_plan.command == ["py", "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={JUNIT}"]
    unittest_plan = plan_for({"tests/test_u.py": UNITTEST_FILE})
    assert unittest_plan.command[:5] == ["py", "-m", "xmlrunner", "--output-file", JUNIT]
    npm_plan = plan_for({"package.json": '{"scripts": {"test": "node --test"}}'})
    assert npm_plan.command == ["npm", "test"] and npm_plan.env == {"NODE_OPTIONS": NODE_REPORTERS}
    assert plan_for({"package.json": "{}", "x.test.js": ""}).command == ["node", "--test"]
    vitest = plan_for({"package.json": '{"scripts": {"test": "vitest"}}'})
    assert vitest.command == ["npm", "test", "--", "--run", *VITEST_FLAGS[1:]] and vitest.env == {}


@pytest.mark.parametrize(
    ("config", "runner", "command"),
    [
        ("test:\n  command: pytest tests/unit -x\n", "pytest",
         ["pytest", "tests/unit", "-x", "-p", "no:cacheprovider", f"--junitxml={JUNIT}"]),
        ("test:\n  command: [python, -m, unittest]\n", "unittest",
         ["py", "-m", "xmlrunner", "--output-file", JUNIT, "discover", "-s", ".", "-p", "test*.py"]),
        ("test:\n  command: npm run test:unit\n", "node", ["npm", "run", "test:unit"]),
        ("test:\n  command: make check\n", "custom", ["make", "check"]),
        ("test:\n  command: npx jest tests/unit\n", "jest", ["npx", "jest", "tests/unit", *JEST_FLAGS]),
        ("test:\n  command: npx vitest run tests/unit\n", "vitest",
         ["npx", "vitest", "run", "tests/unit", "--reporter=default", "--reporter=junit",
          f"--outputFile.junit={JUNIT}"]),
    ],
)  # fmt: skip
def test_forgeflow_yml_sets_the_command(config: str, runner: str, command: list[str]) -> None:
    plan = plan_for({".forgeflow.yml": config, "tests/test_p.py": PYTEST_FILE})
    assert (plan.runner, plan.command) == (runner, command)


def test_the_runs_own_command_beats_the_repository_file() -> None:
    plan = plan_for({".forgeflow.yml": "test:\n  command: make check\n"}, run_command=["python", "-m", "pytest"])
    assert plan.runner == "pytest" and plan.command[:3] == ["python", "-m", "pytest"]


def test_install_command_from_forgeflow_yml() -> None:
    assert load_config("test:\n  install: pip install -e .[test]\n").test.install == [
        "pip", "install", "-e", ".[test]",
    ]  # fmt: skip
    assert as_module_call(["pip", "install", "x"], "/env/bin/python") == [
        "/env/bin/python",
        "-m",
        "pip",
        "install",
        "x",
    ]
    assert as_module_call(["npm", "ci"], "/env/bin/python") == ["npm", "ci"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("test: [\n", "not valid YAML"),
        ("tests:\n  command: x\n", "tests: Extra inputs are not permitted"),
        ("test:\n  command: []\n", "test.command"),
        ("- a list\n", "top level"),
    ],
)
def test_bad_forgeflow_yml_is_named(text: str, message: str) -> None:
    with pytest.raises(RepoConfigError, match=r"\.forgeflow\.yml") as err:
        load_config(text)
    assert message in str(err.value)


def test_install_cache_key_follows_repository_manifests_lockfiles_and_toolchain_only() -> None:
    files = {"pyproject.toml": "[project]\nname='x'\n", "src/x.py": "a = 1\n", "requirements-dev.txt": "pytest\n"}
    install = ["pip", "install", "-e", "."]

    def key_of(
        files: dict[str, str], command: list[str] = install, tools: tuple[str, ...] = (), repo: str = "/r"
    ) -> str:
        return cache_key(command, sorted(files), reader(files), tools, repository=repo)

    key = key_of(files)
    assert key == key_of({**files, "src/x.py": "a = 2\n"})
    assert key != key_of({**files, "requirements-dev.txt": ""})
    assert key != key_of(files, ["pip", "install", "."])
    assert key != key_of(files, tools=("node v22.1.0",))
    assert key != key_of({**files, "package-lock.json": "{}"})
    # Another repository with the very same manifests never shares an install: it ran that repository's code.
    assert key != key_of(files, repo="/other")


# --- a selection of tests -----------------------------------------------------------------------


def _plan(runner: str, command: list[str]) -> RunnerPlan:
    return RunnerPlan(runner=runner, command=command)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("plan", "selected"),
    [
        (
            _plan("pytest", ["python", "-m", "pytest", "-q"]),
            ["python", "-m", "pytest", "-q", "tests/test_a.py::test_x"],
        ),
        (
            _plan(
                "unittest", ["python", "-m", "xmlrunner", "--output-file", "J", "discover", "-s", ".", "-p", "t*.py"]
            ),
            ["python", "-m", "xmlrunner", "--output-file", "J", "tests/test_a.py::test_x"],
        ),
        (_plan("node", ["npm", "test"]), ["npm", "test", "--", "tests/test_a.py::test_x"]),
        (_plan("jest", ["npm", "test", "--", "--ci"]), ["npm", "test", "--", "--ci", "tests/test_a.py::test_x"]),
        (_plan("node", ["node", "--test"]), ["node", "--test", "tests/test_a.py::test_x"]),
    ],
)
def test_a_selection_is_given_to_the_runner(plan: RunnerPlan, selected: list[str]) -> None:
    assert with_selection(plan, ["tests/test_a.py::test_x"]).command == selected


def test_no_selection_is_the_whole_suite() -> None:
    plan = _plan("custom", ["make", "test"])
    assert with_selection(plan, []) is plan


@pytest.mark.parametrize(
    ("plan", "selection", "message"),
    [
        (_plan("custom", ["make", "test"]), ["t.py"], "its own"),
        (_plan("pytest", ["pytest"]), ["--junitxml=/tmp/x"], "options are not accepted"),
        (_plan("pytest", ["pytest"]), ["a\nb"], "not a test file"),
        (_plan("pytest", ["pytest"]), [f"t{i}.py" for i in range(51)], "at most 50"),
    ],
)
def test_what_cannot_be_selected_is_named(plan: RunnerPlan, selection: list[str], message: str) -> None:
    with pytest.raises(SelectionError, match=message):
        with_selection(plan, selection)
