"""The curated cassettes in `fixtures/`: loadable by name, documented, free of keys, reproducible by
`fixtures/make_fixtures.py`, and replayable through the official SDK and over raw HTTP."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import anthropic
import pytest

from emulator import Emulator
from emulator.cassettes import fixture_names, fixture_path, read_interactions

REPO_ROOT = Path(__file__).resolve().parents[2]
NAMES = fixture_names()
TOOL = {"type": "code_execution_20250825", "name": "code_execution"}
BETAS = ["code-execution-2025-08-25"]


def load_make_fixtures() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_fixtures", REPO_ROOT / "fixtures" / "make_fixtures.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_fixtures", module)
    spec.loader.exec_module(module)
    return module


def test_fixtures_load_by_name_and_cover_the_scenarios():
    assert fixture_path("bash") == REPO_ROOT / "fixtures" / "bash.yaml"
    expected = {
        "bash",
        "bash_stream",
        "text_editor_create",
        "text_editor_view",
        "text_editor_str_replace",
        "python",
        "python_stream",
        "container_reuse",
        "pause_turn",
        "pause_turn_stream",
        "stream_error",
        "upload_and_output_file",
        *(f"tool_error_{code}" for code in ("unavailable", "too_many_requests", "execution_time_exceeded")),
        *(f"tool_error_{code}" for code in ("output_file_too_large", "invalid_tool_input", "file_not_found")),
        *(f"http_error_{status}" for status in (400, 401, 402, 403, 404, 413, 429, 500, 504, 529)),
    }
    assert expected <= set(NAMES)
    with pytest.raises(LookupError, match="no cassette fixture named 'nope'; available: bash, bash_stream"):
        fixture_path("nope")


def test_every_fixture_is_documented_and_listed_by_the_script():
    library = (REPO_ROOT / "docs" / "cassettes.md").read_text().split("## The fixture library", 1)[1]
    documented = set(re.findall(r"^\| `([a-z0-9_]+)` \|", library, re.M))
    scripted = {fixture.name for fixture in load_make_fixtures().FIXTURES}
    assert set(NAMES) == documented == scripted


def test_no_fixture_holds_a_key():
    for name in NAMES:
        text = fixture_path(name).read_text()
        assert "sk-ant-" not in text, name
        assert not re.search(r"^\s+(authorization|x-api-key):", text, re.M), name


def test_make_fixtures_reproduces_a_fixture_byte_for_byte(tmp_path):
    module = load_make_fixtures()
    assert module.main(["bash", "pause_turn_stream", "--out", str(tmp_path)]) == 0
    for name in ("bash", "pause_turn_stream"):
        assert (tmp_path / f"{name}.yaml").read_text() == fixture_path(name).read_text()


@pytest.mark.parametrize("name", NAMES)
def test_every_fixture_replays_over_http(name):
    """Any client: each recorded request, sent as recorded, gets the recorded answer byte for byte."""
    interactions = read_interactions(fixture_path(name))
    with Emulator(mode="replay", cassette=fixture_path(name)) as replay:
        client = replay.http_client()
        for item in interactions:
            headers = {
                key: value for key, value in item.request_headers.items() if key.lower() in ("content-type",)
            }
            answer = client.request(item.method, item.path, content=item.request_body or b"", headers=headers)
            assert answer.status_code == item.status, answer.text
            assert answer.content == item.response_body
        assert replay.cassette_edge is not None and replay.cassette_edge.all_played


def sdk_for(name: str, emulator_stack: list[Emulator]) -> anthropic.Anthropic:
    replay = Emulator(mode="replay", cassette=fixture_path(name))
    emulator_stack.append(replay)
    return replay.anthropic_client(max_retries=0)


@pytest.fixture
def replays():
    stack: list[Emulator] = []
    yield stack
    for emulator in stack:
        assert emulator.cassette_edge is not None and emulator.cassette_edge.unmatched == []
        emulator.close()


def test_fixtures_replay_through_the_sdk(replays):
    def create(client: anthropic.Anthropic, content: object, **extra: object) -> object:
        return client.beta.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=1024,
            betas=BETAS,
            tools=[TOOL],
            messages=[{"role": "user", "content": content}],
            **extra,
        )

    message = create(sdk_for("bash", replays), "Say hello from the sandbox.")
    assert message.content[1].content.stdout == "hello from the sandbox\n"

    client = sdk_for("http_error_529", replays)
    with pytest.raises(anthropic.OverloadedError):
        create(client, "This request gets HTTP 529.")

    client = sdk_for("tool_error_file_not_found", replays)
    result = create(client, "Show /tmp/does-not-exist.txt.").content[1].content
    assert (
        result.type == "text_editor_code_execution_tool_result_error"
        and result.error_code == "file_not_found"
    )

    client = sdk_for("stream_error", replays)
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):  # noqa: SIM117 - the stream raises
        with client.beta.messages.stream(
            model="claude-sonnet-4-6",
            max_tokens=1024,
            betas=BETAS,
            tools=[TOOL],
            messages=[{"role": "user", "content": "Stream, then fail."}],
        ) as stream:
            stream.get_final_message()


def test_pause_turn_fixture_continues_through_the_sdk(replays):
    client = sdk_for("pause_turn_stream", replays)
    request = {"model": "claude-sonnet-4-6", "max_tokens": 1024, "betas": BETAS, "tools": [TOOL]}
    with client.beta.messages.stream(
        **request, messages=[{"role": "user", "content": "Run two steps."}]
    ) as stream:
        paused = stream.get_final_message()
    assert paused.stop_reason == "pause_turn" and paused.content[-1].type == "server_tool_use"
    history = [
        {"role": "user", "content": "Run two steps."},
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in paused.content]},
    ]
    with client.beta.messages.stream(**request, messages=history, container=paused.container.id) as stream:
        done = stream.get_final_message()
    assert done.stop_reason == "end_turn" and done.content[0].content.stdout == "step two\n"


def test_upload_fixture_replays_an_sdk_upload_with_another_multipart_boundary(replays):
    client = sdk_for("upload_and_output_file", replays)
    uploaded = client.beta.files.upload(file=("data.csv", b"item,value\napple,30\nbanana,70\n", "text/csv"))
    message = client.beta.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=1024,
        betas=BETAS,
        tools=[TOOL],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Sum the value column."},
                    {"type": "container_upload", "file_id": uploaded.id},
                ],
            }
        ],
    )
    output = message.content[1].content
    assert output.stdout == "100\n"
    file_id = output.content[0].file_id
    assert client.beta.files.retrieve_metadata(file_id).filename == "total.csv"
    assert client.beta.files.download(file_id).read() == b"total,100\n"
