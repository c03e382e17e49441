from __future__ import annotations

from datetime import UTC, datetime

from emulator.wire import models as wire
from emulator.wire.ids import BASE58, IdFactory


def test_ids_have_the_real_shape_and_are_reproducible_with_a_seed():
    ids = IdFactory(seed=7)
    made = ids.container()
    assert made.startswith("container_01") and len(made) == len("container_") + 24
    assert set(made.removeprefix("container_01")) <= set(BASE58)
    assert IdFactory(seed=7).container() == made
    assert IdFactory().message() != IdFactory().message()


def test_message_key_order_and_omitted_optionals():
    message = wire.Message(
        model="m",
        id="msg_1",
        content=[
            wire.TextBlock(text="hi"),
            wire.ServerToolUseBlock(id="srvtoolu_1", name="bash_code_execution", input={"command": "ls"}),
            wire.BashToolResultBlock(
                tool_use_id="srvtoolu_1", content=wire.BashResult(stdout="", stderr="", return_code=0)
            ),
            wire.TextEditorToolResultBlock(
                tool_use_id="srvtoolu_2", content=wire.TextEditorError(error_code="file_not_found")
            ),
        ],
        stop_reason="end_turn",
        usage=wire.Usage(input_tokens=1, output_tokens=2),
    )
    data = message.to_wire()
    assert list(data) == [
        "model",
        "id",
        "type",
        "role",
        "content",
        "stop_reason",
        "stop_sequence",
        "stop_details",
        "usage",
    ]
    assert data["content"][0] == {"type": "text", "text": "hi"}
    assert "caller" not in data["content"][1]
    assert data["content"][2]["content"]["content"] == []
    assert data["content"][3]["content"] == {
        "type": "text_editor_code_execution_tool_result_error",
        "error_code": "file_not_found",
    }
    assert "inference_geo" not in data["usage"]
    assert "stop_details" not in message.model_copy(update={"include_stop_details": False}).to_wire()


def test_timestamps_have_microseconds_and_z():
    assert (
        wire.format_timestamp(datetime(2025, 10, 14, 10, 28, 40, 590791, tzinfo=UTC))
        == "2025-10-14T10:28:40.590791Z"
    )
