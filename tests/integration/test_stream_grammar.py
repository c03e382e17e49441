"""Recorded real streams parse with the parser we assert our own streams with, and share their grammar."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from emulator import bash, create, text
from emulator.wire.sse import SSEEvent, grammar_problems, misplaced_pings, parse_sse, shape_of

TOOL = {"type": "code_execution_20250825", "name": "code_execution"}
#: a recording made to reproduce a client bug: block starts reuse the previous index (see SOURCES.md)
KNOWN_IRREGULAR = {"anthropic-code-execution-pdf-skill.1.chunks.txt"}


def split_streams(events: list[SSEEvent]) -> list[list[SSEEvent]]:
    streams: list[list[SSEEvent]] = []
    for event in events:
        if event.data.get("type") == "message_start" or not streams:
            streams.append([])
        streams[-1].append(event)
    return streams


def chunk_file_sse(path: Path) -> str:
    """A `*.chunks.txt` recording (one `data:` payload a line, `event:` lines stripped) framed back into the
    SSE it came from, so that it goes through the same parser as our streams."""
    framed = [
        f"event: {json.loads(line)['type']}\ndata: {line}\n\n"
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    return "".join(framed)


def recorded_streams(real_api_dir: Path) -> dict[str, list[list[SSEEvent]]]:
    found: dict[str, list[list[SSEEvent]]] = {}
    for path in sorted(real_api_dir.rglob("*.chunks.txt")):
        found[path.name] = split_streams(parse_sse(chunk_file_sse(path)))
    for path in sorted(real_api_dir.rglob("*.yaml")):
        for number, interaction in enumerate(yaml.safe_load(path.read_text())["interactions"]):
            body = interaction["response"].get("body", {})
            raw = body.get("string") if isinstance(body, dict) else None
            if isinstance(raw, str) and "event: message_start" in raw:
                found[f"{path.name}#{number}"] = split_streams(parse_sse(raw))
    return found


def test_every_recorded_stream_parses_and_follows_the_grammar(real_api_dir):
    streams = recorded_streams(real_api_dir)
    assert len(streams) >= 10
    irregular = {}
    for name, parsed in streams.items():
        for stream in parsed:
            problems = grammar_problems(stream)
            if problems:
                irregular[name] = problems
    assert set(irregular) == KNOWN_IRREGULAR, irregular


def test_chunk_recordings_parse_to_one_event_a_line(real_api_dir):
    paths = sorted(real_api_dir.rglob("*.chunks.txt"))
    assert paths
    for path in paths:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        events = parse_sse(chunk_file_sse(path))
        assert [event.data for event in events] == [json.loads(line) for line in lines], path.name
        assert all(event.event == event.data["type"] for event in events)


def test_recorded_pings_are_where_ours_may_go(real_api_dir):
    pings = 0
    for name, parsed in recorded_streams(real_api_dir).items():
        for stream in parsed:
            assert misplaced_pings(stream) == [], name
            pings += sum(event.data["type"] == "ping" for event in stream)
    assert pings >= 10  # the rule is drawn from real pings, not from their absence


def test_raw_recorded_sse_with_padding_and_spaced_ping_parses(real_api_dir):
    raw_bodies = [
        interaction["response"]["body"]["string"]
        for path in real_api_dir.rglob("*.yaml")
        for interaction in yaml.safe_load(path.read_text())["interactions"]
        if isinstance(interaction["response"].get("body"), dict)
        and "event: message_start" in str(interaction["response"]["body"].get("string"))
    ]
    assert raw_bodies
    for raw in raw_bodies:
        events = parse_sse(raw)
        assert events[0].event == "message_start"
        assert all(event.event == event.data["type"] for event in events)


def _our_stream(emulator, steps) -> list[SSEEvent]:
    emulator.add_turn(*steps)
    with emulator.http_client() as http:
        answer = http.post(
            "/v1/messages",
            headers={"x-api-key": "k"},
            json={
                "model": "claude-sonnet-4-5",
                "max_tokens": 100,
                "stream": True,
                "tools": [TOOL],
                "messages": [{"role": "user", "content": "go"}],
            },
        )
    return parse_sse(answer.content)


def test_our_streams_have_the_recorded_grammar(code_execution_emulator, real_api_dir):
    ours = _our_stream(
        code_execution_emulator,
        [text("I'll compute."), create("/tmp/f.py", "print(55)\n"), bash("python3 /tmp/f.py"), text("55.")],
    )
    assert grammar_problems(ours) == []
    recorded = recorded_streams(real_api_dir)["anthropic-code-execution-20250825.1.chunks.txt"][0]

    # The same kinds of events in the same roles: tool-use blocks get deltas, results none, text text deltas.
    def collapse(shape):
        collapsed = []
        for item in shape:
            if not collapsed or collapsed[-1] != item:
                collapsed.append(item)
        return collapsed

    ours_shape, recorded_shape = collapse(shape_of(ours)), collapse(shape_of(recorded))
    vocabulary = set(recorded_shape)
    assert set(ours_shape) <= vocabulary | {"content_block_start:server_tool_use"}
    assert ours_shape[0] == recorded_shape[0] == "message_start"
    assert ours_shape[-2:] == recorded_shape[-2:] == ["message_delta", "message_stop"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fragmentation_is_reproducible_per_seed(seed):
    from emulator import Emulator

    def run():
        with Emulator(streaming={"seed": seed, "max_size": 4}, id_seed=1) as emulator:
            return [e.data for e in _our_stream(emulator, [text("héllo wörld " * 5), bash("echo 'a\"b'")])]

    first, second = run(), run()
    deltas = lambda events: [e["delta"] for e in events if e["type"] == "content_block_delta"]  # noqa: E731
    assert deltas(first) == deltas(second)
