"""The Docker sandbox backend: one hardened, long-lived container per API container id, driven by the agent.

docker-py talks to the engine at `DOCKER_HOST` (default: the local socket). Each sandbox is a container of
the documented image (`emulator/image`, tag = hash of the recipe) whose main process is `sleep infinity`
under the engine's init, as root without any capability; commands, Python and the text editor's operations
run through one `agent.py` per container (uid 1000, the same file and protocol as the local backend), spoken
to over one hijacked exec stream (`docker_agent.py`), so a warm call costs a frame round trip, not a
`docker exec`.

Hardening (all measured by a self-check when the backend starts, see `../shared/sandbox-notes.md` §8):
`network_mode none`, memory = memory+swap = 5 GiB, 1 CPU (CFS quota, plus a cpuset of one core), a pids limit,
`cap_drop ALL`, `no-new-privileges`, a seccomp profile that also denies AF_VSOCK/AF_ALG/AF_PACKET, io_uring
and ptrace (`docker_seccomp.py`), a read-only root filesystem, user code as uid 1000, a small tmpfs `/tmp`
that lives as long as the container, nofile/fsize/core rlimits, no logging driver, and a workspace on a
loop-mounted ext4 image with a real 5 GiB cap that is not charged to RAM (`docker_workspace.py`; named
volumes without a cap where loop mounts are impossible, with a warning). A guarantee that does not hold makes
the backend refuse (every call answers `unavailable`) unless `strict=False`, which only warns.

Lifecycle: containers are labelled (`ce-emulator=1`, owner process, creation and expiry times); at start the
backend removes expired containers and those of emulator processes that died without cleaning up. A small
warm pool of started containers (agent running) hides the container start from the first tool call of a new
API container. `stop()` removes a sandbox's container and keeps its files; `destroy()` removes both.

Outcomes: the agent's deadline gives `timed_out` (engine: `execution_time_exceeded`); an unreachable engine,
a missing image or a refused self-check raise `SandboxUnavailable` (engine: `unavailable`); an OOM kill is
read from the container's memory cgroup counter (`oom_killed`), never guessed from exit 137. Every process a
command started is killed when it returns, as in the local backend; if user code kills the agent itself
(`kill -9 -1`), the call returns 137 with `sandbox_restarted` and the next call gets a fresh agent.

REPL cells (`base.ReplSandbox`) and chunked file transfers (`base.StreamingFiles`) are the local backend's,
from `agent_client.AgentSandbox`: the cell's interpreter is the agent's worker inside the container, so its
state is lost when the container is stopped or replaced or the agent is restarted, and the next persistent
cell reports `interpreter_restarted`.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import os
import re
import secrets
import socket
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .agent_client import (
    HOST_GRACE_S,
    AgentGone,
    AgentSandbox,
    AgentTimeout,
    CallLimiter,
    Liveness,
    OnFrame,
    decode,
)
from .base import (
    INPUT_DIR,
    OUTPUT_DIR_PARENT,
    WORKDIR,
    IsolationCheck,
    IsolationReport,
    Limits,
    MiB,
    SandboxUnavailable,
)
from .docker_agent import AgentSession, start_agent
from .docker_seccomp import profile_json
from .docker_workspace import LoopWorkspace, VolumeWorkspace, Workspace, loop_supported, unmount_stale

LABEL = "ce-emulator"
USER = "1000:1000"
SANDBOX_PATH = "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SCRATCH_INSIDE = "/run/ce-agent"
SCRATCH_BYTES = 16 * MiB
SHM_BYTES = 64 * MiB
#: API containers can be reused for 30 days after creation
EXPIRY_S = 30 * 24 * 3600
START_TIMEOUT_S = 30.0
EXEC_TIMEOUT_S = 20.0
REAP_EVERY_S = 600.0
#: a container start costs ~0.2 s of engine CPU on 2 cores: the refill waits this long after a take so it
#: does not compete with the first calls of the container just handed out
REFILL_DELAY_S = 1.0
_CONTAINER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

#: Runs through the agent at start-up (as user code would) and prints one JSON object. Only creates
#: sockets (never connects) and attempts calls the profile must refuse.
SELFCHECK_CODE = r"""
import ctypes, errno, json, os, resource, socket
out = {}
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
def errno_of(fn):
    try:
        fn()
    except OSError as e:
        return e.errno
    return 0
def read(*paths):
    for p in paths:
        try:
            return open(p).read().strip()
        except OSError:
            pass
    return None
out["uid"] = os.getuid()
out["no_new_privs"] = status("NoNewPrivs")
out["seccomp"] = status("Seccomp")
out["cap_eff"] = status("CapEff")
out["cap_bnd"] = status("CapBnd")
out["interfaces"] = sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:])
def vsock():
    socket.socket(40, socket.SOCK_STREAM).close()
out["vsock_errno"] = errno_of(vsock)
libc = ctypes.CDLL(None, use_errno=True)
def sys_errno(nr, *args):
    rc = libc.syscall(nr, *args)
    return 0 if rc == 0 else ctypes.get_errno()
out["unshare_user_errno"] = sys_errno(272, 0x10000000)
out["bpf_errno"] = sys_errno(321, 0, 0, 0)
out["io_uring_errno"] = sys_errno(425, 1, 0)
def touch(p):
    open(p, "x").close()
    os.unlink(p)
out["usr_write_errno"] = errno_of(lambda: touch("/usr/.ce-selfcheck"))
out["root_write_errno"] = errno_of(lambda: touch("/.ce-selfcheck"))
out["shadow_errno"] = errno_of(lambda: open("/etc/shadow").close())
out["docker_socket"] = [p for p in ("/var/run/docker.sock", "/run/docker.sock") if os.path.exists(p)]
out["nameservers"] = [l.split()[1] for l in (read("/etc/resolv.conf") or "").splitlines()
                      if l.startswith("nameserver") and len(l.split()) > 1]
out["memory_limit"] = read("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max")
out["memsw_limit"] = read("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
out["swap_max"] = read("/sys/fs/cgroup/memory.swap.max")
out["pids_max"] = read("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max")
quota = read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us")
period = read("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us")
cpu_max = read("/sys/fs/cgroup/cpu.max")
if quota and period and int(quota) > 0:
    out["cpus"] = int(quota) / int(period)
elif cpu_max and cpu_max.split()[0] != "max":
    q, p = cpu_max.split()
    out["cpus"] = int(q) / int(p)
else:
    out["cpus"] = None
oom_files = ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events")
out["oom_file"] = next((p for p in oom_files if os.path.exists(p)), None)
def fs(path):
    st = os.statvfs(path)
    return [st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize]
out["tmp_fs"] = fs("/tmp")
out["workspace_fs"] = fs("/workspace")
out["files_fs"] = fs("/files")
out["hostname"] = socket.gethostname()
out["nofile"] = resource.getrlimit(resource.RLIMIT_NOFILE)
print(json.dumps(out))
"""


def _owner_starttime(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return raw[raw.rfind(b")") + 2 :].split()[19].decode()


def _owner_tag() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_owner_starttime(os.getpid()) or 0}"


def _owner_dead(owner: str) -> bool:
    """True when `owner` names a process of this host that no longer exists (pid reuse is caught by the
    process start time). Owners on other hosts are never judged dead: only expiry removes those."""
    host, _, rest = owner.partition(":")
    pid_s, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_s.isdigit():
        return False
    return _owner_starttime(int(pid_s)) != start


@dataclass
class _Slot:
    """A started container with its workspace and running agent."""

    container: str  # engine id
    name: str
    token: str
    output_hex: str
    workspace: Workspace
    agent: AgentSession | None = None
    oom_file: Path | None = None
    in_container_oom_file: str | None = None
    created: float = field(default_factory=time.time)


class DockerSandbox(AgentSandbox[_Slot]):
    """One API container's sandbox. Calls are serialised per sandbox; different sandboxes run in parallel."""

    def __init__(self, backend: DockerBackend, container_id: str) -> None:
        self.container_id = container_id
        self._backend = backend
        self._lock = threading.Lock()
        self._slot: _Slot | None = None
        self._destroyed = False
        self._meta_dir = backend.state_dir / "docker" / "sandboxes" / container_id
        self._init_repl_state()

    # ------------------------------------------------------------------ layout

    @property
    def output_dir(self) -> str:
        meta = self._load_meta()
        hex_ = self._slot.output_hex if self._slot else (meta or {}).get("output_hex", "")
        return f"{OUTPUT_DIR_PARENT}/{hex_}"

    @property
    def input_dir(self) -> str:
        return INPUT_DIR

    @property
    def engine_container(self) -> str | None:
        """The engine's id of the container now serving this sandbox (for tests and diagnostics)."""
        return self._slot.container if self._slot else None

    @property
    def workspace(self) -> Workspace | None:
        return self._slot.workspace if self._slot else None

    def _load_meta(self) -> dict[str, Any] | None:
        try:
            meta = json.loads((self._meta_dir / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        if isinstance(meta, dict) and re.fullmatch(r"[0-9a-f]{16}", str(meta.get("token", ""))):
            return meta
        return None

    def _save_meta(self, slot: _Slot) -> None:
        self._meta_dir.mkdir(parents=True, exist_ok=True)
        meta = {
            "container_id": self.container_id,
            "token": slot.token,
            "output_hex": slot.output_hex,
            "workspace": slot.workspace.kind,
        }
        tmp = self._meta_dir / "meta.json.tmp"
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, self._meta_dir / "meta.json")

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Attach a running container (from the pool, or re-created over this sandbox's files)."""
        with self._lock:
            self._ensure()

    def _ensure(self) -> _Slot:
        self._check_usable()
        slot = self._slot
        if slot is not None and slot.agent is not None and not slot.agent.dead:
            if not slot.agent.stream.peer_closed():
                return slot
            slot.agent.dead = True
        backend = self._backend
        backend.ready()
        if slot is not None:
            self._forget_repl()
            # the agent (or its container) died between calls: a fresh agent, in a fresh container if needed,
            # before the call runs
            if not backend._recover(self, slot) or self._slot is None:
                raise SandboxUnavailable(f"sandbox {self.container_id} could not be restarted")
            return self._slot
        meta = self._load_meta()
        if meta is not None:
            slot = backend._create_slot(token=meta["token"], output_hex=meta["output_hex"])
        else:
            slot = backend._take_pooled() or backend._create_slot()
            self._save_meta(slot)
        self._slot = slot
        return slot

    def stop(self) -> None:
        """Remove the container (every process ends); files stay and the next call starts a new one."""
        with self._lock:
            slot, self._slot = self._slot, None
            if slot is not None:
                self._forget_repl()
                self._backend._discard(slot, delete_files=False)

    def destroy(self) -> None:
        """Remove the container and its files."""
        with self._lock:
            slot, self._slot = self._slot, None
            self._destroyed = True
            backend = self._backend
            if slot is not None:
                backend._discard(slot, delete_files=True)
            else:
                meta = self._load_meta()
                if meta is not None and backend._client is not None:
                    backend._workspace_for(meta["token"]).delete()
            with contextlib.suppress(OSError):
                for f in self._meta_dir.iterdir():
                    f.unlink()
                self._meta_dir.rmdir()
        self._backend._forget(self)

    def __enter__(self) -> DockerSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ agent hooks (see agent_client)

    def _limits(self) -> Limits:
        return self._backend.limits

    def _acquire(self) -> _Slot:
        slot = self._ensure()
        assert slot.agent is not None
        return slot

    def _live(self) -> _Slot | None:
        slot = self._slot
        if slot is None or slot.agent is None or slot.agent.dead or slot.agent.stream.peer_closed():
            return None
        return slot

    def _send(
        self,
        handle: _Slot,
        req: dict[str, Any],
        deadline: float,
        on_frame: OnFrame | None = None,
        liveness: Liveness | None = None,
    ) -> dict[str, Any]:
        assert handle.agent is not None
        return handle.agent.request(req, deadline, on_frame, liveness)

    def _oom_count(self, handle: _Slot) -> int | None:
        return self._backend._oom_count(handle)

    def _lost(self, handle: _Slot, oom_before: int | None) -> tuple[bool, bool]:
        restarted = self._recover(handle)
        # the counter is read where the sandbox now runs: a replaced container starts from zero
        new_slot = self._slot
        oom = self._oom_moved(new_slot, oom_before) if new_slot is not None else False
        return oom, restarted

    def _recover(self, handle: _Slot) -> bool:
        self._forget_repl()
        return self._backend._recover(self, handle)


class _Resources:
    """What a backend must release even if it is never closed (its weakref finalizer runs at exit, or when
    the backend is collected): the containers it made and their workspace mounts."""

    def __init__(self) -> None:
        self.backend_ref: Callable[[], DockerBackend | None] = lambda: None
        #: engine id -> workspace of every container this backend made and has not removed
        self.live: dict[str, Workspace] = {}
        self.client: Any = None

    def release(self) -> None:
        backend = self.backend_ref()
        if backend is not None:
            backend._shutdown()
            return
        for container, workspace in list(self.live.items()):
            with contextlib.suppress(Exception):
                self.client.api.remove_container(container, force=True)
            with contextlib.suppress(Exception):
                workspace.release()
        self.live.clear()


class DockerBackend:
    """Sandboxes as hardened Docker containers. Close it (or use `with`)."""

    name = "docker"

    def __init__(
        self,
        state_dir: Path,
        limits: Limits = Limits(),  # noqa: B008 - frozen dataclass, safe to share
        isolation: str = "auto",
        *,
        image: str | None = None,
        pool_size: int = 1,
        strict: bool = True,
        selfcheck: bool = True,
        workspace: str = "auto",
        cpuset: bool = True,
        client: Any = None,
    ) -> None:
        """`isolation` is the local backend's setting and is ignored here (a container is one tier).

        `image` defaults to the tag of the current recipe (`code-execution-emulator image build` makes it);
        `pool_size` started containers wait for new API containers (0 disables the pool); `strict=False`
        turns a failed start-up guarantee into a warning instead of a refusal; `workspace` is "auto" (a
        loop-mounted ext4 image when possible, else named volumes), "loop" or "volume"; `cpuset` pins each
        container to one core (round robin) so `nproc` says 1.
        """
        del isolation
        if workspace not in ("auto", "loop", "volume"):
            raise ValueError(f"workspace must be 'auto', 'loop' or 'volume', not {workspace!r}")
        if pool_size < 0:
            raise ValueError("pool_size must be >= 0")
        self.state_dir = Path(state_dir)
        self.limits = limits
        #: concurrent calls over all this backend's sandboxes (`Limits.max_concurrent_calls`)
        self.calls = CallLimiter(limits.max_concurrent_calls)
        self._image = image
        self.pool_size = pool_size
        self.strict = strict
        self._selfcheck = selfcheck
        self._workspace_mode = workspace
        self._cpuset = cpuset
        self._client = client
        self._owner = _owner_tag()
        self._lock = threading.Lock()
        self._ready_lock = threading.Lock()
        self._sandboxes: dict[str, DockerSandbox] = {}
        self._closed = False
        self._ready = False
        self._refusal: str | None = None
        self._report: IsolationReport | None = None
        self._warnings: list[str] = []
        self._workspace_kind = "loop"
        self._cpus: list[str] = []
        self._next_cpu = 0
        self._pool: list[_Slot] = []
        self._pool_cond = threading.Condition()
        self._pool_thread: threading.Thread | None = None
        self._pool_error: str | None = None
        self._last_take = 0.0
        self._seccomp = profile_json()
        self._in_container_oom_file: str | None = None
        self._resources = _Resources()
        self._resources.backend_ref = weakref.ref(self)
        self._live = self._resources.live
        self._resources.client = client
        self._finalizer = weakref.finalize(self, self._resources.release)

    # ------------------------------------------------------------------ engine

    @property
    def image(self) -> str:
        if self._image is None:
            from emulator.image.recipe import image_tag

            self._image = image_tag()
        return self._image

    @property
    def client(self) -> Any:
        """The docker-py client (connecting on first use). Raises SandboxUnavailable if there is no engine."""
        if self._client is None:
            try:
                import docker

                self._client = docker.from_env(timeout=int(START_TIMEOUT_S * 2))
                self._resources.client = self._client
            except Exception as e:
                raise SandboxUnavailable(f"Docker engine unreachable ({_engine_address()}): {e}") from e
        return self._client

    def ping(self) -> None:
        try:
            self.client.ping()
        except SandboxUnavailable:
            raise
        except Exception as e:
            raise SandboxUnavailable(f"Docker engine unreachable ({_engine_address()}): {e}") from e

    def ready(self) -> None:
        """Connect, check the image, collect leftovers, run the self-check and start the pool (once).

        Raises SandboxUnavailable when the engine does not answer, the image is missing, or (strict) a
        guarantee does not hold."""
        if self._ready:
            if self._refusal:
                raise SandboxUnavailable(self._refusal)
            return
        with self._ready_lock:
            if self._closed:
                raise SandboxUnavailable("the sandbox backend is closed")
            if self._ready:
                if self._refusal:
                    raise SandboxUnavailable(self._refusal)
                return
            self.ping()
            import docker.errors

            try:
                self.client.images.get(self.image)
            except docker.errors.ImageNotFound:
                raise SandboxUnavailable(
                    f"sandbox image {self.image} not found: run `code-execution-emulator image build`"
                ) from None
            except docker.errors.APIError as e:
                raise SandboxUnavailable(f"Docker engine error: {e}") from e
            self._choose_workspace()
            self._choose_cpus()
            self.reap()
            first: _Slot | None = None
            if self._selfcheck:
                first = self._create_slot()
                try:
                    self._report = self._measure(first)
                except SandboxUnavailable as e:
                    self._discard(first, delete_files=True)
                    self._refusal = f"the Docker sandbox self-check failed: {e}"
                    self._report = self._unmeasured_report([self._refusal])
                    self._ready = True
                    raise
            else:
                self._report = self._unmeasured_report(["the start-up self-check is disabled"])
            failed = [c for c in self._report.checks if not c.in_effect and c.name in _GUARANTEES]
            if failed and self.strict:
                self._refusal = "refusing the Docker sandbox: " + "; ".join(
                    f"{c.name} not in effect ({c.detail})" for c in failed
                )
                if first is not None:
                    self._discard(first, delete_files=True)
                self._report = IsolationReport(
                    self._report.backend, self._report.checks, (*self._report.warnings, self._refusal)
                )
                self._ready = True
                raise SandboxUnavailable(self._refusal)
            if first is not None:
                with self._pool_cond:
                    self._pool.append(first)
            self._ready = True
            self._start_pool()

    def _choose_workspace(self) -> None:
        mode = self._workspace_mode
        ok, why = loop_supported()
        local = _engine_is_local()
        if mode == "loop" and not (ok and local):
            raise SandboxUnavailable(f"loop-mounted workspaces unavailable: {why or 'the engine is remote'}")
        if mode == "volume" or (mode == "auto" and not (ok and local)):
            self._workspace_kind = "volume"
            if mode == "auto":
                self._warnings.append(
                    "workspace on named volumes without a size cap "
                    f"({why or 'the engine is not local'}): loop-mounted ext4 images need root, loop "
                    "devices and a local engine"
                )
        else:
            self._workspace_kind = "loop"

    def _choose_cpus(self) -> None:
        if not self._cpuset:
            return
        try:
            ncpu = int(self.client.info().get("NCPU") or 0)
        except Exception:
            ncpu = 0
        self._cpus = [str(i) for i in range(ncpu)] if ncpu > 1 else []

    # ------------------------------------------------------------------ containers

    def _workspace_for(self, token: str) -> Workspace:
        if self._workspace_kind == "loop":
            return LoopWorkspace.for_token(
                self.state_dir / "docker" / "workspaces", token, self.limits.disk_bytes
            )
        labels = {LABEL: "1", "ce.owner": self._owner, "ce.state_dir": str(self.state_dir.resolve())}
        return VolumeWorkspace(self.client, token, labels)

    def _labels(self, token: str, workspace: Workspace) -> dict[str, str]:
        now = int(time.time())
        return {
            LABEL: "1",
            "ce.owner": self._owner,
            "ce.created_at": str(now),
            "ce.expires_at": str(now + EXPIRY_S),
            "ce.token": token,
            "ce.workspace": workspace.label(),
            "ce.workspace_kind": workspace.kind,
            "ce.state_dir": str(self.state_dir.resolve()),
        }

    def _resolv_conf(self) -> dict[str, dict[str, str]]:
        """An empty resolv.conf over the engine's copy of the host's (which names the host resolver)."""
        if self._workspace_kind != "loop":
            return {}
        path = self.state_dir / "docker" / "resolv.conf"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")
        return {str(path): {"bind": "/etc/resolv.conf", "mode": "ro"}}

    def _host_config(self, workspace: Workspace) -> Any:
        import docker.types

        lim = self.limits
        binds = {**workspace.binds(), **self._resolv_conf()}
        kwargs: dict[str, Any] = {}
        if self._cpus:
            with self._lock:
                kwargs["cpuset_cpus"] = self._cpus[self._next_cpu % len(self._cpus)]
                self._next_cpu += 1
        return self.client.api.create_host_config(
            binds=binds,
            init=True,
            network_mode="none",
            mem_limit=lim.memory_bytes,
            memswap_limit=lim.memory_bytes,
            nano_cpus=int(lim.cpus * 1_000_000_000),
            pids_limit=lim.pids,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges", "seccomp=" + self._seccomp],
            read_only=True,
            tmpfs={
                "/tmp": f"rw,exec,nosuid,nodev,size={lim.tmp_bytes},mode=1777",
                SCRATCH_INSIDE: f"rw,noexec,nosuid,nodev,size={SCRATCH_BYTES},mode=0700,uid=1000,gid=1000",
            },
            shm_size=SHM_BYTES,
            ulimits=[
                docker.types.Ulimit(name="nofile", soft=lim.open_files, hard=lim.open_files),
                docker.types.Ulimit(name="fsize", soft=lim.file_size_bytes, hard=lim.file_size_bytes),
                docker.types.Ulimit(name="core", soft=0, hard=0),
            ],
            log_config=docker.types.LogConfig(type="none"),
            ipc_mode="private",
            **kwargs,
        )

    def _agent_config(self, output_hex: str) -> dict[str, Any]:
        lim = self.limits
        out_inside = f"{OUTPUT_DIR_PARENT}/{output_hex}"
        return {
            "workdir": WORKDIR,
            "input_dir": INPUT_DIR,
            "output_dir": out_inside,
            "scratch_dir": SCRATCH_INSIDE,
            "env": {
                "PATH": SANDBOX_PATH,
                "HOME": WORKDIR,
                "LANG": "C.UTF-8",
                "INPUT_DIR": INPUT_DIR,
                "OUTPUT_DIR": out_inside,
                "OMP_NUM_THREADS": "1",
                "OPENBLAS_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1",
                "PYTHONUNBUFFERED": "1",
                "HOSTNAME": "sandbox",
                "USER": "user",
            },
            "python": "python3",
            # nofile/fsize/core are the container's ulimits already; the agent re-applies them for clarity
            "rlimits": {
                "nofile": [lim.open_files, lim.open_files],
                "fsize": [lim.file_size_bytes, lim.file_size_bytes],
                "core": [0, 0],
            },
            "parent_death_signal": 0,
            "path_map": [],
            "confine_roots": None,
            "pidns": True,
        }

    def _create_slot(self, token: str | None = None, output_hex: str | None = None) -> _Slot:
        """Create and start a container over the workspace `token` (new if None), with its agent running."""
        import docker.errors

        fresh = token is None
        token = token or secrets.token_hex(8)
        output_hex = output_hex or secrets.token_hex(8)
        workspace = self._workspace_for(token)
        name = f"ce-{token}-{secrets.token_hex(3)}"
        container: str | None = None
        try:
            workspace.ensure()
            created = self.client.api.create_container(
                self.image,
                command=["sleep", "infinity"],
                user="0:0",
                hostname="sandbox",
                working_dir=WORKDIR,
                environment={"PATH": SANDBOX_PATH, "HOME": WORKDIR, "LANG": "C.UTF-8"},
                labels=self._labels(token, workspace),
                name=name,
                network_disabled=False,
                host_config=self._host_config(workspace),
            )
            container = str(created["Id"])
            with self._lock:
                self._live[container] = workspace
            self.client.api.start(container)
            slot = _Slot(container, name, token, output_hex, workspace)
            slot.oom_file = _host_oom_file(container)
            self._start_agent(slot)
            return slot
        except (docker.errors.DockerException, AgentGone, AgentTimeout, OSError, RuntimeError) as e:
            if container is not None:
                self._remove_container(container)
            with contextlib.suppress(Exception):
                if fresh:
                    workspace.delete()
                else:
                    workspace.release()
            raise SandboxUnavailable(f"could not start a sandbox container: {e}") from e

    def _start_agent(self, slot: _Slot) -> None:
        slot.agent = start_agent(
            self.client.api,
            slot.container,
            self._agent_config(slot.output_hex),
            user=USER,
            env={"PATH": SANDBOX_PATH, "LANG": "C.UTF-8"},
            deadline=time.monotonic() + START_TIMEOUT_S,
        )
        if slot.oom_file is None:
            slot.in_container_oom_file = self._in_container_oom_file or _IN_CONTAINER_OOM_FILE

    def _remove_container(self, container: str) -> None:
        import docker.errors

        with contextlib.suppress(docker.errors.DockerException, OSError):
            self.client.api.remove_container(container, force=True, v=False)
        with self._lock:
            self._live.pop(container, None)

    def _discard(self, slot: _Slot, *, delete_files: bool) -> None:
        if slot.agent is not None:
            slot.agent.close()
        self._remove_container(slot.container)
        with contextlib.suppress(Exception):
            if delete_files:
                slot.workspace.delete()
            else:
                slot.workspace.release()

    def _exec(self, container: str, argv: list[str], user: str = USER) -> int | None:
        """A one-off `docker exec` (rare paths only: resets). Returns its exit code, None if it failed."""
        import docker.errors

        try:
            ex = self.client.api.exec_create(container, argv, user=user, stdout=True, stderr=True)
            self.client.api.exec_start(ex["Id"])
            return int(self.client.api.exec_inspect(ex["Id"]).get("ExitCode") or 0)
        except (docker.errors.DockerException, OSError):
            return None

    def _container_running(self, container: str) -> bool:
        import docker.errors

        try:
            state = self.client.api.inspect_container(container).get("State", {})
        except (docker.errors.DockerException, OSError):
            return False
        return bool(state.get("Running"))

    def _revive(self, slot: _Slot) -> None:
        """A fresh agent in `slot`'s container after every uid-1000 process is gone (raises Unavailable)."""
        if slot.agent is not None:
            slot.agent.close()
            slot.agent = None
        # whatever the dead agent left (re-parented to the container's init) goes first: one exec, as uid
        # 1000, can only reach the sandbox user's processes
        self._exec(slot.container, ["python3", "-I", "-S", "-c", _KILL_ALL])
        try:
            self._start_agent(slot)
        except (AgentGone, AgentTimeout, OSError) as e:
            raise SandboxUnavailable(f"could not restart the sandbox agent: {e}") from e
        except Exception as e:
            import docker.errors

            if isinstance(e, docker.errors.DockerException):
                raise SandboxUnavailable(f"could not restart the sandbox agent: {e}") from e
            raise

    def _recover(self, sandbox: DockerSandbox, slot: _Slot) -> bool:
        """After the agent died or stopped answering: a fresh agent, in a fresh container if needed."""
        if slot.agent is not None:
            slot.agent.close()
        try:
            if self._container_running(slot.container):
                try:
                    self._revive(slot)
                    return True
                except SandboxUnavailable:
                    pass  # e.g. the pids limit is still exhausted: replace the container below
            self._discard(slot, delete_files=False)
            sandbox._slot = None
            sandbox._slot = self._create_slot(token=slot.token, output_hex=slot.output_hex)
            return True
        except SandboxUnavailable:
            sandbox._slot = None
            return False

    # ------------------------------------------------------------------ OOM

    def _oom_count(self, slot: _Slot) -> int | None:
        if slot.oom_file is not None:
            return _read_oom(slot.oom_file.read_text) if slot.oom_file.exists() else None
        path = slot.in_container_oom_file
        if path is None or slot.agent is None or slot.agent.dead:
            return None
        try:
            reply = slot.agent.request({"op": "read_file", "path": path}, time.monotonic() + 10)
        except (AgentGone, AgentTimeout):
            return None
        if reply.get("type") != "result":
            return None
        return _read_oom(lambda: base64.b64decode(reply["data"]).decode())

    # ------------------------------------------------------------------ pool

    def _take_pooled(self) -> _Slot | None:
        with self._pool_cond:
            while self._pool:
                slot = self._pool.pop(0)
                self._last_take = time.monotonic()
                self._pool_cond.notify_all()
                if slot.agent is not None and not slot.agent.dead:
                    return slot
                self._discard(slot, delete_files=True)
        return None

    def _start_pool(self) -> None:
        if self.pool_size <= 0 or self._pool_thread is not None:
            return
        self._pool_thread = threading.Thread(target=self._pool_loop, name="ce-docker-pool", daemon=True)
        self._pool_thread.start()

    def _pool_loop(self) -> None:
        backoff = 1.0
        last_reap = time.monotonic()
        while True:
            with self._pool_cond:
                while not self._closed and len(self._pool) >= self.pool_size:
                    self._pool_cond.wait(timeout=REAP_EVERY_S)
                    if time.monotonic() - last_reap > REAP_EVERY_S:
                        break
                if self._closed:
                    return
            if time.monotonic() - last_reap > REAP_EVERY_S:
                with contextlib.suppress(Exception):
                    self.reap()
                last_reap = time.monotonic()
                continue
            pause = self._last_take + REFILL_DELAY_S - time.monotonic()
            if pause > 0:
                with self._pool_cond:
                    self._pool_cond.wait(timeout=pause)
                continue
            try:
                slot = self._create_slot()
                self._warm(slot)
            except SandboxUnavailable as e:
                self._pool_error = str(e)
                with self._pool_cond:
                    self._pool_cond.wait(timeout=backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 1.0
            self._pool_error = None
            with self._pool_cond:
                if self._closed:
                    closing = True
                else:
                    closing = False
                    self._pool.append(slot)
            if closing:
                self._discard(slot, delete_files=True)
                return

    def _warm(self, slot: _Slot) -> None:
        """One throwaway command, so the first real call does not pay for cold caches in the new container."""
        if slot.agent is None:
            return
        req = {"op": "run", "command": "true", "timeout": 10, "cap": 1024, "kill_bytes": 1 << 20}
        with contextlib.suppress(AgentGone, AgentTimeout):
            slot.agent.request(req, time.monotonic() + 20)

    def pool_ready(self, timeout: float = 30.0) -> bool:
        """Wait until the pool holds `pool_size` started containers (for benchmarks and tests)."""
        deadline = time.monotonic() + timeout
        with self._pool_cond:
            while len(self._pool) < self.pool_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return False
                self._pool_cond.wait(timeout=min(remaining, 0.05))
        return True

    # ------------------------------------------------------------------ reaper

    def reap(self) -> list[str]:
        """Remove containers that expired or whose emulator process died (and their stale mounts and
        orphaned volumes). Returns the names of the removed containers."""
        import docker.errors

        removed: list[str] = []
        now = time.time()
        try:
            containers = self.client.api.containers(all=True, filters={"label": f"{LABEL}=1"})
        except (docker.errors.DockerException, OSError):
            return removed
        for c in containers:
            labels = c.get("Labels") or {}
            if c.get("Id") in self._live:
                continue
            try:
                expired = float(labels.get("ce.expires_at", "inf")) < now
            except ValueError:
                expired = False
            if not (expired or _owner_dead(labels.get("ce.owner", ""))):
                continue
            with contextlib.suppress(docker.errors.DockerException, OSError):
                self.client.api.remove_container(c["Id"], force=True)
                removed.append(str((c.get("Names") or [c["Id"]])[0]).lstrip("/"))
            if labels.get("ce.workspace_kind") == "loop" and labels.get("ce.workspace"):
                unmount_stale(labels["ce.workspace"])
        try:
            volumes = self.client.api.volumes(filters={"label": f"{LABEL}=1"}).get("Volumes") or []
        except (docker.errors.DockerException, OSError):
            volumes = []
        for v in volumes:
            labels = v.get("Labels") or {}
            state = labels.get("ce.state_dir")
            if (
                state
                and labels.get("ce.owner", "").startswith(socket.gethostname() + ":")
                and not Path(state).exists()
            ):
                with contextlib.suppress(docker.errors.DockerException, OSError):
                    self.client.api.remove_volume(v["Name"], force=True)
        return removed

    # ------------------------------------------------------------------ self-check and report

    def _measure(self, slot: _Slot) -> IsolationReport:
        """Run the self-check in `slot` through its agent, as user code would, and judge what it saw."""
        assert slot.agent is not None
        out = bytearray()
        err = bytearray()

        def collect(frame: dict[str, Any]) -> None:
            if frame.get("type") == "out":
                (out if frame.get("fd") == 1 else err).extend(base64.b64decode(frame.get("data", "")))

        req = {"op": "python", "code": SELFCHECK_CODE, "timeout": 30, "cap": 1 << 20, "kill_bytes": 4 << 20}
        try:
            reply = slot.agent.request(req, time.monotonic() + 30 + HOST_GRACE_S, collect)
        except (AgentGone, AgentTimeout) as e:
            raise SandboxUnavailable(f"the self-check did not complete: {e}") from e
        data = None
        for line in reversed(decode(out).strip().splitlines()):
            with contextlib.suppress(ValueError):
                data = json.loads(line)
                break
        if reply.get("type") != "result" or not isinstance(data, dict):
            raise SandboxUnavailable(f"the self-check failed: {decode(err).strip()[-500:]}")
        oom_file = data.get("oom_file")
        slot.in_container_oom_file = oom_file if slot.oom_file is None else None
        self._in_container_oom_file = oom_file
        return self._judge(data, slot)

    def _judge(self, sc: dict[str, Any], slot: _Slot) -> IsolationReport:
        lim = self.limits
        checks: list[IsolationCheck] = []
        warnings = list(self._warnings)

        def add(name: str, ok: bool, detail: str) -> None:
            checks.append(IsolationCheck(name, bool(ok), detail))

        def as_int(value: object) -> int | None:
            try:
                return int(str(value))
            except ValueError:
                return None

        add("docker engine", True, f"{_engine_address()}, image {self.image}")
        ifaces = sc.get("interfaces")
        add("network none", ifaces == ["lo"], f"interfaces inside: {ifaces}")
        add("unprivileged user", sc.get("uid") == 1000, f"commands run as uid {sc.get('uid')}")
        add("no new privileges", sc.get("no_new_privs") == "1", f"NoNewPrivs {sc.get('no_new_privs')}")
        caps_ok = sc.get("cap_eff") == "0000000000000000" and sc.get("cap_bnd") == "0000000000000000"
        add("capabilities dropped", caps_ok, f"CapEff {sc.get('cap_eff')}, CapBnd {sc.get('cap_bnd')}")
        seccomp_ok = (
            sc.get("seccomp") == "2"
            and sc.get("vsock_errno") in (errno.EAFNOSUPPORT, errno.EPERM)
            and sc.get("unshare_user_errno") == errno.EPERM
            and sc.get("bpf_errno") == errno.EPERM
            and sc.get("io_uring_errno") == errno.EPERM
        )
        add(
            "seccomp",
            seccomp_ok,
            f"Seccomp {sc.get('seccomp')}; errno of socket(AF_VSOCK) {sc.get('vsock_errno')}, "
            f"unshare(CLONE_NEWUSER) {sc.get('unshare_user_errno')}, bpf {sc.get('bpf_errno')}, "
            f"io_uring_setup {sc.get('io_uring_errno')}",
        )
        ro = sc.get("root_write_errno") == errno.EROFS and sc.get("usr_write_errno") in (
            errno.EROFS,
            errno.EACCES,
        )
        add(
            "read-only root filesystem",
            ro,
            f"write to /: errno {sc.get('root_write_errno')}, to /usr: errno {sc.get('usr_write_errno')}",
        )
        add(
            "host secrets unreadable",
            sc.get("shadow_errno") in (errno.EACCES, errno.ENOENT),
            f"/etc/shadow: errno {sc.get('shadow_errno')}",
        )
        add("no docker socket", not sc.get("docker_socket"), f"present: {sc.get('docker_socket') or 'none'}")
        mem = as_int(sc.get("memory_limit"))
        add("memory limit", mem == lim.memory_bytes, f"{mem} bytes seen (want {lim.memory_bytes})")
        memsw, swap = sc.get("memsw_limit"), sc.get("swap_max")
        if memsw is not None:
            add("memory+swap limit", as_int(memsw) == lim.memory_bytes, f"memsw {memsw} bytes")
        elif swap is not None:
            add("memory+swap limit", swap == "0", f"memory.swap.max {swap}")
        else:
            add("memory+swap limit", False, "no swap accounting visible (swap may extend the limit)")
            warnings.append("memory+swap limit not visible: the kernel lacks swap accounting")
        pids = as_int(sc.get("pids_max"))
        add("pids limit", pids == lim.pids, f"pids.max {sc.get('pids_max')}")
        cpus = sc.get("cpus")
        add(
            "cpu quota",
            isinstance(cpus, int | float) and abs(float(cpus) - lim.cpus) < 0.01,
            f"{cpus} CPU (CFS quota)",
        )
        tmp_total = (sc.get("tmp_fs") or [0, 0])[0]
        add("small /tmp", 0 < tmp_total <= lim.tmp_bytes, f"/tmp is {tmp_total} bytes")
        ws_total = (sc.get("workspace_fs") or [0, 0])[0]
        capped = self._workspace_kind == "loop" and abs(ws_total - lim.disk_bytes) <= lim.disk_bytes * 0.05
        add(
            "workspace disk quota",
            capped,
            f"/workspace filesystem {ws_total} bytes ({self._workspace_kind}"
            + (", not charged to RAM)" if self._workspace_kind == "loop" else ", no cap)"),
        )
        if not capped and self._workspace_kind == "loop":
            warnings.append(f"the workspace filesystem is {ws_total} bytes, not {lim.disk_bytes}")
        servers = sc.get("nameservers") or []
        add("no resolver", not servers, f"nameservers in /etc/resolv.conf: {servers or 'none'}")
        if servers:
            warnings.append(f"/etc/resolv.conf names {servers} (unreachable without a network, but it leaks)")
        add("hostname", sc.get("hostname") == "sandbox", str(sc.get("hostname")))
        add(
            "OOM detection",
            slot.oom_file is not None or bool(sc.get("oom_file")),
            f"memory cgroup counter at {slot.oom_file or sc.get('oom_file')}",
        )
        add(
            "background processes killed after each command",
            bool(slot.agent and slot.agent.info.get("subreaper")),
            "the agent is a child subreaper and kills what a command leaves",
        )
        return IsolationReport(
            backend="docker", checks=tuple(checks), warnings=tuple(dict.fromkeys(warnings))
        )

    def _unmeasured_report(self, warnings: list[str]) -> IsolationReport:
        return IsolationReport(
            backend="docker",
            checks=(IsolationCheck("docker engine", True, _engine_address()),),
            warnings=tuple(dict.fromkeys([*self._warnings, *warnings])),
        )

    def report(self) -> IsolationReport:
        """What is enforced, as measured by the start-up self-check (connecting first if needed)."""
        try:
            self.ready()
        except SandboxUnavailable as e:
            if self._report is not None:
                return self._report
            return IsolationReport(
                backend="docker",
                checks=(IsolationCheck("docker engine", False, str(e)),),
                warnings=(str(e),),
            )
        assert self._report is not None
        warnings = list(self._report.warnings)
        if self._pool_error:
            warnings.append(f"warm pool: {self._pool_error}")
        return IsolationReport(self._report.backend, self._report.checks, tuple(dict.fromkeys(warnings)))

    # ------------------------------------------------------------------ sandboxes

    def open(self, container_id: str) -> DockerSandbox:
        """The sandbox for this container id. The engine is contacted on its first call, so an unreachable
        engine surfaces there as `SandboxUnavailable` (the API's `unavailable`)."""
        if not isinstance(container_id, str) or not _CONTAINER_ID.match(container_id):
            raise ValueError(f"invalid container id {container_id!r}")
        with self._lock:
            if self._closed:
                raise SandboxUnavailable("the sandbox backend is closed")
            sb = self._sandboxes.get(container_id)
            if sb is None:
                sb = DockerSandbox(self, container_id)
                self._sandboxes[container_id] = sb
        return sb

    def _forget(self, sb: DockerSandbox) -> None:
        with self._lock:
            if self._sandboxes.get(sb.container_id) is sb:
                del self._sandboxes[sb.container_id]

    def _shutdown(self) -> None:
        with self._pool_cond:
            self._closed = True
            pool, self._pool = self._pool, []
            self._pool_cond.notify_all()
        thread = self._pool_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=START_TIMEOUT_S)
        for slot in pool:
            self._discard(slot, delete_files=True)
        with self._lock:
            sandboxes = list(self._sandboxes.values())
            self._sandboxes.clear()
        for sb in sandboxes:
            with contextlib.suppress(Exception):
                sb.stop()
        with self._lock:
            leftover = list(self._live.items())
        for container, workspace in leftover:
            self._remove_container(container)
            with contextlib.suppress(Exception):
                workspace.release()

    def close(self) -> None:
        """Remove every container this backend started; sandboxes' files stay (`destroy` removes them)."""
        self._finalizer()
        client = self._client
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def __enter__(self) -> DockerBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: kill(-1) as uid 1000 reaches exactly the sandbox user's processes (the container's init and main process
#: are root's), i.e. everything user code may have left running
_KILL_ALL = "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\n"
_IN_CONTAINER_OOM_FILE = "/sys/fs/cgroup/memory/memory.oom_control"

#: checks whose failure makes a strict backend refuse to run code
_GUARANTEES = frozenset(
    {
        "network none",
        "unprivileged user",
        "no new privileges",
        "capabilities dropped",
        "seccomp",
        "read-only root filesystem",
        "memory limit",
        "memory+swap limit",
        "pids limit",
        "cpu quota",
        "small /tmp",
        "no docker socket",
        "host secrets unreadable",
    }
)


def _read_oom(read: Callable[[], str]) -> int | None:
    try:
        for line in read().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        return None
    return None


def _host_oom_file(container: str) -> Path | None:
    """The container's memory cgroup OOM counter as seen from this host, when the engine is local."""
    if not _engine_is_local():
        return None
    candidates = (
        f"/sys/fs/cgroup/memory/docker/{container}/memory.oom_control",
        f"/sys/fs/cgroup/memory/system.slice/docker-{container}.scope/memory.oom_control",
        f"/sys/fs/cgroup/system.slice/docker-{container}.scope/memory.events",
        f"/sys/fs/cgroup/docker/{container}/memory.events",
    )
    for c in candidates:
        if os.path.exists(c):
            return Path(c)
    return None


def _engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _engine_is_local() -> bool:
    return _engine_address().startswith(("unix://", "npipe://"))


__all__ = ["DockerBackend", "DockerSandbox"]
