"""The sandbox interface every backend implements (local processes today, Docker next).

A backend hands out one `Sandbox` per API container id. A sandbox runs shell commands, Python code and the
text editor's file operations *from inside* itself (through the in-sandbox agent, `agent.py`), and returns
plain results. It knows nothing of the API's wire format: `engine/` turns these results into API blocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

GiB = 1024**3
MiB = 1024**2

#: Where things live inside every sandbox, whatever the backend.
WORKDIR = "/workspace"
INPUT_DIR = "/files/input"
OUTPUT_DIR_PARENT = "/files/output"


@dataclass(frozen=True)
class Limits:
    """Resource limits applied to every sandbox, defaulting to the documented environment."""

    memory_bytes: int = 5 * GiB
    disk_bytes: int = 5 * GiB
    cpus: float = 1.0
    pids: int = 256
    open_files: int = 1024
    file_size_bytes: int = 5 * GiB
    timeout_s: float = 300.0
    #: stdout and stderr are each truncated (with a marker) past this many bytes.
    output_cap_bytes: int = 1 * MiB
    #: a command still producing output past this many bytes is killed rather than drained to its deadline.
    output_kill_bytes: int = 64 * MiB
    tmp_bytes: int = 512 * MiB
    #: calls (commands, cells, editor operations) a backend runs or queues at once, over all its sandboxes;
    #: one more fails at once with `SandboxBusy` (the API's `too_many_requests`) instead of waiting. 0: no
    #: limit. Generous on purpose: a call mostly waits on its own 1-CPU sandbox, and a CPU-derived default
    #: would make the same test pass on one machine and fail on another.
    max_concurrent_calls: int = 32


@dataclass(frozen=True)
class OutputFile:
    """A file a command left in the sandbox's `$OUTPUT_DIR`, as seen from inside the sandbox."""

    path: str  # absolute path inside the sandbox
    name: str  # basename
    size_bytes: int


@dataclass(frozen=True)
class CommandResult:
    """What one shell command or Python run did."""

    stdout: str
    stderr: str
    return_code: int
    duration_s: float
    #: our deadline fired (the command and every process it left were killed)
    timed_out: bool = False
    #: stdout or stderr was cut at the cap (a marker is appended to the cut stream)
    truncated: bool = False
    #: the memory cgroup's OOM counter moved during the command (return_code is then usually 137)
    oom_killed: bool = False
    #: the sandbox itself died during the command (user code killed the agent); it was restarted
    sandbox_restarted: bool = False
    output_files: tuple[OutputFile, ...] = ()
    #: the command was killed because stdout+stderr passed `Limits.output_kill_bytes` (implies `truncated`)
    output_killed: bool = False
    #: (REPL cells) this persistent cell runs in a fresh interpreter because the previous one died, was
    #: killed (timeout, output flood, crash) or the sandbox stopped: variables of earlier cells are gone
    interpreter_restarted: bool = False
    #: (REPL cells) the interpreter ended during this cell (timeout, flood, crash, `os._exit`); the next
    #: cell starts a fresh one
    interpreter_died: bool = False


@dataclass(frozen=True)
class ViewResult:
    file_type: Literal["text", "image", "pdf"]
    content: str  # raw text for text files, base64 for images and PDFs
    num_lines: int | None
    start_line: int | None
    total_lines: int | None


@dataclass(frozen=True)
class CreateResult:
    is_file_update: bool


@dataclass(frozen=True)
class StrReplaceResult:
    """A unified-diff hunk with 3 lines of context, without the `---`/`+++`/`@@` headers."""

    old_start: int
    old_lines: int
    new_start: int
    new_lines: int
    lines: tuple[str, ...]


FileErrorCode = Literal[
    "file_not_found",
    "invalid_tool_input",
    "string_not_found",
    "execution_time_exceeded",
    "unavailable",
    "too_many_requests",
]


@dataclass(frozen=True)
class FileOpError:
    code: FileErrorCode
    message: str


FileOpResult = ViewResult | CreateResult | StrReplaceResult | FileOpError


class SandboxUnavailable(Exception):
    """The sandbox could not be started or reached (the engine reports the API's `unavailable`)."""


class SandboxBusy(SandboxUnavailable):
    """The backend already runs `Limits.max_concurrent_calls` calls (the engine reports `too_many_requests`).

    A subclass of `SandboxUnavailable` so that callers which only know that one still treat it as a failed
    call rather than crash."""


@dataclass(frozen=True)
class ToolCall:
    """A call a REPL cell made to one of the client's tools; the cell waits for its result."""

    id: str  # the sandbox's id for the call (not an API id)
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class ToolCallResult:
    """The client's answer to a `ToolCall`: the cell's `await tool(...)` returns `content`, or raises
    (`ToolCallError`) when `is_error`."""

    content: str
    is_error: bool = False


@dataclass(frozen=True)
class PendingCalls:
    """A REPL cell stopped on these tool calls (made since it last ran); answer with `resume_cell`."""

    calls: tuple[ToolCall, ...]
    #: running time of this step of the cell (what to meter), not counting time spent waiting
    duration_s: float
    interpreter_restarted: bool = False


CellOutcome = CommandResult | PendingCalls


class CellNotPending(Exception):
    """`resume_cell` found no cell waiting on tool results (it ended, timed out, or the sandbox stopped)."""


@dataclass(frozen=True)
class IsolationCheck:
    name: str  # e.g. "network namespace"
    in_effect: bool
    detail: str = ""


@dataclass(frozen=True)
class IsolationReport:
    """What a backend can enforce on this machine, for `doctor` and for tests that assert it."""

    backend: str
    checks: tuple[IsolationCheck, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def enforced(self, name: str) -> bool:
        return any(c.name == name and c.in_effect for c in self.checks)


@runtime_checkable
class Sandbox(Protocol):
    """One API container's execution environment. Files persist across calls until `destroy()`."""

    container_id: str

    def run_command(self, command: str, *, timeout_s: float | None = None) -> CommandResult: ...

    def run_python(self, code: str, *, timeout_s: float | None = None) -> CommandResult: ...

    def view(self, path: str) -> FileOpResult: ...

    def create(self, path: str, file_text: str) -> FileOpResult: ...

    def str_replace(self, path: str, old_str: str, new_str: str) -> FileOpResult: ...

    def put_file(self, path: str, data: bytes) -> None:
        """Write a file from the host into the sandbox (e.g. a `container_upload` into `$INPUT_DIR`)."""
        ...

    def read_file(self, path: str) -> bytes:
        """Read a file of the sandbox (e.g. an output file), resolved inside the sandbox."""
        ...

    @property
    def output_dir(self) -> str:
        """This container's `$OUTPUT_DIR` inside the sandbox."""
        ...

    def stop(self) -> None:
        """Stop every process of the sandbox; files stay."""
        ...

    def destroy(self) -> None:
        """Stop and delete the sandbox with its files."""
        ...


#: bytes per frame of a streamed file transfer (`StreamingFiles`); base64 makes the frame a third larger
TRANSFER_CHUNK_BYTES = 1 * MiB


@runtime_checkable
class StreamingFiles(Protocol):
    """Optional file transfers in bounded chunks, so a large `container_upload` or output file never travels
    as one giant frame nor sits whole in memory. Backends without it fall back to `put_file`/`read_file`."""

    def write_file_chunks(self, path: str, chunks: Iterable[bytes]) -> int:
        """Write (create or replace) a file of the sandbox from these chunks, in order; returns its size."""
        ...

    def read_file_chunks(self, path: str, chunk_bytes: int = TRANSFER_CHUNK_BYTES) -> Iterator[bytes]:
        """Yield a file of the sandbox in chunks. Raises FileNotFoundError, IsADirectoryError."""
        ...

    def file_sha256(self, path: str) -> str | None:
        """The hex SHA-256 of a regular file of the sandbox, computed inside it; None if there is none."""
        ...


@runtime_checkable
class ReplSandbox(Protocol):
    """A sandbox with a long-lived Python interpreter (code execution >= 20260120 and programmatic tool
    calling). Separate from `Sandbox` so that backends without it still satisfy that protocol.

    One cell runs at a time. A cell that awaits client tools stops with `PendingCalls`; `resume_cell`
    hands the results in and runs it on to the next `PendingCalls` or to its `CommandResult` (whose
    stdout/stderr hold the whole cell's output). The interpreter's state lives in the sandbox's processes:
    it is lost when the sandbox stops or restarts, and the next persistent cell says so
    (`interpreter_restarted`). The `duration_s` of every answer is the running time of that one call (sum
    them to meter a cell), not of the whole cell.
    """

    def run_cell(
        self,
        code: str,
        *,
        tools: Sequence[str] = (),
        persist: bool = True,
        timeout_s: float | None = None,
        call_timeout_s: float | None = None,
    ) -> CellOutcome:
        """Run a cell. `tools` become async functions in its namespace; `persist` keeps the namespace
        across cells (else the cell gets a fresh one); `timeout_s` bounds the cell's running time over all
        its steps; a tool call without a result after `call_timeout_s` raises TimeoutError in the cell. A
        cell still waiting on tool results is cancelled first."""
        ...

    def resume_cell(
        self, results: Mapping[str, ToolCallResult], *, timeout_s: float | None = None
    ) -> CellOutcome:
        """Answer the waiting cell's calls (by `ToolCall.id`) and run it on. Raises `CellNotPending`."""
        ...

    def cancel_cell(self) -> CommandResult | None:
        """End the waiting cell (its pending calls raise CancelledError); None if no cell waits."""
        ...

    def reset_repl(self) -> None:
        """Discard the interpreter and its state on purpose (the next cell is not `interpreter_restarted`)."""
        ...


@runtime_checkable
class SandboxBackend(Protocol):
    name: str

    def open(self, container_id: str) -> Sandbox:
        """Return the sandbox for this container id, creating it (or re-attaching to its files) as needed."""
        ...

    def report(self) -> IsolationReport: ...

    def close(self) -> None:
        """Stop every sandbox this backend started (files stay; `destroy` removes them)."""
        ...
