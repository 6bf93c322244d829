from __future__ import annotations

import pytest

from policy.report_status import RunEnd, report_status

COUNTED = {"total": 4, "failed": 0, "errors": 0}


@pytest.mark.parametrize(
    ("end", "status"),
    [
        (RunEnd(exit_code=0, **COUNTED), "passed"),
        (RunEnd(exit_code=1, total=4, failed=1), "failed"),
        (RunEnd(exit_code=1, total=4, errors=1), "failed"),
        (RunEnd(exit_code=2, **COUNTED), "failed"),  # the runner said no, whatever the counts
        (RunEnd(exit_code=0, total=0), "error"),  # nothing ran is not a pass
        (RunEnd(exit_code=5, total=0), "error"),  # pytest: no tests collected
        (RunEnd(exit_code=1, report_found=False), "error"),
        (RunEnd(exit_code=None, stopped_for="wall_time"), "timed_out"),
        (RunEnd(exit_code=None, stopped_for="cpu_time", oom_kills=1), "timed_out"),
        (RunEnd(exit_code=137, oom_kills=1, report_found=False), "out_of_memory"),
        (RunEnd(exit_code=1, memory_error=True, total=4, failed=1), "out_of_memory"),
        (RunEnd(exit_code=1, process_limit_hits=3, total=4, failed=1), "too_many_processes"),
        (RunEnd(exit_code=153, output_limit_hit=True, report_found=False), "too_much_output"),
        (RunEnd(exit_code=1, output_limit_hit=True, oom_kills=1, report_found=False), "too_much_output"),
        # a suite that passed in spite of a limit a child process hit still passed
        (RunEnd(exit_code=0, oom_kills=1, process_limit_hits=2, **COUNTED), "passed"),
    ],
)
def test_status_names_the_limit_a_failed_run_hit(end: RunEnd, status: str) -> None:
    assert report_status(end) == status
