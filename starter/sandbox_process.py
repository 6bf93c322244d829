"""The sandbox queue's worker as a child process that holds no secret.

The process that launches bubblewrap must hold no model, GitHub or codec secret in its environment,
so that neither a sandbox escape nor a bug that reads /proc/self/environ finds one. Wherever both
queues are served from one command (`forgeflow worker`, `forgeflow demo`, `python worker.py`), the
workflow queue runs in that process and the sandbox queue in a child started here, with an
allowlisted environment; the codec key ring reaches it through a pipe. A sandbox worker whose own
environment holds a secret refuses to start (sandbox_refusal).

The one credential it does hold is the object store's (the AWS_* variables of an S3 store), since it
reads the overlays' contents from there; the steps it launches get none of its environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import IO, TypeVar

from config.settings import Settings, secrets_in
from payloads.converter import key_ring

T = TypeVar("T")
WORKER_MODULE = "worker"  # python -m worker: importable wherever forgeflow is installed
STOP_TIMEOUT = 30.0  # seconds a stopped sandbox worker gets to cancel its runs before it is killed
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
STDERR = 2  # the child's default output: this process's stderr
PIPE_CAPACITY = 65536  # Linux's default: a bigger key ring needs a bigger pipe, or the write would block
# The standard AWS variables an S3 object store (FORGEFLOW_STORAGE_URL=s3://…) is configured by: the
# sandbox worker reads the overlays' contents from that store. Storage credentials only, which the
# process needs for its own work; no model, GitHub or codec secret is among them.
STORAGE_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)
# What a sandbox worker started as a child inherits besides its settings: nothing that can hold a
# forgeflow secret (SECRET_VARIABLES).
INHERITED = frozenset(
    {
        "PATH",
        "HOME",
        "LANG",
        "TZ",
        "TMPDIR",
        "XDG_CONFIG_HOME",
        "PYTHONPATH",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        *STORAGE_VARIABLES,
    }
)


def sandbox_environment(settings: Settings, env: Mapping[str, str]) -> dict[str, str]:
    """The whole environment of a sandbox worker started as a child process: the allowlisted part of
    `env`, then `settings` as environment values (so values set in code reach the child)."""
    kept = {k: v for k, v in env.items() if k in INHERITED or k.startswith("LC_") or _plain_otel(k)}
    return {**kept, **settings.sandbox_worker_env()}


def _plain_otel(name: str) -> bool:
    # OTEL_EXPORTER_OTLP_[*_]HEADERS carry the collector's credentials (an API key header).
    return name.startswith("OTEL_") and "HEADERS" not in name


def sandbox_refusal(env: Mapping[str, str], queue: str) -> str | None:
    """Why a worker for `queue` (the sandbox's) must not start with this environment, or None."""
    found = secrets_in(env)
    if not found:
        return None
    return (
        f"refusing to serve {queue}: this process's environment holds {', '.join(found)}, and the process "
        "that launches sandboxes must hold no secret. Start the sandbox worker with only its own settings "
        "(TEMPORAL_ADDRESS, FORGEFLOW_DATA_DIR, FORGEFLOW_SANDBOX_*, ...), and give it the codec key ring "
        "by FORGEFLOW_CODEC_KEYS_FILE (a file such as a docker secret), not FORGEFLOW_CODEC_KEYS."
    )


class SandboxWorkerExited(RuntimeError):
    """The sandbox worker's process ended while this one still served the workflow queue."""


class SandboxProcess:
    """The sandbox queue's worker as a child process: `python worker.py --queue <sandbox queue>`.

    Its environment is `sandbox_environment`; the codec key ring reaches it through a pipe
    (FORGEFLOW_CODEC_KEYS_FILE=/dev/fd/N), read once at its start-up. Its output (stdout and stderr)
    goes to `output`, by default this process's stderr. Leaving the block stops it; if this process
    dies, even by kill -9, the kernel sends it SIGTERM.
    """

    def __init__(self, settings: Settings, *, log_format: str = "json", output: IO[str] | None = None) -> None:
        self._settings, self._log_format = settings, log_format
        self._output = STDERR if output is None else output.fileno()
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> SandboxProcess:
        self._proc = await _spawn_sandbox_worker(self._settings, self._log_format, self._output)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is not None:
            await _stop(self._proc)

    @property
    def pid(self) -> int:
        assert self._proc is not None, "use SandboxProcess as an async context manager"
        return self._proc.pid

    async def while_running(self, work: Awaitable[T]) -> T:
        """`work`'s result; SandboxWorkerExited if the child ends first (a crash, an OOM kill), so that
        runs do not silently wait for tests that nobody will run."""
        assert self._proc is not None, "use SandboxProcess as an async context manager"
        task, ended = asyncio.ensure_future(work), asyncio.ensure_future(self._proc.wait())
        try:
            await asyncio.wait({task, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (task, ended):
                pending.cancel()  # no-op for the one that finished
        if task.done() and not task.cancelled():
            return task.result()
        raise SandboxWorkerExited(
            f"the sandbox worker (pid {self._proc.pid}) exited with code {self._proc.returncode}; "
            "no tests can run without it"
        )


async def _spawn_sandbox_worker(settings: Settings, log_format: str, output: int) -> asyncio.subprocess.Process:
    ring = key_ring(settings)
    ring_fd = None if ring is None else _pipe_holding(ring.encode())
    child = settings.model_copy(
        update={"codec_keys": None, "codec_keys_file": None if ring_fd is None else Path(f"/dev/fd/{ring_fd}")}
    )
    try:
        # Spawned from the event loop's thread, which lives as long as this process: PR_SET_PDEATHSIG
        # fires when the thread that forked the child ends, not only when the process does.
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", WORKER_MODULE, "--queue", settings.sandbox_task_queue, "--log-format", log_format,
            env=sandbox_environment(child, os.environ),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,  # its banner joins its logs, and our stdout stays ours (the demo's report)
            stderr=output,
            pass_fds=() if ring_fd is None else (ring_fd,),
            preexec_fn=_exit_with_parent(os.getpid()),
        )  # fmt: skip
    finally:
        if ring_fd is not None:
            os.close(ring_fd)  # the child has its own copy


def _pipe_holding(data: bytes) -> int:
    """The read end of a pipe that holds `data`, its write end closed: one reader gets `data`, then EOF."""
    read, write = os.pipe()
    try:
        if len(data) > PIPE_CAPACITY:
            fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, len(data))
        view = memoryview(data)
        while view:
            view = view[os.write(write, view) :]
    finally:
        os.close(write)
    return read


def _exit_with_parent(parent: int) -> Callable[[], None] | None:
    """A preexec_fn after which the child gets SIGTERM (a graceful stop) when `parent` dies, even by
    kill -9: Linux's PR_SET_PDEATHSIG. None where there is no prctl."""
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)  # looked up before fork, not in the child
    if prctl is None:
        return None

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:  # the parent died before prctl: no signal will come
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
