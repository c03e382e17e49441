"""The real HTTP server: the CLI's `serve`, the admin API, and the SDK over a socket."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

import anthropic
import httpx2
import pytest

from emulator import Emulator, bash

TOOL = {"type": "code_execution_20250825", "name": "code_execution"}


def test_sdk_over_real_http_and_admin_api():
    with Emulator() as emulator:
        base_url = emulator.start_server()
        assert base_url.startswith("http://127.0.0.1:")
        admin = httpx2.Client(base_url=base_url)
        health = admin.get("/_emulator/health").json()
        assert health["status"] == "ok" and health["backend"].startswith("local")

        scripted = admin.post(
            "/_emulator/script", json={"turns": [[{"type": "bash", "command": "echo over-http"}]]}
        )
        assert scripted.json() == {"pending": 1}
        client = anthropic.Anthropic(base_url=base_url, api_key="sk-secret-value", max_retries=0)
        message = client.beta.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=50,
            tools=[TOOL],
            messages=[{"role": "user", "content": "go"}],
        )
        assert message.content[1].content.stdout == "over-http\n"

        journal = admin.get("/_emulator/requests").json()["data"]
        assert journal[-1]["body"]["model"] == "claude-sonnet-4-5"
        assert journal[-1]["status"] == 200
        assert "sk-secret-value" not in str(journal)
        assert admin.get("/_emulator/containers").json()["data"][0]["id"] == message.container.id

        assert admin.post("/_emulator/reset").json() == {"status": "reset"}
        assert admin.get("/_emulator/requests").json()["data"] == []
        bad = admin.post("/_emulator/script", json={"turns": [[{"type": "nope"}]]})
        assert bad.status_code == 400 and "unknown step type" in bad.json()["error"]["message"]


def test_cli_serve_prints_url_serves_and_stops_on_sigterm(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--port", "0", "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = process.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        base_url = line.rsplit(" ", 1)[-1].strip()
        client = anthropic.Anthropic(base_url=base_url, api_key="k", max_retries=0)
        message = client.beta.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=50,
            tools=[TOOL],
            messages=[{"role": "user", "content": "```bash\necho served\n```"}],
        )
        assert message.content[1].content.stdout == "served\n"
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=15)
        assert process.returncode == 0
        assert "stopped" in out
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_doctor_reports_isolation():
    completed = subprocess.run(
        [sys.executable, "-m", "emulator", "doctor"], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    assert "backend: local" in completed.stdout
    assert "sandbox round trip: ok" in completed.stdout


@pytest.mark.parametrize("in_process", [True, False])
def test_emulator_is_a_plain_library(in_process):
    with Emulator() as emulator:
        emulator.add_turn(bash("echo library"))
        client = emulator.anthropic_client(in_process=in_process)
        message = client.beta.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=50,
            tools=[TOOL],
            messages=[{"role": "user", "content": "go"}],
        )
        assert message.content[1].content.stdout == "library\n"
        assert emulator.requests[0].headers.get("authorization") == "[redacted]"


def test_an_embedded_server_leaves_the_host_processes_logging_alone():
    """`start_server()` runs inside the user's test process: it must not reconfigure that process's logging
    (uvicorn's default dictConfig would drop the handlers already on the `uvicorn.*` loggers)."""
    handler = logging.NullHandler()
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    try:
        with Emulator() as emulator:
            emulator.start_server()
            assert handler in logger.handlers
    finally:
        logger.removeHandler(handler)
