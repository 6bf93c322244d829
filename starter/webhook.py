"""`forgeflow webhook`: GitHub's deliveries at POST /webhook, verified, read, and handed to Temporal.

A delivery is answered within GitHub's 10 s: its signature (X-Hub-Signature-256, HMAC-SHA256 of the
raw body with GITHUB_WEBHOOK_SECRET, compared in constant time by githubkit) is checked, the event
is read (policy.github_events), and a GitHubEventWorkflow is started whose id is the delivery's id.
Nothing waits for the work itself. A delivery sent again (GitHub's redelivery, a retry) finds that
workflow, running or closed, and starts nothing new: Temporal's workflow-id policies are the
deduplication, not a table of our own.

This process holds the webhook secret and a Temporal client, never GitHub's or a model's credentials:
the workers do the work.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from githubkit.webhooks import verify
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from contracts.github_events import EVENT_WORKFLOW_TYPE, GitHubEvent
from contracts.run import IssueInput
from policy.github_events import Ignored, WebhookPayloadError, interpret

log = structlog.get_logger("forgeflow.webhook")
MAX_BODY = 25 * 1024 * 1024  # GitHub caps a delivery's payload at 25 MB
# GitHub's delivery ids are GUIDs; anything else is not GitHub's, and it names a workflow id.
DELIVERY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")


class WebhookConfigError(ValueError):
    """A webhook setting that would make every delivery fail; the message names it."""


def event_workflow_id(delivery_id: str) -> str:
    return f"github-delivery-{delivery_id}"


def checked_run_options(options: dict[str, Any], ui_url: str | None) -> dict[str, Any]:
    """The run options every started run gets, proven valid now (a typo fails the webhook's start, not a
    run later); `ui_url` fills in the UI link when the options do not set one."""
    options = {"ui_url": ui_url, **options} if ui_url else dict(options)
    reserved = sorted({"repo", "issue_number", "pr_number", "mode", "spec_content", "human_review"} & set(options))
    if reserved:
        raise WebhookConfigError(f"FORGEFLOW_RUN_OPTIONS cannot set {', '.join(reserved)}: each event decides them")
    try:
        IssueInput.model_validate({**options, "repo": "owner/name", "issue_number": 1})
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        raise WebhookConfigError(f"FORGEFLOW_RUN_OPTIONS is invalid: {problems}") from None
    return options


def create_app(
    client: Client | None,
    *,
    secret: str,
    task_queue: str,
    trigger_label: str = "forgeflow",
    run_options: dict[str, Any] | None = None,
    connect: Any = None,
) -> Starlette:
    """The ASGI app. `client` is the Temporal client; or `connect` (an async callable returning one) is
    called once at startup, so a server that is not up yet fails the start, not the first delivery."""
    if not secret:
        raise WebhookConfigError("GITHUB_WEBHOOK_SECRET is not set: forgeflow webhook verifies every delivery")
    options = dict(run_options or {})
    state: dict[str, Client] = {}
    if client is not None:
        state["client"] = client

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if "client" not in state:
            state["client"] = await connect()
        yield

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def webhook(request: Request) -> JSONResponse:
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            return _answer(413, error="the payload is larger than GitHub ever sends (25 MB)")
        body = await request.body()
        signature = request.headers.get("x-hub-signature-256", "")
        if not signature.startswith("sha256=") or not verify(secret, body, signature):
            log.warning("delivery refused: bad or missing signature", delivery=request.headers.get("x-github-delivery"))
            return _answer(401, error="the X-Hub-Signature-256 signature is missing or does not match")
        event, delivery = request.headers.get("x-github-event"), request.headers.get("x-github-delivery", "")
        if not event or not DELIVERY_ID.fullmatch(delivery):
            return _answer(400, error="X-GitHub-Event and a GUID in X-GitHub-Delivery are required")
        try:
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise ValueError("the payload is not a JSON object")
            read = interpret(event, payload, delivery_id=delivery, trigger_label=trigger_label, run_options=options)
        except (ValueError, WebhookPayloadError) as err:  # json's errors are ValueErrors too
            return _answer(400, error=str(err))
        if isinstance(read, Ignored):
            log.info("delivery ignored", delivery=delivery, gh_event=event, reason=read.reason)
            return _answer(200, ignored=read.reason)
        return await _start(state["client"], read, task_queue)

    return Starlette(
        routes=[Route("/webhook", webhook, methods=["POST"]), Route("/health", health, methods=["GET"])],
        lifespan=lifespan,
    )


async def _start(client: Client, event: GitHubEvent, task_queue: str) -> JSONResponse:
    workflow_id = event_workflow_id(event.delivery_id)
    try:
        await client.start_workflow(
            EVENT_WORKFLOW_TYPE,
            event,
            id=workflow_id,
            task_queue=task_queue,
            # Redelivered while its workflow runs: that workflow; after it closed: refused (below).
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=f"{event.event} by @{event.sender} on {event.repo}#{event.number}",
        )
    except WorkflowAlreadyStartedError:
        log.info("delivery already handled", delivery=event.delivery_id, workflow_id=workflow_id)
        return _answer(200, duplicate=workflow_id)
    log.info("delivery accepted", delivery=event.delivery_id, gh_event=event.event, workflow_id=workflow_id)
    return _answer(202, workflow_id=workflow_id)


def _answer(status: int, **fields: str) -> JSONResponse:
    return JSONResponse(fields, status_code=status)
