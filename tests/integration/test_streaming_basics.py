"""Streaming through the SDK: the accumulated message equals the non-streamed one (ids and times aside)."""

from __future__ import annotations

import re
from typing import Any

from emulator import bash, create, python, str_replace, text, view

TOOL = {"type": "code_execution_20250825", "name": "code_execution"}
ID = re.compile(r"\b(msg|srvtoolu|toolu|container|file)_01[1-9A-HJ-NP-Za-km-z]{22}\b")


def normalise(message: Any) -> dict[str, Any]:
    data = message.model_dump(mode="json", exclude_none=True)
    if data.get("container"):
        data["container"]["expires_at"] = "<time>"
    return _ids_out(data)


def _ids_out(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _ids_out(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_ids_out(item) for item in value]
    if isinstance(value, str):
        return ID.sub(lambda match: f"{match.group(1)}_<id>", value)
    return value


def turn():
    return [
        text("Let me write and run a script."),
        create("/tmp/q.py", 'print("quote \\" and unicode é ✓")\n'),
        bash("python3 /tmp/q.py"),
        str_replace("/tmp/q.py", "unicode", "UNICODE"),
        view("/tmp/q.py"),
        python("print(sum(range(10)))"),
        text("All done: ✓"),
    ]


def test_stream_accumulates_to_the_non_streamed_message(code_execution_emulator, anthropic_client):
    params = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 200,
        "tools": [TOOL],
        "messages": [{"role": "user", "content": "go"}],
    }
    code_execution_emulator.add_turn(*turn())
    plain = anthropic_client.beta.messages.create(**params)
    code_execution_emulator.add_turn(*turn())
    with anthropic_client.beta.messages.stream(**params) as stream:
        event_types = [event.type for event in stream]
        streamed = stream.get_final_message()

    assert normalise(streamed) == normalise(plain)
    assert event_types[0] == "message_start" and event_types[-1] == "message_stop"
    assert streamed.content[4].content.stdout == 'quote " and unicode é ✓\n'


def test_raw_sse_grammar(code_execution_emulator):
    code_execution_emulator.add_turn(bash("echo hi"), text("ok"))
    with (
        code_execution_emulator.http_client() as http,
        http.stream(
            "POST",
            "/v1/messages",
            headers={"x-api-key": "k"},
            json={
                "model": "claude-sonnet-4-5",
                "max_tokens": 50,
                "stream": True,
                "tools": [TOOL],
                "messages": [{"role": "user", "content": "go"}],
            },
        ) as answer,
    ):
        assert answer.headers["content-type"].startswith("text/event-stream")
        raw = answer.read().decode()

    events = [chunk for chunk in raw.split("\n\n") if chunk]
    assert all(chunk.startswith("event: ") and "\ndata: " in chunk for chunk in events)
    names = [chunk.split("\n", 1)[0].removeprefix("event: ") for chunk in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    tool_start = next(chunk for chunk in events if '"server_tool_use"' in chunk)
    assert '"input":{}' in tool_start
    first_delta = next(chunk for chunk in events if "input_json_delta" in chunk)
    assert '"partial_json":""' in first_delta
    result_at = next(i for i, chunk in enumerate(events) if "bash_code_execution_tool_result" in chunk)
    assert names[result_at] == "content_block_start" and names[result_at + 1] == "content_block_stop"
