"""Request validation answers like the real API (pydantic wording, dotted paths, union tags in the path).

Real messages these cases mirror (quoted in public issues): `tools.0.custom.defer_loading: Extra inputs are
not permitted`, `tools.0.custom.input_schema.type: Field required`, `messages.1.content.0.tool_use.id: Field
required`, `messages.0.content.1.text.text: Input should be a valid string`,
`system.1.cache_control.ephemeral.scope: Extra inputs are not permitted`,
`container: Input should be a valid string` (recorded), and `tools.0: Input tag 'function' found using
'type' does not match any of the expected tags: 'bash_20250124', ...`.
"""

from __future__ import annotations

import copy
import json
import shutil
import typing
from pathlib import Path
from typing import Any

import pytest
import referencing.exceptions
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from emulator.errors import InvalidRequestError
from emulator.wire import schemas as schemas_module
from emulator.wire.schemas import SCHEMA_BASE_URI, SchemaStore, default_store, schema_directory
from emulator.wire.validation import (
    find_problems,
    validate_error_body,
    validate_request,
    validate_response,
    validate_stream_event,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO_ROOT / "schemas"
SCHEMA_FILES = sorted(SCHEMA_DIR.glob("*.json"))

CE_TOOL = {"type": "code_execution_20250825", "name": "code_execution"}


def request(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Compute 2**100"}],
        "model": "claude-sonnet-4-5",
        "tools": [copy.deepcopy(CE_TOOL)],
    }
    body.update(overrides)
    return body


def error_of(body: object) -> str:
    with pytest.raises(InvalidRequestError) as caught:
        validate_request(body)
    assert caught.value.status == 400
    assert caught.value.error_type == "invalid_request_error"
    return caught.value.message


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def with_messages(*messages: dict[str, Any]) -> dict[str, Any]:
    return request(messages=[{"role": "user", "content": "go"}, *messages])


BASH_RESULT = {
    "type": "bash_code_execution_tool_result",
    "tool_use_id": "srvtoolu_01A",
    "content": {
        "type": "bash_code_execution_result",
        "stdout": "55\n",
        "stderr": "",
        "return_code": 0,
        "content": [],
    },
}
BASH_RESULT_PATH = "messages.1.content.0.bash_code_execution_tool_result.content.bash_code_execution_result"
BASH_USE = {
    "type": "server_tool_use",
    "id": "srvtoolu_01A",
    "name": "bash_code_execution",
    "input": {"command": "python big.py"},
}


# --- the schema files themselves ----------------------------------------------------------------------------


def test_the_schema_folder_holds_the_expected_families():
    assert {path.name for path in SCHEMA_FILES} >= {
        "request.schema.json",
        "tools.schema.json",
        "blocks.schema.json",
        "response.schema.json",
        "errors.schema.json",
        "files.schema.json",
    }


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=[path.name for path in SCHEMA_FILES])
def test_every_schema_file_is_a_valid_draft_2020_12_schema(path):
    document = json.loads(path.read_text())
    Draft202012Validator.check_schema(document)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["$id"] == SCHEMA_BASE_URI + path.name


def all_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in all_refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in all_refs(value)]
    return []


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=[path.name for path in SCHEMA_FILES])
def test_every_ref_resolves(path):
    store = default_store()
    resolver = store.registry.resolver(base_uri=SCHEMA_BASE_URI + path.name)
    refs = all_refs(json.loads(path.read_text()))
    assert refs or path.name == "common.schema.json"
    for ref in refs:
        assert resolver.lookup(ref).contents is not None


def union_nodes(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node] if "x-discriminator" in node else []
        return found + [union for value in node.values() for union in union_nodes(value)]
    if isinstance(node, list):
        return [union for value in node for union in union_nodes(value)]
    return []


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=[path.name for path in SCHEMA_FILES])
def test_tagged_unions_are_consistent(path):
    """Each union's tag enum is exactly its branches' tags, and each branch accepts its own tags."""
    store = default_store()
    resolver = store.registry.resolver(base_uri=SCHEMA_BASE_URI + path.name)
    for union in union_nodes(json.loads(path.read_text())):
        prop = union["x-discriminator"]["propertyName"]
        declared = union["properties"][prop]["enum"]
        assert declared == sorted(declared)
        branch_tags: list[str] = []
        for branch in union["allOf"]:
            tag_schema = branch["if"]["properties"][prop]
            tags = [tag_schema["const"]] if "const" in tag_schema else tag_schema["enum"]
            target = resolver.lookup(branch["then"]["$ref"]).contents
            for tag in tags:
                assert Draft202012Validator(target["properties"][prop]).is_valid(tag), (branch, tag)
            branch_tags += tags
        assert sorted(branch_tags) == declared


# --- the store ----------------------------------------------------------------------------------------------


def test_store_caches_validators_and_the_default_store():
    store = default_store()
    assert store is default_store()
    assert store.validator("request.schema.json") is store.validator(SCHEMA_BASE_URI + "request.schema.json")
    assert store.validator("response.schema.json#/$defs/stream_event") is not store.validator(
        "response.schema.json"
    )
    assert set(store.names) == {path.name for path in SCHEMA_FILES}


def test_store_iter_errors_and_unknown_references():
    store = default_store()
    errors = list(store.iter_errors("errors.schema.json", {"type": "error"}))
    assert [error.message for error in errors] == ["'error' is a required property"]
    assert all(isinstance(error, ValidationError) for error in errors)
    assert store.is_valid("files.schema.json#/$defs/file_deleted", {"id": "file_1", "type": "file_deleted"})
    with pytest.raises(referencing.exceptions.Unresolvable):
        store.validator("nope.schema.json")
    with pytest.raises(referencing.exceptions.Unresolvable):
        store.validator("response.schema.json#/$defs/nope")


def test_store_loads_an_explicit_directory(tmp_path):
    for path in SCHEMA_FILES:
        shutil.copy(path, tmp_path / path.name)
    store = SchemaStore(tmp_path)
    assert store.directory == tmp_path
    assert store.is_valid("request.schema.json", request())
    assert store.document("tools.schema.json")["$id"] == SCHEMA_BASE_URI + "tools.schema.json"
    with pytest.raises(InvalidRequestError, match=r"^max_tokens: Field required$"):
        validate_request({"model": "m", "messages": []}, store)


def test_store_refuses_an_empty_directory_and_files_without_id(tmp_path):
    with pytest.raises(FileNotFoundError):
        SchemaStore(tmp_path)
    (tmp_path / "x.schema.json").write_text("{}")
    with pytest.raises(ValueError, match=r"x\.schema\.json has no \$id"):
        SchemaStore(tmp_path)


def test_schema_directory_prefers_the_packaged_schemas(monkeypatch):
    monkeypatch.setattr(schemas_module.importlib.util, "find_spec", lambda name: None)
    assert Path(str(schema_directory())) == SCHEMA_DIR

    packaged = object()
    monkeypatch.setattr(schemas_module.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(
        schemas_module.importlib.resources,
        "files",
        lambda name: packaged if name == "emulator.schemas" else None,
    )
    assert schema_directory() is packaged


# --- accepted requests --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(request(), id="minimal"),
        pytest.param(request(container="container_011CU6rVteVhydYXRyNs6G1M"), id="container-id"),
        pytest.param(
            request(
                container={
                    "id": "container_011CX",
                    "skills": [
                        {"type": "anthropic", "skill_id": "pptx", "version": "latest"},
                        {
                            "type": "custom",
                            "skill_id": "skill_01AbCdEfGhIjKlMnOpQrStUv",
                            "version": "1759178010641129",
                        },
                    ],
                },
                stream=True,
            ),
            id="container-with-skills",
        ),
        pytest.param(request(container={"id": None, "skills": None}), id="container-nulls"),
        pytest.param(
            request(
                tools=[
                    {
                        "type": version,
                        "name": "code_execution",
                        "allowed_callers": ["direct"],
                        "cache_control": {"type": "ephemeral", "ttl": "1h"},
                        "defer_loading": False,
                        "strict": False,
                    }
                    for version in (
                        "code_execution_20250522",
                        "code_execution_20250825",
                        "code_execution_20260120",
                        "code_execution_20260521",
                    )
                ]
            ),
            id="all-code-execution-versions",
        ),
        pytest.param(
            request(
                system=[
                    {"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral", "ttl": "5m"}}
                ],
                thinking={"type": "enabled", "budget_tokens": 3000},
                tool_choice={"type": "auto", "disable_parallel_tool_use": True},
                metadata={"user_id": "u-1"},
                stop_sequences=["END"],
                temperature=0.5,
                top_k=5,
                top_p=0.9,
                service_tier="auto",
                cache_control={"type": "ephemeral"},
                inference_geo=None,
                speed="fast",
            ),
            id="pass-through-parameters",
        ),
        pytest.param(
            request(
                tools=[
                    {"type": "code_execution_20260120", "name": "code_execution"},
                    {
                        "type": "web_search_20260209",
                        "name": "web_search",
                        "allowed_domains": None,
                        "blocked_domains": None,
                        "max_uses": None,
                        "user_location": None,
                    },
                    {
                        "type": "web_fetch_20260318",
                        "name": "web_fetch",
                        "allowed_domains": None,
                        "blocked_domains": None,
                        "citations": None,
                        "max_content_tokens": None,
                        "max_uses": None,
                        "response_inclusion": "excluded",
                        "use_cache": False,
                    },
                    {"type": "bash_20250124", "name": "bash"},
                    {
                        "type": "text_editor_20250728",
                        "name": "str_replace_based_edit_tool",
                        "max_characters": 10000,
                    },
                    {"type": "memory_20250818", "name": "memory"},
                    {"type": "tool_search_tool_regex_20251119", "name": "tool_search_tool_regex"},
                ]
            ),
            id="other-tool-types",
        ),
        pytest.param(
            with_messages(
                assistant(
                    {"type": "text", "text": "Starting the analysis."},
                    BASH_USE,
                    BASH_RESULT,
                    {
                        "type": "server_tool_use",
                        "id": "srvtoolu_01B",
                        "name": "bash_code_execution",
                        "input": {"command": "python big.py --step 2"},
                    },
                ),
            ),
            id="pause-turn-continuation",
        ),
        pytest.param(
            request(
                container="container_011CWHQB57xVregfCMPrKgew",
                tools=[
                    CE_TOOL,
                    {
                        "name": "rollDie",
                        "description": "Roll a die",
                        "input_schema": {
                            "type": "object",
                            "properties": {"player": {"type": "string"}},
                            "required": ["player"],
                            "additionalProperties": False,
                        },
                        "allowed_callers": ["code_execution_20250825"],
                    },
                ],
                messages=[
                    {"role": "user", "content": "Simulate the dice game"},
                    assistant(
                        {
                            "type": "server_tool_use",
                            "id": "srvtoolu_01C",
                            "name": "code_execution",
                            "input": {"code": "..."},
                            "caller": {"type": "direct"},
                        },
                        {
                            "type": "tool_use",
                            "id": "toolu_01P",
                            "name": "rollDie",
                            "input": {"player": "player2"},
                            "caller": {"type": "code_execution_20250825", "tool_id": "srvtoolu_01C"},
                        },
                    ),
                    user({"type": "tool_result", "tool_use_id": "toolu_01P", "content": "4"}),
                ],
            ),
            id="programmatic-tool-calling-answer",
        ),
        pytest.param(
            with_messages(
                assistant(
                    BASH_USE,
                    {
                        "type": "bash_code_execution_tool_result",
                        "tool_use_id": "srvtoolu_01A",
                        "content": {
                            "type": "bash_code_execution_tool_result_error",
                            "error_code": "container_expired",
                        },
                    },
                    {
                        "type": "server_tool_use",
                        "id": "srvtoolu_01T",
                        "name": "text_editor_code_execution",
                        "input": {"command": "str_replace", "path": "a.py", "old_str": "x", "new_str": "y"},
                    },
                    {
                        "type": "text_editor_code_execution_tool_result",
                        "tool_use_id": "srvtoolu_01T",
                        "content": {
                            "type": "text_editor_code_execution_tool_result_error",
                            "error_code": "string_not_found",
                            "error_message": None,
                        },
                    },
                    {
                        "type": "code_execution_tool_result",
                        "tool_use_id": "srvtoolu_01Y",
                        "content": {
                            "type": "code_execution_result",
                            "stdout": "",
                            "stderr": "",
                            "return_code": 0,
                            "content": [{"type": "code_execution_output", "file_id": "file_011C"}],
                            "abort_reason": None,
                        },
                    },
                ),
                user(
                    {"type": "container_upload", "file_id": "file_011CUJascj5v5AsQ2KybX48e"},
                    {"type": "text", "text": "and now?", "cache_control": {"type": "ephemeral"}},
                ),
            ),
            id="replayed-results-incl-legacy-codes",
        ),
        pytest.param(
            with_messages(
                assistant(
                    {"type": "thinking", "thinking": "hm", "signature": "EusB"},
                    {"type": "redacted_thinking", "data": "abc"},
                    {"type": "text", "text": "see", "citations": None},
                ),
                user(
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"},
                    },
                    {"type": "document", "source": {"type": "file", "file_id": "file_1"}, "title": "doc"},
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "hi"},
                    },
                ),
            ),
            id="thinking-image-document",
        ),
    ],
)
def test_valid_requests_pass(body):
    validate_request(body)
    assert find_problems("request.schema.json", body) == []


# --- rejected requests: exact messages ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # missing fields
        ({"model": "m", "messages": []}, "max_tokens: Field required"),
        ({"max_tokens": 1, "messages": []}, "model: Field required"),
        (request(messages=[{"content": "hi"}]), "messages.0.role: Field required"),
        (request(messages=[{"role": "user"}]), "messages.0.content: Field required"),
        (
            with_messages(assistant({"type": "tool_use", "name": "f", "input": {}})),
            "messages.1.content.0.tool_use.id: Field required",
        ),
        (
            with_messages(assistant({**BASH_RESULT, "content": {**BASH_RESULT["content"], "content": None}})),
            f"{BASH_RESULT_PATH}.content: Input should be a valid list",
        ),
        (
            with_messages(
                assistant(
                    {
                        **BASH_RESULT,
                        "content": {
                            key: value for key, value in BASH_RESULT["content"].items() if key != "content"
                        },
                    }
                )
            ),
            f"{BASH_RESULT_PATH}.content: Field required",
        ),
        (
            request(tools=[{"name": "f", "input_schema": {"properties": {}}}]),
            "tools.0.custom.input_schema.type: Field required",
        ),
        (
            request(tools=[{"type": "code_execution_20250825"}]),
            "tools.0.code_execution_20250825.name: Field required",
        ),
        # extra fields
        (request(foo=1), "foo: Extra inputs are not permitted"),
        (
            with_messages(assistant({"type": "text", "text": "a", "foo": 1})),
            "messages.1.content.0.text.foo: Extra inputs are not permitted",
        ),
        (
            with_messages(assistant({"type": "tool_use", "id": "t", "name": "f", "input": {}, "text": "x"})),
            "messages.1.content.0.tool_use.text: Extra inputs are not permitted",
        ),
        (
            request(tools=[{"name": "f", "input_schema": {"type": "object"}, "defer_loadingx": True}]),
            "tools.0.custom.defer_loadingx: Extra inputs are not permitted",
        ),
        (
            request(tools=[{**CE_TOOL, "use_web_search_purpose": True}]),
            "tools.0.code_execution_20250825.use_web_search_purpose: Extra inputs are not permitted",
        ),
        (
            request(
                tools=[{"type": "code_execution_20250522", "name": "code_execution", "input_examples": []}]
            ),
            "tools.0.code_execution_20250522.input_examples: Extra inputs are not permitted",
        ),
        (
            request(
                system=[
                    {"type": "text", "text": "a"},
                    {"type": "text", "text": "b", "cache_control": {"type": "ephemeral", "scope": "x"}},
                ]
            ),
            "system.1.cache_control.ephemeral.scope: Extra inputs are not permitted",
        ),
        (
            request(container={"id": "c", "skills": [{"type": "anthropic", "skill_id": "pdf", "extra": 1}]}),
            "container.skills.0.extra: Extra inputs are not permitted",
        ),
        (
            with_messages(
                assistant(
                    {
                        "type": "text_editor_code_execution_tool_result",
                        "tool_use_id": "s",
                        "content": {
                            "type": "text_editor_code_execution_view_result",
                            "file_type": "text",
                            "content": "x",
                            "numLines": 1,
                        },
                    }
                )
            ),
            "messages.1.content.0.text_editor_code_execution_tool_result.content."
            "text_editor_code_execution_view_result.numLines: Extra inputs are not permitted",
        ),
        (
            with_messages(assistant({**BASH_USE, "caller": {"type": "direct", "tool_id": "srvtoolu_x"}})),
            "messages.1.content.0.server_tool_use.caller.direct.tool_id: Extra inputs are not permitted",
        ),
        # wrong types
        (request(max_tokens="1024"), "max_tokens: Input should be a valid integer"),
        (request(max_tokens=True), "max_tokens: Input should be a valid integer"),
        (
            request(max_tokens=10.5),
            "max_tokens: Input should be a valid integer, got a number with a fractional part",
        ),
        (request(container=5), "container: Input should be a valid string"),
        (request(container=["c"]), "container: Input should be a valid string"),
        (request(stream="yes"), "stream: Input should be a valid boolean"),
        (request(temperature="hot"), "temperature: Input should be a valid number"),
        (request(stop_sequences="END"), "stop_sequences: Input should be a valid list"),
        (request(metadata=[]), "metadata: Input should be a valid dictionary"),
        (request(messages="hi"), "messages: Input should be a valid list"),
        (
            request(messages=[{"role": "user", "content": 7}]),
            "messages.0.content: Input should be a valid string",
        ),
        (
            request(messages=[user({"type": "text", "text": "a"}, {"type": "text", "text": None})]),
            "messages.0.content.1.text.text: Input should be a valid string",
        ),
        (
            request(messages=[user("just a string")]),
            "messages.0.content.0: Input should be a valid dictionary or object to extract fields from",
        ),
        (
            request(tools=[{**CE_TOOL, "cache_control": "ephemeral"}]),
            "tools.0.code_execution_20250825.cache_control: "
            "Input should be a valid dictionary or object to extract fields from",
        ),
        # bad literals and bounds
        (
            request(messages=[{"role": "system", "content": "x"}]),
            "messages.0.role: Input should be 'user' or 'assistant'",
        ),
        (request(service_tier="priority"), "service_tier: Input should be 'auto' or 'standard_only'"),
        (
            request(tools=[{"type": "code_execution_20250825", "name": "python"}]),
            "tools.0.code_execution_20250825.name: Input should be 'code_execution'",
        ),
        (
            request(tools=[{**CE_TOOL, "allowed_callers": ["model"]}]),
            "tools.0.code_execution_20250825.allowed_callers.0: "
            "Input should be 'direct', 'code_execution_20250825', "
            "'code_execution_20260120' or 'code_execution_20260521'",
        ),
        (
            request(thinking={"type": "enabled", "budget_tokens": 100}),
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
        ),
        (request(temperature=1.5), "temperature: Input should be less than or equal to 1"),
        (request(max_tokens=-1), "max_tokens: Input should be greater than or equal to 0"),
        (
            request(tools=[{"name": "bad name", "input_schema": {"type": "object"}}]),
            "tools.0.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'",
        ),
        (
            with_messages(
                assistant(
                    {
                        "type": "bash_code_execution_tool_result",
                        "tool_use_id": "s",
                        "content": {
                            "type": "bash_code_execution_tool_result_error",
                            "error_code": "file_not_found",
                        },
                    }
                )
            ),
            "messages.1.content.0.bash_code_execution_tool_result.content.bash_code_execution_tool_result_error."
            "error_code: Input should be 'invalid_tool_input', 'unavailable', 'too_many_requests', "
            "'execution_time_exceeded', 'output_file_too_large' or 'container_expired'",
        ),
        # tags
        (
            request(messages=[user({"text": "no type"})]),
            "messages.0.content.0: Unable to extract tag using discriminator 'type'",
        ),
        (request(tool_choice={"name": "f"}), "tool_choice: Unable to extract tag using discriminator 'type'"),
        (
            request(tool_choice={"type": "required"}),
            "tool_choice: Input tag 'required' found using 'type' does not match any of the expected tags: "
            "'any', 'auto', 'none', 'tool'",
        ),
        (request(tool_choice={"type": "tool"}), "tool_choice.tool.name: Field required"),
        (
            with_messages(assistant({**BASH_RESULT, "content": {"type": "bash_result"}})),
            "messages.1.content.0.bash_code_execution_tool_result.content: "
            "Input tag 'bash_result' found using 'type' "
            "does not match any of the expected tags: 'bash_code_execution_result', "
            "'bash_code_execution_tool_result_error'",
        ),
        (
            with_messages(
                assistant(
                    {
                        "type": "tool_use",
                        "id": "t",
                        "name": "f",
                        "input": {},
                        "caller": {"type": "code_execution_20250825"},
                    }
                )
            ),
            "messages.1.content.0.tool_use.caller.code_execution_20250825.tool_id: Field required",
        ),
        (
            request(
                messages=[user({"type": "tool_result", "tool_use_id": "t", "content": [{"type": "json"}]})]
            ),
            "messages.0.content.0.tool_result.content.0: Input tag 'json' found using 'type' does not match "
            "any of the expected tags: 'browser_state', 'document', 'image', 'search_result', 'text', "
            "'tool_reference'",
        ),
        (
            request(tools=[{"type": "custom", "name": "f", "input_schema": {"type": "object"}, "foo": 1}]),
            "tools.0.custom.foo: Extra inputs are not permitted",
        ),
    ],
)
def test_invalid_requests_get_the_api_message(body, message):
    assert error_of(body) == message


def test_unknown_tool_type_lists_every_expected_tag_alphabetically():
    message = error_of(request(tools=[{"type": "function", "name": "f"}]))
    prefix = "tools.0: Input tag 'function' found using 'type' does not match any of the expected tags: "
    assert message.startswith(prefix)
    tags = [tag.strip("'") for tag in message.removeprefix(prefix).split(", ")]
    assert tags == sorted(tags)
    # the list the real API printed in April 2026 (GA, no betas): ours is a superset, in the same order
    real = [
        "bash_20250124",
        "code_execution_20250522",
        "code_execution_20250825",
        "code_execution_20260120",
        "custom",
        "memory_20250818",
        "text_editor_20250124",
        "text_editor_20250429",
        "text_editor_20250728",
        "tool_search_tool_bm25",
        "tool_search_tool_bm25_20251119",
        "tool_search_tool_regex",
        "tool_search_tool_regex_20251119",
        "web_fetch_20250910",
        "web_fetch_20260209",
    ]
    assert [tag for tag in tags if tag in real] == real
    assert "code_execution_20260521" in tags


def test_unknown_block_type_is_reported_at_the_block():
    message = error_of(request(messages=[user({"type": "bash_code_execution_tool_result_v2"})]))
    assert message.startswith(
        "messages.0.content.0: Input tag 'bash_code_execution_tool_result_v2' found using 'type' "
        "does not match "
        "any of the expected tags: 'advisor_tool_result', 'bash_code_execution_tool_result', "
    )


def test_custom_tools_may_omit_type_or_say_custom():
    tool = {
        "name": "get_weather",
        "input_schema": {"type": "object", "properties": {}},
        "strict": True,
        "allowed_callers": ["direct", "code_execution_20260120"],
        "eager_input_streaming": None,
        "input_examples": [{"city": "Paris"}],
        "defer_loading": True,
        "description": "Weather",
    }
    validate_request(request(tools=[CE_TOOL, tool, {**tool, "name": "other", "type": "custom"}]))
    assert error_of(request(tools=[{**tool, "type": None}])).startswith(
        "tools.0: Input tag 'None' found using"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "The request body must be a JSON object, not an array"),
        ("hello", "The request body must be a JSON object, not a string"),
        (None, "The request body must be a JSON object, not null"),
        (3, "The request body must be a JSON object, not a number"),
        (True, "The request body must be a JSON object, not a boolean"),
    ],
)
def test_a_body_that_is_not_an_object(body, message):
    assert error_of(body) == message


def test_the_first_problem_is_chosen_by_path_order_not_input_order():
    messages = [
        {"role": "user", "content": [{"type": "text", "text": 1}]},
        {"role": "robot", "content": "x"},
    ]
    body = {"zzz": 1, "messages": messages, "model": "m", "stream": "no"}
    expected = [
        "max_tokens: Field required",
        "messages.0.content.0.text.text: Input should be a valid string",
        "messages.1.role: Input should be 'user' or 'assistant'",
        "stream: Input should be a valid boolean",
        "zzz: Extra inputs are not permitted",
    ]
    assert [str(problem) for problem in find_problems("request.schema.json", body)] == expected
    reordered = dict(reversed(list(body.items())))
    assert [str(problem) for problem in find_problems("request.schema.json", reordered)] == expected
    assert error_of(reordered) == expected[0]


def test_schema_shapes_the_walker_cannot_replay_still_yield_a_problem(tmp_path):
    odd = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_BASE_URI + "odd.schema.json",
        "$defs": {"a": {"properties": {"x": {"type": "string"}}}},
        "$ref": "#/$defs/a",
        "properties": {"y": {}},
    }
    (tmp_path / "odd.schema.json").write_text(json.dumps(odd))
    store = SchemaStore(tmp_path)
    assert [str(problem) for problem in find_problems("odd.schema.json", {"x": 1}, store)] == [
        "x: Input should be a valid string"
    ]


def test_problems_expose_the_raw_instance_path():
    (problem,) = find_problems("request.schema.json", request(tools=[{**CE_TOOL, "foo": 1}]))
    assert problem.path == ("tools", 0, "foo")
    assert problem.location == "tools.0.code_execution_20250825.foo"
    assert problem.message == "Extra inputs are not permitted"


# --- responses, events, errors ------------------------------------------------------------------------------

RESPONSE = {
    "model": "claude-sonnet-4-5-20250929",
    "id": "msg_01Wx5dv3Qisv7pjTdanFgc9Q",
    "type": "message",
    "role": "assistant",
    "content": [BASH_USE, BASH_RESULT, {"type": "text", "text": "55"}],
    "container": {"id": "container_011CU6rVteVhydYXRyNs6G1M", "expires_at": "2025-10-14T10:28:40.590791Z"},
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "stop_details": None,
    "usage": {
        "input_tokens": 7881,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 608,
        "service_tier": "standard",
        "inference_geo": "not_available",
        "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
    },
}


def test_validate_response_lists_problems():
    assert validate_response(RESPONSE) == []
    broken = copy.deepcopy(RESPONSE)
    broken["content"][1]["cache_control"] = {"type": "ephemeral"}  # request-only field
    broken["stop_reason"] = "stop"
    del broken["usage"]["output_tokens"]
    assert validate_response(broken) == [
        "content.1.bash_code_execution_tool_result.cache_control: Extra inputs are not permitted",
        "stop_reason: Input should be 'end_turn', 'max_tokens', 'stop_sequence', 'tool_use', 'pause_turn', "
        "'compaction', 'refusal' or 'model_context_window_exceeded'",
        "usage.output_tokens: Field required",
    ]
    assert validate_response([]) == ["Input should be a valid dictionary"]


def test_validate_stream_event_accepts_the_documented_transcript():
    events = [
        {
            "type": "message_start",
            "message": {**RESPONSE, "content": [], "stop_reason": None, "container": None},
        },
        {"type": "content_block_start", "index": 0, "content_block": {**BASH_USE, "input": {}}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": BASH_RESULT},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
        {"type": "content_block_delta", "index": 2, "delta": {"type": "signature_delta", "signature": "Eu"}},
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": "pause_turn",
                "stop_sequence": None,
                "stop_details": None,
                "container": RESPONSE["container"],
            },
            "usage": {"output_tokens": 5, "server_tool_use": {"web_search_requests": 0}},
        },
        {"type": "message_stop"},
        {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"},
            "request_id": "req_1",
        },
    ]
    assert [validate_stream_event(event) for event in events] == [[]] * len(events)
    assert validate_stream_event({"type": "content_block_start", "index": -1, "content_block": BASH_USE}) == [
        "content_block_start.index: Input should be greater than or equal to 0"
    ]


def test_validate_error_body():
    assert (
        validate_error_body(
            {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": "x"},
                "request_id": "req_011Cd65WVh8Zrvno3NunpJ73",
            }
        )
        == []
    )
    assert (
        validate_error_body(
            {
                "type": "error",
                "error": {
                    "type": "not_found_error",
                    "message": "File not found",
                    "details": {"error_code": "file_expired"},
                },
            }
        )
        == []
    )
    assert validate_error_body({"type": "error", "error": {"type": "teapot_error", "message": "x"}})[
        0
    ].startswith("error.type: Input should be 'invalid_request_error', ")


def test_files_schema_accepts_both_pagination_shapes():
    file = {
        "id": "file_011CNha8iCJcU1wXNR6q4V8w",
        "type": "file",
        "filename": "data.csv",
        "mime_type": "text/csv",
        "size_bytes": 12,
        "created_at": "2025-04-14T12:00:00.000000Z",
        "downloadable": False,
    }
    page = "files.schema.json#/$defs/file_list"
    assert (
        find_problems(
            page, {"data": [file], "has_more": False, "first_id": file["id"], "last_id": file["id"]}
        )
        == []
    )
    assert find_problems(page, {"data": [file], "next_page": None}) == []
    assert (
        find_problems(
            page, {"data": [file], "has_more": False, "first_id": None, "last_id": None, "next_page": None}
        )
        == []
    )
    assert find_problems(page, {"data": [file]}) != []
    assert [str(p) for p in find_problems("files.schema.json", {**file, "purpose": "x"})] == [
        "purpose: Extra inputs are not permitted"
    ]


# --- the SDK as an oracle: every tag it knows, we know ------------------------------------------------------


def literal_values(annotation: Any) -> set[str]:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return {value for value in typing.get_args(annotation) if isinstance(value, str)}
    return {value for arg in typing.get_args(annotation) for value in literal_values(arg)}


def field_literals(cls: Any, name: str) -> set[str]:
    if hasattr(cls, "model_fields"):
        field = cls.model_fields.get(name)
        return literal_values(field.annotation) if field else set()
    hints = typing.get_type_hints(cls, include_extras=True)
    return literal_values(hints[name]) if name in hints else set()


def members(union: Any) -> list[Any]:
    if typing.get_origin(union) is typing.Annotated:
        union = typing.get_args(union)[0]
    return [member for member in typing.get_args(union) if isinstance(member, type)]


def union_tags(ref: str) -> set[str]:
    store = default_store()
    document_name, _, pointer = ref.partition("#")
    node = store.registry.resolver().lookup(store.uri(document_name) + "#" + pointer).contents
    return set(node["properties"][node["x-discriminator"]["propertyName"]]["enum"])


def test_sdk_tool_types_are_all_known():
    beta = pytest.importorskip("anthropic.types.beta")
    sdk_tags = {tag for member in members(beta.BetaToolUnionParam) for tag in field_literals(member, "type")}
    assert "code_execution_20260521" in sdk_tags
    assert sdk_tags <= union_tags("tools.schema.json#/$defs/tool")


def test_sdk_content_block_types_are_all_known():
    beta = pytest.importorskip("anthropic.types.beta")
    request_tags = {
        tag for member in members(beta.BetaContentBlockParam) for tag in field_literals(member, "type")
    }
    response_tags = {
        tag for member in members(beta.BetaContentBlock) for tag in field_literals(member, "type")
    }
    assert "container_upload" in request_tags
    assert request_tags <= union_tags("blocks.schema.json#/$defs/content_block")
    assert response_tags <= union_tags("response.schema.json#/$defs/content_block")


def test_sdk_stream_events_and_deltas_are_all_known():
    beta = pytest.importorskip("anthropic.types.beta")
    events = {
        tag for member in members(beta.BetaRawMessageStreamEvent) for tag in field_literals(member, "type")
    }
    deltas = {
        tag for member in members(beta.BetaRawContentBlockDelta) for tag in field_literals(member, "type")
    }
    assert events <= union_tags("response.schema.json#/$defs/stream_event")
    assert deltas <= union_tags("response.schema.json#/$defs/delta")


@pytest.mark.parametrize(
    ("sdk_name", "ref"),
    [
        ("BetaBashCodeExecutionToolResultError", "bash_code_execution_tool_result_error"),
        ("BetaTextEditorCodeExecutionToolResultError", "text_editor_code_execution_tool_result_error"),
        ("BetaCodeExecutionToolResultError", "code_execution_tool_result_error"),
    ],
)
def test_sdk_tool_error_codes_plus_the_legacy_ones(sdk_name, ref):
    beta = pytest.importorskip("anthropic.types.beta")
    sdk_codes = field_literals(getattr(beta, sdk_name), "error_code")
    ours = set(
        default_store().document("blocks.schema.json")["$defs"][ref]["properties"]["error_code"]["enum"]
    )
    legacy = {"container_expired", "string_not_found"} if "text_editor" in ref else {"container_expired"}
    assert sdk_codes
    assert ours == sdk_codes | legacy


def test_sdk_request_parameters_are_all_known():
    message_create_params = pytest.importorskip("anthropic.types.beta.message_create_params")
    sdk_fields = set(typing.get_type_hints(message_create_params.MessageCreateParamsNonStreaming))
    headers_not_body = {"betas", "user_profile_id", "workspace_id"}
    ours = set(default_store().document("request.schema.json")["properties"])
    assert sdk_fields - headers_not_body <= ours
