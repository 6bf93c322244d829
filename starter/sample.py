"""The bundled demo: a small sample repository, its task, and the scripted conversations that play it
(one per scenario)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

DEMO_DIR = Path(__file__).parent / "demo"
SCRIPT = DEMO_DIR / "script.json"
SPEC = DEMO_DIR / "spec.md"


@dataclass(frozen=True)
class Scenario:
    """One recorded conversation on the sample and its task: what `forgeflow demo --scenario NAME` plays."""

    name: str
    script: Path
    story: str  # what happens, in one line for the terminal


SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "retry",
            SCRIPT,
            "the first change fails the tester's run; the coder fixes it with the failures as context (2 rounds)",
        ),
        Scenario(
            "self-check",
            DEMO_DIR / "self_check.json",
            "the coder runs the tests in the sandbox, reads the failure and fixes it before submitting (1 round)",
        ),
    )
}
DEFAULT_SCENARIO = "retry"  # the README's `forgeflow demo`


class UnknownScenarioError(ValueError):
    """A scenario name the demo does not have; the message names the ones it has."""


def scenario_named(name: str) -> Scenario:
    """The scenario called `name`."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise UnknownScenarioError(
            f"the demo has no scenario {name!r}; choose one of: {', '.join(SCENARIOS)}"
        ) from None


def create_sample_repo(dest: Path) -> Path:
    """Copy the sample into `dest` as a fresh git repository with one commit on `main`."""
    if dest.exists():
        raise FileExistsError(f"{dest} already exists")
    shutil.copytree(DEMO_DIR / "sample", dest)
    identity = ["-c", "user.name=forgeflow demo", "-c", "user.email=demo@forgeflow.local"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], [*identity, "commit", "-qm", "textkit: slugify"]):
        subprocess.run(["git", "-C", str(dest), *args], check=True, capture_output=True)
    return dest


def demo_input(
    repo: Path, *, require_plan_approval: bool = False, scenario: str = DEFAULT_SCENARIO
) -> dict[str, object]:
    """The IssueWorkflow input of the demo run, as `temporal workflow start --input` takes it: the sample's
    task, played by the named scenario's script."""
    return {
        "repo": str(repo.resolve()),
        "spec_content": SPEC.read_text(),
        "mode": "autonomous",
        "model_script": str(scenario_named(scenario).script),
        "require_plan_approval": require_plan_approval,
    }


def branch_log(repo: Path, branch: str) -> str:
    """The commits a run put on its branch, one line each."""
    done = subprocess.run(
        ["git", "-C", str(repo), "log", "--oneline", f"main..{branch}"], capture_output=True, text=True
    )
    return done.stdout
