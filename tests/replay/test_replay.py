"""Replay histories recorded from real runs: a change that breaks determinism fails here first.

Recorded by `FORGEFLOW_RECORD_HISTORY=tests/replay/histories pytest tests/e2e -k temporal_cli`
(the demo run on the dev server). e2e-demo-595a5e82 is at shape level 2 (workflows/_shape.py: one
marker, `run-shape-2`; a turn's reads inside its model turn), e2e-demo-8c40b70d at level 1
(`run-shape-1`; the code host's quick calls as local activities). Older recordings stay, at
level 0 (a marker per change): they replay the paths their `workflow.patched` markers do not name.
e2e-demo-8abf5940 runs its agents inside the IssueWorkflow (`agents-in-the-run`); the older ones run
each agent as an AgentWorkflow child (e2e-demo-781cb487: workspace tools as activities;
e2e-demo-05ce9680: as local activities).

GitHub-native runs, by `FORGEFLOW_RECORD_HISTORY=tests/replay/histories pytest tests/e2e -k labels_comments`:
GitHubEventWorkflow histories (`github-delivery-*`: a label that starts a run, a maintainer's
`/approve`, a review that starts a round) and the two GitHub runs they started (`forgeflow-calc-*`:
checks, ForgeflowThreads, and a run that continues a pull request; forgeflow-acme-calc-7 and -100
are the same two with their agents inside, and the `-shape-1` and `-shape-2` ones the same at those
shape levels).
github-delivery-99201b75 and -9b56d9c5 (a label, a review) start their runs under the thread's id
(`one-run-per-thread`); the older ones under the delivery's.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows._shape import LEVELS
from workflows.agent import AgentWorkflow
from workflows.github_event import GitHubEventWorkflow
from workflows.issue import IssueWorkflow

WORKFLOWS = [IssueWorkflow, AgentWorkflow, GitHubEventWorkflow]

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
LOADED = {p.stem: WorkflowHistory.from_json(p.stem, p.read_text()) for p in HISTORIES}


def test_histories_are_checked_in() -> None:
    names = {p.stem for p in HISTORIES}
    assert any("." not in n for n in names), "the demo run's IssueWorkflow history is missing"
    assert any(".coder-" in n for n in names) and any(".reviewer-" in n for n in names)
    assert any(n.startswith("github-delivery-") for n in names), "no GitHubEventWorkflow history"
    assert any(n.startswith("forgeflow-calc-") for n in names), "no GitHub run's history"
    inside = [
        n
        for n, h in LOADED.items()
        if n.startswith(("e2e-demo-", "forgeflow-"))
        and "." not in n
        and not any(e.HasField("start_child_workflow_execution_initiated_event_attributes") for e in h.events)
    ]
    assert {"e2e-demo-8abf5940", "forgeflow-acme-calc-7"} <= set(inside), "no run with its agents inside"
    for level, marker in enumerate(LEVELS, 1):  # every level's runs keep replaying
        at_level = [n for n, h in LOADED.items() if marker.encode() in b"".join(_patches(h))]
        assert any(n.startswith("e2e-demo-") for n in at_level), f"no demo run at shape level {level}"
        assert any(n.startswith("forgeflow-acme-calc-") for n in at_level), f"no GitHub run at shape level {level}"


def _patches(history: WorkflowHistory) -> list[bytes]:
    """The patch data of each patch marker in `history` (JSON naming the patch)."""
    return [
        e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
        and e.marker_recorded_event_attributes.marker_name == "core_patch"
    ]


@pytest.mark.parametrize("name", sorted(LOADED))
async def test_replay(name: str) -> None:
    history = LOADED[name]
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{name} no longer replays: {result.replay_failure}"


@pytest.mark.parametrize("name", sorted(n for n in LOADED if "." not in n))
async def test_replay_writes_no_log_lines(name: str, caplog: pytest.LogCaptureFixture) -> None:
    """The run's own history, replayed: the workflow's stage lines were written when it ran, not again."""
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    with caplog.at_level(logging.INFO, logger="temporalio.workflow"):
        await replayer.replay_workflow(LOADED[name])
    assert [r.getMessage() for r in caplog.records if r.name == "temporalio.workflow"] == []
