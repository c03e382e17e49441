"""The sandbox interface every backend implements (local processes today, Docker next).

A backend hands out one `Sandbox` per API container id. A sandbox runs shell commands, Python code and the
text editor's file operations *from inside* itself (through the in-sandbox agent, `agent.py`), and returns
plain results. It knows nothing of the API's wire format: `engine/` turns these results into API blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

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
    "file_not_found", "invalid_tool_input", "string_not_found", "execution_time_exceeded", "unavailable"
]


@dataclass(frozen=True)
class FileOpError:
    code: FileErrorCode
    message: str


FileOpResult = ViewResult | CreateResult | StrReplaceResult | FileOpError


class SandboxUnavailable(Exception):
    """The sandbox could not be started or reached (the engine reports the API's `unavailable`)."""


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
