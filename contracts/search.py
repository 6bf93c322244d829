"""Search attributes that make runs filterable in the Temporal UI (registered on the embedded server)."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

REPO = SearchAttributeKey.for_keyword("ForgeflowRepo")
STAGE = SearchAttributeKey.for_keyword("ForgeflowStage")
MODE = SearchAttributeKey.for_keyword("ForgeflowMode")
OUTCOME = SearchAttributeKey.for_keyword("ForgeflowOutcome")

ALL = (REPO, STAGE, MODE, OUTCOME)
