"""EvalWorkflow on the time-skipping server with the real sandbox worker: two instances of one suite
run as IssueWorkflow children from scripted replays and graded with a hidden test patch — one
resolved, one not — and the patch's text is in no history and no model request."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from activities.blobstore import BlobStore
from config.settings import Settings
from contracts.eval import EvalInput, EvalResult
from starter.workers import build_workers, object_store
from testkit.scripts import coder_run, planner_run, reviewer_run, tester_run, write_script
from testkit.tools import git

FIXED = "def add(a, b):\n    return a + b\n\n\ndef subtract(a, b):\n    return a - b\n"
WRONG = "def add(a, b):\n    return a + b\n\n\ndef subtract(a, b):\n    return b - a\n"
HIDDEN = "forgeflow-hidden-marker-7c1f"  # in the hidden test only: found anywhere else, the patch leaked
TEST_PATCH = f"""diff --git a/tests/test_sub.py b/tests/test_sub.py
new file mode 100644
--- /dev/null
+++ b/tests/test_sub.py
@@ -0,0 +1,6 @@
+from calc import subtract
+
+
+def test_subtract():
+    # {HIDDEN}
+    assert subtract(3, 1) == 2
"""


def instance(tmp_path: Path, repo: Path, name: str, content: str) -> dict[str, object]:
    agents = {"planner": [planner_run()], "coder": [coder_run(content)], "tester": [tester_run()],
              "reviewer": [reviewer_run()]}  # fmt: skip
    return {
        "instance_id": f"acme__calc-{name}",
        "repo": str(repo),
        "base_commit": git(repo, "rev-parse", "HEAD"),
        "problem_statement": "Add calc.subtract(a, b).",
        "FAIL_TO_PASS": json.dumps(["tests/test_sub.py::test_subtract"]),
        "PASS_TO_PASS": json.dumps(["tests/test_calc.py::test_add"]),
        "test_patch": TEST_PATCH,
        "model_script": write_script(tmp_path / f"{name}.json", agents),
        "created_at": "2026-11-29",  # SWE-bench carries fields a run does not use
    }


async def test_an_eval_grades_each_instance_truthfully_and_keeps_the_test_patch_hidden(
    time_skipping_env: WorkflowEnvironment, sample_repo: Path, tmp_path: Path
) -> None:
    queue = f"eval-{uuid.uuid4().hex[:8]}"
    settings = Settings.model_validate({"FORGEFLOW_DATA_DIR": str(tmp_path / "data"), "FORGEFLOW_TASK_QUEUE": queue})
    lines = [json.dumps(instance(tmp_path, sample_repo, n, c)) for n, c in (("1", FIXED), ("2", WRONG))]
    suite = "\n".join([lines[0], "{not an instance", lines[1]]) + "\n"
    blobs = BlobStore(object_store(settings))
    main, sandbox = build_workers(time_skipping_env.client, settings, [queue, settings.sandbox_task_queue])
    eval_id = f"eval-{queue}"
    async with main, sandbox:
        handle = await time_skipping_env.client.start_workflow(
            "EvalWorkflow",
            EvalInput(suite_key=await blobs.put_async(suite.encode()), concurrency=2),
            id=eval_id,
            task_queue=queue,
            result_type=EvalResult,
        )
        result = await handle.result()
        runs = [f"{eval_id}.default.acme__calc-{n}" for n in ("1", "2")]
        agents = [f"{run}.{role}-1" for run in runs for role in ("planner", "coder", "tester", "reviewer")]
        histories = [
            (await time_skipping_env.client.get_workflow_handle(workflow_id).fetch_history()).to_json()
            for workflow_id in [eval_id, *runs, *agents]
        ]

    assert result.problems == ["line 2: not JSON (Expecting property name enclosed in double quotes at column 2)"]
    fixed, wrong = result.results
    assert (fixed.instance_id, fixed.outcome, fixed.resolved) == ("acme__calc-1", "approved", True)
    assert fixed.grade is not None and fixed.grade.fail_to_pass == {"tests/test_sub.py::test_subtract": "passed"}
    assert (wrong.outcome, wrong.resolved) == ("approved", False)  # the run's own tests passed; the hidden one not
    assert wrong.grade is not None and wrong.grade.fail_to_pass == {"tests/test_sub.py::test_subtract": "failed"}
    assert wrong.grade.pass_to_pass == {"tests/test_calc.py::test_add": "passed"}
    assert fixed.turns > 0 and fixed.rounds == 1 and fixed.final_commit is not None

    # The patch is a unified diff against base_commit that git applies there.
    check = tmp_path / "check"
    git(tmp_path, "clone", "-q", str(sample_repo), str(check))
    (check / "model.patch").write_text(fixed.patch)
    git(check, "apply", "--check", "model.patch")  # raises if git would not apply it
    assert "+def subtract(a, b):" in fixed.patch

    # Hidden: not in the eval's history, its runs' or their agents' (5 workflows per instance), nor in any
    # model request (the transcripts in the store); only the suite and the patch's own blob hold it.
    assert len(histories) == 1 + 2 * 5
    assert not [h for h in histories if HIDDEN in h]
    holding = [p for p in (tmp_path / "data").rglob("*") if p.is_file() and HIDDEN.encode() in p.read_bytes()]
    assert len(holding) == 2, holding
