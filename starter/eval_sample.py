"""The bundled evaluation suite (`forgeflow eval --sample`): offline, on a fresh copy of the demo's
sample repository, played by the demo's recorded self-check run (a scripted replay, no model call).

Two instances ask for the same change and differ only in their hidden tests: the replay's change
passes the first instance's (resolved) and not the second's, which also wants a max_length of 0
refused (not resolved). So the suite shows the grading both ways.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from starter.sample import SCENARIOS, SPEC, create_sample_repo

KEPT = ["tests/test_slugify.py::test_basic", "tests/test_slugify.py::test_unicode_is_transliterated"]
HIDDEN = "forgeflow-hidden-test"  # in the hidden tests only: tests look for it anywhere else
HIDDEN_CUT = f"""from textkit import slugify


def test_cut_at_a_word_boundary():
    # {HIDDEN}
    assert slugify("One two three", max_length=7) == "one-two"
"""
HIDDEN_ZERO = f"""import pytest

from textkit import slugify


def test_a_zero_length_is_refused():
    # {HIDDEN}
    with pytest.raises(ValueError):
        slugify("a b", max_length=0)
"""


def new_file_patch(path: str, text: str) -> str:
    """A unified diff that adds `path` with `text` (what SWE-bench's test_patch holds for a new test file)."""
    lines = text.splitlines()
    body = "".join(f"+{line}\n" for line in lines)
    header = f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n"
    return f"{header}@@ -0,0 +1,{len(lines)} @@\n{body}"


def write_sample_suite(folder: Path) -> Path:
    """A fresh copy of the sample repository under `folder` and the suite that runs on it; the suite's path."""
    repo = create_sample_repo(folder / "textkit")
    base = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    common = {
        "repo": str(repo),
        "base_commit": base.stdout.strip(),
        "problem_statement": SPEC.read_text(),
        "PASS_TO_PASS": KEPT,
        "model_script": str(SCENARIOS["self-check"].script),
    }
    instances = [
        {
            **common,
            "instance_id": "textkit__slugify-max-length",
            "FAIL_TO_PASS": ["tests/test_hidden_cut.py::test_cut_at_a_word_boundary"],
            "test_patch": new_file_patch("tests/test_hidden_cut.py", HIDDEN_CUT),
        },
        {
            **common,
            "instance_id": "textkit__slugify-max-length-zero",
            "FAIL_TO_PASS": ["tests/test_hidden_zero.py::test_a_zero_length_is_refused"],
            "test_patch": new_file_patch("tests/test_hidden_zero.py", HIDDEN_ZERO),
        },
    ]
    suite = folder / "suite.jsonl"
    suite.write_text("".join(json.dumps(instance) + "\n" for instance in instances))
    return suite
