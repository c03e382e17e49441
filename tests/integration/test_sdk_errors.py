"""Bad requests answer with the API's status, error type and JSON path, as the SDK's exception classes."""

from __future__ import annotations

import anthropic
import pytest

from emulator import bash

TOOL = {"type": "code_execution_20250825", "name": "code_execution"}


def create(client, **body):
    params = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }
    params.update(body)
    return client.beta.messages.create(**params)


def raw_post(client, body, headers=None):
    return client.post("/v1/messages", body=body, cast_to=object, options={"headers": headers or {}})


def test_missing_field_names_the_path(anthropic_client):
    with pytest.raises(anthropic.BadRequestError) as caught:
        raw_post(anthropic_client, {"model": "claude-sonnet-4-5", "messages": []})
    error = caught.value
    assert error.status_code == 400
    assert error.body["error"]["type"] == "invalid_request_error"
    assert error.body["error"]["message"] == "max_tokens: Field required"
    assert error.request_id and error.request_id.startswith("req_01")


def test_extra_field_in_a_block(anthropic_client):
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "x", "foo": 1}]},
        ],
    }
    with pytest.raises(anthropic.BadRequestError) as caught:
        raw_post(anthropic_client, body)
    # Like the real API (pydantic tagged unions), the block's tag is part of the path.
    assert (
        caught.value.body["error"]["message"]
        == "messages.1.content.0.text.foo: Extra inputs are not permitted"
    )


def test_unknown_tool_type(anthropic_client):
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(anthropic_client, tools=[{"type": "code_execution_29990101", "name": "code_execution"}])
    message = caught.value.body["error"]["message"]
    assert message.startswith(
        "tools.0: Input tag 'code_execution_29990101' found using 'type' does not match"
    )
    assert "'code_execution_20250825'" in message


def test_model_without_that_tool_version(anthropic_client):
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(
            anthropic_client,
            model="claude-opus-4-1",
            tools=[{"type": "code_execution_20260120", "name": "code_execution"}],
        )
    message = caught.value.body["error"]["message"]
    assert message.startswith("tools.0: Input tag 'code_execution_20260120' found using 'type'")
    assert "'code_execution_20250825'" in message and "'code_execution_20260521'" not in message


def test_missing_api_key_is_401(code_execution_emulator):
    # The SDK refuses to send a request without credentials, so this one goes out raw.
    with code_execution_emulator.http_client() as http:
        answer = http.post(
            "/v1/messages",
            json={
                "model": "claude-sonnet-4-5",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
    assert answer.status_code == 401
    assert answer.json()["error"] == {
        "type": "authentication_error",
        "message": "x-api-key header is required",
    }


@pytest.mark.code_execution_emulator(api_key="sk-right")
def test_wrong_api_key_is_401(code_execution_emulator):
    client = code_execution_emulator.anthropic_client(api_key="sk-wrong")
    with pytest.raises(anthropic.AuthenticationError) as caught:
        create(client)
    assert caught.value.body["error"]["message"] == "invalid x-api-key"
    assert create(code_execution_emulator.anthropic_client(api_key="sk-right")).stop_reason == "end_turn"


def test_x_api_key_header_is_accepted(code_execution_emulator):
    with code_execution_emulator.http_client() as http:
        answer = http.post(
            "/v1/messages",
            headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
            json={
                "model": "claude-sonnet-4-5",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
    assert answer.status_code == 200 and answer.json()["type"] == "message"


@pytest.mark.parametrize(
    ("content", "headers", "fragment"),
    [
        (b"{not json", {"content-type": "application/json"}, "Invalid JSON"),
        (b"\xff\xfe", {"content-type": "application/json"}, "UTF-8"),
        (b"[1, 2]", {"content-type": "application/json"}, ""),
        (b"hello", {"content-type": "text/plain"}, "Content-Type"),
        (b"[" * 100_000 + b"]" * 100_000, {"content-type": "application/json"}, ""),
    ],
)
def test_malformed_bodies_are_clear_400s(code_execution_emulator, content, headers, fragment):
    with code_execution_emulator.http_client() as http:
        answer = http.post("/v1/messages", headers={"x-api-key": "k", **headers}, content=content)
    assert answer.status_code == 400
    body = answer.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert fragment in body["error"]["message"]
    assert answer.headers["request-id"] == body["request_id"]


@pytest.mark.code_execution_emulator(max_body_bytes=1000)
def test_huge_body_is_413(code_execution_emulator):
    with code_execution_emulator.http_client() as http:
        answer = http.post("/v1/messages", headers={"x-api-key": "k"}, json={"padding": "x" * 5000})
    assert answer.status_code == 413
    assert answer.json()["error"]["type"] == "request_too_large"


def test_unknown_path_and_method(code_execution_emulator):
    with code_execution_emulator.http_client() as http:
        missing = http.get("/v1/nothing")
        wrong_method = http.get("/v1/messages")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    assert wrong_method.status_code == 405 and wrong_method.json()["type"] == "error"
    assert missing.headers["request-id"].startswith("req_")


def test_orphan_tool_result_is_rejected(anthropic_client):
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01XYZ", "content": "4"}]},
    ]
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(anthropic_client, messages=messages, tools=[TOOL])
    assert caught.value.body["error"]["message"].startswith(
        "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_01XYZ."
    )


def test_unpaired_server_tool_use_before_the_last_turn_is_rejected(anthropic_client):
    use = {
        "type": "server_tool_use",
        "id": "srvtoolu_01A",
        "name": "bash_code_execution",
        "input": {"command": "ls"},
    }
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": "and then?"},
    ]
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(anthropic_client, messages=messages, tools=[TOOL])
    assert caught.value.body["error"]["message"] == (
        "messages.1: `bash_code_execution` tool use with id `srvtoolu_01A` was found without a corresponding "
        "`bash_code_execution_tool_result` block"
    )


def test_prior_tool_blocks_sent_back_are_accepted(code_execution_emulator, anthropic_client):
    code_execution_emulator.add_turn(bash("echo 1"))
    first = create(anthropic_client, tools=[TOOL])
    code_execution_emulator.add_turn(bash("echo 2"))
    history = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": "again"},
    ]

    second = create(anthropic_client, tools=[TOOL], messages=history, container=first.container.id)

    assert second.content[1].content.stdout == "2\n"


def test_empty_message_content_is_rejected(anthropic_client):
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(anthropic_client, messages=[{"role": "user", "content": []}])
    assert caught.value.body["error"]["message"] == (
        "messages.0: all messages must have non-empty content except for the optional final assistant message"
    )


@pytest.mark.code_execution_emulator(strict_betas=True)
def test_strict_betas(code_execution_emulator):
    client = code_execution_emulator.anthropic_client()
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(client, tools=[TOOL])
    assert "Input tag 'code_execution_20250825'" in caught.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as unknown:
        create(client, tools=[TOOL], betas=["code-execution-2025-08-25", "no-such-beta-2099-01-01"])
    assert unknown.value.body["error"]["message"].startswith("Unexpected value(s) `no-such-beta-2099-01-01`")
    assert create(client, tools=[TOOL], betas=["code-execution-2025-08-25"]).type == "message"


def test_lenient_betas_by_default(anthropic_client):
    message = create(anthropic_client, tools=[TOOL], betas=["whatever-2099-01-01"])
    assert message.type == "message"


@pytest.mark.code_execution_emulator(strict_models=True)
def test_strict_models_404(code_execution_emulator):
    with pytest.raises(anthropic.NotFoundError) as caught:
        create(code_execution_emulator.anthropic_client(), model="claude-nonexistent-9")
    assert caught.value.body["error"] == {"type": "not_found_error", "message": "model: claude-nonexistent-9"}


def test_script_step_the_request_cannot_offer_is_a_clear_400(code_execution_emulator, anthropic_client):
    code_execution_emulator.add_turn(bash("ls"))
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(anthropic_client)
    assert "emulator script" in caught.value.body["error"]["message"]
