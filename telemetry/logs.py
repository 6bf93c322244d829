"""structlog set-up: JSON lines in workers, readable lines in the CLI, secrets taken out of both.

Every line written from a workflow or an activity carries the workflow id, run id, agent, activity
type and attempt. Workflow code logs through `workflow.logger`, which the SDK silences on replay,
so a replayed history adds no lines.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, MutableMapping
from functools import lru_cache
from typing import Any, TextIO

import structlog
from temporalio import activity, workflow

from contracts.agents import ROLE_NAMES
from policy.redact import redact, secret_values
from telemetry.agents import header_agent

EventDict = MutableMapping[str, Any]


def agent_of(workflow_id: str) -> str | None:
    """The agent an AgentWorkflow id names: `<run>.coder-2` → coder (None for the run itself)."""
    _, dot, child = workflow_id.rpartition(".")
    role = child.rpartition("-")[0]
    return role if dot and role in ROLE_NAMES else None


def agent_for(workflow_id: str) -> str | None:
    """The agent the running code works for: its workflow's header (agents inside their run), or the
    id of an AgentWorkflow child (runs recorded before)."""
    return header_agent() or agent_of(workflow_id)


def _context(workflow_id: str, run_id: str, **fields: Any) -> dict[str, Any]:
    return {"workflow_id": workflow_id, "run_id": run_id, "agent": agent_for(workflow_id), **fields}


def add_temporal_context(_: Any, __: str, event: EventDict) -> EventDict:
    """Identify the workflow/activity a line came from (structlog calls inside them, and the SDK's
    own `workflow.logger` / `activity.logger` records, which carry it in `extra`)."""
    wf, act = event.pop("temporal_workflow", None), event.pop("temporal_activity", None)
    if isinstance(act, dict):
        fields = _context(act["workflow_id"], act["workflow_run_id"], activity_type=act["activity_type"])
        fields["attempt"] = act["attempt"]
    elif isinstance(wf, dict):
        fields = _context(wf["workflow_id"], wf["run_id"], workflow_type=wf["workflow_type"])
    elif activity.in_activity():
        info = activity.info()
        fields = _context(
            info.workflow_id or "", info.workflow_run_id or "", activity_type=info.activity_type, attempt=info.attempt
        )
    elif workflow.in_workflow():
        info_wf = workflow.info()
        fields = _context(info_wf.workflow_id, info_wf.run_id, workflow_type=info_wf.workflow_type)
    else:
        return event
    for key, value in fields.items():
        if value is not None:
            event.setdefault(key, value)
    return event


# A short field's value is redacted once and remembered: ids, names and outcomes recur on every line,
# and six regular expressions over each of a line's dozen fields were 85% of the cost of a line (issue 14).
SHORT = 160
_REMEMBERED = 4096


@lru_cache(maxsize=_REMEMBERED)
def _redacted_short(value: str, secrets: tuple[str, ...]) -> str:
    return redact(value, secrets)


class Redactor:
    """A processor that takes known secret values and token-shaped strings out of every field."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = tuple(secrets)  # one hashable value: redact caches the escaped forms of it

    def __call__(self, _: Any, __: str, event: EventDict) -> EventDict:
        for key, value in event.items():
            event[key] = self._clean(value)
        return event

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return _redacted_short(value, self.secrets) if len(value) <= SHORT else redact(value, self.secrets)
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value


def configure_logging(
    *,
    json: bool,
    level: int = logging.INFO,
    secrets: Iterable[str] | None = None,
    stream: TextIO | None = None,
) -> None:
    """`secrets`: values to hide; by default those of the environment's secret-named variables."""
    out = stream or sys.stderr
    redactor = Redactor(secret_values(dict(os.environ)) if secrets is None else secrets)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    shared: list[structlog.typing.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
        add_temporal_context,
        structlog.processors.format_exc_info,
        redactor,
    ]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # The Temporal SDK logs through stdlib logging: the same processors render its records, with
    # the workflow/activity it attaches as `extra` turned into the fields above.
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The HTTP clients log every request at INFO ("HTTP Request: POST …"; anthropic's is httpx2).
    # forgeflow's model, tool and code-host calls log a line of their own with what matters (tokens,
    # cost, latency, outcome), so those are noise, and 2% of a busy worker's time (issue 14).
    for name in ("httpx", "httpx2"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
