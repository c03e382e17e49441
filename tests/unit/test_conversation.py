from __future__ import annotations

import pytest

from emulator.engine.conversation import PendingServerToolUse, check_history
from emulator.errors import InvalidRequestError

USE = {
    "type": "server_tool_use",
    "id": "srvtoolu_01A",
    "name": "bash_code_execution",
    "input": {"command": "ls"},
}
RESULT = {
    "type": "bash_code_execution_tool_result",
    "tool_use_id": "srvtoolu_01A",
    "content": {
        "type": "bash_code_execution_result",
        "stdout": "",
        "stderr": "",
        "return_code": 0,
        "content": [],
    },
}


def test_paired_history_passes():
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [USE, RESULT]},
        {"role": "user", "content": "more"},
    ]
    assert check_history(messages) == []


def test_paused_final_turn_returns_pending_call():
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [USE]}]
    assert check_history(messages) == [
        PendingServerToolUse("srvtoolu_01A", "bash_code_execution", {"command": "ls"})
    ]


def test_result_of_the_wrong_type_is_rejected():
    wrong = {**RESULT, "type": "text_editor_code_execution_tool_result"}
    with pytest.raises(InvalidRequestError, match=r"messages\.1\.content\.1: unexpected `tool_use_id`"):
        check_history([{"role": "user", "content": "hi"}, {"role": "assistant", "content": [USE, wrong]}])


def test_result_without_use_is_rejected():
    with pytest.raises(InvalidRequestError, match="bash_code_execution_tool_result"):
        check_history([{"role": "user", "content": "hi"}, {"role": "assistant", "content": [RESULT]}])


def test_tool_result_must_answer_previous_tool_use():
    tool_use = {"type": "tool_use", "id": "toolu_01B", "name": "f", "input": {}}
    ok = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [tool_use]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01B", "content": "1"}]},
    ]
    assert check_history(ok) == []
    with pytest.raises(InvalidRequestError, match=r"messages\.0\.content\.0"):
        check_history([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01B"}]}])


def test_final_assistant_message_may_be_empty_but_others_not():
    assert check_history([{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]) == []
    with pytest.raises(InvalidRequestError, match=r"messages\.0: all messages must have non-empty content"):
        check_history([{"role": "user", "content": ""}])
