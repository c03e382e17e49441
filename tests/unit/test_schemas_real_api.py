"""Every real recording in the shared real-api corpus must validate against our schemas.

Requests, non-streaming responses, every SSE event (vercel chunk files and raw SSE kept in vcrpy
cassettes), HTTP error envelopes and Files API objects. The response-side schemas are strict
(`additionalProperties: false`), so this is also what tells us when the real wire grew a field we do not
describe: the second half of the file checks that such drifts are indeed reported.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from emulator.wire.sse import SSEEvent, parse_sse
from emulator.wire.validation import find_problems, validate_response, validate_stream_event

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS_SUFFIXES = (".json", ".chunks.txt", ".yaml", ".yml")


def corpus_dir() -> Path:
    configured = os.environ.get("CE_REAL_API_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "real-api"


def corpus_files() -> list[Path]:
    root = corpus_dir()
    if not root.is_dir():
        return []
    return sorted(path for path in root.rglob("*") if path.is_file() and path.name.endswith(CORPUS_SUFFIXES))


def require_corpus() -> None:
    if not corpus_dir().is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"real-api corpus not found at {corpus_dir()}")
        pytest.skip("real-api corpus not found")


CORPUS = corpus_files()


# --- reading the corpus -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One wire object found in a recording. `kind`: request, response, event, error, file."""

    kind: str
    where: str
    body: Any
    ref: str = ""
    event_name: str | None = None


def response_items(body: Any, where: str) -> Iterator[Item]:
    if isinstance(body, dict) and isinstance(body.get("steps"), list):  # vercel multi-step wrapper
        for step in body["steps"]:
            yield Item("response", f"{where} step {step.get('step')}", step["body"])
    else:
        yield Item("response", where, body)


def cassette_items(path: Path) -> Iterator[Item]:
    cassette = yaml.safe_load(path.read_text(encoding="utf-8"))
    for number, interaction in enumerate(cassette["interactions"]):
        request, response = interaction["request"], interaction["response"]
        where = f"interaction {number}"
        status = int((response.get("status") or {}).get("code", 200))
        if "/v1/messages" in request["uri"]:
            body = request.get("parsed_body")
            if body is None:
                raw = request.get("body")
                body = json.loads(raw if isinstance(raw, str) else raw["string"])
            yield Item("request", f"{where} request", body)
            if "parsed_body" in response:
                parsed = response["parsed_body"]
                kind = "error" if status >= 400 or parsed.get("type") == "error" else "response"
                if kind == "error":
                    yield Item("error", f"{where} response", parsed)
                else:
                    yield from response_items(parsed, f"{where} response")
            else:
                for position, sse_event in enumerate(parse_sse(response["body"]["string"])):
                    name, event = sse_event.event, sse_event.data
                    yield Item("event", f"{where} event {position}", event, event_name=name)
        elif "/v1/files" in request["uri"]:
            parsed = response.get("parsed_body")
            if not isinstance(parsed, dict):
                continue  # file content download (raw bytes) or multipart upload: not JSON objects
            if status >= 400 or parsed.get("type") == "error":
                yield Item("error", f"{where} files response", parsed)
            elif parsed.get("type") == "file":
                yield Item("file", f"{where} files response", parsed, "files.schema.json")
            elif parsed.get("type") == "file_deleted":
                yield Item("file", f"{where} files response", parsed, "files.schema.json#/$defs/file_deleted")
            else:
                yield Item("file", f"{where} files response", parsed, "files.schema.json#/$defs/file_list")


@functools.cache
def items_of(path: Path) -> list[Item]:
    if path.name.endswith(".chunks.txt"):
        return [
            Item("event", f"line {number + 1}", json.loads(line))
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines())
            if line.strip()
        ]
    if path.suffix == ".json":
        return list(response_items(json.loads(path.read_text(encoding="utf-8")), "body"))
    return list(cassette_items(path))


def problems_of(item: Item) -> list[str]:
    if item.kind == "request":
        return [str(problem) for problem in find_problems("request.schema.json", item.body)]
    if item.kind == "response":
        return validate_response(item.body)
    if item.kind == "event":
        return validate_stream_event(item.body)
    if item.kind == "error":
        return [str(problem) for problem in find_problems("errors.schema.json", item.body)]
    return [str(problem) for problem in find_problems(item.ref, item.body)]


def corpus_id(path: Path) -> str:
    return str(path.relative_to(corpus_dir()))


# --- every recording validates ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CORPUS or [None], ids=[corpus_id(p) for p in CORPUS] or ["corpus-missing"])
def test_recording_validates(path: Path | None) -> None:
    require_corpus()
    assert path is not None
    items = items_of(path)
    assert items, f"{path.name}: no wire objects found (reader broken?)"
    failures = [f"{item.kind} {item.where}: {problem}" for item in items for problem in problems_of(item)]
    assert failures == []


CASSETTES = [path for path in CORPUS if path.suffix in (".yaml", ".yml")]


@pytest.mark.parametrize(
    "path", CASSETTES or [None], ids=[corpus_id(p) for p in CASSETTES] or ["corpus-missing"]
)
def test_raw_sse_event_names_match_their_payload_type(path: Path | None) -> None:
    require_corpus()
    assert path is not None
    events = [item for item in items_of(path) if item.kind == "event"]
    assert all(item.event_name == item.body["type"] for item in events)


def test_corpus_covers_every_wire_family() -> None:
    """Guards the reader: a parser that silently dropped objects would make the tests above vacuous."""
    require_corpus()
    items = [item for path in CORPUS for item in items_of(path)]
    kinds = Counter(item.kind for item in items)
    assert kinds["request"] >= 40
    assert kinds["response"] >= 40
    assert kinds["event"] >= 3000
    assert kinds["error"] >= 1
    assert kinds["file"] >= 20

    event_types = {item.body["type"] for item in items if item.kind == "event"}
    assert event_types >= {
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
    }
    blocks: set[str] = set()
    results: set[str] = set()
    for item in items:
        if item.kind == "response":
            content = item.body["content"]
        elif item.kind == "event" and item.body["type"] == "content_block_start":
            content = [item.body["content_block"]]
        else:
            continue
        for block in content:
            blocks.add(block["type"])
            if isinstance(block.get("content"), dict):
                results.add(block["content"]["type"])
    assert blocks >= {
        "text",
        "thinking",
        "tool_use",
        "server_tool_use",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "code_execution_tool_result",
        "web_fetch_tool_result",
    }
    assert results >= {
        "bash_code_execution_result",
        "code_execution_result",
        "encrypted_code_execution_result",
        "text_editor_code_execution_view_result",
        "text_editor_code_execution_create_result",
        "text_editor_code_execution_str_replace_result",
    }


def test_raw_sse_parser_handles_padding_crlf_and_comments() -> None:
    raw = (
        ': keep-alive\r\n\r\nevent: ping\r\ndata: {"type": "ping"}\r\n\r\n'
        'event: content_block_stop\ndata: {"type":"content_block_stop","index":0      }\n\n'
    )
    assert parse_sse(raw) == [
        SSEEvent("ping", {"type": "ping"}),
        SSEEvent("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ]


# --- the schemas notice drift -------------------------------------------------------------------------------


def first_response(predicate: Any) -> dict[str, Any]:
    require_corpus()
    for path in CORPUS:
        for item in items_of(path):
            if item.kind == "response" and predicate(item.body):
                return copy.deepcopy(item.body)
    pytest.fail("no matching response in the corpus")


def block_index(message: dict[str, Any], block_type: str) -> int:
    return next(i for i, block in enumerate(message["content"]) if block["type"] == block_type)


def has_block(block_type: str) -> Any:
    return lambda body: any(block["type"] == block_type for block in body["content"])


def test_unknown_message_and_usage_fields_are_reported() -> None:
    message = first_response(lambda body: "container" in body)
    message["new_top_level"] = 1
    message["usage"]["container_hours"] = 0.1
    message["container"]["region"] = "us"

    assert validate_response(message) == [
        "container.region: Extra inputs are not permitted",
        "usage.container_hours: Extra inputs are not permitted",
        "new_top_level: Extra inputs are not permitted",
    ]


def test_bash_result_drifts_are_reported() -> None:
    message = first_response(has_block("bash_code_execution_tool_result"))
    index = block_index(message, "bash_code_execution_tool_result")
    result = message["content"][index]["content"]
    del result["content"]
    result["exit_code"] = result.pop("return_code")

    assert validate_response(message) == [
        f"content.{index}.bash_code_execution_tool_result.content.bash_code_execution_result.return_code: "
        "Field required",
        f"content.{index}.bash_code_execution_tool_result.content.bash_code_execution_result.content: "
        "Field required",
        f"content.{index}.bash_code_execution_tool_result.content.bash_code_execution_result.exit_code: "
        "Extra inputs are not permitted",
    ]


def test_camel_case_view_result_from_the_old_docs_is_rejected() -> None:
    message = first_response(
        lambda body: any(
            block["type"] == "text_editor_code_execution_tool_result"
            and block["content"]["type"] == "text_editor_code_execution_view_result"
            for block in body["content"]
        )
    )
    index = next(
        i
        for i, block in enumerate(message["content"])
        if block["type"] == "text_editor_code_execution_tool_result"
        and block["content"]["type"] == "text_editor_code_execution_view_result"
    )
    view = message["content"][index]["content"]
    view["numLines"] = view.pop("num_lines")

    prefix = (
        f"content.{index}.text_editor_code_execution_tool_result.content."
        "text_editor_code_execution_view_result"
    )
    assert validate_response(message) == [f"{prefix}.numLines: Extra inputs are not permitted"]


@pytest.mark.parametrize(
    ("result", "accepted"),
    [
        ({"type": "bash_code_execution_tool_result_error", "error_code": "output_file_too_large"}, True),
        ({"type": "bash_code_execution_tool_result_error", "error_code": "container_expired"}, True),
        ({"type": "bash_code_execution_tool_result_error", "error_code": "string_not_found"}, False),
        (
            {
                "type": "bash_code_execution_tool_result_error",
                "error_code": "unavailable",
                "error_message": "x",
            },
            False,
        ),
    ],
)
def test_bash_error_codes(result: dict[str, Any], accepted: bool) -> None:
    message = first_response(has_block("bash_code_execution_tool_result"))
    message["content"][block_index(message, "bash_code_execution_tool_result")]["content"] = result
    assert (validate_response(message) == []) is accepted


@pytest.mark.parametrize(
    ("error_code", "accepted"),
    [
        ("file_not_found", True),
        ("string_not_found", True),
        ("container_expired", True),
        ("output_file_too_large", False),
    ],
)
def test_text_editor_error_codes(error_code: str, accepted: bool) -> None:
    message = first_response(has_block("text_editor_code_execution_tool_result"))
    index = block_index(message, "text_editor_code_execution_tool_result")
    message["content"][index]["content"] = {
        "type": "text_editor_code_execution_tool_result_error",
        "error_code": error_code,
        "error_message": "File not found: /tmp/x",
    }
    assert (validate_response(message) == []) is accepted


@pytest.mark.parametrize(
    ("error_code", "accepted"),
    [("execution_time_exceeded", True), ("container_expired", True), ("file_not_found", False)],
)
def test_python_error_codes(error_code: str, accepted: bool) -> None:
    message = first_response(has_block("code_execution_tool_result"))
    index = block_index(message, "code_execution_tool_result")
    message["content"][index]["content"] = {
        "type": "code_execution_tool_result_error",
        "error_code": error_code,
    }
    assert (validate_response(message) == []) is accepted


def test_stream_event_drifts_are_reported() -> None:
    assert validate_stream_event({"type": "ping"}) == []
    assert validate_stream_event(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta"}}
    ) == ["content_block_delta.delta.text_delta.text: Field required"]
    assert validate_stream_event(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "done", "stop_sequence": None},
            "usage": {"output_tokens": 1},
        }
    ) == [
        "message_delta.delta.stop_reason: "
        "Input should be 'end_turn', 'max_tokens', 'stop_sequence', 'tool_use', "
        "'pause_turn', 'compaction', 'refusal' or 'model_context_window_exceeded'"
    ]
    assert validate_stream_event({"type": "content_block_stop"}) == [
        "content_block_stop.index: Field required"
    ]
    assert validate_stream_event({"type": "heartbeat"})[0].startswith(
        "Input tag 'heartbeat' found using 'type' does not match any of the expected tags: "
        "'content_block_delta', "
    )
    assert (
        validate_stream_event(
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        )
        == []
    )
