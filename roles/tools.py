"""Tool definitions in the Messages API's shape, shared by the roles. Data only."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

ToolDef = dict[str, Any]

SUBMIT = "submit"
RUN_TESTS = "run_tests"
RESEARCH = "research"

_PATH = {"type": "string", "description": "Path relative to the repository root."}

DEFINITIONS: dict[str, ToolDef] = {
    "list_files": {
        "name": "list_files",
        "description": "List the repository's files, optionally filtered by a glob such as 'src/**/*.py'.",
        "input_schema": {"type": "object", "properties": {"glob": {"type": "string"}}},
    },
    "read_file": {
        "name": "read_file",
        "description": "Read a file, optionally only lines start_line..end_line (1-based, inclusive).",
        "input_schema": {
            "type": "object",
            "properties": {"path": _PATH, "start_line": {"type": "integer"}, "end_line": {"type": "integer"}},
            "required": ["path"],
        },
    },
    "search": {
        "name": "search",
        "description": "Search file contents for a regular expression; returns path:line: text matches.",
        "input_schema": {
            "type": "object",
            "properties": {"pattern": {"type": "string"}, "glob": {"type": "string"}},
            "required": ["pattern"],
        },
    },
    "write_file": {
        "name": "write_file",
        "description": "Create or overwrite a file with the given content.",
        "input_schema": {
            "type": "object",
            "properties": {"path": _PATH, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    },
    "str_replace": {
        "name": "str_replace",
        "description": "Replace exactly one occurrence of old_str with new_str in a file.",
        "input_schema": {
            "type": "object",
            "properties": {"path": _PATH, "old_str": {"type": "string"}, "new_str": {"type": "string"}},
            "required": ["path", "old_str", "new_str"],
        },
    },
    "insert": {
        "name": "insert",
        "description": "Insert text after line insert_line (0 inserts at the top of the file).",
        "input_schema": {
            "type": "object",
            "properties": {"path": _PATH, "insert_line": {"type": "integer"}, "new_str": {"type": "string"}},
            "required": ["path", "insert_line", "new_str"],
        },
    },
    "view_diff": {
        "name": "view_diff",
        "description": "Show the unified diff of every change this run made so far.",
        "input_schema": {"type": "object", "properties": {}},
    },
    RESEARCH: {
        "name": RESEARCH,
        "description": "Ask a web-research service a technical question (library APIs, known bugs); "
        "returns an answer with source links. May be unavailable: then plan without it.",
        "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
    RUN_TESTS: {
        "name": RUN_TESTS,
        "description": "Run the repository's test suite on the commit under test, in a sandbox without network.",
        "input_schema": {"type": "object", "properties": {}},
    },
}


def submit_tool(result_model: type[BaseModel], description: str) -> ToolDef:
    """The tool an agent calls once, with its structured result, to finish."""
    return {"name": SUBMIT, "description": description, "input_schema": result_model.model_json_schema()}
