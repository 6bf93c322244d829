"""What benchmarks/command_roundtrip.py measures in its own process, without Temporal: the second
floor (bubblewrap running `true` exactly as the sandbox launches a command) and the pieces of a
run_command call, each timed on its own with the worker's own functions on the same kept commit; and
what a fresh copy of the commit would cost each command, which reusing working copies saves.

The pieces are timed beside the activity, not inside it, so their sum only approximates the
activity's time; what is left over is the activity's other work (reading .gitignore files, the
install cache key's manifest reads, building the answer) and the SDK's.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from asyncio.subprocess import DEVNULL
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from activities.sandbox import _changes
from activities.sandbox._prepared import PreparedTrees, copy_tree
from activities.sandbox._steps import Folders, SandboxConfig, Stepper, Workspace, apply_overlay
from activities.sandbox.backend import IsolationBackend, Step
from activities.sandbox.backends import select_backend
from contracts.commands import DEFAULT_COMMAND_SECONDS

COMMAND = "true"
ARGV = ["bash", "-c", COMMAND]  # what run_command runs for the command `true`
# The pieces, in the order a command meets them (activities/sandbox/run_command.py).
TAKE = "take a working copy"
OVERLAY = "overlay: fetch and lay the edits"
WALKS = "two walks of the copy (before, after)"
LISTING = "list the files (install key, runner)"
STEP = "bubblewrap step (floor 2)"
PUT = "put the answer in the blob store"
GIVE_BACK = "give it back (reset to the commit)"


@contextlib.asynccontextmanager
async def _timed(into: list[float]) -> AsyncIterator[None]:
    started = time.perf_counter()
    yield
    into.append(time.perf_counter() - started)


@dataclass
class Floor:
    """Seconds of each run of `bash -c true` under bubblewrap, with and without the sandbox's limits."""

    limited: list[float]  # as run_command's step runs it: Bubblewrap.launch's argv under run_limited
    bare: list[float]  # the same argv started plainly: no cgroup, no preexec hook (so no fork of this process)


async def bwrap_floor(config: SandboxConfig, rounds: int) -> Floor:
    """`rounds` runs each way, alternating, each in a fresh run folder."""
    floor = Floor([], [])
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="forgeflow-bench-bwrap-") as tmp:
            floor.limited.append(await _one_step(config, Folders.make(Path(tmp))))
        with tempfile.TemporaryDirectory(prefix="forgeflow-bench-bwrap-") as tmp:
            floor.bare.append(await _bare_step(config, Folders.make(Path(tmp))))
    return floor


def _bubblewrap(config: SandboxConfig) -> IsolationBackend:
    backend = select_backend(config.isolation)
    if not backend.isolates:  # the floor would not be bubblewrap's: say so rather than print it
        raise RuntimeError(f"the sandbox worker here would run commands unisolated ({type(backend).__name__})")
    return backend


async def _one_step(config: SandboxConfig, folders: Folders) -> float:
    limits = config.limits(DEFAULT_COMMAND_SECONDS)
    steps = Stepper(config, _bubblewrap(config), folders)
    started = time.perf_counter()
    finished = await steps.step(ARGV, [], {}, folders.host / "command.log", limits, what="command")
    seconds = time.perf_counter() - started
    if finished.exit_code != 0:
        raise RuntimeError(f"bubblewrap ran `{COMMAND}` with exit code {finished.exit_code}")
    return seconds


async def _bare_step(config: SandboxConfig, folders: Folders) -> float:
    backend = _bubblewrap(config)
    prefixes = Stepper(config, backend, folders).prefixes  # the step's own view of the interpreter
    hosts = folders.host / "hosts"
    step = Step(
        command=ARGV, env={}, mounts=[], workspace=folders.workspace, out_dir=folders.out, hosts=hosts,
        python_prefixes=prefixes,
    )  # fmt: skip
    launch = backend.launch(step)
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *launch.argv, env=launch.env, stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL, start_new_session=True
    )
    code = await proc.wait()
    seconds = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"bubblewrap ran `{COMMAND}` with exit code {code}")
    return seconds


@dataclass
class Pieces:
    timed: dict[str, list[float]]  # seconds of each piece, by name, in the order a command meets them
    fresh_copy: list[float]  # seconds to copy the kept commit whole and remove the copy: what reuse saves


async def pieces(
    config: SandboxConfig, tree: str, commit_sha: str, overlay: dict[str, str | None], rounds: int
) -> Pieces:
    """Seconds of each piece of a run_command call with `overlay`, over `rounds` calls on working
    copies taken and given back as run_command does (the first a new copy, the rest reused)."""
    trees = PreparedTrees(config.trees_dir, config.trees, config.cache_max_bytes)  # as run_command has it
    kept = await trees.entry(tree, commit_sha)
    timed: dict[str, list[float]] = {name: [] for name in (TAKE, OVERLAY, WALKS, LISTING, STEP, PUT, GIVE_BACK)}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="forgeflow-bench-parts-") as tmp:
            taken = trees.checkout(tree, commit_sha)
            async with _timed(timed[TAKE]):
                checkout = await taken.__aenter__()
            try:
                folders = Folders.make(Path(tmp), workspace=checkout.path)
                workspace = folders.workspace
                async with _timed(timed[OVERLAY]):
                    edited = await config.blobs.get_many_async(key for key in overlay.values() if key is not None)
                    await asyncio.to_thread(apply_overlay, workspace, overlay, edited)
                async with _timed(timed[WALKS]):
                    for _walk in range(2):
                        await asyncio.to_thread(_changes.snapshot, workspace)
                async with _timed(timed[LISTING]):
                    Workspace(workspace).paths()
                timed[STEP].append(await _one_step(config, folders))
                async with _timed(timed[PUT]):  # unique bytes: the answer names the command's seconds
                    await config.blobs.put_async(f"$ {COMMAND}\nexit code 0 ({uuid.uuid4()})\n".encode())
            except BaseException as err:
                await taken.__aexit__(type(err), err, err.__traceback__)
                raise
            async with _timed(timed[GIVE_BACK]):
                await taken.__aexit__(None, None, None)
    return Pieces(timed, [await _fresh_copy(kept) for _ in range(rounds)])


async def _fresh_copy(kept: Path) -> float:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="forgeflow-bench-copy-") as tmp:
        await copy_tree(kept, Path(tmp))
    return time.perf_counter() - started
