"""workflows/activity_calls.py: how every activity is called. Its retry policies name no error types
(each scheduled activity's event would carry them); the activities mark the errors no retry can fix."""

from __future__ import annotations

import ast
from pathlib import Path

from workflows import activity_calls as acts

ROOT = Path(__file__).resolve().parents[2]
# The kinds of error the policies used to name, and others no retry fixes.
FINAL = {"InvalidInput", "ScriptDiverged", "UnsafePath", "BranchMoved", "SandboxUnavailable", "BadTreeArchive"}


def test_no_retry_policy_names_an_error_type() -> None:
    options = [acts.MODEL_CALL, acts.RESEARCH_CALL, acts.TOOL_CALL, acts.HOST_CALL, acts.MCP_CALL, acts.GRAPH_CALL]
    for option in [*options, acts.sandbox_call(60)]:
        assert not option.retry.non_retryable_error_types
        assert option.retry.maximum_attempts > 1


def _raised_kinds(tree: ast.AST) -> list[tuple[str, int, bool]]:
    """(kind, line, non_retryable=True given) of each ApplicationError built with a literal type."""
    found = []
    for node in ast.walk(tree):
        name = getattr(node, "func", None)
        if isinstance(node, ast.Call) and getattr(name, "id", getattr(name, "attr", None)) == "ApplicationError":
            keywords = {k.arg: k.value for k in node.keywords}
            kind = keywords.get("type")
            if isinstance(kind, ast.Constant) and isinstance(kind.value, str):
                final = keywords.get("non_retryable")
                found.append((kind.value, node.lineno, isinstance(final, ast.Constant) and final.value is True))
    return found


def test_every_error_no_retry_can_fix_is_raised_non_retryable() -> None:
    seen = set()
    wrong = []
    for path in sorted((ROOT / "activities").rglob("*.py")):
        for kind, line, final in _raised_kinds(ast.parse(path.read_text())):
            if kind in FINAL:
                seen.add(kind)
                if not final:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} {kind}")
    assert wrong == []
    assert {"InvalidInput", "UnsafePath", "BranchMoved", "SandboxUnavailable"} <= seen


def test_the_scan_sees_an_error_raised_without_non_retryable() -> None:
    tree = ast.parse('raise ApplicationError("x", type="BranchMoved")\nraise fail("y", "BranchMoved")')
    assert _raised_kinds(tree) == [("BranchMoved", 1, False)]
