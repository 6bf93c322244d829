"""The main reviewer's and the extra reviewers' reviews, merged into the one review a run posts."""

from __future__ import annotations

from contracts.agents import Review, ReviewComment
from policy.reviews import merged


def comment(path: str, line: int | None, body: str) -> ReviewComment:
    return ReviewComment(path=path, line=line, body=body)


MAIN = Review(verdict="approve", summary="Looks right.", comments=[comment("calc.py", 3, "Name it sub?")])


def test_without_extra_reviewers_the_review_is_the_main_ones() -> None:
    assert merged(MAIN, []) is MAIN


def test_any_reviewer_requesting_changes_requests_them() -> None:
    security = Review(verdict="request_changes", summary="Unsafe.", comments=[comment("io.py", 9, "Path traversal.")])
    style = Review(verdict="approve", summary="Fine.")
    review = merged(MAIN, [("security", security), ("style", style)])
    assert review.verdict == "request_changes"
    assert (
        review.summary
        == "Looks right.\n\nsecurity reviewer (requests changes): Unsafe.\n\nstyle reviewer (approves): Fine."
    )
    assert [(c.path, c.line, c.body) for c in review.comments] == [
        ("calc.py", 3, "Name it sub?"),
        ("io.py", 9, "(security) Path traversal."),
    ]


def test_comments_on_the_same_place_are_kept_once_first_come() -> None:
    a = Review(
        verdict="approve",
        summary="a",
        comments=[comment("calc.py", 3, "Same line."), comment("calc.py", None, "File.")],
    )
    b = Review(
        verdict="approve", summary="b", comments=[comment("calc.py", None, "File too."), comment("calc.py", 4, "Next.")]
    )
    review = merged(MAIN, [("a", a), ("b", b)])
    assert review.verdict == "approve"
    assert [(c.line, c.body) for c in review.comments] == [(3, "Name it sub?"), (None, "(a) File."), (4, "(b) Next.")]
