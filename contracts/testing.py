"""A test run's report, parsed from the runner's own machine-readable output."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from contracts.eval import TestOutcome
from contracts.versioning import DURABLE


class TestFailure(BaseModel):
    __test__ = False  # not a pytest test class

    name: str = Field(description="The runner's id for the test, e.g. tests/test_x.py::test_y.")
    kind: Literal["failure", "error"] = "failure"
    message: str = ""
    output: str = Field(default="", description="A bounded excerpt of the failure's details.")


TestStatus = Literal["passed", "failed", "error", "timed_out", "out_of_memory", "too_many_processes", "too_much_output"]
RunnerName = Literal["pytest", "unittest", "node", "vitest", "jest", "custom"]


class SandboxLimits(BaseModel):
    """What one sandboxed run may use (set by the sandbox worker's operator, see config.settings)."""

    model_config = DURABLE

    wall_seconds: int = Field(gt=0)
    cpu_seconds: int = Field(gt=0, description="CPU time of all the run's processes together.")
    memory_bytes: int = Field(gt=0)
    max_processes: int = Field(gt=0)
    output_bytes: int = Field(gt=0, description="Console output, and the size of any one file written.")


class InstallReport(BaseModel):
    """The dependency install step that ran before the tests (or was found in the cache)."""

    model_config = DURABLE

    command: list[str]
    cached: bool = Field(description="Installed by an earlier run with the same manifests and lockfiles.")
    exit_code: int | None = None
    network: bool = Field(default=False, description="Had access to the package registries.")
    duration_seconds: float = 0.0
    output_tail: str = ""


class TestReport(BaseModel):
    """What the sandboxed runner reported; routing decides on `passed`."""

    __test__ = False
    model_config = DURABLE

    commit_sha: str
    command: list[str]
    status: TestStatus
    runner: RunnerName | None = None
    total: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    failures: list[TestFailure] = Field(default_factory=list)
    outcomes: dict[str, TestOutcome] = Field(
        default_factory=dict, description="The outcome of each test the request watched (grading), by id."
    )
    failures_omitted: int = Field(
        default=0, description="Failed or errored tests beyond those listed in `failures` (the counts are exact)."
    )
    output_tail: str = Field(default="", description="Last part of the runner's console output, truncated.")
    coverage_percent: float | None = Field(default=None, description="Line coverage, when the runner reported it.")
    exit_code: int | None = None
    duration_seconds: float = 0.0
    install: InstallReport | None = None
    limits: SandboxLimits | None = None
    limits_enforced_by: Literal["cgroup", "rlimit", "none"] | None = Field(
        default=None, description="cgroup: kernel-enforced memory/process limits; rlimit: per-process only."
    )
    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "passed"


class RunTestsInput(BaseModel):
    """Run the repository's tests at one commit inside the sandbox (task queue forgeflow-sandbox)."""

    model_config = DURABLE

    commit_sha: str
    tree: str | None = Field(
        default=None,
        description="commit_sha's git tree id: the sandbox fetches the files from the object store by it "
        "(activities.trees). None only in runs recorded before the sandbox stopped reading repositories by path.",
    )
    repository: str = Field(
        default="", description="The repository, as the run names it: dependency installs are kept per repository."
    )
    overlay: dict[str, str | None] = Field(
        default_factory=dict, description="Files changed on top of the commit (blob keys; None: deleted)."
    )
    test_command: list[str] | None = Field(
        default=None, description="Overrides .forgeflow.yml and runner detection; must write JUnit XML."
    )
    install_command: list[str] | None = Field(
        default=None, description="Dependency install step, overriding .forgeflow.yml (e.g. pip install -e .[test])."
    )
    selection: list[str] = Field(
        default_factory=list, description="Only these tests (files or ids in the runner's naming); empty: all."
    )
    patch_key: str | None = Field(
        default=None,
        description="Blob key of a patch applied before the tests (an evaluation's hidden test_patch): by key, "
        "so its text is never in history.",
    )
    watch: list[str] = Field(
        default_factory=list, description="Tests whose outcome the report gives one by one (test ids), for grading."
    )
    timeout_seconds: int = 300
