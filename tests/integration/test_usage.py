"""Execution-time accounting: measured sandbox time per container and the published billing rule."""

from __future__ import annotations

import httpx2

from emulator import Emulator, bash, create, view

TOOL = {"type": "code_execution_20250825", "name": "code_execution"}
PARAMS = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 50,
    "tools": [TOOL],
    "messages": [{"role": "user", "content": "go"}],
}


def test_usage_measures_sandbox_time_and_applies_the_5_minute_minimum():
    with Emulator() as emulator:
        client = emulator.anthropic_client()
        emulator.add_turn(bash("sleep 0.3"), create("a.txt", "x"), view("a.txt"))
        first = client.beta.messages.create(**PARAMS)
        emulator.add_turn(bash("true"))
        client.beta.messages.create(**PARAMS)

        summary = emulator.usage()
        per_container = emulator.usage_ledger.per_container()

    assert summary.containers == 2 and summary.calls == 4
    assert 0.3 <= per_container[first.container.id].executed_s < 5
    assert summary.billed_hours == (2 * 300) / 3600  # both sessions are under the 5-minute minimum
    assert summary.cost_usd == 0.0  # inside the free monthly hours


def test_usage_over_the_admin_api_survives_reset():
    with Emulator() as emulator:
        emulator.add_turn(bash("true"))
        emulator.anthropic_client().beta.messages.create(**PARAMS)
        emulator.reset()
        usage = httpx2.Client(base_url=emulator.start_server()).get("/_emulator/usage").json()
    assert usage["containers"] == 1 and usage["calls"] == 1
    (only,) = usage["per_container"].values()
    assert only["calls"] == 1
