"""Requests at the edges get the API's 4xx, never a 500 or a silent success: integer literals too long to
convert, an empty `messages` list, a built-in `str_replace` block without its separator."""

from __future__ import annotations

import anthropic
import httpx2
import pytest

from emulator.errors import InvalidRequestError
from emulator.wire.validation import validate_request

HUGE_INTEGER = "9" * 5000


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens", "/_emulator/faults"])
def test_a_5000_digit_integer_is_a_400_over_http(code_execution_emulator, path):
    body = (
        '{"model": "claude-sonnet-4-5", "max_tokens": ' + HUGE_INTEGER + ', "messages": '
        '[{"role": "user", "content": "hi"}]}'
    )
    with httpx2.Client(base_url=code_execution_emulator.start_server()) as http:
        answer = http.post(path, content=body, headers={"content-type": "application/json", "x-api-key": "k"})

    assert answer.status_code == 400
    assert answer.headers["request-id"].startswith("req_")
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"] == "Invalid JSON in request body: an integer has more than 4300 digits"


def test_empty_messages_is_a_400_in_the_apis_words(anthropic_client):
    with pytest.raises(anthropic.BadRequestError) as caught:
        anthropic_client.beta.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=[])
    # the real API's wording (an SDK traceback quoted in langchain-ai/langgraph discussion #501)
    assert caught.value.body["error"]["message"] == "messages: at least one message is required"

    with pytest.raises(anthropic.BadRequestError) as caught:
        anthropic_client.beta.messages.count_tokens(model="claude-sonnet-4-5", messages=[])
    assert caught.value.body["error"]["message"] == "messages: at least one message is required"


def test_empty_messages_comes_after_the_parsing_problems():
    # The API checks for messages after parsing the body: a parsing problem elsewhere is reported first.
    with pytest.raises(InvalidRequestError, match=r"^model: Field required$"):
        validate_request({"max_tokens": 1, "messages": []})
    with pytest.raises(InvalidRequestError, match=r"^messages: at least one message is required$"):
        validate_request({"max_tokens": 1, "messages": [], "model": "m"})


def test_a_thread_continue_may_send_no_messages():
    # SDK 2.13 resumes a paused turn held in a thread with `messages: []` (the server holds the conversation)
    body = {"max_tokens": 1, "messages": [], "model": "m"}
    validate_request({**body, "thread": {"type": "continue", "previous_message_id": "msg_01x"}})
    for thread in ({"type": "create"}, None):
        with pytest.raises(InvalidRequestError, match=r"^messages: at least one message is required$"):
            validate_request({**body, "thread": thread})


def test_str_replace_block_without_separator_shows_why_it_failed(ask):
    message = ask("```create notes.txt\nold line\n```\n\n```str_replace notes.txt\nold line\n```\n")

    kinds = [block.type for block in message.content]
    assert kinds == [
        "server_tool_use",
        "text_editor_code_execution_tool_result",
        "server_tool_use",
        "text_editor_code_execution_tool_result",
        "text",
    ]
    call, result = message.content[2], message.content[3]
    assert call.input == {"command": "str_replace", "path": "notes.txt", "old_str": "old line"}
    assert result.content.type == "text_editor_code_execution_tool_result_error"
    assert result.content.error_code == "invalid_tool_input"
    assert "new_str" in result.content.error_message
    assert message.content[4].text == "Ran 2 tool calls."
