"""Heartbeats on a timer while an activity works, so a worker that dies is noticed in seconds.

Temporal learns that a worker died only from silence: an activity scheduled with a heartbeat
timeout that stops heartbeating is failed after that timeout and retried on another worker (the
timeout runs from the attempt's start until the first heartbeat). A background task heartbeats
every HEARTBEAT_EVERY seconds whatever the activity is awaiting (an HTTP call, a git process, a
model's stream); the SDK forwards the first at once and then at most one per 0.8 x the heartbeat
timeout. An activity shorter than one tick never heartbeats at all: each heartbeat the server hears
is a write of the run's state, and a short model answer or code-host call needs none to be
watched. A tick of 3 s keeps the gaps the server sees under 8 s, inside the 10 s timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from temporalio import activity

HEARTBEAT_EVERY = 3.0  # seconds; well inside the heartbeat timeout the workflows set (10 s)

P = ParamSpec("P")
R = TypeVar("R")


async def heartbeating(work: Awaitable[R], every: float = HEARTBEAT_EVERY) -> R:
    """`work`'s result, heartbeating every `every` seconds until it is done. Outside an activity
    (a unit test calling the method directly), and in a local activity (which cannot heartbeat:
    the workflow task's timeout notices its worker's loss), it only awaits `work`.

    `work` runs in the calling task, so a cancellation (the workflow's, or the SDK's after a missed
    heartbeat) reaches it as before; the heartbeat task ends with it."""
    if not activity.in_activity() or activity.info().is_local:
        return await work
    beat = asyncio.create_task(_beat(every))  # copies the activity's context, which heartbeat() reads
    try:
        return await work
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat


def heartbeats(fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """An activity method that heartbeats while it runs (put it under `@activity.defn`)."""

    @functools.wraps(fn)  # keeps the signature and type hints the SDK reads for its argument types
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return await heartbeating(fn(*args, **kwargs))

    return run


async def _beat(every: float) -> None:
    while True:
        await asyncio.sleep(every)
        activity.heartbeat()
