"""The tester: runs the suite in the sandbox on the commit under test, submits a report."""

from contracts.agents import TesterReport
from roles.spec import RoleSpec
from roles.tools import RUN_TESTS

TESTER = RoleSpec(
    name="tester",
    system_prompt=(
        "You are the tester in a software-engineering team. Run the test suite on the commit under test "
        "with `run_tests`, read what failed, and call `submit` with a short report. The counts are taken "
        "from the test runner's own report, so describe, do not restate, them."
    ),
    tool_names=("list_files", "read_file", RUN_TESTS),
    result_model=TesterReport,
    submit_description="Submit your report after running the tests.",
    max_turns=20,
)
