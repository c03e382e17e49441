"""The Docker backend's REPL and streamed files through the official SDK: Python state that outlives a
request, a programmatic tool call answered by the client, and a 20 MB file in through `container_upload`
and out as a downloadable output file."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest

from emulator import bash, python, text
from emulator.sandbox import Limits, make_backend
from emulator.sandbox.base import (
    TRANSFER_CHUNK_BYTES,
    CellNotPending,
    PendingCalls,
    ReplSandbox,
    StreamingFiles,
    ToolCallResult,
)

from .conftest import results

pytestmark = pytest.mark.docker

REPL_TOOL = {"type": "code_execution_20260120", "name": "code_execution"}
PTC_TOOL = {"type": "code_execution_20250825", "name": "code_execution"}
LOOKUP = {
    "name": "lookup",
    "description": "Look a key up",
    "input_schema": {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]},
    "allowed_callers": ["code_execution_20250825"],
}


def _create(emulator, **params: Any):
    body: dict[str, Any] = {"max_tokens": 1024, "messages": [{"role": "user", "content": "go"}], **params}
    return emulator.anthropic_client().beta.messages.create(**body)


def test_repl_variable_survives_into_the_next_request(docker_emulator):
    docker_emulator.add_turn(python("secret = 6 * 7\nprint('set')"), text("set"))
    first = _create(docker_emulator, model="claude-sonnet-4-6", tools=[REPL_TOOL])
    assert [r.stdout.rstrip("\n") for r in results(first)] == ["set"]
    docker_emulator.add_turn(python("print(secret)"), text("read"))
    second = _create(
        docker_emulator, model="claude-sonnet-4-6", tools=[REPL_TOOL], container=first.container.id
    )
    assert second.container.id == first.container.id
    assert [(r.stdout.rstrip("\n"), r.return_code) for r in results(second)] == [("42", 0)]


def test_programmatic_tool_call_round_trip(docker_emulator):
    code = (
        "import asyncio\n"
        "async def main():\n"
        "    value = await lookup({'key': 'alpha'})\n"
        "    print('got', value)\n"
        "asyncio.run(main())\n"
    )
    docker_emulator.add_turn(python(code), text("done"))
    messages: list[dict[str, Any]] = [{"role": "user", "content": "look alpha up"}]
    params: dict[str, Any] = {"model": "claude-opus-4-6", "tools": [PTC_TOOL, LOOKUP], "messages": messages}
    first = _create(docker_emulator, **params)
    assert first.stop_reason == "tool_use"
    (use,) = [b for b in first.content if b.type == "tool_use"]
    assert (use.name, use.input) == ("lookup", {"key": "alpha"})
    messages.append(
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]}
    )
    messages.append(
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "A1"}]}
    )
    second = _create(docker_emulator, **params, container=first.container.id)
    assert second.stop_reason == "end_turn"
    (result,) = [b.content for b in second.content if b.type == "code_execution_tool_result"]
    assert (result.stdout.rstrip("\n"), result.return_code) == ("got A1", 0)


def test_20_mb_file_round_trip(docker_emulator):
    client = docker_emulator.anthropic_client()
    data = os.urandom(20 * 1024 * 1024)
    uploaded = client.beta.files.upload(file=("blob.bin", data, "application/octet-stream"))
    docker_emulator.add_turn(
        bash("sha256sum $INPUT_DIR/blob.bin | cut -d' ' -f1; cp $INPUT_DIR/blob.bin $OUTPUT_DIR/copy.bin"),
        text("copied"),
    )
    message = client.beta.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=1024,
        tools=[PTC_TOOL],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "copy it"},
                    {"type": "container_upload", "file_id": uploaded.id},
                ],
            }
        ],
    )
    (result,) = [b.content for b in message.content if b.type == "bash_code_execution_tool_result"]
    assert result.return_code == 0, result.stderr
    assert result.stdout.rstrip("\n") == hashlib.sha256(data).hexdigest()
    (output,) = result.content
    assert client.beta.files.retrieve_metadata(output.file_id).filename == "copy.bin"
    assert client.beta.files.download(output.file_id).read() == data


# --- the sandbox interfaces directly ----------------------------------------------------------------------


@pytest.fixture
def box(sandbox_image, tmp_path):
    backend = make_backend("docker", tmp_path, Limits(), pool_size=0, selfcheck=False)
    try:
        yield backend.open("repl")
    finally:
        backend.close()


def test_repl_state_dies_with_the_container_and_says_so(box, docker_client):
    assert isinstance(box, ReplSandbox) and isinstance(box, StreamingFiles)
    assert box.run_cell("x = 41").return_code == 0
    kept = box.run_cell("x += 1\nprint(x)")
    assert (kept.stdout, kept.interpreter_restarted) == ("42\n", False)
    box.stop()
    after_stop = box.run_cell("print(x)")
    assert after_stop.interpreter_restarted and "NameError" in after_stop.stderr
    box.run_cell("y = 1")
    docker_client.containers.get(box.engine_container).kill()
    after_kill = box.run_cell("print(y)")
    assert after_kill.interpreter_restarted and "NameError" in after_kill.stderr
    box.reset_repl()
    fresh = box.run_cell("print('fresh')")
    assert (fresh.stdout, fresh.interpreter_restarted) == ("fresh\n", False)


def test_a_cell_waits_on_tool_calls_and_can_be_cancelled(box):
    code = "import asyncio\nprint(asyncio.run(lookup({'key': 'k'})))\n"
    pending = box.run_cell(code, tools=["lookup"])
    assert isinstance(pending, PendingCalls)
    (call,) = pending.calls
    assert (call.name, call.input) == ("lookup", {"key": "k"})
    done = box.resume_cell({call.id: ToolCallResult(content="v")})
    assert (done.stdout, done.return_code) == ("v\n", 0)
    with pytest.raises(CellNotPending):
        box.resume_cell({call.id: ToolCallResult(content="v")})
    assert isinstance(box.run_cell(code, tools=["lookup"]), PendingCalls)
    cancelled = box.cancel_cell()
    assert cancelled is not None and "CancelledError" in cancelled.stderr
    assert box.cancel_cell() is None


def test_chunked_transfers_move_bounded_frames(box):
    data = os.urandom(20 * 1024 * 1024 + 12345)
    pieces = [data[i : i + 3_000_001] for i in range(0, len(data), 3_000_001)]
    assert box.write_file_chunks("/workspace/big.bin", iter(pieces)) == len(data)
    assert box.file_sha256("/workspace/big.bin") == hashlib.sha256(data).hexdigest()
    chunks = list(box.read_file_chunks("/workspace/big.bin"))
    assert max(len(c) for c in chunks) <= TRANSFER_CHUNK_BYTES and b"".join(chunks) == data
    assert box.write_file_chunks("/workspace/empty.bin", []) == 0
    assert box.read_file("/workspace/empty.bin") == b""
    assert box.file_sha256("/workspace/missing.bin") is None
    with pytest.raises(FileNotFoundError):
        list(box.read_file_chunks("/workspace/missing.bin"))
