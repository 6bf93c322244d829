"""workflows/_shape.py without a workflow: what a level implies. Which level a history has is read by
workflow.patched inside a run: tests/replay replays each level's histories (level 0: one marker per
change), and test_github_plan checks that a new run records one marker, the newest level's."""

from __future__ import annotations

import pytest

from workflows._shape import BEFORE_LEVELS, LEVELS, LOCAL_HOST_CALLS, Shape


@pytest.mark.parametrize("change", BEFORE_LEVELS)
def test_a_run_at_a_level_has_every_change_marked_before_levels_without_asking_history(change: str) -> None:
    assert Shape(1).has(change) and Shape(len(LEVELS)).has(change)  # no workflow here: patched() would raise


@pytest.mark.parametrize(
    ("level", "local_host_calls"),
    [(0, False), (1, True), (len(LEVELS), True)],
)
def test_levels_are_cumulative(level: int, local_host_calls: bool) -> None:
    assert Shape(level).at_least(LOCAL_HOST_CALLS) is local_host_calls


def test_a_change_must_be_one_marked_before_levels() -> None:
    with pytest.raises(ValueError, match="not a change marked before levels"):
        Shape(1).has("some-new-change")


def test_marker_ids_are_unique_and_never_reused() -> None:
    ids = [*BEFORE_LEVELS, *LEVELS]
    assert len(ids) == len(set(ids))
