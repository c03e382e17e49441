"""`code-execution-emulator serve` as a real process: SIGKILL while recording, and secrets under DEBUG logs.

Everything listens on 127.0.0.1 only: the record-mode upstream is an emulator this test starts itself.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import anthropic
import httpx2
import pytest

from emulator import Emulator
from emulator.cassettes import read_interactions

MODEL = "claude-sonnet-4-6"
TOOL = {"type": "code_execution_20250825", "name": "code_execution"}
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


def params(content: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 64,
        "tools": [TOOL],
        "messages": [{"role": "user", "content": content}],
        **extra,
    }


class Served:
    """A running `serve` process: its base URL and everything it printed (collected by two threads)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.url: str | None = None
        self._ready = threading.Event()
        self._readers = [
            threading.Thread(target=self._read, args=(process.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(process.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str] | None, into: list[str]) -> None:
        assert stream is not None
        for line in stream:
            into.append(line)
            found = LISTENING.search(line)
            if found:
                self.url = found.group(1)
                self._ready.set()
        self._ready.set()

    def wait_ready(self, timeout: float = 60.0) -> str:
        self._ready.wait(timeout)
        assert self.url is not None, "".join(self.stdout + self.stderr)[-3000:]
        return self.url

    def join_output(self, timeout: float = 30.0) -> str:
        for reader in self._readers:
            reader.join(timeout)
        return "".join(self.stdout) + "".join(self.stderr)


#: `serve` with every Python logger at DEBUG (the emulator's own, httpx2/httpcore2, ...), not only uvicorn's
ROOT_DEBUG = (
    "import logging, sys\n"
    "logging.basicConfig(level=logging.DEBUG)\n"
    "from emulator.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


@contextmanager
def serve(*args: str, root_debug: bool = False) -> Iterator[Served]:
    entry = ["-c", ROOT_DEBUG] if root_debug else ["-m", "emulator"]
    argv = [sys.executable, *entry, "serve", "--host", "127.0.0.1", "--port", "0", *args]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    served = Served(process)
    try:
        yield served
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        served.join_output()


# ------------------------------------------------------------------------------ kill -9 while recording


class Traffic:
    """SDK lanes sending distinct requests until the server is gone; `enough` is set after `kill_after`
    answers."""

    def __init__(self, client: anthropic.Anthropic, prefix: str, kill_after: int) -> None:
        self.client, self.prefix, self.kill_after = client, prefix, kill_after
        self.answered: list[str] = []
        self.failures: list[BaseException] = []
        self.enough = threading.Event()
        self._lock = threading.Lock()

    def drive(self, lane: int) -> None:
        for number in range(10_000):
            marker = f"{self.prefix}-lane-{lane}-request-{number}"
            try:
                message = self.client.beta.messages.create(**params(marker))
            except anthropic.APIConnectionError:
                return  # the server is gone
            except Exception as e:  # any other outcome is a finding
                self.failures.append(e)
                return
            if message.type != "message":
                self.failures.append(AssertionError(message))
                return
            with self._lock:
                self.answered.append(marker)
                if len(self.answered) >= self.kill_after:
                    self.enough.set()


@pytest.mark.slow
def test_sigkilled_recording_serve_keeps_every_answered_request(tmp_path):
    """`serve --mode record` is SIGKILLed while two SDK threads keep sending; the cassette must still parse
    and hold every request that got its 200 answer. Three rounds append to the same cassette, each killed
    after a different number of answers."""
    cassette = tmp_path / "killed.yaml"
    answered: list[str] = []
    with Emulator(isolation="none", id_seed=3) as upstream:
        upstream_url = upstream.start_server()
        assert upstream_url.startswith("http://127.0.0.1:")
        for round_number, kill_after in enumerate((5, 17, 30)):
            state = tmp_path / f"state-{round_number}"
            with serve(
                "--mode",
                "record",
                "--cassette",
                str(cassette),
                "--upstream",
                upstream_url,
                "--isolation",
                "none",
                "--state-dir",
                str(state),
            ) as served:
                client = anthropic.Anthropic(
                    base_url=served.wait_ready(), api_key="k", max_retries=0, timeout=30
                )
                traffic = Traffic(client, f"round-{round_number}", kill_after)
                lanes = [threading.Thread(target=traffic.drive, args=(lane,)) for lane in range(2)]
                for lane in lanes:
                    lane.start()
                assert traffic.enough.wait(60), served.join_output()[-3000:]
                served.process.send_signal(signal.SIGKILL)  # mid-traffic: the other lane is in flight
                served.process.wait(timeout=30)
                for lane in lanes:
                    lane.join(60)
                assert traffic.failures == [], traffic.failures
                assert served.process.returncode == -signal.SIGKILL
                answered += traffic.answered
            interactions = read_interactions(cassette)  # parses: the save is atomic
            recorded = [item.request_body.decode() for item in interactions if item.request_body]
            missing = [marker for marker in answered if not any(marker in body for body in recorded)]
            assert missing == [], (missing, len(recorded))
            assert all(item.status == 200 for item in interactions)
    assert len(answered) >= 5 + 17 + 30
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("killed.yaml",)]
    assert all(
        n.startswith("state-") or (n.startswith(".killed.yaml.") and n.endswith(".tmp")) for n in leftovers
    )


# ------------------------------------------------------------------------------------ secrets in logs


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["emulate", "record"])
def test_api_keys_never_reach_debug_logs_or_the_state_dir(mode, tmp_path):
    """`serve --log-level debug --api-key K`, with every Python logger at DEBUG too: keys sent as
    `x-api-key` and as `Authorization: Bearer` (right and wrong ones, answered and refused, JSON and
    streamed, with a tool call that really runs) appear neither in what the server prints nor in any file
    of its state directory (nor, in record mode, in the cassette, whose upstream is a local emulator)."""
    key = "sk-ant-api03-" + secrets.token_urlsafe(24)
    bearer_wrong = "sk-ant-api03-" + secrets.token_urlsafe(24)
    wrong = "sk-ant-api03-" + secrets.token_urlsafe(24)
    keys = (key, bearer_wrong, wrong)
    state = tmp_path / "state"
    statuses: dict[str, int] = {}
    args = ["--api-key", key, "--log-level", "debug", "--state-dir", str(state)]
    with contextlib.ExitStack() as stack:
        if mode == "record":
            upstream = stack.enter_context(Emulator(isolation="none", id_seed=5))
            cassette = tmp_path / "recorded.yaml"
            args += ["--mode", "record", "--cassette", str(cassette), "--upstream", upstream.start_server()]
        served = stack.enter_context(serve(*args, root_debug=True))
        url = served.wait_ready()
        client = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, timeout=60)
        ran = client.beta.messages.create(**params("```bash\necho ran-in-the-sandbox\n```"))
        statuses["sdk x-api-key + tool call"] = 200
        assert ran.content[1].content.stdout == "ran-in-the-sandbox\n"
        with client.beta.messages.stream(**params("hello", container=ran.container.id)) as stream:
            stream.get_final_message()
        statuses["sdk stream"] = 200
        body = params("hi")
        with httpx2.Client(base_url=url, timeout=60) as http:
            for name, headers in {
                "bearer, right key": {"authorization": f"Bearer {key}"},
                "bearer, wrong key": {"authorization": f"Bearer {bearer_wrong}"},
                "both headers": {"x-api-key": key, "authorization": f"Bearer {bearer_wrong}"},
                "wrong x-api-key": {"x-api-key": wrong},
                "count_tokens bearer": {"authorization": f"Bearer {bearer_wrong}"},
            }.items():
                path = "/v1/messages/count_tokens" if name.startswith("count") else "/v1/messages"
                answer = http.post(path, json=body, headers=headers)
                statuses[name] = answer.status_code
                assert all(s not in answer.text for s in keys), answer.text
            journal = http.get("/_emulator/requests", headers={"x-api-key": key})
            assert journal.status_code == 200 and all(s not in journal.text for s in keys)
        served.process.send_signal(signal.SIGTERM)  # a clean stop: whatever it flushes on the way out too
        assert served.process.wait(timeout=60) == 0
    output = served.join_output()
    expected = {
        "sdk x-api-key + tool call": 200,
        "sdk stream": 200,
        "bearer, right key": 200,
        "bearer, wrong key": 401,
        "both headers": 200,  # x-api-key wins
        "wrong x-api-key": 401,
        "count_tokens bearer": 401,
    }
    if mode == "record":
        # record mode is a proxy: `--api-key` does not gate it, the upstream (here keyless) answers; its
        # count_tokens refuses the body's max_tokens
        expected |= {"bearer, wrong key": 200, "wrong x-api-key": 200, "count_tokens bearer": 400}
    assert statuses == expected
    # DEBUG logging really was on: uvicorn's access lines and DEBUG records of the Python loggers
    assert output.count("POST /v1/messages") >= 5, output[-3000:]
    assert "DEBUG:" in output, output[-3000:]
    for secret in keys:
        assert secret not in output
    files = [path for path in tmp_path.rglob("*") if path.is_file() and not path.is_symlink()]
    assert any(path.is_relative_to(state) for path in files), "the state directory is empty"
    for path in files:
        data = path.read_bytes()
        for secret in keys:
            assert secret.encode() not in data, path
