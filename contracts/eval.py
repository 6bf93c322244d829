"""An evaluation suite's task instances, in SWE-bench's format, and how one instance is graded."""

from __future__ import annotations

import json
import shlex
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.versioning import DURABLE

# How one listed test ended in a grading run; `missing`: the run did not report it at all (not
# collected, a typo in the suite, or a run that stopped early).
TestOutcome = Literal["passed", "xfailed", "failed", "error", "skipped", "missing"]
PASSING: frozenset[str] = frozenset({"passed", "xfailed"})  # SWE-bench counts an expected failure as passing


class EvalInstance(BaseModel):
    """One line of a suite (SWE-bench's fields). Fields this does not know are ignored: SWE-bench's
    datasets carry more (hints_text, created_at, version, …) than a run needs."""

    model_config = ConfigDict(extra="ignore")

    instance_id: str = Field(min_length=1, max_length=200)
    repo: str = Field(min_length=1, description="owner/name on GitHub, or a local repository's path.")
    base_commit: str = Field(pattern=r"^[0-9a-f]{7,64}$")
    problem_statement: str = Field(min_length=1)
    FAIL_TO_PASS: list[str] = Field(min_length=1, description="Tests the change must make pass.")
    PASS_TO_PASS: list[str] = Field(default_factory=list, description="Tests that must still pass.")
    test_patch: str | None = Field(default=None, description="Tests added for grading only; never shown to agents.")
    install_command: list[str] | None = None
    test_command: list[str] | None = None
    environment_setup_commit: str | None = None
    model_script: str | None = Field(
        default=None, description="forgeflow's own: a scripted replay that plays this instance's agents."
    )

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS", mode="before")
    @classmethod
    def _json_list(cls, value: Any) -> Any:
        """SWE-bench's datasets hold these lists as JSON text (`"[\\"tests/test_x.py::test_y\\"]"`)."""
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                raise ValueError("must be a list of test ids, or that list as JSON text") from None
        return value

    @field_validator("install_command", "test_command", mode="before")
    @classmethod
    def _argv(cls, value: Any) -> Any:
        return shlex.split(value) if isinstance(value, str) else value


class Grade(BaseModel):
    """One instance graded: each listed test's outcome on the final commit plus the test patch."""

    resolved: bool
    fail_to_pass: dict[str, TestOutcome]
    pass_to_pass: dict[str, TestOutcome]

    @property
    def fixed(self) -> int:
        return sum(outcome in PASSING for outcome in self.fail_to_pass.values())

    @property
    def broken(self) -> list[str]:
        """PASS_TO_PASS tests that no longer pass."""
        return [test for test, outcome in self.pass_to_pass.items() if outcome not in PASSING]


EVAL_WORKFLOW_TYPE = "EvalWorkflow"
DEFAULT_VARIANT = "default"
EVAL_GATE_SECONDS = 60  # an eval's run that stops at a human gate ends soon after: nobody is there


class EvalTask(BaseModel):
    """An instance as the eval workflow holds it: its hidden test patch by blob key, never its text."""

    model_config = DURABLE

    instance_id: str
    repo: str
    base_commit: str
    problem_statement: str
    fail_to_pass: list[str]
    pass_to_pass: list[str] = Field(default_factory=list)
    test_patch_key: str | None = None
    install_command: list[str] | None = None
    test_command: list[str] | None = None
    model_script: str | None = None


class LoadedSuite(BaseModel):
    model_config = DURABLE

    tasks: list[EvalTask]
    problems: list[str] = Field(default_factory=list, description="Lines that are not instances, by number.")


class EvalInput(BaseModel):
    """What `forgeflow eval` starts: the suite by blob key (its test patches are hidden from history)."""

    model_config = ConfigDict(extra="forbid")

    suite_key: str = Field(min_length=1)
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: dict[str, dict[str, Any]]({DEFAULT_VARIANT: {}}),
        min_length=1,
        description="Name → overrides of each run's start input (model, models, max_retries, budgets, …).",
    )
    concurrency: int = Field(default=4, ge=1, le=64, description="Instances running at once.")


class InstanceResult(BaseModel):
    """One instance under one variant: how its run ended, what it cost, its patch and its grade."""

    model_config = DURABLE

    instance_id: str
    variant: str
    outcome: str = Field(description="The run's outcome (approved, escalated, …), or `failed`.")
    resolved: bool = False
    grade: Grade | None = None
    error: str | None = Field(default=None, description="Why the instance has no grade, if it has none.")
    rounds: int = 0
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    wall_seconds: float = 0.0
    final_commit: str | None = None
    patch: str = Field(default="", description="The change as a unified diff against base_commit.")


class EvalResult(BaseModel):
    model_config = DURABLE

    results: list[InstanceResult]
    problems: list[str] = Field(default_factory=list)
    planned: int = Field(default=0, description="Instances x variants the eval runs (results: those done).")
