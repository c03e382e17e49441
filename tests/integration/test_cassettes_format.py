"""The cassette format (vcrpy's, both ours and pydantic-ai's `parsed_body` flavour), atomic saves, and the
indexed lookup (issue #9 target P6: the last of 1,000 interactions in at most 2 ms)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from vcr.cassette import Cassette
from vcr.request import Request
from vcr.serialize import deserialize, serialize
from vcr.serializers import yamlserializer

from emulator import Emulator
from emulator.cassettes import Serializer, fixture_path, open_cassette
from emulator.cassettes.format import UnreadableCassette
from emulator.cassettes.matching import BodyMatcher, matchers

RESPONSE = {"status": {"code": 200, "message": "OK"}, "headers": {}, "body": {"string": b"{}"}}


def messages_request(text: str, **extra: object) -> Request:
    body = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": text}]}
    return Request(
        "POST",
        "https://api.anthropic.com/v1/messages",
        json.dumps({**body, **extra}),
        {"content-type": "json"},
    )


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=300))
def test_any_body_survives_a_save_and_load_exactly(text):
    """Literal blocks where YAML can hold the text exactly, quoted scalars everywhere else."""
    body = text.encode("utf-8")
    cassette = {"requests": [messages_request("x")], "responses": [{**RESPONSE, "body": {"string": body}}]}
    written = serialize(cassette, Serializer)
    for reader in (Serializer, yamlserializer):  # ours, and stock vcrpy's
        _, responses = deserialize(written, reader)
        assert responses[0]["body"]["string"] == body


def test_streams_are_written_as_literal_blocks():
    text = fixture_path("bash_stream").read_text()
    assert "      string: |+\n        event: message_start\n        data: {" in text


def test_a_pydantic_ai_cassette_replays_through_the_sdk(real_api_dir):
    """`parsed_body` (JSON stored as YAML) is read as vcrpy's `body`; `?beta=true` does not prevent a
    match."""
    path = real_api_dir / "pydantic-ai" / "test_anthropic_code_execution_tool_stream.yaml"
    recorded = yaml.safe_load(path.read_text())["interactions"][0]["request"]
    assert recorded["uri"].endswith("/v1/messages?beta=true") and "parsed_body" in recorded
    params = {key: value for key, value in recorded["parsed_body"].items() if key != "stream"}
    with Emulator(mode="replay", cassette=path) as replay:
        client = replay.anthropic_client()
        with client.beta.messages.stream(**params) as stream:
            events = [event.type for event in stream]
            message = stream.get_final_message()
    assert message.id == "msg_01Js8aWE7YbmiaUPneGiCskE"
    assert message.content[3].content.stdout == "-428330955.97745\n"
    assert events.count("thinking") >= 1 and events[-1] == "message_stop"


KILLER = textwrap.dedent(
    """
    import sys
    from vcr.request import Request
    from emulator.cassettes import open_cassette

    cassette = open_cassette(sys.argv[1], "all")
    response = {"status": {"code": 200, "message": "OK"}, "headers": {}, "body": {"string": b"x" * 20000}}
    number = 0
    while True:
        number += 1
        cassette.append(Request("POST", "https://h/v1/messages", '{"n": %d}' % number, {}), response)
        cassette._save()
        print(number, flush=True)
    """
)


def test_a_killed_recording_never_leaves_a_truncated_cassette(tmp_path):
    path = tmp_path / "killed.yaml"
    for round_number in range(4):
        process = subprocess.Popen(
            [sys.executable, "-c", KILLER, str(path)], stdout=subprocess.PIPE, text=True, cwd=tmp_path
        )
        assert process.stdout is not None
        for _ in range(20 + 7 * round_number):  # saves of a growing cassette, killed mid-way through one
            process.stdout.readline()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        loaded = open_cassette(path, "none")
        assert len(loaded) >= 20 + 7 * round_number
        bodies = [json.loads(request.body)["n"] for request in loaded.requests]
        assert bodies == list(range(1, len(bodies) + 1))  # every saved interaction is whole
    leftovers = [name for name in os.listdir(tmp_path) if name != "killed.yaml"]
    assert all(name.startswith(".killed.yaml.") and name.endswith(".tmp") for name in leftovers)


def test_repeated_requests_play_in_order_and_the_index_agrees_with_vcrpy(tmp_path):
    path = tmp_path / "order.yaml"
    cassette = open_cassette(path, "all")
    for answer in (b"first", b"second", b"other"):
        text = "other" if answer == b"other" else "same"
        cassette.append(messages_request(text), {**RESPONSE, "body": {"string": answer}})
    cassette._save()
    indexed = open_cassette(path, "none")
    linear = Cassette.load(path=str(path), serializer=Serializer, match_on=matchers())
    for lookup in (indexed, linear):
        # key order and whitespace do not matter
        reordered = Request(
            "POST",
            "http://127.0.0.1:1/v1/messages?beta=true",
            '{"messages": [{"content": "same", "role": "user"}],\n'
            ' "max_tokens": 10, "model": "claude-sonnet-4-6"}',
            {},
        )
        assert lookup.play_response(reordered)["body"]["string"] == b"first"
        assert lookup.play_response(messages_request("same"))["body"]["string"] == b"second"
        assert not lookup.can_play_response_for(messages_request("same"))
        assert lookup.play_response(messages_request("other"))["body"]["string"] == b"other"


def test_the_index_finds_the_last_of_1000_interactions_without_scanning(tmp_path, monkeypatch):
    """The index answers from one key: no body is compared with any recorded one, where vcrpy's own scan
    runs the matchers on every interaction before the last. (How fast that is lives in `bench/`, P6.)"""
    path = tmp_path / "big.yaml"
    recording = open_cassette(path, "all")
    padding = "lorem ipsum " * 150  # ~2 kB prompts, like a real conversation's history
    for number in range(1000):
        body = {"string": json.dumps({"id": number}).encode()}
        recording.append(messages_request(f"{padding} question {number}"), {**RESPONSE, "body": body})
    recording._save()

    compared: list[int] = []
    original = BodyMatcher.__call__

    def counting(self, r1, r2):
        compared.append(1)
        return original(self, r1, r2)

    monkeypatch.setattr(BodyMatcher, "__call__", counting)
    last = messages_request(f"{padding} question 999")
    indexed = open_cassette(path, "none")
    assert indexed.can_play_response_for(last)
    assert json.loads(indexed.play_response(last)["body"]["string"]) == {"id": 999}
    assert compared == []

    linear = Cassette.load(path=str(path), serializer=Serializer, match_on=matchers())
    linear.play_response(messages_request(f"{padding} question 999"))
    assert len(compared) >= 999


def test_sdk_replays_the_last_of_a_large_cassette(tmp_path):
    """End to end through the SDK: the 1,000th answer of a 1,000-interaction cassette."""
    path = tmp_path / "sdk.yaml"
    recording = open_cassette(path, "all")
    for number in range(1000):
        message = {
            "id": f"msg_{number}",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-6",
            "content": [{"type": "text", "text": f"answer {number}"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
        recording.append(
            messages_request(f"question {number}"),
            {
                "status": {"code": 200, "message": "OK"},
                "headers": {"content-type": ["application/json"]},
                "body": {"string": json.dumps(message).encode()},
            },
        )
    recording._save()
    with Emulator(mode="replay", cassette=path) as replay:
        client = replay.anthropic_client()
        ask = {"model": "claude-sonnet-4-6", "max_tokens": 10}
        first = client.beta.messages.create(**ask, messages=[{"role": "user", "content": "question 0"}])
        answer = client.beta.messages.create(**ask, messages=[{"role": "user", "content": "question 999"}])
        assert replay.cassette_edge is not None and replay.cassette_edge.unmatched == []
    assert (first.content[0].text, answer.content[0].text) == ("answer 0", "answer 999")


def test_bad_settings_fail_before_anything_starts(tmp_path):
    with pytest.raises(ValueError, match="unknown record mode 'bogus'"):
        Emulator(mode="replay", cassette=tmp_path / "x.yaml", record_mode="bogus")
    with pytest.raises(ValueError, match="needs a cassette path"):
        Emulator(mode="replay")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "garbage", [b"interactions:\n- request: {method: POST\n  bad: [\n", b"\xff\xfe garbage"]
)
def test_an_unreadable_cassette_is_refused_and_left_untouched(tmp_path, garbage):
    """vcrpy would load it as empty and a recording run would overwrite it."""
    path = tmp_path / "broken.yaml"
    path.write_bytes(garbage)
    with pytest.raises(UnreadableCassette, match=r"broken\.yaml exists but cannot be read"):
        Emulator(mode="record", cassette=path, upstream="http://127.0.0.1:9")
    assert path.read_bytes() == garbage
