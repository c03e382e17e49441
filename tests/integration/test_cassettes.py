"""Record and replay: a second emulator on 127.0.0.1 is the upstream; the official SDK is the client.

What is checked: a recorded conversation (JSON and streamed) replays identically after the upstream is gone,
streams byte for byte; misses answer a distinct status with a diff; order of repeated requests; semantic
matching and volatile fields; record modes; no key on disk; plain vcrpy replays our cassettes around the SDK;
any HTTP client (curl, `serve --mode replay`) gets the cassette's answers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
import vcr
import yaml

from emulator import Emulator, bash, python, text
from emulator.cassettes import UNMATCHED_STATUS, configure_vcr, read_interactions

TOOL = {"type": "code_execution_20250825", "name": "code_execution"}
MODEL = "claude-sonnet-4-6"
SECRET = "sk-ant-api03-THIS-IS-THE-SECRET-KEY-0123456789"


def params(content: Any = "go", **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 256,
        "tools": [TOOL],
        "messages": [{"role": "user", "content": content}],
        **extra,
    }


@pytest.fixture
def upstream() -> Iterator[Emulator]:
    """The 'real API' of these tests: an emulator serving HTTP on 127.0.0.1."""
    with Emulator(isolation="none", id_seed=7) as emulator:
        emulator.start_server()
        yield emulator


def recorder(upstream: Emulator, cassette: Path, **settings: Any) -> Emulator:
    assert upstream.base_url is not None and upstream.base_url.startswith("http://127.0.0.1:")
    return Emulator(mode="record", cassette=cassette, upstream=upstream.base_url, **settings)


def stream_events(client: anthropic.Anthropic, **kwargs: Any) -> tuple[list[dict[str, Any]], Any]:
    with client.beta.messages.stream(**kwargs) as stream:
        events = [event.model_dump() for event in stream]
        return events, stream.get_final_message()


def raw_stream(client: httpx2.Client, body: dict[str, Any]) -> bytes:
    with client.stream("POST", "/v1/messages", json=body, headers={"x-api-key": SECRET}) as response:
        assert response.status_code == 200
        return b"".join(response.iter_raw())


def test_recorded_conversation_replays_identically_after_the_upstream_stops(upstream, tmp_path):
    cassette = tmp_path / "conversation.yaml"
    upstream.add_turn(bash("echo first"), text("one"))
    upstream.add_turn(python("print(6 * 7)"), text("two"))
    upstream.add_turn(bash("printf 'raw bytes\\n'"), text("three"))
    with recorder(upstream, cassette) as live:
        client = live.anthropic_client(api_key=SECRET)
        first = client.beta.messages.create(**params("first"))
        second_events, second = stream_events(client, **params("second", container=first.container.id))
        third_raw = raw_stream(live.http_client(), {**params("third"), "stream": True})
    upstream.close()  # from here on nothing answers at the upstream's address
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"{upstream.base_url}/_emulator/health")

    assert [item.uri for item in read_interactions(cassette)] == [f"{upstream.base_url}/v1/messages"] * 3
    with Emulator(mode="replay", cassette=cassette) as replay:
        client = replay.anthropic_client(api_key="any-other-key")
        again = client.beta.messages.create(**params("first"))
        again_events, again_second = stream_events(client, **params("second", container=first.container.id))
        again_raw = raw_stream(replay.http_client(), {**params("third"), "stream": True})
        assert replay.cassette_edge is not None and replay.cassette_edge.all_played
        assert replay.cassette_edge.unmatched == []
        assert [entry.status for entry in replay.requests] == [200, 200, 200]

    assert again.model_dump() == first.model_dump()
    assert again._request_id == first._request_id  # the recorded `request-id` header comes back
    assert again_events == second_events  # every event, in the same order, with the same boundaries
    assert again_second.model_dump() == second.model_dump()
    assert again_second.content[1].content.stdout == "42"
    assert again_raw == third_raw  # byte for byte
    assert third_raw.startswith(b"event: message_start\n") and b"raw bytes\\n" in third_raw


def test_unmatched_request_fails_loudly_with_a_diff_against_the_closest(upstream, tmp_path):
    cassette = tmp_path / "one.yaml"
    upstream.add_turn(bash("echo recorded"))
    with recorder(upstream, cassette) as live:
        live.anthropic_client().beta.messages.create(**params("please run the recorded command"))

    with Emulator(mode="replay", cassette=cassette) as replay:
        client = replay.anthropic_client()
        with pytest.raises(anthropic.APIStatusError) as raised:
            client.beta.messages.create(**params("please run another command"))
        assert replay.cassette_edge is not None
        misses = replay.cassette_edge.unmatched

    error = raised.value
    assert error.status_code == UNMATCHED_STATUS == 418
    assert error.response.headers["request-id"].startswith("req_")
    assert error.response.headers["x-should-retry"] == "false"
    envelope = error.response.json()
    assert envelope["type"] == "error" and envelope["error"]["type"] == "unmatched_request_error"
    message = envelope["error"]["message"]
    assert f"No recorded interaction in cassette {cassette} matches POST /v1/messages" in message
    assert "closest recorded: interaction 0" in message
    assert '-      "content": "please run the recorded command",' in message
    assert '+      "content": "please run another command",' in message
    assert envelope["error"]["details"]["cassette"] == str(cassette)
    assert len(misses) == 1 and misses[0].detail.startswith("body:\n--- recorded\n+++ this request")


def test_repeated_identical_requests_replay_in_recorded_order(upstream, tmp_path):
    cassette = tmp_path / "repeat.yaml"
    upstream.add_turn(text("first answer"))
    upstream.add_turn(text("second answer"))
    with recorder(upstream, cassette) as live:
        client = live.anthropic_client()
        recorded = [client.beta.messages.create(**params("same")).content[0].text for _ in range(2)]
    assert recorded == ["first answer", "second answer"]

    with Emulator(mode="replay", cassette=cassette) as replay:
        client = replay.anthropic_client()
        replayed = [client.beta.messages.create(**params("same")).content[0].text for _ in range(2)]
        with pytest.raises(anthropic.APIStatusError) as raised:
            client.beta.messages.create(**params("same"))
        replay.reset()  # rewinds the cassette: the next run of a suite against the same server starts over
        assert client.beta.messages.create(**params("same")).content[0].text == "first answer"
        assert replay.cassette_edge is not None and replay.cassette_edge.unmatched == []
    assert replayed == recorded
    assert raised.value.status_code == 418
    assert "already played" in raised.value.response.json()["error"]["message"]


def test_bodies_match_semantically_and_volatile_fields_are_ignored(upstream, tmp_path):
    cassette = tmp_path / "semantic.yaml"
    upstream.add_turn(text("ok"))
    with recorder(upstream, cassette) as live:
        live.anthropic_client().beta.messages.create(**params("hello", metadata={"user_id": "run-1"}))

    reordered = b'{ "metadata" : {"user_id":"run-1"},\n "messages":[{"content":"hello","role":"user"}],' + (
        b' "tools": [{"name": "code_execution", "type": "code_execution_20250825"}],'
        b' "max_tokens": 256, "model": "claude-sonnet-4-6"}'
    )
    with Emulator(mode="replay", cassette=cassette) as replay:
        answer = replay.http_client().post("/v1/messages", content=reordered)
        assert answer.status_code == 200 and answer.json()["content"][0]["text"] == "ok"
    other_user = reordered.replace(b"run-1", b"run-2")
    with Emulator(mode="replay", cassette=cassette) as strict:
        missed = strict.http_client().post("/v1/messages", content=other_user)
        assert missed.status_code == 418 and '"user_id": "run-2"' in missed.json()["error"]["message"]
    with Emulator(mode="replay", cassette=cassette, match_ignore=["metadata.user_id"]) as lenient:
        assert lenient.http_client().post("/v1/messages", content=other_user).status_code == 200


def test_no_key_reaches_the_cassette(upstream, tmp_path):
    cassette = tmp_path / "secrets.yaml"
    upstream.add_turn(bash(f"echo {SECRET}"))
    with recorder(upstream, cassette, filter_headers=["x-internal-token"]) as live:
        client = live.anthropic_client(
            api_key=SECRET, default_headers={"x-api-key": SECRET, "x-internal-token": "tok-1234567890"}
        )
        message = client.beta.messages.create(**params(f"my key is {SECRET}"))
    assert message.content[1].content.stdout == f"{SECRET}\n"  # the live answer is untouched
    assert upstream.requests[0].headers["authorization"] == "[redacted]"  # it did reach the upstream

    on_disk = cassette.read_text()
    assert SECRET not in on_disk and "tok-1234567890" not in on_disk
    recorded = yaml.safe_load(on_disk)["interactions"][0]
    assert not {"authorization", "x-api-key", "x-internal-token"} & set(recorded["request"]["headers"])
    assert (
        "[filtered]" in recorded["request"]["body"] and "[filtered]" in recorded["response"]["body"]["string"]
    )


def test_a_recorded_stream_is_on_disk_before_its_client_sees_the_end(upstream, tmp_path):
    """A client that received a whole stream may count on its recording: the emulator could be killed the
    next moment. So by the time `message_stop` arrives, the cassette already holds the interaction."""
    cassette = tmp_path / "stream.yaml"
    upstream.add_turn(bash("echo streamed"), text("done"))
    on_disk_at_stop: list[int] = []
    with (
        recorder(upstream, cassette) as live,
        live.anthropic_client().beta.messages.stream(**params()) as stream,
    ):
        for event in stream:
            if event.type == "message_stop":
                on_disk_at_stop.append(len(read_interactions(cassette)) if cassette.exists() else 0)
    assert on_disk_at_stop == [1]


def test_record_modes_follow_vcrpy(upstream, tmp_path):
    cassette = tmp_path / "modes.yaml"
    upstream.add_turn(text("recorded once"))
    # once: a missing cassette is recorded...
    with recorder(upstream, cassette, record_mode="once") as live:
        live.anthropic_client().beta.messages.create(**params("a"))
    assert len(read_interactions(cassette)) == 1
    # ...an existing one is only replayed
    with recorder(upstream, cassette, record_mode="once") as again:
        client = again.anthropic_client()
        assert client.beta.messages.create(**params("a")).content[0].text == "recorded once"
        with pytest.raises(anthropic.APIStatusError, match=r"record mode .*once"):
            client.beta.messages.create(**params("b"))
    # new_episodes: replays what it has, forwards and records the rest
    upstream.add_turn(text("a new episode"))
    with Emulator(
        mode="replay", cassette=cassette, record_mode="new_episodes", upstream=upstream.base_url
    ) as mixed:
        client = mixed.anthropic_client()
        assert client.beta.messages.create(**params("a")).content[0].text == "recorded once"
        assert client.beta.messages.create(**params("b")).content[0].text == "a new episode"
    assert len(read_interactions(cassette)) == 2
    # all: always forwards; the re-recorded interaction replaces the one it matches
    upstream.add_turn(text("re-recorded"))
    with recorder(upstream, cassette) as everything:
        assert everything.cassette_edge is not None and everything.cassette_edge.record_mode == "all"
        assert (
            everything.anthropic_client().beta.messages.create(**params("a")).content[0].text == "re-recorded"
        )
    bodies = [json.loads(item.response_body)["content"][0]["text"] for item in read_interactions(cassette)]
    assert bodies == ["a new episode", "re-recorded"]
    # none (replay's default) never forwards
    nothing = Emulator(mode="replay", cassette=tmp_path / "missing.yaml", upstream=upstream.base_url)
    with nothing, pytest.raises(anthropic.APIStatusError, match=r"cassette file not found: .*missing\.yaml"):
        nothing.anthropic_client().beta.messages.create(**params("a"))
    assert len(upstream.requests) == 3  # once, new_episodes, all


def test_unreachable_upstream_is_a_clear_error(tmp_path):
    live = Emulator(mode="record", cassette=tmp_path / "x.yaml", upstream="http://127.0.0.1:9")
    with live, pytest.raises(anthropic.APIStatusError) as raised:
        live.anthropic_client().beta.messages.create(**params())
    assert raised.value.status_code == 502
    assert "could not be reached" in raised.value.response.json()["error"]["message"]
    assert not (tmp_path / "x.yaml").exists()


def test_plain_vcrpy_replays_a_server_recorded_cassette_around_the_sdk(upstream, tmp_path):
    """vcrpy 9.4 patches httpx2 (the SDK's HTTP client): no emulator is involved at replay time."""
    cassette = tmp_path / "client-side.yaml"
    upstream.add_turn(bash("echo via vcrpy"), text("done"))
    upstream.add_turn(text("streamed"))
    with recorder(upstream, cassette) as live:
        client = live.anthropic_client()
        first = client.beta.messages.create(**params("one"))
        events, second = stream_events(client, **params("two"))
    upstream_url = upstream.base_url
    upstream.close()

    sdk = anthropic.Anthropic(base_url=upstream_url, api_key="k", max_retries=0)
    with vcr.use_cassette(str(cassette), record_mode="none") as used:
        assert sdk.beta.messages.create(**params("one")).model_dump() == first.model_dump()
        again_events, again = stream_events(sdk, **params("two"))
        assert used.all_played
    assert again_events == events and again.model_dump() == second.model_dump()

    # with the emulator's matching: host ignored (the SDK's default base URL), bodies compared semantically
    matching = configure_vcr(vcr.VCR(record_mode="none"))
    default_sdk = anthropic.Anthropic(api_key="k", max_retries=0)
    with matching.use_cassette(str(cassette)):
        assert default_sdk.beta.messages.create(**params("one")).model_dump() == first.model_dump()
        with pytest.raises(anthropic.APIConnectionError) as raised:  # the SDK wraps transport errors
            default_sdk.beta.messages.create(**params("not recorded"))
    assert isinstance(raised.value.__cause__, vcr.errors.CannotOverwriteExistingCassetteException)
    assert '+      "content": "not recorded",' in str(raised.value.__cause__)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_any_http_client_replays_through_serve(upstream, tmp_path):
    cassette = tmp_path / "curl.yaml"
    upstream.add_turn(bash("echo for curl"), text("done"))
    with recorder(upstream, cassette) as live:
        live.anthropic_client().beta.messages.create(**params("hi"))
    recorded = read_interactions(cassette)[0]
    upstream.close()

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulator",
            "serve",
            "--port",
            "0",
            "--mode",
            "replay",
            "--cassette",
            str(cassette),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on" in line, line + (process.stderr.read() if process.poll() is not None else "")
        base_url = line.split("listening on ")[1].strip()
        body = json.dumps(params("hi"), indent=4, sort_keys=True)  # other whitespace and key order
        answer = subprocess.run(
            [
                "curl",
                "-s",
                "-i",
                "-X",
                "POST",
                f"{base_url}/v1/messages",
                "-H",
                "content-type: application/json",
                "-d",
                body,
            ],
            capture_output=True,
            timeout=30,
            check=True,
        ).stdout
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert payload == recorded.response_body
        miss = subprocess.run(
            [
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "POST",
                f"{base_url}/v1/messages",
                "-d",
                "{}",
            ],
            capture_output=True,
            timeout=30,
            check=True,
        ).stdout
        assert miss == b"418"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_concurrent_recording_keeps_every_interaction(upstream, tmp_path):
    cassette = tmp_path / "concurrent.yaml"
    prompts = [f"question {number}" for number in range(8)]
    with recorder(upstream, cassette) as live:
        client = anthropic.Anthropic(base_url=live.start_server(), api_key="k", max_retries=0)
        with ThreadPoolExecutor(max_workers=8) as pool:
            replies = list(pool.map(lambda prompt: client.beta.messages.create(**params(prompt)), prompts))
    answers = dict(zip(prompts, replies, strict=True))
    assert len(read_interactions(cassette)) == len(prompts)
    with Emulator(mode="replay", cassette=cassette) as replay:
        client = replay.anthropic_client()
        for prompt in reversed(prompts):
            assert client.beta.messages.create(**params(prompt)).id == answers[prompt].id
