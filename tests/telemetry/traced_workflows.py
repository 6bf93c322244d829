"""The smallest run with every kind of span a workflow makes: an activity, a signal, a child
workflow with an activity of its own, and a completion (workflow code: sandboxed, deterministic)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

_TIMEOUT = timedelta(seconds=30)


@activity.defn
async def touch(what: str) -> str:
    return what


@workflow.defn
class Leaf:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(touch, "leaf", start_to_close_timeout=_TIMEOUT)


@workflow.defn
class Parent:
    """Runs an activity, waits for `proceed` (a worker can be swapped meanwhile), runs a Leaf."""

    def __init__(self) -> None:
        self.go = False

    @workflow.signal
    def proceed(self) -> None:
        self.go = True

    @workflow.run
    async def run(self) -> str:
        await workflow.execute_activity(touch, "before", start_to_close_timeout=_TIMEOUT)
        await workflow.wait_condition(lambda: self.go)
        return await workflow.execute_child_workflow(Leaf.run, id=f"{workflow.info().workflow_id}.leaf")
