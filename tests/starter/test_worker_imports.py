"""A worker imports the large optional clients only when its settings use them (issue 14: memory).

githubkit (with PyJWT and cryptography) and cryptography's AES-GCM are most of a worker's memory
beyond Temporal's and anthropic's; a worker without GitHub settings or a codec key ring, such as the
demo's, the benchmark's or a sandbox worker, never needs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from config.settings import SECRET_VARIABLES
from payloads.codec import new_key

ROOT = Path(__file__).resolve().parents[2]
OPTIONAL = ("githubkit", "jwt", "cryptography")

# Builds a worker's clients and workers as `forgeflow worker` does (without connecting to Temporal),
# then names which of OPTIONAL it imported.
PROBE = f"""
import json, sys
from temporalio.client import Client
from config.settings import get_settings
from payloads.converter import data_converter
from starter.workers import github_host

settings = get_settings()
data_converter(settings)
github_host(settings)
print(json.dumps([m for m in {OPTIONAL!r} if m in sys.modules]))
"""


def imported_by_a_worker(tmp_path: Path, **settings: str) -> list[str]:
    prefixes = ("FORGEFLOW_", "GITHUB_")
    env = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES and not k.startswith(prefixes)}
    env.update({"FORGEFLOW_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT), **settings})
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    names: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return names


def test_a_worker_without_github_or_a_key_ring_imports_neither(tmp_path: Path) -> None:
    assert imported_by_a_worker(tmp_path) == []


def test_a_worker_with_github_and_a_key_ring_imports_both(tmp_path: Path) -> None:
    ring = json.dumps({"k1": new_key()})
    imported = imported_by_a_worker(tmp_path, GITHUB_TOKEN="ghp_" + "x" * 36, FORGEFLOW_CODEC_KEYS=ring)
    assert imported == list(OPTIONAL)
