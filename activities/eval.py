"""The evaluation's own activity: a suite read from the object store, its hidden test patches put
there one by one, so the eval workflow's history holds each patch's key and never its text."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities._heartbeat import heartbeats
from activities.blobstore import BlobNotFoundError, BlobStore
from contracts.eval import EvalTask, LoadedSuite
from policy.eval_suite import parse_suite


class EvalActivities:
    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs

    @activity.defn(name="load_suite")
    @heartbeats
    async def load_suite(self, suite_key: str) -> LoadedSuite:
        """The suite's instances (test patches by key) and its bad lines, by number."""
        try:
            text = (await self._blobs.get_async(suite_key)).decode("utf-8", "replace")
        except BlobNotFoundError as err:  # retryable: another worker may share the store
            raise ApplicationError(str(err), type="BlobNotFound") from err
        suite = parse_suite(text)
        tasks = []
        for instance in suite.instances:
            patch = await self._blobs.put_async(instance.test_patch.encode()) if instance.test_patch else None
            tasks.append(
                EvalTask(
                    instance_id=instance.instance_id,
                    repo=instance.repo,
                    base_commit=instance.base_commit,
                    problem_statement=instance.problem_statement,
                    fail_to_pass=instance.FAIL_TO_PASS,
                    pass_to_pass=instance.PASS_TO_PASS,
                    test_patch_key=patch,
                    install_command=instance.install_command,
                    test_command=instance.test_command,
                    model_script=instance.model_script,
                )
            )
        return LoadedSuite(tasks=tasks, problems=[str(problem) for problem in suite.problems])
