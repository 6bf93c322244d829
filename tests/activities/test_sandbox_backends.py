"""Choosing the isolation backend (activities.sandbox.backends) and what each backend launches.

Selection looks programs up with the real `shutil.which` on a PATH each case builds in a temporary
folder: nothing is patched.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.sandbox._layout import OUT, WORKSPACE, Mount
from activities.sandbox.backend import LAUNCHER_ENV, BackendOptions, Step
from activities.sandbox.backends import BACKENDS, select_backend
from activities.sandbox.bubblewrap import Bubblewrap
from activities.sandbox.unsandboxed import Unsandboxed
from config.settings import Settings
from tests.activities.test_sandbox import make_repo, run

# What the worker has said since before backends existed; escalations and runbooks quote it.
REFUSAL = (
    "bubblewrap ({bwrap}) is not installed on this sandbox worker, so tests cannot run isolated; install "
    "Debian's bubblewrap package, then answer the escalation to retry "
    "(or set FORGEFLOW_ALLOW_UNSANDBOXED=1 to accept the risk)"
)


def search_path(tmp_path: Path, program: str | None, mode: int = 0o755) -> str:
    """A PATH of one folder holding, if `program` is given, a file of that name with `mode`."""
    folder = tmp_path / "bin"
    folder.mkdir()
    if program is not None:
        (folder / program).write_text("#!/bin/sh\nexit 0\n")
        (folder / program).chmod(mode)
    return str(folder)


@pytest.mark.parametrize(
    ("on_path", "mode", "allowed", "chosen"),
    [
        ("bwrap", 0o755, False, Bubblewrap),
        ("bwrap", 0o755, True, Bubblewrap),  # the opt-in never outranks isolation
        (None, 0o755, True, Unsandboxed),
        ("bwrap", 0o644, True, Unsandboxed),  # not executable: not installed
        ("bwrap-other", 0o755, True, Unsandboxed),  # only the configured name counts
        (None, 0o755, False, None),
        ("bwrap", 0o644, False, None),
    ],
)
def test_backend_selection(
    tmp_path: Path, on_path: str | None, mode: int, allowed: bool, chosen: type[Bubblewrap | Unsandboxed] | None
) -> None:
    options = BackendOptions(bwrap="bwrap", allow_unsandboxed=allowed, search_path=search_path(tmp_path, on_path, mode))
    if chosen is None:
        with pytest.raises(ApplicationError) as refused:
            select_backend(options)
        assert refused.value.type == "SandboxUnavailable" and refused.value.non_retryable
        assert refused.value.message == REFUSAL.format(bwrap="bwrap")
        return
    backend = select_backend(options)
    assert type(backend) is chosen
    assert backend.isolates == (chosen is Bubblewrap)
    if isinstance(backend, Bubblewrap):
        assert backend.program == str(tmp_path / "bin" / "bwrap")  # the path found, not the name


def test_a_configured_path_is_used_wherever_path_points(tmp_path: Path) -> None:
    program = Path(search_path(tmp_path, "bwrap")) / "bwrap"
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()
    options = BackendOptions(bwrap=str(program), allow_unsandboxed=False, search_path=str(elsewhere))
    assert select_backend(options) == Bubblewrap(str(program))
    program.unlink()
    with pytest.raises(ApplicationError) as refused:
        select_backend(options)
    assert refused.value.message == REFUSAL.format(bwrap=program)


def test_the_table_prefers_isolation_and_keeps_the_opt_in_last() -> None:
    assert list(BACKENDS) == ["bubblewrap", "unsandboxed"]


def step(tmp_path: Path) -> Step:
    return Step(
        command=["python", "-m", "pytest", f"--junitxml={OUT}/junit.xml"],
        env={"FORGEFLOW_REPORT": f"{OUT}/r.json", "NODE_ENV": "test"},
        mounts=[Mount(source="/c/env", target="/forgeflow-env")],
        workspace=tmp_path / "workspace",
        out_dir=tmp_path / "out",
        hosts=tmp_path / "host" / "hosts",
        python_prefixes=[sys.prefix],
    )


def test_bubblewrap_launches_with_nothing_of_the_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGEFLOW_TEST_SECRET", "s3cret")  # a worker variable: it must not travel
    launch = Bubblewrap("/usr/bin/bwrap").launch(step(tmp_path))
    assert launch.env == LAUNCHER_ENV
    argv = launch.argv
    assert argv[0] == "/usr/bin/bwrap" and argv[-5:] == ["--", *step(tmp_path).command]
    binds = [argv[i + 1 : i + 3] for i, arg in enumerate(argv) if arg in ("--bind", "--ro-bind")]
    assert binds.index([str(tmp_path / "workspace"), WORKSPACE]) < binds.index(["/c/env", "/forgeflow-env"])
    assert binds.index([str(tmp_path / "out"), OUT]) < binds.index(["/c/env", "/forgeflow-env"])
    assert binds[-1] == [sys.prefix, sys.prefix]  # the interpreter last
    assert argv.index("--tmpfs") < argv.index(str(tmp_path / "workspace"))
    assert "s3cret" not in " ".join(argv) and argv[argv.index("NODE_ENV") + 1] == "test"


def test_unsandboxed_launches_in_the_workspace_with_the_real_report_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORGEFLOW_TEST_SECRET", "s3cret")
    launch = Unsandboxed().launch(step(tmp_path))
    workspace, out = str(tmp_path / "workspace"), str(tmp_path / "out")
    assert launch.argv == ["env", "-C", workspace, "python", "-m", "pytest", f"--junitxml={out}/junit.xml"]
    step_env = {"FORGEFLOW_REPORT": f"{out}/r.json", "NODE_ENV": "test"}
    assert launch.env == {**LAUNCHER_ENV, **step_env, "PYTHONPATH": workspace}  # nothing of the worker's
    assert Unsandboxed().launch_failure(1, "bwrap: execvp x: No such file or directory") is None


async def test_an_allowed_unsandboxed_run_reports_it_first(tmp_path: Path) -> None:
    """The whole activity on a worker without bubblewrap whose operator opted in."""
    repo, sha = make_repo(tmp_path, {"tests/test_a.py": "def test_a():\n    pass\n"})
    settings = Settings.model_validate(
        {
            "FORGEFLOW_DATA_DIR": str(tmp_path / "data"),
            "FORGEFLOW_SANDBOX_BWRAP": str(tmp_path / "nowhere" / "bwrap"),
            "FORGEFLOW_ALLOW_UNSANDBOXED": True,
        }
    )
    report = await run(repo, sha, settings=settings)
    assert report.output_tail.startswith("UNSANDBOXED RUN (operator allowed)"), report.output_tail
    assert (report.status, report.passed) == ("passed", 1)
