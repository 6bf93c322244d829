"""A repository's own settings, `.forgeflow.yml` at its root. Pure.

The file is the repository's, so it is read only from the commit a run starts from (or the commit
under test) and it can only narrow what forgeflow does: it chooses the sandbox's install and test
commands (which run in the sandbox anyway), adds protected paths, can turn agents' sandboxed
commands off, and shapes the agents (guidance, model, turn cap, a subset of tools, extra reviewers:
contracts/team.py); it can never widen a role's tools, give network or reach a secret. Unknown keys
are an error that names them.
"""

from __future__ import annotations

import shlex
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contracts.agents import Role
from contracts.team import MAX_REVIEWERS, AgentSettings, ReviewerSettings, TeamSettings

CONFIG_FILE = ".forgeflow.yml"
MAX_PATTERNS = 200
MAX_BYTES = 64 * 1024  # a settings file, not a data set


class RepoConfigError(ValueError):
    """`.forgeflow.yml` is not valid; the message names the problem."""


def _argv(value: Any) -> Any:
    return shlex.split(value) if isinstance(value, str) else value


class TestSection(BaseModel):
    __test__ = False
    model_config = ConfigDict(extra="forbid")

    command: list[str] | None = Field(default=None, min_length=1, description="Test command (string or list).")
    install: list[str] | None = Field(default=None, min_length=1, description="Dependency install command.")

    _split = field_validator("command", "install", mode="before")(_argv)


class RepoConfig(BaseModel):
    """The repository's `.forgeflow.yml`."""

    model_config = ConfigDict(extra="forbid")

    test: TestSection = Field(default_factory=TestSection)
    commands: bool | list[Role] = Field(
        default=True,
        description="Which agents may run sandboxed commands: false for none, or a list of roles; it only narrows "
        "what the run allows.",
    )
    protected_paths: list[str] = Field(
        default_factory=list,
        max_length=MAX_PATTERNS,
        description="More path patterns whose changes wait for a maintainer's approval (`*` spans folders).",
    )

    agents: dict[Role, AgentSettings] = Field(
        default_factory=dict,
        description="Per built-in role: instructions (added to its prompt), model, max_turns, a subset of its tools.",
    )
    reviewers: list[ReviewerSettings] = Field(
        default_factory=list,
        max_length=MAX_REVIEWERS,
        description="Extra reviewers, run beside the main one; any of them can request changes.",
    )

    @field_validator("reviewers")
    @classmethod
    def _distinct_reviewers(cls, value: list[ReviewerSettings]) -> list[ReviewerSettings]:
        names = [r.name for r in value]
        if len(set(names)) != len(names):
            raise ValueError(f"reviewer names must differ: {names}")
        return value

    @property
    def team(self) -> TeamSettings:
        return TeamSettings(agents=dict(self.agents), reviewers=list(self.reviewers))

    @property
    def command_roles(self) -> list[str] | None:
        """The roles this file lets run commands; None: it sets no limit."""
        if self.commands is True:
            return None
        return [] if self.commands is False else list(self.commands)

    @field_validator("protected_paths")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not pattern.strip() or len(pattern) > 500 or any(ord(ch) < 32 for ch in pattern):
                raise ValueError(f"{pattern[:60]!r} is not a path pattern")
        return value


class _PlainLoader(yaml.SafeLoader):
    """YAML without aliases: `*name` can make a small file a huge tree (a "YAML bomb")."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]  # untyped in PyYAML's stubs
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed", mark)
        return super().compose_node(parent, index)


def load_config(text: str | None) -> RepoConfig:
    if text is None:
        return RepoConfig()
    if len(text.encode()) > MAX_BYTES:
        raise RepoConfigError(f"{CONFIG_FILE} is larger than {MAX_BYTES // 1024} KiB")
    try:
        data = yaml.load(text, Loader=_PlainLoader)  # a SafeLoader, stricter still
        return RepoConfig.model_validate(data or {})
    except yaml.YAMLError as err:
        raise RepoConfigError(f"{CONFIG_FILE} is not valid YAML: {err}") from None
    except RecursionError:
        raise RepoConfigError(f"{CONFIG_FILE} is nested too deeply") from None
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'top level'}: {e['msg']}" for e in err.errors())
        raise RepoConfigError(f"{CONFIG_FILE}: {problems}") from None
