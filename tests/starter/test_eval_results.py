"""An eval's results as people and SWE-bench's harness read them, and its options: no server."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from contracts.eval import EvalResult, Grade, InstanceResult
from starter.eval_command import EvalInputError, variants
from starter.eval_results import chart, markdown, predictions, summaries, write


def result(instance: str, variant: str, resolved: bool, cost: float, turns: int) -> InstanceResult:
    graded = Grade(resolved=resolved, fail_to_pass={"t::a": "passed" if resolved else "failed"}, pass_to_pass={})
    return InstanceResult(
        instance_id=instance, variant=variant, outcome="approved", resolved=resolved, grade=graded,
        cost_usd=cost, turns=turns, patch=f"diff --git a/{instance} b/{instance}\n",
    )  # fmt: skip


RESULT = EvalResult(
    results=[
        result("i1", "fast", True, 0.30, 10),
        result("i2", "fast", False, 0.10, 20),
        result("i3", "fast", True, 0.20, 30),
        result("i1", "careful", False, 1.0, 40),
        InstanceResult(instance_id="i2", variant="careful", outcome="failed", error="the run failed: boom"),
    ],
    problems=["line 4: not JSON"],
    planned=6,
)


def test_each_variant_is_summed_up() -> None:
    fast, careful = summaries(RESULT)
    assert (fast.variant, fast.instances, fast.resolved, fast.graded) == ("fast", 3, 2, 3)
    assert fast.resolve_rate == pytest.approx(2 / 3) and fast.cost_usd == pytest.approx(0.6)
    assert fast.cost_per_resolved_usd == pytest.approx(0.3)
    assert (fast.median_turns, fast.median_cost_usd) == (20, pytest.approx(0.2))
    assert (careful.resolved, careful.cost_per_resolved_usd, careful.graded) == (0, None, 1)


def test_predictions_are_swe_benchs_fields_per_variant() -> None:
    assert predictions(RESULT, "fast")[0] == {
        "instance_id": "i1", "model_name_or_path": "forgeflow-fast", "model_patch": "diff --git a/i1 b/i1\n",
    }  # fmt: skip
    assert [p["instance_id"] for p in predictions(RESULT, "careful")] == ["i1", "i2"]


def test_the_report_and_the_files(tmp_path: Path) -> None:
    text = markdown(RESULT, "eval-1")
    assert "| fast | 2 of 3 | 67% | $0.6000 | $0.3000 | 20 | $0.2000 |" in text
    assert "| careful | i2 | no | failed | 0 | 0 | $0.0000 | 0 | the run failed: boom |" in text
    assert "| fast | i2 | no | approved | 0 | 20 | $0.1000 | 0 | 1 FAIL_TO_PASS not passing |" in text
    assert text.endswith("- line 4: not JSON\n")
    written = write(RESULT, "eval-1", tmp_path / "out")
    assert [p.name for p in written] == [
        "instances", "summary.json", "predictions.fast.jsonl", "predictions.careful.jsonl", "chart.svg", "report.md"
    ]  # fmt: skip
    assert len(list((tmp_path / "out" / "instances").iterdir())) == 5
    lines = (tmp_path / "out" / "predictions.fast.jsonl").read_text().splitlines()
    assert [json.loads(line)["instance_id"] for line in lines] == ["i1", "i2", "i3"]


def test_variants_are_named_json_objects() -> None:
    assert variants([]) == {"default": {}}
    assert variants(['opus={"model": "claude-opus-4"}', "none={}"]) == {"opus": {"model": "claude-opus-4"}, "none": {}}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["opus"], "write it as name=JSON"),
        (["opus={model"], "not JSON"),
        (["opus=[1]"], "must be a JSON object"),
        (["a={}", "a={}"], "given twice"),
    ],
)
def test_a_bad_variant_is_named(options: list[str], message: str) -> None:
    with pytest.raises(EvalInputError, match=message):
        variants(options)


def test_the_chart_is_a_standalone_svg_with_a_point_per_variant() -> None:
    svg = ElementTree.fromstring(chart(RESULT))
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    text = " ".join(svg.itertext())
    assert "fast" in text and "careful" in text and "cost against resolution" in text
    assert not [e for e in svg.iter() if e.tag.endswith("script") and e.get("{http://www.w3.org/1999/xlink}href")]
