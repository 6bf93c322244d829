"""How a run looks in the terminal: one line per change, a summary table at the end."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from config.settings import Settings
from contracts.run import OrchestrationState
from starter.server import ServerHandle

REPLAY_NOTE = "model: scripted replay (no API calls)"
console = Console()
err_console = Console(stderr=True)  # notices and errors: stdout stays parseable (`status --json`)


def server_line(server: ServerHandle) -> str:
    where = {
        "started": "started the embedded Temporal server",
        "embedded": "using the embedded Temporal server",
        "external": "using the Temporal server",
    }[server.kind]
    line = f"{where} at {server.address}"
    if server.ui_url:
        line += f"; UI {server.ui_url}"
    if server.started_by_us and server.log is not None:
        line += f" (log: {server.log})"
    return line


def ui_link(settings: Settings, workflow_id: str) -> str:
    return f"http://127.0.0.1:{settings.ui_port}/namespaces/{settings.temporal_namespace}/workflows/{workflow_id}"


def state_line(st: OrchestrationState) -> str:
    line = f"[bold]{st.stage}[/bold] · round {st.round} · retries {st.retry_count}/{st.max_retries}"
    if st.pending_gate is not None:
        line += f" · waiting at the {st.pending_gate.kind} gate ({', '.join(st.pending_gate.allowed)})"
    return line


def summary(st: OrchestrationState, workflow_id: str, settings: Settings) -> Table:
    table = Table(title=f"forgeflow run {workflow_id}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    if st.outcome is not None:
        table.add_row("outcome", st.outcome.value)
    else:
        table.add_row("stage", st.stage)
    table.add_row("repository", str(st.repo))
    if st.scripted_replay:
        table.add_row("model", REPLAY_NOTE.removeprefix("model: "))
    table.add_row("rounds", f"{st.round} (retries used {st.retry_count} of {st.max_retries})")
    if st.plan is not None:
        table.add_row("plan", st.plan.summary)
    if st.branches_created:
        table.add_row("branch", ", ".join(st.branches_created))
        table.add_row("commits", "\n".join(c[:12] for c in st.commits))
    if st.prs_created:
        table.add_row("pull requests", "\n".join(st.prs_created))
    if st.test_results is not None:
        t = st.test_results
        table.add_row(
            "tests", f"{t.status}: {t.passed} passed, {t.failed} failed, {t.errors} errors, {t.skipped} skipped"
        )
    if st.review_verdict:
        comments = "".join(f"\n  {c.path}:{c.line or ''} [{c.severity}] {c.body}" for c in st.review_comments)
        table.add_row("review", st.review_verdict + comments)
    if st.pending_gate is not None:
        gate = st.pending_gate
        table.add_row(
            "waiting for", f"{gate.kind}: {gate.reason}\nanswer: forgeflow {'|'.join(gate.allowed)} {workflow_id}"
        )
    for role, spent in st.usage.by_agent.items():
        u = spent.usage
        table.add_row(
            f"usage · {role}",
            f"{spent.turns} turns, {spent.tool_calls} tool calls, {u.input_tokens} in / {u.output_tokens} out "
            f"/ {u.cache_read_input_tokens} cache-read tokens, ${spent.cost_usd:.4f}",
        )
    for round_no, agents in sorted(st.usage.by_round.items()):
        parts = ", ".join(f"{role} ${spent.cost_usd:.4f}" for role, spent in agents.items())
        label = "planning" if round_no == 0 else f"round {round_no}"
        table.add_row(f"cost · {label}", f"${st.usage.round_cost(round_no):.4f} ({parts})")
    if len(st.usage.by_agent) > 1:
        total = st.usage
        table.add_row(
            "usage · total", f"{total.total_turns} turns, {total.total_tokens} tokens, ${total.total_cost_usd:.4f}"
        )
    if st.error:
        table.add_row("error", st.error)
    table.add_row("Temporal UI", ui_link(settings, workflow_id))
    return table
