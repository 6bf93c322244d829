"""The demo's scenarios: each names a valid recorded conversation, the default is the README's, and a
wrong name is refused before anything starts. No server: the plays themselves are the e2e tests'."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from activities.model.scripted import Script, load_script
from starter.cli import app
from starter.sample import DEFAULT_SCENARIO, SCENARIOS, SCRIPT, UnknownScenarioError, demo_input, scenario_named


def _tool_use_ids(script: Script) -> list[str]:
    return [
        str(block["id"])
        for runs in script.agents.values()
        for run in runs
        for turn in run.turns
        for block in turn.content
        if block.get("type") == "tool_use"
    ]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_scenario_is_a_scripted_replay_with_unique_tool_ids(name: str) -> None:
    script = load_script(str(scenario_named(name).script))
    assert "scripted replay" in script.description.lower()
    assert set(script.agents) == {"planner", "coder", "tester", "reviewer"}
    ids = _tool_use_ids(script)
    assert len(ids) == len(set(ids))


def test_the_self_check_coder_checks_its_work_in_one_run() -> None:
    """One coder run: a command, a fix, the failing tests again, and only then the submission."""
    script = load_script(str(scenario_named("self-check").script))
    (run,) = script.agents["coder"]
    calls = [str(b["name"]) for turn in run.turns for b in turn.content if b.get("type") == "tool_use"]
    first_check, retest = calls.index("run_command"), calls.index("run_tests")
    assert first_check < calls.index("str_replace", first_check) < retest < calls.index("submit")
    assert len(script.agents["tester"]) == 1  # the tester runs once: the first commit passes


def test_demo_input_keeps_the_default_scenario_for_existing_callers(tmp_path: Path) -> None:
    assert DEFAULT_SCENARIO == "retry" and scenario_named(DEFAULT_SCENARIO).script == SCRIPT
    assert demo_input(tmp_path)["model_script"] == str(SCRIPT)
    assert demo_input(tmp_path, scenario="self-check")["model_script"] == str(SCENARIOS["self-check"].script)


def test_an_unknown_scenario_names_the_valid_ones() -> None:
    with pytest.raises(UnknownScenarioError, match="no scenario 'bogus'; choose one of: retry, self-check"):
        scenario_named("bogus")
    result = CliRunner().invoke(app, ["demo", "--scenario", "bogus"])
    assert result.exit_code == 2
    assert "no scenario 'bogus'; choose one of: retry, self-check" in " ".join(result.output.split())
