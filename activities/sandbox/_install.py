"""The dependency install step: run once per repository and manifest/lockfile hash, then reused.

Python dependencies go into a virtualenv made for the key and bound at /forgeflow-env (read-write
while installing, read-only for tests); node's node_modules is moved out of the workspace into the
cache and bound back read-only. A failed install is not cached, so a retry tries again.

The install step runs the repository's code, so what it leaves is untrusted: the key names the
repository (one repository's install never runs in another's tests), node_modules must be a real
folder, and no link in the cache may lead out of it (checked without following any), or nothing is
cached and the step counts as failed, with the reason.

The cache is bounded (`max_bytes`) and safe to delete (activities._disk_cache): each key is one
item, `<key>` (ready: it holds install.json, and appears by one rename), `<key>.partial` and
`<key>.lock`. After an install, the least recently used keys go, but never one whose lock is held,
nor one prepared within IN_USE_SECONDS, whose test step may still read it after the lock is let go.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import site
import stat
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from activities import _disk_cache
from activities.sandbox import _safefs
from activities.sandbox._layout import ENV_DIR, WORKSPACE, Mount
from activities.sandbox._limited import Finished
from activities.sandbox._report import tail
from contracts.testing import InstallReport

MANIFESTS = (
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "poetry.lock",
    "uv.lock",
    "Pipfile.lock",
    "package.json",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
)
OUTPUT_TAIL = 4000
IN_USE_SECONDS = 3600  # a key prepared this recently is never evicted: its test step may be running

# Runs one sandboxed step: (command, extra mounts, extra env, log file, with network?) → how it ended.
RunStep = Callable[[list[str], list[Mount], dict[str, str], Path, bool], Awaitable[Finished]]


def _is_manifest(path: str) -> bool:
    name = PurePosixPath(path)
    return str(name) in MANIFESTS or (len(name.parts) == 1 and name.match("requirements*.txt"))


@functools.lru_cache(maxsize=1)
def toolchain() -> tuple[str, ...]:
    """What installed packages depend on besides the manifests: the interpreter's and node's versions
    (asked once per worker process)."""
    node = shutil.which("node")
    version = ""
    if node is not None:
        done = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
        version = done.stdout.strip()
    return (sys.version, f"node {version}")


def cache_key(
    command: list[str],
    paths: list[str],
    read: Callable[[str], str | None],
    tools: Sequence[str] = (),
    *,
    repository: str,
) -> str:
    """Same repository, install command, manifests, lockfiles and toolchain → same key. Pure."""
    digest = hashlib.sha256(json.dumps([repository, command, list(tools)]).encode())
    for path in sorted(p for p in paths if _is_manifest(p)):
        digest.update(f"\0{path}\0{read(path) or ''}".encode())
    return digest.hexdigest()[:24]


def as_module_call(command: list[str], python: str) -> list[str]:
    """`pip …` → `python -m pip …`, so pip installs into the run's virtualenv whatever is on PATH."""
    if command and PurePosixPath(command[0]).name in ("pip", "pip3"):
        return [python, "-m", "pip", *command[1:]]
    return command


@dataclass
class Prepared:
    report: InstallReport | None = None
    mounts: list[Mount] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.report is not None and not self.report.cached and self.report.exit_code != 0


NODE_MODULES = f"{WORKSPACE}/node_modules"


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _mounts(entry: Path) -> list[Mount]:
    """The cache entry's folders, bound read-only (bwrap resolves a source on the host: never a link)."""
    mounts = []
    if _is_real_dir(entry / "env"):
        mounts.append(Mount(source=str(entry / "env"), target=ENV_DIR))
    if _is_real_dir(entry / "node_modules"):
        mounts.append(Mount(source=str(entry / "node_modules"), target=NODE_MODULES))
    return mounts


def _escaping_links(staging: Path, made_by_us: dict[str, str]) -> list[str]:
    """Links in the staged cache that lead out of it as the sandbox would see them; the virtualenv's
    own links to the interpreter, made before the step ran, are not the step's."""
    found = []
    for folder, mount in (("env", ENV_DIR), ("node_modules", NODE_MODULES)):
        if not _is_real_dir(staging / folder):
            continue
        for rel, target in sorted(_safefs.links(staging / folder).items()):
            if made_by_us.get(rel) == target and folder == "env":
                continue
            if _safefs.link_escapes(staging / folder, rel, mount):
                found.append(f"{folder}/{rel} -> {target}")
    return found


def _untrusted_leftovers(workspace: Path, staging: Path, made_by_us: dict[str, str]) -> str | None:
    """Why the step's result can't be cached, or None."""
    modules = workspace / "node_modules"
    if os.path.lexists(modules) and not _is_real_dir(modules):
        return "the install step left node_modules as something other than a folder (a link?); nothing was cached"
    if _is_real_dir(modules):
        shutil.move(modules, staging / "node_modules")  # a rename, or a copy that keeps links as links
    escaping = _escaping_links(staging, made_by_us)
    if escaping:
        shown = "\n".join(escaping[:10]) + (f"\n… and {len(escaping) - 10} more" if len(escaping) > 10 else "")
        return f"the install step left links that lead out of the dependency cache; nothing was cached:\n{shown}"
    return None


def _item(name: str) -> str:
    """The key a cache entry belongs to: `<key>`, `<key>.partial` and `<key>.lock` are one item."""
    return name.partition(".")[0] or name


def _make_env(env_dir: Path) -> None:
    """A virtualenv of the worker's interpreter that also sees the worker's test tools (pytest,
    coverage, xmlrunner) after its own packages, through a .pth file. The worker's pip is one of
    them, so the env gets its own only when the worker has none: ensurepip costs ~8 s of CPU."""
    skip_pip = ["--without-pip"] if importlib.util.find_spec("pip") is not None else []
    subprocess.run([sys.executable, "-m", "venv", *skip_pip, str(env_dir)], check=True, capture_output=True)
    site_dirs = [d for d in site.getsitepackages() if Path(d).is_dir()]
    for lib in (env_dir / "lib").glob("python*/site-packages"):
        (lib / "_forgeflow_worker_tools.pth").write_text("\n".join(site_dirs) + "\n")


async def prepare(
    *,
    command: list[str] | None,
    workspace: Path,
    cache_dir: Path,
    key: str,
    python_env: bool,
    network: bool,
    run_step: RunStep,
    log_dir: Path,
    max_bytes: int | None = None,
) -> Prepared:
    """Install (or reuse) the dependencies for this key; the mounts the test step needs. The step's
    console log goes to `log_dir`, a folder no sandbox sees. After an install, `cache_dir` is trimmed
    to `max_bytes` (None: unbounded)."""
    if not command:
        return Prepared()
    entry = cache_dir / key
    # One install per key at a time; a second run with the same key waits and then reuses it.
    async with _disk_cache.locked(cache_dir / f"{key}.lock"):
        done = entry / "install.json"
        if done.exists():
            _disk_cache.touch(entry)
            cached = InstallReport.model_validate_json(done.read_text()).model_copy(update={"cached": True})
            return Prepared(report=cached, mounts=_mounts(entry))
        staging = cache_dir / f"{key}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        mounts, made_by_us = [], {}
        if python_env:
            await asyncio.to_thread(_make_env, staging / "env")
            made_by_us = _safefs.links(staging / "env")
            mounts.append(Mount(source=str(staging / "env"), target=ENV_DIR, writable=True))
        log = log_dir / "install.log"
        started = time.monotonic()
        finished = await run_step(as_module_call(command, f"{ENV_DIR}/bin/python"), mounts, {}, log, network)
        report = InstallReport(
            command=command,
            cached=False,
            exit_code=finished.exit_code,
            network=network,
            duration_seconds=round(time.monotonic() - started, 3),
            output_tail=tail(log, OUTPUT_TAIL),
        )
        refused = (
            None
            if finished.exit_code != 0
            else await asyncio.to_thread(_untrusted_leftovers, workspace, staging, made_by_us)
        )
        if finished.exit_code != 0 or refused is not None:
            shutil.rmtree(staging, ignore_errors=True)
            if refused is not None:
                report = report.model_copy(
                    update={"exit_code": None, "output_tail": f"{refused}\n{report.output_tail}"}
                )
            return Prepared(report=report)
        (staging / "install.json").write_text(report.model_dump_json())
        staging.rename(entry)
        _disk_cache.touch(entry)
    if max_bytes is not None:
        await _disk_cache.bound(
            cache_dir,
            max_bytes,
            {key},
            min_idle=IN_USE_SECONDS,
            item_of=_item,
            lock_of=lambda item: cache_dir / f"{item}.lock",
        )
    return Prepared(report=report, mounts=_mounts(entry))
