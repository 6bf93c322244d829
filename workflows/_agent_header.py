"""Which agent an activity works for, sent with it as a header.

Agents run inside their IssueWorkflow, so an activity's workflow id no longer names its agent. While
`AgentLoop.run` works it sets CURRENT_AGENT; every activity (and local activity) scheduled from
there carries the agent's name in the AGENT_HEADER header, which the worker's telemetry reads
(telemetry/agents.py). Tasks an agent starts copy the context, so parallel reviewers keep theirs.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from temporalio import workflow
from temporalio.worker import (
    Interceptor,
    StartActivityInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

with workflow.unsafe.imports_passed_through():
    from contracts.api import AGENT_HEADER

CURRENT_AGENT: ContextVar[str | None] = ContextVar("forgeflow_current_agent", default=None)


class _Outbound(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        _tag(input)
        return super().start_activity(input)

    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        _tag(input)
        return super().start_local_activity(input)


def _tag(input: StartActivityInput | StartLocalActivityInput) -> None:
    agent = CURRENT_AGENT.get()
    if agent is not None:
        input.headers = {**input.headers, AGENT_HEADER: workflow.payload_converter().to_payload(agent)}


class _Inbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_Outbound(outbound))


class AgentHeaders(Interceptor):
    """The worker interceptor that puts the header on the activities of a workflow's agents."""

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        return _Inbound
