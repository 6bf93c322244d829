"""The sandbox sees the worker's test tools and nothing else it has installed."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
from packaging.utils import canonicalize_name

from activities.sandbox._tools import TOOLS, ToolSite, tool_sites, top_level, with_requirements, worker_tool_sites
from activities.sandbox.bubblewrap import bwrap_argv, tool_site_args
from tests.activities.test_sandbox import make_repo, run


@pytest.mark.parametrize(
    ("files", "names"),
    [
        (["pytest/__init__.py", "pytest-9.0.dist-info/RECORD"], {"pytest", "pytest-9.0.dist-info"}),
        (["py.py", "__pycache__/py.cpython-311.pyc"], {"py.py"}),  # the shared __pycache__ is not a name
        (["../../../bin/pytest", "_pytest/main.py"], {"_pytest"}),  # scripts live outside the folder
        (["a1_coverage.pth", "coverage/__init__.py"], {"a1_coverage.pth", "coverage"}),
        ([PurePosixPath("pip/__init__.py"), ""], {"pip"}),
        ([], set()),
    ],
)
def test_the_names_a_distribution_puts_at_the_top_of_its_folder(files: list[str], names: set[str]) -> None:
    assert top_level(files) == names


def test_the_tools_come_with_what_they_require_and_nothing_else() -> None:
    found = {canonicalize_name(d.metadata["Name"]) for d in with_requirements(TOOLS)}
    assert {"pytest", "pytest-cov", "coverage", "pluggy", "iniconfig", "packaging"} <= found
    assert found.isdisjoint({"temporalio", "anthropic", "pydantic", "langsmith", "pytest-asyncio"})
    assert with_requirements(["no-such-distribution-xyz"]) == []


def test_every_site_folder_is_listed_even_with_no_tool_in_it(tmp_path: Path) -> None:
    dists = with_requirements(["pluggy"])
    sites = tool_sites(dists, [str(tmp_path)])
    assert sites[0] == ToolSite(path=str(tmp_path), entries=())
    (pluggy_site,) = sites[1:]
    assert "pluggy" in pluggy_site.entries and all(".dist-info" in n or "pluggy" in n for n in pluggy_site.entries)


def test_each_site_folder_is_emptied_then_shown_its_tools_read_only() -> None:
    sites = [ToolSite("/py/site", ("pytest", "gone.py")), ToolSite("/other/site", ())]
    args = tool_site_args(sites, exists=lambda p: p != "/py/site/gone.py")
    assert args == [
        "--tmpfs", "/py/site", "--ro-bind", "/py/site/pytest", "/py/site/pytest", "--remount-ro", "/py/site",
        "--tmpfs", "/other/site", "--remount-ro", "/other/site",
    ]  # fmt: skip
    argv = bwrap_argv(
        "/usr/bin/bwrap", mounts=[], python_prefixes=["/py"], command=["pytest"], env={}, tool_sites=sites,
        exists=lambda p: True,
    )  # fmt: skip
    interpreter = argv.index("/py") - 1
    assert argv[interpreter : interpreter + 3] == ["--ro-bind", "/py", "/py"]
    assert argv.index("--tmpfs", interpreter) > interpreter  # after the interpreter's bind, or it would be hidden


HIDDEN = """
import importlib.util, os, sys
import pytest


def test_the_workers_libraries_are_not_importable():
    for name in ("temporalio", "anthropic", "pydantic", "forgeflow", "activities", "langsmith"):
        assert importlib.util.find_spec(name) is None, name


def test_the_tools_are(pytestconfig):
    import coverage, pluggy, xmlrunner
    plugins = {name for name, _ in pytestconfig.pluginmanager.list_name_plugin()}
    assert "pytest_cov" in plugins
    assert not {"langsmith_plugin", "asyncio", "anyio", "hypothesispytest", "benchmark"} & plugins


def test_the_site_folder_is_read_only():
    site = os.path.dirname(os.path.dirname(pytest.__file__))
    with pytest.raises(OSError):
        open(os.path.join(site, "planted.py"), "w")
"""


async def test_a_sandboxed_run_sees_the_tools_and_not_the_workers_libraries(tmp_path: Path) -> None:
    assert worker_tool_sites()  # this worker's interpreter has site folders to narrow
    repo, sha = make_repo(tmp_path, {"tests/test_hidden.py": HIDDEN})
    report = await run(repo, sha)
    assert (report.status, report.passed, report.total) == ("passed", 3, 3), report.output_tail
