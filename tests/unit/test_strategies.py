"""Properties of `emulator.strategies`: whatever they generate is what the API could send.

Generated messages validate against `schemas/` and parse losslessly into the SDK's strict types; generated
streams accumulate in the SDK (fed as raw bytes, cut into network chunks) to the very message they were made
from; errors, Files objects and request bodies go through the SDK the way a user's code would see them.
"""

from __future__ import annotations

import inspect
import itertools
import json
import os
import re
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic._models import construct_type
from anthropic.types.beta import BetaContentBlock, BetaMessage
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from pydantic import TypeAdapter

from emulator import strategies as ce
from emulator.engine.conversation import check_history
from emulator.wire.sse import SSEEvent, grammar_problems, parse_sse
from emulator.wire.validation import (
    find_problems,
    validate_error_body,
    validate_request,
    validate_response,
    validate_stream_event,
)

PROFILE = settings.get_profile(os.environ.get("CE_HYPOTHESIS_PROFILE", "ci"))
_CI_EXAMPLES = settings.get_profile("ci").max_examples


def examples(count: int) -> settings:
    """`count` examples under the CI profile, proportionally more under a bigger one."""
    return settings(PROFILE, max_examples=max(1, count * PROFILE.max_examples // _CI_EXAMPLES))


CONTENT_BLOCK = TypeAdapter(BetaContentBlock)
PARAMS = {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": "go"}]}


class FakeAPI:
    """An httpx2 transport that answers with whatever the test put in `reply`, and keeps the last request."""

    def __init__(self) -> None:
        self.reply: Any = None
        self.request_body: Any = None
        self.client = anthropic.Anthropic(
            api_key="test-key",
            base_url="http://127.0.0.1:9",
            max_retries=0,
            http_client=httpx2.Client(transport=httpx2.MockTransport(self._handle)),
        )

    def _handle(self, request: httpx2.Request) -> httpx2.Response:
        self.request_body = json.loads(request.content) if request.content else None
        reply = self.reply
        if isinstance(reply, ce.RawStream):
            if (self.request_body or {}).get("stream"):
                return httpx2.Response(
                    200, headers={"content-type": "text/event-stream"}, content=iter(reply.chunks)
                )
            return httpx2.Response(200, json=reply.message)
        if isinstance(reply, ce.ErrorResponse):
            return httpx2.Response(reply.status, headers=reply.headers, content=reply.content)
        return httpx2.Response(200, json=reply)


@pytest.fixture(scope="module")
def api():
    fake = FakeAPI()
    yield fake
    fake.client.close()


def blocks_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    return message["content"]


def error_codes_in(message: dict[str, Any]) -> set[str]:
    return {
        block["content"]["error_code"]
        for block in blocks_of(message)
        if block["type"].endswith("_tool_result") and "error_code" in block["content"]
    }


# --- messages and blocks ----------------------------------------------------------------------------------


@examples(30)
@given(message=ce.messages())
def test_messages_validate_and_parse_losslessly_in_the_sdk(message):
    assert validate_response(message) == []
    parsed = BetaMessage.model_validate(message)  # strict: every literal and required field as the SDK types
    assert parsed.to_dict(mode="json") == message
    assert not error_codes_in(message) & ce.DOCUMENTED_2025_CODES


@examples(6)
@pytest.mark.parametrize("version", ce.TOOL_VERSIONS)
@given(data=st.data())
def test_a_tool_version_gets_only_its_sub_tools(version, data):
    message = data.draw(ce.messages(tool_version=version, min_blocks=4))
    allowed_results = {ce.RESULT_BLOCK_FOR_TOOL[name] for name in ce.sub_tools(version)}
    for block in blocks_of(message):
        if block["type"] == "server_tool_use":
            assert block["name"] in ce.sub_tools(version)
            if version == ce.LEGACY_TOOL_VERSION:
                assert "caller" not in block
        elif block["type"].endswith("_tool_result"):
            assert block["type"] in allowed_results
    assert validate_response(message) == []


def test_legacy_version_is_python_only_and_newer_versions_add_bash_and_the_text_editor():
    assert ce.sub_tools(ce.LEGACY_TOOL_VERSION) == ("code_execution",)
    for version in ce.TOOL_VERSIONS[1:]:
        assert set(ce.sub_tools(version)) == {
            "bash_code_execution",
            "text_editor_code_execution",
            "code_execution",
        }


@examples(15)
@given(message=ce.messages(block_types={"text", "server_tool_use", "bash_code_execution_tool_result"}))
def test_block_types_restrict_what_appears(message):
    assert {block["type"] for block in blocks_of(message)} <= {
        "text",
        "server_tool_use",
        "bash_code_execution_tool_result",
    }
    assert validate_response(message) == []


def _variants() -> list[tuple[str, str, str | None]]:
    """Every (result block, content variant, error code) the schemas define, documented-2025 codes too."""
    cases: list[tuple[str, str, str | None]] = []
    for block_type, content_types in ce.RESULT_CONTENT_TYPES.items():
        for content_type in content_types:
            codes = ce.ERROR_CODES.get(content_type)
            cases += (
                [(block_type, content_type, code) for code in codes]
                if codes
                else [(block_type, content_type, None)]
            )
    return cases


@examples(3)
@pytest.mark.parametrize(("block_type", "content_type", "code"), _variants())
@given(data=st.data())
def test_every_result_variant_and_error_code_is_generated(block_type, content_type, code, data):
    documented_2025 = code in ce.DOCUMENTED_2025_CODES
    block = data.draw(
        ce.content_blocks(
            block_types={block_type},
            result_types={content_type},
            error_codes=None if code is None else {code},
            documented_2025=documented_2025,
        )
    )
    assert block["type"] == block_type
    assert block["content"]["type"] == content_type
    assert block["content"].get("error_code") == code
    assert find_problems("response.schema.json#/$defs/content_block", block) == []
    if documented_2025:
        # outside SDK 2.13's literals: its lenient response parsing keeps them, its strict types do not
        assert construct_type(type_=BetaContentBlock, value=block).content.error_code == code
    else:
        assert CONTENT_BLOCK.validate_python(block).to_dict(mode="json") == block


def test_documented_2025_codes_need_opting_in():
    with pytest.raises(InvalidArgument, match="documented_2025"):
        ce.messages(error_codes={"container_expired"})
    assert set(ce.ERROR_CODES["text_editor_code_execution_tool_result_error"]) >= ce.DOCUMENTED_2025_CODES


@examples(5)
@pytest.mark.parametrize("stop_reason", ce.STOP_REASONS)
@given(data=st.data())
def test_every_stop_reason_shapes_the_end_of_the_message(stop_reason, data):
    message = data.draw(ce.messages(stop_reasons=[stop_reason]))
    assert message["stop_reason"] == stop_reason
    content = blocks_of(message)
    if stop_reason == "pause_turn":
        last = content[-1]
        assert last["type"] == "server_tool_use"
        assert not [block for block in content if block.get("tool_use_id") == last["id"]]
    elif stop_reason == "tool_use":
        assert content[-1]["type"] == "tool_use"
    assert (message["stop_sequence"] is not None) == (stop_reason == "stop_sequence")
    assert validate_response(message) == []
    BetaMessage.model_validate(message)


def test_impossible_restrictions_are_refused_up_front():
    with pytest.raises(InvalidArgument, match="pause_turn"):
        ce.messages(block_types={"text"}, stop_reasons=["pause_turn"])
    with pytest.raises(InvalidArgument, match="unknown tool version"):
        ce.messages(tool_version="code_execution_20240101")
    with pytest.raises(InvalidArgument, match="unknown block types"):
        ce.content_blocks(block_types={"image"})


@examples(15)
@given(call=ce.tool_calls(result_types={"text_editor_code_execution_str_replace_result"}))
def test_str_replace_results_are_the_diff_hunk_of_the_edit(call):
    use, result = call
    assert result["tool_use_id"] == use["id"] and use["input"]["command"] == "str_replace"
    hunk = result["content"]
    old_side = [line[1:] for line in hunk["lines"] if line[:1] in (" ", "-")]
    new_side = [line[1:] for line in hunk["lines"] if line[:1] in (" ", "+")]
    assert (len(old_side), len(new_side)) == (hunk["old_lines"], hunk["new_lines"])
    # the hunk's old side, with one occurrence of old_str replaced by new_str, is its new side
    old_text, new_text = "\n".join(old_side), "\n".join(new_side)
    old_str, new_str = use["input"]["old_str"], use["input"]["new_str"]
    occurrences = [match.start() for match in re.finditer(f"(?={re.escape(old_str)})", old_text)]
    assert any(old_text[:at] + new_str + old_text[at + len(old_str) :] == new_text for at in occurrences)
    leading = next(i for i, line in enumerate(hunk["lines"]) if not line.startswith(" "))
    assert leading <= 3  # at most 3 lines of context


@examples(10)
@given(call=ce.tool_calls())
def test_tool_calls_pair_a_call_with_its_result(call):
    use, result = call
    assert result["tool_use_id"] == use["id"]
    assert result["type"] == ce.RESULT_BLOCK_FOR_TOOL[use["name"]]
    for block in call:
        assert find_problems("response.schema.json#/$defs/content_block", block) == []
        assert CONTENT_BLOCK.validate_python(block).to_dict(mode="json") == block


@examples(10)
@given(message=ce.ptc_continuations())
def test_ptc_continuations_are_tool_use_blocks_issued_by_code(message):
    assert validate_response(message) == []
    assert BetaMessage.model_validate(message).to_dict(mode="json") == message
    assert message["stop_reason"] == "tool_use" and message["usage"]["output_tokens"] == 0
    assert all(
        block["type"] == "tool_use" and block["caller"]["type"] != "direct" for block in message["content"]
    )


@examples(10)
@given(identifier=ce.ids("srvtoolu"), moment=ce.timestamps())
def test_ids_and_timestamps_look_like_the_apis(identifier, moment):
    assert re.fullmatch(r"srvtoolu_01[1-9A-HJ-NP-Za-km-z]{22}", identifier)
    assert re.fullmatch(r"20(25|26)-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", moment)


# --- streams ----------------------------------------------------------------------------------------------


def sse_events(events: list[dict[str, Any]]) -> list[SSEEvent]:
    return [SSEEvent(event["type"], event) for event in events]


@examples(20)
@given(stream=ce.streams())
def test_streams_follow_the_api_grammar(stream):
    events = stream.events
    assert [validate_stream_event(event) for event in events] == [[] for _ in events]
    assert grammar_problems(sse_events(events)) == []
    started = events[0]["message"]
    assert started["content"] == [] and started["stop_reason"] is None and "container" not in started
    real = [event for event in events if event["type"] != "ping"]
    for position, event in enumerate(real):
        if event["type"] != "content_block_start":
            continue
        block = event["content_block"]
        if block["type"].endswith("_tool_result"):
            assert real[position + 1] == {"type": "content_block_stop", "index": event["index"]}
        elif block["type"] == "server_tool_use":
            assert block["input"] == {}
            assert real[position + 1]["delta"] == {"type": "input_json_delta", "partial_json": ""}
    delta = real[-2]
    assert delta["type"] == "message_delta"
    assert delta["usage"]["output_tokens"] == stream.message["usage"]["output_tokens"]
    assert delta["delta"].get("container") == stream.message.get("container")


@examples(30)
@given(raw=ce.raw_streams(ce.streams(continuations=True)))
def test_raw_streams_accumulate_in_the_sdk_to_the_message_they_were_made_from(api, raw):
    assert [event.data for event in parse_sse(raw.body)] == raw.events
    assert [event.event for event in parse_sse(raw.body)] == [event["type"] for event in raw.events]
    api.reply = raw
    plain = api.client.beta.messages.create(**PARAMS)  # the SDK's own parsing of the JSON body
    assert plain.to_dict(mode="json") == raw.message
    with api.client.beta.messages.stream(**PARAMS) as stream:
        streamed = stream.get_final_message()
    assert streamed.model_dump() == plain.model_dump()  # every field, nothing excluded
    assert streamed.to_dict(mode="json") == raw.accumulated


@examples(15)
@given(raw=ce.raw_streams(ce.streams(irregular=True)))
def test_irregular_streams_still_accumulate_in_the_sdk(api, raw):
    # the only irregularity is the index on block starts: renumbered, the stream is regular
    renumbered, starts = [], 0
    for event in raw.events:
        if event["type"] == "content_block_start":
            event = {**event, "index": starts}
            starts += 1
        renumbered.append(event)
    assert grammar_problems(sse_events(renumbered)) == []
    api.reply = raw
    with api.client.beta.messages.stream(**PARAMS) as stream:
        streamed = stream.get_final_message()
    assert streamed.to_dict(mode="json") == raw.accumulated


def _cut_points(raw: ce.RawStream) -> list[int]:
    return list(itertools.accumulate(len(chunk) for chunk in raw.chunks[:-1]))


def _partial_json_cut_inside_an_escape(events: list[dict[str, Any]]) -> bool:
    return any(
        re.search(r"(?<!\\)(\\\\)*\\$", event["delta"]["partial_json"])
        for event in events
        if event["type"] == "content_block_delta" and event["delta"]["type"] == "input_json_delta"
    )


def _reuses_an_index_after_a_result(events: list[dict[str, Any]]) -> bool:
    starts = [event for event in events if event["type"] == "content_block_start"]
    return any(
        after["index"] == before["index"] and before["content_block"]["type"].endswith("_tool_result")
        for before, after in itertools.pairwise(starts)
    )


HARD_CASES = {
    "chunk cut inside a UTF-8 character": lambda raw: any(
        raw.body[at] & 0xC0 == 0x80 for at in _cut_points(raw)
    ),
    "chunk cut between CR and LF": lambda raw: any(
        raw.body[at - 1 : at + 1] == b"\r\n" for at in _cut_points(raw)
    ),
    "chunk cut between the two line ends of an event": lambda raw: any(
        raw.body[at - 1 : at] == b"\n" and raw.body[at : at + 1] in (b"\n", b"\r") for at in _cut_points(raw)
    ),
    "partial JSON cut inside an escape": lambda raw: _partial_json_cut_inside_an_escape(raw.events),
    "block start reusing the index of a result block": lambda raw: _reuses_an_index_after_a_result(
        raw.events
    ),
}


def test_generation_reaches_the_cases_naive_readers_get_wrong():
    seen = dict.fromkeys(HARD_CASES, 0)

    @settings(PROFILE, max_examples=60, phases=[Phase.generate])
    @given(ce.raw_streams(ce.streams(ce.messages(max_blocks=4, max_text=30), irregular=True)))
    def tally(raw):
        for name, case in HARD_CASES.items():
            seen[name] += bool(case(raw))

    tally()
    assert all(seen.values()), seen


# --- errors, Files, requests ------------------------------------------------------------------------------

SDK_ERRORS = {
    400: anthropic.BadRequestError,
    401: anthropic.AuthenticationError,
    402: anthropic.PaymentRequiredError,
    403: anthropic.PermissionDeniedError,
    404: anthropic.NotFoundError,
    413: anthropic.ContentTooLargeError,
    429: anthropic.RateLimitError,
    500: anthropic.InternalServerError,
    504: anthropic.GatewayTimeoutError,
    529: anthropic.OverloadedError,
}


@examples(20)
@given(error=ce.http_errors())
def test_http_errors_reach_sdk_users_as_the_status_exception(api, error):
    assert validate_error_body(error.body) == []
    assert error.body["error"]["type"] == ce.ERROR_STATUSES[error.status]
    api.reply = error
    with pytest.raises(SDK_ERRORS[error.status]) as caught:
        api.client.beta.messages.create(**PARAMS)
    assert caught.value.status_code == error.status
    assert caught.value.request_id == error.headers["request-id"]
    assert caught.value.body == error.body


@examples(10)
@given(metadata=ce.file_metadata(), page=ce.file_lists(), deleted=ce.deleted_files())
def test_files_objects_parse_in_the_sdk(api, metadata, page, deleted):
    assert find_problems("files.schema.json", metadata) == []
    assert find_problems("files.schema.json#/$defs/file_list", page) == []
    assert find_problems("files.schema.json#/$defs/file_deleted", deleted) == []
    api.reply = metadata
    assert api.client.beta.files.retrieve_metadata(metadata["id"]).to_dict(mode="json") == metadata
    api.reply = page
    listed = api.client.beta.files.list()
    assert [item.to_dict(mode="json") for item in listed.data] == page["data"]
    api.reply = deleted
    assert api.client.beta.files.delete(deleted["id"]).to_dict(mode="json") == deleted


@examples(20)
@given(body=ce.request_bodies(stream=False))
def test_request_bodies_are_valid_and_the_sdk_sends_them_unchanged(api, body):
    validate_request(body)  # raises InvalidRequestError, as the emulator would answer 400
    check_history(body["messages"])  # the cross-message rules (pairs, a paused turn only at the end)
    texts = [
        block["text"]
        for message in body["messages"]
        for block in (message["content"] if isinstance(message["content"], list) else [])
        if block["type"] == "text"
    ]
    texts += [message["content"] for message in body["messages"] if isinstance(message["content"], str)]
    assert all(text.strip() for text in texts)  # the API refuses blank text blocks
    api.reply = {
        "model": "claude-sonnet-4-5-20250929",
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "content": [],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    api.client.beta.messages.create(**body)
    assert api.request_body == body


# --- the module's own promises ----------------------------------------------------------------------------

PUBLIC_STRATEGIES = {
    "messages": ce.messages(),
    "content_blocks": ce.content_blocks(),
    "tool_calls": ce.tool_calls(),
    "ptc_continuations": ce.ptc_continuations(),
    "streams": ce.streams(irregular=True, continuations=True),
    "raw_streams": ce.raw_streams(),
    "http_errors": ce.http_errors(),
    "file_metadata": ce.file_metadata(),
    "file_lists": ce.file_lists(),
    "deleted_files": ce.deleted_files(),
    "request_bodies": ce.request_bodies(),
    "containers": ce.containers(),
}


@pytest.mark.parametrize("name", sorted(PUBLIC_STRATEGIES))
def test_default_settings_raise_no_health_check(name):
    # no `suppress_health_check`: a slow or filtering strategy fails here
    @settings(PROFILE, max_examples=5)
    @given(PUBLIC_STRATEGIES[name])
    def draw_some(value):
        assert value is not None

    draw_some()


def test_generation_is_filter_free():
    source = inspect.getsource(ce)
    assert ".filter(" not in source and "assume(" not in source


def test_every_public_function_says_what_it_generates():
    for name in ce.__all__:
        item = getattr(ce, name)
        if callable(item) and not isinstance(item, type):
            assert inspect.getdoc(item), f"{name} has no docstring"
