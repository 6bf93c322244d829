"""MCP tool servers: how the operator configures one, and the tools and calls that cross the Temporal
boundary.

A server is configured on the worker (never by a repository): a stdio command it starts or a
streamable-HTTP URL it connects to, and the roles that see its tools. The model sees each tool as
`mcp__<server>__<tool>`, so its tools cannot collide with the built-in ones or another server's.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from contracts.agents import Role
from contracts.versioning import DURABLE, STRICT

PREFIX = "mcp__"
SEPARATOR = "__"
SERVER_NAME = r"^[a-z0-9_-]{1,32}$"  # and no "__" inside: that separates the server from the tool
# What the Messages API accepts as a tool name; a server's tool whose qualified name is not one is not offered.
TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
DEFAULT_TIMEOUT_SECONDS = 60


class McpServerConfig(BaseModel):
    """One MCP server, as the operator configures it (FORGEFLOW_MCP_SERVERS): exactly one of
    `command` (stdio) and `url` (streamable HTTP)."""

    model_config = STRICT

    name: str = Field(pattern=SERVER_NAME, description="Slug naming the server in its tools' names.")
    command: list[str] | None = Field(
        default=None, min_length=1, description="stdio: the argv that starts the server (no shell)."
    )
    url: str | None = Field(default=None, pattern=r"^https?://", description="Streamable HTTP: the endpoint.")
    env: dict[str, str] = Field(
        default_factory=dict,
        repr=False,  # may hold the server's credentials
        description="stdio only: variables the server gets beside a small allowlist (PATH, HOME, LANG, …); "
        "nothing else of the worker's environment reaches it.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict, repr=False, description="HTTP only: headers sent with every request (Authorization)."
    )
    roles: list[Role] = Field(min_length=1, description="The agent roles that see this server's tools.")
    tools: list[str] | None = Field(default=None, description="The tools offered, by the server's names; None: all.")
    timeout_seconds: int = Field(
        default=DEFAULT_TIMEOUT_SECONDS, ge=1, le=3600, description="One call, starting the server included."
    )

    @field_validator("name")
    @classmethod
    def _no_separator(cls, name: str) -> str:
        if SEPARATOR in name:
            raise ValueError(f"{SEPARATOR!r} separates a server's name from its tools' names: use '-' or one '_'")
        return name

    @field_validator("command")
    @classmethod
    def _program(cls, command: list[str] | None) -> list[str] | None:
        if command is not None and not command[0]:
            raise ValueError("the program (its first item) is empty")
        return command

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of `command` (stdio) and `url` (streamable HTTP)")
        if self.url is not None and self.env:
            raise ValueError("`env` is for stdio servers (`command`); an HTTP server has its own environment")
        if self.command is not None and self.headers:
            raise ValueError("`headers` is for HTTP servers (`url`)")
        return self

    def offers(self, role: str, tool: str) -> bool:
        """Whether `role` may call this server's `tool`."""
        return role in self.roles and (self.tools is None or tool in self.tools)


def qualified(server: str, tool: str) -> str:
    """The name the model sees: `mcp__<server>__<tool>`."""
    return f"{PREFIX}{server}{SEPARATOR}{tool}"


def parse_qualified(name: str) -> tuple[str, str] | None:
    """(server, tool) of an `mcp__<server>__<tool>` name; None for any other name."""
    if not name.startswith(PREFIX):
        return None
    server, sep, tool = name[len(PREFIX) :].partition(SEPARATOR)
    if not sep or not tool or SEPARATOR in server or not re.fullmatch(SERVER_NAME, server):
        return None
    return server, tool


class McpTool(BaseModel):
    """One MCP tool as a role's model is offered it."""

    model_config = DURABLE

    name: str = Field(description="`mcp__<server>__<tool>` (see `qualified`).")
    description: str = ""
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    timeout_seconds: int = Field(
        default=DEFAULT_TIMEOUT_SECONDS, description="Its server's timeout: schedule its call's activity above it."
    )


class McpToolsInput(BaseModel):
    model_config = DURABLE

    role: Role


class McpToolsResult(BaseModel):
    model_config = DURABLE

    tools: list[McpTool] = Field(default_factory=list)


class McpCallInput(BaseModel):
    """One call of an MCP tool by an agent: one activity."""

    model_config = DURABLE

    role: Role
    run_id: str
    tool_use_id: str
    name: str = Field(description="The qualified name the model called (`mcp__<server>__<tool>`).")
    input: dict[str, Any] = Field(default_factory=dict)


class McpCallResult(BaseModel):
    """What the tool answered, as text for the model (bounded); `is_error` when the tool failed or
    was not one the role may call."""

    model_config = DURABLE

    content: str
    is_error: bool = False


class ResearchTool(BaseModel):
    """FORGEFLOW_RESEARCH_MCP: the MCP tool the planner's `research` asks first (Perplexity's MCP server,
    say), with the built-in HTTP research as the fallback. Every string "{query}" in `arguments`
    becomes the question."""

    model_config = STRICT

    tool: str = Field(description="The tool as the model would name it, mcp__<server>__<tool>.")
    arguments: dict[str, Any] = Field(default_factory=lambda: {"query": "{query}"})

    @field_validator("tool")
    @classmethod
    def _qualified(cls, value: str) -> str:
        if parse_qualified(value) is None:
            raise ValueError(f"{value!r} is not an MCP tool name (mcp__<server>__<tool>)")
        return value
