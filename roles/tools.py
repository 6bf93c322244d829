"""Tool definitions in the Messages API's shape, shared by the roles. Data only."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

ToolDef = dict[str, Any]

SUBMIT = "submit"
RUN_TESTS = "run_tests"
RESEARCH = "research"
RUN_COMMAND = "run_command"
MAX_COMMAND_SECONDS = 600  # the longest timeout an agent may ask of one command

_PATH = {"type": "string", "description": "Path relative to the repository root."}
_TEXT = {"type": "string"}
_LINE = {"type": "integer"}


def _tool(
    name: str, description: str, *, required: dict[str, Any] | None = None, optional: dict[str, Any] | None = None
) -> ToolDef:
    """One definition: `required` and then `optional` are the input's properties, in that order."""
    schema: dict[str, Any] = {"type": "object", "properties": {**(required or {}), **(optional or {})}}
    if required:
        schema["required"] = list(required)
    return {"name": name, "description": description, "input_schema": schema}


DEFINITIONS: dict[str, ToolDef] = {
    tool["name"]: tool
    for tool in (
        _tool(
            "list_files",
            "List the repository's files, optionally filtered by a glob such as 'src/**/*.py'.",
            optional={"glob": _TEXT},
        ),
        _tool(
            "read_file",
            "Read a file, optionally only lines start_line..end_line (1-based, inclusive).",
            required={"path": _PATH},
            optional={"start_line": _LINE, "end_line": _LINE},
        ),
        _tool(
            "search",
            "Search file contents for a regular expression; returns path:line: text matches.",
            required={"pattern": _TEXT},
            optional={"glob": _TEXT},
        ),
        _tool(
            "write_file",
            "Create or overwrite a file with the given content.",
            required={"path": _PATH, "content": _TEXT},
        ),
        _tool(
            "str_replace",
            "Replace exactly one occurrence of old_str with new_str in a file.",
            required={"path": _PATH, "old_str": _TEXT, "new_str": _TEXT},
        ),
        _tool(
            "insert",
            "Insert text after line insert_line (0 inserts at the top of the file).",
            required={"path": _PATH, "insert_line": _LINE, "new_str": _TEXT},
        ),
        _tool("view_diff", "Show the unified diff of every change this run made so far."),
        _tool(
            RESEARCH,
            "Ask a web-research service a technical question (library APIs, known bugs); "
            "returns an answer with source links. May be unavailable: then plan without it.",
            required={"query": _TEXT},
        ),
        _tool(
            RUN_TESTS,
            "Run the repository's tests on the commit under work plus your edits, in a sandbox without network; "
            "returns the test runner's own counts and the failures. Give `tests` (test files or test ids in the "
            "runner's naming, e.g. tests/test_x.py::test_y for pytest) to run only those; without it, the whole suite.",
            optional={"tests": {"type": "array", "items": {"type": "string"}, "maxItems": 50}},
        ),
        _tool(
            RUN_COMMAND,
            "Run a shell command (bash -c) in /workspace: the repository at the commit under work plus your edits, "
            "in a sandbox without network, with the project's installed dependencies. Returns the exit code and the "
            "output (its head and tail when long). Files the command creates, changes or deletes in the workspace "
            "become part of your edits (new files .gitignore covers, and symbolic links, are not kept). Each call "
            "starts from your edits again: nothing else carries over (no background process, no /tmp).",
            required={"command": _TEXT},
            optional={"timeout_seconds": {"type": "integer", "minimum": 1, "maximum": MAX_COMMAND_SECONDS}},
        ),
    )
}


def submit_tool(result_model: type[BaseModel], description: str) -> ToolDef:
    """The tool an agent calls once, with its structured result, to finish."""
    return {"name": SUBMIT, "description": description, "input_schema": result_model.model_json_schema()}
