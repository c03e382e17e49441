"""Programmatic tool calling and REPL persistence through the official SDK (issue #8 acceptance)."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from emulator import python, text
from emulator.wire import sse

DICE = """
import asyncio

async def main():
    p1 = p2 = rounds = 0
    while p1 < 3 and p2 < 3:
        rounds += 1
        results = await asyncio.gather(rollDie({"player": "player1"}), rollDie({"player": "player2"}))
        r1, r2 = int(results[0]), int(results[1])
        print(f"Round {rounds}: {r1} vs {r2}")
        if r1 > r2:
            p1 += 1
        elif r2 > r1:
            p2 += 1
    print("PLAYER 1 WINS" if p1 == 3 else "PLAYER 2 WINS", rounds)

asyncio.run(main())
"""
ROLL_DIE = {
    "name": "rollDie",
    "description": "Roll a die",
    "input_schema": {"type": "object", "properties": {"player": {"type": "string"}}, "required": ["player"]},
    "allowed_callers": ["code_execution_20250825"],
}


def params(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-opus-4-6",
        "max_tokens": 4096,
        "tools": [{"type": "code_execution_20250825", "name": "code_execution"}, ROLL_DIE],
        "messages": [{"role": "user", "content": "Simulate the dice game"}],
    }
    body.update(overrides)
    return body


def as_param(message: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]}


def test_recorded_shape_by_hand(code_execution_emulator, anthropic_client):
    code_execution_emulator.add_turn(text("I'll simulate the game."), python(DICE), text("Game over!"))
    messages = [{"role": "user", "content": "Simulate the dice game"}]
    responses = []
    rolls = iter([6, 6, 5, 4, 6, 4, 6, 3])
    while True:
        container = responses[-1].container.id if responses else None
        extra = {"container": container} if container else {}
        message = anthropic_client.beta.messages.create(**params(messages=messages, **extra))
        responses.append(message)
        if message.stop_reason != "tool_use":
            break
        messages.append(as_param(message))
        uses = [b for b in message.content if b.type == "tool_use"]
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": u.id, "content": str(next(rolls))} for u in uses
                ],
            }
        )
    shapes = [[b.type for b in m.content] for m in responses]
    assert shapes == [["text", "server_tool_use", "tool_use", "tool_use"]] + [
        ["tool_use", "tool_use"]
    ] * 3 + [["code_execution_tool_result", "text"]]
    assert [m.stop_reason for m in responses] == ["tool_use"] * 4 + ["end_turn"]
    srv = responses[0].content[1]
    assert srv.caller.type == "direct" and srv.name == "code_execution"
    for m in responses[:4]:
        for b in m.content:
            if b.type == "tool_use":
                assert (b.caller.type, b.caller.tool_id) == ("code_execution_20250825", srv.id)
    assert [(m.usage.input_tokens, m.usage.output_tokens) for m in responses[1:4]] == [(0, 0)] * 3
    assert responses[0].usage.output_tokens > 0 and responses[-1].usage.input_tokens > 0
    result = responses[-1].content[0]
    assert result.tool_use_id == srv.id
    assert result.content.stdout.splitlines()[-1] == "PLAYER 1 WINS 4"
    assert len({m.container.id for m in responses[:4]}) == 1


@pytest.mark.parametrize("threaded", [True, False])
def test_sdk_tool_runner_completes_it(code_execution_emulator, anthropic_client, threaded):
    from anthropic import beta_tool

    code_execution_emulator.add_turn(python(DICE), text("Game over!"))
    calls = []

    @beta_tool
    def rollDie(player: str) -> str:
        """Roll a die"""
        calls.append(player)
        return "6" if player == "player1" else "2"

    tool_param = {**rollDie.to_dict(), "allowed_callers": ["code_execution_20250825"]}
    rollDie.to_dict = lambda: tool_param  # type: ignore[method-assign]
    extra = {} if threaded else {"thread": False}
    runner = anthropic_client.beta.messages.tool_runner(
        model="claude-opus-4-6",
        max_tokens=4096,
        tools=[{"type": "code_execution_20250825", "name": "code_execution"}, rollDie],
        messages=[{"role": "user", "content": "Simulate the dice game"}],
        **extra,
    )
    messages = list(runner)
    assert [m.stop_reason for m in messages] == ["tool_use"] * 3 + ["end_turn"]
    assert messages[-1].content[0].content.stdout.endswith("PLAYER 1 WINS 3\n")
    assert calls.count("player1") == 3


def test_continuations_stream_in_two_events(code_execution_emulator, anthropic_client):
    code_execution_emulator.add_turn(python(DICE), text("done"))
    first = anthropic_client.beta.messages.create(**params())
    uses = [b for b in first.content if b.type == "tool_use"]
    body = params(
        messages=[
            params()["messages"][0],
            as_param(first),
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": u.id, "content": "1"} for u in uses],
            },
        ],
        container=first.container.id,
        stream=True,
    )
    with code_execution_emulator.http_client() as http:
        raw = http.post(
            "/v1/messages", json=body, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}
        )
    events = sse.parse_sse(raw.content)
    assert sse.shape_of(events) == ["message_start", "message_stop"]
    message = events[0].data["message"]
    assert [b["type"] for b in message["content"]] == ["tool_use", "tool_use"]
    assert message["stop_reason"] == "tool_use" and message["usage"]["output_tokens"] == 0


def test_first_ptc_response_streams_tool_use_whole(code_execution_emulator, anthropic_client):
    code_execution_emulator.add_turn(python(DICE), text("done"))
    with anthropic_client.beta.messages.stream(**params()) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["server_tool_use", "tool_use", "tool_use"]
    assert final.content[1].input == {"player": "player1"}


def test_missing_container_is_a_400(code_execution_emulator, anthropic_client):
    code_execution_emulator.add_turn(python(DICE), text("done"))
    first = anthropic_client.beta.messages.create(**params())
    uses = [b for b in first.content if b.type == "tool_use"]
    with pytest.raises(
        anthropic.BadRequestError, match="container_id is required when there are pending tool uses"
    ):
        anthropic_client.beta.messages.create(
            **params(
                messages=[
                    params()["messages"][0],
                    as_param(first),
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": u.id, "content": "1"} for u in uses
                        ],
                    },
                ]
            )
        )


def test_repl_state_persists_across_requests(anthropic_client):
    tools = [{"type": "code_execution_20260120", "name": "code_execution"}]
    first = anthropic_client.beta.messages.create(
        model="claude-opus-4-6",
        max_tokens=100,
        tools=tools,
        messages=[{"role": "user", "content": "```python\nsecret = 6 * 7\n```"}],
    )
    second = anthropic_client.beta.messages.create(
        model="claude-opus-4-6",
        max_tokens=100,
        tools=tools,
        container=first.container.id,
        messages=[{"role": "user", "content": "```python\nprint(secret)\n```"}],
    )
    assert second.content[1].content.stdout == "42"
    haiku = anthropic_client.beta.messages.create(
        model="claude-haiku-4-5",
        max_tokens=100,
        tools=tools,
        container=first.container.id,
        messages=[{"role": "user", "content": "```python\nprint('secret' in globals())\n```"}],
    )
    assert haiku.content[1].content.stdout == "False"  # behaves as 20250825: a fresh process


def test_a_paused_python_call_runs_in_the_repl(code_execution_emulator, anthropic_client):
    from emulator import pause

    tools = [{"type": "code_execution_20260120", "name": "code_execution"}]
    code_execution_emulator.add_turn(python("kept = 'yes'"), pause(), python("print(kept)"), text("ok"))
    first = anthropic_client.beta.messages.create(
        model="claude-opus-4-6", max_tokens=100, tools=tools, messages=[{"role": "user", "content": "go"}]
    )
    assert first.stop_reason == "pause_turn"
    second = anthropic_client.beta.messages.create(
        model="claude-opus-4-6",
        max_tokens=100,
        tools=tools,
        container=first.container.id,
        messages=[{"role": "user", "content": "go"}, as_param(first)],
    )
    assert second.content[0].content.stdout == "yes"
