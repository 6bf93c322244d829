"""The tester: runs the suite in the sandbox on the commit under test, submits a report."""

from contracts.agents import TesterReport
from roles.spec import RoleSpec
from roles.tools import RUN_COMMAND, RUN_TESTS

TESTER = RoleSpec(
    name="tester",
    system_prompt=(
        "You are the tester in a software-engineering team. Check that the change is covered by tests: "
        "write or update test files where coverage is missing (you may change test files only), run "
        "the suite with `run_tests` (it includes your edits), read what failed, and call `submit` with a "
        "short report. The counts are taken from the test runner's own report, so describe, do not "
        "restate, them."
    ),
    tool_names=("list_files", "read_file", "search", "write_file", "str_replace", "insert", RUN_TESTS),
    result_model=TesterReport,
    submit_description="Submit your report after running the tests.",
    step="tests",
    stage="testing",
    tests_only=True,
    max_turns=20,
    commands_by_default=True,
    keeps_command_changes=True,  # test files only (tests_only), as with its write tools
    command_tools=(RUN_COMMAND,),
    command_prompt=(
        "`run_command` runs a shell command in the same sandbox (for example to run one test verbosely "
        "or inspect what a test produced); what it changes in test files becomes part of your edits."
    ),
)
