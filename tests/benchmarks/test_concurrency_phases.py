"""benchmarks/concurrency.read_phases: a run's start and end phases, from its workflows' histories."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from benchmarks.concurrency import Measured, read_phases

MODEL = "model_turn"


def event(event_id: int, kind: EventType.ValueType, at: float, activity: str = "", scheduled: int = 0) -> HistoryEvent:
    e = HistoryEvent(event_id=event_id, event_type=kind)
    e.event_time.FromNanoseconds(int(at * 1e9))
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        e.activity_task_scheduled_event_attributes.activity_type.name = activity
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
        e.activity_task_completed_event_attributes.scheduled_event_id = scheduled
    return e


STARTED, DONE = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
SCHEDULED, COMPLETED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED


def test_the_phases_count_model_calls_only_in_whichever_workflow_ran_them() -> None:
    run = [
        event(1, STARTED, 10.0),
        event(5, SCHEDULED, 10.2, "step"),  # not a model call: the phase goes on
        event(6, COMPLETED, 10.3, scheduled=5),
        event(9, DONE, 13.0),
    ]
    child = [  # the model calls in a child workflow, its event ids overlapping the run's
        event(1, STARTED, 10.4),
        event(5, SCHEDULED, 10.5, MODEL),
        event(6, COMPLETED, 11.5, scheduled=5),
        event(7, SCHEDULED, 11.6, MODEL),
        event(8, COMPLETED, 12.6, scheduled=7),
    ]
    into = Measured()
    read_phases([run, child], MODEL, into)
    assert [round(x, 3) for x in into.to_first_model] == [0.5]
    assert [round(x, 3) for x in into.after_last_model] == [0.4]


def test_a_run_without_model_calls_adds_nothing() -> None:
    into = Measured()
    read_phases([[event(1, STARTED, 1.0), event(2, DONE, 2.0)]], MODEL, into)
    assert into.to_first_model == [] and into.after_last_model == []
