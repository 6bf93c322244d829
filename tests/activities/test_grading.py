"""Grading an evaluation instance for real: the final commit plus a hidden test patch, the listed
tests run by pytest in bubblewrap, and the verdict from their own outcomes — both ways."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings
from contracts.eval import Grade
from policy.grading import grade
from starter.workers import object_store
from testkit.tools import git
from tests.activities.test_sandbox import run
from tests.blobs import settings_blobs, upload_tree

ADD = "def add(a, b):\n    return a + b\n"
SUBTRACT = "\n\ndef subtract(a, b):\n    return a - b\n"
BROKEN_ADD = "def add(a, b):\n    return a * b\n"
TEST_ADD = "from calc import add\n\n\ndef test_add():\n    assert add(2, 2) == 4 and add(1, 2) == 3\n"
# The instance's hidden tests: added for grading only, as a unified diff against the base commit.
TEST_PATCH = """diff --git a/tests/test_sub.py b/tests/test_sub.py
new file mode 100644
--- /dev/null
+++ b/tests/test_sub.py
@@ -0,0 +1,5 @@
+from calc import subtract
+
+
+def test_subtract():
+    assert subtract(3, 1) == 2
"""
F2P, P2P = ["tests/test_sub.py::test_subtract"], ["tests/test_calc.py::test_add"]


async def graded(tmp_path: Path, calc: str, patch: str = TEST_PATCH) -> tuple[Grade, str]:
    """The grade of a final commit whose calc/__init__.py is `calc`, and the report's first line."""
    repo = tmp_path / "repo"
    (repo / "calc").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "calc" / "__init__.py").write_text(calc)
    (repo / "tests" / "test_calc.py").write_text(TEST_ADD)
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "final")
    sha = git(repo, "rev-parse", "HEAD")
    settings = Settings()
    tree = await upload_tree(object_store(settings), repo, sha)
    key = await settings_blobs(settings).put_async(patch.encode())
    report = await run(repo, sha, tree=tree, patch_key=key, watch=[*F2P, *P2P])
    return grade(F2P, P2P, report.outcomes), report.output_tail


async def test_a_fix_is_resolved(tmp_path: Path) -> None:
    result, _ = await graded(tmp_path, ADD + SUBTRACT)
    assert result.resolved
    assert result.fail_to_pass == {F2P[0]: "passed"} and result.pass_to_pass == {P2P[0]: "passed"}


async def test_no_fix_is_not_resolved(tmp_path: Path) -> None:
    result, _ = await graded(tmp_path, ADD)
    assert not result.resolved
    # subtract does not exist, so the hidden test module does not import: pytest stops at the collection
    # error and runs nothing, and a test the run never reported counts as not passing.
    assert result.fail_to_pass == {F2P[0]: "missing"} and result.pass_to_pass == {P2P[0]: "missing"}


async def test_a_fix_that_breaks_a_passing_test_is_not_resolved(tmp_path: Path) -> None:
    result, _ = await graded(tmp_path, BROKEN_ADD + SUBTRACT)
    assert not result.resolved
    assert result.fail_to_pass == {F2P[0]: "passed"} and result.broken == P2P


@pytest.mark.parametrize("patch", ["not a patch at all\n", TEST_PATCH.replace("/dev/null", "a/tests/test_sub.py")])
async def test_a_test_patch_that_does_not_apply_is_named(tmp_path: Path, patch: str) -> None:
    result, output = await graded(tmp_path, ADD + SUBTRACT, patch)
    assert not result.resolved
    assert output.startswith("the test patch does not apply")
