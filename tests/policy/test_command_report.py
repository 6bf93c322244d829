"""What an agent reads after a command: a table of endings, and the text's parts."""

from __future__ import annotations

import pytest

from contracts.commands import NotKept
from contracts.testing import SandboxLimits
from policy.command_report import Change, CommandEnd, command_preview, command_status, command_text

LIMITS = SandboxLimits(
    wall_seconds=30, cpu_seconds=60, memory_bytes=256 * 1024**2, max_processes=64, output_bytes=2**20
)


@pytest.mark.parametrize(
    ("end", "status"),
    [
        (CommandEnd(exit_code=0, limits=LIMITS), "exited"),
        (CommandEnd(exit_code=1, limits=LIMITS), "exited"),
        (CommandEnd(exit_code=None, limits=LIMITS, stopped_for="wall_time"), "timed_out"),
        (CommandEnd(exit_code=None, limits=LIMITS, stopped_for="cpu_time"), "timed_out"),
        (CommandEnd(exit_code=153, limits=LIMITS, output_limit_hit=True), "too_much_output"),
        (CommandEnd(exit_code=137, limits=LIMITS, oom_kills=1), "out_of_memory"),
        (CommandEnd(exit_code=1, limits=LIMITS, process_limit_hits=3), "too_many_processes"),
        # A command that coped with a limit and exited 0 exited.
        (CommandEnd(exit_code=0, limits=LIMITS, process_limit_hits=3), "exited"),
    ],
)
def test_status(end: CommandEnd, status: str) -> None:
    assert command_status(end) == status


def text(**overrides: object) -> str:
    values: dict[str, object] = {
        "command": "pytest -q",
        "status": "exited",
        "end": CommandEnd(exit_code=1, limits=LIMITS),
        "seconds": 1.5,
        "head": "F.\n",
        "tail": "",
        "cut": 0,
        "changes": [],
        "removed": [],
        "not_kept": [],
        "keep": True,
    }
    return command_text(**(values | overrides))  # type: ignore[arg-type]


def test_the_command_its_end_and_its_output() -> None:
    assert text() == "$ pytest -q\nexit code 1 after 1.50 s\nF."
    assert text(head="", tail="") == "$ pytest -q\nexit code 1 after 1.50 s\n(no output)"


def test_cut_output_says_how_much_was_cut() -> None:
    shown = text(head="first\n", tail="last\n", cut=1234)
    assert shown.endswith("first\n[… 1234 bytes of output cut here …]\nlast")


def test_a_timeout_names_the_limit() -> None:
    end = CommandEnd(exit_code=None, limits=LIMITS, stopped_for="wall_time")
    assert "still running after the 30 s timeout" in text(status="timed_out", end=end)
    assert command_preview("timed_out", end, 30.0, 0).startswith("stopped: still running after the 30 s timeout")


def test_changes_are_listed_and_counted() -> None:
    changes = [Change("a.py", "M"), Change("b.py", "A"), Change("c.py", "D")]
    shown = text(changes=changes, removed=["mine.txt"])
    assert "The command changed 4 file(s); they are now part of your edits:" in shown
    assert "  M a.py\n  A b.py\n  D c.py\n  D mine.txt (a file you had created)" in shown
    many = [Change(f"f{i}.py", "A") for i in range(25)]
    assert "… and 5 more (view_diff shows them all)" in text(changes=many)


def test_read_only_says_the_changes_were_discarded() -> None:
    shown = text(changes=[Change("a.py", "M")], keep=False)
    assert "read-only: the 1 file(s) the command changed were discarded" in shown


def test_what_was_not_kept_is_grouped_by_reason() -> None:
    ignored = [NotKept(path=f"build/{i}.o", why="ignored by .gitignore") for i in range(7)]
    shown = text(not_kept=[*ignored, NotKept(path="link", why="a symbolic link")])
    assert "build/0.o, build/1.o, build/2.o, build/3.o, build/4.o, … (7 in all): ignored by .gitignore" in shown
    assert "  link: a symbolic link" in shown
