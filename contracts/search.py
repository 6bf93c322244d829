"""Search attributes that make runs filterable in the Temporal UI (registered on the embedded server)."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

REPO = SearchAttributeKey.for_keyword("ForgeflowRepo")
STAGE = SearchAttributeKey.for_keyword("ForgeflowStage")
MODE = SearchAttributeKey.for_keyword("ForgeflowMode")
OUTCOME = SearchAttributeKey.for_keyword("ForgeflowOutcome")
# The issue and pull request numbers a run belongs to ("#12"): a comment there finds the run.
THREADS = SearchAttributeKey.for_keyword_list("ForgeflowThreads")

ALL = (REPO, STAGE, MODE, OUTCOME, THREADS)


def thread(number: int) -> str:
    """How an issue or pull request number is kept in THREADS."""
    return f"#{number}"
