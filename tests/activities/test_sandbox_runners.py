"""Other runners, the install step and its cache, and the registry-only network — all for real."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import socket
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from testkit.tools import git
from tests.activities.test_sandbox import make_repo, run

UNITTEST_SUITE = """
import unittest

class T(unittest.TestCase):
    def test_ok(self):
        pass

    def test_fail(self):
        self.assertEqual(1, 2, "one is not two")

    def test_err(self):
        raise RuntimeError("kaput")

    @unittest.skip("later")
    def test_skip(self):
        pass

    def test_sub(self):
        for i in range(3):
            with self.subTest(i=i):
                self.assertLess(i, 2)
"""


def unittest_summary(repo: Path) -> tuple[int, str]:
    """unittest's own closing lines for the same suite, run directly: (ran, outcome)."""
    done = subprocess.run(
        ["python", "-m", "unittest", "discover", "-s", ".", "-p", "test*.py"], cwd=repo, capture_output=True, text=True
    )
    ran = int(re.search(r"Ran (\d+) tests?", done.stderr).group(1))  # type: ignore[union-attr]
    return ran, done.stderr.strip().splitlines()[-1]


async def test_unittest_counts_match_unittest(tmp_path: Path) -> None:
    repo, sha = make_repo(tmp_path, {"tests/test_units.py": UNITTEST_SUITE, "tests/test_broken.py": "def (:\n"})
    (repo / "tests" / "__init__.py").write_text("")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "package")
    sha = git(repo, "rev-parse", "HEAD")
    report = await run(repo, sha)
    assert unittest_summary(repo) == (6, "FAILED (failures=2, errors=2, skipped=1)")
    assert report.runner == "unittest" and report.status == "failed"
    assert (report.total, report.failed, report.errors, report.skipped, report.passed) == (6, 2, 2, 1, 1)
    names = {f.name for f in report.failures}
    assert names == {
        "tests.test_units.T.test_fail",
        "tests.test_units.T.test_sub (i=2)",
        "tests.test_units.T.test_err",
        "tests/test_broken.py",
    }
    assert any("one is not two" in f.message for f in report.failures)


NODE_SUITE = """
const test = require('node:test');
const assert = require('node:assert');
test('adds', () => assert.strictEqual(1 + 1, 2));
test('fails', () => assert.strictEqual(1 + 1, 3));
test('skipped', { skip: 'not today' }, () => {});
test('todo', { todo: true }, () => { throw new Error('not yet'); });
test.describe('group', () => {
  test.it('inner ok', () => {});
  test.it('inner bad', () => { throw new Error('boom'); });
});
"""

node = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed on this machine")


def node_summary(repo: Path) -> dict[str, int]:
    """node's own counts (its TAP summary) for the same suite, run directly."""
    done = subprocess.run(["node", "--test", "--test-reporter=tap"], cwd=repo, capture_output=True, text=True)
    return {k: int(v) for k, v in re.findall(r"^# (tests|pass|fail|skipped|todo) (\d+)$", done.stdout, re.M)}


@node
async def test_npm_test_with_nodes_runner_counts_match_node(tmp_path: Path) -> None:
    files = {
        "package.json": '{"name": "demo", "scripts": {"test": "node --test"}}',
        "test/math.test.js": NODE_SUITE,
        "test/broken.test.js": "this is not javascript(\n",
    }
    repo, sha = make_repo(tmp_path, files)
    report = await run(repo, sha)
    own = node_summary(repo)
    assert own == {"tests": 7, "pass": 2, "fail": 3, "skipped": 1, "todo": 1}
    assert report.runner == "node" and report.command == ["npm", "test"] and report.status == "failed"
    assert (report.total, report.passed, report.failed) == (own["tests"], own["pass"], own["fail"])
    assert report.skipped == own["skipped"] + own["todo"]  # a todo is reported as skipped
    assert {f.name for f in report.failures} == {"fails", "group > inner bad", "test/broken.test.js"}


def make_wheel(into: Path, name: str, version: str, source: str) -> Path:
    """A minimal, valid pure-Python wheel, so pip can install it with no network."""
    into.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": source,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: forgeflow-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    wheel = into / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
        zf.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return wheel


def data_settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.model_validate({"FORGEFLOW_DATA_DIR": str(tmp_path / "data"), **env})


async def test_install_step_runs_once_per_lockfile_and_tests_use_it(tmp_path: Path) -> None:
    repo, _ = make_repo(tmp_path, {"requirements.txt": "tinydep==1.0\n", "tests/test_dep.py": (
        "import tinydep\n\n\ndef test_dep():\n    assert tinydep.VALUE == 1\n"
    )})  # fmt: skip
    make_wheel(repo / "wheels", "tinydep", "1.0", "VALUE = 1\n")
    make_wheel(repo / "wheels", "tinydep", "2.0", "VALUE = 2\n")
    (repo / ".forgeflow.yml").write_text(
        "test:\n  install: pip install --no-index --find-links wheels -r requirements.txt\n"
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "deps")
    sha = git(repo, "rev-parse", "HEAD")
    settings = data_settings(tmp_path)

    first = await run(repo, sha, settings=settings)
    assert first.status == "passed", first.output_tail
    assert first.install is not None and not first.install.cached and first.install.exit_code == 0
    assert first.install.command[:2] == ["pip", "install"] and not first.install.network
    assert "Successfully installed tinydep-1.0" in first.install.output_tail

    again = await run(repo, sha, settings=settings)
    assert again.status == "passed" and again.install is not None and again.install.cached

    (repo / "requirements.txt").write_text("tinydep==2.0\n")  # a new lock: a new install
    (repo / "tests" / "test_dep.py").write_text("import tinydep\n\n\ndef test_dep():\n    assert tinydep.VALUE == 2\n")
    git(repo, "commit", "-qam", "bump")
    bumped = await run(repo, git(repo, "rev-parse", "HEAD"), settings=settings)
    assert bumped.status == "passed" and bumped.install is not None and not bumped.install.cached
    assert len([p for p in settings.sandbox_cache_dir.iterdir() if p.is_dir()]) == 2


async def test_a_failed_install_is_an_error_and_is_not_cached(tmp_path: Path) -> None:
    repo, sha = make_repo(tmp_path, {"tests/test_a.py": "def test_a():\n    pass\n"})
    settings = data_settings(tmp_path)
    command = ["pip", "install", "--no-index", "no-such-package-xyz"]
    for _ in range(2):
        report = await run(repo, sha, settings=settings, install_command=command)
        assert report.status == "error" and report.total == 0
        assert report.install is not None and report.install.exit_code not in (0, None)
        assert not report.install.cached and "the install step failed" in report.output_tail
        assert "no-such-package-xyz" in report.install.output_tail


async def test_a_bad_forgeflow_yml_is_reported_not_crashed_on(tmp_path: Path) -> None:
    repo, sha = make_repo(tmp_path, {".forgeflow.yml": "test:\n  comand: pytest\n", "tests/test_a.py": ""})
    report = await run(repo, sha)
    assert report.status == "error"
    assert report.output_tail == ".forgeflow.yml: test.comand: Extra inputs are not permitted"


@pytest.fixture
def two_ports() -> Iterator[tuple[int, int]]:
    """A 'registry' that greets whoever connects, and a second port that must stay unreachable."""
    registry, other = socket.create_server(("127.0.0.1", 0)), socket.create_server(("127.0.0.1", 0))

    def greet() -> None:
        while True:
            try:
                conn, _ = registry.accept()
            except OSError:
                return
            conn.sendall(b"hello from the registry\n")
            conn.close()

    threading.Thread(target=greet, daemon=True).start()
    yield registry.getsockname()[1], other.getsockname()[1]
    registry.close()
    other.close()


NET_PROBE = """
import os, socket, sys

def through_proxy(port):
    proxy = os.environ.get("HTTPS_PROXY")
    if not proxy:
        return "no proxy"
    host, _, proxy_port = proxy.removeprefix("http://").partition(":")
    with socket.create_connection((host, int(proxy_port)), timeout=5) as s:
        s.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n".encode())
        data = b""
        while b"hello" not in data and len(data) < 4096:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.decode().splitlines()[0] + (" +greeting" if b"hello from the registry" in data else "")

def direct(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return "connected"
    except OSError as err:
        return f"refused: {err.__class__.__name__}"

registry, other = int(sys.argv[1]), int(sys.argv[2])
print("registry via proxy:", through_proxy(registry))
print("other via proxy:", through_proxy(other))
print("registry direct:", direct(registry))
"""


async def test_install_network_reaches_only_the_registries(tmp_path: Path, two_ports: tuple[int, int]) -> None:
    registry, other = two_ports
    repo, sha = make_repo(tmp_path, {"probe_net.py": NET_PROBE, "tests/test_a.py": "def test_a():\n    pass\n"})
    install = ["python", "probe_net.py", str(registry), str(other)]
    on = data_settings(tmp_path / "on", FORGEFLOW_SANDBOX_INSTALL_NETWORK="1")
    on.sandbox_registries = [f"127.0.0.1:{registry}"]
    report = await run(repo, sha, settings=on, install_command=install)
    assert report.install is not None and report.install.network, report.output_tail
    lines = report.install.output_tail.splitlines()
    assert "registry via proxy: HTTP/1.1 200 Connection established +greeting" in lines
    assert "other via proxy: HTTP/1.1 403 Forbidden" in lines
    assert any(line.startswith("registry direct: refused") for line in lines)  # no way around the proxy
    assert report.status == "passed"

    off = await run(repo, sha, settings=data_settings(tmp_path / "off"), install_command=install)
    assert off.install is not None and not off.install.network
    assert "registry via proxy: no proxy" in off.install.output_tail.splitlines()
    assert any(line.startswith("registry direct: refused") for line in off.install.output_tail.splitlines())
