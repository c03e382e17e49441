"""The Files API against a real `serve` process: state kept across restarts with `--state-dir`, no half file
after a crash mid-upload, and a 100 MB round trip with the server's memory staying flat."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anthropic
import httpx2
import pytest

TOOL = {"type": "code_execution_20250825", "name": "code_execution"}
MODEL = "claude-sonnet-4-6"
MiB = 1024 * 1024


class Server:
    def __init__(self, state_dir: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "emulator", "serve", "--port", "0", "--state-dir", str(state_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        line = self.process.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, line + self.process.stderr.read()
        self.base_url = line.rsplit(" ", 1)[-1].strip()

    def client(self, **kwargs) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.base_url, api_key="k", max_retries=0, **kwargs)

    def peak_rss_bytes(self) -> int:
        """The process's high-water mark of resident memory (VmHWM)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc status")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.communicate(timeout=30)
        assert self.process.returncode == 0

    def crash(self) -> None:
        self.process.kill()
        self.process.communicate(timeout=30)

    def ensure_dead(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=30)


@contextmanager
def serving(state_dir: Path) -> Iterator[Server]:
    server = Server(state_dir)
    try:
        yield server
    finally:
        server.ensure_dead()


def run_bash(client: anthropic.Anthropic, script: str, content: list | None = None, **extra):
    blocks = [*(content or []), {"type": "text", "text": f"```bash\n{script}\n```"}]
    return client.beta.messages.create(
        model=MODEL, max_tokens=100, tools=[TOOL], messages=[{"role": "user", "content": blocks}], **extra
    )


def test_restart_with_state_dir_keeps_files_and_containers(tmp_path):
    with serving(tmp_path) as server:
        client = server.client()
        uploaded = client.beta.files.upload(file=("data.csv", b"a,b\n1,2\n", "text/csv"))
        message = run_bash(
            client,
            "cp $INPUT_DIR/data.csv $OUTPUT_DIR/copy.csv && echo remembered > /workspace/note.txt",
            [{"type": "container_upload", "file_id": uploaded.id}],
        )
        [output] = message.content[1].content.content
        container = message.container.id
        server.stop()

    with serving(tmp_path) as server:
        client = server.client()
        assert client.beta.files.retrieve_metadata(uploaded.id).filename == "data.csv"
        assert {f.id for f in client.beta.files.list()} == {uploaded.id, output.file_id}
        assert client.beta.files.download(output.file_id).read() == b"a,b\n1,2\n"
        admin = httpx2.get(f"{server.base_url}/_emulator/containers").json()["data"]
        assert [c["id"] for c in admin] == [container]
        later = run_bash(client, "cat /workspace/note.txt; ls $INPUT_DIR", container=container)
        assert later.container.id == container
        assert later.content[1].content.stdout == "remembered\ndata.csv\n"
        server.stop()


def test_crash_mid_upload_leaves_no_half_file(tmp_path):
    with serving(tmp_path) as server:
        client = server.client()
        kept = client.beta.files.upload(file=("kept.txt", b"complete\n", "text/plain"))
        incoming = tmp_path / "files" / "incoming"
        sent = threading.Event()
        failure: list[BaseException] = []

        def body() -> Iterator[bytes]:
            yield b'--xx\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
            for _ in range(400):  # up to 400 MiB, far more than is sent before the crash
                yield b"\0" * MiB
                sent.set()
            yield b"\r\n--xx--\r\n"

        def stream_upload() -> None:
            try:
                httpx2.post(
                    f"{server.base_url}/v1/files",
                    content=body(),
                    headers={"x-api-key": "k", "content-type": "multipart/form-data; boundary=xx"},
                    timeout=60,
                )
            except httpx2.HTTPError as error:
                failure.append(error)

        uploader = threading.Thread(target=stream_upload)
        uploader.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            parts = list(incoming.glob("*.part"))
            if parts and parts[0].stat().st_size >= 8 * MiB:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the upload never reached the server's incoming directory")
        server.crash()  # kill -9 while the upload streams
        uploader.join(30)
        assert sent.is_set() and failure, "the client should see the connection die"

    with serving(tmp_path) as server:
        client = server.client()
        assert [f.id for f in client.beta.files.list()] == [kept.id]
        assert list(incoming.iterdir()) == []
        assert sorted(p.name for p in (tmp_path / "files" / "blobs").iterdir()) == [kept.id]
        server.stop()


@pytest.mark.slow
def test_100_mb_round_trip_keeps_server_memory_flat(tmp_path):
    size = 100 * MiB
    source = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with source.open("wb") as handle:
        block = os.urandom(MiB)
        for index in range(100):
            chunk = bytes([index]) + block[1:]
            handle.write(chunk)
            digest.update(chunk)
    with serving(tmp_path / "state") as server:
        client = server.client(timeout=300)
        # warm every code path (upload, staging, output collection, download) with a small file first
        small = client.beta.files.upload(file=("small.bin", b"x" * 1000, "application/octet-stream"))
        warm = run_bash(
            client,
            "cp $INPUT_DIR/small.bin $OUTPUT_DIR/small.bin",
            [{"type": "container_upload", "file_id": small.id}],
        )
        client.beta.files.download(warm.content[1].content.content[0].file_id).read()
        before = server.peak_rss_bytes()

        with source.open("rb") as handle:
            uploaded = client.beta.files.upload(file=("big.bin", handle, "application/octet-stream"))
        assert uploaded.size_bytes == size
        message = run_bash(
            client,
            "sha256sum $INPUT_DIR/big.bin && cp $INPUT_DIR/big.bin $OUTPUT_DIR/big.bin",
            [{"type": "container_upload", "file_id": uploaded.id}],
        )
        result = message.content[1].content
        assert result.stdout.split()[0] == digest.hexdigest()
        [output] = result.content
        received = hashlib.sha256()
        count = 0
        with client.beta.files.with_streaming_response.download(output.file_id) as response:
            for chunk in response.iter_bytes():
                received.update(chunk)
                count += len(chunk)
        assert (count, received.hexdigest()) == (size, digest.hexdigest())
        growth = server.peak_rss_bytes() - before
        print(f"server peak RSS grew by {growth / MiB:.1f} MiB over a 100 MiB round trip")
        assert growth < 60 * MiB
        server.stop()
