"""Real git and the real Temporal binaries, as tests and benchmarks call them."""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path


def installed_binary(name: str) -> str:
    """The real executable a package installed (not a pyenv shim), or skip-proof failure."""
    beside_python = Path(sysconfig.get_path("scripts")) / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: pip install -e '.[dev]'")
    return found


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
