"""The heartbeat helper, run in the SDK's own activity environment."""

from __future__ import annotations

import asyncio

import pytest
from temporalio import activity
from temporalio.testing import ActivityEnvironment

from activities._heartbeat import heartbeating, heartbeats


def _counting() -> tuple[ActivityEnvironment, list[tuple[object, ...]]]:
    env, beats = ActivityEnvironment(), []
    env.on_heartbeat = lambda *details: beats.append(details)
    return env, beats


async def test_heartbeats_while_the_work_runs_and_returns_its_result() -> None:
    env, beats = _counting()

    async def slow() -> str:
        await asyncio.sleep(0.35)
        return "done"

    async def act() -> str:
        return await heartbeating(slow(), every=0.1)

    assert await env.run(act) == "done"
    assert 2 <= len(beats) <= 4


async def test_a_short_call_never_heartbeats() -> None:
    env, beats = _counting()

    async def act() -> int:
        return await heartbeating(asyncio.sleep(0, result=7), every=0.1)

    assert await env.run(act) == 7
    assert beats == []


async def test_cancelling_the_activity_cancels_the_work_and_stops_heartbeating() -> None:
    env, beats = _counting()
    work_cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            work_cancelled.set()
            raise

    async def act() -> None:
        await heartbeating(forever(), every=0.05)

    task = asyncio.ensure_future(env.run(act))
    await asyncio.sleep(0.2)
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert work_cancelled.is_set()
    count = len(beats)
    await asyncio.sleep(0.15)
    assert len(beats) == count  # no heartbeat task left behind


async def test_the_decorator_keeps_the_activity_definition_and_its_types() -> None:
    class Acts:
        @activity.defn(name="double")
        @heartbeats
        async def double(self, n: int) -> int:
            """Docs survive."""
            return n * 2

    acts = Acts()
    defn = activity._Definition.must_from_callable(acts.double)
    assert defn.name == "double" and defn.is_async
    assert defn.arg_types == [int] and defn.ret_type is int
    assert Acts.double.__doc__ == "Docs survive."
    assert await ActivityEnvironment().run(acts.double, 4) == 8


async def test_outside_an_activity_it_only_awaits() -> None:
    assert await heartbeating(asyncio.sleep(0.01, result="x"), every=0.001) == "x"
