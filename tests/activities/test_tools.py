"""Workspace tools on a real git repository: base commit + overlay, as agents see them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.blobstore import BlobStore
from activities.codehost.host import CodeHosts
from activities.codehost.local import LocalGitHost
from activities.tools import ToolActivities, ToolLimits
from contracts.agents import Role, Workspace
from contracts.tools import ToolCallInput, ToolCallResult
from testkit.tools import git
from tests.blobs import local_blobs


class Tools:
    """Tool calls as an agent makes them, keeping the overlay between calls.

    By default on the local host; `hosts` and `repo_ref` serve another host (GitHub through the loopback)."""

    def __init__(
        self,
        repo: Path,
        tmp_path: Path,
        limits: ToolLimits | None = None,
        hosts: Callable[[BlobStore], CodeHosts] | None = None,
        repo_ref: str | None = None,
    ) -> None:
        self.blobs = local_blobs(tmp_path / "blobs")
        served = hosts(self.blobs) if hosts else CodeHosts({"local": LocalGitHost(self.blobs)})
        self.acts = ToolActivities(served, self.blobs, limits)
        base = git(repo, "rev-parse", "HEAD")
        self.ws = Workspace(repo=repo_ref or str(repo), base_sha=base, origin_sha=base)
        self.sent: ToolCallResult | None = None  # the last result as the activity returned it

    def rebase(self, repo: Path) -> None:
        """Work on the repository's new HEAD (after a test committed more files)."""
        self.ws = self.ws.model_copy(update={"base_sha": git(repo, "rev-parse", "HEAD")})

    async def call(
        self, name: str, *, role: Role = "coder", tests_only: bool | None = None, **args: object
    ) -> ToolCallResult:
        req = ToolCallInput(
            role=role, run_id="r", tool_use_id="t", name=name, input=args, workspace=self.ws, tests_only=tests_only
        )
        result: ToolCallResult = await ActivityEnvironment().run(self.acts.run_tool, req)
        self.ws = self.ws.model_copy(update={"overlay": {**self.ws.overlay, **result.overlay_updates}})
        self.sent = result  # as the activity returned it (a long answer by key)
        if result.content_key is not None:  # what the model reads: the model turn reads the key
            return result.model_copy(update={"content": self.blobs.get(result.content_key).decode()})
        return result

    def text(self, path: str) -> str:
        key = self.ws.overlay[path]
        assert key is not None
        return self.blobs.get(key).decode()


@pytest.fixture
def tools(sample_repo: Path, tmp_path: Path) -> Tools:
    return Tools(sample_repo, tmp_path)


async def test_read_with_line_ranges_and_search(tools: Tools) -> None:
    read = await tools.call("read_file", path="calc/__init__.py", start_line=2, end_line=2)
    assert read.content == "    2|     return a + b"
    found = await tools.call("search", pattern=r"def \w+", glob="*.py")
    assert "calc/__init__.py:1: def add(a, b):" in found.content
    listed = await tools.call("list_files", glob="tests/*")
    assert listed.content == "tests/test_calc.py"


async def test_edits_build_an_overlay_that_later_calls_see(tools: Tools, sample_repo: Path) -> None:
    await tools.call("str_replace", path="calc/__init__.py", old_str="a + b", new_str="b + a")
    await tools.call("insert", path="calc/__init__.py", insert_line=0, new_str='"""Arithmetic."""')
    await tools.call("write_file", path="calc/sub.py", content="def sub(a, b):\n    return a - b\n")
    assert tools.text("calc/__init__.py") == '"""Arithmetic."""\ndef add(a, b):\n    return b + a\n'
    diff = await tools.call("view_diff")
    assert '+"""Arithmetic."""' in diff.content and "+++ b/calc/sub.py" in diff.content
    assert git(sample_repo, "status", "--porcelain") == ""  # the user's files never change


@pytest.mark.parametrize(
    ("role", "tests_only", "path", "refused"),
    [
        ("tester", True, "calc/__init__.py", True),
        ("tester", True, "tests/test_more.py", False),
        ("reviewer", True, "calc/__init__.py", True),  # any role the registry limits: by its spec, not its name
        ("coder", False, "calc/__init__.py", False),
        ("tester", None, "calc/__init__.py", True),  # a call from a workflow before the field: by name
        ("coder", None, "calc/__init__.py", False),
    ],
)
async def test_a_tests_only_role_writes_test_files_only(
    tools: Tools, role: Role, tests_only: bool | None, path: str, refused: bool
) -> None:
    result = await tools.call("write_file", role=role, tests_only=tests_only, path=path, content="x = 1\n")
    assert result.is_error == refused
    assert (f"the {role} may only write test files" in result.content) == refused
    assert (path in tools.ws.overlay) != refused


@pytest.mark.parametrize(
    ("name", "args", "error"),
    [
        ("write_file", {"path": "../x.py", "content": "x"}, "leaves the repository"),
        ("write_file", {"path": "/etc/x", "content": "x"}, "is absolute"),
        ("write_file", {"path": ".git/config", "content": "x"}, "inside .git"),
        ("str_replace", {"path": "calc/__init__.py", "old_str": "return", "new_str": "x"}, "matches 1 times"),
        ("str_replace", {"path": "calc/__init__.py", "old_str": "zzz", "new_str": "x"}, "matches 0 times"),
        ("insert", {"path": "calc/__init__.py", "insert_line": 99, "new_str": "x"}, "between 0 and 2"),
        ("read_file", {"path": "missing.py"}, "no such file"),
        ("search", {"pattern": "("}, "bad regular expression"),
        ("read_file", {}, "missing argument"),
    ],
)
async def test_refusals_are_readable(tools: Tools, name: str, args: dict[str, object], error: str) -> None:
    if error == "matches 1 times":  # make "return" appear twice first
        await tools.call("insert", path="calc/__init__.py", insert_line=2, new_str="    return 0")
        error = "matches 2 times"
    result = await tools.call(name, **args)
    assert result.is_error and error in result.content


async def test_binary_files_are_refused(tools: Tools, sample_repo: Path) -> None:
    (sample_repo / "logo.bin").write_bytes(b"\x89PNG\x00\xff\xfe")
    git(sample_repo, "add", "logo.bin")
    git(sample_repo, "commit", "-qm", "binary")
    tools.ws = tools.ws.model_copy(update={"base_sha": git(sample_repo, "rev-parse", "HEAD")})
    result = await tools.call("str_replace", path="logo.bin", old_str="PNG", new_str="GIF")
    assert result.is_error and "binary file" in result.content


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("calc/a\0b.py", "control character U+0000"),
        ("calc/a\nb.py", "control character U+000A"),
        (".git./x", "inside .git"),
        (".GIT/config", "inside .git"),
        ("sub/.git /hooks/pre-commit", "inside .git"),
        ("x" * 5000, "longer than 4096 bytes"),
    ],
)
async def test_unsafe_paths_are_readable_errors_and_change_nothing(tools: Tools, path: str, error: str) -> None:
    for name, args in [
        ("write_file", {"path": path, "content": "x"}),
        ("str_replace", {"path": path, "old_str": "a", "new_str": "b"}),
        ("insert", {"path": path, "insert_line": 0, "new_str": "x"}),
        ("read_file", {"path": path}),
    ]:
        result = await tools.call(name, **args)
        assert result.is_error and error in result.content, (name, result.content)
        assert result.overlay_updates == {}
    assert tools.ws.overlay == {}


@pytest.mark.parametrize(
    ("name", "args", "error"),
    [
        ("list_files", {"glob": "*.py\0"}, "control character U+0000"),
        ("search", {"pattern": "x", "glob": "\x1b[31m*"}, "control character U+001B"),
        ("search", {"pattern": "x", "glob": "*" * 600}, "longer than 500 characters"),
        ("search", {"pattern": "a" * 2000}, "longer than 1000 characters"),
        ("search", {"pattern": "(" * 400 + ")" * 400}, "bad regular expression"),
        ("read_file", {"path": "calc/__init__.py", "start_line": "two"}, "start_line must be an integer"),
        ("insert", {"path": "calc/__init__.py", "insert_line": None, "new_str": "x"}, "insert_line is required"),
    ],
)
async def test_bad_arguments_are_readable_errors(tools: Tools, name: str, args: dict[str, object], error: str) -> None:
    result = await tools.call(name, **args)
    assert result.is_error and error in result.content, result.content


DOTENV_SECRET = "correct-horse-battery-7f3e"  # no token shape: only the dotenv rule hides it


async def test_a_repositorys_secrets_reach_the_model_as_names_only(sample_repo: Path, tmp_path: Path) -> None:
    (sample_repo / ".env").write_text(f"# settings\nDB_PASSWORD={DOTENV_SECRET}\nexport API_TOKEN='{DOTENV_SECRET}'\n")
    (sample_repo / "deploy.sh").write_text("curl -H 'Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123' x\n")
    git(sample_repo, "add", "-A")
    git(sample_repo, "commit", "-qm", "secrets")
    tools = Tools(sample_repo, tmp_path)
    read = await tools.call("read_file", path=".env")
    assert read.content.splitlines() == [
        "    1| # settings",
        "    2| DB_PASSWORD=[redacted]",
        "    3| export API_TOKEN=[redacted]",
    ]
    assert (await tools.call("search", pattern="correct-horse")).content == "(no matches)"  # no oracle either
    assert "DB_PASSWORD=[redacted]" in (await tools.call("search", pattern="DB_")).content
    probe = await tools.call("str_replace", path=".env", old_str="DB_PASSWORD=c", new_str="x")
    assert probe.is_error and "can't be edited in place" in probe.content and "matches" not in probe.content
    shaped = await tools.call("read_file", path="deploy.sh")
    assert (
        "abcdefghijklmnopqrstuvwxyz0123" not in shaped.content and "Authorization: Bearer [redacted]" in shaped.content
    )
    await tools.call("write_file", path=".env", content=f"DB_PASSWORD={DOTENV_SECRET}-2\n")
    diff = (await tools.call("view_diff")).content
    assert DOTENV_SECRET not in diff and " DB_PASSWORD=[redacted]" in diff  # both sides hidden alike
