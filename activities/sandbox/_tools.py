"""The worker's test tools, and nothing else the worker has installed, as the sandbox sees them.

The sandbox runs tests with the worker's interpreter, bound read-only. Its site-packages folders are
shown with only the test tools in them: pytest, coverage and unittest's JUnit reporter, pip and
setuptools for the install step, and what those need. The repository's own dependencies come from
its install step (/forgeflow-env). Before, the whole of the worker's site-packages showed through,
so a repository's tests could import the worker's libraries, and every pytest run loaded the
worker's own pytest plugins (LangSmith's alone took 2 s of CPU per run).
"""

from __future__ import annotations

import functools
import site
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

TOOLS = ("pytest", "pytest-cov", "unittest-xml-reporting", "pip", "setuptools")


@dataclass(frozen=True)
class ToolSite:
    """A site-packages folder of the worker, and the names in it (packages, modules, their
    .dist-info folders) the sandbox sees; everything else in it is hidden."""

    path: str
    entries: tuple[str, ...]


def with_requirements(names: Iterable[str]) -> list[metadata.Distribution]:
    """The installed distributions `names` name, and those they require (no extras), each once.
    A name not installed is left out: the sandbox then says the tool is missing when it is used."""
    found: dict[str, metadata.Distribution] = {}
    todo = [canonicalize_name(name) for name in names]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[name] = dist
        for line in dist.requires or []:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return list(found.values())


def top_level(files: Iterable[PurePosixPath | str]) -> set[str]:
    """The names at the top of a site folder that a distribution's RECORD lists: its packages,
    modules, .pth and .dist-info. Not the shared __pycache__ (single modules compile in the
    sandbox), nor what it installed outside the folder (scripts, ../../bin/...)."""
    names = {PurePosixPath(str(f)).parts[0] for f in files if str(f) and not str(f).startswith("..")}
    return names - {"__pycache__"}


def tool_sites(dists: Iterable[metadata.Distribution], site_dirs: Iterable[str]) -> list[ToolSite]:
    """Each of `site_dirs` (and any folder a tool is installed in) with the tools' names in it."""
    entries: dict[str, set[str]] = {str(Path(d)): set() for d in site_dirs}
    for dist in dists:
        folder = str(Path(str(dist.locate_file(""))))
        entries.setdefault(folder, set()).update(top_level(dist.files or []))
    return [ToolSite(path=path, entries=tuple(sorted(names))) for path, names in entries.items()]


@functools.cache
def worker_tool_sites() -> tuple[ToolSite, ...]:
    """This worker's: its interpreter's site-packages folders, and its base interpreter's when it
    runs in a virtualenv (the sandbox sees that interpreter too), each showing only TOOLS."""
    folders = dict.fromkeys([*site.getsitepackages(), *site.getsitepackages([sys.base_prefix])])
    return tuple(tool_sites(with_requirements(TOOLS), [d for d in folders if Path(d).is_dir()]))
