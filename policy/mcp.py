"""MCP servers' settings: the operator's JSON list parsed once, the environment a stdio server
starts with, and the tool the planner's research asks first. Pure: no processes, no I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from contracts.mcp import McpServerConfig, ResearchTool, parse_qualified

# The worker's variables a stdio server inherits: enough to find programs, a home and a locale.
# Everything else (API keys, tokens, cloud credentials) stays with the worker; a server that needs a
# credential gets it by name in its own `env`.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")


def parse_servers(text: str | None) -> list[McpServerConfig]:
    """The servers a FORGEFLOW_MCP_SERVERS value configures: a JSON list of server objects (see
    McpServerConfig). None or blank: none. A ValueError names the server and field that are wrong."""
    if text is None or not text.strip():
        return []
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"MCP servers: not JSON ({err})") from None
    if not isinstance(raw, list):
        raise ValueError(f"MCP servers: expected a JSON list of server objects, got {type(raw).__name__}")
    servers: list[McpServerConfig] = []
    for index, item in enumerate(raw):
        name = item.get("name") if isinstance(item, dict) else None
        label = f"MCP server {name!r}" if isinstance(name, str) else f"MCP server #{index}"
        if not isinstance(item, dict):
            raise ValueError(f"{label}: expected an object, got {type(item).__name__}")
        try:
            servers.append(McpServerConfig.model_validate(item))
        except ValidationError as err:
            raise ValueError(f"{label}: {_problems(err)}") from None
    names = [server.name for server in servers]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"MCP servers: names must be unique, {duplicates} used more than once")
    return servers


def _problems(err: ValidationError) -> str:
    """Each problem as `field: message`; no input values (an `env` may hold a secret)."""
    parts = []
    for problem in err.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def server_environment(server: McpServerConfig, worker_env: Mapping[str, str]) -> dict[str, str]:
    """The whole environment of a stdio server: the allowlisted variables of the worker, then its own `env`."""
    inherited = {name: worker_env[name] for name in INHERITED_ENV if name in worker_env}
    return {**inherited, **server.env}


QUERY = "{query}"


def parse_research_tool(text: str | None, servers: Sequence[McpServerConfig]) -> ResearchTool | None:
    """The FORGEFLOW_RESEARCH_MCP value: None when unset; a ValueError naming what is wrong, including a
    tool of no configured server, or one its server does not offer the planner."""
    if text is None or not text.strip():
        return None
    try:
        found = ResearchTool.model_validate_json(text)
    except ValidationError as err:
        raise ValueError(f"research tool: {_problems(err)}") from None
    server_name, tool = parse_qualified(found.tool) or ("", "")
    server = next((s for s in servers if s.name == server_name), None)
    if server is None:
        raise ValueError(f"research tool {found.tool!r}: no MCP server {server_name!r} in FORGEFLOW_MCP_SERVERS")
    if not server.offers("planner", tool):
        raise ValueError(f"research tool {found.tool!r}: server {server_name!r} does not offer it to the planner")
    return found


def research_arguments(arguments: Any, query: str) -> Any:
    """`arguments` with every string "{query}" (at any depth) replaced by the question."""
    if isinstance(arguments, str):
        return query if arguments == QUERY else arguments
    if isinstance(arguments, list):
        return [research_arguments(item, query) for item in arguments]
    if isinstance(arguments, dict):
        return {key: research_arguments(value, query) for key, value in arguments.items()}
    return arguments
