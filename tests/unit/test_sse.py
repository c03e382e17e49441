from __future__ import annotations

import json

from emulator.wire import sse


def events_of(chunks):
    parsed = []
    for chunk in chunks:
        text = chunk.decode()
        assert text.endswith("\n\n")
        name, data = text.strip("\n").split("\n")
        parsed.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return parsed


def test_tool_use_block_streams_empty_input_then_fragments():
    block = {
        "type": "server_tool_use",
        "id": "srvtoolu_1",
        "name": "bash_code_execution",
        "input": {"command": 'echo "é\\n"'},
    }
    events = events_of(sse.block_events(3, block, sse.Fragmenter(sse.Fragmentation(seed=1, max_size=3))))
    assert events[0] == (
        "content_block_start",
        {"type": "content_block_start", "index": 3, "content_block": {**block, "input": {}}},
    )
    deltas = [data["delta"]["partial_json"] for name, data in events if name == "content_block_delta"]
    assert deltas[0] == "" and len(deltas) > 3
    assert json.loads("".join(deltas)) == block["input"]
    assert "".join(deltas) == json.dumps(block["input"], ensure_ascii=False)
    assert events[-1] == ("content_block_stop", {"type": "content_block_stop", "index": 3})


def test_result_blocks_arrive_whole():
    block = {
        "type": "bash_code_execution_tool_result",
        "tool_use_id": "x",
        "content": {"type": "bash_code_execution_result"},
    }
    events = events_of(sse.block_events(0, block, sse.Fragmenter(sse.Fragmentation())))
    assert [name for name, _ in events] == ["content_block_start", "content_block_stop"]
    assert events[0][1]["content_block"] == block


def test_fragmentation_is_seeded():
    first = sse.Fragmenter(sse.Fragmentation(seed=5)).split("x" * 200)
    assert first == sse.Fragmenter(sse.Fragmentation(seed=5)).split("x" * 200)
    assert "".join(first) == "x" * 200


def test_message_delta_carries_container_and_cumulative_usage():
    message = {
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "stop_details": None,
        "container": {"id": "container_1", "expires_at": "t"},
        "usage": {
            "input_tokens": 5,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {},
            "output_tokens": 9,
            "service_tier": "standard",
            "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
        },
    }
    delta = sse.message_delta(message)
    assert delta["delta"] == {
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "stop_details": None,
        "container": {"id": "container_1", "expires_at": "t"},
    }
    assert list(delta["usage"]) == [
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "output_tokens",
        "server_tool_use",
    ]


def test_ping_has_the_apis_space():
    assert sse.encode_ping() == b'event: ping\ndata: {"type": "ping"}\n\n'
