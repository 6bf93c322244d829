"""An eval's results as files: one JSON per instance, a summary per variant, SWE-bench predictions
and a Markdown report (`forgeflow eval --out DIR`). The summaries are pure; `write` writes them.

Predictions follow SWE-bench's harness: one JSON object per line with `instance_id`,
`model_name_or_path` and `model_patch` (a unified diff against the instance's base_commit; empty
when the run made no change, which the harness grades as unresolved).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pygal  # type: ignore[import-untyped]  # pygal ships no type information
from pydantic import BaseModel

from contracts.eval import EvalResult, InstanceResult

MODEL_PREFIX = "forgeflow"


class VariantSummary(BaseModel):
    variant: str
    instances: int
    resolved: int
    resolve_rate: float
    cost_usd: float
    cost_per_resolved_usd: float | None  # None: nothing resolved
    median_turns: float
    median_cost_usd: float
    graded: int  # instances that got a grade (the rest: an error, named in their results)


def summaries(result: EvalResult) -> list[VariantSummary]:
    """One line per variant, in the order the results came."""
    variants = list(dict.fromkeys(r.variant for r in result.results))
    return [_summary(name, [r for r in result.results if r.variant == name]) for name in variants]


def _summary(variant: str, results: list[InstanceResult]) -> VariantSummary:
    resolved = sum(r.resolved for r in results)
    cost = sum(r.cost_usd for r in results)
    return VariantSummary(
        variant=variant,
        instances=len(results),
        resolved=resolved,
        resolve_rate=resolved / len(results) if results else 0.0,
        cost_usd=round(cost, 6),
        cost_per_resolved_usd=round(cost / resolved, 6) if resolved else None,
        median_turns=statistics.median(r.turns for r in results) if results else 0,
        median_cost_usd=round(statistics.median(r.cost_usd for r in results), 6) if results else 0.0,
        graded=sum(r.grade is not None for r in results),
    )


def predictions(result: EvalResult, variant: str) -> list[dict[str, str]]:
    return [
        {"instance_id": r.instance_id, "model_name_or_path": f"{MODEL_PREFIX}-{variant}", "model_patch": r.patch}
        for r in result.results
        if r.variant == variant
    ]


def markdown(result: EvalResult, eval_id: str) -> str:
    lines = [f"# forgeflow eval `{eval_id}`", "", "![cost against resolution](chart.svg)", "",
             "| variant | resolved | rate | cost | cost per resolved | median turns | median cost |",
             "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for s in summaries(result):
        per = "-" if s.cost_per_resolved_usd is None else f"${s.cost_per_resolved_usd:.4f}"
        lines.append(
            f"| {s.variant} | {s.resolved} of {s.instances} | {s.resolve_rate:.0%} | ${s.cost_usd:.4f} | {per} |"
            f" {s.median_turns:g} | ${s.median_cost_usd:.4f} |"
        )
    lines += ["", "| variant | instance | resolved | outcome | rounds | turns | cost | wall s | note |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in result.results:
        note = (r.error or "").splitlines()[0][:120] if r.error else ""
        if r.grade is not None and not r.resolved:
            note = note or _why_unresolved(r)
        lines.append(
            f"| {r.variant} | {r.instance_id} | {'yes' if r.resolved else 'no'} | {r.outcome} | {r.rounds} |"
            f" {r.turns} | ${r.cost_usd:.4f} | {r.wall_seconds:.0f} | {note} |"
        )
    if result.problems:
        lines += ["", "Suite lines that were not run:", *(f"- {p}" for p in result.problems)]
    return "\n".join(lines) + "\n"


def _why_unresolved(r: InstanceResult) -> str:
    assert r.grade is not None
    unfixed = [t for t, o in r.grade.fail_to_pass.items() if o not in ("passed", "xfailed")]
    parts = [f"{len(unfixed)} FAIL_TO_PASS not passing"] if unfixed else []
    if r.grade.broken:
        parts.append(f"{len(r.grade.broken)} PASS_TO_PASS broken")
    return "; ".join(parts)


def chart(result: EvalResult) -> bytes:
    """An SVG of cost against resolution: each variant one point, its mean cost per instance across and
    its resolve rate up (pygal, rendered without its online scripts: the file stands alone)."""
    plot = pygal.XY(
        stroke=False,
        js=[],
        dots_size=6,
        title="cost against resolution",
        x_title="cost per instance (USD)",
        y_title="resolved (%)",
        range=(0, 100),
        include_x_axis=True,
    )
    for s in summaries(result):
        plot.add(s.variant, [(round(s.cost_usd / s.instances, 6) if s.instances else 0.0, 100 * s.resolve_rate)])
    rendered: bytes = plot.render()
    return rendered


def write(result: EvalResult, eval_id: str, out: Path) -> list[Path]:
    """The files under `out` (made if needed): what was written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    instances = out / "instances"
    instances.mkdir(exist_ok=True)
    for r in result.results:
        path = instances / f"{r.variant}.{r.instance_id}.json".replace("/", "_")
        path.write_text(r.model_dump_json(indent=2) + "\n")
    written.append(instances)
    summary = out / "summary.json"
    summary.write_text(json.dumps([s.model_dump() for s in summaries(result)], indent=2) + "\n")
    written.append(summary)
    for variant in dict.fromkeys(r.variant for r in result.results):
        path = out / f"predictions.{variant}.jsonl"
        path.write_text("".join(json.dumps(p) + "\n" for p in predictions(result, variant)))
        written.append(path)
    drawn = out / "chart.svg"
    drawn.write_bytes(chart(result))
    written.append(drawn)
    report = out / "report.md"
    report.write_text(markdown(result, eval_id))
    written.append(report)
    return written
