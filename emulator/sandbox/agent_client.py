"""The host side of the agent protocol, shared by the local and the Docker backend.

Both backends speak the same framed JSON to the same `agent.py`; they differ only in how an agent is reached
(a pipe to a bwrap'd process, a hijacked exec stream) and how a dead one is replaced. `AgentSandbox` holds
everything above that: commands with capped output buffering, REPL cells (`base.ReplSandbox`), the text
editor's operations and file transfers, whole or chunked (`base.StreamingFiles`). A backend subclasses it
and fills in its hooks (`_limits`, `_acquire`, `_live`, `_send`, `_oom_count`, `_lost`, `_recover`); its
"handle" is whatever it needs to find the agent again after a failure (the local backend's agent process,
the Docker backend's container slot).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

from . import agent as agent_module
from .base import (
    TRANSFER_CHUNK_BYTES,
    CellNotPending,
    CellOutcome,
    CommandResult,
    CreateResult,
    FileOpError,
    FileOpResult,
    Limits,
    OutputFile,
    PendingCalls,
    SandboxBusy,
    SandboxUnavailable,
    StrReplaceResult,
    ToolCall,
    ToolCallResult,
    ViewResult,
)

OnOutput = Callable[[str, bytes], None]
OnFrame = Callable[[dict[str, Any]], None]

#: slack over the agent's own deadline before the host gives up on it
HOST_GRACE_S = 10.0
#: how long past a command's deadline the host waits for a sign of life ("ending") from the agent. A live
#: agent sends it within milliseconds of its deadline (then gets the whole HOST_GRACE_S to kill and drain);
#: one that user code stopped (`kill -STOP -1` reaches the agent, which shares the sandbox uid) never does
HUNG_GRACE_S = 1.0
FILE_OP_TIMEOUT_S = 60.0
FRAME_HEADER = 4
#: a frame larger than this is a protocol violation (user code can try to write to the agent's pipe)
MAX_FRAME_BYTES = 1 << 30
#: output kept per stream beyond the cap: room for the agent's truncation marker
_MARKER_ROOM = 256


class AgentGone(Exception):
    """EOF, a broken pipe or a protocol error: the agent (or its whole sandbox) died."""


class AgentTimeout(Exception):
    """The agent did not answer by the host-side deadline."""


def encode_frame(obj: dict[str, Any]) -> bytes:
    """One request frame: a 4-byte big-endian length, then compact JSON."""
    body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
    return len(body).to_bytes(FRAME_HEADER, "big") + body


def take_frame(buf: bytearray) -> dict[str, Any] | None:
    """Remove and return the first whole frame of `buf`; None while it is incomplete. Raises AgentGone on a
    protocol violation."""
    if len(buf) < FRAME_HEADER:
        return None
    size = int.from_bytes(buf[:FRAME_HEADER], "big")
    if size > MAX_FRAME_BYTES:
        raise AgentGone(f"protocol error: frame of {size} bytes")
    if len(buf) < FRAME_HEADER + size:
        return None
    body = bytes(buf[FRAME_HEADER : FRAME_HEADER + size])
    del buf[: FRAME_HEADER + size]
    try:
        frame = json.loads(body)
    except ValueError as e:
        raise AgentGone(f"protocol error: {e}") from None
    if not isinstance(frame, dict):
        raise AgentGone("protocol error: frame is not an object")
    return frame


@dataclasses.dataclass
class Liveness:
    """When to give up on an agent that stopped answering during a command, well before the hard deadline.

    The agent announces each command's running budget in its `started` frame and sends `ending` once the
    command is over or its deadline fired; past budget + `grace` without `ending` the agent is taken for
    hung. `budget` is the host's own estimate until `started` arrives (None: no check before it)."""

    budget: float | None
    grace: float = HUNG_GRACE_S
    hung_at: float | None = None

    def arm(self, now: float) -> None:
        self.hung_at = None if self.budget is None else now + self.budget + self.grace

    def seen(self, frame: dict[str, Any], now: float) -> None:
        kind = frame.get("type")
        if kind == "ending":
            self.hung_at = None  # alive and cleaning up: the hard deadline applies from here
        elif kind == "started" and isinstance(frame.get("budget"), int | float):
            # the agent's clock started after its pre-command work (output scan, worker start)
            self.budget = float(frame["budget"])
            self.arm(now)

    def wait_until(self, deadline: float) -> float:
        return deadline if self.hung_at is None else min(deadline, self.hung_at)


class CallLimiter:
    """At most `limit` calls at once over all the sandboxes of one backend; one more fails at once.

    The API answers an overloaded sandbox with `too_many_requests` instead of queueing, so the emulator
    does too: a call takes a slot before it waits on its sandbox's lock (calls queued on a busy sandbox
    count), and raises `SandboxBusy` when none is free. `limit` 0 means no limit."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("max_concurrent_calls must be >= 0")
        self.limit = limit
        self._in_use = 0
        self._guard = threading.Lock()

    @property
    def in_use(self) -> int:
        return self._in_use

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        with self._guard:
            if self.limit and self._in_use >= self.limit:
                raise SandboxBusy(f"more than {self.limit} concurrent sandbox calls")
            self._in_use += 1
        try:
            yield
        finally:
            with self._guard:
                self._in_use -= 1


class FrameConn(Protocol):
    def send(self, obj: dict[str, Any], deadline: float) -> None: ...

    def recv(self, deadline: float) -> dict[str, Any]: ...


def exchange(
    conn: FrameConn,
    msg: dict[str, Any],
    deadline: float,
    on_frame: OnFrame | None,
    liveness: Liveness | None = None,
) -> dict[str, Any]:
    """Send request `msg` (with its "id") and return its result or error frame; its progress frames go to
    `on_frame`. Raises AgentGone, or AgentTimeout at `deadline` (or earlier when `liveness` says the agent
    hangs)."""
    rid = msg["id"]
    if liveness is not None:
        liveness.arm(time.monotonic())
    conn.send(msg, deadline)
    while True:
        frame = conn.recv(deadline if liveness is None else liveness.wait_until(deadline))
        if frame.get("id") != rid:
            continue  # a late frame of an earlier, abandoned request
        if frame.get("type") in ("result", "error"):
            return frame
        if liveness is not None:
            liveness.seen(frame, time.monotonic())
        if on_frame is not None:
            on_frame(frame)


def decode(data: bytes | bytearray) -> str:
    return bytes(data).decode("utf-8", "replace")


def output_collector(
    bufs: dict[int, bytearray], cap_bytes: int, on_output: OnOutput | None
) -> tuple[OnFrame, list[BaseException]]:
    """An `on_frame` that keeps output in `bufs` (up to the cap plus the marker) and feeds `on_output`;
    a failing callback is collected (re-raised after the result, never mid-command)."""
    keep = cap_bytes + _MARKER_ROOM
    names = {1: "stdout", 2: "stderr"}
    callback_error: list[BaseException] = []

    def on_frame(frame: dict[str, Any]) -> None:
        if frame.get("type") != "out":
            return
        fd = 1 if frame.get("fd") == 1 else 2
        data = base64.b64decode(frame.get("data", ""))
        buf = bufs[fd]
        if len(buf) < keep:
            buf += data[: keep - len(buf)]
        if on_output is not None and not callback_error:
            try:
                on_output(names[fd], data)
            except Exception as e:
                callback_error.append(e)

    return on_frame, callback_error


def output_files(reply: dict[str, Any]) -> tuple[OutputFile, ...]:
    return tuple(OutputFile(path=p, name=n, size_bytes=int(s)) for p, n, s in reply["output_files"])


def command_result(reply: dict[str, Any], bufs: dict[int, bytearray], *, oom_killed: bool) -> CommandResult:
    return CommandResult(
        stdout=decode(bufs[1]),
        stderr=decode(bufs[2]),
        return_code=int(reply["return_code"]),
        duration_s=float(reply["duration"]),
        timed_out=bool(reply["timed_out"]),
        truncated=bool(reply["truncated"]),
        oom_killed=oom_killed,
        output_files=output_files(reply),
        output_killed=bool(reply.get("output_killed")),
    )


def agent_error(reply: dict[str, Any]) -> SandboxUnavailable:
    return SandboxUnavailable(f"sandbox agent error: {reply.get('code')}: {reply.get('message')}")


H = TypeVar("H")


class AgentSandbox(Generic[H]):
    """Commands, REPL cells and file operations over one agent per sandbox; calls are serialised by `_lock`.

    Subclasses set `container_id`, `_lock`, `_destroyed` and `_backend`, call `_init_repl_state()`, call
    `_forget_repl()` wherever their agent ends, and implement the hooks below."""

    container_id: str
    _lock: threading.Lock
    _destroyed: bool
    _backend: Any  # its `_closed` says the backend was closed, its `calls` is the CallLimiter

    def _init_repl_state(self) -> None:
        #: a persistent REPL interpreter ran in the current agent (its state dies with the agent)
        self._repl_in_use = False
        #: ... and that agent is gone: the next persistent cell reports `interpreter_restarted`
        self._repl_lost = False
        #: the cell in progress: its output so far (kept across its steps) and whether it restarted
        self._cell_out: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
        self._cell_restarted = False

    def _forget_repl(self) -> None:
        """The agent (and with it the REPL interpreter) is gone."""
        if self._repl_in_use:
            self._repl_lost = True
            self._repl_in_use = False

    def _check_usable(self) -> None:
        if self._destroyed:
            raise SandboxUnavailable(f"sandbox {self.container_id} was destroyed")
        if self._backend._closed:
            raise SandboxUnavailable("the sandbox backend is closed")

    # ------------------------------------------------------------------ hooks

    def _limits(self) -> Limits:
        raise NotImplementedError

    def _acquire(self) -> H:
        """The running agent's handle, starting one if needed; the caller holds the lock."""
        raise NotImplementedError

    def _live(self) -> H | None:
        """The running agent's handle without starting one; None if there is no live agent."""
        raise NotImplementedError

    def _send(
        self,
        handle: H,
        req: dict[str, Any],
        deadline: float,
        on_frame: OnFrame | None = None,
        liveness: Liveness | None = None,
    ) -> dict:
        """One request to the agent (see `exchange`); raises AgentGone or AgentTimeout."""
        raise NotImplementedError

    def _oom_count(self, handle: H) -> int | None:
        raise NotImplementedError

    def _check_not_stopped(self, handle: H) -> None:
        """Raise SandboxUnavailable when the agent failed because the sandbox was stopped from outside."""

    def _lost(self, handle: H, oom_before: int | None) -> tuple[bool, bool]:
        """The agent died or hung during a command: replace it; returns (oom_killed, sandbox_restarted)."""
        raise NotImplementedError

    def _recover(self, handle: H) -> bool:
        """The agent failed outside a command: replace it; returns whether a new one runs."""
        raise NotImplementedError

    # ------------------------------------------------------------------ commands

    def run_command(
        self, command: str, *, timeout_s: float | None = None, on_output: OnOutput | None = None
    ) -> CommandResult:
        """Run `command` with `bash -c` in the workspace; `on_output(stream, chunk)` sees output live."""
        return self._run({"op": "run", "command": command}, timeout_s, on_output)

    def run_python(
        self, code: str, *, timeout_s: float | None = None, on_output: OnOutput | None = None
    ) -> CommandResult:
        return self._run({"op": "python", "code": code}, timeout_s, on_output)

    def _oom_moved(self, handle: H, before: int | None) -> bool:
        after = self._oom_count(handle)
        return before is not None and after is not None and after > before

    def _run(self, req: dict[str, Any], timeout_s: float | None, on_output: OnOutput | None) -> CommandResult:
        lim = self._limits()
        timeout = lim.timeout_s if timeout_s is None else float(timeout_s)
        req = {**req, "timeout": timeout, "cap": lim.output_cap_bytes, "kill_bytes": lim.output_kill_bytes}
        bufs = {1: bytearray(), 2: bytearray()}
        on_frame, callback_error = output_collector(bufs, lim.output_cap_bytes, on_output)
        with self._backend.calls.slot(), self._lock:
            handle = self._acquire()
            oom_before = self._oom_count(handle)
            started = time.monotonic()
            try:
                reply = self._send(
                    handle, req, started + timeout + HOST_GRACE_S, on_frame, Liveness(budget=timeout)
                )
            except (AgentGone, AgentTimeout) as e:
                return self._agent_lost(handle, e, bufs, started, oom_before)
            if callback_error:
                raise callback_error[0]
            if reply.get("type") != "result":
                raise agent_error(reply)
            return command_result(reply, bufs, oom_killed=self._oom_moved(handle, oom_before))

    def _agent_lost(
        self, handle: H, error: Exception, bufs: dict[int, bytearray], started: float, oom_before: int | None
    ) -> CommandResult:
        """The agent died or hung during a command: restart the sandbox and say what had streamed."""
        self._check_not_stopped(handle)
        oom, restarted = self._lost(handle, oom_before)
        return CommandResult(
            stdout=decode(bufs[1]),
            stderr=decode(bufs[2]),
            return_code=137,
            duration_s=time.monotonic() - started,
            timed_out=isinstance(error, AgentTimeout),
            oom_killed=oom,
            sandbox_restarted=restarted,
        )

    # ------------------------------------------------------------------ REPL cells

    def run_cell(
        self,
        code: str,
        *,
        tools: Sequence[str] = (),
        persist: bool = True,
        timeout_s: float | None = None,
        call_timeout_s: float | None = None,
        on_output: OnOutput | None = None,
    ) -> CellOutcome:
        """Run a cell in the sandbox's long-lived interpreter (see `ReplSandbox.run_cell`)."""
        lim = self._limits()
        timeout = lim.timeout_s if timeout_s is None else float(timeout_s)
        req: dict[str, Any] = {
            "op": "repl_run",
            "code": code,
            "tools": [str(name) for name in tools],
            "persist": bool(persist),
            "timeout": timeout,
            "cap": lim.output_cap_bytes,
            "kill_bytes": lim.output_kill_bytes,
        }
        if call_timeout_s is not None:
            req["call_timeout"] = float(call_timeout_s)
        with self._backend.calls.slot(), self._lock:
            handle = self._acquire()
            # a restart of the whole sandbox since the last persistent cell lost the interpreter too
            self._cell_restarted = bool(persist) and self._repl_lost
            if persist:
                self._repl_lost = False
                self._repl_in_use = True
            self._cell_out = {1: bytearray(), 2: bytearray()}
            # room for cancelling a cell still waiting on tool results
            deadline_s = timeout + agent_module.CANCEL_GRACE_SECONDS + HOST_GRACE_S
            outcome = self._cell_step(handle, req, deadline_s, on_output)
        assert outcome is not None
        return outcome

    def resume_cell(
        self,
        results: Mapping[str, ToolCallResult],
        *,
        timeout_s: float | None = None,
        on_output: OnOutput | None = None,
    ) -> CellOutcome:
        """Hand the waiting cell its tool results and run it on. Raises `CellNotPending`."""
        req: dict[str, Any] = {
            "op": "repl_resume",
            "results": {
                str(call_id): {"content": r.content, "is_error": bool(r.is_error)}
                for call_id, r in results.items()
            },
        }
        if timeout_s is not None:
            req["timeout"] = float(timeout_s)
        bound = self._limits().timeout_s if timeout_s is None else float(timeout_s)
        with self._lock:
            handle = self._live()
            if handle is None:
                raise CellNotPending(f"no cell of sandbox {self.container_id} is waiting on tool results")
            outcome = self._cell_step(handle, req, bound + HOST_GRACE_S, on_output)
        assert outcome is not None
        return outcome

    def cancel_cell(self) -> CommandResult | None:
        """End the cell waiting on tool results (its pending calls raise CancelledError); None if none."""
        with self._lock:
            handle = self._live()
            if handle is None:
                return None
            deadline_s = agent_module.CANCEL_GRACE_SECONDS + HOST_GRACE_S
            outcome = self._cell_step(handle, {"op": "repl_cancel"}, deadline_s, None)
        assert not isinstance(outcome, PendingCalls)
        return outcome

    def reset_repl(self) -> None:
        """Discard the interpreter and its state on purpose; the next cell starts fresh (not "restarted")."""
        with self._lock:
            handle = self._live()
            if handle is not None:
                try:
                    self._send(handle, {"op": "repl_reset"}, time.monotonic() + FILE_OP_TIMEOUT_S)
                except (AgentGone, AgentTimeout):
                    self._recover(handle)
            self._repl_lost = False
            self._repl_in_use = False

    def _cell_step(
        self, handle: H, req: dict[str, Any], deadline_s: float, on_output: OnOutput | None
    ) -> CellOutcome | None:
        """One request of a cell (run, resume or cancel); the caller holds the lock."""
        bufs = self._cell_out
        on_frame, callback_error = output_collector(bufs, self._limits().output_cap_bytes, on_output)
        oom_before = self._oom_count(handle)
        started = time.monotonic()
        try:
            reply = self._send(handle, req, started + deadline_s, on_frame, Liveness(budget=None))
        except (AgentGone, AgentTimeout) as e:
            lost = self._agent_lost(handle, e, bufs, started, oom_before)
            return dataclasses.replace(
                lost, interpreter_restarted=self._cell_restarted, interpreter_died=True
            )
        if callback_error:
            raise callback_error[0]
        if reply.get("type") != "result":
            if reply.get("code") == "no_pending_cell":
                raise CellNotPending(str(reply.get("message")))
            raise agent_error(reply)
        if req["op"] == "repl_cancel" and not reply.get("cancelled"):
            return None  # nothing was waiting
        restarted = self._cell_restarted or bool(reply.get("restarted"))
        if "pending" in reply:
            calls = tuple(
                ToolCall(id=str(c["id"]), name=str(c["name"]), input=dict(c.get("input") or {}))
                for c in reply["pending"]
            )
            return PendingCalls(
                calls=calls, duration_s=float(reply["duration"]), interpreter_restarted=restarted
            )
        result = command_result(reply, bufs, oom_killed=self._oom_moved(handle, oom_before))
        return dataclasses.replace(
            result, interpreter_restarted=restarted, interpreter_died=bool(reply.get("worker_died"))
        )

    # ------------------------------------------------------------------ files

    def _request(self, req: dict[str, Any], timeout_s: float = FILE_OP_TIMEOUT_S) -> dict[str, Any]:
        """One non-command request; raises AgentGone/AgentTimeout after restarting the sandbox."""
        with self._lock:
            handle = self._acquire()
            try:
                return self._send(handle, req, time.monotonic() + timeout_s)
            except (AgentGone, AgentTimeout):
                self._check_not_stopped(handle)
                self._recover(handle)
                raise

    def _file_op(self, req: dict[str, Any]) -> dict[str, Any] | FileOpError:
        try:
            with self._backend.calls.slot():
                reply = self._request(req)
        except SandboxBusy as e:
            return FileOpError("too_many_requests", str(e))
        except AgentTimeout:
            return FileOpError("execution_time_exceeded", "The file operation timed out.")
        except AgentGone:
            return FileOpError("unavailable", "The sandbox restarted during the file operation.")
        except SandboxUnavailable as e:
            return FileOpError("unavailable", str(e))
        if reply.get("type") == "result":
            return reply
        code = reply.get("code")
        message = str(reply.get("message") or "")
        if code in ("file_not_found", "invalid_tool_input", "string_not_found"):
            return FileOpError(code, message)
        return FileOpError("unavailable", f"{code}: {message}")

    def view(self, path: str, *, view_range: tuple[int, int] | None = None) -> FileOpResult:
        req: dict[str, Any] = {"op": "view", "path": path}
        if view_range is not None:
            req["view_range"] = list(view_range)
        r = self._file_op(req)
        if isinstance(r, FileOpError):
            return r
        return ViewResult(
            file_type=r["file_type"],
            content=r["content"],
            num_lines=r.get("num_lines"),
            start_line=r.get("start_line"),
            total_lines=r.get("total_lines"),
        )

    def create(self, path: str, file_text: str) -> FileOpResult:
        r = self._file_op({"op": "create", "path": path, "file_text": file_text})
        if isinstance(r, FileOpError):
            return r
        return CreateResult(is_file_update=bool(r["is_file_update"]))

    def str_replace(self, path: str, old_str: str, new_str: str) -> FileOpResult:
        r = self._file_op({"op": "str_replace", "path": path, "old_str": old_str, "new_str": new_str})
        if isinstance(r, FileOpError):
            return r
        return StrReplaceResult(
            old_start=int(r["old_start"]),
            old_lines=int(r["old_lines"]),
            new_start=int(r["new_start"]),
            new_lines=int(r["new_lines"]),
            lines=tuple(r["lines"]),
        )

    def _transfer(self, req: dict[str, Any]) -> dict[str, Any]:
        try:
            reply = self._request(req)
        except (AgentGone, AgentTimeout) as e:
            raise SandboxUnavailable(f"sandbox {self.container_id} failed during a file transfer") from e
        if reply.get("type") == "result":
            return reply
        code, message = reply.get("code"), str(reply.get("message") or "")
        if code == "file_not_found":
            raise FileNotFoundError(message)
        if code == "is_a_directory":
            raise IsADirectoryError(message)
        if code == "invalid_tool_input":
            raise ValueError(message)
        raise OSError(message)

    def put_file(self, path: str, data: bytes) -> None:
        """Write a file into the sandbox, from inside it (relative paths are under /workspace)."""
        self._transfer({"op": "put_file", "path": path, "data": base64.b64encode(data).decode()})

    def read_file(self, path: str) -> bytes:
        """Read a file of the sandbox, resolved inside it. Raises FileNotFoundError, IsADirectoryError."""
        return base64.b64decode(self._transfer({"op": "read_file", "path": path})["data"])

    def list_output_files(self) -> tuple[OutputFile, ...]:
        """Every regular file now under `$OUTPUT_DIR`."""
        return output_files(self._transfer({"op": "list_outputs"}))

    # Chunked transfers (`StreamingFiles`): one bounded frame per chunk instead of one frame per file.

    def write_file_chunks(self, path: str, chunks: Iterable[bytes]) -> int:
        """Write a file into the sandbox chunk by chunk, from inside it; returns its size."""
        offset = 0
        for chunk in chunks:
            if chunk:
                data = base64.b64encode(chunk).decode()
                reply = self._transfer({"op": "put_chunk", "path": path, "offset": offset, "data": data})
                offset = int(reply["size"])
        if offset == 0:  # no bytes at all: still an (empty) file
            self._transfer({"op": "put_chunk", "path": path, "offset": 0, "data": ""})
        return offset

    def read_file_chunks(self, path: str, chunk_bytes: int = TRANSFER_CHUNK_BYTES) -> Iterator[bytes]:
        """Yield a file of the sandbox chunk by chunk. Raises FileNotFoundError, IsADirectoryError."""
        offset = 0
        while True:
            reply = self._transfer({"op": "read_chunk", "path": path, "offset": offset, "size": chunk_bytes})
            data = base64.b64decode(reply["data"])
            offset += len(data)
            if data:
                yield data
            if reply["eof"] or not data:
                return

    def file_sha256(self, path: str) -> str | None:
        """SHA-256 (hex) of a regular file of the sandbox, hashed inside it; None when there is none."""
        digest = self._transfer({"op": "sha256", "path": path}).get("sha256")
        return str(digest) if digest is not None else None

    def ping(self) -> float:
        """Round-trip time of one no-op request to the agent, in seconds."""
        t0 = time.perf_counter()
        self._transfer({"op": "ping"})
        return time.perf_counter() - t0
