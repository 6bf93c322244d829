"""The agent an activity works for, from the header its workflow sent with it (contracts.api's
AGENT_HEADER, set by workflows/_agent_header.py), for the activity's logs and metrics."""

from __future__ import annotations

import json
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from contracts.api import AGENT_HEADER

_AGENT: ContextVar[str | None] = ContextVar("forgeflow_activity_agent", default=None)


def header_agent() -> str | None:
    """The agent the running activity works for, if its workflow said so."""
    return _AGENT.get()


def _agent_in(payload: Payload) -> str | None:
    """The header's name: its JSON read directly (the converter's way costs 1.5% of a busy worker's
    main thread, issue 14), or through the converter when it is in another encoding."""
    if payload.metadata.get("encoding") == b"json/plain":
        value = json.loads(payload.data)
        return value if isinstance(value, str) else None
    return activity.payload_converter().from_payload(payload, str)


class _Inbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        payload = input.headers.get(AGENT_HEADER)
        agent = _agent_in(payload) if payload is not None else None
        if agent is not None:  # on the activity's span too (the tracing interceptor's, when tracing is on)
            trace.get_current_span().set_attribute("forgeflow.agent", agent)
        token = _AGENT.set(agent)
        try:
            return await super().execute_activity(input)
        finally:
            _AGENT.reset(token)


class AgentOfActivity(Interceptor):
    """The worker interceptor that reads the header into header_agent()."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next)
