"""Run-level metrics, recorded through the workflow's metric meter (which the SDK does not record
on replay, so a replayed run is not counted twice)."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow


def _since(start: datetime) -> float:
    return (workflow.now() - start).total_seconds()


def run_finished(started: datetime, outcome: str, mode: str) -> None:
    workflow.metric_meter().create_histogram_float("forgeflow_run_duration", "Run duration", "s").record(
        _since(started), {"outcome": outcome, "mode": mode}
    )
    workflow.metric_meter().create_counter("forgeflow_runs", "Finished runs by outcome", "runs").add(
        1, {"outcome": outcome, "mode": mode}
    )


def agent_finished(started: datetime, agent: str, ok: bool) -> None:
    workflow.metric_meter().create_histogram_float("forgeflow_agent_duration", "Agent run time", "s").record(
        _since(started), {"agent": agent, "outcome": "ok" if ok else "error"}
    )


def retried(reason: str) -> None:
    workflow.metric_meter().create_counter("forgeflow_retries", "Coder rounds after the first", "rounds").add(
        1, {"reason": reason}
    )


def gate_answered(opened: datetime, gate: str, decision: str) -> None:
    workflow.metric_meter().create_histogram_float("forgeflow_gate_wait", "Time a gate waited for a human", "s").record(
        _since(opened), {"gate": gate, "decision": decision}
    )
