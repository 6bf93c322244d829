"""Every setting forgeflow reads from the environment, in one place.

Secrets (API keys, tokens) are read by activities on the worker from here and are never passed
as workflow or activity arguments, so they never enter workflow history.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.testing import SandboxLimits

TASK_QUEUE = "forgeflow"
SANDBOX_TASK_QUEUE = "forgeflow-sandbox"
# The variables that hold forgeflow's secrets, named one by one: a pattern such as *_KEY would also
# match what base images set for themselves (the official python image's GPG_KEY).
SECRET_VARIABLES = (
    "ANTHROPIC_API_KEY",
    "PERPLEXITY_API_KEY",
    "GITHUB_TOKEN",
    "GITHUB_APP_PRIVATE_KEY",
    "FORGEFLOW_CODEC_KEYS",
    "FORGEFLOW_CODEC_TOKEN",
    "GITHUB_WEBHOOK_SECRET",
    "FORGEFLOW_MCP_SERVERS",  # may hold a server's keys (its env, its headers)
)
# Besides every sandbox_* field: what a sandbox worker reads (see Settings.sandbox_worker_env).
SANDBOX_WORKER_FIELDS = (
    "temporal_address",
    "temporal_namespace",
    "data_dir",
    "storage_url",  # the overlays' contents are read from the object store
    "ui_port",
    "task_queue",
    "allow_unsandboxed_tests",
    "codec_keys_file",
    "payload_threshold_kb",
    "cache_max_mb",  # the bound on the install cache
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    temporal_address: str = Field(default="localhost:7233", alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field(default="default", alias="TEMPORAL_NAMESPACE")
    data_dir: Path = Field(default=Path.home() / ".forgeflow", alias="FORGEFLOW_DATA_DIR")
    cache_max_mb: int = Field(
        default=2048,
        gt=0,
        alias="FORGEFLOW_CACHE_MAX_MB",
        description="Bound on each local cache (GitHub commits, installed dependencies); the data directory "
        "is a cache only.",
    )
    storage_url: str | None = Field(
        default=None,
        alias="FORGEFLOW_STORAGE_URL",
        description="Object store for run content: a local directory (default: the data directory) or "
        "s3://bucket/prefix, configured by the standard AWS_* variables.",
    )
    ui_port: int = Field(default=8233, alias="FORGEFLOW_UI_PORT")
    task_queue: str = Field(default=TASK_QUEUE, alias="FORGEFLOW_TASK_QUEUE")
    script_ledger: Path | None = Field(
        default=None,
        alias="FORGEFLOW_SCRIPT_LEDGER",
        description="If set, the scripted provider appends one JSON line per model request (tests).",
    )
    script_delay_seconds: float = Field(
        default=0.0, alias="FORGEFLOW_SCRIPT_DELAY", description="Emulated latency of a scripted model turn."
    )
    anthropic_api_key: SecretStr | None = Field(default=None, alias="ANTHROPIC_API_KEY")
    anthropic_base_url: str | None = Field(default=None, alias="ANTHROPIC_BASE_URL")
    perplexity_api_key: SecretStr | None = Field(default=None, alias="PERPLEXITY_API_KEY")
    perplexity_base_url: str = Field(default="https://api.perplexity.ai", alias="PERPLEXITY_BASE_URL")
    research_model: str = Field(default="sonar", alias="FORGEFLOW_RESEARCH_MODEL")
    github_token: SecretStr | None = Field(default=None, alias="GITHUB_TOKEN")
    github_app_id: int | None = Field(default=None, alias="GITHUB_APP_ID")
    github_app_installation_id: int | None = Field(default=None, alias="GITHUB_APP_INSTALLATION_ID")
    github_app_private_key: SecretStr | None = Field(
        default=None, alias="GITHUB_APP_PRIVATE_KEY", description="The App's PEM key, or a path to it."
    )
    github_api_url: str = Field(default="https://api.github.com", alias="GITHUB_API_URL")
    github_webhook_secret: SecretStr | None = Field(
        default=None,
        alias="GITHUB_WEBHOOK_SECRET",
        description="The secret GitHub signs webhook deliveries with (forgeflow webhook refuses to start without).",
    )
    mcp_servers: SecretStr | None = Field(
        default=None,
        alias="FORGEFLOW_MCP_SERVERS",
        description="MCP tool servers for the agents (a JSON list: name, command or url, roles, tools, env, headers, "
        "timeout_seconds); the operator's, never a repository's.",
    )
    research_mcp: str | None = Field(
        default=None,
        alias="FORGEFLOW_RESEARCH_MCP",
        description='The MCP tool research asks first, HTTP its fallback: {"tool": "mcp__perplexity__perplexity_ask", '
        '"arguments": {"messages": [{"role": "user", "content": "{query}"}]}}.',
    )
    trigger_label: str = Field(
        default="forgeflow",
        min_length=1,
        alias="FORGEFLOW_TRIGGER_LABEL",
        description="The label that starts an autonomous run on the issue it is added to.",
    )
    run_options: dict[str, Any] = Field(
        default_factory=dict,
        alias="FORGEFLOW_RUN_OPTIONS",
        description='IssueWorkflow options (JSON) for runs started from GitHub, e.g. {"max_retries": 2}.',
    )
    ui_url: str | None = Field(
        default=None,
        alias="FORGEFLOW_UI_URL",
        description="The Temporal UI's address as people reach it: replies on GitHub link runs there.",
    )
    context_tokens: int = Field(
        default=150_000, alias="FORGEFLOW_CONTEXT_TOKENS", description="Compact a conversation past this size."
    )
    price_table: Path | None = Field(
        default=None, alias="FORGEFLOW_PRICES", description="JSON file overriding the model price table."
    )
    allow_unsandboxed_tests: bool = Field(default=False, alias="FORGEFLOW_ALLOW_UNSANDBOXED")
    codec_keys: SecretStr | None = Field(
        default=None,
        alias="FORGEFLOW_CODEC_KEYS",
        description='Encrypt workflow history: {"key-id": "<base64 AES-256 key>", ...}, active key first.',
    )
    codec_keys_file: Path | None = Field(
        default=None,
        alias="FORGEFLOW_CODEC_KEYS_FILE",
        description="A file holding the key ring (e.g. a docker secret), instead of FORGEFLOW_CODEC_KEYS.",
    )
    codec_server_token: SecretStr | None = Field(
        default=None, alias="FORGEFLOW_CODEC_TOKEN", description="Bearer token the codec server requires."
    )
    codec_cors_origins: list[str] = Field(
        default=["http://localhost:8233", "http://127.0.0.1:8233"],
        alias="FORGEFLOW_CODEC_CORS_ORIGINS",
        description="Web UI origins allowed to call the codec server.",
    )
    payload_threshold_kb: int = Field(
        default=256,
        ge=0,
        alias="FORGEFLOW_PAYLOAD_THRESHOLD_KB",
        description="Payloads larger than this go to external storage (0: keep everything in history).",
    )
    metrics_prometheus: str | None = Field(
        default=None,
        alias="FORGEFLOW_METRICS_PROMETHEUS",
        description="host:port for a Prometheus scrape endpoint of the worker's metrics.",
    )
    backlog_poll_seconds: float = Field(
        default=15.0,
        ge=0,
        alias="FORGEFLOW_BACKLOG_POLL_SECONDS",
        description="How often a worker exporting metrics reads its task queues' backlog from the server (0: never).",
    )
    sandbox_cgroup_root: Path = Field(
        default=Path("/sys/fs/cgroup"),
        alias="FORGEFLOW_SANDBOX_CGROUP_ROOT",
        description="Where cgroup hierarchies are mounted; each run gets a group under the worker's own.",
    )
    sandbox_weak_limits: bool = Field(
        default=False,
        alias="FORGEFLOW_SANDBOX_WEAK_LIMITS",
        description="Run tests as root without a cgroup (no process-count limit). Refused otherwise.",
    )
    sandbox_bwrap: str = Field(
        default="bwrap", alias="FORGEFLOW_SANDBOX_BWRAP", description="bubblewrap: a name on PATH or a path."
    )
    sandbox_memory_mb: int = Field(default=2048, gt=0, alias="FORGEFLOW_SANDBOX_MEMORY_MB")
    sandbox_max_processes: int = Field(default=256, gt=0, alias="FORGEFLOW_SANDBOX_MAX_PROCESSES")
    sandbox_output_mb: int = Field(
        default=64, gt=0, alias="FORGEFLOW_SANDBOX_OUTPUT_MB", description="Console output and any one file."
    )
    sandbox_cpu_factor: float = Field(
        default=2.0, gt=0, alias="FORGEFLOW_SANDBOX_CPU_FACTOR", description="CPU-time limit = factor x wall timeout."
    )
    sandbox_install_timeout: int = Field(default=900, gt=0, alias="FORGEFLOW_SANDBOX_INSTALL_TIMEOUT")
    sandbox_install_network: bool = Field(
        default=False,
        alias="FORGEFLOW_SANDBOX_INSTALL_NETWORK",
        description="Let the install step reach the package registries (only those, through a filtering proxy).",
    )
    sandbox_registries: list[str] = Field(
        default=["pypi.org:443", "files.pythonhosted.org:443", "registry.npmjs.org:443"],
        alias="FORGEFLOW_SANDBOX_REGISTRIES",
        description="host:port pairs the install step may connect to (JSON list).",
    )

    @field_validator("codec_keys_file", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if value == "" else value  # docker-compose passes an unset variable as ""

    @property
    def sandbox_task_queue(self) -> str:
        """Always the workflow queue plus `-sandbox` (contracts.api.sandbox_queue): workflows derive it too."""
        return f"{self.task_queue}-sandbox"

    def sandbox_limits(self, wall_seconds: int) -> SandboxLimits:
        return SandboxLimits(
            wall_seconds=wall_seconds,
            cpu_seconds=max(1, round(wall_seconds * self.sandbox_cpu_factor)),
            memory_bytes=self.sandbox_memory_mb * 1024**2,
            max_processes=self.sandbox_max_processes,
            output_bytes=self.sandbox_output_mb * 1024**2,
        )

    @property
    def sandbox_cache_dir(self) -> Path:
        """Installed dependencies, one directory per manifest/lockfile hash."""
        return self.data_dir / "sandbox-cache"

    @property
    def sandbox_trees_dir(self) -> Path:
        """Commits kept unpacked for agents' commands, one directory per tree id."""
        return self.data_dir / "sandbox-trees"

    @property
    def storage_location(self) -> str:
        """The object store's URL: FORGEFLOW_STORAGE_URL, else the data directory itself (so blobs
        stay where they always were, under blobs/)."""
        return self.storage_url or self.data_dir.resolve().as_uri()

    def secrets(self) -> list[SecretStr | None]:
        """Every secret setting (the values never to log or show a model)."""
        return [
            getattr(self, name)
            for name, field in type(self).model_fields.items()
            if field.annotation == SecretStr | None
        ]

    def sandbox_worker_env(self) -> dict[str, str]:
        """The settings a sandbox worker reads, as the environment variables that set them, so that
        values set in code (model_copy) reach a sandbox worker started as a child process. None of
        them is a secret; unset ones are left out."""
        fields = type(self).model_fields
        names = [*SANDBOX_WORKER_FIELDS, *(name for name in fields if name.startswith("sandbox_"))]
        values = {fields[name].alias: getattr(self, name) for name in names}
        return {alias: _env_value(value) for alias, value in values.items() if alias and value is not None}


def _env_value(value: Any) -> str:
    """A setting's value as pydantic-settings parses it back from the environment."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def secrets_in(env: Mapping[str, str]) -> list[str]:
    """The names of forgeflow's secret variables that `env` sets; empty counts as unset (docker-compose
    passes an unset variable as "")."""
    return [name for name in SECRET_VARIABLES if env.get(name, "").strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
