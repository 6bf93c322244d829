"""The install step against the real npm registry, through the registry-only proxy, then vitest's
own JUnit report. Needs the registry (this workplace reaches it); skipped where it can't be reached."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import pytest

from config.settings import Settings
from tests.activities.test_sandbox import make_repo, run


def reachable(host: str, port: int = 443) -> bool:
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError:
        return False
    return True


pytestmark = [
    pytest.mark.skipif(shutil.which("npm") is None, reason="Node.js and npm are not installed"),
    pytest.mark.skipif(not reachable("registry.npmjs.org"), reason="the npm registry can't be reached from here"),
]

VITEST_SUITE = """
import { describe, it, test, expect } from 'vitest';
test('adds', () => expect(1 + 1).toBe(2));
test('fails', () => expect(1 + 1).toBe(3));
test.skip('skipped', () => {});
test.todo('later');
describe('group', () => { it('inner ok', () => {}); it('inner bad', () => { throw new Error('boom'); }); });
"""
PACKAGE = '{"name": "demo", "private": true, "scripts": {"test": "vitest"}, "devDependencies": {"vitest": "^3.2.0"}}'


def vitest_summary(output: str) -> dict[str, int]:
    """vitest's own closing line: `Tests  2 failed | 2 passed | 1 skipped | 1 todo (6)`."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", output)
    line = next(line for line in plain.splitlines() if line.strip().startswith("Tests "))
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (failed|passed|skipped|todo)", line)}
    counts["total"] = int(re.search(r"\((\d+)\)", line).group(1))  # type: ignore[union-attr]
    return counts


async def test_npm_install_through_the_registry_proxy_then_vitest(tmp_path: Path) -> None:
    repo, sha = make_repo(tmp_path, {"package.json": PACKAGE, "test/math.test.js": VITEST_SUITE})
    settings = Settings.model_validate(
        {"FORGEFLOW_DATA_DIR": str(tmp_path / "data"), "FORGEFLOW_SANDBOX_INSTALL_NETWORK": "1"}
    )
    install = ["npm", "install", "--no-audit", "--no-fund"]
    report = await run(repo, sha, limit=120, settings=settings, install_command=install)
    assert report.install is not None and report.install.network and report.install.exit_code == 0, report.install
    assert report.runner == "vitest" and report.status == "failed", report.output_tail
    own = vitest_summary(report.output_tail)
    assert own == {"failed": 2, "passed": 2, "skipped": 1, "todo": 1, "total": 6}
    assert (report.total, report.passed, report.failed) == (own["total"], own["passed"], own["failed"])
    assert report.skipped == own["skipped"] + own["todo"]
    assert {f.name for f in report.failures} == {"test/math.test.js > fails", "test/math.test.js > group > inner bad"}

    again = await run(repo, sha, limit=120, settings=settings, install_command=install)
    assert again.install is not None and again.install.cached and again.total == 6  # node_modules from the cache


JEST_SUITE = """
test('adds', () => expect(1 + 1).toBe(2));
test('fails', () => expect(1 + 1).toBe(3));
test.skip('skipped', () => {});
test.todo('later');
describe('group', () => { it('inner ok', () => {}); it('inner bad', () => { throw new Error('boom'); }); });
"""


def jest_summary(output: str) -> dict[str, int]:
    """jest's own closing lines: `Tests: 2 failed, 1 skipped, 1 todo, 2 passed, 6 total` and suites."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", output)
    tests = next(line for line in plain.splitlines() if line.startswith("Tests:"))
    suites = next(line for line in plain.splitlines() if line.startswith("Test Suites:"))
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (failed|passed|skipped|todo|total)", tests)}
    counts["failed_suites"] = int(re.search(r"(\d+) failed", suites).group(1))  # type: ignore[union-attr]
    return counts


async def test_jest_counts_from_its_json_report(tmp_path: Path) -> None:
    package = '{"name": "demo", "private": true, "scripts": {"test": "jest"}, "devDependencies": {"jest": "^29.7.0"}}'
    files = {"package.json": package, "test/math.test.js": JEST_SUITE, "test/broken.test.js": "not javascript(\n"}
    repo, sha = make_repo(tmp_path, files)
    settings = Settings.model_validate(
        {"FORGEFLOW_DATA_DIR": str(tmp_path / "data"), "FORGEFLOW_SANDBOX_INSTALL_NETWORK": "1"}
    )
    install = ["npm", "install", "--no-audit", "--no-fund"]
    report = await run(repo, sha, limit=120, settings=settings, install_command=install)
    assert report.runner == "jest" and report.status == "failed", report.output_tail
    own = jest_summary(report.output_tail)
    assert own == {"failed": 2, "skipped": 1, "todo": 1, "passed": 2, "total": 6, "failed_suites": 2}
    assert (report.passed, report.failed, report.skipped) == (
        own["passed"],
        own["failed"],
        own["skipped"] + own["todo"],
    )
    assert (report.errors, report.total) == (1, own["total"] + 1)  # the file that failed to run, as an error
    names = {f.name: f for f in report.failures}
    assert set(names) == {"test/math.test.js > fails", "test/math.test.js > group > inner bad", "test/broken.test.js"}
    assert (
        names["test/broken.test.js"].kind == "error"
        and "Test suite failed to run" in names["test/broken.test.js"].message
    )
    assert names["test/math.test.js > group > inner bad"].message == "Error: boom"
