"""The sandbox boundary, attacked from inside (real git, real bubblewrap): what the repository commits
and what its tests or install step leave behind never lead the worker to a host file.

Each attack aims at a canary file on the host that the sandbox cannot see; if the worker followed a
planted link, the canary's text would show up in the report (the model reads reports).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from config.settings import Settings
from roles.briefs import report_text
from testkit.tools import git
from tests.activities.test_sandbox import make_repo, run
from tests.blobs import settings_blobs


def data_settings(tmp_path: Path) -> Settings:
    return Settings.model_validate({"FORGEFLOW_DATA_DIR": str(tmp_path / "data")})


def canary_file(tmp_path: Path, name: str = "canary.xml") -> tuple[Path, str]:
    """A host file outside the sandbox's view, shaped like a report so a followed link would parse."""
    token = f"CANARY-{uuid.uuid4().hex}"
    path = tmp_path / "host" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(
        f'<testsuite><testcase classname="{token}" name="leak"><failure message="{token}"/></testcase></testsuite>'
    )
    return path, token


AFTER_PYTEST = """
import os

OUT = os.path.dirname(os.environ["FORGEFLOW_JUNIT_XML"])


def pytest_unconfigure(config):  # runs after pytest wrote its JUnit and coverage reports
    {body}
"""


def after_pytest(body: str) -> str:
    return AFTER_PYTEST.replace("{body}", body)


async def test_reports_replaced_by_links_are_not_followed(tmp_path: Path) -> None:
    canary, token = canary_file(tmp_path)
    targets = [
        ("junit.xml", str(canary)),
        ("coverage.xml", "/proc/self/environ"),
        ("output.log", "/proc/self/environ"),
        ("test.log", str(canary)),
    ]
    conftest = after_pytest(
        f"for name, target in {targets!r}:\n"
        "        path = os.path.join(OUT, name)\n"
        "        if os.path.lexists(path):\n"
        "            os.remove(path)\n"
        "        os.symlink(target, path)"
    )
    repo, sha = make_repo(tmp_path, {"conftest.py": conftest, "tests/test_a.py": "def test_a():\n    print('hi')\n"})
    report = await run(repo, sha, settings=data_settings(tmp_path))
    dumped = report.model_dump_json()
    assert token not in dumped and "PATH=" not in dumped
    assert report.total == 0 and report.coverage_percent is None
    assert "the runner wrote no report to count from" in report.output_tail


async def test_a_report_that_is_a_fifo_does_not_hang_the_worker(tmp_path: Path) -> None:
    conftest = after_pytest("os.remove(os.path.join(OUT, 'junit.xml'))\n    os.mkfifo(os.path.join(OUT, 'junit.xml'))")
    repo, sha = make_repo(tmp_path, {"conftest.py": conftest, "tests/test_a.py": "def test_a():\n    pass\n"})
    report = await run(repo, sha, settings=data_settings(tmp_path))
    assert report.total == 0 and "wrote no report" in report.output_tail


DEEP = """
    depth = 200_000
    case = '<testcase classname="c" name="deep"><failure message="m"/></testcase>'
    with open(os.path.join(OUT, "junit.xml"), "w") as f:
        f.write("<testsuites>" + '<testsuite name="s">' * depth + case + "</testsuite>" * depth + "</testsuites>")
"""


async def test_a_deeply_nested_report_is_counted_not_crashed_on(tmp_path: Path) -> None:
    repo, sha = make_repo(tmp_path, {"conftest.py": after_pytest(DEEP), "tests/test_a.py": "def test_a():\n    pass\n"})
    report = await run(repo, sha, settings=data_settings(tmp_path))
    assert (report.status, report.total, report.failed) == ("failed", 1, 1)
    assert len(report.failures[0].name) <= 500  # 200,000 suite names do not make a 1 MB test id


MANY = """
    case = '<testcase classname="t" name="test_{n}"><failure message="boom {n}">{detail}</failure></testcase>'
    cases = "".join(case.format(n=n, detail="x" * 100) for n in range(40_000))
    with open(os.path.join(OUT, "junit.xml"), "w") as f:
        f.write("<testsuite>" + cases + "</testsuite>")
"""


async def test_forty_thousand_failures_are_counted_and_a_bounded_few_listed(tmp_path: Path) -> None:
    repo, sha = make_repo(tmp_path, {"conftest.py": after_pytest(MANY), "tests/test_a.py": "def test_a():\n    pass\n"})
    report = await run(repo, sha, settings=data_settings(tmp_path))
    assert (report.total, report.failed) == (40000, 40000), report.output_tail
    assert len(report.failures) == 100 and report.failures_omitted == 39900
    text = report_text(report)
    assert len(text) < 50_000 and "39970 more failures not shown" in text  # 30 shown


async def test_an_install_step_cannot_make_the_worker_write_a_host_file(tmp_path: Path) -> None:
    victim = tmp_path / "host" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("keep me\n")
    plant = (
        f"for n in output.log test.log install.log junit.xml; do ln -sf {victim} /forgeflow-out/$n; done; "
        f"ln -sf {victim} /workspace/junit.xml"
    )
    repo, sha = make_repo(tmp_path, {"tests/test_a.py": "def test_a():\n    pass\n"})
    report = await run(repo, sha, settings=data_settings(tmp_path), install_command=["sh", "-c", plant])
    assert report.status == "passed", report.output_tail
    assert victim.read_text() == "keep me\n"


async def test_node_modules_left_as_a_link_to_the_host_is_refused(tmp_path: Path) -> None:
    secrets = tmp_path / "host" / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "key.txt").write_text("host secret\n")
    repo, sha = make_repo(
        tmp_path, {"tests/test_a.py": "def test_a():\n    assert not open('node_modules/key.txt').read()\n"}
    )
    settings = data_settings(tmp_path)
    command = ["sh", "-c", f"ln -s {secrets} /workspace/node_modules"]
    report = await run(repo, sha, settings=settings, install_command=command)
    assert report.status == "error" and report.total == 0
    assert report.install is not None and "node_modules as something other than a folder" in report.install.output_tail
    assert not [p for p in settings.sandbox_cache_dir.iterdir() if p.is_dir()]  # nothing cached


async def test_links_out_of_the_dependency_cache_are_refused(tmp_path: Path) -> None:
    repo, sha = make_repo(tmp_path, {"tests/test_a.py": "def test_a():\n    pass\n"})
    settings = data_settings(tmp_path)
    plant = "ln -s /etc /forgeflow-env/etc-link; ln -s ../../.. /forgeflow-env/lib/up; ln -s lib /forgeflow-env/ok"
    report = await run(repo, sha, settings=settings, install_command=["sh", "-c", plant])
    assert report.status == "error" and report.install is not None
    tail = report.install.output_tail
    assert "links that lead out of the dependency cache" in tail
    assert "env/etc-link -> /etc" in tail and "env/lib/up -> ../../.." in tail and "env/ok" not in tail


# One repository's install planting code in another's tests: tests/e2e/test_attacks.py, through whole runs.


async def test_overlay_writes_never_go_through_a_committed_link(tmp_path: Path) -> None:
    host_dir = tmp_path / "host" / "dir"
    host_dir.mkdir(parents=True)
    victim = tmp_path / "host" / "victim.txt"
    victim.write_text("keep me\n")
    repo, _ = make_repo(tmp_path, {"tests/test_a.py": "def test_a():\n    pass\n"})
    os.symlink(host_dir, repo / "dirlink")
    os.symlink(victim, repo / "filelink")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "links")
    sha = git(repo, "rev-parse", "HEAD")
    settings = data_settings(tmp_path)
    blobs = settings_blobs(settings)
    key = blobs.put(b"written by the agent\n")

    through = await run(repo, sha, settings=settings, overlay={"dirlink/new.txt": key})
    assert through.status == "error" and "dirlink/new.txt" in through.output_tail
    assert list(host_dir.iterdir()) == []

    probe = "def test_it():\n    assert open('filelink').read() == 'written by the agent\\n'\n"
    onto = await run(
        repo, sha, settings=settings, overlay={"filelink": key, "tests/test_b.py": blobs.put(probe.encode())}
    )
    assert onto.status == "passed", onto.output_tail  # the link is replaced by the file, in the copy only
    assert victim.read_text() == "keep me\n"

    removed = await run(repo, sha, settings=settings, overlay={"filelink": None, "dirlink/x": None})
    assert removed.status == "error" and victim.read_text() == "keep me\n"


async def test_a_forgeflow_yml_that_is_a_link_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "host" / "settings.txt"
    secret.parent.mkdir()
    token = f"CANARY-{uuid.uuid4().hex}"
    secret.write_text(f"{token}: [\n")  # would be quoted back by a YAML error message
    repo, _ = make_repo(tmp_path, {"tests/test_a.py": "def test_a():\n    pass\n"})
    os.symlink(secret, repo / ".forgeflow.yml")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "config link")
    report = await run(repo, git(repo, "rev-parse", "HEAD"), settings=data_settings(tmp_path))
    assert report.status == "error" and token not in report.model_dump_json()
    assert ".forgeflow.yml must be a regular file" in report.output_tail
