"""The local sandbox backend: one long-lived agent per container, in bubblewrap when the machine allows it.

Layout on the host, per container id: `<state_dir>/sandboxes/<container_id>/` holds `workspace/` (the cwd and
HOME, `/workspace` inside), `tmp/` (`/tmp` inside, persistent like the real container's), `files/input/`
(`$INPUT_DIR` = `/files/input`) and `files/output/<16 hex>/` (`$OUTPUT_DIR`, fixed per container and kept in
`meta.json`), plus `agent.log` (the agent's and bwrap's stderr). Files survive `stop()`, backend `close()` and
sandbox restarts; `destroy()` removes them.

Isolation tiers (`isolation=`):

* `"bwrap"`: the agent runs in bubblewrap with new user/pid/net/ipc/uts/cgroup namespaces (only `lo`), a
  read-only /usr and a curated /etc (synthesised passwd/group/hosts, empty resolv.conf, no shadow), a
  read-only root, `--disable-userns`, no capabilities, NoNewPrivs and a seccomp deny-list (see
  `isolation.py`). As root, bwrap itself never runs as root: a short launcher joins the sandbox's cgroups,
  stages the container's directories in a private mount namespace (so the unprivileged bwrap can reach them
  whatever the permissions of `state_dir`'s parents), drops to the dedicated uid (61000 by default) and execs
  bwrap. cgroups (memory+swap, pids, CPU quota) are made under the emulator's own cgroup where writable.
* `"none"`: the agent is a plain host process of the emulator's user with rlimits only (RLIMIT_AS stands in
  for the memory limit). Commands see host paths: `$HOME`, `$INPUT_DIR`, `$OUTPUT_DIR` and `$TMPDIR` point at
  the container's host directories, and the file tools also map `/workspace`, `/files/input` and
  `/files/output/<hex>` onto them and refuse paths outside those directories and /tmp. There is no
  protection of the host at all; the report says so loudly.
* `"auto"`: bwrap when it is installed and actually works here, else none (with a warning in the report).

Background processes: every process a command started is killed when the command returns (see `agent.py`).
If user code kills the agent (`kill -9 -1`), the call returns what had streamed with `return_code` 137 and
`sandbox_restarted=True`; the sandbox is restarted at once and the next call works.

REPL cells (`run_cell`, `resume_cell`, `cancel_cell`, `reset_repl`; see `base.ReplSandbox`) run in the
agent's long-lived Python worker. Its state lives in the sandbox's processes: `stop()` or a restart of the
sandbox loses it, and the next persistent cell reports `interpreter_restarted`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import agent as agent_module
from .agent_client import (
    AgentGone,
    AgentSandbox,
    AgentTimeout,
    CallLimiter,
    Liveness,
    OnFrame,
    encode_frame,
    exchange,
    take_frame,
)
from .base import (
    INPUT_DIR,
    OUTPUT_DIR_PARENT,
    WORKDIR,
    IsolationReport,
    Limits,
    MiB,
    SandboxUnavailable,
)
from .isolation import (
    SELFCHECK_CODE,
    CgroupLayout,
    HostProbe,
    SandboxCgroup,
    build_report,
    memfd_with,
    parse_selfcheck,
    probe_host,
    remove_parent_groups,
    remove_stale_groups,
    usr_layout_args,
)

SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: the uid and gid the sandbox sees for itself (mapped to the dedicated host uid when running as root)
INSIDE_UID = 1000
AGENT_INSIDE = "/opt/ce-agent/agent.py"
SCRATCH_INSIDE = "/run/ce-agent"
DEFAULT_SANDBOX_UID = 61000
START_TIMEOUT_S = 20.0
#: the host waits this long past the agent's own deadline (the agent needs time to kill and drain)
STOP_WAIT_S = 3.0
SHM_BYTES = 64 * MiB
SCRATCH_BYTES = 16 * MiB
_CONTAINER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

#: /etc entries bound read-only when present (what libc, Python, TLS, time zones and common tools read)
ETC_BINDS = (
    "alternatives",
    "bash.bashrc",
    "ca-certificates",
    "ca-certificates.conf",
    "debian_version",
    "fonts",
    "gai.conf",
    "host.conf",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "magic",
    "magic.mime",
    "matplotlibrc",
    "mime.types",
    "os-release",
    "profile",
    "protocols",
    "services",
    "ssl",
    "timezone",
)
ETC_BIND_PREFIXES = ("python3", "java-", "ImageMagick-")

ETC_SYNTHESIZED = {
    "passwd": (
        "root:x:0:0:root:/root:/bin/bash\n"
        f"user:x:{INSIDE_UID}:{INSIDE_UID}:user:{WORKDIR}:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    ),
    "group": f"root:x:0:\nuser:x:{INSIDE_UID}:\nnogroup:x:65534:\n",
    "hostname": "sandbox\n",
    "hosts": "127.0.0.1\tlocalhost\n127.0.1.1\tsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    "resolv.conf": "",
    "nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n"
    "protocols: files\nservices: files\n",
}

#: host directories that may be covered by the staging tmpfs inside the launcher's private mount namespace
_STAGE_CANDIDATES = ("/mnt", "/media", "/srv", "/run", "/opt")

#: Runs as root between fork and bwrap: join cgroups, stage binds in a private mount namespace, drop to the
#: dedicated uid, exec. Kept tiny and stdlib-only; errors end with status 125 and a line in agent.log.
_LAUNCHER = r"""
import ctypes, json, os, sys
cfg = json.loads(sys.argv[1])
def fail(msg):
    sys.stderr.write("ce-launcher: %s\n" % msg)
    sys.stderr.flush()
    os._exit(125)
try:
    for path in cfg["cgroup_procs"]:
        with open(path, "w") as f:
            f.write(str(os.getpid()))
    stage = cfg.get("stage")
    if stage:
        libc = ctypes.CDLL(None, use_errno=True)
        def check(rc, what):
            if rc != 0:
                fail("%s: %s" % (what, os.strerror(ctypes.get_errno())))
        check(libc.unshare(0x00020000), "unshare(CLONE_NEWNS)")
        check(libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None), "make / private")
        # opened in the new namespace (a bind source must be a mount of the caller's namespace) and before
        # the staging tmpfs, which may cover a source
        flags = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
        fds = [(name, os.open(src, flags)) for name, src in stage["binds"]]
        opts = b"mode=0755,size=65536"
        check(libc.mount(b"tmpfs", stage["dir"].encode(), b"tmpfs", 2 | 4, opts), "staging tmpfs")
        for name, fd in fds:
            dst = os.path.join(stage["dir"], name)
            os.mkdir(dst)
            src = ("/proc/self/fd/%d" % fd).encode()
            check(libc.mount(src, dst.encode(), None, 4096 | 0x4000, None), "bind " + name)
            os.close(fd)
    uid = cfg.get("uid")
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    os.execv(cfg["argv"][0], cfg["argv"])
except OSError as e:
    fail(str(e))
"""


class _Conn:
    """Frames to and from one agent over its stdin/stdout, every wait bounded by a deadline."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self._rfd = proc.stdout.fileno()
        self._wfd = proc.stdin.fileno()
        os.set_blocking(self._wfd, False)
        self._buf = bytearray()
        self._rpoll = select.poll()
        self._rpoll.register(self._rfd, select.POLLIN)
        self._wpoll = select.poll()
        self._wpoll.register(self._wfd, select.POLLOUT)

    @staticmethod
    def _remaining_ms(deadline: float) -> int:
        return max(0, int((deadline - time.monotonic()) * 1000))

    def send(self, obj: dict[str, Any], deadline: float) -> None:
        view = memoryview(encode_frame(obj))
        while view:
            try:
                n = os.write(self._wfd, view)
            except BlockingIOError:
                if not self._wpoll.poll(self._remaining_ms(deadline)) and time.monotonic() >= deadline:
                    raise AgentTimeout from None
                continue
            except (BrokenPipeError, ConnectionResetError, ValueError, OSError) as e:
                raise AgentGone(str(e)) from None
            view = view[n:]

    def recv(self, deadline: float) -> dict[str, Any]:
        while True:
            frame = take_frame(self._buf)
            if frame is not None:
                return frame
            if not self._rpoll.poll(self._remaining_ms(deadline)):
                if time.monotonic() >= deadline:
                    raise AgentTimeout
                continue
            try:
                data = os.read(self._rfd, 1 << 20)
            except OSError as e:
                raise AgentGone(str(e)) from None
            if not data:
                raise AgentGone("EOF")
            self._buf += data


class _AgentProcess:
    """One running agent (with its bwrap, when there is one) and the means to end it."""

    def __init__(
        self, proc: subprocess.Popen[bytes], cgroup: SandboxCgroup | None, log_path: Path, *, host_pids: bool
    ) -> None:
        self.proc = proc
        self.conn = _Conn(proc)
        self.cgroup = cgroup
        self.log_path = log_path
        self.info: dict[str, Any] = {}
        self.killed_by_host = False
        #: the agent's pids are host pids (tier none); in a pid namespace they mean nothing on the host
        self._host_pids = host_pids
        #: process group of the command now running (killed from the host if the agent dies, tier none)
        self.command_pgid: int | None = None
        self._ids = 0

    def request(
        self,
        msg: dict[str, Any],
        deadline: float,
        on_frame: Callable[[dict[str, Any]], None] | None = None,
        liveness: Liveness | None = None,
    ) -> dict[str, Any]:
        self._ids += 1

        def watch(frame: dict[str, Any]) -> None:
            if frame.get("type") == "started" and self._host_pids:
                pid = frame.get("pid")
                self.command_pgid = pid if isinstance(pid, int) and pid > 1 else None
            if on_frame is not None:
                on_frame(frame)

        reply = exchange(self.conn, {**msg, "id": self._ids}, deadline, watch, liveness)
        # The agent answered, so it has reaped that group; with pid_max at 32768 the number soon belongs to
        # some other process on the host, which a later kill() must not reach. (When the exchange fails
        # the group may still run, and the caller's kill() is what stops it.)
        self.command_pgid = None
        return reply

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the agent's process group (bwrap takes its whole pid namespace along) and the cgroup."""
        if self.proc.returncode is None:  # not reaped yet, so the pid (and its group) cannot have been reused
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.command_pgid:
            # only reachable in tier none, where commands live in the host's pid namespace
            with contextlib.suppress(OSError):
                os.killpg(self.command_pgid, signal.SIGKILL)
        if self.cgroup is not None:
            self.cgroup.kill_all()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=STOP_WAIT_S)
        self._close_pipes()

    def shutdown(self) -> None:
        """Close the agent's stdin (it kills what is left and exits); kill it if it does not."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.kill()
        if self.cgroup is not None:
            self.cgroup.kill_all()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()

    def log_tail(self, limit: int = 2000) -> str:
        try:
            data = self.log_path.read_bytes()[-limit:]
        except OSError:
            return ""
        return data.decode("utf-8", "replace").strip()


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.lchown(path, uid, gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            with contextlib.suppress(OSError):
                os.lchown(os.path.join(dirpath, name), uid, gid)


def _rmtree(path: Path) -> None:
    def onerror(func: Callable[..., Any], p: str, exc: Any) -> None:
        # a sandbox can leave directories without write/search permission; fix them up and retry
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
            func(p)

    shutil.rmtree(path, onerror=onerror)
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)


class LocalSandbox(AgentSandbox[_AgentProcess]):
    """One container's sandbox. Calls are serialised per sandbox; different sandboxes run in parallel."""

    def __init__(self, backend: LocalBackend, container_id: str, root: Path) -> None:
        self.container_id = container_id
        self._backend = backend
        self._root = root
        self._lock = threading.Lock()
        self._agent: _AgentProcess | None = None
        self._cgroup: SandboxCgroup | None = None
        self._destroyed = False
        self._output_hex = self._load_meta()
        self._init_repl_state()

    # ------------------------------------------------------------------ layout

    @property
    def host_dir(self) -> Path:
        """The container's directory on the host (for tests and diagnostics; never write into it directly)."""
        return self._root

    @property
    def workspace_dir(self) -> Path:
        return self._root / "workspace"

    @property
    def _tmp_dir(self) -> Path:
        return self._root / "tmp"

    @property
    def _input_dir(self) -> Path:
        return self._root / "files" / "input"

    @property
    def _output_host_dir(self) -> Path:
        return self._root / "files" / "output" / self._output_hex

    @property
    def tier(self) -> str:
        return self._backend.tier

    @property
    def output_dir(self) -> str:
        if self.tier == "bwrap":
            return f"{OUTPUT_DIR_PARENT}/{self._output_hex}"
        return str(self._output_host_dir)

    @property
    def input_dir(self) -> str:
        return INPUT_DIR if self.tier == "bwrap" else str(self._input_dir)

    def _load_meta(self) -> str:
        meta = self._root / "meta.json"
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            value = json.loads(meta.read_text())["output_hex"]
            if re.fullmatch(r"[0-9a-f]{16}", value):
                return str(value)
        return secrets.token_hex(8)

    def _prepare_dirs(self) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        os.chmod(self._root, 0o700)
        meta = self._root / "meta.json"
        if not meta.exists():
            meta.write_text(json.dumps({"container_id": self.container_id, "output_hex": self._output_hex}))
        dirs = [
            self.workspace_dir,
            self._tmp_dir,
            self._input_dir,
            self._output_host_dir,
            self._root / "agent",
        ]
        for d in dirs:
            d.mkdir(parents=True, exist_ok=True)
        uid = self._backend._host_uid
        if uid is not None:
            for d in dirs[:4]:
                st = d.stat()
                if st.st_uid != uid or st.st_gid != uid:
                    _chown_tree(d, uid, uid)
        os.chmod(self._tmp_dir, 0o1777)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the agent if it is not running (calls do this on demand)."""
        with self._lock:
            self._ensure_agent()

    def _ensure_agent(self) -> _AgentProcess:
        self._check_usable()
        agent = self._agent
        if agent is not None and agent.alive():
            return agent
        if agent is not None:
            agent.kill()
            self._agent = None
            self._forget_repl()
        self._agent = self._start_agent()
        return self._agent

    def _start_agent(self) -> _AgentProcess:
        backend = self._backend
        self._prepare_dirs()
        if (
            backend.tier == "bwrap"
            and backend._probe_result is not None
            and backend._probe_result.cgroups.usable
        ):
            if self._cgroup is None:
                name = hashlib.sha256(self.container_id.encode()).hexdigest()[:16]
                self._cgroup = SandboxCgroup(
                    backend._probe_result.cgroups, backend._cgroup_parent, name, backend.limits
                )
            self._cgroup.create()
        log_path = self._root / "agent.log"
        fds: list[int] = []
        try:
            if backend.tier == "bwrap":
                argv, config, launcher = self._bwrap_spec(fds)
            else:
                argv, config, launcher = self._none_spec()
            with open(log_path, "wb") as log:
                proc = backend._spawn(argv, launcher, fds, log.fileno())
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        agent = _AgentProcess(proc, self._cgroup, log_path, host_pids=backend.tier == "none")
        try:
            reply = agent.request({"op": "init", "config": config}, time.monotonic() + START_TIMEOUT_S)
        except (AgentGone, AgentTimeout) as e:
            agent.kill()
            detail = agent.log_tail() or (str(e) if str(e) else type(e).__name__)
            raise SandboxUnavailable(f"sandbox {self.container_id} failed to start: {detail}") from None
        if reply.get("type") != "result":
            agent.kill()
            raise SandboxUnavailable(f"sandbox {self.container_id} failed to start: {reply.get('message')}")
        agent.info = reply
        return agent

    def _rlimits(self) -> dict[str, list[int]]:
        lim = self._backend.limits
        rl = {
            "nofile": [lim.open_files, lim.open_files],
            "fsize": [lim.file_size_bytes, lim.file_size_bytes],
            "core": [0, 0],
        }
        if self._cgroup is None or "memory" not in self._cgroup.in_effect:
            rl["as"] = [lim.memory_bytes, lim.memory_bytes]
        return rl

    def _env(self, *, home: str, input_dir: str, output_dir: str, path: str) -> dict[str, str]:
        return {
            "PATH": path,
            "HOME": home,
            "LANG": "C.UTF-8",
            "INPUT_DIR": input_dir,
            "OUTPUT_DIR": output_dir,
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        }

    def _none_spec(self) -> tuple[list[str], dict[str, Any], dict[str, Any] | None]:
        backend = self._backend
        python = backend._none_python
        path = SANDBOX_PATH
        pybin = os.path.dirname(python)
        if pybin not in path.split(":"):
            path = f"{pybin}:{path}"
        ws, inp, out, tmp = (
            str(p) for p in (self.workspace_dir, self._input_dir, self._output_host_dir, self._tmp_dir)
        )
        env = self._env(home=ws, input_dir=inp, output_dir=out, path=path)
        env["TMPDIR"] = tmp
        config = {
            "workdir": ws,
            "input_dir": inp,
            "output_dir": out,
            "scratch_dir": str(self._root / "agent"),
            "env": env,
            "python": python,
            "rlimits": self._rlimits(),
            "parent_death_signal": int(signal.SIGTERM),
            "path_map": [[WORKDIR, ws], [INPUT_DIR, inp], [f"{OUTPUT_DIR_PARENT}/{self._output_hex}", out]],
            "confine_roots": [ws, inp, out, tmp],
            # commands see the host's /tmp in this tier, so the file tools may too, except the emulator's
            # own state (other containers' directories) when it lives there
            "shared_roots": ["/tmp"],
            "shared_exclude": [str(backend.state_dir.resolve())],
            "pidns": False,
        }
        argv = [python, "-I", "-S", str(Path(agent_module.__file__).resolve())]
        return argv, config, None

    def _bwrap_spec(self, fds: list[int]) -> tuple[list[str], dict[str, Any], dict[str, Any] | None]:
        backend = self._backend
        probe = backend._probe_result
        assert probe is not None and probe.bwrap is not None
        python, prefix = backend._bwrap_python
        root_mode = backend._host_uid is not None

        binds: list[tuple[str, Path]] = [
            ("workspace", self.workspace_dir),
            ("tmp", self._tmp_dir),
            ("input", self._input_dir),
            ("output", self._output_host_dir),
        ]
        if prefix is not None:
            binds.append(("python", Path(prefix)))
        stage: dict[str, Any] | None = None
        if root_mode:
            stage_dir = backend._stage_dir
            stage = {"dir": stage_dir, "binds": [[name, str(src)] for name, src in binds]}
            src_of = {name: f"{stage_dir}/{name}" for name, _ in binds}
        else:
            src_of = {name: str(src) for name, src in binds}

        def data_fd(name: str, text: str | bytes) -> str:
            fd = memfd_with(f"ce-{name}", text.encode() if isinstance(text, str) else text)
            fds.append(fd)
            return str(fd)

        out_inside = f"{OUTPUT_DIR_PARENT}/{self._output_hex}"
        path = SANDBOX_PATH if prefix is None else f"{prefix}/bin:{SANDBOX_PATH}"
        args = [
            probe.bwrap,
            "--unshare-all",
            "--unshare-user",
            "--uid",
            str(INSIDE_UID),
            "--gid",
            str(INSIDE_UID),
        ]
        if probe.supports_disable_userns:
            args.append("--disable-userns")
        args += ["--die-with-parent", "--new-session", "--cap-drop", "ALL", "--hostname", "sandbox"]
        args += [
            "--clearenv",
            "--setenv",
            "PATH",
            path,
            "--setenv",
            "HOME",
            WORKDIR,
            "--setenv",
            "LANG",
            "C.UTF-8",
        ]
        args += usr_layout_args()
        args += ["--proc", "/proc", "--dev", "/dev", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm"]
        args += ["--dir", "/etc"]
        etc = Path("/etc")
        for name in ETC_BINDS:
            if (etc / name).exists():
                args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        with contextlib.suppress(OSError):
            for entry in sorted(etc.iterdir()):
                if entry.name.startswith(ETC_BIND_PREFIXES):
                    args += ["--ro-bind", str(entry), str(entry)]
        for name, text in ETC_SYNTHESIZED.items():
            args += ["--perms", "0644", "--ro-bind-data", data_fd(name, text), f"/etc/{name}"]
        args += ["--bind", src_of["workspace"], WORKDIR, "--bind", src_of["tmp"], "/tmp"]
        args += ["--bind", src_of["input"], INPUT_DIR, "--bind", src_of["output"], out_inside]
        args += ["--size", str(SCRATCH_BYTES), "--tmpfs", SCRATCH_INSIDE]
        agent_src = Path(agent_module.__file__).read_bytes()
        args += ["--perms", "0444", "--ro-bind-data", data_fd("agent", agent_src), AGENT_INSIDE]
        if prefix is not None:
            args += ["--ro-bind", src_of["python"], prefix]
        if self._cgroup is not None:
            for key, d in self._cgroup.visible_dirs().items():
                args += ["--ro-bind", str(d), f"/sys/fs/cgroup/{key}".rstrip("/")]
        args += ["--remount-ro", "/", "--chdir", WORKDIR]
        if backend._seccomp_program is not None:
            args += ["--seccomp", data_fd("seccomp", backend._seccomp_program)]
        # bwrap is pid 1 of the sandbox, so its argv (host paths of the state dir) would be readable in
        # /proc/1/cmdline: hand it the options through a memfd instead (`--args FD`: NUL-separated; the
        # command itself cannot go there)
        options = b"".join(arg.encode() + b"\0" for arg in args[1:])
        args = [args[0], "--args", data_fd("args", options), "--", python, "-I", "-S", AGENT_INSIDE]

        config = {
            "workdir": WORKDIR,
            "input_dir": INPUT_DIR,
            "output_dir": out_inside,
            "scratch_dir": SCRATCH_INSIDE,
            "env": self._env(home=WORKDIR, input_dir=INPUT_DIR, output_dir=out_inside, path=path),
            "python": "python3" if prefix is None else python,
            "rlimits": self._rlimits(),
            "parent_death_signal": 0,
            "path_map": [],
            "confine_roots": None,
            "pidns": True,
        }
        cgroup_procs = self._cgroup.procs_files() if self._cgroup is not None else []
        launcher: dict[str, Any] | None = None
        if root_mode or cgroup_procs:
            launcher = {"cgroup_procs": cgroup_procs, "stage": stage, "uid": backend._host_uid, "argv": args}
        return args, config, launcher

    def _restart_after_failure(self, agent: _AgentProcess) -> bool:
        agent.kill()
        if self._agent is agent:
            self._agent = None
        self._forget_repl()
        try:
            self._agent = self._start_agent()
        except SandboxUnavailable:
            return False
        return True

    def stop(self) -> None:
        """Stop every process of the sandbox; files stay and the next call starts it again."""
        agent = self._agent
        if agent is not None and not self._lock.acquire(blocking=False):
            # a call is running: end it from outside, the call then fails with SandboxUnavailable
            agent.killed_by_host = True
            agent.kill()
            self._lock.acquire()
        elif agent is None:
            self._lock.acquire()
        try:
            agent = self._agent
            self._agent = None
            if agent is not None:
                agent.killed_by_host = True
                agent.shutdown()
                self._forget_repl()
            if self._cgroup is not None:
                self._cgroup.remove()
        finally:
            self._lock.release()

    def destroy(self) -> None:
        """Stop the sandbox and delete its files."""
        self.stop()
        with self._lock:
            self._destroyed = True
            if self._root.exists():
                _rmtree(self._root)
        self._backend._forget(self)

    def __enter__(self) -> LocalSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ agent hooks (see agent_client)

    def _limits(self) -> Limits:
        return self._backend.limits

    def _acquire(self) -> _AgentProcess:
        return self._ensure_agent()

    def _live(self) -> _AgentProcess | None:
        agent = self._agent
        return agent if agent is not None and agent.alive() else None

    def _send(
        self,
        handle: _AgentProcess,
        req: dict[str, Any],
        deadline: float,
        on_frame: OnFrame | None = None,
        liveness: Liveness | None = None,
    ) -> dict[str, Any]:
        return handle.request(req, deadline, on_frame, liveness)

    def _oom_count(self, handle: _AgentProcess) -> int | None:
        return self._cgroup.oom_kills() if self._cgroup is not None else None

    def _check_not_stopped(self, handle: _AgentProcess) -> None:
        if handle.killed_by_host:
            raise SandboxUnavailable(f"sandbox {self.container_id} was stopped during the call") from None

    def _lost(self, handle: _AgentProcess, oom_before: int | None) -> tuple[bool, bool]:
        handle.kill()
        oom = self._oom_moved(handle, oom_before)
        return oom, self._restart_after_failure(handle)

    def _recover(self, handle: _AgentProcess) -> bool:
        return self._restart_after_failure(handle)


class _Resources:
    """What a backend must release even if it is never closed (run by its weakref finalizer at exit)."""

    def __init__(
        self, sandboxes: dict[str, LocalSandbox], spawner: ThreadPoolExecutor, cgroup_parent: str
    ) -> None:
        self.sandboxes = sandboxes
        self.spawner = spawner
        self.cgroup_parent = cgroup_parent
        self.cgroup_layout: CgroupLayout | None = None

    def release(self) -> None:
        for sb in list(self.sandboxes.values()):
            with contextlib.suppress(Exception):
                sb.stop()
        self.sandboxes.clear()
        self.spawner.shutdown(wait=False)
        if self.cgroup_layout is not None:
            remove_parent_groups(self.cgroup_layout, self.cgroup_parent)


class LocalBackend:
    """Sandboxes as local processes, in bubblewrap where possible. Close it (or use `with`)."""

    name = "local"

    def __init__(
        self,
        state_dir: Path,
        limits: Limits = Limits(),  # noqa: B008 - frozen dataclass, safe to share
        isolation: str = "auto",
        *,
        sandbox_uid: int = DEFAULT_SANDBOX_UID,
        bwrap: str | None = None,
        sandbox_python: str | None = None,
        selfcheck: bool = True,
    ) -> None:
        if isolation not in ("auto", "bwrap", "none"):
            raise ValueError(f"isolation must be 'auto', 'bwrap' or 'none', not {isolation!r}")
        self.state_dir = Path(state_dir)
        self.limits = limits
        #: concurrent calls over all this backend's sandboxes (`Limits.max_concurrent_calls`)
        self.calls = CallLimiter(limits.max_concurrent_calls)
        self.isolation = isolation
        self._sandbox_uid = sandbox_uid
        self._bwrap = bwrap
        self._sandbox_python = sandbox_python
        self._selfcheck = selfcheck
        self._lock = threading.Lock()
        self._tier_lock = threading.Lock()
        self._sandboxes: dict[str, LocalSandbox] = {}
        self._closed = False
        self._tier: str | None = None
        self._report: IsolationReport | None = None
        self._probe_result: HostProbe | None = None
        self._seccomp_program: bytes | None = None
        self._host_uid: int | None = None
        self._stage_dir = next((d for d in _STAGE_CANDIDATES if os.path.isdir(d)), "/mnt")
        self._cgroup_parent = f"ce-sandbox-{os.getpid()}-{secrets.randbelow(10**9)}"
        self._bwrap_python: tuple[str, str | None] = ("/usr/bin/python3", None)
        self._none_python = sandbox_python or sys.executable
        # agents are spawned from this one long-lived thread: bwrap's --die-with-parent (PR_SET_PDEATHSIG)
        # fires when the *thread* that forked it exits, and request threads (e.g. anyio's pool) come and go
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ce-sandbox-spawn")
        self._resources = _Resources(self._sandboxes, self._spawner, self._cgroup_parent)
        self._finalizer = weakref.finalize(self, self._resources.release)

    # ------------------------------------------------------------------ tier selection

    @property
    def tier(self) -> str:
        """The isolation tier in use ("bwrap" or "none"), probing the machine on first use."""
        self._ensure_tier()
        assert self._tier is not None
        return self._tier

    def _ensure_tier(self) -> None:
        if self._tier is not None:
            return
        with self._tier_lock:
            if self._tier is not None:
                return
            warnings: list[str] = []
            if self.isolation == "none":
                self._set_none(warnings)
                return
            probe = probe_host(self._bwrap, self._sandbox_uid)
            self._probe_result = probe
            if not probe.bwrap_works:
                if self.isolation == "bwrap":
                    raise SandboxUnavailable(f"bubblewrap is not usable here: {probe.bwrap_error}")
                warnings.append(
                    f"bubblewrap not usable ({probe.bwrap_error}); falling back to isolation tier 'none'"
                )
                self._set_none(warnings)
                return
            self._host_uid = probe.sandbox_uid
            self._seccomp_program = probe.seccomp_program
            self._bwrap_python = self._choose_bwrap_python()
            if probe.cgroups.usable:
                remove_stale_groups(probe.cgroups)
                self._resources.cgroup_layout = probe.cgroups
            self._tier = "bwrap"
            try:
                selfcheck, in_effect, problems, host_uid = self._measure()
            except SandboxUnavailable as e:
                if self.isolation == "bwrap":
                    self._tier = None
                    raise
                warnings.append(
                    f"bubblewrap sandbox failed to start ({e}); falling back to isolation tier 'none'"
                )
                self._set_none(warnings)
                return
            self._report = build_report(
                "bwrap",
                probe,
                selfcheck=selfcheck,
                cgroups_in_effect=in_effect,
                cgroup_problems=[*probe.cgroups.problems, *problems],
                limits=self.limits,
                seccomp_used=self._seccomp_program is not None,
                host_uid=host_uid,
                extra_warnings=warnings,
            )

    def _set_none(self, warnings: list[str]) -> None:
        self._host_uid = None
        self._tier = "none"
        self._report = build_report(
            "none", self._probe_result, selfcheck=None, limits=self.limits, extra_warnings=warnings
        )

    def _choose_bwrap_python(self) -> tuple[str, str | None]:
        """(interpreter, prefix to bind or None): Debian's /usr python when present, else the emulator's."""
        candidate = self._sandbox_python
        if candidate is None:
            for p in ("/usr/bin/python3", "/usr/local/bin/python3"):
                if os.access(p, os.X_OK):
                    return p, None
            candidate = sys.executable
        real = os.path.realpath(candidate)
        if real.startswith("/usr/"):
            return real, None
        prefix = os.path.realpath(
            sys.base_prefix if os.path.realpath(sys.executable) == real else Path(real).parent.parent
        )
        return real, prefix

    def _measure(self) -> tuple[dict[str, Any] | None, set[str], list[str], int | None]:
        """Start a throwaway sandbox the normal way and run the self-check inside it."""
        root = self.state_dir / "sandboxes" / f".probe-{os.getpid()}-{secrets.token_hex(4)}"
        sb = LocalSandbox(self, f"probe-{secrets.token_hex(4)}", root)
        try:
            sb.start()
            in_effect = set(sb._cgroup.in_effect) if sb._cgroup is not None else set()
            problems = list(sb._cgroup.problems) if sb._cgroup is not None else []
            sb.create("uid-probe", "")
            host_uid = (sb.workspace_dir / "uid-probe").stat().st_uid
            if not self._selfcheck:
                return None, in_effect, problems, host_uid
            result = sb.run_python(SELFCHECK_CODE, timeout_s=30)
            data = parse_selfcheck(result.stdout)
            if data is None:
                raise SandboxUnavailable(f"the sandbox self-check failed: {result.stderr.strip()[-500:]}")
            return data, in_effect, problems, host_uid
        finally:
            with contextlib.suppress(Exception):
                sb.stop()
            with contextlib.suppress(OSError):
                _rmtree(root)

    # ------------------------------------------------------------------ sandboxes

    def _spawn(
        self, argv: list[str], launcher: dict[str, Any] | None, fds: list[int], log_fd: int
    ) -> subprocess.Popen[bytes]:
        if launcher is not None:
            argv = [sys.executable, "-I", "-S", "-c", _LAUNCHER, json.dumps(launcher)]

        def spawn() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_fd,
                pass_fds=tuple(fds),
                start_new_session=True,
                cwd="/",
                env={"PATH": SANDBOX_PATH},
            )

        try:
            return self._spawner.submit(spawn).result()
        except (OSError, RuntimeError) as e:
            raise SandboxUnavailable(f"could not start the sandbox: {e}") from e

    def open(self, container_id: str) -> LocalSandbox:
        """The sandbox for this container id, started (its files are re-attached if it existed before)."""
        if not isinstance(container_id, str) or not _CONTAINER_ID.match(container_id):
            raise ValueError(f"invalid container id {container_id!r}")
        self._ensure_tier()
        with self._lock:
            if self._closed:
                raise SandboxUnavailable("the sandbox backend is closed")
            sb = self._sandboxes.get(container_id)
            if sb is None:
                sb = LocalSandbox(self, container_id, self.state_dir / "sandboxes" / container_id)
                self._sandboxes[container_id] = sb
        # Start it now unless a call holds it (its agent runs then): waiting here would queue the caller
        # behind that call, past `Limits.max_concurrent_calls`, instead of letting its own call fail fast.
        if sb._lock.acquire(blocking=False):
            try:
                sb._ensure_agent()
            finally:
                sb._lock.release()
        return sb

    def _forget(self, sb: LocalSandbox) -> None:
        with self._lock:
            if self._sandboxes.get(sb.container_id) is sb:
                del self._sandboxes[sb.container_id]

    def report(self) -> IsolationReport:
        self._ensure_tier()
        assert self._report is not None
        return self._report

    def close(self) -> None:
        """Stop every sandbox this backend started; files stay."""
        with self._lock:
            self._closed = True
        self._finalizer()

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
