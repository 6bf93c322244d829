"""The rules both code hosts share, as tables."""

from __future__ import annotations

import pytest

from contracts.agents import ReviewComment
from policy.host_rules import (
    FromIssue,
    FromPullRequest,
    FromSpec,
    NoTaskError,
    TaskSource,
    carries,
    comment_tag,
    comment_where,
    is_own_branch,
    issue_body,
    link_above,
    marker,
    parents,
    review_marker,
    stamped,
    task_source,
    task_title,
    with_parents,
    written_mode,
)


@pytest.mark.parametrize(
    ("spec", "issue", "pr", "source", "label"),
    [
        ("Add sub", None, None, FromSpec("Add sub"), "spec"),
        ("Add sub", 12, None, FromSpec("Add sub"), "spec"),  # the spec given for the run wins
        ("Add sub", 12, 3, FromSpec("Add sub"), "spec"),
        ("Add sub", None, 3, FromSpec("Add sub"), "spec"),
        (None, 12, None, FromIssue(12), "issue #12"),
        (None, 12, 3, FromIssue(12), "issue #12"),
        ("  \n", 12, None, FromIssue(12), "issue #12"),  # a blank spec is no spec
        (None, None, 3, FromPullRequest(3), "PR #3"),
        ("", None, 3, FromPullRequest(3), "PR #3"),
    ],
)
def test_task_source_precedence(
    spec: str | None, issue: int | None, pr: int | None, source: TaskSource, label: str
) -> None:
    found = task_source(spec, issue, pr)
    assert found == source and found.label == label


@pytest.mark.parametrize("spec", [None, "", " \n\t"])
def test_no_task_is_an_error(spec: str | None) -> None:
    with pytest.raises(NoTaskError, match="give spec_content, issue_number or pr_number"):
        task_source(spec, None, None)


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("\n## Add subtract\n\nWrite it.\n", "Add subtract"),
        ("Fix the thing\nmore words\n", "Fix the thing"),
        ("  #Indented heading  \n", "Indented heading"),
        ("###\n\n# Real title\n", "Real title"),  # a line of only heading marks has no text
        ("# " + "x" * 300, "x" * 120),
        ("", "Fallback"),
        ("\n  \n#\n", "Fallback"),
    ],
)
def test_task_title(text: str, title: str) -> None:
    assert task_title(text, "Fallback") == title


@pytest.mark.parametrize(
    ("text", "labels", "comments", "body"),
    [
        ("Please add it.", [], [], "Please add it."),
        ("Please add it.", ["bug", "easy"], [], "Please add it.\n\nLabels: bug, easy"),
        ("", [], [("ann", "Keep it tiny.")], "\n\n--- comment by @ann ---\nKeep it tiny."),
        (
            "Text",
            ["bug"],
            [("ann", "one"), ("bob", "two")],
            "Text\n\nLabels: bug\n\n--- comment by @ann ---\none\n\n--- comment by @bob ---\ntwo",
        ),
    ],
)
def test_issue_body(text: str, labels: list[str], comments: list[tuple[str, str]], body: str) -> None:
    assert issue_body(text, labels, comments) == body


@pytest.mark.parametrize(
    ("branch", "ours"),
    [
        ("forgeflow/run-1", True),
        ("forgeflow/a/b", True),
        ("forgeflow/", False),
        ("forgeflow", False),
        ("main", False),
        ("feature/forgeflow/x", False),
        ("Forgeflow/run-1", False),
    ],
)
def test_is_own_branch(branch: str, ours: bool) -> None:
    assert is_own_branch(branch) is ours


def test_markers() -> None:
    assert marker("run-1", "plan") == "<!-- forgeflow:run-1:plan -->"
    assert review_marker("run-1", 2) == "<!-- forgeflow:run-1:review-2 -->"


@pytest.mark.parametrize(
    ("body", "posted"),
    [
        ("## Plan\n\n1. add sub", "<!-- forgeflow:r:plan -->\n## Plan\n\n1. add sub"),
        ("help <!-- forgeflow:r:later -->", "<!-- forgeflow:r:plan -->\nhelp <!-- forgeflow-quoted:r:later -->"),
        ("<!-- forgeflow:r:plan -->", "<!-- forgeflow:r:plan -->\n<!-- forgeflow-quoted:r:plan -->"),
        ("", "<!-- forgeflow:r:plan -->\n"),
    ],
)
def test_stamped_puts_the_marker_first_and_defuses_quoted_ones(body: str, posted: str) -> None:
    assert stamped(marker("r", "plan"), body) == posted


@pytest.mark.parametrize(
    ("posted", "found"),
    [
        ("<!-- forgeflow:r:plan -->\n## Plan", True),
        ("<!-- forgeflow:r:plan -->\r\n## Plan", True),  # a host that stores CRLF
        ("earlier\n\n---\n\n<!-- forgeflow:r:plan -->\nbody\n", True),  # a record file of several posts
        ("## Plan", False),
        ("<!-- forgeflow:r:plan-2 -->\nbody", False),  # another step
        ("quoting <!-- forgeflow:r:plan --> inline", False),  # quoted, not posted
        ("> <!-- forgeflow:r:plan -->", False),
    ],
)
def test_carries_needs_the_marker_on_its_own_line(posted: str, found: bool) -> None:
    assert carries(posted, marker("r", "plan")) is found


def test_a_stamped_body_quoting_a_marker_does_not_carry_it() -> None:
    posted = stamped(marker("r", "plan"), "see\n<!-- forgeflow:r:later -->\n")
    assert carries(posted, marker("r", "plan")) and not carries(posted, marker("r", "later"))


@pytest.mark.parametrize(
    ("comment", "where", "tag"),
    [
        (ReviewComment(path="calc/x.py", line=5, body="b"), "calc/x.py:5", "[minor/bug]"),
        (ReviewComment(path="README.md", severity="info", category="style", body="b"), "README.md", "[info/style]"),
    ],
)
def test_review_comment_parts(comment: ReviewComment, where: str, tag: str) -> None:
    assert (comment_where(comment), comment_tag(comment)) == (where, tag)


@pytest.mark.parametrize(
    ("path", "above", "both"),
    [
        ("a", [], ["a"]),
        ("a/b/c", ["a", "a/b"], ["a", "a/b", "a/b/c"]),
    ],
)
def test_parents(path: str, above: list[str], both: list[str]) -> None:
    assert parents(path) == above and with_parents([path]) == both


def test_with_parents_merges_and_sorts() -> None:
    assert with_parents(["b/x", "a/y/z", "b/w"]) == ["a", "a/y", "a/y/z", "b", "b/w", "b/x"]


@pytest.mark.parametrize(
    ("path", "modes", "link"),
    [
        ("dirlink/new.txt", {"dirlink": "120000"}, "dirlink"),
        ("a/link/b/c", {"a": "040000", "a/link": "120000", "a/link/b": "120000"}, "a/link"),
        ("filelink", {"filelink": "120000"}, None),  # the path itself is a link: not above it
        ("a/b", {"a": "040000"}, None),
        ("new/file", {}, None),
    ],
)
def test_link_above(path: str, modes: dict[str, str], link: str | None) -> None:
    assert link_above(path, modes) == link


@pytest.mark.parametrize(
    ("old_mode", "new_mode"),
    [
        ("100755", "100755"),  # executables stay executable
        ("100644", "100644"),
        ("120000", "100644"),  # an approved change to a link writes a regular file
        (None, "100644"),  # a new file
    ],
)
def test_written_mode(old_mode: str | None, new_mode: str) -> None:
    modes = {} if old_mode is None else {"bin/run": old_mode}
    assert written_mode("bin/run", modes) == new_mode
