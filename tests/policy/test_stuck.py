from __future__ import annotations

import pytest

from policy.stuck import call_signature, stuck_reason

A = call_signature("read_file", {"path": "a.py"})
A_REORDERED = call_signature("read_file", {"path": "a.py"})
B = call_signature("read_file", {"path": "b.py"})


@pytest.mark.parametrize(
    ("recent", "stuck"),
    [
        ([], False),
        ([A, A], False),
        ([A, A, A], True),
        ([B, A, A, A], True),
        ([A, A, B], False),
        ([A, B, A], False),
        ([A, A_REORDERED, A], True),
    ],
)
def test_stuck_reason(recent: list[str], stuck: bool) -> None:
    reason = stuck_reason(recent)
    assert (reason is not None) is stuck
    if stuck:
        assert reason is not None and "read_file" in reason


def test_signature_ignores_key_order() -> None:
    assert call_signature("t", {"a": 1, "b": 2}) == call_signature("t", {"b": 2, "a": 1})
