"""The in-sandbox agent of code-execution-emulator.

One long-lived agent runs inside each sandbox (a bubblewrap sandbox of the local backend, a container of the
Docker backend, or a plain host process in the local backend's "none" tier). It is this one file, stdlib
only, and runs on any Python >= 3.9. The host talks to it over the agent's stdin/stdout.

Protocol
--------
Every message in both directions is a frame: a 4-byte big-endian length, then that many bytes of UTF-8 JSON
(one object). Binary payloads travel base64-encoded. The host sends requests `{"id": n, "op": ..., ...}`
one at a time; the agent answers each with zero or more progress frames and exactly one final frame:

* `{"id", "type": "result", ...}` on success, or
* `{"id", "type": "error", "code", "message"}`. File-op codes are the tool's (`file_not_found`,
  `invalid_tool_input`, `string_not_found`); `internal` and `bad_request` mean a bug.

Progress frames of `run`/`python`: `{"type": "started", "pid", "budget"}` once the command runs (`budget`:
seconds until its deadline), then `{"type": "out", "fd": 1|2, "data": <base64>}` for output chunks as they
arrive (only what fits the cap), and `{"type": "ending"}` as soon as the command exited, passed its deadline
or flooded, before the sweep and drain that follow. The host takes an agent that lets the budget pass without
`ending` for hung (user code can SIGSTOP it) and replaces it. REPL cell steps send the same frames.

Operations: `init` (must come first: directories, environment, rlimits), `ping`, `run` (`command`),
`python` (`code`), `view`, `create`, `str_replace`, `put_file`, `read_file`, `list_outputs`, `shutdown`,
and the REPL's `repl_run`, `repl_resume`, `repl_cancel`, `repl_reset` (below).
`run` and `python` take `timeout` (seconds), `cap` (bytes kept per stream) and `kill_bytes` (total output
after which the command is killed); their result has `return_code`, `timed_out`, `truncated`,
`output_killed`, `duration`, `omitted` ([stdout, stderr] bytes dropped) and `output_files`.

Chunked transfers (large uploads and output files never travel as one frame): `put_chunk` (`path`, `offset`,
`data`; offset 0 creates or truncates, a later chunk must start at the current size), `read_chunk` (`path`,
`offset`, `size` up to `TRANSFER_CHUNK_MAX`; answers `data`, `total`, `eof`) and `sha256` (`path`; answers
`sha256` and `size`, or nulls when there is no regular file).

REPL
----
`repl_run` runs a *cell* in a long-lived Python interpreter, the REPL worker: this same file's source run
by `python3 -c <bootstrap> --repl-worker CTL EVENTS AGENT_PID`, the source sent over the control pipe (so
an agent started from source works too, if its bootstrap defines `AGENT_SOURCE`). It starts on the first
cell and talks to the agent over two extra pipes; its stdout/stderr are read like a command's, with the
same cap, markers and flood kill, counted per cell. Fields: `code`, `tools` (names injected as async
functions taking one dict, or keyword arguments, and returning the client's result string), `persist`
(true: the namespace survives across cells; false: a fresh one), `timeout` (running time of the cell over
all its steps), `call_timeout` (a tool call without a result raises TimeoutError inside the cell after
this long; default 240 s), `cap`, `kill_bytes`. The code may use top-level `await` or `asyncio.run(...)`.
The answer is either `{"pending": [{"id", "name", "input"}], "duration", "restarted"}` when the cell waits
on tool calls (the worker stays blocked in them; the agent serves other requests meanwhile), or the final
result with the fields of `python` plus `restarted` (the persistent cell runs in a new worker because the
last one died or was killed), `worker_died` (this cell ended the worker: timeout, flood, crash,
`os._exit`; the next cell starts a new one) and `cell_duration`. `repl_resume {results: {call_id:
{content, is_error}}, timeout?}` continues the waiting cell (`is_error` raises `ToolCallError` in it)
with the same two kinds of answer, or errs `no_pending_cell`. A new `repl_run` cancels a waiting cell
(`cancelled_pending`); `repl_cancel` does it alone (its pending calls raise CancelledError); `repl_reset`
kills the worker on purpose. Worker frames carry the cell number, so a late frame of an earlier cell is
ignored.

File operations resolve paths inside the sandbox: a literal `$INPUT_DIR`/`$OUTPUT_DIR` prefix is expanded,
relative paths are taken from the working directory. `view` returns a text file's raw text without its final
newline (as the real tool does), images and PDFs base64-encoded, and a directory as its entries two levels
deep (hidden ones skipped, directories with a trailing `/`). `str_replace` needs exactly one occurrence and
answers with one unified-diff hunk (3 lines of context, as `difflib.unified_diff(a, b, n=3)` prints it).

Output cap
----------
Each stream keeps its first `cap` bytes (cut back to a UTF-8 character boundary). If anything was dropped the
stream ends with the marker `\\n[output truncated: N bytes omitted]\\n` (N counts the dropped bytes read
before the command ended or was killed). When stdout plus stderr pass `kill_bytes` the command and everything
it started are killed at once instead of draining a flood until the deadline.

Process policy
--------------
The agent is a child subreaper, so everything a command starts stays its descendant even after `setsid`,
`nohup` or a double fork. **When a command returns (or hits its deadline, or floods), the agent SIGKILLs
every process it left behind**: background jobs do not survive a call. Exit codes of signalled commands are
reported shell-style (128 + signal), so a killed command returns 137. The REPL worker is the one exception:
sweeps spare it (and, while a cell waits on tool results, everything that cell started); the processes a
cell started are killed when the cell ends, the worker itself only on timeout, flood or `repl_reset`.
"""

from __future__ import annotations

import base64
import contextlib
import difflib
import errno
import hashlib
import json
import os
import resource
import selectors
import signal
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Callable  # already loaded by selectors: free

PROTOCOL_VERSION = 1
_HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 1 << 30
READ_CHUNK = 65536
TRUNCATION_MARKER = "\n[output truncated: {omitted} bytes omitted]\n"
VIEW_MAX_BYTES = 16 * 1024 * 1024
TRANSFER_MAX_BYTES = 512 * 1024 * 1024
TRANSFER_CHUNK_MAX = 16 * 1024 * 1024
OUTPUT_SCAN_MAX_FILES = 10000
KILL_SWEEP_SECONDS = 2.0
DRAIN_SECONDS = 2.0
#: a tool call made from a REPL cell raises TimeoutError inside the cell after this long without a result
DEFAULT_CALL_TIMEOUT_SECONDS = 240.0
#: a cancelled cell gets this long to end on its own before its worker is killed
CANCEL_GRACE_SECONDS = 2.0
#: frames from the REPL worker larger than this mean the cell wrote garbage to the control pipe
WORKER_FRAME_MAX_BYTES = 64 << 20
#: `rid` for a REPL segment whose output must not reach the host (a cell ended to make room for another)
_QUIET = object()
#: `python` runs `python3 -c _PYTHON_BOOTSTRAP NAME` with the code on stdin (a memfd): it reads the code, puts
#: /dev/null on stdin (as commands have), then runs it as `__main__` under NAME the way `python3 NAME` would
#: (argv, sys.path[0], `__file__`, source lines in tracebacks, which leave out the bootstrap's own frames;
#: printed by `traceback`, since before 3.13 the built-in hook reads source lines from the file itself).
#: The bootstrap's names are gone from the namespace before the code runs.
_PYTHON_BOOTSTRAP = (
    "def _ce_boot():\n"
    "    import linecache, os, sys\n"
    "    chunks = []\n"
    "    while True:\n"
    "        c = os.read(0, 1 << 20)\n"
    "        if not c:\n"
    "            break\n"
    "        chunks.append(c)\n"
    "    src = b''.join(chunks)\n"
    "    fd = os.open(os.devnull, os.O_RDONLY)\n"
    "    os.dup2(fd, 0)\n"
    "    os.close(fd)\n"
    "    name = sys.argv[1]\n"
    "    del sys.argv[0]\n"
    "    sys.path[0] = os.path.dirname(name)\n"
    "    text = src.decode('utf-8', 'replace')\n"
    "    linecache.cache[name] = (len(text), None, text.splitlines(True), name)\n"
    "    def hook(t, v, tb):\n"
    "        import traceback\n"
    "        while tb is not None and tb.tb_frame.f_code.co_filename == '<string>':\n"
    "            tb = tb.tb_next\n"
    "        traceback.print_exception(t, v if v is None else v.with_traceback(tb), tb)\n"
    "    sys.excepthook = hook\n"
    "    g = globals()\n"
    "    del g['_ce_boot']\n"
    "    g['__file__'] = name\n"
    "    return compile(src, name, 'exec')\n"
    "exec(_ce_boot(), globals())\n"
)

#: Starts the REPL worker: reads the agent's source (4-byte big-endian length, then the bytes) from the
#: control pipe and runs it as __main__, whose `--repl-worker` argument makes it the worker. The source
#: travels over the pipe so the worker starts the same whether the agent is a file (local backend) or was
#: itself started from source (the Docker backend's bootstrap).
_WORKER_BOOTSTRAP = (
    "import os, sys\n"
    "def rd(n):\n"
    "    b = b''\n"
    "    while len(b) < n:\n"
    "        c = os.read(int(sys.argv[2]), n - len(b))\n"
    "        if not c:\n"
    "            raise SystemExit(3)\n"
    "        b += c\n"
    "    return b\n"
    "src = rd(int.from_bytes(rd(4), 'big'))\n"
    "g = {'__name__': '__main__', '__file__': sys.argv[5], '__builtins__': __builtins__}\n"
    "del rd\n"
    "exec(compile(src, sys.argv[5], 'exec'), g)\n"
)
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36

_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image"),
    (b"\xff\xd8\xff", "image"),
    (b"GIF87a", "image"),
    (b"GIF89a", "image"),
    (b"%PDF-", "pdf"),
)


class OpError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Channel:
    """Length-prefixed JSON frames over two file descriptors."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd = rfd
        self.wfd = wfd

    def _read_exact(self, n: int) -> bytes | None:
        chunks = []
        while n:
            data = os.read(self.rfd, min(n, 1 << 20))
            if not data:
                return None
            chunks.append(data)
            n -= len(data)
        return b"".join(chunks)

    def read(self) -> dict | None:
        header = self._read_exact(_HEADER.size)
        if header is None:
            return None
        (size,) = _HEADER.unpack(header)
        if size > MAX_FRAME_BYTES:
            raise OpError("bad_request", f"frame of {size} bytes is too large")
        body = self._read_exact(size)
        if body is None:
            return None
        return json.loads(body.decode("utf-8"))

    def write(self, obj: dict) -> None:
        body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
        view = memoryview(_HEADER.pack(len(body)) + body)
        while view:
            n = os.write(self.wfd, view)
            view = view[n:]


class _Stream:
    __slots__ = ("fd", "kept", "omitted")

    def __init__(self, fd: int) -> None:
        self.fd = fd  # 1 or 2
        self.kept = 0
        self.omitted = 0


class _FrameBuffer:
    """Incremental parser of the length-prefixed JSON frames the REPL worker writes (read non-blocking)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> None:
        self.buf += data

    def next(self) -> dict | None:
        """The next complete frame, or None; ValueError if the bytes are not frames."""
        if len(self.buf) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(self.buf)
        if size > WORKER_FRAME_MAX_BYTES:
            raise ValueError(f"frame of {size} bytes")
        if len(self.buf) < _HEADER.size + size:
            return None
        body = bytes(self.buf[_HEADER.size : _HEADER.size + size])
        del self.buf[: _HEADER.size + size]
        frame = json.loads(body.decode("utf-8"))
        if not isinstance(frame, dict):
            raise ValueError("frame is not an object")
        return frame


class _WorkerHandle:
    """The agent's side of one REPL worker: its process, control pipe, event pipe and output pipes."""

    def __init__(self, proc: subprocess.Popen, ctl: int, events: int) -> None:
        self.proc = proc
        self.ctl = ctl  # agent -> worker frames
        self.events = events  # worker -> agent frames
        self.frames = _FrameBuffer()
        #: a persistent cell ran here: losing this worker loses state someone may rely on
        self.persistent = False
        #: bytes for the control pipe not written yet (the agent's source, before the first request)
        self.unsent = bytearray()
        #: open output pipe fd -> stream number (1 stdout, 2 stderr); an fd leaves at EOF
        self.outs = {proc.stdout.fileno(): 1, proc.stderr.fileno(): 2}
        for fd in (ctl, events, *self.outs):
            os.set_blocking(fd, False)

    def close(self) -> None:
        for fd in (self.ctl, self.events):
            with contextlib.suppress(OSError):
                os.close(fd)
        for f in (self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError):
                f.close()
        self.outs = {}


class _Cell:
    """A REPL cell in progress: it may span several requests while it waits on tool results."""

    def __init__(
        self, number: int, timeout: float, cap: int, kill_bytes: int, before: dict, restarted: bool
    ) -> None:
        self.number = number
        self.timeout = timeout  # running-time budget over all of the cell's segments
        self.used = 0.0
        self.cap = cap
        self.kill_bytes = kill_bytes
        self.streams = {1: _Stream(1), 2: _Stream(2)}
        self.total = 0
        self.before = before
        self.restarted = restarted


def _frame(obj: dict) -> bytes:
    body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
    return _HEADER.pack(len(body)) + body


def _parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        raw = f.read()
    return int(raw[raw.rfind(b")") + 2 :].split()[1])


def kill_pinned(pid: int, still_ours: Callable[[int], bool]) -> None:
    """SIGKILL `pid` only if `still_ours(pid)` holds while the process is pinned.

    A pid read from /proc or from `cgroup.procs` may belong to a new process by the time it is killed: the
    old one exited and the number (pid_max is often 32768) went to some other program of the host. A pidfd
    pins the process first, so the check and the signal are about the same one.
    """
    try:
        fd = os.pidfd_open(pid)
    except OSError as e:
        if e.errno == errno.ENOSYS:  # a kernel without pidfds: the unchecked kill
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        return  # else it is gone already
    except AttributeError:  # a Python without pidfds: the unchecked kill
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        return
    try:
        if still_ours(pid):
            signal.pidfd_send_signal(fd, signal.SIGKILL)
    except (OSError, ValueError, IndexError):
        pass
    finally:
        os.close(fd)


def _kill_if_child_of(pid: int, parent: int) -> None:
    """SIGKILL `pid` if it is still the child of `parent` the /proc walk saw."""
    kill_pinned(pid, lambda pinned: _parent_of(pinned) == parent)


def _utf8_cut(data: bytes, n: int) -> int:
    """Largest cut <= n that does not split a UTF-8 sequence."""
    if n >= len(data):
        return len(data)
    i = n
    while i > 0 and n - i < 3 and (data[i] & 0xC0) == 0x80:
        i -= 1
    return i if (data[i] & 0xC0) != 0x80 else n


def _split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _drop_final_newline(text: str) -> str:
    """View content as the real tool returns it: the raw text without the file's final newline."""
    return text[:-1] if text.endswith("\n") else text


def _count_lines(text: str) -> int:
    return len(_split_lines(text))


def _clean(s: str) -> str:
    """Replace lone surrogates (undecodable bytes kept by surrogateescape) so the text is valid UTF-8."""
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def unified_hunk(old_text: str, new_text: str, context: int = 3) -> dict:
    """One hunk with `context` lines of context, as `difflib.unified_diff(a, b, n=context)` would print it
    (without the ---/+++/@@ lines). If difflib would split the change into several hunks, they are merged
    into one that also covers the unchanged lines between them."""
    a = _split_lines(old_text)
    b = _split_lines(new_text)
    sm = difflib.SequenceMatcher(None, a, b)
    groups = list(sm.get_grouped_opcodes(context))
    if not groups:
        return {"old_start": None, "old_lines": 0, "new_start": None, "new_lines": 0, "lines": []}
    i1, j1 = groups[0][0][1], groups[0][0][3]
    i2, j2 = groups[-1][-1][2], groups[-1][-1][4]
    lines = []
    for tag, oi1, oi2, oj1, oj2 in sm.get_opcodes():
        if tag == "equal":
            lo, hi = max(oi1, i1), min(oi2, i2)
            lines.extend(" " + a[k] for k in range(lo, hi))
        else:  # every change lies inside [i1, i2) by construction of the groups
            lines.extend("-" + a[k] for k in range(oi1, oi2))
            lines.extend("+" + b[k] for k in range(oj1, oj2))

    def start(lo: int, hi: int) -> int:
        return lo + 1 if hi > lo else lo

    return {
        "old_start": start(i1, i2),
        "old_lines": i2 - i1,
        "new_start": start(j1, j2),
        "new_lines": j2 - j1,
        "lines": [_clean(x) for x in lines],
    }


def _libc() -> object | None:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True)
    except Exception:
        return None


class Agent:
    def __init__(self, channel: Channel) -> None:
        self.ch = channel
        self.cfg: dict = {}
        self.ready = False
        self.subreaper = False
        self.shell = "bash"
        self.python = "python3"
        self.env: dict = {}
        self.workdir = "/"
        self.input_dir = ""
        self.output_dir = ""
        self.scratch_dir = "/tmp"
        self.path_map: list = []
        self.confine: list | None = None
        self.shared_roots: list = []
        self.shared_exclude: list = []
        self._snippets = 0
        self._wake_r = -1
        self._current: subprocess.Popen | None = None
        self.startup_ppid = os.getppid()
        self._worker: _WorkerHandle | None = None
        self._cell: _Cell | None = None
        self._cells = 0
        #: the last REPL worker died or was killed: the next persistent cell reports `restarted`
        self._worker_lost = False
        self._source: bytes | None = None
        self._ops = {
            "init": self.op_init,
            "ping": self.op_ping,
            "run": self.op_run,
            "python": self.op_python,
            "view": self.op_view,
            "create": self.op_create,
            "str_replace": self.op_str_replace,
            "put_file": self.op_put_file,
            "read_file": self.op_read_file,
            "list_outputs": self.op_list_outputs,
            "put_chunk": self.op_put_chunk,
            "read_chunk": self.op_read_chunk,
            "sha256": self.op_sha256,
            "shutdown": self.op_ping,
            "repl_run": self.op_repl_run,
            "repl_resume": self.op_repl_resume,
            "repl_cancel": self.op_repl_cancel,
            "repl_reset": self.op_repl_reset,
        }

    # ---------------------------------------------------------------- main loop

    def serve(self) -> None:
        while True:
            try:
                req = self.ch.read()
            except OpError as e:
                self.ch.write({"id": None, "type": "error", "code": e.code, "message": e.message})
                return
            if req is None:
                return
            rid = req.get("id")
            op = req.get("op")
            handler = self._ops.get(op)
            try:
                if handler is None:
                    raise OpError("bad_request", f"unknown op {op!r}")
                if not self.ready and op not in ("init", "ping", "shutdown"):
                    raise OpError("bad_request", "the agent is not initialised")
                result = handler(rid, req)
                reply = {"id": rid, "type": "result"}
                reply.update(result)
            except OpError as e:
                reply = {"id": rid, "type": "error", "code": e.code, "message": e.message}
            except (KeyError, TypeError, ValueError) as e:
                reply = {
                    "id": rid,
                    "type": "error",
                    "code": "bad_request",
                    "message": f"{type(e).__name__}: {e}",
                }
            except Exception as e:
                reply = {
                    "id": rid,
                    "type": "error",
                    "code": "internal",
                    "message": f"{type(e).__name__}: {e}",
                }
            self.ch.write(reply)
            if op == "shutdown":
                return

    # ---------------------------------------------------------------- setup

    def op_init(self, rid: object, req: dict) -> dict:
        cfg = req["config"]
        self.cfg = cfg
        self.workdir = cfg["workdir"]
        self.input_dir = cfg["input_dir"]
        self.output_dir = cfg["output_dir"]
        self.scratch_dir = cfg.get("scratch_dir") or "/tmp"
        self.env = {str(k): str(v) for k, v in cfg.get("env", {}).items()}
        self.shell = cfg.get("shell") or "bash"
        self.python = cfg.get("python") or "python3"
        self.path_map = [(str(v), str(r)) for v, r in cfg.get("path_map", [])]
        confine = cfg.get("confine_roots")
        self.confine = [os.path.realpath(r) for r in confine] if confine else None
        self.shared_roots = [os.path.realpath(r) for r in cfg.get("shared_roots", [])]
        self.shared_exclude = [os.path.realpath(r) for r in cfg.get("shared_exclude", [])]
        notes = []
        for name, (soft, hard) in sorted(cfg.get("rlimits", {}).items()):
            rnum = getattr(resource, "RLIMIT_" + name.upper(), None)
            if rnum is None:
                notes.append(f"no RLIMIT_{name.upper()}")
                continue
            cur_hard = resource.getrlimit(rnum)[1]
            # an unprivileged process may only lower limits, so never ask for more than the current hard one
            if cur_hard != resource.RLIM_INFINITY:
                hard = cur_hard if hard < 0 else min(hard, cur_hard)
                soft = min(soft, hard) if soft >= 0 else hard
            try:
                resource.setrlimit(rnum, (soft, hard))
            except (OSError, ValueError) as e:
                notes.append(f"RLIMIT_{name.upper()}: {e}")
        libc = _libc()
        if libc is not None:
            # user code runs with the agent's uid: non-dumpable keeps it out of /proc/<agent>/fd (the protocol
            # pipes), mem and environ; commands are dumpable again after their execve
            libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
            self.subreaper = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
            sig = int(cfg.get("parent_death_signal") or 0)
            if sig:
                libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
                if os.getppid() != self.startup_ppid:  # the parent died before the prctl took effect
                    raise SystemExit(0)
        if not self.subreaper:
            notes.append("not a child subreaper: escaped background processes may survive a command")
        self._ensure_dirs()
        os.chdir(self.workdir)
        # SIGCHLD wakes the run loop through this pipe, so orphans are reaped as they exit (zombies would
        # otherwise count against the pids limit until the command ends)
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        self._wake_r = r
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda _s, _f: None)
        self.ready = True
        return {
            "protocol": PROTOCOL_VERSION,
            "pid": os.getpid(),
            "uid": os.getuid(),
            "python": sys.version.split()[0],
            "subreaper": self.subreaper,
            "notes": notes,
        }

    def op_ping(self, rid: object, req: dict) -> dict:
        return {"pong": True}

    def _ensure_dirs(self) -> None:
        for d in (self.workdir, self.input_dir, self.output_dir, self.scratch_dir):
            if d:
                with contextlib.suppress(OSError):
                    os.makedirs(d, exist_ok=True)

    # ---------------------------------------------------------------- processes

    def op_run(self, rid: object, req: dict) -> dict:
        return self._execute(rid, [self.shell, "-c", str(req["command"])], req)

    def op_python(self, rid: object, req: dict) -> dict:
        """Run `code` with the sandbox's Python. The code travels in an anonymous memory file (the process's
        stdin until the bootstrap has read it): no file in a directory user code can fill, so a full disk,
        /tmp or scratch dir never turns the tool itself into a failure."""
        self._snippets += 1
        name = os.path.join(self.scratch_dir, f"snippet_{os.getpid()}_{self._snippets}.py")
        data = str(req["code"]).encode("utf-8", "surrogateescape")
        try:
            fd = os.memfd_create("ce-python-code", os.MFD_CLOEXEC)
        except (AttributeError, OSError):
            return self._python_from_file(rid, name, data, req)  # no memfd (old kernel or Python)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.lseek(fd, 0, os.SEEK_SET)
            return self._execute(rid, [self.python, "-c", _PYTHON_BOOTSTRAP, name], req, stdin=fd)
        finally:
            os.close(fd)

    def _python_from_file(self, rid: object, path: str, data: bytes, req: dict) -> dict:
        try:
            with open(path, "wb") as f:
                f.write(data)
        except OSError as e:
            # e.g. ENOSPC in the scratch dir: the run fails like a Python that cannot read its script
            with contextlib.suppress(OSError):
                os.unlink(path)
            msg = f"python3: can't write the code to {path!r}: {e.strerror or e}\n".encode()
            self.ch.write({"id": rid, "type": "out", "fd": 2, "data": base64.b64encode(msg).decode()})
            return self._not_started(2, 0.0)
        try:
            return self._execute(rid, [self.python, path], req)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)

    @staticmethod
    def _not_started(return_code: int, duration: float) -> dict:
        return {
            "return_code": return_code,
            "timed_out": False,
            "truncated": False,
            "output_killed": False,
            "duration": duration,
            "omitted": [0, 0],
            "output_files": [],
        }

    def _execute(self, rid: object, argv: list, req: dict, stdin: int = subprocess.DEVNULL) -> dict:
        timeout = float(req.get("timeout", 300.0))
        cap = int(req.get("cap", 1 << 20))
        kill_bytes = int(req.get("kill_bytes", 64 << 20))
        self._ensure_dirs()
        with contextlib.suppress(OSError):
            os.chdir(self.workdir)
        before = self._scan_outputs()
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self.workdir,
                env=self.env,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as e:
            msg = (f"{argv[0]}: {e.strerror or e}\n").encode()
            self.ch.write({"id": rid, "type": "out", "fd": 2, "data": base64.b64encode(msg).decode()})
            code = 127 if isinstance(e, FileNotFoundError) else 126
            return self._not_started(code, time.monotonic() - start)
        self._current = proc
        self.ch.write({"id": rid, "type": "started", "pid": proc.pid, "budget": timeout})
        streams = {proc.stdout.fileno(): _Stream(1), proc.stderr.fileno(): _Stream(2)}
        sel = selectors.DefaultSelector()
        for fd in streams:
            sel.register(fd, selectors.EVENT_READ)
        if self._wake_r >= 0:
            sel.register(self._wake_r, selectors.EVENT_READ)
        deadline = start + timeout
        timed_out = output_killed = ending = False
        total = 0
        drain_deadline = None
        try:
            while True:
                now = time.monotonic()
                if proc.returncode is None:
                    self._reap(proc)
                if proc.returncode is None and now >= deadline:
                    timed_out = True
                    ending = ending or self._ending(rid)
                    self._kill_all(proc, *self._spared())
                if proc.returncode is not None and drain_deadline is None:
                    # the command is done: its leftovers go now, then the pipes drain to EOF
                    ending = ending or self._ending(rid)
                    self._kill_all(proc, *self._spared())
                    drain_deadline = time.monotonic() + DRAIN_SECONDS
                open_streams = [fd for fd in streams if fd in sel.get_map()]
                if drain_deadline is not None and (not open_streams or time.monotonic() > drain_deadline):
                    break
                if proc.returncode is None:
                    wait = max(0.0, min(deadline - now, 0.25))
                else:
                    wait = max(0.0, drain_deadline - time.monotonic())
                for key, _ in sel.select(wait):
                    fd = key.fd
                    if fd == self._wake_r:
                        try:
                            while os.read(fd, 4096):
                                pass
                        except OSError:
                            pass
                        continue
                    try:
                        data = os.read(fd, READ_CHUNK)
                    except OSError:
                        data = b""
                    if not data:
                        sel.unregister(fd)
                        continue
                    total += len(data)
                    self._accept(rid, streams[fd], data, cap)
                    if total > kill_bytes and not output_killed:
                        output_killed = True
                        ending = ending or self._ending(rid)
                        self._kill_all(proc, *self._spared())
        finally:
            sel.close()
            for f in (proc.stdout, proc.stderr):
                with contextlib.suppress(OSError):
                    f.close()
            if proc.returncode is None:
                self._kill_all(proc, *self._spared())
            self._current = None
        duration = time.monotonic() - start
        truncated = False
        for st in streams.values():
            if st.omitted:
                truncated = True
                marker = TRUNCATION_MARKER.format(omitted=st.omitted).encode()
                self.ch.write(
                    {"id": rid, "type": "out", "fd": st.fd, "data": base64.b64encode(marker).decode()}
                )
        rc = proc.returncode if proc.returncode is not None else -9
        after = self._scan_outputs()
        changed = sorted(p for p, sig in after.items() if before.get(p) != sig)
        return {
            "return_code": 128 - rc if rc < 0 else rc,
            "timed_out": timed_out,
            "truncated": truncated,
            "output_killed": output_killed,
            "duration": duration,
            "omitted": [s.omitted for s in sorted(streams.values(), key=lambda s: s.fd)],
            "output_files": [[p, os.path.basename(p), after[p][1]] for p in changed],
        }

    def _ending(self, rid: object) -> bool:
        """Tell the host the command is over (it stops watching for a hung agent); returns True."""
        if rid is not _QUIET:
            self.ch.write({"id": rid, "type": "ending"})
        return True

    def _accept(self, rid: object, st: _Stream, data: bytes, cap: int) -> None:
        room = cap - st.kept
        if room <= 0:
            st.omitted += len(data)
            return
        if len(data) > room:
            cut = _utf8_cut(data, room)
            st.omitted += len(data) - cut
            data = data[:cut]
            st.kept = cap  # nothing more is kept even if the cut fell short of the cap
        else:
            st.kept += len(data)
        if data and rid is not _QUIET:
            self.ch.write({"id": rid, "type": "out", "fd": st.fd, "data": base64.b64encode(data).decode()})

    def _reap(self, main: subprocess.Popen | None) -> None:
        """Reap every exited child; the command's (and the REPL worker's) status is stored on its Popen."""
        worker = self._worker.proc if self._worker is not None else None
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            for proc in (main, worker):
                if proc is not None and pid == proc.pid and proc.returncode is None:
                    proc.returncode = os.waitstatus_to_exitcode(status)

    def _has_children(self) -> bool:
        try:
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        return True

    def _process_table(self) -> tuple:
        """({parent pid: [child pids]}, {pid: state}) from /proc."""
        children: dict = {}
        state: dict = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    raw = f.read()
            except OSError:
                continue
            rest = raw[raw.rfind(b")") + 2 :].split()
            if len(rest) < 2:
                continue
            pid = int(name)
            children.setdefault(int(rest[1]), []).append(pid)
            state[pid] = rest[0]
        return children, state

    def _descendants(self, spare: int | None = None, spare_tree: bool = False) -> list:
        """(pid, state, parent pid) of every descendant; `spare` is left out (with its subtree if
        `spare_tree`)."""
        me = os.getpid()
        children, state = self._process_table()
        found = []
        stack = [(pid, me) for pid in children.get(me, [])]
        while stack:
            pid, parent = stack.pop()
            if pid == spare and spare_tree:
                continue
            if pid != spare:
                found.append((pid, state.get(pid), parent))
            stack.extend((child, pid) for child in children.get(pid, []))
        return found

    def _spared(self) -> tuple:
        """What a command's sweep must leave alive: the REPL worker, and while a cell waits on tool
        results, everything that cell started."""
        worker = self._worker
        if worker is None or worker.proc.returncode is not None:
            return None, False
        return worker.proc.pid, self._cell is not None

    def _kill_all(
        self, main: subprocess.Popen | None = None, spare: int | None = None, spare_tree: bool = False
    ) -> None:
        """SIGKILL the command and every process it left (setsid/nohup escapees included), then reap.

        `spare` (the REPL worker) survives the sweep, and so does its subtree if `spare_tree`."""
        if main is not None and main.returncode is None:
            for kill in (
                lambda: os.killpg(main.pid, signal.SIGKILL),
                lambda: os.kill(main.pid, signal.SIGKILL),
            ):
                with contextlib.suppress(OSError):
                    kill()
        me = os.getpid()
        end = time.monotonic() + KILL_SWEEP_SECONDS
        while True:
            self._reap(main)
            if spare is None:
                if not self._has_children():
                    break
                live = [(pid, parent) for pid, st, parent in self._descendants() if st != b"Z"]
            else:
                # the spared worker is a live child, so "no children left" can never hold: done when no
                # other process lives and no other child of ours is left to reap (zombies the worker
                # itself must reap do not count)
                others = self._descendants(spare, spare_tree)
                live = [(pid, parent) for pid, st, parent in others if st != b"Z"]
                if not live and not any(parent == me for _, _, parent in others):
                    break
            for pid, parent in live:
                _kill_if_child_of(pid, parent)
            if time.monotonic() > end:
                break
            time.sleep(0.001 if live else 0.005)
        if (
            spare is None
            and not self.subreaper
            and self.cfg.get("pidns")
            and (os.getppid() == 1 or os.getpid() == 1)
        ):
            # without a subreaper escapees re-parent to the namespace's init; in a private pid namespace
            # kill(-1) reaches exactly the sandbox's other processes
            with contextlib.suppress(OSError):
                os.kill(-1, signal.SIGKILL)
        if main is not None and main.returncode is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                main.wait(timeout=KILL_SWEEP_SECONDS)

    # ---------------------------------------------------------------- REPL (a long-lived Python per sandbox)

    def op_repl_run(self, rid: object, req: dict) -> dict:
        code = req["code"]
        if not isinstance(code, str):
            raise OpError("bad_request", "code must be a string")
        tools = req.get("tools") or []
        if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
            raise OpError("bad_request", "tools must be a list of names")
        persist = bool(req.get("persist", True))
        timeout = float(req.get("timeout", 300.0))
        call_timeout = float(req.get("call_timeout", DEFAULT_CALL_TIMEOUT_SECONDS))
        cap = int(req.get("cap", 1 << 20))
        kill_bytes = int(req.get("kill_bytes", 64 << 20))
        cancelled = False
        if self._cell is not None:
            # a new cell ends the one still waiting on tool results (its output is dropped)
            self._segment(_QUIET, self._cell, {"op": "cancel"}, grace=CANCEL_GRACE_SECONDS)
            cancelled = True
        self._ensure_dirs()
        worker = self._live_worker()
        restarted = False
        if worker is None:
            started = time.monotonic()
            try:
                worker = self._start_worker()
            except OSError as e:
                msg = (f"{self.python}: {e.strerror or e}\n").encode()
                if rid is not _QUIET:
                    self.ch.write({"id": rid, "type": "out", "fd": 2, "data": base64.b64encode(msg).decode()})
                return {
                    "return_code": 127 if isinstance(e, FileNotFoundError) else 126,
                    "timed_out": False,
                    "truncated": False,
                    "output_killed": False,
                    "duration": time.monotonic() - started,
                    "omitted": [0, 0],
                    "output_files": [],
                    "restarted": False,
                    "worker_died": False,
                    "cancelled_pending": cancelled,
                }
            self._worker = worker
        if persist:
            restarted, self._worker_lost = self._worker_lost, False
            worker.persistent = True
        self._discard_stale(worker)
        self._cells += 1
        cell = _Cell(self._cells, timeout, cap, kill_bytes, self._scan_outputs(), restarted)
        self._cell = cell
        message = {
            "op": "run",
            "code": code,
            "tools": tools,
            "persist": persist,
            "call_timeout": call_timeout,
            "workdir": self.workdir,
        }
        reply = self._segment(rid, cell, message)
        reply["cancelled_pending"] = cancelled
        return reply

    def op_repl_resume(self, rid: object, req: dict) -> dict:
        cell = self._cell
        if cell is None:
            raise OpError("no_pending_cell", "no cell is waiting on tool results")
        results = req["results"]
        if not isinstance(results, dict):
            raise OpError("bad_request", "results must map call ids to {content, is_error}")
        clean = {}
        for call_id, result in results.items():
            if not isinstance(result, dict) or not isinstance(result.get("content"), str):
                raise OpError("bad_request", f"result of {call_id} must be {{content: str, is_error: bool}}")
            clean[str(call_id)] = {"content": result["content"], "is_error": bool(result.get("is_error"))}
        if "timeout" in req:
            cell.timeout = cell.used + float(req["timeout"])
        return self._segment(rid, cell, {"op": "results", "results": clean})

    def op_repl_cancel(self, rid: object, req: dict) -> dict:
        """End the cell waiting on tool results: its pending calls raise CancelledError inside it."""
        if self._cell is None:
            return {"cancelled": False}
        reply = self._segment(rid, self._cell, {"op": "cancel"}, grace=CANCEL_GRACE_SECONDS)
        reply["cancelled"] = True
        return reply

    def op_repl_reset(self, rid: object, req: dict) -> dict:
        """Kill the REPL worker on purpose: the next cell starts a fresh interpreter (not a `restarted`)."""
        had = self._worker is not None
        self._drop_worker(lost=False)
        self._worker_lost = False
        return {"reset": had}

    def _agent_source(self) -> bytes:
        """This file's source: `AGENT_SOURCE` when a bootstrap ran the agent from source, else the file."""
        if self._source is None:
            given = globals().get("AGENT_SOURCE")
            if isinstance(given, (bytes, str)):
                self._source = given.encode() if isinstance(given, str) else given
            else:
                try:
                    with open(os.path.abspath(__file__), "rb") as f:
                        self._source = f.read()
                except OSError as e:
                    raise OpError(
                        "repl_unavailable",
                        f"the agent's source is not readable ({e}); a bootstrap that runs the agent from "
                        "source must define AGENT_SOURCE",
                    ) from None
        return self._source

    def _start_worker(self) -> _WorkerHandle:
        source = self._agent_source()
        path = os.path.abspath(__file__)
        ctl_r, ctl_w = os.pipe()
        ev_r, ev_w = os.pipe()
        try:
            argv = [self.python, "-c", _WORKER_BOOTSTRAP, "--repl-worker", str(ctl_r), str(ev_w)]
            proc = subprocess.Popen(
                [*argv, str(os.getpid()), path],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self.workdir,
                env=self.env,
                start_new_session=True,
                close_fds=True,
                pass_fds=(ctl_r, ev_w),
            )
        except BaseException:
            for fd in (ctl_w, ev_r):
                os.close(fd)
            raise
        finally:
            for fd in (ctl_r, ev_w):
                os.close(fd)
        worker = _WorkerHandle(proc, ctl_w, ev_r)
        worker.unsent += _HEADER.pack(len(source)) + source  # goes out ahead of the first request
        return worker

    def _live_worker(self) -> _WorkerHandle | None:
        worker = self._worker
        if worker is None:
            return None
        if worker.proc.returncode is None:
            self._reap(None)
        if worker.proc.returncode is None:
            return worker
        self._drop_worker(lost=True)  # it died between requests
        return None

    def _drop_worker(self, lost: bool) -> None:
        worker = self._worker
        if worker is None:
            return
        if worker.proc.returncode is None:
            self._kill_all(worker.proc)
        worker.close()
        self._worker = None
        self._cell = None
        if lost and worker.persistent:
            self._worker_lost = True

    def _discard_stale(self, worker: _WorkerHandle) -> None:
        """Drop what threads of earlier cells printed between cells."""
        for fd in list(worker.outs):
            with contextlib.suppress(OSError):
                while os.read(fd, READ_CHUNK):
                    pass

    def _next_event(self, worker: _WorkerHandle, cell: _Cell, cancelling: bool = False) -> tuple:
        """(outcome, detail) from the worker's buffered frames: ("pending", calls), ("done", return code),
        ("died", None) for garbage on the control pipe, or (None, None). While `cancelling`, calls the
        cell made before it saw the cancel are moot (their futures are cancelled too)."""
        while True:
            try:
                frame = worker.frames.next()
            except ValueError:
                return "died", None
            if frame is None:
                return None, None
            if frame.get("cell") != cell.number:
                continue  # "ready", or a late frame of an earlier cell
            kind = frame.get("type")
            if kind == "calls" and not cancelling:
                listed = frame.get("calls")
                calls = [
                    {"id": str(c.get("id")), "name": str(c.get("name")), "input": c.get("input")}
                    for c in (listed if isinstance(listed, list) else [])
                    if isinstance(c, dict) and isinstance(c.get("input"), dict)
                ]
                if calls:
                    return "pending", calls
            if kind == "done":
                code = frame.get("return_code")
                return "done", code if isinstance(code, int) else 1

    def _read_outputs(self, rid: object, worker: _WorkerHandle, cell: _Cell, fd: int) -> bool:
        """Read what one output pipe holds now; False at EOF."""
        while True:
            try:
                data = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                return True
            except OSError:
                data = b""
            if not data:
                worker.outs.pop(fd, None)
                return False
            cell.total += len(data)
            self._accept(rid, cell.streams[worker.outs[fd]], data, cell.cap)
            if len(data) < READ_CHUNK:
                return True

    def _segment(self, rid: object, cell: _Cell, message: dict, grace: float | None = None) -> dict:
        """Send `message` to the worker and run the cell until it waits on tool calls, ends, dies, passes
        its deadline or floods. Answers `{"pending": [...]}` or the cell's final result."""
        worker = self._worker
        assert worker is not None
        start = time.monotonic()
        budget = grace if grace is not None else max(0.0, cell.timeout - cell.used)
        deadline = start + budget
        if rid is not _QUIET:
            self.ch.write({"id": rid, "type": "started", "pid": worker.proc.pid, "budget": budget})
        outbuf = worker.unsent + _frame({**message, "cell": cell.number})
        worker.unsent = bytearray()
        sel = selectors.DefaultSelector()
        for fd in worker.outs:
            sel.register(fd, selectors.EVENT_READ)
        sel.register(worker.events, selectors.EVENT_READ)
        sel.register(worker.ctl, selectors.EVENT_WRITE)
        if self._wake_r >= 0:
            sel.register(self._wake_r, selectors.EVENT_READ)
        cancelling = message.get("op") == "cancel"
        outcome, detail = self._next_event(worker, cell, cancelling)  # left over from the last segment
        try:
            while outcome is None:
                if worker.proc.returncode is None:
                    self._reap(None)
                if worker.proc.returncode is not None:
                    outcome = "died"
                    break
                now = time.monotonic()
                if now >= deadline:
                    outcome = "timeout"
                    break
                for key, _ in sel.select(min(deadline - now, 0.25)):
                    fd = key.fd
                    if fd == self._wake_r:
                        with contextlib.suppress(OSError):
                            while os.read(fd, 4096):
                                pass
                    elif fd == worker.ctl:
                        try:
                            del outbuf[: os.write(fd, outbuf)]
                        except BlockingIOError:
                            continue
                        except OSError:
                            outcome = "died"
                            break
                        if not outbuf:
                            sel.unregister(fd)
                    elif fd == worker.events:
                        try:
                            data = os.read(fd, READ_CHUNK)
                        except BlockingIOError:
                            continue
                        except OSError:
                            data = b""
                        if not data:
                            outcome = "died"
                            break
                        worker.frames.feed(data)
                        outcome, detail = self._next_event(worker, cell, cancelling)
                        if outcome is not None:
                            break
                    elif fd in worker.outs:
                        if not self._read_outputs(rid, worker, cell, fd):
                            sel.unregister(fd)
                        if cell.total > cell.kill_bytes:
                            outcome = "flood"
                            break
        finally:
            sel.close()
        self._ending(rid)
        if outcome in ("pending", "done") and outbuf:
            # the cell moved on before our whole frame went out; a cut frame would corrupt the next one
            outcome = self._finish_write(worker, outbuf) or outcome
        elapsed = time.monotonic() - start
        cell.used += elapsed
        if outcome == "pending":
            for fd in list(worker.outs):
                self._read_outputs(rid, worker, cell, fd)
            return {"pending": detail, "duration": elapsed, "restarted": cell.restarted}
        died = outcome != "done"
        if not died:
            self._kill_all(None, worker.proc.pid)  # the cell's leftovers go, the interpreter stays
            for fd in list(worker.outs):
                self._read_outputs(rid, worker, cell, fd)
            return_code = int(detail)
        else:
            self._kill_all(worker.proc)
            self._drain_dead(rid, worker, cell)
            status = worker.proc.returncode
            return_code = 137 if status is None else (128 - status if status < 0 else status)
            self._drop_worker(lost=True)
        self._cell = None
        truncated = False
        for st in cell.streams.values():
            if st.omitted:
                truncated = True
                if rid is not _QUIET:
                    marker = TRUNCATION_MARKER.format(omitted=st.omitted).encode()
                    self.ch.write(
                        {"id": rid, "type": "out", "fd": st.fd, "data": base64.b64encode(marker).decode()}
                    )
        after = self._scan_outputs()
        changed = sorted(p for p, sig in after.items() if cell.before.get(p) != sig)
        return {
            "return_code": return_code,
            "timed_out": outcome == "timeout",
            "truncated": truncated,
            "output_killed": outcome == "flood",
            "duration": elapsed,
            "cell_duration": cell.used,
            "omitted": [cell.streams[1].omitted, cell.streams[2].omitted],
            "output_files": [[p, os.path.basename(p), after[p][1]] for p in changed],
            "restarted": cell.restarted,
            "worker_died": died,
        }

    def _finish_write(self, worker: _WorkerHandle, outbuf: bytearray) -> str | None:
        """Write the rest of a frame (the worker reads its control pipe whenever it is idle); "died" if it
        will not take it."""
        end = time.monotonic() + DRAIN_SECONDS
        while outbuf and time.monotonic() < end:
            try:
                del outbuf[: os.write(worker.ctl, outbuf)]
            except BlockingIOError:
                time.sleep(0.001)
            except OSError:
                return "died"
        return "died" if outbuf else None

    def _drain_dead(self, rid: object, worker: _WorkerHandle, cell: _Cell) -> None:
        """After a kill: read the output pipes to EOF (bounded), so the last words of the cell are kept."""
        end = time.monotonic() + DRAIN_SECONDS
        sel = selectors.DefaultSelector()
        for fd in worker.outs:
            sel.register(fd, selectors.EVENT_READ)
        try:
            while worker.outs and time.monotonic() < end:
                for key, _ in sel.select(max(0.0, end - time.monotonic())):
                    if not self._read_outputs(rid, worker, cell, key.fd):
                        sel.unregister(key.fd)
        finally:
            sel.close()

    # ---------------------------------------------------------------- output files

    def _scan_outputs(self) -> dict:
        found: dict = {}
        stack = [self.output_dir] if self.output_dir else []
        while stack and len(found) < OUTPUT_SCAN_MAX_FILES:
            d = stack.pop()
            try:
                it = os.scandir(d)
            except OSError:
                continue
            with it:
                for e in it:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
                        elif e.is_file(follow_symlinks=False):
                            st = e.stat(follow_symlinks=False)
                            found[e.path] = (st.st_mtime_ns, st.st_size, st.st_ino)
                    except OSError:
                        continue
        return found

    def op_list_outputs(self, rid: object, req: dict) -> dict:
        files = self._scan_outputs()
        return {"output_files": [[p, os.path.basename(p), files[p][1]] for p in sorted(files)]}

    # ---------------------------------------------------------------- paths

    def resolve(self, path: object) -> str:
        """Turn a tool path into the path to open: expand $INPUT_DIR/$OUTPUT_DIR, anchor relative paths at the
        working directory, normalise, map virtual prefixes (none tier) and enforce the allowed roots."""
        if not isinstance(path, str) or not path.strip():
            raise OpError("invalid_tool_input", "The path must be a non-empty string.")
        if "\x00" in path:
            raise OpError("invalid_tool_input", "The path must not contain NUL bytes.")
        for var, value in (("INPUT_DIR", self.input_dir), ("OUTPUT_DIR", self.output_dir)):
            for form in ("$" + var, "${" + var + "}"):
                if path == form or path.startswith(form + "/"):
                    path = value + path[len(form) :]
        if not path.startswith("/"):
            path = os.path.join(self.workdir, path)
        path = os.path.normpath(path)
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        for virtual, real in self.path_map:
            if path == virtual or path.startswith(virtual + "/"):
                path = real + path[len(virtual) :]
                break
        if self.confine is not None and not self._allowed(os.path.realpath(path)):
            raise OpError("invalid_tool_input", f"The path {path} is outside the sandbox's directories.")
        return path

    def _allowed(self, real: str) -> bool:
        """The sandbox's own directories, or a shared root (e.g. /tmp) outside the excluded trees."""

        def under(roots: list) -> bool:
            return any(real == r or real.startswith(r.rstrip("/") + "/") for r in roots)

        return under(self.confine or []) or (under(self.shared_roots) and not under(self.shared_exclude))

    @staticmethod
    def _open_regular(path: str, shown: object, write: bool = False):  # noqa: ANN205 - a file object
        """Open a regular file without blocking: a FIFO or device swapped in is refused, not waited on."""
        flags = os.O_CLOEXEC | os.O_NONBLOCK
        flags |= (os.O_WRONLY | os.O_CREAT | os.O_TRUNC) if write else os.O_RDONLY
        fd = os.open(path, flags, 0o666)
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise OpError("invalid_tool_input", f"{shown} is not a regular file.")
            os.set_blocking(fd, True)
            return os.fdopen(fd, "wb" if write else "rb")
        except BaseException:
            os.close(fd)
            raise

    def _require_regular(self, path: str, shown: object) -> None:
        """Refuse directories, FIFOs and devices (reading a FIFO would hang the agent); missing is fine."""
        try:
            mode = os.stat(path).st_mode
        except OSError:
            return
        if stat.S_ISDIR(mode):
            raise OpError("invalid_tool_input", f"{shown} is a directory.")
        if not stat.S_ISREG(mode):
            raise OpError("invalid_tool_input", f"{shown} is not a regular file.")

    def _missing(self, shown: str) -> OpError:
        return OpError("file_not_found", f"The path {shown} does not exist. Please provide a valid path.")

    # ---------------------------------------------------------------- text editor

    def op_view(self, rid: object, req: dict) -> dict:
        shown = req.get("path")
        path = self.resolve(shown)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(shown) from None
        except OSError as e:
            raise OpError("invalid_tool_input", f"Cannot access {shown}: {e.strerror}") from None
        if stat.S_ISDIR(st.st_mode):
            return self._view_dir(path)
        if not stat.S_ISREG(st.st_mode):
            raise OpError("invalid_tool_input", f"{shown} is not a regular file.")
        if st.st_size > VIEW_MAX_BYTES:
            raise OpError("invalid_tool_input", f"File {shown} is too large to view ({st.st_size} bytes).")
        try:
            with self._open_regular(path, shown) as f:
                data = f.read(VIEW_MAX_BYTES + 1)
        except OSError as e:
            raise OpError("invalid_tool_input", f"Cannot read {shown}: {e.strerror}") from None
        kind = self._sniff(data)
        if kind is not None:
            return {
                "file_type": kind,
                "content": base64.b64encode(data).decode(),
                "num_lines": None,
                "start_line": None,
                "total_lines": None,
            }
        text = data.decode("utf-8", "replace")
        total = _count_lines(text)
        view_range = req.get("view_range")
        if view_range:
            lines = _keep_split(text)
            try:
                first, last = int(view_range[0]), int(view_range[1])
            except (TypeError, ValueError, IndexError):
                raise OpError("invalid_tool_input", "view_range must be two integers.") from None
            if last == -1:
                last = total
            if first < 1 or first > max(total, 1) or last < first or last > total:
                raise OpError(
                    "invalid_tool_input",
                    f"Invalid view_range {[first, last]}: the file has {total} lines.",
                )
            text = "".join(lines[first - 1 : last])
            return {
                "file_type": "text",
                "content": _drop_final_newline(text),
                "num_lines": last - first + 1,
                "start_line": first,
                "total_lines": total,
            }
        return {
            "file_type": "text",
            "content": _drop_final_newline(text),
            "num_lines": total,
            "start_line": 1,
            "total_lines": total,
        }

    @staticmethod
    def _sniff(data: bytes) -> str | None:
        for magic, kind in _IMAGE_MAGIC:
            if data.startswith(magic):
                return kind
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return "image"
        return None

    def _view_dir(self, path: str) -> dict:
        """Entries two levels deep, hidden ones skipped, directories marked with a trailing slash."""
        out = []

        def entries(d: str) -> list:
            try:
                with os.scandir(d) as it:
                    return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
            except OSError:
                return []

        for e in entries(path):
            is_dir = e.is_dir(follow_symlinks=False)
            out.append(e.name + ("/" if is_dir else ""))
            if is_dir:
                for sub in entries(e.path):
                    out.append(e.name + "/" + sub.name + ("/" if sub.is_dir(follow_symlinks=False) else ""))
        text = "\n".join(out)
        return {
            "file_type": "text",
            "content": text,
            "num_lines": len(out),
            "start_line": 1,
            "total_lines": len(out),
        }

    def op_create(self, rid: object, req: dict) -> dict:
        shown = req.get("path")
        path = self.resolve(shown)
        text = req.get("file_text")
        if not isinstance(text, str):
            raise OpError("invalid_tool_input", "file_text must be a string.")
        if os.path.exists(path):
            self._require_regular(path, shown)
        existed = os.path.isfile(path)
        try:
            parent = os.path.dirname(path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            with self._open_regular(path, shown, write=True) as f:
                f.write(text.encode("utf-8", "surrogateescape"))
        except UnicodeEncodeError:
            raise OpError("invalid_tool_input", "file_text is not valid Unicode text.") from None
        except OSError as e:
            raise OpError("invalid_tool_input", f"Cannot write {shown}: {e.strerror or e}") from None
        return {"is_file_update": existed}

    def op_str_replace(self, rid: object, req: dict) -> dict:
        shown = req.get("path")
        path = self.resolve(shown)
        old, new = req.get("old_str"), req.get("new_str")
        if not isinstance(old, str) or not isinstance(new, str):
            raise OpError("invalid_tool_input", "old_str and new_str must be strings.")
        if old == "":
            raise OpError("invalid_tool_input", "old_str must not be empty.")
        self._require_regular(path, shown)
        try:
            with self._open_regular(path, shown) as f:
                text = f.read().decode("utf-8", "surrogateescape")
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(shown) from None
        except OSError as e:
            raise OpError("invalid_tool_input", f"Cannot read {shown}: {e.strerror}") from None
        count = text.count(old)
        if count == 0:
            # The engine maps this to the API's `invalid_tool_input` unless the documented-2025 profile is on.
            raise OpError("string_not_found", "String to replace not found in file.")
        if count > 1:
            starts, pos = [], text.find(old)
            while pos != -1:
                starts.append(text.count("\n", 0, pos) + 1)
                pos = text.find(old, pos + len(old))
            raise OpError(
                "invalid_tool_input",
                f"Found {count} occurrences of the string to replace (lines "
                f"{', '.join(str(n) for n in starts)}); it must occur exactly once.",
            )
        new_text = text.replace(old, new, 1)
        try:
            with self._open_regular(path, shown, write=True) as f:
                f.write(new_text.encode("utf-8", "surrogateescape"))
        except OSError as e:
            raise OpError("invalid_tool_input", f"Cannot write {shown}: {e.strerror or e}") from None
        return unified_hunk(text, new_text)

    # ---------------------------------------------------------------- host file transfer

    def op_put_file(self, rid: object, req: dict) -> dict:
        shown = req.get("path")
        path = self.resolve(shown)
        data = base64.b64decode(req["data"])
        if os.path.isdir(path):
            raise OpError("is_a_directory", f"{shown} is a directory")
        try:
            parent = os.path.dirname(path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            with self._open_regular(path, shown, write=True) as f:
                f.write(data)
        except OSError as e:
            raise OpError("os_error", f"Cannot write {shown}: {e.strerror or e}") from None
        return {"size": len(data), "path": path}

    def op_read_file(self, rid: object, req: dict) -> dict:
        shown = req.get("path")
        path = self.resolve(shown)
        try:
            st = os.stat(path)
            if stat.S_ISDIR(st.st_mode):
                raise OpError("is_a_directory", f"{shown} is a directory")
            if not stat.S_ISREG(st.st_mode):
                raise OpError("invalid_tool_input", f"{shown} is not a regular file")
            if st.st_size > TRANSFER_MAX_BYTES:
                raise OpError("too_large", f"{shown} is larger than {TRANSFER_MAX_BYTES} bytes")
            with self._open_regular(path, shown) as f:
                data = f.read(TRANSFER_MAX_BYTES + 1)
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(shown) from None
        except OSError as e:
            raise OpError("os_error", f"Cannot read {shown}: {e.strerror or e}") from None
        return {"data": base64.b64encode(data).decode()}

    def op_put_chunk(self, rid: object, req: dict) -> dict:
        shown = req.get("path")
        path = self.resolve(shown)
        offset = int(req["offset"])
        data = base64.b64decode(req["data"])
        if os.path.isdir(path):
            raise OpError("is_a_directory", f"{shown} is a directory")
        try:
            if offset == 0:
                parent = os.path.dirname(path)
                if parent:
                    os.makedirs(parent, exist_ok=True)
                f = self._open_regular(path, shown, write=True)
            else:
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NONBLOCK)
                try:
                    st = os.fstat(fd)
                    if not stat.S_ISREG(st.st_mode):
                        raise OpError("invalid_tool_input", f"{shown} is not a regular file.")
                    if st.st_size != offset:
                        raise OpError("bad_request", f"{shown} has {st.st_size} bytes, not {offset}")
                    os.set_blocking(fd, True)
                    os.lseek(fd, offset, os.SEEK_SET)
                    f = os.fdopen(fd, "wb")
                except BaseException:
                    os.close(fd)
                    raise
            with f:
                f.write(data)
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(shown) from None
        except OSError as e:
            raise OpError("os_error", f"Cannot write {shown}: {e.strerror or e}") from None
        return {"size": offset + len(data)}

    def op_read_chunk(self, rid: object, req: dict) -> dict:
        shown = req.get("path")
        path = self.resolve(shown)
        offset = max(0, int(req["offset"]))
        size = max(0, min(int(req["size"]), TRANSFER_CHUNK_MAX))
        try:
            if os.path.isdir(path):
                raise OpError("is_a_directory", f"{shown} is a directory")
            with self._open_regular(path, shown) as f:
                total = os.fstat(f.fileno()).st_size
                f.seek(offset)
                data = f.read(size)
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(shown) from None
        except OSError as e:
            raise OpError("os_error", f"Cannot read {shown}: {e.strerror or e}") from None
        return {"data": base64.b64encode(data).decode(), "total": total, "eof": offset + len(data) >= total}

    def op_sha256(self, rid: object, req: dict) -> dict:
        shown = req.get("path")
        path = self.resolve(shown)
        digest = hashlib.sha256()
        size = 0
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                return {"sha256": None, "size": None}
            with self._open_regular(path, shown) as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
                    size += len(block)
        except (OpError, OSError):
            return {"sha256": None, "size": None}
        return {"sha256": digest.hexdigest(), "size": size}


# -------------------------------------------------------------------- the REPL worker (its own process)


class ToolCallError(RuntimeError):
    """Raised inside a cell when the client answers a tool call with `is_error: true`."""


class _ReplWorker:
    """A long-lived Python interpreter that runs cells on the agent's request, in this process.

    Custom tools the cell may call are injected as async functions taking one dict (or keyword arguments)
    and returning the client's `tool_result` content as a string. Calls made while the event loop has
    other ready work are batched, so `asyncio.gather(f(a), f(b))` reports both calls at once; the cell
    then waits (the loop keeps running) until the agent forwards the results or the call times out.
    """

    def __init__(self, channel: Channel) -> None:
        self.ch = channel
        self.persistent: object | None = None  # the module of persistent cells, created on first use
        self.own_module = sys.modules.get("__main__")  # keeps this file's globals alive once replaced
        self.cell = 0
        self.calls = 0
        self.call_timeout = DEFAULT_CALL_TIMEOUT_SECONDS
        self.outstanding: dict = {}  # call id -> (name, future)
        self.batch: list = []
        self.flush_loop: object | None = None  # the loop a batch flush is scheduled on
        self.loop: object | None = None  # the loop watching the control pipe
        self.cancelling = False

    def serve(self) -> int:
        self.ch.write({"type": "ready", "pid": os.getpid()})
        while True:
            msg = self.ch.read()
            if msg is None:
                return 0
            if msg.get("op") != "run":
                continue  # results or a cancel for a cell that already ended
            self.cell = int(msg.get("cell") or 0)
            code = self.run_cell(msg)
            self._flush_std()
            self.ch.write({"type": "done", "cell": self.cell, "return_code": code})

    def run_cell(self, msg: dict) -> int:
        import ast
        import keyword
        import linecache
        import types

        self._reap_children()
        source = str(msg.get("code") or "")
        self.call_timeout = float(msg.get("call_timeout") or DEFAULT_CALL_TIMEOUT_SECONDS)
        self.cancelling = False
        self.outstanding = {}
        self.batch = []
        self.flush_loop = None
        self.loop = None
        if msg.get("persist", True):
            if self.persistent is None:
                self.persistent = types.ModuleType("__main__")
            module = self.persistent
        else:
            module = types.ModuleType("__main__")
            with contextlib.suppress(OSError, TypeError):
                os.chdir(msg.get("workdir"))
        sys.modules["__main__"] = module  # pickle, dataclasses and friends look user classes up there
        ns = module.__dict__
        filename = f"<cell {self.cell}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        injected = {}
        for name in msg.get("tools") or []:
            if isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name):
                injected[name] = ns[name] = self._tool(name)
        try:
            code = compile(source, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
            if code.co_flags & 0x80:  # CO_COROUTINE: the cell has a top-level await
                import asyncio

                asyncio.run(eval(code, ns))
            else:
                exec(code, ns)
            return 0
        except SystemExit as e:
            return self._exit_status(e)
        except BaseException as e:  # the cell's failure is its output, as for `python script.py`
            self._print_exception(e, filename)
            return 1
        finally:
            for name, fn in injected.items():
                if ns.get(name) is fn:
                    del ns[name]
            self._detach()
            self.outstanding = {}
            self.batch = []

    @staticmethod
    def _exit_status(e: SystemExit) -> int:
        if e.code is None:
            return 0
        if isinstance(e.code, int):
            return e.code & 0xFF
        with contextlib.suppress(Exception):
            print(e.code, file=sys.stderr)
        return 1

    @staticmethod
    def _print_exception(e: BaseException, filename: str) -> None:
        """The traceback Python would print for a script: from the cell's first frame, without ours."""
        import traceback

        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != filename:
            tb = tb.tb_next
        try:
            te = traceback.TracebackException(type(e), e, tb)
            mine = os.path.abspath(__file__)
            te.stack = traceback.StackSummary.from_list([f for f in te.stack if f.filename != mine])
            sys.stderr.write("".join(te.format()))
        except Exception:
            with contextlib.suppress(Exception):
                sys.stderr.write(f"{type(e).__name__}: {e}\n")

    @staticmethod
    def _flush_std() -> None:
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            with contextlib.suppress(Exception):
                stream.flush()

    @staticmethod
    def _reap_children() -> None:
        """Zombies of processes earlier cells left (the agent killed them when their cell ended)."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except (ChildProcessError, OSError):
                return
            if pid == 0:
                return

    # ------------------------------------------------------------ tool calls

    def _tool(self, name: str) -> object:
        worker = self

        async def tool(*args: object, **kwargs: object) -> str:
            if len(args) == 1 and not kwargs and isinstance(args[0], dict):
                tool_input = args[0]
            elif not args:
                tool_input = dict(kwargs)
            else:
                raise TypeError(f"{name}() takes one dict of inputs (or keyword arguments)")
            try:
                tool_input = json.loads(json.dumps(tool_input))
            except (TypeError, ValueError) as e:
                raise TypeError(f"{name}(): the input must be JSON-serialisable ({e})") from None
            return await worker._call(name, tool_input)

        tool.__name__ = tool.__qualname__ = name
        tool.__doc__ = f"Call the client tool {name!r}; returns its tool_result content as a string."
        return tool

    async def _call(self, name: str, tool_input: dict) -> str:
        import asyncio

        if self.cancelling:
            raise asyncio.CancelledError()
        loop = asyncio.get_running_loop()
        self._attach(loop)
        self.calls += 1
        call_id = f"call_{self.calls}"
        future = loop.create_future()
        self.outstanding[call_id] = (name, future)
        self.batch.append({"id": call_id, "name": name, "input": tool_input})
        if self.flush_loop is not loop:
            self.flush_loop = loop
            loop.call_soon(self._flush, loop, -1, 0)
        timer = loop.call_later(self.call_timeout, self._expire, call_id)
        try:
            return await future
        finally:
            timer.cancel()
            self.outstanding.pop(call_id, None)

    def _flush(self, loop: object, seen: int, bounces: int) -> None:
        """Report the batch once the loop ran everything that was ready (and so made every call it
        could make now); calls from `asyncio.gather` land in one batch."""
        if len(self.batch) != seen and bounces < 50:
            loop.call_soon(self._flush, loop, len(self.batch), bounces + 1)
            return
        self.flush_loop = None
        if self.batch:
            calls, self.batch = self.batch, []
            self._flush_std()  # what the cell printed so far reaches the agent before the calls
            self.ch.write({"type": "calls", "cell": self.cell, "calls": calls})

    def _expire(self, call_id: str) -> None:
        entry = self.outstanding.get(call_id)
        if entry is not None and not entry[1].done():
            entry[1].set_exception(
                TimeoutError(
                    f"tool call {entry[0]} ({call_id}) got no result within {self.call_timeout:g} seconds"
                )
            )

    def _attach(self, loop: object) -> None:
        if self.loop is loop:
            return
        self._detach()
        loop.add_reader(self.ch.rfd, self._on_control)
        self.loop = loop

    def _detach(self) -> None:
        if self.loop is not None:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self.ch.rfd)
            self.loop = None

    def _on_control(self) -> None:
        msg = self.ch.read()  # the agent writes whole frames at once: a blocking read does not stall
        if msg is None:
            os._exit(0)  # the agent is gone
        if msg.get("cell") != self.cell:
            return
        if msg.get("op") == "results":
            for call_id, result in (msg.get("results") or {}).items():
                entry = self.outstanding.get(call_id)
                if entry is None or entry[1].done():
                    continue
                content = str(result.get("content", "")) if isinstance(result, dict) else str(result)
                if isinstance(result, dict) and result.get("is_error"):
                    entry[1].set_exception(ToolCallError(f"{entry[0]}: {content}"))
                else:
                    entry[1].set_result(content)
        elif msg.get("op") == "cancel":
            self.cancelling = True
            for _, future in list(self.outstanding.values()):
                if not future.done():
                    future.cancel()


def repl_worker_main(args: list) -> int:
    """Entry point of the worker (`--repl-worker CTL_FD EVENTS_FD AGENT_PID`), started by the agent through
    `_WORKER_BOOTSTRAP` under `python3 -c`, so imports resolve from the working directory."""
    ctl, events, parent = int(args[0]), int(args[1]), int(args[2])
    for fd in (ctl, events):
        os.set_inheritable(fd, False)  # subprocesses of a cell must not hold the control pipes
    libc = _libc()
    if libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the agent died before the prctl took effect
        return 1
    sys.argv = [""]
    return _ReplWorker(Channel(ctl, events)).serve()


def _keep_split(text: str) -> list:
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def main() -> int:
    # fds beyond stdio were only meant for the sandbox's setup (seccomp program, bound data files)
    with contextlib.suppress(OSError):
        os.closerange(3, 1 << 16)
    agent = Agent(Channel(0, 1))

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, terminate)
    try:
        agent.serve()
    except (BrokenPipeError, ConnectionResetError, SystemExit):
        pass
    finally:
        agent._kill_all(agent._current)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--repl-worker":
        sys.exit(repl_worker_main(sys.argv[2:]))
    sys.exit(main())
