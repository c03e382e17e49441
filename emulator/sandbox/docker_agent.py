"""The in-container agent of the Docker backend, spoken to over one hijacked `docker exec` stream.

The agent is `agent.py`, the very file the local backend runs: a tiny bootstrap (`python3 -I -S -c ...`) reads
its source as one length-prefixed block from stdin and executes it, so nothing has to be copied into the
(read-only) container and a remote engine works the same. After that the exec's stdin carries request frames
and its stdout the agent's frames, inside Docker's stream multiplexing (8-byte headers: stream, size), which
`ExecStream` undoes; the agent's stderr is kept as a short tail for error messages.

One exec per container life replaces the ~50 ms `docker exec` per command with a ~0.1 ms frame round trip.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import agent as agent_module
from .agent_client import FRAME_HEADER, AgentGone, AgentTimeout, Liveness, encode_frame, exchange, take_frame

_DOCKER_HEADER = 8
_STDERR_TAIL = 8192

#: Reads the agent's source (4-byte big-endian length, then the bytes) from fd 0 without buffering ahead
#: (the request frames follow on the same fd), then runs it as __main__.
BOOTSTRAP = (
    "import os\n"
    "def rd(n):\n"
    "    b = b''\n"
    "    while len(b) < n:\n"
    "        c = os.read(0, n - len(b))\n"
    "        if not c:\n"
    "            raise SystemExit(3)\n"
    "        b += c\n"
    "    return b\n"
    "src = rd(int.from_bytes(rd(4), 'big'))\n"
    "g = {'__name__': '__main__', '__file__': '/run/ce-agent/agent.py', '__builtins__': __builtins__,\n"
    "     'AGENT_SOURCE': src}\n"
    "del rd\n"
    "exec(compile(src, '/run/ce-agent/agent.py', 'exec'), g)\n"
)


def agent_source() -> bytes:
    return Path(agent_module.__file__).read_bytes()


class ExecStream:
    """Agent frames over a hijacked exec socket, every wait bounded by a deadline."""

    def __init__(self, sock: Any) -> None:
        # docker-py hands back a SocketIO for unix sockets and the raw socket for TLS; both wrap one socket
        self._sock: socket.socket = getattr(sock, "_sock", sock)
        self._keep = sock  # the wrapper holds the HTTP response that must not be garbage collected
        self._raw = bytearray()
        self._out = bytearray()
        self._err = bytearray()
        self._closed = False

    @staticmethod
    def _remaining(deadline: float) -> float:
        return max(0.0, deadline - time.monotonic())

    def send_raw(self, data: bytes, deadline: float) -> None:
        try:
            self._sock.settimeout(max(0.001, self._remaining(deadline)))
            self._sock.sendall(data)
        except TimeoutError:
            raise AgentTimeout from None
        except OSError as e:
            raise AgentGone(str(e)) from None

    def send(self, obj: dict[str, Any], deadline: float) -> None:
        self.send_raw(encode_frame(obj), deadline)

    def _demux(self) -> None:
        raw = self._raw
        while len(raw) >= _DOCKER_HEADER:
            size = int.from_bytes(raw[4:8], "big")
            if len(raw) < _DOCKER_HEADER + size:
                return
            kind = raw[0]
            payload = raw[_DOCKER_HEADER : _DOCKER_HEADER + size]
            if kind == 1:
                self._out += payload
            elif kind == 2:
                self._err += payload
                if len(self._err) > _STDERR_TAIL:
                    del self._err[: len(self._err) - _STDERR_TAIL]
            del raw[: _DOCKER_HEADER + size]

    def recv(self, deadline: float) -> dict[str, Any]:
        while True:
            frame = take_frame(self._out)
            if frame is not None:
                return frame
            remaining = self._remaining(deadline)
            if remaining <= 0:
                raise AgentTimeout
            try:
                self._sock.settimeout(remaining)
                data = self._sock.recv(1 << 20)
            except TimeoutError:
                raise AgentTimeout from None
            except OSError as e:
                raise AgentGone(str(e)) from None
            if not data:
                raise AgentGone("EOF")
            self._raw += data
            self._demux()

    def peer_closed(self) -> bool:
        """True when the engine already closed the stream (the agent or its container died between calls)."""
        if self._closed:
            return True
        try:
            self._sock.settimeout(0)
            data = self._sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return False
        except ValueError:  # TLS sockets take no flags: find out on the next request instead
            return False
        except OSError:
            return True
        return not data

    def stderr_tail(self) -> str:
        return bytes(self._err).decode("utf-8", "replace").strip()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._sock.close()
        with contextlib.suppress(Exception):
            self._keep.close()


class AgentSession:
    """One running agent in a container: its exec, its stream, request ids."""

    def __init__(self, stream: ExecStream, exec_id: str) -> None:
        self.stream = stream
        self.exec_id = exec_id
        self.info: dict[str, Any] = {}
        self.dead = False
        self._ids = 0

    def request(
        self,
        msg: dict[str, Any],
        deadline: float,
        on_frame: Callable[[dict[str, Any]], None] | None = None,
        liveness: Liveness | None = None,
    ) -> dict[str, Any]:
        self._ids += 1
        try:
            return exchange(self.stream, {**msg, "id": self._ids}, deadline, on_frame, liveness)
        except (AgentGone, AgentTimeout):
            self.dead = True
            raise

    def close(self) -> None:
        self.dead = True
        self.stream.close()


def start_agent(
    api: Any, container: str, config: dict[str, Any], *, user: str, env: dict[str, str], deadline: float
) -> AgentSession:
    """Exec the bootstrap as `user`, send it the agent's source, then the `init` request with `config`."""
    created = api.exec_create(
        container,
        ["python3", "-I", "-S", "-c", BOOTSTRAP],
        stdin=True,
        stdout=True,
        stderr=True,
        tty=False,
        user=user,
        environment=env,
        workdir="/",
    )
    exec_id = created["Id"]
    sock = api.exec_start(exec_id, socket=True)
    stream = ExecStream(sock)
    session = AgentSession(stream, exec_id)
    try:
        src = agent_source()
        stream.send_raw(len(src).to_bytes(FRAME_HEADER, "big") + src, deadline)
        reply = session.request({"op": "init", "config": config}, deadline)
    except (AgentGone, AgentTimeout) as e:
        tail = stream.stderr_tail()
        session.close()
        raise AgentGone(tail or str(e) or type(e).__name__) from None
    if reply.get("type") != "result":
        session.close()
        raise AgentGone(f"agent init failed: {reply.get('code')}: {reply.get('message')}")
    session.info = reply
    return session
