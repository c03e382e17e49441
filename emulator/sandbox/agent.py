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

Progress frames of `run`/`python`: `{"type": "started", "pid"}` once the command runs, then
`{"type": "out", "fd": 1|2, "data": <base64>}` for output chunks as they arrive (only what fits the cap).

Operations: `init` (must come first: directories, environment, rlimits), `ping`, `run` (`command`),
`python` (`code`), `view`, `create`, `str_replace`, `put_file`, `read_file`, `list_outputs`, `shutdown`.
`run` and `python` take `timeout` (seconds), `cap` (bytes kept per stream) and `kill_bytes` (total output
after which the command is killed); their result has `return_code`, `timed_out`, `truncated`,
`output_killed`, `duration`, `omitted` ([stdout, stderr] bytes dropped) and `output_files`.

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
reported shell-style (128 + signal), so a killed command returns 137.
"""

from __future__ import annotations

import base64
import contextlib
import difflib
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

PROTOCOL_VERSION = 1
_HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 1 << 30
READ_CHUNK = 65536
TRUNCATION_MARKER = "\n[output truncated: {omitted} bytes omitted]\n"
VIEW_MAX_BYTES = 16 * 1024 * 1024
TRANSFER_MAX_BYTES = 512 * 1024 * 1024
OUTPUT_SCAN_MAX_FILES = 10000
KILL_SWEEP_SECONDS = 2.0
DRAIN_SECONDS = 2.0
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
            "shutdown": self.op_ping,
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
        self._snippets += 1
        path = os.path.join(self.scratch_dir, f"snippet_{os.getpid()}_{self._snippets}.py")
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(str(req["code"]))
        try:
            return self._execute(rid, [self.python, path], req)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def _execute(self, rid: object, argv: list, req: dict) -> dict:
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
                stdin=subprocess.DEVNULL,
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
            return {
                "return_code": 127 if isinstance(e, FileNotFoundError) else 126,
                "timed_out": False,
                "truncated": False,
                "output_killed": False,
                "duration": time.monotonic() - start,
                "omitted": [0, 0],
                "output_files": [],
            }
        self._current = proc
        self.ch.write({"id": rid, "type": "started", "pid": proc.pid})
        streams = {proc.stdout.fileno(): _Stream(1), proc.stderr.fileno(): _Stream(2)}
        sel = selectors.DefaultSelector()
        for fd in streams:
            sel.register(fd, selectors.EVENT_READ)
        if self._wake_r >= 0:
            sel.register(self._wake_r, selectors.EVENT_READ)
        deadline = start + timeout
        timed_out = output_killed = False
        total = 0
        drain_deadline = None
        try:
            while True:
                now = time.monotonic()
                if proc.returncode is None:
                    self._reap(proc)
                if proc.returncode is None and now >= deadline:
                    timed_out = True
                    self._kill_all(proc)
                if proc.returncode is not None and drain_deadline is None:
                    # the command is done: its leftovers go now, then the pipes drain to EOF
                    self._kill_all(proc)
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
                        self._kill_all(proc)
        finally:
            sel.close()
            for f in (proc.stdout, proc.stderr):
                with contextlib.suppress(OSError):
                    f.close()
            if proc.returncode is None:
                self._kill_all(proc)
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
        if data:
            self.ch.write({"id": rid, "type": "out", "fd": st.fd, "data": base64.b64encode(data).decode()})

    def _reap(self, main: subprocess.Popen | None) -> None:
        """Reap every exited child; the command's own status is stored on its Popen."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            if main is not None and pid == main.pid and main.returncode is None:
                main.returncode = os.waitstatus_to_exitcode(status)

    def _has_children(self) -> bool:
        try:
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        return True

    def _descendants(self) -> list:
        me = os.getpid()
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
        found = []
        stack = list(children.get(me, []))
        while stack:
            pid = stack.pop()
            found.append((pid, state.get(pid)))
            stack.extend(children.get(pid, []))
        return found

    def _kill_all(self, main: subprocess.Popen | None = None) -> None:
        """SIGKILL the command and every process it left (setsid/nohup escapees included), then reap."""
        if main is not None and main.returncode is None:
            for kill in (
                lambda: os.killpg(main.pid, signal.SIGKILL),
                lambda: os.kill(main.pid, signal.SIGKILL),
            ):
                with contextlib.suppress(OSError):
                    kill()
        end = time.monotonic() + KILL_SWEEP_SECONDS
        while True:
            self._reap(main)
            if not self._has_children():
                break
            live = [pid for pid, st in self._descendants() if st != b"Z"]
            for pid in live:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > end:
                break
            time.sleep(0.001 if live else 0.005)
        if not self.subreaper and self.cfg.get("pidns") and (os.getppid() == 1 or os.getpid() == 1):
            # without a subreaper escapees re-parent to the namespace's init; in a private pid namespace
            # kill(-1) reaches exactly the sandbox's other processes
            with contextlib.suppress(OSError):
                os.kill(-1, signal.SIGKILL)
        if main is not None and main.returncode is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                main.wait(timeout=KILL_SWEEP_SECONDS)

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
    sys.exit(main())
