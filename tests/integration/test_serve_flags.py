"""`serve` flags for the settings non-Python clients cannot pass as keywords, and the admin clock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta

import anthropic
import httpx2
import pytest

from emulator import Emulator
from emulator.cli import _serve_behaviour, build_parser
from emulator.config import EmulatorConfig
from emulator.wire.sse import parse_sse

TOOL = {"type": "code_execution_20250825", "name": "code_execution"}
FLAGS = [
    "--manual-clock",
    "--pause-after-tool-calls=1",
    "--stream-seed=5",
    "--stream-min-fragment=1",
    "--stream-max-fragment=2",
    "--ping-every=1",
    "--max-file-bytes=16",
    "--max-output-file-bytes=8",
    "--ptc-call-timeout=7.5",
    "--batch-delay=30",
]


def ask(client: anthropic.Anthropic, content: str, **extra: object) -> object:
    return client.beta.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=50,
        tools=[TOOL],
        messages=[{"role": "user", "content": content}],
        **extra,
    )


def test_every_flag_reaches_the_config():
    args = build_parser().parse_args(["serve", *FLAGS])
    config = EmulatorConfig().with_overrides(**_serve_behaviour(args))

    assert config.manual_clock is True
    assert config.pause_after_tool_calls == 1
    assert (config.streaming.seed, config.streaming.min_size, config.streaming.max_size) == (5, 1, 2)
    assert config.streaming.ping_every == 1
    assert (config.max_file_bytes, config.max_output_file_bytes) == (16, 8)
    assert (config.ptc_call_timeout_s, config.batch_delay_s) == (7.5, 30.0)


def test_flags_left_out_keep_the_defaults():
    args = build_parser().parse_args(["serve"])
    assert EmulatorConfig().with_overrides(**_serve_behaviour(args)) == EmulatorConfig()


@pytest.mark.parametrize(
    "flag", ["--stream-max-fragment=0", "--ping-every=-1", "--batch-delay=nan", "--ptc-call-timeout=-2"]
)
def test_nonsense_values_are_refused_by_the_parser(flag, capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["serve", flag])
    assert exited.value.code == 2
    assert flag.split("=")[0] in capsys.readouterr().err


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("served")
    command = [sys.executable, "-m", "emulator", "serve", "--port", "0", "--state-dir", str(state), *FLAGS]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = process.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, process.stderr.read()
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


@pytest.fixture
def client(served: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=served, api_key="k", max_retries=0)


def test_served_pause_after_tool_calls(client):
    message = ask(client, "```bash\necho 1\n```\n```bash\necho 2\n```")
    assert message.stop_reason == "pause_turn"


def test_served_fragments_and_pings(served):
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "no code here"}],
    }
    with httpx2.Client(base_url=served) as http:
        events = parse_sse(http.post("/v1/messages", json=body, headers={"x-api-key": "k"}).content)
    pieces = [e.data["delta"]["text"] for e in events if e.data["type"] == "content_block_delta"]
    assert len(pieces) > 10 and max(map(len, pieces)) <= 2
    assert sum(e.data["type"] == "ping" for e in events) > 5  # more than the single one at the start


def test_served_file_limits(client):
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.beta.files.upload(file=("big.txt", b"x" * 17, "text/plain"))
    assert caught.value.status_code == 413
    assert client.beta.files.upload(file=("fits.txt", b"x" * 16, "text/plain")).size_bytes == 16

    message = ask(client, "```bash\nprintf 123456789 > $OUTPUT_DIR/nine.txt\n```")
    assert message.content[1].content.error_code == "output_file_too_large"


def test_served_manual_clock_expires_containers(client, served):
    first = ask(client, "```bash\necho 1\n```")
    with httpx2.Client(base_url=served) as http:
        moved = http.post("/_emulator/clock", json={"seconds": 31 * 24 * 3600})
    assert moved.status_code == 200
    now = datetime.fromisoformat(moved.json()["now"])
    assert now >= first.container.expires_at + timedelta(days=30)

    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(client, "```bash\necho 2\n```", container=first.container.id)
    assert "expired" in caught.value.body["error"]["message"]


# --- the clock endpoint in-process -------------------------------------------------------------------------


def test_clock_endpoint_advances_a_manual_clock():
    with Emulator(manual_clock=True) as emulator, emulator.http_client() as http:
        before = emulator.clock.now()
        moved = http.post("/_emulator/clock", json={"seconds": 90.5})
        assert moved.status_code == 200
        assert emulator.clock.now() - before == timedelta(seconds=90.5)
        assert datetime.fromisoformat(moved.json()["now"]) == emulator.clock.now()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("{}", "seconds: Input should be a finite number"),
        ('{"seconds": -1}', "seconds: Input should be a finite number"),
        ('{"seconds": "60"}', "seconds: Input should be a finite number"),
        ('{"seconds": true}', "seconds: Input should be a finite number"),
        ('{"seconds": NaN}', "seconds: Input should be a finite number"),
        ('{"seconds": 1e400}', "seconds: Input should be a finite number"),
        ('{"seconds": 1e15}', "seconds: moves the clock past the year 9999"),
        ('{"seconds": 1e300}', "seconds: moves the clock past the year 9999"),
        ("[60]", "seconds: Input should be a finite number"),
    ],
)
def test_clock_endpoint_refuses_what_cannot_be_done(body, fragment):
    with Emulator(manual_clock=True) as emulator, emulator.http_client() as http:
        before = emulator.clock.now()
        answer = http.post("/_emulator/clock", content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 400
        assert answer.json()["error"]["type"] == "invalid_request_error"
        assert answer.json()["error"]["message"].startswith(fragment)
        assert emulator.clock.now() == before


def test_clock_endpoint_leaves_the_system_clock_alone(code_execution_emulator):
    with code_execution_emulator.http_client() as http:
        answer = http.post("/_emulator/clock", json={"seconds": 60})
    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith("clock: the emulator runs on the system clock")
