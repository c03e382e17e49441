"""pause_turn: scripted, automatic and forced pauses, continued the documented way, streaming or not."""

from __future__ import annotations

import anthropic
import pytest

from emulator import bash, faults, pause, text

TOOL = {"type": "code_execution_20250825", "name": "code_execution"}


def params(**extra):
    base = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 200,
        "tools": [TOOL],
        "messages": [{"role": "user", "content": "go"}],
    }
    base.update(extra)
    return base


def as_param(message):
    return {
        "role": "assistant",
        "content": [block.model_dump(exclude_none=True) for block in message.content],
    }


@pytest.mark.parametrize("streaming", [False, True])
def test_scripted_pause_then_continuation(code_execution_emulator, anthropic_client, streaming):
    code_execution_emulator.add_turn(bash("echo one"), pause(), bash("echo two"), text("finished"))

    def send(**body):
        if streaming:
            with anthropic_client.beta.messages.stream(**body) as stream:
                return stream.get_final_message()
        return anthropic_client.beta.messages.create(**body)

    paused = send(**params())
    assert paused.stop_reason == "pause_turn"
    assert [b.type for b in paused.content] == [
        "server_tool_use",
        "bash_code_execution_tool_result",
        "server_tool_use",
    ]
    pending = paused.content[-1]
    assert pending.input == {"command": "echo two"}

    messages = [{"role": "user", "content": "go"}, as_param(paused)]
    resumed = send(**params(messages=messages, container=paused.container.id))

    assert resumed.stop_reason == "end_turn"
    assert [b.type for b in resumed.content] == ["bash_code_execution_tool_result", "text"]
    assert resumed.content[0].tool_use_id == pending.id
    assert resumed.content[0].content.stdout == "two\n"
    assert resumed.container.id == paused.container.id


def test_user_message_after_unpaired_server_tool_use_is_400(code_execution_emulator, anthropic_client):
    code_execution_emulator.add_turn(pause(), bash("echo later"))
    paused = anthropic_client.beta.messages.create(**params())
    messages = [{"role": "user", "content": "go"}, as_param(paused), {"role": "user", "content": "continue"}]

    with pytest.raises(anthropic.BadRequestError) as caught:
        anthropic_client.beta.messages.create(**params(messages=messages, container=paused.container.id))

    assert (
        "was found without a corresponding `bash_code_execution_tool_result` block"
        in caught.value.body["error"]["message"]
    )


@pytest.mark.code_execution_emulator(pause_after_tool_calls=1)
def test_automatic_pause_after_n_tool_calls(code_execution_emulator):
    client = code_execution_emulator.anthropic_client()
    code_execution_emulator.add_turn(bash("echo 1"), bash("echo 2"), bash("echo 3"), text("end"))
    messages = [{"role": "user", "content": "go"}]
    outputs, stops = [], []
    container = None
    for _ in range(5):
        message = client.beta.messages.create(
            **params(messages=messages, **({"container": container} if container else {}))
        )
        container = message.container.id
        stops.append(message.stop_reason)
        outputs += [b.content.stdout for b in message.content if b.type == "bash_code_execution_tool_result"]
        if message.stop_reason != "pause_turn":
            break
        if messages[-1]["role"] == "assistant":
            messages[-1]["content"] += as_param(message)["content"]
        else:
            messages.append(as_param(message))
    assert outputs == ["1\n", "2\n", "3\n"]
    assert stops == ["pause_turn", "pause_turn", "end_turn"]


def test_forced_pause_via_fault(code_execution_emulator, anthropic_client):
    code_execution_emulator.inject(faults.force_stop("pause_turn", after_tool_calls=0))
    code_execution_emulator.add_turn(bash("echo paused-first"), text("ok"))
    paused = anthropic_client.beta.messages.create(**params())
    assert paused.stop_reason == "pause_turn" and [b.type for b in paused.content] == ["server_tool_use"]
    resumed = anthropic_client.beta.messages.create(
        **params(
            messages=[{"role": "user", "content": "go"}, as_param(paused)], container=paused.container.id
        )
    )
    assert resumed.content[0].content.stdout == "paused-first\n"
    assert resumed.content[-1].text == "ok"


@pytest.mark.parametrize("threaded", [True, False])
def test_sdk_tool_runner_completes_a_paused_conversation(code_execution_emulator, anthropic_client, threaded):
    code_execution_emulator.add_turn(bash("echo a"), pause(), bash("echo b"), text("all done"))

    extra = {} if threaded else {"thread": False}
    runner = anthropic_client.beta.messages.tool_runner(**params(), **extra)
    messages = list(runner)

    assert [m.stop_reason for m in messages] == ["pause_turn", "end_turn"]
    assert messages[-1].content[0].content.stdout == "b\n"
    assert messages[-1].content[-1].text == "all done"
    continuation = code_execution_emulator.requests[-1].body
    assert continuation["container"] == messages[0].container.id
    if threaded:
        # SDK 2.13 keeps the conversation on the server (message threads): the resume sends no messages.
        assert continuation["thread"] == {"type": "continue", "previous_message_id": messages[0].id}
        assert continuation["messages"] == [] and "tools" not in continuation
    else:
        assert continuation["messages"][-1]["role"] == "assistant"


def test_thread_errors_carry_the_sdk_error_codes(code_execution_emulator, anthropic_client):
    first = anthropic_client.beta.messages.create(
        **params(), thread={"type": "create"}, betas=["message-threads-2026-08-12"]
    )
    follow = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "more"}],
    }
    second = anthropic_client.beta.messages.create(
        **follow, thread={"type": "continue", "previous_message_id": first.id}
    )
    assert second.type == "message"
    held = code_execution_emulator.requests[-1]
    assert "tools" not in held.body
    with pytest.raises(anthropic.ConflictError) as again:
        anthropic_client.beta.messages.create(
            **follow, thread={"type": "continue", "previous_message_id": first.id}
        )
    assert again.value.body["error"]["details"] == {"error_code": "thread_already_continued"}
    with pytest.raises(anthropic.NotFoundError) as lost:
        anthropic_client.beta.messages.create(
            **follow, thread={"type": "continue", "previous_message_id": "msg_01nope"}
        )
    assert lost.value.body["error"]["details"] == {"error_code": "thread_not_found"}
    with pytest.raises(anthropic.BadRequestError):
        anthropic_client.beta.messages.create(
            **follow, tools=[TOOL], thread={"type": "continue", "previous_message_id": second.id}
        )
