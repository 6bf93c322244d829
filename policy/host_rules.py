"""The rules every code host follows, written once. Pure: the hosts do the I/O and call these.

The local git host and the GitHub host (and any host added later) each translate the same rules
into their own calls; none keeps its own copy, so they cannot drift apart:

- **Which text a run works on:** the spec given for the run wins, then the issue, then the pull
  request under review. An issue named beside a spec still receives the run's comments; its text
  is not read.
- **Titles** of text that has no title of its own (a spec, a local issue file): the first line
  with text, without markdown heading marks, cut at TITLE_MAX.
- **An issue as the agents read it:** its text, its labels, then its comment thread.
- **Branches:** forgeflow moves only its own, `forgeflow/<name>`.
- **Exactly once:** whatever a host posts (comment, review) starts with a hidden marker line naming
  the run and the step, and a retry looks for that line before posting again. A marker quoted in a
  body is defused, so quoted text never passes for a post that was not made.
- **Review comments** read `[severity/category] body`, placed at `path:line`.
- **File modes** in a commit: a written file keeps its executable bit; anything else, a symbolic
  link included, becomes a regular file (see activities/codehost/_change_rules.py for why links need care).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from contracts.agents import ReviewComment

BRANCH_PREFIX = "forgeflow/"


def slug(text: str) -> str:
    """`text` as a name part: letters, digits, `-_.`; anything else a dash; at most 80 characters."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in text)
    return cleaned.strip("-.")[:80] or "run"


TITLE_MAX = 120
LINK_MODE = "120000"
EXECUTABLE_MODE = "100755"
FILE_MODE = "100644"
_MARKER_OPEN = "<!-- forgeflow:"
_DEFUSED_OPEN = "<!-- forgeflow-quoted:"


class NoTaskError(ValueError):
    """The run names neither a spec, nor an issue, nor a pull request."""


# --- the task's text ------------------------------------------------------------------------


@dataclass(frozen=True)
class FromSpec:
    text: str

    @property
    def label(self) -> str:
        return "spec"


@dataclass(frozen=True)
class FromIssue:
    number: int

    @property
    def label(self) -> str:
        return f"issue #{self.number}"


@dataclass(frozen=True)
class FromPullRequest:
    number: int

    @property
    def label(self) -> str:
        return f"PR #{self.number}"


TaskSource = FromSpec | FromIssue | FromPullRequest


def task_source(spec: str | None, issue_number: int | None, pr_number: int | None) -> TaskSource:
    """Where the task's title and body come from; `label` is what TaskSpec.source says.

    The spec wins: whoever starts a run with a written spec means that text, even beside an issue
    (which then only receives the comments). A blank spec is no spec."""
    if spec is not None and spec.strip():
        return FromSpec(spec)
    if issue_number is not None:
        return FromIssue(issue_number)
    if pr_number is not None:
        return FromPullRequest(pr_number)
    raise NoTaskError("no task: give spec_content, issue_number or pr_number")


def task_title(text: str, fallback: str) -> str:
    """The first line with text, without leading `#`s, cut at TITLE_MAX; `fallback` when there is none."""
    for line in text.splitlines():
        title = line.strip().lstrip("#").strip()
        if title:
            return title[:TITLE_MAX]
    return fallback


def issue_body(text: str, labels: Sequence[str], comments: Sequence[tuple[str, str]]) -> str:
    """An issue's text, then its labels, then each (author, body) comment in order."""
    shown = f"\n\nLabels: {', '.join(labels)}" if labels else ""
    thread = "".join(f"\n\n--- comment by @{author} ---\n{body}" for author, body in comments)
    return f"{text}{shown}{thread}"


# --- branches and exactly-once markers ------------------------------------------------------


def mapping_ref(remote_sha: str) -> str:
    """Where a worker's local copy of a remote commit is kept, in the commit cache's repository: the
    GitHub host writes it and reads the commit through it."""
    return f"refs/forgeflow/remote/{remote_sha}"


def is_own_branch(branch: str) -> bool:
    """True for a branch forgeflow may move: one under BRANCH_PREFIX, never the bare prefix."""
    return branch.startswith(BRANCH_PREFIX) and branch != BRANCH_PREFIX


def marker(run_id: str, step: str) -> str:
    """The hidden line that makes a post findable by the run and step that made it."""
    return f"<!-- forgeflow:{run_id}:{step} -->"


def review_marker(run_id: str, round_number: int) -> str:
    return marker(run_id, f"review-{round_number}")


def stamped(marker_line: str, body: str) -> str:
    """What a host posts: the marker on the first line, then `body` with any marker it quotes defused."""
    return f"{marker_line}\n{body.replace(_MARKER_OPEN, _DEFUSED_OPEN)}"


def carries(posted: str, marker_line: str) -> bool:
    """True when `posted` (a comment, a review, a record file) holds `marker_line` as a line of its own."""
    return marker_line in posted.splitlines()


# --- review comments ------------------------------------------------------------------------


def comment_where(comment: ReviewComment) -> str:
    return comment.path if comment.line is None else f"{comment.path}:{comment.line}"


def comment_tag(comment: ReviewComment) -> str:
    return f"[{comment.severity}/{comment.category}]"


# --- file modes -----------------------------------------------------------------------------


def parents(path: str) -> list[str]:
    """The directories above a repository path, outermost first: `a/b/c` → `a`, `a/b`."""
    parts = path.split("/")
    return ["/".join(parts[:n]) for n in range(1, len(parts))]


def with_parents(paths: Iterable[str]) -> list[str]:
    """The paths and every directory above them: what a host looks up to apply the link rules."""
    return sorted({found for path in paths for found in (*parents(path), path)})


def link_above(path: str, modes: Mapping[str, str]) -> str | None:
    """The first directory above `path` that is a symbolic link (per `modes`: path → git mode), if any."""
    return next((parent for parent in parents(path) if modes.get(parent) == LINK_MODE), None)


def written_mode(path: str, modes: Mapping[str, str]) -> str:
    """The mode a written file gets: executables stay executable; links and all else become regular files."""
    return EXECUTABLE_MODE if modes.get(path) == EXECUTABLE_MODE else FILE_MODE
