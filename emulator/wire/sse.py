"""Server-sent events exactly as the Messages API streams them.

Grammar (from the recordings): `message_start` with empty content and null stop fields; for each block a
`content_block_start`, its deltas, and a `content_block_stop`; tool-use blocks start with `"input": {}` and a
first `input_json_delta` of `""`, then the input JSON in fragments; result blocks arrive whole in
`content_block_start` followed directly by `content_block_stop`; `message_delta` carries the stop reason,
the container and cumulative usage; `message_stop` ends the stream. Every event has an `event:` line.

Fragment sizes are drawn from a seeded generator so a given seed always splits the same way.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

TOOL_USE_TYPES = frozenset({"server_tool_use", "tool_use"})


def encode_event(event_type: str, data: dict[str, Any]) -> bytes:
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event_type}\ndata: {payload}\n\n".encode()


def encode_ping() -> bytes:
    # The API writes ping with a space after the colon; clients must not assume compact JSON.
    return b'event: ping\ndata: {"type": "ping"}\n\n'


def event_type(chunk: bytes) -> str:
    """The type of one encoded event (every event we write starts with its `event:` line)."""
    return chunk[len(b"event: ") : chunk.index(b"\n")].decode()


def ping_fits(previous: str | None, following: str | None) -> bool:
    """Whether a ping may go between these two (non-ping) events: where the recordings have them, inside a
    block that streams deltas (before a delta) and between two blocks. Never inside a result block (it
    arrives whole), never after `message_stop`. (The ping right after `message_start` is the docs'.)"""
    return following == "content_block_delta" or (
        previous == "content_block_stop" and following == "content_block_start"
    )


@dataclass(frozen=True)
class Fragmentation:
    """How text and partial JSON are cut into deltas, and how often pings interleave."""

    seed: int = 0
    min_size: int = 1
    max_size: int = 24
    #: a ping after `message_start`, then one every this many events (0: only the first), each put off to the
    #: next place the API pings (`ping_fits`) and dropped when the stream ends first
    ping_every: int = 0


class Fragmenter:
    def __init__(self, settings: Fragmentation) -> None:
        self._settings = settings
        self._random = random.Random(settings.seed)

    def split(self, text: str) -> list[str]:
        pieces: list[str] = []
        position = 0
        while position < len(text):
            size = self._random.randint(
                self._settings.min_size, max(self._settings.min_size, self._settings.max_size)
            )
            pieces.append(text[position : position + size])
            position += size
        return pieces


def start_event(
    *, model: str, message_id: str, input_tokens: int, stop_details: bool, inference_geo: str | None
) -> bytes:
    """`message_start`: the message with empty content and null stop fields, usage so far."""
    usage: dict[str, Any] = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 1,
        "service_tier": "standard",
    }
    if inference_geo is not None:
        usage["inference_geo"] = inference_geo
    message: dict[str, Any] = {
        "model": model,
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }
    if stop_details:
        message["stop_details"] = None
    message["usage"] = usage
    return encode_event("message_start", {"type": "message_start", "message": message})


def block_events(index: int, block: dict[str, Any], fragmenter: Fragmenter) -> Iterator[bytes]:
    kind = block["type"]
    if kind == "text":
        yield encode_event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": {**block, "text": ""}},
        )
        for piece in fragmenter.split(block["text"]):
            delta = {"type": "text_delta", "text": piece}
            yield encode_event(
                "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
            )
    elif kind in TOOL_USE_TYPES and not str((block.get("caller") or {}).get("type", "")).startswith(
        "code_execution_"
    ):
        # (a tool_use made from code streams whole: start with its input and caller, then stop)
        yield encode_event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}},
        )
        # The model writes tool input JSON with a space after each colon and comma.
        pieces = ["", *fragmenter.split(json.dumps(block["input"], ensure_ascii=False))]
        for piece in pieces:
            delta = {"type": "input_json_delta", "partial_json": piece}
            yield encode_event(
                "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
            )
    elif kind == "thinking":
        start = {**block, "thinking": "", "signature": ""}
        yield encode_event(
            "content_block_start", {"type": "content_block_start", "index": index, "content_block": start}
        )
        for piece in fragmenter.split(block["thinking"]):
            delta = {"type": "thinking_delta", "thinking": piece}
            yield encode_event(
                "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
            )
        delta = {"type": "signature_delta", "signature": block["signature"]}
        yield encode_event(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        )
    else:
        yield encode_event(
            "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
        )
    yield encode_event("content_block_stop", {"type": "content_block_stop", "index": index})


def message_delta(message: dict[str, Any]) -> dict[str, Any]:
    delta: dict[str, Any] = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    if "stop_details" in message:
        delta["stop_details"] = message["stop_details"]
    if "container" in message:
        delta["container"] = message["container"]
    usage = message["usage"]
    cumulative = {
        key: usage[key]
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
        if key in usage
    }
    if "server_tool_use" in usage:
        cumulative["server_tool_use"] = usage["server_tool_use"]
    return {"type": "message_delta", "delta": delta, "usage": cumulative}


def end_events(message: dict[str, Any]) -> Iterator[bytes]:
    yield encode_event("message_delta", message_delta(message))
    yield encode_event("message_stop", {"type": "message_stop"})


def error_event(error_type: str, message: str) -> bytes:
    return encode_event("error", {"type": "error", "error": {"type": error_type, "message": message}})


# --- reading streams (ours and recorded ones) -------------------------------------------------------------


@dataclass(frozen=True)
class SSEEvent:
    event: str | None
    data: dict[str, Any]


def parse_sse(raw: str | bytes) -> list[SSEEvent]:
    """Split an SSE body into events, as the SDK does: blank-line separated, `:` comments skipped,
    multi-line `data:` joined; `data` is parsed as JSON. Accepts `\\n`, `\\r\\n` and `\\r` line ends."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    events: list[SSEEvent] = []
    for chunk in text.split("\n\n"):
        name: str | None = None
        data_lines: list[str] = []
        for line in chunk.split("\n"):
            if not line or line.startswith(":"):
                continue
            field_name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field_name == "event":
                name = value
            elif field_name == "data":
                data_lines.append(value)
        if data_lines:
            events.append(SSEEvent(name, json.loads("\n".join(data_lines))))
    return events


def grammar_problems(events: list[SSEEvent]) -> list[str]:
    """Where a stream breaks the Messages API event grammar (our streams must have none).

    Checks: `event:` names match `data.type`; `message_start` first and `message_stop` last; blocks are
    started in index order from 0 and stopped before the next starts; deltas only for the open block;
    result blocks have no deltas.
    """
    problems: list[str] = []
    expected_index = 0
    open_block: tuple[int, str] | None = None
    for position, item in enumerate(events):
        kind = item.data.get("type")
        if item.event is not None and item.event != kind:
            problems.append(f"event {position}: `event: {item.event}` but data type {kind!r}")
        if position == 0 and kind != "message_start":
            problems.append("the stream does not begin with message_start")
        if kind == "content_block_start":
            index = item.data.get("index")
            block_type = item.data.get("content_block", {}).get("type", "")
            if open_block is not None:
                problems.append(
                    f"event {position}: block {index} starts before block {open_block[0]} stopped"
                )
            if index != expected_index:
                problems.append(f"event {position}: block index {index}, expected {expected_index}")
            open_block = (int(index) if isinstance(index, int) else -1, block_type)
            expected_index = open_block[0] + 1
        elif kind == "content_block_delta":
            index = item.data.get("index")
            if open_block is None or open_block[0] != index:
                problems.append(f"event {position}: delta for block {index}, which is not open")
            elif open_block[1].endswith("_tool_result"):
                problems.append(f"event {position}: a result block ({open_block[1]}) received a delta")
        elif kind == "content_block_stop":
            index = item.data.get("index")
            if open_block is None or open_block[0] != index:
                problems.append(f"event {position}: stop for block {index}, which is not open")
            open_block = None
    if events and events[-1].data.get("type") != "message_stop":
        problems.append("the stream does not end with message_stop")
    return problems


def misplaced_pings(events: list[SSEEvent]) -> list[str]:
    """Pings where the API never sends one (see `ping_fits`); the ping right after `message_start` is fine.

    Kept apart from `grammar_problems`, which accepts a ping anywhere between `message_start` and
    `message_stop` as clients must."""
    kinds = [item.data.get("type") for item in events]
    problems: list[str] = []
    previous: str | None = None
    for position, kind in enumerate(kinds):
        if kind != "ping":
            previous = kind
            continue
        following = next((later for later in kinds[position + 1 :] if later != "ping"), None)
        if previous != "message_start" and not ping_fits(previous, following):
            problems.append(f"event {position}: ping between {previous} and {following}")
    return problems


def shape_of(events: list[SSEEvent]) -> list[str]:
    """The sequence of event types, with block types on starts and delta types on deltas (pings dropped)."""
    shape: list[str] = []
    for item in events:
        kind = str(item.data.get("type"))
        if kind == "ping":
            continue
        if kind == "content_block_start":
            kind += ":" + str(item.data.get("content_block", {}).get("type"))
        elif kind == "content_block_delta":
            kind += ":" + str(item.data.get("delta", {}).get("type"))
        shape.append(kind)
    return shape
