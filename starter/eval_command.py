"""`forgeflow eval`: start an EvalWorkflow on a suite file, follow it, write its results.

The suite is checked here first, so its bad lines are named before anything starts (the workflow
skips them too); then it goes to the object store whole and the workflow gets its key: the
instances' hidden test patches never enter a history. Following an eval is only reading its
progress query; `--resume ID` follows one started earlier (the eval itself never stopped: it runs
on the workers, and a killed worker's part resumes on another).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from activities.blobstore import BlobStore
from config.settings import Settings
from contracts.eval import EVAL_WORKFLOW_TYPE, EvalInput, EvalResult
from policy.eval_suite import parse_suite
from starter import eval_results
from starter.render import console, err_console, ui_link
from starter.workers import object_store

PROGRESS_QUERY = "progress"
POLL_SECONDS = 2.0


class EvalInputError(ValueError):
    """A suite or option that cannot start an eval; the message names it."""


def variants(options: list[str]) -> dict[str, dict[str, Any]]:
    """`--variant name=JSON` options → name → overrides of each run's input; none: one default variant."""
    found: dict[str, dict[str, Any]] = {}
    for option in options:
        name, sep, text = option.partition("=")
        if not sep or not name.strip():
            raise EvalInputError(f'--variant {option!r}: write it as name=JSON, e.g. opus=\'{{"model": "…"}}\'')
        try:
            overrides = json.loads(text)
        except json.JSONDecodeError as err:
            raise EvalInputError(f"--variant {name}: not JSON ({err.msg})") from None
        if not isinstance(overrides, dict):
            raise EvalInputError(f"--variant {name}: the overrides must be a JSON object")
        if name in found:
            raise EvalInputError(f"--variant {name} is given twice")
        found[name.strip()] = overrides
    return found or {"default": {}}


async def start(client: Client, settings: Settings, suite: Path, concurrency: int, named: list[str]) -> str:
    """The eval's id, once started; EvalInputError for a suite with no instance or a bad option."""
    text = await asyncio.to_thread(suite.read_text, encoding="utf-8", errors="replace")
    parsed = parse_suite(text)
    for problem in parsed.problems:
        err_console.print(f"[yellow]{suite.name}: {problem} (skipped)[/yellow]", highlight=False, soft_wrap=True)
    if not parsed.instances:
        raise EvalInputError(f"{suite} has no instance to run")
    chosen = variants(named)  # a bad --variant is named before the suite is stored
    key = await BlobStore(object_store(settings)).put_async(text.encode())
    inp = EvalInput(suite_key=key, variants=chosen, concurrency=concurrency)
    eval_id = f"forgeflow-eval-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    await client.start_workflow(EVAL_WORKFLOW_TYPE, inp, id=eval_id, task_queue=settings.task_queue)
    runs = len(parsed.instances) * len(inp.variants)
    console.print(f"started [bold]{eval_id}[/bold]: {runs} run(s)\n{ui_link(settings, eval_id)}", soft_wrap=True)
    console.print(f"follow it again with: forgeflow eval --resume {eval_id}", highlight=False)
    return eval_id


async def follow(client: Client, eval_id: str) -> EvalResult:
    """Print progress as instances are graded; the eval's result when it ends."""
    handle = client.get_workflow_handle(eval_id, result_type=EvalResult)
    result_task = asyncio.ensure_future(handle.result())
    said = -1
    while not result_task.done():
        progress = await progress_of(handle)
        if progress is not None and progress.planned and len(progress.results) != said:  # planned: the suite is loaded
            said = len(progress.results)
            resolved = sum(r.resolved for r in progress.results)
            console.print(f"  graded {said} of {progress.planned} · {resolved} resolved", highlight=False)
        await asyncio.wait([result_task], timeout=POLL_SECONDS)
    result: EvalResult = result_task.result()
    return result


async def progress_of(handle: WorkflowHandle[Any, Any]) -> EvalResult | None:
    try:
        progress: EvalResult = await handle.query(PROGRESS_QUERY, result_type=EvalResult)
    except Exception:
        return None
    return progress


def report(result: EvalResult, eval_id: str, out: Path) -> None:
    written = eval_results.write(result, eval_id, out)
    for s in eval_results.summaries(result):
        per = "-" if s.cost_per_resolved_usd is None else f"${s.cost_per_resolved_usd:.4f}"
        console.print(
            f"[bold]{s.variant}[/bold]: resolved {s.resolved} of {s.instances} ({s.resolve_rate:.0%}) · "
            f"cost ${s.cost_usd:.4f} · per resolved {per} · median turns {s.median_turns:g}",
            highlight=False,
        )
    console.print("written: " + ", ".join(str(p) for p in written), highlight=False, soft_wrap=True)
