"""Programmatic tool calling rules: tool policy per version, the documented 400s, continuation detection,
history checks on the recorded conversation, and the blocks and stream form the engine emits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

from emulator.engine import ptc
from emulator.engine.conversation import check_history
from emulator.errors import InvalidRequestError
from emulator.sandbox.base import CommandResult, PendingCalls, ToolCall, ToolCallResult
from emulator.wire import models as wire
from emulator.wire import sse
from emulator.wire.ids import IdFactory

SONNET = "claude-sonnet-4-5-20250929"
HAIKU = "claude-haiku-4-5-20251001"
RECORDING = "vercel-ai/older-versions/anthropic-programmatic-tool-calling.1@24ed6a30e9.json"


def custom(name: str, callers: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": name, "input_schema": {"type": "object"}, **extra}
    if callers is not None:
        tool["allowed_callers"] = callers
    return tool


def body(version: str | None, *tools: dict[str, Any], **extra: Any) -> dict[str, Any]:
    declared = [{"type": version, "name": "code_execution"}] if version else []
    return {"tools": [*declared, *tools], **extra}


# ------------------------------------------------------------------------------------------- policy


def test_20250825_with_programmatic_tools_runs_fresh_cells():
    b = body("code_execution_20250825", custom("rollDie", ["code_execution_20250825"]), custom("ask"))
    policy = ptc.tool_policy(b, "code_execution_20250825", SONNET)
    assert policy.programmatic == ("rollDie",)
    assert policy.direct == frozenset({"ask"})
    assert (policy.ptc, policy.persist, policy.uses_cells) == (True, False, True)
    assert policy.caller_type == "code_execution_20250825"
    assert policy.cell_timeout_s() is None
    assert policy.server_caller() == wire.DirectCaller()


def test_20250825_without_programmatic_tools_keeps_one_shot_python():
    policy = ptc.tool_policy(
        body("code_execution_20250825", custom("ask")), "code_execution_20250825", SONNET
    )
    assert (policy.ptc, policy.persist, policy.uses_cells) == (False, False, False)
    assert policy.server_caller() is None


@pytest.mark.parametrize("version", ["code_execution_20260120", "code_execution_20260521"])
@pytest.mark.parametrize("caller", ["code_execution_20260120", "code_execution_20260521"])
def test_2026_versions_persist_and_accept_either_2026_caller(version, caller):
    policy = ptc.tool_policy(body(version, custom("f", [caller, "direct"])), version, SONNET)
    assert policy.programmatic == ("f",)
    assert policy.direct == frozenset({"f"})
    assert (policy.persist, policy.uses_cells) == (True, True)
    assert policy.caller_type == "code_execution_20260120"  # 20260521 responses are tagged 20260120
    assert policy.cell_timeout_s() == (90.0 if version == "code_execution_20260521" else None)


def test_2026_version_persists_without_any_custom_tool():
    policy = ptc.tool_policy(body("code_execution_20260120"), "code_execution_20260120", SONNET)
    assert (policy.ptc, policy.persist, policy.uses_cells) == (False, True, True)


def test_a_caller_of_another_generation_does_not_make_a_tool_programmatic():
    b = body("code_execution_20260120", custom("f", ["code_execution_20250825"]))
    assert ptc.tool_policy(b, "code_execution_20260120", SONNET).programmatic == ()


def test_haiku_runs_the_2026_versions_as_20250825():
    assert ptc.behaves_as("claude-haiku-4-5") == "code_execution_20250825"
    assert ptc.behaves_as(SONNET) is None
    b = body("code_execution_20260120", custom("f", ["code_execution_20260120"]))
    policy = ptc.tool_policy(b, "code_execution_20260120", HAIKU)
    assert (policy.version, policy.persist, policy.ptc, policy.uses_cells) == (
        "code_execution_20250825",
        False,
        False,
        False,
    )


@pytest.mark.parametrize("version", [None, "code_execution_20250522"])
def test_no_cells_without_a_ptc_capable_tool(version):
    b = body(version, custom("f", ["code_execution_20250825"]))
    assert ptc.tool_policy(b, version, SONNET).uses_cells is False


# ------------------------------------------------------------------------------------------- 400s on tools


def test_strict_tools_cannot_be_called_from_code():
    ptc.check_tools(body("code_execution_20250825", custom("f", ["direct"], strict=True)))
    with pytest.raises(InvalidRequestError, match=r"^tools\.1: tools with `strict: true` cannot be called"):
        ptc.check_tools(
            body("code_execution_20250825", custom("f", ["code_execution_20250825"], strict=True))
        )


def test_forcing_a_tool_that_cannot_be_called_directly():
    forced = {"type": "tool", "name": "f"}
    ptc.check_tools(body("code_execution_20250825", custom("f"), tool_choice=forced))
    ptc.check_tools(
        body(
            "code_execution_20250825", custom("f", ["direct", "code_execution_20250825"]), tool_choice=forced
        )
    )
    with pytest.raises(InvalidRequestError, match=r'^tool_choice: tool `f` cannot be forced .*"direct"'):
        ptc.check_tools(
            body("code_execution_20250825", custom("f", ["code_execution_20250825"]), tool_choice=forced)
        )


def test_disable_parallel_tool_use_is_incompatible():
    choice = {"type": "auto", "disable_parallel_tool_use": True}
    ptc.check_tools(body("code_execution_20250825", custom("f"), tool_choice=choice))
    with pytest.raises(InvalidRequestError, match="disable_parallel_tool_use"):
        ptc.check_tools(
            body("code_execution_20250825", custom("f", ["code_execution_20250825"]), tool_choice=choice)
        )


# ------------------------------------------------------------------------------------------- continuations


def parked(
    state: ptc.PtcState, container: str = "container_01A", srv: str = "srvtoolu_01S"
) -> ptc.PendingCell:
    policy = ptc.tool_policy(
        body("code_execution_20250825", custom("f", ["code_execution_20250825"])),
        "code_execution_20250825",
        SONNET,
    )
    cell = ptc.PendingCell(container_id=container, server_tool_use_id=srv, policy=policy)
    ptc.tool_use_blocks(
        PendingCalls(calls=(ToolCall("call_1", "f", {}), ToolCall("call_2", "f", {})), duration_s=0),
        cell,
        IdFactory(seed=7),
    )
    state.park(cell)
    return cell


def history(cell: ptc.PendingCell, answer: Any) -> list[dict[str, Any]]:
    caller = {"type": "code_execution_20250825", "tool_id": cell.server_tool_use_id}
    uses = [{"type": "tool_use", "id": t, "name": "f", "input": {}, "caller": caller} for t in cell.calls]
    server = {
        "type": "server_tool_use",
        "id": cell.server_tool_use_id,
        "name": "code_execution",
        "input": {"code": "..."},
        "caller": {"type": "direct"},
    }
    return [
        {"role": "user", "content": "play"},
        {"role": "assistant", "content": [server, *uses]},
        {"role": "user", "content": answer},
    ]


def results_for(cell: ptc.PendingCell, *contents: Any) -> list[dict[str, Any]]:
    return [
        {"type": "tool_result", "tool_use_id": t, "content": c}
        for t, c in zip(cell.calls, contents, strict=True)
    ]


def test_a_complete_answer_maps_to_the_sandbox_calls():
    state = ptc.PtcState()
    cell = parked(state)
    answer = results_for(cell, "4", [{"type": "text", "text": "5"}, {"type": "text", "text": "!"}])
    answer[1]["is_error"] = True
    continuation = ptc.find_continuation(history(cell, answer), cell.container_id, state)
    assert continuation is not None and continuation.cell is cell
    assert continuation.results == {
        "call_1": ToolCallResult("4", False),
        "call_2": ToolCallResult("5!", True),
    }
    check_history(history(cell, answer))  # the shape passes the general history rules too


def test_missing_container_is_the_api_message():
    state = ptc.PtcState()
    cell = parked(state)
    with pytest.raises(InvalidRequestError) as caught:
        ptc.find_continuation(history(cell, results_for(cell, "1", "2")), None, state)
    assert caught.value.message == (
        "container_id is required when there are pending tool uses generated by code execution with tools."
    )


@pytest.mark.parametrize(
    "extra",
    [{"type": "text", "text": "here you go"}, {"type": "image", "source": {"type": "url", "url": "x"}}],
)
def test_only_tool_results_may_answer(extra):
    state = ptc.PtcState()
    cell = parked(state)
    with pytest.raises(InvalidRequestError, match=r"^messages\.2\.content\.2: .*only `tool_result` blocks"):
        ptc.find_continuation(history(cell, [*results_for(cell, "1", "2"), extra]), cell.container_id, state)
    with pytest.raises(InvalidRequestError, match="only `tool_result` blocks"):
        ptc.find_continuation(history(cell, "just text"), cell.container_id, state)


def test_every_pending_call_needs_a_result():
    state = ptc.PtcState()
    cell = parked(state)
    first = results_for(cell, "1", "2")[:1]
    missing = list(cell.calls)[1]
    with pytest.raises(
        InvalidRequestError, match=rf"^messages\.1: `tool_use` ids were found without .*{missing}"
    ):
        ptc.find_continuation(history(cell, first), cell.container_id, state)


def test_results_must_be_text():
    state = ptc.PtcState()
    cell = parked(state)
    image = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}]
    with pytest.raises(InvalidRequestError, match=r"^messages\.2\.content\.1\.content\.0: .*must be text"):
        ptc.find_continuation(history(cell, results_for(cell, "1", image)), cell.container_id, state)


def test_a_cell_that_no_longer_waits_is_a_400():
    state = ptc.PtcState()
    cell = parked(state)
    messages = history(cell, results_for(cell, "1", "2"))
    state.take(cell.container_id)
    with pytest.raises(InvalidRequestError, match="is not waiting for results in container"):
        ptc.find_continuation(messages, cell.container_id, state)
    parked(state, srv="srvtoolu_01Another")  # a different cell waits in that container
    with pytest.raises(InvalidRequestError, match="is not waiting"):
        ptc.find_continuation(messages, cell.container_id, state)


def test_requests_that_answer_no_programmatic_call_are_not_continuations():
    state = ptc.PtcState()
    plain = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}]},
    ]
    assert ptc.find_continuation(plain, None, state) is None
    assert ptc.find_continuation([{"role": "user", "content": "hi"}], None, state) is None


# ------------------------------------------------------------------------------------------- history


def recorded_conversation(real_api_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The messages a client holds after the recorded 5-step PTC exchange, and the step bodies."""
    steps = [step["body"] for step in json.loads((real_api_dir / RECORDING).read_text())["steps"]]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Simulate the dice game"}]
    for step in steps:
        messages.append({"role": "assistant", "content": step["content"]})
        uses = [b for b in step["content"] if b["type"] == "tool_use"]
        if uses:
            messages.append(
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": u["id"], "content": "4"} for u in uses
                    ],
                }
            )
    return messages, steps


def test_the_recorded_conversation_passes_the_history_checks(real_api_dir):
    messages, steps = recorded_conversation(real_api_dir)
    assert [s["stop_reason"] for s in steps] == ["tool_use"] * 4 + ["end_turn"]
    # the code_execution_tool_result arrives four assistant messages after its server_tool_use
    assert check_history(messages) == []
    assert check_history([*messages, {"role": "user", "content": "who won?"}]) == []
    for cut in range(3, len(messages) + 1, 2):  # every intermediate request of the exchange
        assert check_history(messages[:cut]) == []


def test_history_rules_still_hold_outside_ptc():
    use = {"type": "server_tool_use", "id": "srvtoolu_01X", "name": "code_execution", "input": {"code": "1"}}
    with pytest.raises(InvalidRequestError, match="without a corresponding `code_execution_tool_result`"):
        check_history(
            [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": [use]},
                {"role": "user", "content": "b"},
            ]
        )


def test_a_programmatic_cell_is_not_a_paused_call(real_api_dir):
    messages, _ = recorded_conversation(real_api_dir)
    first_response = messages[:2]  # ends with the assistant's server_tool_use and its tool_use calls
    assert check_history(first_response) == []


# ------------------------------------------------------------------------------------------- blocks


def test_blocks_have_the_recorded_key_order(real_api_dir):
    _, steps = recorded_conversation(real_api_dir)
    recorded_server, recorded_use = steps[0]["content"][1], steps[0]["content"][2]
    policy = ptc.tool_policy(
        body("code_execution_20250825", custom("rollDie", ["code_execution_20250825"])),
        "code_execution_20250825",
        SONNET,
    )
    server = ptc.server_tool_use_block(
        recorded_server["id"], recorded_server["input"]["code"], policy
    ).to_wire()
    assert server == recorded_server
    cell = ptc.PendingCell("container_01A", recorded_server["id"], policy)
    pending = PendingCalls(calls=(ToolCall("call_9", "rollDie", recorded_use["input"]),), duration_s=0)
    (use,) = ptc.tool_use_blocks(pending, cell, IdFactory(seed=1))
    wire_use = use.to_wire()
    assert list(wire_use) == list(recorded_use)
    assert {**wire_use, "id": recorded_use["id"]} == recorded_use
    assert cell.calls == {use.id: "call_9"}


def result(**fields: Any) -> CommandResult:
    return CommandResult(**{"stdout": "out\n", "stderr": "", "return_code": 0, "duration_s": 0.1, **fields})


def policy_for(version: str, programmatic: bool) -> ptc.ToolPolicy:
    tools = [custom("f", [version])] if programmatic else []
    return ptc.tool_policy(body(version, *tools), version, SONNET)


def test_result_block_of_a_finished_cell():
    block = ptc.cell_result_block(
        result(), "srvtoolu_01S", policy_for("code_execution_20250825", True), ["file_01"]
    )
    assert block.to_wire() == {
        "type": "code_execution_tool_result",
        "tool_use_id": "srvtoolu_01S",
        "content": {
            "type": "code_execution_result",
            "stdout": "out\n",
            "stderr": "",
            "return_code": 0,
            "content": [{"type": "code_execution_output", "file_id": "file_01"}],
        },
    }


def test_timeouts_are_errors_except_the_20260521_ptc_limit():
    timed_out = result(timed_out=True, return_code=137, interpreter_died=True)
    plain = ptc.cell_result_block(timed_out, "s", policy_for("code_execution_20260120", True))
    assert plain.content == wire.CodeExecutionError(error_code="execution_time_exceeded")
    limited = ptc.cell_result_block(timed_out, "s", policy_for("code_execution_20260521", True))
    assert isinstance(limited.content, wire.CodeExecutionResult)
    assert limited.content.return_code == 137
    assert (
        limited.content.stderr == "detection_timeout: the cell ran longer than 90 seconds and was stopped.\n"
    )
    no_ptc = ptc.cell_result_block(timed_out, "s", policy_for("code_execution_20260521", False))
    assert no_ptc.content == wire.CodeExecutionError(error_code="execution_time_exceeded")


def test_lost_state_is_reported_in_stderr_of_persistent_cells():
    persistent = policy_for("code_execution_20260120", False)
    restarted = ptc.cell_result_block(result(stderr="e\n", interpreter_restarted=True), "s", persistent)
    assert restarted.content.stderr == ptc.RESTART_NOTE + "e\n"  # type: ignore[union-attr]
    died = ptc.cell_result_block(result(return_code=3, interpreter_died=True), "s", persistent)
    assert died.content.stderr == ptc.DIED_NOTE.format(status=3)  # type: ignore[union-attr]
    fresh = ptc.cell_result_block(
        result(return_code=3, interpreter_died=True), "s", policy_for("code_execution_20250825", True)
    )
    assert fresh.content.stderr == ""  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------- two-event stream


def test_prepopulated_continuation_streams_in_two_events_the_sdk_accepts(real_api_dir):
    recorded = [
        json.loads(line)
        for line in (real_api_dir / "vercel-ai/anthropic-programmatic-tool-calling.1.chunks.txt")
        .read_text()
        .splitlines()
    ]
    recorded_continuation = recorded[[e["type"] for e in recorded].index("message_stop") + 1]["message"]
    caller = wire.CodeExecutionCaller(
        type="code_execution_20250825", tool_id="srvtoolu_01MzSrFWsmzBdcoQkGWLyRjK"
    )
    message = wire.Message(
        model=SONNET,
        id="msg_01KSVw3xmXbMNJPNMt46BC5W",
        content=[
            wire.ToolUseBlock(id="toolu_01A", name="rollDie", input={"player": "player2"}, caller=caller)
        ],
        container=wire.Container(id="container_01A", expires_at="2025-12-20T05:33:37.969567Z"),
        stop_reason="tool_use",
        usage=ptc.continuation_usage(),
        include_stop_details=False,
    ).to_wire()
    assert list(message) == list(recorded_continuation)
    # the recording writes only these usage keys; ours also has the cache counters (always 0 here)
    assert set(recorded_continuation["usage"]) <= set(message["usage"])
    assert (message["usage"]["input_tokens"], message["usage"]["output_tokens"]) == (0, 0)
    events = ptc.prepopulated_stream(message)
    payload = b"".join(sse.encode_event(e["type"], e) for e in events)
    assert sse.shape_of(sse.parse_sse(payload)) == ["message_start", "message_stop"]
    assert sse.grammar_problems(sse.parse_sse(payload)) == []

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=payload)

    with httpx2.Client(transport=httpx2.MockTransport(handler)) as http:
        client = anthropic.Anthropic(base_url="http://127.0.0.1:9", api_key="k", http_client=http)
        with client.beta.messages.stream(
            model="claude-opus-4-6", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        ) as s:
            final = s.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].caller.tool_id == "srvtoolu_01MzSrFWsmzBdcoQkGWLyRjK"  # type: ignore[union-attr]
    assert final.usage.input_tokens == final.usage.output_tokens == 0
    assert final.container is not None and final.container.id == "container_01A"
