"""report_stage on the GitHub host: the real githubkit client against the loopback GitHub.

A GitHub App gets one check run per run and commit, updated in place; a token, which GitHub does not
let create check runs, gets commit statuses. A report repeated (an activity retried after its worker
died) writes nothing new.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from githubkit import AppInstallationAuthStrategy, GitHub

from activities.codehost._commit_cache import CommitCache
from activities.codehost.github import GitHubHost
from contracts.codehost import CheckConclusion, CheckStatus, ReportStageInput
from testkit.loopback.github_api import GitHubLoopback
from testkit.tools import git
from tests.blobs import local_blobs

TOKEN = "ghp_loopback_checks"
APP_ID, INSTALLATION = 777, 31


@pytest.fixture
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def github(sample_repo: Path, app_key: rsa.RSAPrivateKey) -> Iterator[GitHubLoopback]:
    public = app_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with GitHubLoopback("acme", "calc", sample_repo, TOKEN, app=(APP_ID, INSTALLATION, public.decode())) as gh:
        yield gh


def host(github: GitHubLoopback, tmp_path: Path, auth: Any, *, as_app: bool) -> GitHubHost:
    client: GitHub[Any] = GitHub(auth, base_url=github.base_url, auto_retry=False, http_cache=False)
    return GitHubHost(client, CommitCache(tmp_path / "repos"), local_blobs(tmp_path / "blobs"), as_app=as_app)


def app_host(github: GitHubLoopback, tmp_path: Path, key: rsa.RSAPrivateKey) -> GitHubHost:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return host(github, tmp_path, AppInstallationAuthStrategy(APP_ID, pem.decode(), INSTALLATION), as_app=True)


def report(
    sha: str, status: CheckStatus, summary: str, conclusion: CheckConclusion | None = None, run: str = "run-1"
) -> ReportStageInput:
    return ReportStageInput(
        repo="acme/calc",
        run_id=run,
        head_sha=sha,
        status=status,
        conclusion=conclusion,
        summary=summary,
        details_url=f"http://ui.test/namespaces/default/workflows/{run}",
    )


async def test_an_app_updates_one_check_run_per_run_and_commit(
    github: GitHubLoopback, sample_repo: Path, tmp_path: Path, app_key: rsa.RSAPrivateKey
) -> None:
    gh_host = app_host(github, tmp_path, app_key)
    sha = git(sample_repo, "rev-parse", "HEAD")
    await gh_host.report_stage(report(sha, "queued", "waiting for the next step"))
    await gh_host.report_stage(report(sha, "in_progress", "testing: tester started"))
    await gh_host.report_stage(report(sha, "in_progress", "testing: tester started"))  # retried
    await gh_host.report_stage(report(sha, "in_progress", "other run", run="run-2"))  # another run, same commit
    await gh_host.report_stage(report(sha, "completed", "run finished: approved", "success"))
    ours, theirs = sorted(github.check_runs.values(), key=lambda c: str(c["external_id"]))
    assert (ours["external_id"], theirs["external_id"]) == ("run-1", "run-2")
    assert (ours["status"], ours["conclusion"], ours["name"]) == ("completed", "success", "forgeflow")
    assert ours["details_url"] == "http://ui.test/namespaces/default/workflows/run-1"
    states = [status for status, _, _ in github.check_run_states[ours["id"]]]
    assert states[0] == "queued" and states[-1] == "completed" and set(states[1:-1]) == {"in_progress"}
    creates = [p for m, p in github.requests if m == "POST" and p.endswith("/check-runs")]
    assert len(creates) == 2  # one per run: every later report updated its own


async def test_a_token_reports_commit_statuses_and_a_retry_adds_none(
    github: GitHubLoopback, sample_repo: Path, tmp_path: Path
) -> None:
    gh_host = host(github, tmp_path, TOKEN, as_app=False)
    sha = git(sample_repo, "rev-parse", "HEAD")
    await gh_host.report_stage(report(sha, "in_progress", "testing: tester started"))
    await gh_host.report_stage(report(sha, "in_progress", "testing: tester started"))  # retried
    await gh_host.report_stage(report(sha, "completed", "run finished: rejected", "cancelled"))
    assert [(s["state"], s["description"], s["context"]) for s in github.statuses[sha]] == [
        ("pending", "testing: tester started", "forgeflow"),
        ("error", "run finished: rejected", "forgeflow"),
    ]
    assert github.statuses[sha][-1]["target_url"] == "http://ui.test/namespaces/default/workflows/run-1"
    assert not github.check_runs  # a token cannot make check runs, and is not asked to
