"""Streaming properties: for any script the SDK's accumulated stream equals the plain response, and blocks
reach the client while later steps still run."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator import Emulator, bash, create, python, text, view
from tests.integration.test_streaming_basics import TOOL, normalise

SAFE_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))
    | st.sampled_from(['"', "\\", "\n", "é", "✓"]),
    max_size=40,
)


@st.composite
def scripts(draw: st.DrawFn) -> list:
    steps = []
    for index in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["text", "bash", "python", "create_view"]))
        payload = draw(SAFE_TEXT)
        if kind == "text":
            steps.append(text(payload or "x"))
        elif kind == "bash":
            steps.append(bash(f"printf '%s' {repr(payload)!s} | wc -c"))
        elif kind == "python":
            steps.append(python(f"print(len({payload!r}))"))
        else:
            steps += [create(f"/tmp/f{index}.txt", payload), view(f"/tmp/f{index}.txt")]
    return steps


@pytest.fixture(scope="module")
def fragmenting_emulator():
    # Tiny fragments and frequent pings: the hardest stream for the SDK's accumulator.
    with Emulator(streaming={"seed": 7, "max_size": 3, "ping_every": 3}) as emulator:
        yield emulator, emulator.anthropic_client()


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(steps=scripts())
def test_stream_equals_plain_for_any_script(fragmenting_emulator, steps):
    params = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "tools": [TOOL],
        "messages": [{"role": "user", "content": "go"}],
    }
    emulator, client = fragmenting_emulator
    emulator.add_turn(*steps)
    plain = client.beta.messages.create(**params)
    emulator.add_turn(*steps)
    with client.beta.messages.stream(**params) as stream:
        streamed = stream.get_final_message()
    assert normalise(streamed) == normalise(plain)


def test_tool_use_block_arrives_before_the_command_finishes(code_execution_emulator, anthropic_client):
    code_execution_emulator.add_turn(bash("sleep 3; echo late"), text("done"))
    params = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 50,
        "tools": [TOOL],
        "messages": [{"role": "user", "content": "go"}],
    }

    started = time.monotonic()
    arrivals: dict[str, float] = {}
    with anthropic_client.beta.messages.stream(**params) as stream:
        for event in stream:
            if event.type == "content_block_stop" and event.index == 0:
                arrivals["tool_use"] = time.monotonic() - started
            if event.type == "content_block_start" and event.index == 1:
                arrivals["result"] = time.monotonic() - started
    # Generous margins: the point is the order in time, not speed.
    assert arrivals["tool_use"] < 2.0 <= arrivals["result"]
