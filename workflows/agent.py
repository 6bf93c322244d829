"""AgentLoop: one run of one agent as a durable loop, inside the IssueWorkflow that awaits it
(AgentWorkflow wraps it for runs recorded when each agent was a child workflow, and for tests).

Each model turn is one activity and each tool call is one activity (a workspace tool a local one,
recorded as a marker in the workflow task that ran it), so a crash resumes at the last completed
turn and no completed model call is paid for twice. Only new messages travel in history;
the transcript so far lives in the blob store under a key (see contracts.model.ModelTurnInput).
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from contracts.agents import AgentInput, AgentResult, TestReport, Workspace
    from contracts.api import AGENT_WORKFLOW_TYPE
    from contracts.commands import DEFAULT_COMMAND_SECONDS, MAX_COMMAND_CHARS, CommandResult, RunCommandInput
    from contracts.mcp import McpCallInput, McpCallResult, parse_qualified
    from contracts.model import Block, Message, ModelTurnInput, ModelTurnResult, ReadScope, result_block
    from contracts.research import ResearchInput, ResearchResult, research_text
    from contracts.tools import READ_TOOLS, WRITE_TOOLS, ToolCallInput, ToolCallResult
    from contracts.usage import AgentUsage
    from policy.pricing import billed_tokens
    from policy.stuck import call_signature, stuck_reason
    from roles import ROLES, RoleSpec
    from roles.briefs import report_text
    from roles.tools import MAX_COMMAND_SECONDS, RESEARCH, RUN_COMMAND, RUN_TESTS, SUBMIT
    from workflows import activity_calls as acts
    from workflows._agent_header import CURRENT_AGENT
    from workflows._shape import LOCAL_CALL_FAILURES, LOCAL_TOOLS, READS_IN_THE_TRANSCRIPT, READS_IN_THE_TURN, Shape

MAX_INVALID_SUBMISSIONS = 3
NUDGE = "Use the tools to make progress, and call `submit` with your result when done."
CONTINUE = "Your last reply hit the output limit and was cut off. Continue from where it stopped, in smaller steps."
# Tools that change the workspace: a turn that calls one runs its calls in order, not in parallel.
IN_ORDER = WRITE_TOOLS | {RUN_COMMAND}


def tool_result(tool_use_id: str, content: str, *, is_error: bool = False) -> Block:
    return result_block(tool_use_id, content, is_error=is_error)


class AgentFailedError(Exception):
    """An agent run inside its IssueWorkflow failed. Its cause is the loop's ApplicationError, whose
    details[0] is what the agent spent, as a failed AgentWorkflow child's is."""


@workflow.defn(name=AGENT_WORKFLOW_TYPE)
class AgentWorkflow:
    """One agent run as a workflow of its own: how runs recorded before agents ran inside their
    IssueWorkflow (`agents-in-the-run`) replay, and how tests run one agent alone."""

    def __init__(self) -> None:
        self._loop: AgentLoop | None = None

    @workflow.query(name="turn")
    def turn(self) -> int:
        return self._loop.turn if self._loop else 0

    @workflow.run
    async def run(self, inp: AgentInput) -> AgentResult:
        self._loop = AgentLoop(inp, Shape.of_this_run())
        return await self._loop.run()


class AgentLoop:
    """One run of one agent, inside whichever workflow awaits `run()`. Its typed failures are
    non-retryable ApplicationErrors whose details[0] is what it spent (AgentUsage)."""

    def __init__(self, inp: AgentInput, shape: Shape) -> None:
        """`shape`: the shape of the run it is in (workflows/_shape.py)."""
        self.inp = inp
        self.shape = shape
        self.spec: RoleSpec = ROLES[inp.role]
        self.turn = 0
        # What its activities' summaries and telemetry call it: `reviewer`, or `reviewer:security` for an extra one.
        self.name = f"{inp.role}:{inp.agent}" if inp.agent else inp.role
        self.workspace = inp.workspace
        self.usage = AgentUsage()
        self.transcript_key = inp.transcript_key
        self.test_report: TestReport | None = None
        self.invalid_submissions = 0
        self.recent_calls: list[str] = []
        self.tested_overlay: dict[str, str | None] | None = None  # the files the last test run saw
        self.commands = inp.commands != "off"

    async def run(self) -> AgentResult:
        """The agent's result; its activities carry its name as a header (workflows/_agent_header.py)."""
        token = CURRENT_AGENT.set(self.name)
        try:
            return await self._run()
        finally:
            CURRENT_AGENT.reset(token)

    async def _run(self) -> AgentResult:
        first: list[Block] = [*self.inp.carry_blocks, {"type": "text", "text": self.inp.brief}]
        pending = [Message(role="user", content=first)]
        for turn in range(self.inp.max_turns):
            self._check_budget()
            self.turn = turn + 1
            workflow.set_current_details(f"**{self.name}** — model turn {turn + 1} of at most {self.inp.max_turns}")
            answer = await self._model_turn(turn, pending)
            uses = answer.tool_uses()
            if not uses:
                prompt = CONTINUE if answer.stop_reason == "max_tokens" else NUDGE
                pending = [Message(role="user", content=[{"type": "text", "text": prompt}])]
                continue
            self._check_stuck(uses)
            if answer.read_results is not None:  # the turn ran its reads itself (ModelTurnInput.reads)
                self.usage.tool_calls += len(answer.read_results)
                blocks = list(answer.read_results)
            elif answer.reads_in_transcript:  # ... and put their results in the transcript (ReadScope)
                self.usage.tool_calls += answer.reads_in_transcript
                blocks = []
            else:
                blocks = await self._run_tools([u for u in uses if u.get("name") != SUBMIT])
            submit = next((u for u in uses if u.get("name") == SUBMIT), None)
            if submit is not None:
                accepted = self._accept(submit, blocks)
                if accepted is not None:
                    return accepted
            pending = [Message(role="user", content=blocks)] if blocks else []
        raise self._failure(
            f"{self.inp.role} did not submit a result within its budget of {self.inp.max_turns} turns",
            "AgentTurnBudgetExceeded",
        )

    def _failure(self, message: str, kind: str) -> ApplicationError:
        """A typed, final failure that still reports what the run spent (details[0] is AgentUsage)."""
        return ApplicationError(message, self.usage.model_dump(mode="json"), type=kind, non_retryable=True)

    def _check_budget(self) -> None:
        """Stop before a turn that would start past the run's budget (the parent escalates)."""
        spent = int(billed_tokens(self.usage.usage))
        if self.inp.tokens_left is not None and spent >= self.inp.tokens_left:
            left, role = self.inp.tokens_left, self.inp.role
            why = f"token budget spent: {spent} tokens in this {role} run, {left} were left (as billed)"
        elif self.inp.usd_left is not None and self.usage.cost_usd >= self.inp.usd_left:
            spent_usd, left_usd = self.usage.cost_usd, self.inp.usd_left
            why = f"cost budget spent: ${spent_usd:.2f} in this {self.inp.role} run, ${left_usd:.2f} were left"
        else:
            return
        raise self._failure(why, "BudgetExceeded")

    def _check_stuck(self, uses: list[Block]) -> None:
        self.recent_calls.append(
            "|".join(sorted(call_signature(str(u.get("name")), u.get("input") or {}) for u in uses))
        )
        reason = stuck_reason(self.recent_calls)
        if reason is not None:
            raise self._failure(f"{self.inp.role}: {reason}", "AgentStuck")

    async def _model_turn(self, turn: int, pending: list[Message]) -> ModelTurnResult:
        answer = await acts.execute(
            acts.MODEL_TURN,
            ModelTurnInput(
                role=self.inp.role,
                run_id=self.inp.run_id,
                invocation=self.inp.invocation,
                turn=turn,
                model=self.inp.model,
                transcript_key=self.transcript_key,
                new_messages=pending,
                commands=self.commands,
                instructions=self.inp.instructions,
                tools=self.inp.tools,
                agent=self.inp.agent,
                reads=self._read_scope(),
            ),
            ModelTurnResult,
            acts.MODEL_CALL,
            summary=f"{self.name} · model turn {turn + 1}",
        )
        self.transcript_key = answer.transcript_key
        self.usage.turns += 1
        self.usage.usage = self.usage.usage.plus(answer.usage)
        self.usage.cost_usd += answer.cost_usd
        return answer

    def _read_scope(self) -> ReadScope | None:
        """What the turn needs to run its reply's reads itself (from shape level 2; None: it does not), and
        from level 3 to put their results in its transcript rather than return them."""
        if not self.shape.at_least(READS_IN_THE_TURN):
            return None
        return ReadScope(
            workspace=self.workspace,
            tools=sorted(t for t in READ_TOOLS if self._has_tool(t)),
            into_transcript=self.shape.at_least(READS_IN_THE_TRANSCRIPT),
        )

    def _accept(self, submit: Block, blocks: list[Block]) -> AgentResult | None:
        """The validated result, or None after telling the model what was wrong with it."""
        try:
            result = self.spec.result_model.model_validate(submit.get("input", {}))
        except ValidationError as err:
            self.invalid_submissions += 1
            if self.invalid_submissions > MAX_INVALID_SUBMISSIONS:
                raise self._failure(
                    f"{self.inp.role} submitted an invalid result {self.invalid_submissions} times: {err}",
                    "InvalidSubmission",
                ) from None
            blocks.append(
                tool_result(str(submit["id"]), f"Invalid submission, fix and resubmit:\n{err}", is_error=True)
            )
            return None
        return AgentResult(
            role=self.inp.role,
            submission=result.model_dump(mode="json"),
            workspace=self.workspace,
            usage=self.usage,
            # A report is only the run's if the files did not change after it.
            test_report=self.test_report if self.tested_overlay == self.workspace.overlay else None,
            transcript_key=self.transcript_key,
            carry_blocks=[*blocks, tool_result(str(submit["id"]), "Submission accepted.")],
        )

    async def _run_tools(self, uses: list[Block]) -> list[Block]:
        """Read-only calls run in parallel; a turn that writes runs its calls in order."""
        self.usage.tool_calls += len(uses)
        if any(u.get("name") in IN_ORDER for u in uses):
            return [await self._run_tool(u) for u in uses]
        return list(await asyncio.gather(*(self._run_tool(u) for u in uses)))

    async def _run_tool(self, use: Block) -> Block:
        name, use_id = str(use.get("name")), str(use.get("id"))
        tool_input: dict[str, Any] = use.get("input") or {}
        if not self._has_tool(name):
            available = [tool["name"] for tool in self.spec.tools(self.commands) if self._has_tool(tool["name"])]
            return tool_result(use_id, f"Unknown tool {name!r}; available: {', '.join(available)}", is_error=True)
        if name == RUN_TESTS:
            return await self._run_tests(use_id, tool_input)
        try:
            if parse_qualified(name) is not None:
                return await self._mcp_tool(use_id, name, tool_input)
            if name == RUN_COMMAND:
                return await self._run_command(use_id, tool_input)
            if name == RESEARCH:
                return await self._research(use_id, tool_input)
            return await self._workspace_tool(use_id, name, tool_input)
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise  # the run was cancelled: end, don't tell the model
            # The tool failed after its retries: the model reads why and works around it.
            return tool_result(use_id, f"{name} failed: {acts.innermost(err)[0]}", is_error=True)

    def _has_tool(self, name: str) -> bool:
        """The role has it (an operator's MCP tool: the worker says whether this role has it), the run
        lets it (commands), and the repository did not narrow it away."""
        allowed = self.inp.tools is None or name in self.inp.tools or name == SUBMIT
        ours = self.spec.has_tool(name, self.commands) or name == SUBMIT or parse_qualified(name) is not None
        return allowed and ours

    async def _mcp_tool(self, use_id: str, name: str, tool_input: dict[str, Any]) -> Block:
        """An operator's MCP tool: one activity; the worker refuses a tool its servers do not offer this role."""
        result = await acts.execute(
            acts.CALL_MCP_TOOL,
            McpCallInput(role=self.inp.role, run_id=self.inp.run_id, tool_use_id=use_id, name=name, input=tool_input),
            McpCallResult,
            acts.MCP_CALL,
            summary=f"{self.name} · {name}",
        )
        return tool_result(use_id, result.content, is_error=result.is_error)

    async def _research(self, use_id: str, tool_input: dict[str, Any]) -> Block:
        answer = await acts.execute(
            acts.RESEARCH,
            ResearchInput(query=str(tool_input.get("query", ""))[:2000] or "(empty)"),
            ResearchResult,
            acts.RESEARCH_CALL,
            summary=f"{self.name} · research",
        )
        return tool_result(use_id, research_text(answer), is_error=not answer.available)

    async def _workspace_tool(self, use_id: str, name: str, tool_input: dict[str, Any]) -> Block:
        # A local activity: the read or write is quick and idempotent (the workspace is an overlay of
        # content keys), and costs the server one marker event instead of an activity and a workflow task.
        req = ToolCallInput(
            role=self.inp.role,
            run_id=self.inp.run_id,
            tool_use_id=use_id,
            name=name,
            input=tool_input,
            workspace=self.workspace,
            tests_only=self.spec.tests_only,
        )
        summary = f"{self.name} · {name} {_tool_target(tool_input)}".rstrip()
        if self.shape.has(LOCAL_TOOLS):
            wrap = self.shape.at_least(LOCAL_CALL_FAILURES)  # before: a failed tool failed its agent
            result = await acts.execute_local(
                acts.RUN_TOOL, req, ToolCallResult, acts.TOOL_CALL, summary=summary, wrap_failures=wrap
            )
        else:
            result = await acts.execute(acts.RUN_TOOL, req, ToolCallResult, acts.TOOL_CALL, summary=summary)
        if result.overlay_updates:
            overlay = {**self.workspace.overlay, **result.overlay_updates}
            self.workspace = Workspace(
                repo=self.workspace.repo,
                base_sha=self.workspace.base_sha,
                overlay=overlay,
                origin_sha=self.workspace.origin_sha,
            )
        return result_block(use_id, result.content, is_error=result.is_error, content_key=result.content_key)

    async def _run_tests(self, use_id: str, tool_input: dict[str, Any]) -> Block:
        if self.inp.commit_sha is None:
            return tool_result(use_id, "There is no commit under test in this run.", is_error=True)
        selection = tool_input.get("tests") or []
        if not isinstance(selection, list) or not all(isinstance(item, str) for item in selection):
            return tool_result(use_id, "`tests` must be a list of test files or test ids", is_error=True)
        overlay = dict(self.workspace.overlay)
        what = f"{len(selection)} selected test(s)" if selection else "run_tests"
        report = await acts.run_tests(
            str(self.workspace.repo),
            self.inp.commit_sha,
            self.inp.commit_tree,
            self.inp,
            overlay=overlay,
            selection=selection,
            summary=f"{self.name} · {what} on {self.inp.commit_sha[:12]}",
        )
        if not selection:  # only a run of the whole suite can stand for the change (AgentResult.test_report)
            self.test_report, self.tested_overlay = report, overlay
        return tool_result(use_id, report_text(report), is_error=not report.ok)

    async def _run_command(self, use_id: str, tool_input: dict[str, Any]) -> Block:
        command = tool_input.get("command")
        if not isinstance(command, str) or not command.strip():
            return tool_result(use_id, "run_command needs `command`: the shell command to run", is_error=True)
        if len(command) > MAX_COMMAND_CHARS:
            return tool_result(
                use_id,
                f"the command is over {MAX_COMMAND_CHARS} characters; write a script file and run it",
                is_error=True,
            )
        if self.inp.commit_sha is None or self.inp.commit_tree is None:
            return tool_result(use_id, "There is no commit to run commands on in this run.", is_error=True)
        result = await acts.run_command(
            RunCommandInput(
                repository=str(self.workspace.repo),
                commit_sha=self.inp.commit_sha,
                tree=self.inp.commit_tree,
                overlay=self.workspace.overlay,
                command=command,
                keep_changes=self.inp.commands == "write",
                tests_only=self.spec.tests_only,
                install_command=self.inp.install_command,
                timeout_seconds=_seconds(tool_input.get("timeout_seconds")),
            ),
            summary=f"{self.name} · $ {command.strip().splitlines()[0][:80]}",
        )
        self._apply(result)
        return result_block(use_id, result.preview, is_error=result.status != "exited", content_key=result.content_key)

    def _apply(self, result: CommandResult) -> None:
        """What the command changed joins the workspace's overlay; the agent's own files it deleted leave it."""
        if not result.changes and not result.removed_edits:
            return
        overlay = {**self.workspace.overlay, **result.changes}
        for path in result.removed_edits:
            overlay.pop(path, None)
        self.workspace = self.workspace.model_copy(update={"overlay": overlay})


def _seconds(value: object) -> int:
    """The command's timeout the model asked for, within 1 s and MAX_COMMAND_SECONDS."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return max(1, min(MAX_COMMAND_SECONDS, int(value)))
    return DEFAULT_COMMAND_SECONDS


def _tool_target(tool_input: dict[str, Any]) -> str:
    for key in ("path", "pattern", "glob"):
        if key in tool_input:
            return str(tool_input[key])[:80]
    return ""
