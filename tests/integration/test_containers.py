"""Container lifecycle through the SDK: rolling expiry, the 30-day limit, unknown ids."""

from __future__ import annotations

from datetime import timedelta

import anthropic
import pytest

from emulator import bash, text

TOOL = {"type": "code_execution_20250825", "name": "code_execution"}


def run(client, command_container=None, **extra):
    params = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "tools": [TOOL],
        "messages": [{"role": "user", "content": "go"}],
    }
    if command_container is not None:
        params["container"] = command_container
    params.update(extra)
    return client.beta.messages.create(**params)


@pytest.mark.code_execution_emulator(manual_clock=True)
def test_expiry_rolls_forward_and_ends_after_30_days(code_execution_emulator):
    client = code_execution_emulator.anthropic_client()
    clock = code_execution_emulator.clock
    code_execution_emulator.add_turn(bash("echo 1 > f"))
    first = run(client)
    created = clock.now()
    assert first.container.expires_at == created + timedelta(hours=1)

    clock.advance(timedelta(hours=3))
    code_execution_emulator.add_turn(bash("cat f"))
    later = run(client, first.container.id)
    assert later.content[1].content.stdout == "1\n"
    assert later.container.expires_at > first.container.expires_at
    assert later.container.expires_at == (created + timedelta(hours=4))

    clock.advance(timedelta(days=30))
    with pytest.raises(anthropic.BadRequestError) as caught:
        run(client, first.container.id)
    assert caught.value.body["error"]["message"].startswith("container:")
    assert "expired" in caught.value.body["error"]["message"]


def test_unknown_container_is_404(anthropic_client):
    with pytest.raises(anthropic.NotFoundError) as caught:
        run(anthropic_client, "container_01NotARealContainerIdXYZ")
    assert caught.value.body["error"]["type"] == "not_found_error"
    assert "container_01NotARealContainerIdXYZ" in caught.value.body["error"]["message"]


def test_container_without_tool_call_is_reported_when_named(code_execution_emulator, anthropic_client):
    code_execution_emulator.add_turn(bash("true"))
    first = run(anthropic_client)

    code_execution_emulator.add_turn(text("no tools this time"))
    second = run(anthropic_client, first.container.id)

    assert second.container.id == first.container.id
