"""`forgeflow webhook`'s HTTP answers, on the real dev server: what a delivery starts, and what it never does.

No worker serves the queue here, so a started GitHubEventWorkflow stays as the webhook left it:
these tests see exactly what the webhook itself did. tests/e2e/test_github_webhooks.py runs the
whole path with workers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from contracts.github_events import EVENT_WORKFLOW_TYPE, GitHubEvent, StartRun
from starter.webhook import WebhookConfigError, checked_run_options, create_app, event_workflow_id

pytestmark = pytest.mark.e2e
SECRET = "webhook-secret-for-tests"
LABELED = {
    "action": "labeled",
    "issue": {"number": 7},
    "label": {"name": "forgeflow"},
    "repository": {"full_name": "acme/calc"},
    "sender": {"login": "octocat", "type": "User"},
}


def signed(payload: dict[str, Any], event: str = "issues", delivery: str | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={digest}",
        "Content-Type": "application/json",
    }
    return body, headers


@pytest.fixture
def queue() -> str:
    return f"webhook-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def http(dev_env: WorkflowEnvironment, queue: str) -> Iterator[TestClient]:
    app = create_app(dev_env.client, secret=SECRET, task_queue=queue, run_options={"ui_url": "http://ui.test"})
    with TestClient(app) as client:
        yield client


async def started(dev_env: WorkflowEnvironment, queue: str) -> list[str]:
    query = f"WorkflowType = '{EVENT_WORKFLOW_TYPE}' AND TaskQueue = '{queue}'"
    return [w.id async for w in dev_env.client.list_workflows(query)]


async def test_a_delivery_starts_one_event_workflow_named_by_its_delivery(
    dev_env: WorkflowEnvironment, http: TestClient, queue: str
) -> None:
    body, headers = signed(LABELED)
    answer = http.post("/webhook", content=body, headers=headers)
    assert answer.status_code == 202
    workflow_id = event_workflow_id(headers["X-GitHub-Delivery"])
    assert answer.json() == {"workflow_id": workflow_id}
    handle = dev_env.client.get_workflow_handle(workflow_id)
    history = await handle.fetch_history()
    first = history.events[0].workflow_execution_started_event_attributes
    (payload,) = first.input.payloads
    event = GitHubEvent.model_validate_json(payload.data)
    assert event.action == StartRun(mode="autonomous") and event.number == 7 and event.sender == "octocat"
    assert event.run_options == {"ui_url": "http://ui.test"}
    await handle.terminate()


async def test_the_same_delivery_sent_again_starts_nothing_new(
    dev_env: WorkflowEnvironment, http: TestClient, queue: str
) -> None:
    body, headers = signed(LABELED)
    assert http.post("/webhook", content=body, headers=headers).status_code == 202
    assert http.post("/webhook", content=body, headers=headers).status_code == 202  # still running: the same one
    workflow_id = event_workflow_id(headers["X-GitHub-Delivery"])
    await dev_env.client.get_workflow_handle(workflow_id).terminate()  # closed now
    again = http.post("/webhook", content=body, headers=headers)
    assert again.status_code == 200 and again.json() == {"duplicate": workflow_id}
    assert await started(dev_env, queue) == [workflow_id]
    described = await dev_env.client.get_workflow_handle(workflow_id).describe()
    assert described.status == WorkflowExecutionStatus.TERMINATED


@pytest.mark.parametrize(
    "signature",
    [None, "sha256=" + "0" * 64, "sha1=" + "0" * 40, "", "sha256=", "garbage"],
    ids=["missing", "wrong", "sha1-only", "empty", "no-digest", "garbage"],
)
async def test_a_bad_or_missing_signature_is_401_and_starts_nothing(
    dev_env: WorkflowEnvironment, http: TestClient, queue: str, signature: str | None
) -> None:
    body, headers = signed(LABELED)
    if signature is None:
        del headers["X-Hub-Signature-256"]
    else:
        headers["X-Hub-Signature-256"] = signature
    answer = http.post("/webhook", content=body, headers=headers)
    assert answer.status_code == 401 and "signature" in answer.json()["error"]
    assert await started(dev_env, queue) == []


async def test_a_body_changed_after_signing_is_401(dev_env: WorkflowEnvironment, http: TestClient, queue: str) -> None:
    body, headers = signed(LABELED)
    answer = http.post("/webhook", content=body.replace(b"octocat", b"mallory"), headers=headers)
    assert answer.status_code == 401
    assert await started(dev_env, queue) == []


@pytest.mark.parametrize(
    ("payload", "event", "status", "says"),
    [
        ({"zen": "Design for failure."}, "ping", 200, "ping"),
        ({**LABELED, "label": {"name": "bug"}}, "issues", 200, "not the trigger label"),
        ({"action": "created", "repository": {"full_name": "acme/calc"}}, "issue_comment", 400, "issue"),
    ],
    ids=["ping", "other-label", "malformed"],
)
async def test_deliveries_that_start_nothing_say_why(
    dev_env: WorkflowEnvironment,
    http: TestClient,
    queue: str,
    payload: dict[str, Any],
    event: str,
    status: int,
    says: str,
) -> None:
    body, headers = signed(payload, event)
    answer = http.post("/webhook", content=body, headers=headers)
    assert answer.status_code == status and says in json.dumps(answer.json())
    assert await started(dev_env, queue) == []


async def test_a_delivery_id_that_is_not_githubs_is_400(
    dev_env: WorkflowEnvironment, http: TestClient, queue: str
) -> None:
    body, headers = signed(LABELED, delivery="../../etc")
    assert http.post("/webhook", content=body, headers=headers).status_code == 400
    assert await started(dev_env, queue) == []


def test_health(http: TestClient) -> None:
    assert http.get("/health").json() == {"status": "ok"}


def test_settings_that_would_fail_every_delivery_stop_the_start() -> None:
    with pytest.raises(WebhookConfigError, match="GITHUB_WEBHOOK_SECRET"):
        create_app(None, secret="", task_queue="q")
    with pytest.raises(WebhookConfigError, match="max_retries"):
        checked_run_options({"max_retries": "many"}, None)
    with pytest.raises(WebhookConfigError, match="cannot set mode, repo"):
        checked_run_options({"repo": "a/b", "mode": "plan"}, None)
    assert checked_run_options({}, "http://ui") == {"ui_url": "http://ui"}
    assert checked_run_options({"ui_url": "http://mine"}, "http://ui") == {"ui_url": "http://mine"}
