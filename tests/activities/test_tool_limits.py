"""Every tool answer is bounded and says what it left out; search neither hangs nor holds the event loop."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from activities.tools import MAX_OUTPUT, ToolLimits
from testkit.tools import git
from tests.activities.test_tools import Tools

# --- observing the git processes a call starts (an audit hook: it sees Popen, it changes nothing) ---

_recording: list[list[str]] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event == "subprocess.Popen" and _recording:
        argv = args[1]
        if isinstance(argv, (list, tuple)) and argv and str(argv[0]).endswith("git"):
            _recording[-1].append(" ".join(str(a) for a in argv))


sys.addaudithook(_audit)  # hooks cannot be removed: it records only inside `git_processes()`


@contextmanager
def git_processes() -> Iterator[list[str]]:
    started: list[str] = []
    _recording.append(started)
    try:
        yield started
    finally:
        _recording.pop()


def commit(repo: Path, files: dict[str, bytes | str]) -> None:
    for name, content in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        else:
            path.write_bytes(content)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "more files")


@pytest.fixture
def tools(sample_repo: Path, tmp_path: Path) -> Tools:
    return Tools(sample_repo, tmp_path)


# --- search ---------------------------------------------------------------------------------


async def test_a_catastrophic_pattern_stops_at_the_time_limit_and_the_loop_keeps_running(
    sample_repo: Path, tmp_path: Path
) -> None:
    commit(sample_repo, {"evil.txt": ("a" * 30 + "!\n") * 20})
    # 20 lines at 0.5 s each need 10 s: the 5 s limit stops the search inside evil.txt, with room
    # before it for the whole-file probe (0.5 s, seconds on a loaded machine) and the first line.
    tools = Tools(sample_repo, tmp_path, ToolLimits(search_seconds=5, line_seconds=0.5))
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        # (a|aa)+$ backtracks exponentially in re and in regex alike; regex answers (a+)+$ at once.
        result = await asyncio.wait_for(tools.call("search", pattern=r"(a|aa)+$"), timeout=60)
    finally:
        ticker.cancel()
    assert not result.is_error, result.content
    assert "search stopped at the time limit (5 s)" in result.content
    assert "try a narrower glob or a simpler pattern" in result.content
    assert "the pattern took over 0.5 s on" in result.content and "evil.txt:1" in result.content
    assert ticks >= 10  # a blocked loop would not have ticked at all during the search


async def test_a_slow_line_is_reported_and_the_rest_is_searched(sample_repo: Path, tmp_path: Path) -> None:
    commit(sample_repo, {"a/evil.txt": "a" * 28 + "!\n", "b/fine.txt": "x\naaaa\n"})
    tools = Tools(sample_repo, tmp_path, ToolLimits(search_seconds=60, line_seconds=0.2))
    result = await tools.call("search", pattern=r"(a|aa)+$")
    assert result.content.splitlines() == [
        "b/fine.txt:2: aaaa",
        "the pattern took over 0.2 s on 1 line(s), which were not searched: a/evil.txt:1",
    ]


async def test_a_large_repository_is_searched_with_two_git_processes(sample_repo: Path, tmp_path: Path) -> None:
    commit(sample_repo, {f"pkg{n // 100}/mod{n}.py": f"def f{n}():\n    return {n}\n" for n in range(2000)})
    tools = Tools(sample_repo, tmp_path)
    with git_processes() as started:
        result = await tools.call("search", pattern=r"return 1999$", glob="*.py")
    assert result.content == "pkg19/mod1999.py:2: return 1999"
    assert len(started) <= 2, started  # one tree listing, one blob reader


async def test_search_sees_the_overlay(tools: Tools) -> None:
    await tools.call("write_file", path="calc/sub.py", content="def sub(a, b):\n    return a - b\n")
    await tools.call("str_replace", path="calc/__init__.py", old_str="def add", new_str="def plus")
    result = await tools.call("search", pattern=r"^def \w+", glob="calc/*")
    assert result.content.splitlines() == ["calc/__init__.py:1: def plus(a, b):", "calc/sub.py:1: def sub(a, b):"]
    deleted = tools.ws.overlay | {"tests/test_calc.py": None}
    tools.ws = tools.ws.model_copy(update={"overlay": deleted})
    assert (await tools.call("search", pattern="import add")).content == "(no matches)"


async def test_search_skips_binary_and_large_files_and_says_so(sample_repo: Path, tmp_path: Path) -> None:
    big = "needle\n" + "x" * (1024 * 1024) + "\n"
    commit(sample_repo, {"logo.png": b"\x89PNG\0needle", "big.log": big, "small.txt": "a needle\n"})
    result = await Tools(sample_repo, tmp_path).call("search", pattern="needle")
    assert result.content.splitlines() == [
        "small.txt:1: a needle",
        "(skipped 1 binary file(s) and 1 file(s) over 1 MiB)",
    ]


async def test_search_caps_matches_and_long_lines(sample_repo: Path, tmp_path: Path) -> None:
    commit(sample_repo, {"many.txt": "hit\n" * 300, "long.txt": "hit " + "y" * 1000 + "\n"})
    result = await Tools(sample_repo, tmp_path).call("search", pattern="hit", glob="long.txt")
    assert result.content == f"long.txt:1: hit {'y' * 196} … [804 more characters]"
    capped = await Tools(sample_repo, tmp_path).call("search", pattern="^hit$")
    lines = capped.content.splitlines()
    assert lines[:2] == ["many.txt:1: hit", "many.txt:2: hit"] and len(lines) == 201
    assert lines[-1].startswith("… search stopped at the cap of 200 matches after 3 of 4 files;")
    assert "narrow the glob or the pattern" in lines[-1]


async def test_search_bounds_characters_as_well_as_matches(sample_repo: Path, tmp_path: Path) -> None:
    deep = "/".join(["d" * 200] * 5)  # long paths: 200 matches would not fit the output
    commit(sample_repo, {f"{deep}/f{n}.txt": "hit\n" for n in range(150)})
    result = await Tools(sample_repo, tmp_path).call("search", pattern="hit")
    assert len(result.content) <= MAX_OUTPUT
    assert result.content.splitlines()[-1].endswith("more matches not shown; narrow the glob or the pattern")


# --- the other tools ------------------------------------------------------------------------


async def test_list_files_says_how_many_it_left_out(sample_repo: Path, tmp_path: Path) -> None:
    commit(sample_repo, {f"gen/f{n:03}.txt": "x" for n in range(600)})
    result = await Tools(sample_repo, tmp_path).call("list_files", glob="gen/*")
    lines = result.content.splitlines()
    assert lines[0] == "gen/f000.txt" and len(lines) == 501
    assert lines[-1] == "… 100 more files not shown; narrow the glob"


async def test_read_file_refuses_a_huge_file_whole_but_reads_a_range(sample_repo: Path, tmp_path: Path) -> None:
    commit(sample_repo, {"data.csv": "id,value\n" + "1,2\n" * 800_000})  # 3.2 MB
    tools = Tools(sample_repo, tmp_path)
    whole = await tools.call("read_file", path="data.csv")
    assert whole.is_error and "data.csv is 3.1 MiB (3200009 bytes), over the 2 MiB" in whole.content
    assert "read a line range (start_line, end_line)" in whole.content
    part = await tools.call("read_file", path="data.csv", start_line=1, end_line=2)
    assert part.content == "    1| id,value\n    2| 1,2"
    edit = await tools.call("str_replace", path="data.csv", old_str="id,value", new_str="id,amount")
    assert not edit.is_error  # edits may read up to 16 MiB


async def test_read_file_cuts_at_a_line_and_says_where_to_go_on(sample_repo: Path, tmp_path: Path) -> None:
    commit(sample_repo, {"wide.txt": "".join(f"{'w' * 100} {n}\n" for n in range(1, 1001)), "one.min.js": "z" * 50_000})
    tools = Tools(sample_repo, tmp_path)
    result = await tools.call("read_file", path="wide.txt")
    last = result.content.splitlines()[-1]
    assert len(result.content) <= MAX_OUTPUT and last.startswith("… lines ")
    first_cut = int(last.split()[2])
    assert f"to 1000 not shown (16000-character limit); read on with start_line={first_cut}" in last
    assert f"{first_cut - 1:>5}| " in result.content and f"{first_cut:>5}| " not in result.content
    minified = await tools.call("read_file", path="one.min.js")
    assert len(minified.content) <= MAX_OUTPUT and "more characters of line 1 cut]" in minified.content
    beyond = await tools.call("read_file", path="wide.txt", start_line=2000)
    assert beyond.content == "wide.txt: no lines 2000 to 1000; the file has 1000 lines"


async def test_view_diff_is_clipped_and_names_the_files_it_left_out(tools: Tools) -> None:
    await tools.call("write_file", path="a_big.txt", content="".join(f"line {n}\n" for n in range(5000)))
    await tools.call("write_file", path="b_small.txt", content="small\n")
    await tools.call("write_file", path="c_small.txt", content="small\n")
    result = await tools.call("view_diff")
    assert len(result.content) <= MAX_OUTPUT
    assert "+++ b/a_big.txt" in result.content and "… [diff of a_big.txt cut: " in result.content
    assert result.content.splitlines()[-1] == "… diffs not shown for 2 more file(s): b_small.txt, c_small.txt"


async def test_view_diff_summarises_a_file_too_large_to_diff(tools: Tools) -> None:
    await tools.call("write_file", path="huge.txt", content="x\n" * 600_000)
    result = await tools.call("view_diff")
    assert (
        result.content
        == "huge.txt: changed (no file → 1200000 bytes); too large to show as a diff, read_file shows its lines\n"
    )


@pytest.mark.parametrize(
    ("pattern", "lines"),
    [
        (r"^def", [2]),  # a form feed ends a line, as in read_file
        (r"x$", [2]),  # so does \r\n
        (r"(?<!\s)foo", [3, 4]),  # lookbehind at a line's start sees nothing, not the newline before
        (r"foo(?!\s)", [4]),
        (r"foo\s*+$", [3, 4]),  # possessive: on the whole file it would swallow the newline
        (r"\Afoo", [3, 4]),
        (r"^\s*$", [5]),
    ],
)
async def test_matches_are_per_line_however_files_are_read(
    sample_repo: Path, tmp_path: Path, pattern: str, lines: list[int]
) -> None:
    commit(sample_repo, {"f.txt": "start\x0cdef x\r\nfoo  \nfoo\n\t\nlast"})
    result = await Tools(sample_repo, tmp_path).call("search", pattern=pattern, glob="f.txt")
    assert [int(hit.split(":")[1]) for hit in result.content.splitlines()] == lines, result.content
