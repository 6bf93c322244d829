"""One review from the main reviewer's and the extra reviewers'. Pure.

Any reviewer that requests changes makes the verdict request changes. Comments are merged in the
reviewers' order, one per place (path and line): the first reviewer to comment on a line keeps it,
and an extra reviewer's comment says whose it is. The summary has the main reviewer's words, then a
line per extra reviewer.
"""

from __future__ import annotations

from collections.abc import Sequence

from contracts.agents import Review, ReviewComment


def merged(main: Review, extras: Sequence[tuple[str, Review]]) -> Review:
    """`main`, with each (name, review) of `extras` folded in."""
    if not extras:
        return main
    seen: set[tuple[str, int | None]] = set()
    comments: list[ReviewComment] = []
    for name, review in [("", main), *extras]:
        for comment in review.comments:
            place = (comment.path, comment.line)
            if place in seen:
                continue
            seen.add(place)
            comments.append(comment if not name else comment.model_copy(update={"body": f"({name}) {comment.body}"}))
    changes = any(review.verdict == "request_changes" for review in (main, *(r for _, r in extras)))
    lines = [main.summary, *(f"{name} reviewer ({_verdict(r)}): {r.summary}" for name, r in extras)]
    return Review(verdict="request_changes" if changes else "approve", summary="\n\n".join(lines), comments=comments)


def _verdict(review: Review) -> str:
    return "requests changes" if review.verdict == "request_changes" else "approves"
