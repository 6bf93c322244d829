"""Naming a LangGraph graph as an agent: what is refused, and why, before anything runs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from activities.graphs import load_graph
from contracts.run import IssueInput


def test_the_example_graph_loads() -> None:
    graph = load_graph("graphs.security_review:graph")
    assert set(graph.get_graph().nodes) >= {"assess", "review"}


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("graphs.no_such_module:graph", "cannot be loaded"),
        ("graphs.security_review:nothing", "cannot be loaded"),
        ("json:dumps", "is not a compiled LangGraph graph"),
    ],
)
def test_what_is_not_a_graph_is_named(path: str, says: str) -> None:
    with pytest.raises(ApplicationError, match=says) as err:
        load_graph(path)
    assert err.value.non_retryable and err.value.type == "InvalidInput"


@pytest.mark.parametrize(
    "graphs",
    [{"designer": "graphs.security_review:graph"}, {"reviewer:Sec urity": "a:b"}, {"reviewer": "no colon"}],
)
def test_a_run_names_graphs_by_agent_and_import_path(graphs: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="graphs"):
        IssueInput.model_validate({"repo": "a/b", "issue_number": 1, "graphs": graphs})
    ok = IssueInput.model_validate({"repo": "a/b", "issue_number": 1, "graphs": {"reviewer:security": "m.n:graph"}})
    assert ok.graphs == {"reviewer:security": "m.n:graph"}
