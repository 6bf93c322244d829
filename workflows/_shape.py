"""A run's shape: which of the workflows' code paths its history was recorded with.

Every change to the commands a workflow sends is marked with `workflow.patched`, so that histories
recorded before the change replay as they ran. A marker costs each new run two history events (the
marker, and the SDK's upsert of TemporalChangeVersion) and a visibility write; before shapes, a run
recorded one marker per change it met (a GitHub run: up to five). Now the changes are counted in
levels: a run started by this code records one marker, its level's, which implies every change up to
it. A history recorded at an older level (or before levels: level 0, one marker per change) replays
the calls it made: at level 0 each change is asked of `workflow.patched` where it always was.

To change what a workflow sends: add a level (a new marker id at the end of LEVELS) and branch on
`shape.at_least(n)`. Never edit or reorder an existing entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import workflow

# Changes marked one by one, before levels. A run at level 1 or above has every one of them.
LOCAL_TOOLS = "workspace-tools-as-local-activities"  # a workspace tool is a local activity
AGENTS_IN_THE_RUN = "agents-in-the-run"  # agents run inside their IssueWorkflow, not as children
CHECKS = "report-stage-checks"  # a GitHub run reports its stage as a check run on its commits
TEST_SUMMARY = "publish-test-summary"  # a tester's round updates the pull request's test summary
FAILED_RUNS_FAIL = "failed-runs-fail-the-execution"  # a failed run fails its execution
BEFORE_LEVELS = (LOCAL_TOOLS, AGENTS_IN_THE_RUN, CHECKS, TEST_SUMMARY, FAILED_RUNS_FAIL)

# Each level's marker, oldest first (level n is LEVELS[n - 1]), and what it brought.
LEVELS = (
    # 1: the changes before levels; the code host's quick calls (fetch_task, post_comment, post_review,
    #    report_stage) are local activities; a run's first search attributes go in one upsert; a local
    #    activity's failure raises ActivityError as an activity's does (a failed tool is the model's to
    #    read, as the loop meant, instead of failing its agent).
    "run-shape-1",
    # 2: a turn whose tool calls only read the workspace has them run by its model-turn activity
    #    (ModelTurnInput.reads), not one local activity each.
    "run-shape-2",
    # 3: those reads' results go into the transcript the turn stores, not back into history: the
    #    workflow learns how many ran (ModelTurnResult.reads_in_transcript), and the next turn's
    #    input carries only what the loop itself adds (ReadScope.into_transcript).
    "run-shape-3",
)
LOCAL_HOST_CALLS = 1
LOCAL_CALL_FAILURES = 1
READS_IN_THE_TURN = 2
READS_IN_THE_TRANSCRIPT = 3


@dataclass(frozen=True)
class Shape:
    level: int

    @staticmethod
    def of_this_run() -> Shape:
        """The run's shape. Call it once, first thing in the run, before any other command: a new run
        records the newest level's marker; a history replays at the level it was recorded with."""
        for level in range(len(LEVELS), 0, -1):
            if workflow.patched(LEVELS[level - 1]):
                return Shape(level)
        return Shape(0)

    def at_least(self, level: int) -> bool:
        return self.level >= level

    def has(self, change: str) -> bool:
        """Whether the run takes the path of `change` (one of BEFORE_LEVELS): every run at level 1 or
        above does; an older one when its history has the change's own marker."""
        if change not in BEFORE_LEVELS:
            raise ValueError(f"{change!r} is not a change marked before levels")
        return self.level >= 1 or workflow.patched(change)
