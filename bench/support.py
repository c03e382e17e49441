"""What the scenarios share: the request they send, the floor servers, socket checks and child emulators."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import uvicorn

#: a current model id the SDK does not flag as deprecated (a warning per call would tax both sides)
MODEL = "claude-sonnet-4-6"
CODE_EXECUTION_TOOL = {"type": "code_execution_20250825", "name": "code_execution"}
API_KEY = "sk-ant-bench"
REPO_ROOT = Path(__file__).resolve().parent.parent


def message_params(content: str = "go", *, tools: bool = False, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": content}],
    }
    if tools:
        params["tools"] = [CODE_EXECUTION_TOOL]
    params.update(extra)
    return params


def raw_response(client: Any, **params: Any) -> tuple[bytes, dict[str, str]]:
    """The bytes and headers the server answered for one request (what the floors replay)."""
    raw = client.messages.with_raw_response.create(**params)
    response = raw.http_response
    headers = {k: v for k, v in response.headers.items() if k.lower() in ("content-type", "request-id")}
    return response.content, headers


def bind_loopback() -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted connections only when the listening
    # socket says its protocol is TCP (proto 0 leaves Nagle on: ~40 ms per round trip on loopback)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


class FloorServer:
    """The physical floor of an HTTP answer: a bare ASGI callable under uvicorn (same settings as the
    emulator's server) that drains the request and returns fixed bytes. No routing, no parsing.

    With `chunks`, the body is sent as several ASGI body messages (an SSE stream's first event, then the
    rest), so a client can time its first byte."""

    def __init__(self, body: bytes = b"{}", headers: dict[str, str] | None = None) -> None:
        self.body = body
        self.chunks: list[bytes] | None = None
        self.headers = headers or {"content-type": "application/json"}
        self._socket = bind_loopback()
        host, port = self._socket.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(
            self._app, log_level="warning", lifespan="off", access_log=False, interface="asgi3"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="bench-floor", daemon=True
        )

    def set(self, body: bytes, headers: dict[str, str], chunks: list[bytes] | None = None) -> None:
        self.body, self.headers, self.chunks = body, headers, chunks

    async def _app(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        chunks = self.chunks or [self.body]
        headers = [(k.encode(), v.encode()) for k, v in self.headers.items()]
        if self.chunks is None:
            headers.append((b"content-length", str(len(self.body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for index, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": index < len(chunks) - 1})

    def __enter__(self) -> FloorServer:
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the floor server failed to start")
            self._thread.join(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._socket.close()


def tcp_nodelay_of_open_sockets() -> dict[str, int]:
    """How many connected loopback TCP sockets of this process have TCP_NODELAY on / off.

    Both ends of P2's connections (the SDK's and the in-process servers') live in this process, so this is the
    measured answer to "is Nagle off on the socket?" rather than a reading of library sources."""
    counts = {"nodelay_on": 0, "nodelay_off": 0}
    for name in os.listdir("/proc/self/fd"):
        try:
            fd = int(name)
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                continue
            dup = os.dup(fd)
        except (OSError, ValueError):
            continue
        try:
            sock = socket.socket(fileno=dup)
        except OSError:
            os.close(dup)
            continue
        with sock:
            try:
                if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
                    continue
                sock.getpeername()  # only connected sockets, not listeners
                on = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            except OSError:
                continue
            counts["nodelay_on" if on else "nodelay_off"] += 1
    return counts


# --- the emulator in a child process (P7, P8): its RSS is then its own -------------------------------------

_CHILD = textwrap.dedent(
    """
    import json, sys
    from emulator import Emulator
    options = json.loads(sys.argv[1])
    with Emulator(**options) as emulator:
        print(emulator.start_server(), flush=True)
        sys.stdin.read()  # until the parent closes our stdin
    """
)


def read_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (kB) and friends from /proc/<pid>/status."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key.startswith("Vm"):
            values[key] = int(rest.split()[0])
    return values


class ChildEmulator:
    """`Emulator(**options).start_server()` in a child Python process; `.url` is its base URL."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> ChildEmulator:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, json.dumps(self.options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.__exit__()
            raise RuntimeError("the child emulator did not start")
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def status(self) -> dict[str, int]:
        return read_status(self.pid)

    def __exit__(self, *exc: object) -> None:
        process = self.process
        if process is None:
            return
        with contextlib.suppress(OSError):
            assert process.stdin is not None
            process.stdin.close()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    box: list[float] = []
    started = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - started)
