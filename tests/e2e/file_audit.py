"""`python file_audit.py LOG SCRIPT ARGS...`: run SCRIPT (a worker) as `python SCRIPT ARGS...` would,
with every path the process opens, lists, creates, removes or hands to a child process appended to
LOG, one line per event (Python's audit hooks, PEP 578: the standard library raises these events for
every such call, whoever makes it). A test reads LOG to show what a process never touched.
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path

# Events whose arguments name paths: file access, folder listings and changes, and new processes
# (their argv: a sandbox launcher's bind mounts, for one).
WATCHED = frozenset(
    {
        "open",
        "os.listdir",
        "os.scandir",
        "os.chdir",
        "os.mkdir",
        "os.rmdir",
        "os.remove",
        "os.rename",
        "os.link",
        "os.symlink",
        "os.truncate",
        "os.utime",
        "os.chmod",
        "os.chown",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "shutil.copyfile",
        "shutil.copytree",
        "shutil.move",
        "shutil.rmtree",
        "subprocess.Popen",
        "tempfile.mkdtemp",
        "tempfile.mkstemp",
    }
)


def _paths(value: object) -> Iterator[str]:
    """The text of every path-like value in an event's arguments (lists and tuples opened up)."""
    if isinstance(value, str | bytes | os.PathLike):
        yield os.fsdecode(value)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _paths(item)


def main() -> None:
    log, script, *args = sys.argv[1:]
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)

    def hook(event: str, arguments: tuple[object, ...]) -> None:
        if event in WATCHED:
            paths = list(_paths(arguments))
            if paths:  # one write per line: whole lines even from several threads
                os.write(out, ("\t".join([event, *paths]).replace("\n", "\\n") + "\n").encode("utf-8", "replace"))

    sys.addaudithook(hook)
    sys.argv = [script, *args]
    sys.path[0] = str(Path(script).resolve().parent)  # as `python SCRIPT` sets it
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
