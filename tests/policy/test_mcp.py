"""MCP server settings, by table: what FORGEFLOW_MCP_SERVERS accepts and how it names what is wrong;
the tools' qualified names; the environment a stdio server starts with."""

from __future__ import annotations

import json
from typing import Any

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter

from contracts.mcp import McpCallInput, McpServerConfig, parse_qualified, qualified
from policy.mcp import parse_research_tool, parse_servers, research_arguments, server_environment

STDIO: dict[str, Any] = {"name": "dict", "command": ["dict-server", "--stdio"], "roles": ["coder"]}
HTTP: dict[str, Any] = {"name": "web", "url": "https://mcp.example.com/mcp", "roles": ["planner", "reviewer"]}


def test_a_list_of_servers_parses_with_defaults() -> None:
    servers = parse_servers(json.dumps([STDIO, {**HTTP, "tools": ["search"], "timeout_seconds": 5}]))
    dict_server, web = servers
    assert (dict_server.command, dict_server.url, dict_server.env, dict_server.tools) == (
        ["dict-server", "--stdio"],
        None,
        {},
        None,
    )
    assert dict_server.timeout_seconds == 60
    assert (web.url, web.roles, web.tools, web.timeout_seconds) == (HTTP["url"], ["planner", "reviewer"], ["search"], 5)
    assert (
        web.offers("reviewer", "search") and not web.offers("reviewer", "fetch") and not web.offers("coder", "search")
    )


@pytest.mark.parametrize("text", [None, "", "  ", "[]"])
def test_nothing_configured_is_no_servers(text: str | None) -> None:
    assert parse_servers(text) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{not json", "MCP servers: not JSON"),
        ({"name": "dict"}, "expected a JSON list of server objects, got dict"),
        (["dict"], "MCP server #0: expected an object, got str"),
        ([{"command": ["x"], "roles": ["coder"]}], "MCP server #0: name: Field required"),
        ([{**STDIO, "name": "Dict"}], "MCP server 'Dict': name: String should match pattern"),
        ([{**STDIO, "name": "a__b"}], "MCP server 'a__b': name: '__' separates"),
        ([{**STDIO, "name": "x" * 33}], "name: String should match pattern"),
        ([{**STDIO, "url": "https://x"}], "MCP server 'dict': give exactly one of `command` (stdio) and `url`"),
        ([{"name": "none", "roles": ["coder"]}], "MCP server 'none': give exactly one of `command`"),
        ([{**STDIO, "command": []}], "MCP server 'dict': command: List should have at least 1 item"),
        ([{**STDIO, "command": [""]}], "MCP server 'dict': command: the program (its first item) is empty"),
        ([{**HTTP, "url": "file:///etc/passwd"}], "MCP server 'web': url: String should match pattern"),
        ([{**HTTP, "env": {"TOKEN": "s3cret-value"}}], "MCP server 'web': `env` is for stdio servers"),
        ([{**STDIO, "headers": {"Authorization": "Bearer x"}}], "MCP server 'dict': `headers` is for HTTP servers"),
        ([{**STDIO, "roles": []}], "MCP server 'dict': roles: List should have at least 1 item"),
        ([{**STDIO, "roles": ["boss"]}], "MCP server 'dict': roles.0: Input should be 'planner', 'coder'"),
        ([{**STDIO, "timeout_seconds": 0}], "MCP server 'dict': timeout_seconds: Input should be greater than"),
        ([{**STDIO, "timout_seconds": 5}], "MCP server 'dict': timout_seconds: Extra inputs are not permitted"),
        ([STDIO, {**HTTP, "name": "dict"}], "MCP servers: names must be unique, ['dict'] used more than once"),
    ],
)
def test_a_bad_setting_names_the_server_and_the_field(value: Any, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_servers(value if isinstance(value, str) else json.dumps(value))
    assert message in str(caught.value)


def test_an_error_never_shows_a_value_of_env() -> None:
    with pytest.raises(ValueError) as caught:
        parse_servers(json.dumps([{**STDIO, "env": {"API_TOKEN": 12345678}}]))
    assert "env.API_TOKEN" in str(caught.value) and "12345678" not in str(caught.value)
    config = McpServerConfig.model_validate({**STDIO, "env": {"API_TOKEN": "s3cret-value"}})
    assert "s3cret-value" not in repr(config)


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("mcp__dict__lookup", ("dict", "lookup")),
        ("mcp__my-server__get__item", ("my-server", "get__item")),  # a tool's name may hold "__"
        ("mcp__a_b__x", ("a_b", "x")),
        ("mcp__dict__", None),
        ("mcp____lookup", None),
        ("mcp__Dict__lookup", None),
        ("mcp_dict__lookup", None),
        ("read_file", None),
        ("", None),
    ],
)
def test_qualified_names(name: str, parsed: tuple[str, str] | None) -> None:
    assert parse_qualified(name) == parsed
    if parsed:
        assert qualified(*parsed) == name


def test_a_stdio_server_inherits_only_the_allowlist_and_its_own_env() -> None:
    worker = {"PATH": "/usr/bin", "HOME": "/home/w", "LANG": "C.UTF-8", "ANTHROPIC_API_KEY": "sk-x", "AWS_REGION": "x"}
    config = McpServerConfig.model_validate({**STDIO, "env": {"DICT_TOKEN": "t", "LANG": "de_DE.UTF-8"}})
    assert server_environment(config, worker) == {
        "PATH": "/usr/bin",
        "HOME": "/home/w",
        "LANG": "de_DE.UTF-8",
        "DICT_TOKEN": "t",
    }


def test_a_call_from_a_newer_workflow_skips_the_fields_it_does_not_know() -> None:
    converter = pydantic_data_converter.payload_converter
    sent = {"role": "coder", "run_id": "r", "tool_use_id": "t", "name": "mcp__dict__lookup", "input": {}, "later": 1}
    [decoded] = converter.from_payloads(converter.to_payloads([sent]), [McpCallInput])
    assert decoded == McpCallInput(role="coder", run_id="r", tool_use_id="t", name="mcp__dict__lookup")


def test_the_research_tool_is_one_a_configured_server_offers_the_planner() -> None:
    servers = [McpServerConfig(name="pplx", command=["pplx-mcp"], roles=["planner"], tools=["perplexity_ask"])]
    text = '{"tool": "mcp__pplx__perplexity_ask", "arguments": {"messages": [{"role": "user", "content": "{query}"}]}}'
    found = parse_research_tool(text, servers)
    assert found is not None and found.tool == "mcp__pplx__perplexity_ask"
    assert research_arguments(found.arguments, "why?") == {"messages": [{"role": "user", "content": "why?"}]}
    assert parse_research_tool(None, servers) is None and parse_research_tool("  ", servers) is None
    default = parse_research_tool('{"tool": "mcp__pplx__perplexity_ask"}', servers)
    assert default is not None and research_arguments(default.arguments, "q") == {"query": "q"}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"tool": "perplexity_ask"}', "not an MCP tool name"),
        ('{"tool": "mcp__other__ask"}', "no MCP server 'other'"),
        ('{"tool": "mcp__pplx__perplexity_search"}', "does not offer it to the planner"),
        ('{"tool": "mcp__pplx__perplexity_ask", "extra": 1}', "extra"),
        ("not json", "research tool"),
    ],
)
def test_a_research_tool_no_server_can_serve_is_named(text: str, says: str) -> None:
    servers = [McpServerConfig(name="pplx", command=["pplx-mcp"], roles=["planner"], tools=["perplexity_ask"])]
    with pytest.raises(ValueError, match=says):
        parse_research_tool(text, servers)


def test_research_arguments_leave_everything_but_the_placeholder() -> None:
    arguments = {"q": "{query}", "n": 3, "tags": ["{query}", "x"], "note": "about {query}"}
    assert research_arguments(arguments, "Q") == {"q": "Q", "n": 3, "tags": ["Q", "x"], "note": "about {query}"}
