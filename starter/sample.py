"""The bundled demo: a small sample repository, its task, and the scripted conversation."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

DEMO_DIR = Path(__file__).parent / "demo"
SCRIPT = DEMO_DIR / "script.json"
SPEC = DEMO_DIR / "spec.md"


def create_sample_repo(dest: Path) -> Path:
    """Copy the sample into `dest` as a fresh git repository with one commit on `main`."""
    if dest.exists():
        raise FileExistsError(f"{dest} already exists")
    shutil.copytree(DEMO_DIR / "sample", dest)
    identity = ["-c", "user.name=forgeflow demo", "-c", "user.email=demo@forgeflow.local"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], [*identity, "commit", "-qm", "textkit: slugify"]):
        subprocess.run(["git", "-C", str(dest), *args], check=True, capture_output=True)
    return dest


def demo_input(repo: Path, *, require_plan_approval: bool = False) -> dict[str, object]:
    """The IssueWorkflow input of the demo run, as `temporal workflow start --input` takes it."""
    return {
        "repo": str(repo.resolve()),
        "spec_content": SPEC.read_text(),
        "mode": "autonomous",
        "model_script": str(SCRIPT),
        "require_plan_approval": require_plan_approval,
    }


def branch_log(repo: Path, branch: str) -> str:
    """The commits a run put on its branch, one line each."""
    done = subprocess.run(
        ["git", "-C", str(repo), "log", "--oneline", f"main..{branch}"], capture_output=True, text=True
    )
    return done.stdout
