"""The local host's records on disk: the "pull request", reviews and comments under .git/forgeflow/.

Writes are atomic (a reader sees the old record or the new one) and comments are posted once per
marker (policy/host_rules.py), so a retried activity never duplicates them.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

from contracts.codehost import PostReviewInput
from policy import host_rules as rules


def file_name(text: str) -> str:
    """A ref or id as one safe file name: `/` → `__`, anything unusual → `_`."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in text.replace("/", "__"))
    return cleaned.lstrip(".") or "_"


def review_markdown(req: PostReviewInput) -> str:
    review = req.review
    lines = [
        f"# Review of {req.pr_ref}, round {req.round}: {review.verdict}",
        "",
        f"- commit: `{req.commit_sha}`",
        f"- run: `{req.run_id}`",
        "",
        review.summary.rstrip(),
        "",
        "## Comments",
        "",
    ]
    for c in review.comments:
        body = c.body.strip().replace("\n", "\n  ")
        lines.append(f"- {rules.comment_where(c)} {rules.comment_tag(c)} {body}")
    if not review.comments:
        lines.append("No comments.")
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)  # readers see the old record or the new one, never half of one


def append_once(path: Path, marker: str, body: str) -> None:
    """Append `body` under `marker` unless a comment with that marker is already there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # an overlapping retry waits, then sees our marker
        f.seek(0)
        if rules.carries(f.read(), marker):
            return
        f.write(f"{rules.stamped(marker, body.rstrip())}\n\n---\n\n")
