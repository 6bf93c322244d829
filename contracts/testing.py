"""A test run's report, parsed from the runner's own machine-readable output."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TestFailure(BaseModel):
    __test__ = False  # not a pytest test class

    name: str = Field(description="The runner's id for the test, e.g. tests/test_x.py::test_y.")
    kind: Literal["failure", "error"] = "failure"
    message: str = ""
    output: str = Field(default="", description="A bounded excerpt of the failure's details.")


class TestReport(BaseModel):
    """What the sandboxed runner reported; routing decides on `passed`."""

    __test__ = False
    model_config = ConfigDict(extra="forbid")

    commit_sha: str
    command: list[str]
    status: Literal["passed", "failed", "error", "timed_out"]
    total: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    failures: list[TestFailure] = Field(default_factory=list)
    output_tail: str = Field(default="", description="Last part of the runner's console output, truncated.")
    coverage_percent: float | None = Field(default=None, description="Line coverage, when the runner reported it.")
    exit_code: int | None = None
    duration_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "passed"


class RunTestsInput(BaseModel):
    """Run the repository's tests at one commit inside the sandbox (task queue forgeflow-sandbox)."""

    model_config = ConfigDict(extra="forbid")

    repo_path: str = Field(description="Local git repository (or cache clone) holding commit_sha.")
    commit_sha: str
    overlay: dict[str, str | None] = Field(
        default_factory=dict, description="Files changed on top of the commit (blob keys; None: deleted)."
    )
    test_command: list[str] | None = Field(default=None, description="Default: pytest on the repository.")
    timeout_seconds: int = 300
