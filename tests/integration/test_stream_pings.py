"""`ping_every` pings go only where the API pings: never after `message_stop`, never inside a result block."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator import Emulator, bash, text
from emulator.wire.sse import grammar_problems, misplaced_pings, parse_sse
from tests.integration.test_streaming_basics import TOOL
from tests.integration.test_streaming_properties import scripts

PING_EVERY = (1, 2, 3, 5)
BODY = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 100,
    "stream": True,
    "tools": [TOOL],
    "messages": [{"role": "user", "content": "go"}],
}


@pytest.fixture(scope="module")
def pinging_emulators() -> Iterator[dict[int, Emulator]]:
    emulators = {
        every: Emulator(streaming={"seed": 3, "max_size": 4, "ping_every": every}) for every in PING_EVERY
    }
    yield emulators
    for emulator in emulators.values():
        emulator.close()


def streamed(emulator: Emulator, steps: list) -> bytes:
    emulator.add_turn(*steps)
    with emulator.http_client() as http:
        answer = http.post("/v1/messages", headers={"x-api-key": "k"}, json=BODY)
    assert answer.status_code == 200
    return answer.content


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(steps=scripts(), every=st.sampled_from(PING_EVERY))
def test_pinged_streams_keep_the_grammar(pinging_emulators, steps, every):
    events = parse_sse(streamed(pinging_emulators[every], steps))

    assert grammar_problems(events) == []
    assert misplaced_pings(events) == []
    assert events[-1].data == {"type": "message_stop"}


def test_pings_are_put_off_past_a_result_block(pinging_emulators):
    events = parse_sse(streamed(pinging_emulators[1], [bash("echo hi"), text("a longer closing text")]))
    kinds = [event.data["type"] for event in events]
    # one ping due after every event: each waits for a place the API pings, so there are fewer than events
    assert 3 <= kinds.count("ping") < len(kinds) // 2
    result_start = next(
        position
        for position, event in enumerate(events)
        if event.data.get("content_block", {}).get("type") == "bash_code_execution_tool_result"
    )
    assert kinds[result_start + 1] == "content_block_stop"
    assert kinds[-2:] == ["message_delta", "message_stop"]
