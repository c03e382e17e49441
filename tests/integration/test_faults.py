"""Every error on demand, through the official SDK: tool error codes, HTTP errors, stream faults."""

from __future__ import annotations

import time

import anthropic
import httpx2
import pytest
from anthropic.types.beta import (
    BetaBashCodeExecutionToolResultError,
    BetaCodeExecutionToolResultError,
    BetaTextEditorCodeExecutionToolResultError,
)

from emulator import Emulator, bash, create, faults, python, str_replace, text, view
from emulator.engine.faults import DOCUMENTED_2025_CODES, TOOL_ERROR_CODES

TOOL = {"type": "code_execution_20250825", "name": "code_execution"}
PARAMS = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 100,
    "tools": [TOOL],
    "messages": [{"role": "user", "content": "go"}],
}
STEP_FOR_TOOL = {
    "bash_code_execution": lambda: bash("echo should-not-run"),
    "text_editor_code_execution": lambda: view("x.txt"),
    "code_execution": lambda: python("print('should not run')"),
}
SUCCEEDING_STEP = {
    "bash_code_execution": lambda: bash("echo ran"),
    "text_editor_code_execution": lambda: create("made.txt", "x\n"),
    "code_execution": lambda: python("print('ran')"),
}
ERROR_CLASS = {
    "bash_code_execution": BetaBashCodeExecutionToolResultError,
    "text_editor_code_execution": BetaTextEditorCodeExecutionToolResultError,
    "code_execution": BetaCodeExecutionToolResultError,
}
CURRENT_CASES = [(tool, code) for tool, codes in TOOL_ERROR_CODES.items() for code in sorted(codes)]
LEGACY_CASES = [(tool, code) for tool, codes in DOCUMENTED_2025_CODES.items() for code in sorted(codes)]


@pytest.mark.parametrize(("tool", "code"), CURRENT_CASES)
def test_every_tool_error_code_as_the_sdk_error_class(code_execution_emulator, anthropic_client, tool, code):
    code_execution_emulator.inject(faults.tool_error(code, tool=tool))
    code_execution_emulator.add_turn(STEP_FOR_TOOL[tool](), SUCCEEDING_STEP[tool]())

    message = anthropic_client.beta.messages.create(**PARAMS)

    first, second = message.content[1].content, message.content[3].content
    assert isinstance(first, ERROR_CLASS[tool])
    assert first.error_code == code
    assert not isinstance(second, ERROR_CLASS[tool])  # count=1: only the next call fails
    if tool == "text_editor_code_execution":
        assert first.error_message


@pytest.mark.parametrize(("tool", "code"), LEGACY_CASES)
def test_documented_2025_codes_need_their_fidelity_switch(tool, code):
    with Emulator() as plain, pytest.raises(ValueError, match="documented-2025"):
        plain.inject(faults.tool_error(code, tool=tool))
    with Emulator(fidelity="documented-2025") as legacy:
        legacy.inject(faults.tool_error(code, tool=tool))
        legacy.add_turn(STEP_FOR_TOOL[tool]())
        message = legacy.anthropic_client().beta.messages.create(**PARAMS)
        assert message.content[1].content.error_code == code


def test_string_not_found_occurs_naturally_under_documented_2025():
    with Emulator(fidelity="documented-2025") as legacy:
        legacy.add_turn(create("f.txt", "abc\n"), str_replace("f.txt", "zzz", "y"))
        message = legacy.anthropic_client().beta.messages.create(**PARAMS)
        assert message.content[3].content.error_code == "string_not_found"


HTTP_CASES = [
    (400, anthropic.BadRequestError, "invalid_request_error"),
    (401, anthropic.AuthenticationError, "authentication_error"),
    (402, anthropic.APIStatusError, "billing_error"),
    (403, anthropic.PermissionDeniedError, "permission_error"),
    (404, anthropic.NotFoundError, "not_found_error"),
    (413, anthropic.APIStatusError, "request_too_large"),
    (429, anthropic.RateLimitError, "rate_limit_error"),
    (500, anthropic.InternalServerError, "api_error"),
    (504, anthropic.InternalServerError, "timeout_error"),
    (529, anthropic.InternalServerError, "overloaded_error"),
]


@pytest.mark.parametrize(("status", "exception", "error_type"), HTTP_CASES)
def test_every_http_error_as_the_sdk_exception(
    code_execution_emulator, anthropic_client, status, exception, error_type
):
    code_execution_emulator.inject(faults.http_error(status))

    with pytest.raises(exception) as caught:
        anthropic_client.beta.messages.create(**PARAMS)

    assert caught.value.status_code == status
    assert caught.value.body["error"]["type"] == error_type
    assert caught.value.request_id and caught.value.request_id.startswith("req_01")
    if status == 429:
        headers = caught.value.response.headers
        assert headers["retry-after-ms"] == "1" and "anthropic-ratelimit-requests-remaining" in headers
    assert anthropic_client.beta.messages.create(**PARAMS).type == "message"  # count=1: the next one passes


def test_sdk_specific_classes_for_402_413_529():
    assert issubclass(anthropic.OverloadedError, anthropic.APIStatusError)
    with Emulator() as emulator:
        client = emulator.anthropic_client()
        for status, name in [
            (402, "PaymentRequiredError"),
            (413, "ContentTooLargeError"),
            (529, "OverloadedError"),
        ]:
            emulator.inject(faults.http_error(status))
            with pytest.raises(getattr(anthropic, name)):
                client.beta.messages.create(**PARAMS)


def test_retried_529_succeeds_on_the_next_attempt(code_execution_emulator):
    code_execution_emulator.inject(faults.http_error(529, count=3))
    client = code_execution_emulator.anthropic_client(max_retries=3)

    started = time.monotonic()
    message = client.beta.messages.create(**PARAMS)
    elapsed = time.monotonic() - started

    assert message.type == "message"
    assert len(code_execution_emulator.requests) == 4
    # `retry-after-ms: 1` makes the SDK wait 1 ms per retry; with 0 it would fall back to its own backoff,
    # 0.5 + 1 + 2 s (less jitter) for these three retries
    assert elapsed < 0.25


def test_should_retry_header_controls_the_sdk(code_execution_emulator):
    code_execution_emulator.inject(faults.http_error(529, should_retry=False))
    client = code_execution_emulator.anthropic_client(max_retries=2)
    with pytest.raises(anthropic.OverloadedError):
        client.beta.messages.create(**PARAMS)
    assert len(code_execution_emulator.requests) == 1


def test_mid_stream_error_raises_in_the_iterator(code_execution_emulator, anthropic_client):
    code_execution_emulator.add_turn(bash("echo streamed"), text("never seen"))
    code_execution_emulator.inject(faults.stream_error(after_events=4))

    seen: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        anthropic_client.beta.messages.stream(**PARAMS) as stream,
    ):
        for event in stream:
            seen.append(event.type)
    assert caught.value.status_code == 200
    assert caught.value.body["error"]["type"] == "overloaded_error"
    assert caught.value.request_id
    assert seen and seen[0] == "message_start"


def test_dropped_connection_fails_the_stream(code_execution_emulator):
    code_execution_emulator.add_turn(bash("echo x"), text("y"))
    code_execution_emulator.inject(faults.drop_connection(after_events=3))
    base_url = code_execution_emulator.start_server()
    client = anthropic.Anthropic(base_url=base_url, api_key="k", max_retries=0)

    with (
        pytest.raises((anthropic.APIConnectionError, httpx2.HTTPError)),
        client.beta.messages.stream(**PARAMS) as stream,
    ):
        for _ in stream:
            pass


def test_stall_before_first_byte(code_execution_emulator, anthropic_client):
    code_execution_emulator.inject(faults.stall(0.3))
    started = time.monotonic()
    anthropic_client.beta.messages.create(**PARAMS)
    assert time.monotonic() - started >= 0.3


def test_forced_max_tokens_stop(code_execution_emulator, anthropic_client):
    code_execution_emulator.add_turn(text("a"), bash("echo 1"), bash("echo 2"))
    code_execution_emulator.inject(faults.force_stop("max_tokens", after_tool_calls=1))

    message = anthropic_client.beta.messages.create(**PARAMS)

    assert message.stop_reason == "max_tokens"
    assert [b.type for b in message.content] == ["text", "server_tool_use", "bash_code_execution_tool_result"]


def test_faults_target_by_match_and_request_number(code_execution_emulator, anthropic_client):
    code_execution_emulator.inject(
        faults.http_error(500, match="needle"), faults.http_error(503, request_number=2)
    )
    assert anthropic_client.beta.messages.create(**PARAMS).type == "message"
    with pytest.raises(anthropic.InternalServerError) as caught:
        anthropic_client.beta.messages.create(**PARAMS)
    assert caught.value.status_code == 503
    needle = {**PARAMS, "messages": [{"role": "user", "content": "find the needle"}]}
    with pytest.raises(anthropic.InternalServerError) as caught:
        anthropic_client.beta.messages.create(**needle)
    assert caught.value.status_code == 500


def test_faults_over_the_admin_api(code_execution_emulator):
    with code_execution_emulator.http_client() as http:
        armed = http.post(
            "/_emulator/faults",
            json={"kind": "tool_error", "error_code": "unavailable", "tool": "bash_code_execution"},
        )
        assert armed.status_code == 200 and armed.json()["data"][0]["error_code"] == "unavailable"
        bad = http.post(
            "/_emulator/faults",
            json={"kind": "tool_error", "error_code": "file_not_found", "tool": "bash_code_execution"},
        )
        assert bad.status_code == 400 and "file_not_found" in bad.json()["error"]["message"]
        legacy = http.post(
            "/_emulator/faults", json={"kind": "tool_error", "error_code": "container_expired"}
        )
        assert legacy.status_code == 400 and "documented-2025" in legacy.json()["error"]["message"]
    code_execution_emulator.add_turn(bash("echo hi"))
    message = code_execution_emulator.anthropic_client().beta.messages.create(**PARAMS)
    assert message.content[1].content.error_code == "unavailable"
    with code_execution_emulator.http_client() as http:
        assert http.get("/_emulator/faults").json() == {"data": []}


@pytest.mark.emulator_faults(faults.tool_error("too_many_requests", tool="bash_code_execution"))
def test_faults_marker(code_execution_emulator, anthropic_client):
    code_execution_emulator.add_turn(bash("echo hi"))
    assert (
        anthropic_client.beta.messages.create(**PARAMS).content[1].content.error_code == "too_many_requests"
    )


@pytest.mark.code_execution_emulator(limits={"timeout_s": 1.0})
def test_natural_triggers(code_execution_emulator):
    from emulator import text_editor

    code_execution_emulator.add_turn(
        bash("sleep 5"),
        view("/workspace/missing.txt"),
        text_editor(command="delete", path="a"),
        bash("echo still-usable"),
    )
    message = code_execution_emulator.anthropic_client().beta.messages.create(**PARAMS)
    timeout, missing, unknown, after = (message.content[i].content for i in (1, 3, 5, 7))
    assert timeout.error_code == "execution_time_exceeded"
    assert missing.error_code == "file_not_found"
    assert unknown.error_code == "invalid_tool_input"
    assert after.stdout == "still-usable\n"
