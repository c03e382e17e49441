"""The turn loop: a plain function of (request, services) that yields the assistant's blocks as they happen.

Blocks are yielded one by one (a `server_tool_use` before its command runs, the result right after), so the
streaming edge can forward them without waiting for the whole turn; the last event carries the finished
`Message`. Nothing here knows HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from emulator.engine import ptc
from emulator.engine import tools as tool_runner
from emulator.engine.betas import check_betas
from emulator.engine.catalog import LEGACY_VERSION, SUB_TOOLS, Catalog, ModelInfo
from emulator.engine.container_files import resolve_uploads, stage_uploads
from emulator.engine.conversation import PendingServerToolUse, check_history
from emulator.engine.faults import FaultContext, FaultPlan
from emulator.engine.threads import ThreadStore
from emulator.errors import APIError, InvalidRequestError
from emulator.model import builtin
from emulator.model.script import Script
from emulator.model.steps import ClientToolStep, Step, StopStep, TextStep, ToolStep
from emulator.sandbox.base import ReplSandbox, Sandbox, SandboxBackend, SandboxUnavailable
from emulator.state.clock import Clock
from emulator.state.containers import ContainerRecord, ContainerStore
from emulator.state.files import FileRecord, FileStore
from emulator.wire import models as wire
from emulator.wire.ids import IdFactory

CODE_EXECUTION_PREFIX = "code_execution_"


@dataclass(frozen=True)
class Fidelity:
    """Which generation of the wire to imitate where recordings differ."""

    #: write `stop_details: null` and `usage.inference_geo` (2026 recordings do, 2025 ones do not)
    stop_details: bool = True
    inference_geo: str | None = "not_available"
    #: allow the error codes only the 2025 docs list (`container_expired`, `string_not_found`)
    documented_2025_codes: bool = False
    #: keep a Python run's final newline in `stdout` (2025 recordings do, 2026 ones strip it)
    python_final_newline: bool = False


@dataclass
class EngineServices:
    """Everything a turn needs, owned by one `Emulator`."""

    containers: ContainerStore
    backend: SandboxBackend
    ids: IdFactory
    clock: Clock
    script: Script
    catalog: Catalog
    strict_models: bool = False
    strict_betas: bool = False
    fidelity: Fidelity = field(default_factory=Fidelity)
    output_sink: tool_runner.OutputFileSink | None = None
    faults: FaultPlan = field(default_factory=FaultPlan)
    threads: ThreadStore = field(default_factory=ThreadStore)
    #: pause a turn (`pause_turn`) after this many server tool calls, as the real API does on long turns
    pause_after_tool_calls: int | None = None
    #: the Files API store (`container_upload` reads from it; `output_sink` usually writes to it)
    files: FileStore | None = None
    #: cells waiting on programmatic tool results, per container (and the pending-call timeout)
    ptc: ptc.PtcState = field(default_factory=ptc.PtcState)


@dataclass(frozen=True)
class BlockReady:
    """A content block, complete, in its final position `index` of the message."""

    index: int
    block: Any


@dataclass(frozen=True)
class TurnStarted:
    message_id: str
    model: str
    input_tokens: int


@dataclass(frozen=True)
class TurnFinished:
    message: wire.Message
    #: no model step ran (a PTC continuation that only called more tools): stream as message_start (already
    #: holding the content) + message_stop, with no TurnStarted or BlockReady before it
    prepopulated: bool = False


TurnEvent = TurnStarted | BlockReady | TurnFinished


@dataclass(frozen=True)
class PreparedTurn:
    """What `prepare_turn` learned from the request before any step runs (so errors come before output)."""

    body: dict[str, Any]
    model: ModelInfo
    tool_version: str | None
    custom_tools: frozenset[str]
    container: ContainerRecord | None
    pending: tuple[PendingServerToolUse, ...]
    steps: tuple[Step, ...]
    scripted: bool
    fault_context: FaultContext
    #: a forced stop: (stop reason, number of tool calls to run first)
    forced_stop: tuple[str, int] | None = None
    #: the files the conversation's `container_upload` blocks put into `$INPUT_DIR` (already copied)
    uploads: tuple[FileRecord, ...] = ()
    policy: ptc.ToolPolicy | None = None
    #: the request answers the tool calls of a parked cell
    continuation: ptc.Continuation | None = None


def container_id_of(body: dict[str, Any]) -> str | None:
    container = body.get("container")
    if isinstance(container, str):
        return container
    if isinstance(container, dict) and isinstance(container.get("id"), str):
        return str(container["id"])
    return None


def _find_tools(
    body: dict[str, Any], model: ModelInfo, catalog: Catalog
) -> tuple[str | None, frozenset[str]]:
    version: str | None = None
    custom: set[str] = set()
    names: set[str] = set()
    for index, tool in enumerate(body.get("tools") or []):
        name = tool.get("name")
        if name in names:
            raise InvalidRequestError("tools: Tool names must be unique.")
        names.add(name)
        tool_type = tool.get("type")
        if isinstance(tool_type, str) and tool_type.startswith(CODE_EXECUTION_PREFIX):
            catalog.check_tool_version(model, index, tool_type)
            version = tool_type
        elif tool_type in (None, "custom"):
            custom.add(str(name))
    return version, frozenset(custom)


def _tool_index(body: dict[str, Any], version: str | None) -> int:
    types = [tool.get("type") for tool in body.get("tools") or []]
    return types.index(version) if version in types else 0


def _legacy_python_for(command: str) -> str:
    return (
        "import subprocess, sys\n"
        f"completed = subprocess.run({command!r}, shell=True, capture_output=True, text=True)\n"
        "sys.stdout.write(completed.stdout)\nsys.stderr.write(completed.stderr)\n"
    )


def _builtin_steps(body: dict[str, Any], version: str | None) -> list[Step]:
    planned = builtin.plan_turn(body.get("messages") or [])
    if version is None and any(isinstance(step, ToolStep) for step in planned):
        return [TextStep("The request declares no code execution tool, so I cannot run the code blocks.")]
    if version != LEGACY_VERSION:
        return planned
    adapted: list[Step] = []
    for step in planned:
        if isinstance(step, ToolStep) and step.name == "bash_code_execution":
            adapted.append(ToolStep("code_execution", {"code": _legacy_python_for(step.input["command"])}))
        elif isinstance(step, ToolStep) and step.name == "text_editor_code_execution":
            adapted.append(
                TextStep(f"{LEGACY_VERSION} has no text editor; skipped a `{step.input['command']}`.")
            )
        else:
            adapted.append(step)
    return adapted


def _check_scripted_steps(steps: Sequence[Step], version: str | None, custom_tools: frozenset[str]) -> None:
    for position, step in enumerate(steps):
        if isinstance(step, ToolStep):
            offered = SUB_TOOLS.get(version or "", frozenset())
            if step.name not in offered:
                declared = version or "no code execution tool"
                raise InvalidRequestError(
                    f"emulator script: step {position} calls `{step.name}`, which the request cannot offer "
                    f"(tools declare {declared})"
                )
        elif isinstance(step, ClientToolStep) and step.name not in custom_tools:
            raise InvalidRequestError(
                f"emulator script: step {position} calls custom tool `{step.name}`, which is not in `tools`"
            )


def continuation_key(messages: Sequence[dict[str, Any]]) -> str | None:
    """The id of the last tool block of a final assistant message: where a paused turn left off."""
    if not messages or messages[-1].get("role") != "assistant":
        return None
    content = messages[-1].get("content")
    for block in reversed(content if isinstance(content, list) else []):
        if isinstance(block, dict):
            key = (
                block.get("id")
                if block.get("type") in {"server_tool_use", "tool_use"}
                else block.get("tool_use_id")
            )
            if isinstance(key, str):
                return key
    return None


def _choose_steps(
    body: dict[str, Any],
    version: str | None,
    custom_tools: frozenset[str],
    pending: Sequence[Any],
    script: Script,
) -> tuple[tuple[Step, ...], bool]:
    key = continuation_key(body["messages"])
    continued = script.take_continuation(key) if key else None
    if continued is not None:
        return continued, True
    if pending:
        return (TextStep("Continued the paused turn."),), False
    scripted_turn = script.next_turn()
    if scripted_turn is not None:
        _check_scripted_steps(scripted_turn, version, custom_tools)
        return tuple(scripted_turn), True
    return tuple(_builtin_steps(body, version)), False


def prepare_turn(
    body: dict[str, Any], betas: frozenset[str], services: EngineServices, fault_context: FaultContext
) -> PreparedTurn:
    """Resolve the model, tools, container and steps, raising API errors before anything runs."""
    body = services.threads.expand(body)
    model = services.catalog.resolve(str(body["model"]), strict=services.strict_models)
    version, custom_tools = _find_tools(body, model, services.catalog)
    ptc.check_tools(body)
    policy = ptc.tool_policy(body, version, model.id)
    if services.strict_betas:
        check_betas(betas, version, _tool_index(body, version))
    pending = tuple(check_history(body["messages"]))
    container_id = container_id_of(body)
    container = services.containers.get(container_id) if container_id else None
    continuation = ptc.find_continuation(body["messages"], container_id, services.ptc)
    if pending and version is None:
        raise InvalidRequestError("tools: a paused server tool use needs the code execution tool in `tools`")
    uploads = tuple(resolve_uploads(body["messages"], version, services.files))
    if continuation is not None:
        steps, scripted = tuple(continuation.cell.remaining_steps), True
    else:
        steps, scripted = _choose_steps(body, version, custom_tools, pending, services.script)
    stop_fault = services.faults.take("stop_reason", fault_context)
    forced_stop = None
    if stop_fault is not None and stop_fault.stop_reason:
        forced_stop = (stop_fault.stop_reason, stop_fault.after_tool_calls or 0)
    elif services.pause_after_tool_calls is not None:
        forced_stop = ("pause_turn", services.pause_after_tool_calls)
    return PreparedTurn(
        body=body,
        model=model,
        tool_version=version,
        custom_tools=custom_tools,
        container=container,
        pending=pending,
        steps=steps,
        scripted=scripted,
        fault_context=fault_context,
        forced_stop=forced_stop,
        uploads=uploads,
        policy=policy,
        continuation=continuation,
    )


def stage_turn_uploads(prepared: PreparedTurn, services: EngineServices) -> PreparedTurn:
    """Copy the `container_upload` files into the container (made now if the request has none).

    Kept apart from `prepare_turn` because it is the one part of preparing that touches the sandbox:
    callers on an event loop run `prepare_turn` inline and only this in a worker thread.
    """
    if not prepared.uploads:
        return prepared
    assert services.files is not None  # resolve_uploads found the files in it
    container = prepared.container
    if container is None:
        container = services.containers.create(services.ids.container())
    try:
        stage_uploads(services.backend.open(container.id), prepared.uploads, services.files)
    except (SandboxUnavailable, OSError, ValueError) as problem:
        raise APIError(f"Could not copy the uploaded files into the container: {problem}") from None
    return replace(prepared, container=container)


def may_block(prepared: PreparedTurn) -> bool:
    """Whether running the turn may wait on the sandbox: a tool step, a paused call, a parked cell, uploads.

    A turn of text, client tool calls and stops only builds blocks, so an event loop can run it inline.
    """
    return bool(
        prepared.uploads
        or prepared.pending
        or prepared.continuation is not None
        or any(isinstance(step, ToolStep) for step in prepared.steps)
    )


def estimate_tokens(value: Any) -> int:
    """A deterministic stand-in for token counts: about four characters a token."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return max(1, len(text) // 4)


class _TurnRun:
    """The mutable state of one turn while it runs."""

    def __init__(self, prepared: PreparedTurn, services: EngineServices) -> None:
        self.prepared = prepared
        self.services = services
        self.blocks: list[Any] = []
        self.container = prepared.container
        self.box: Sandbox | None = None
        self.output_tokens = 0
        self.stop_reason: str = "end_turn"
        #: no model step ran (a PTC continuation that only called more tools): usage 0/0
        self.no_model_step = False

    def container_record(self) -> ContainerRecord:
        if self.container is None:
            self.container = self.services.containers.create(self.services.ids.container())
        return self.container

    def sandbox(self) -> Sandbox:
        if self.box is None:
            self.box = self.services.backend.open(self.container_record().id)
        return self.box

    def add(self, block: Any) -> BlockReady:
        self.blocks.append(block)
        return BlockReady(index=len(self.blocks) - 1, block=block)

    def run_tool(self, name: str, tool_use_id: str, tool_input: dict[str, Any]) -> Any:
        context = replace(self.prepared.fault_context, tool=name)
        fault = self.services.faults.take("tool_error", context)
        if fault is not None and fault.error_code:
            return tool_runner.error_block(name, tool_use_id, fault.error_code, fault.error_message)
        return tool_runner.run_tool(
            self.sandbox(),
            name,
            tool_use_id,
            tool_input,
            sink=self.services.output_sink,
            legacy_codes=self.services.fidelity.documented_2025_codes,
            keep_python_newline=self.services.fidelity.python_final_newline,
        )

    def _output_ids(self, result: Any) -> list[str]:
        return tool_runner.collect_output_files(self.sandbox(), result, self.services.output_sink)

    def cell_step(self, tool_use_id: str, tool_input: dict[str, Any], remaining: Sequence[Step]) -> Any:
        """Run a Python step as a REPL cell when the policy says so; None to run it the one-shot way."""
        policy = self.prepared.policy
        box = self.sandbox()
        code = tool_input.get("code")
        if policy is None or not policy.uses_cells or not isinstance(box, ReplSandbox):
            return None
        if not isinstance(code, str) or set(tool_input) != {"code"}:
            return None  # the one-shot path answers invalid_tool_input
        context = replace(self.prepared.fault_context, tool="code_execution")
        fault = self.services.faults.take("tool_error", context)
        if fault is not None and fault.error_code:
            error = tool_runner.error_block(
                "code_execution", tool_use_id, fault.error_code, fault.error_message
            )
            return ptc.CellProgress((error,), False)
        return ptc.start_cell(
            box,
            container_id=self.container_record().id,
            server_tool_use_id=tool_use_id,
            code=code,
            policy=policy,
            state=self.services.ptc,
            ids=self.services.ids,
            remaining_steps=remaining,
            output_ids=self._output_ids,
        )

    def resume(self, continuation: ptc.Continuation) -> Iterator[BlockReady]:
        box = self.sandbox()
        assert isinstance(box, ReplSandbox)
        progress = ptc.resume_cell(
            box, continuation, state=self.services.ptc, ids=self.services.ids, output_ids=self._output_ids
        )
        for block in progress.blocks:
            yield self.add(block)
        if progress.waiting:
            self.stop_reason = "tool_use"
            self.no_model_step = True

    def pause_before(self, step: Step, remaining: Sequence[Step]) -> Iterator[BlockReady]:
        """End the turn with `pause_turn`; a tool step about to run is emitted without its result."""
        self.stop_reason = "pause_turn"
        if isinstance(step, ToolStep):
            self.container_record()  # the pending call will run in this container
            tool_use_id = self.services.ids.server_tool_use()
            yield self.add(wire.ServerToolUseBlock(id=tool_use_id, name=step.name, input=step.input))
            self.services.script.save_continuation(tool_use_id, remaining)
            return
        key = continuation_key([{"role": "assistant", "content": [b.to_wire() for b in self.blocks]}])
        if key is not None:
            self.services.script.save_continuation(key, (step, *remaining))

    def steps(self) -> Iterator[BlockReady]:
        steps = self.prepared.steps
        for pending in self.prepared.pending:
            progress = (
                self.cell_step(pending.id, pending.input, steps) if pending.name == "code_execution" else None
            )
            if progress is None:
                yield self.add(self.run_tool(pending.name, pending.id, pending.input))
                continue
            for block in progress.blocks:
                yield self.add(block)
            if progress.waiting:
                self.stop_reason = "tool_use"
                return
        # A paused call run now counts as one of this turn's iterations, as on the real API.
        tool_calls = len(self.prepared.pending)
        forced = self.prepared.forced_stop
        for position, step in enumerate(steps):
            remaining = steps[position + 1 :]
            if isinstance(step, StopStep):
                if step.reason == "pause_turn" and remaining:
                    yield from self.pause_before(remaining[0], remaining[1:])
                    return
                self.stop_reason = step.reason
                return
            if isinstance(step, ToolStep) and forced is not None and tool_calls >= forced[1]:
                if forced[0] == "pause_turn":
                    yield from self.pause_before(step, remaining)
                else:
                    self.stop_reason = forced[0]
                return
            if isinstance(step, TextStep):
                self.output_tokens += estimate_tokens(step.text)
                yield self.add(wire.TextBlock(text=step.text))
            elif isinstance(step, ClientToolStep):
                self.output_tokens += estimate_tokens(step.input)
                self.stop_reason = "tool_use"
                yield self.add(
                    wire.ToolUseBlock(id=self.services.ids.tool_use(), name=step.name, input=step.input)
                )
            else:
                tool_calls += 1
                tool_use_id = self.services.ids.server_tool_use()
                self.output_tokens += estimate_tokens(step.input)
                caller = self.prepared.policy.server_caller() if self.prepared.policy else None
                yield self.add(
                    wire.ServerToolUseBlock(id=tool_use_id, name=step.name, input=step.input, caller=caller)
                )
                progress = None
                if step.name == "code_execution":
                    progress = self.cell_step(tool_use_id, step.input, remaining)
                if progress is None:
                    yield self.add(self.run_tool(step.name, tool_use_id, step.input))
                    continue
                for block in progress.blocks:
                    yield self.add(block)
                if progress.waiting:
                    self.stop_reason = "tool_use"
                    return
        if forced is not None and forced[0] != "pause_turn" and tool_calls >= forced[1]:
            self.stop_reason = forced[0]

    def finish(self, message_id: str, input_tokens: int) -> wire.Message:
        self.services.threads.record(
            self.prepared.body, message_id, [block.to_wire() for block in self.blocks]
        )
        container = None
        if self.container is not None:
            record = self.services.containers.touch(self.container.id)
            container = wire.Container(id=record.id, expires_at=wire.format_timestamp(record.expires_at))
        fidelity = self.services.fidelity
        return wire.Message(
            model=self.prepared.model.id,
            id=message_id,
            content=self.blocks,
            container=container,
            stop_reason=self.stop_reason,  # type: ignore[arg-type]
            usage=ptc.continuation_usage()
            if self.no_model_step
            else wire.Usage(
                input_tokens=input_tokens,
                output_tokens=max(1, self.output_tokens),
                inference_geo=fidelity.inference_geo,
            ),
            include_stop_details=fidelity.stop_details,
        )


def run_turn(prepared: PreparedTurn, services: EngineServices) -> Iterator[TurnEvent]:
    """Run the prepared turn, yielding `TurnStarted`, each `BlockReady`, then `TurnFinished`."""
    body = prepared.body
    input_tokens = estimate_tokens([body.get("system"), body.get("tools"), body["messages"]])
    message_id = services.ids.message()
    run = _TurnRun(prepared, services)
    if prepared.continuation is not None:
        # The cell runs on before anything is sent: only its outcome says whether a model step follows.
        resumed = list(run.resume(prepared.continuation))
        if run.no_model_step:
            yield TurnFinished(message=run.finish(message_id, 0), prepopulated=True)
            return
        yield TurnStarted(message_id=message_id, model=prepared.model.id, input_tokens=input_tokens)
        yield from resumed
    else:
        yield TurnStarted(message_id=message_id, model=prepared.model.id, input_tokens=input_tokens)
    yield from run.steps()
    yield TurnFinished(message=run.finish(message_id, input_tokens))


def complete_turn(prepared: PreparedTurn, services: EngineServices) -> wire.Message:
    """Run the whole turn and return the finished message (the non-streaming path)."""
    for event in run_turn(prepared, services):
        if isinstance(event, TurnFinished):
            return event.message
    raise RuntimeError("the turn ended without a message")  # pragma: no cover - run_turn always finishes
