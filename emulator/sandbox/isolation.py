"""What this machine lets the local backend enforce: probing, the seccomp filter, cgroups, the report.

Three concerns live here because `local.py` needs all of them before it can start a sandbox and `doctor`
needs them to explain what is and is not enforced:

* `probe_host()` looks at the machine once (root or not, bubblewrap present and actually able to create
  namespaces, which bwrap options work, cgroup version and writability, seccomp assembled and accepted).
* `build_seccomp_filter()` assembles a classic-BPF deny-list by hand: no libseccomp binding is installed and
  the program is small enough that a table of syscall numbers is easier to audit than a dependency.
* `CgroupLayout` / `SandboxCgroup` create one cgroup per sandbox under the emulator's own cgroup (v1 or v2),
  apply the limits, read the OOM counter and remove the group again.

`build_report()` turns the probe plus an in-sandbox self-check (run by `local.py` through the real agent, so
the report states what was measured, not what was configured) into an `IsolationReport`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import re
import shutil
import struct
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .agent import kill_pinned
from .base import IsolationCheck, IsolationReport, Limits

# --------------------------------------------------------------------------------------------------------
# seccomp (classic BPF, assembled by hand)
# --------------------------------------------------------------------------------------------------------

AUDIT_ARCH_X86_64 = 0xC000003E
_X32_SYSCALL_BIT = 0x40000000

_SECCOMP_RET_KILL_PROCESS = 0x80000000
_SECCOMP_RET_ERRNO = 0x00050000
_SECCOMP_RET_ALLOW = 0x7FFF0000

_BPF_LD_W_ABS = 0x20
_BPF_JEQ_K = 0x15
_BPF_JGE_K = 0x35
_BPF_JSET_K = 0x45
_BPF_RET_K = 0x06

# offsets into struct seccomp_data
_OFF_NR = 0
_OFF_ARCH = 4
_OFF_ARG0_LO = 16  # little endian: the low 32 bits of args[0]

#: x86_64 syscalls answered with EPERM. The list follows the notes (§5.1) plus the rest of the privileged
#: surface Docker's default profile also refuses; everything here needs a capability the sandbox does not
#: have anyway, except the ones that are reachable unprivileged (userns, keyrings, bpf, perf, io_uring,
#: userfaultfd, ptrace) which are the reason for the filter.
SECCOMP_DENY_EPERM_X86_64: Mapping[str, int] = {
    "ptrace": 101,
    "syslog": 103,
    "uselib": 134,
    "vhangup": 153,
    "pivot_root": 155,
    "_sysctl": 156,
    "adjtimex": 159,
    "chroot": 161,
    "acct": 163,
    "settimeofday": 164,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "sethostname": 170,
    "setdomainname": 171,
    "iopl": 172,
    "ioperm": 173,
    "create_module": 174,
    "init_module": 175,
    "delete_module": 176,
    "quotactl": 179,
    "nfsservctl": 180,
    "lookup_dcookie": 212,
    "clock_settime": 227,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "unshare": 272,
    "perf_event_open": 298,
    "fanotify_init": 300,
    "open_by_handle_at": 304,
    "clock_adjtime": 305,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "finit_module": 313,
    "kexec_file_load": 320,
    "bpf": 321,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "pidfd_getfd": 438,
    "mount_setattr": 442,
    "quotactl_fd": 443,
}
_NR_CLONE = 56
_NR_CLONE3 = 435
_NR_SOCKET = 41
_NR_SOCKETPAIR = 53

#: every CLONE_NEW* flag; only CLONE_NEWUSER is reachable without capabilities, the rest are refused too so
#: the filter does not depend on the capability set staying empty.
_CLONE_NEW_MASK = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
#: AF_PACKET, AF_ALG, AF_VSOCK (the VM's host agent is reachable over vsock on Firecracker, see the notes).
SECCOMP_DENIED_SOCKET_FAMILIES: tuple[int, ...] = (17, 38, 40)


class SeccompUnsupported(RuntimeError):
    """No filter is assembled for this architecture."""


def build_seccomp_filter(machine: str | None = None) -> bytes:
    """Return the sandbox's seccomp program as raw `struct sock_filter` entries (read by `bwrap --seccomp`).

    Any other architecture (including the i386 entry on x86_64, which would bypass the table through
    `socketcall`) is killed, and so are x32 syscall numbers.
    """
    machine = machine or platform.machine()
    if machine not in ("x86_64", "amd64", "AMD64"):
        raise SeccompUnsupported(f"seccomp filter is only assembled for x86_64, not {machine}")

    # A tiny assembler: jump targets are labels, resolved into the 8-bit relative offsets BPF wants.
    prog: list[tuple[int, int, str | None, str | None]] = []
    labels: dict[str, int] = {}

    def ins(code: int, k: int, jt: str | None = None, jf: str | None = None) -> None:
        prog.append((code, k, jt, jf))

    def label(name: str) -> None:
        labels[name] = len(prog)

    ins(_BPF_LD_W_ABS, _OFF_ARCH)
    ins(_BPF_JEQ_K, AUDIT_ARCH_X86_64, None, "kill")
    ins(_BPF_LD_W_ABS, _OFF_NR)
    ins(_BPF_JGE_K, _X32_SYSCALL_BIT, "kill", None)
    for nr in sorted(SECCOMP_DENY_EPERM_X86_64.values()):
        ins(_BPF_JEQ_K, nr, "eperm", None)
    ins(_BPF_JEQ_K, _NR_CLONE3, "enosys", None)  # glibc falls back to clone(2), whose flags we can inspect
    ins(_BPF_JEQ_K, _NR_CLONE, "clone", None)
    ins(_BPF_JEQ_K, _NR_SOCKET, "socket", None)
    ins(_BPF_JEQ_K, _NR_SOCKETPAIR, "socket", None)
    ins(_BPF_RET_K, _SECCOMP_RET_ALLOW)
    label("clone")
    ins(_BPF_LD_W_ABS, _OFF_ARG0_LO)
    ins(_BPF_JSET_K, _CLONE_NEW_MASK, "eperm", None)
    ins(_BPF_RET_K, _SECCOMP_RET_ALLOW)
    label("socket")
    ins(_BPF_LD_W_ABS, _OFF_ARG0_LO)
    for family in SECCOMP_DENIED_SOCKET_FAMILIES:
        ins(_BPF_JEQ_K, family, "eafnosupport", None)
    ins(_BPF_RET_K, _SECCOMP_RET_ALLOW)
    label("kill")
    ins(_BPF_RET_K, _SECCOMP_RET_KILL_PROCESS)
    label("eperm")
    ins(_BPF_RET_K, _SECCOMP_RET_ERRNO | errno.EPERM)
    label("enosys")
    ins(_BPF_RET_K, _SECCOMP_RET_ERRNO | errno.ENOSYS)
    label("eafnosupport")
    ins(_BPF_RET_K, _SECCOMP_RET_ERRNO | errno.EAFNOSUPPORT)

    out = bytearray()
    for i, (code, k, jt, jf) in enumerate(prog):
        offsets = []
        for target in (jt, jf):
            off = 0 if target is None else labels[target] - (i + 1)
            if not 0 <= off <= 255:
                raise AssertionError(f"BPF jump out of range at {i}: {off}")
            offsets.append(off)
        out += struct.pack("<HBBI", code, offsets[0], offsets[1], k)
    return bytes(out)


# --------------------------------------------------------------------------------------------------------
# cgroups
# --------------------------------------------------------------------------------------------------------

_CONTROLLERS = ("memory", "pids", "cpu")
_CFS_PERIOD_US = 100_000
_STALE_GROUP = re.compile(r"^ce-sandbox-(\d+)-\d+$")


@dataclass(frozen=True)
class CgroupLayout:
    """Where this process may create child cgroups, per controller (v1), or in the unified tree (v2)."""

    version: int  # 1, 2, or 0 when no usable cgroup filesystem was found
    #: v1: controller -> this process's own cgroup directory in that controller's hierarchy.
    #: v2: {"unified": own cgroup directory}
    bases: Mapping[str, Path] = field(default_factory=dict)
    #: controllers a child group can actually be created with (checked by making and removing one)
    usable: frozenset[str] = frozenset()
    problems: tuple[str, ...] = ()

    @property
    def any_usable(self) -> bool:
        return bool(self.usable)


def _mountinfo() -> list[tuple[str, str, str, list[str]]]:
    """(root, mountpoint, fstype, super options) of every mount this process sees."""
    rows = []
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return rows
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or len(rf) < 3:
            continue
        rows.append((_unescape_mount(lf[3]), _unescape_mount(lf[4]), rf[0], rf[2].split(",")))
    return rows


def _unescape_mount(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def _own_cgroups() -> dict[str, str]:
    """controller (or "" for the v2 line) -> this process's cgroup path, from /proc/self/cgroup."""
    own: dict[str, str] = {}
    try:
        text = Path("/proc/self/cgroup").read_text()
    except OSError:
        return own
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            own[""] = path
        for c in controllers.split(","):
            own[c] = path
    return own


def _join_mount(mountpoint: str, mount_root: str, own: str) -> Path | None:
    if own == mount_root or mount_root == "/":
        rel = own.lstrip("/")
    elif own.startswith(mount_root.rstrip("/") + "/"):
        rel = own[len(mount_root.rstrip("/")) + 1 :]
    else:
        return None  # our cgroup is outside what this mount shows (e.g. a container's cgroupns view)
    return Path(mountpoint) / rel if rel else Path(mountpoint)


def _try_child(base: Path) -> str | None:
    """Create and remove a throwaway child group; return why that failed, or None."""
    probe = base / f"ce-probe-{os.getpid()}-{time.monotonic_ns()}"
    try:
        probe.mkdir()
    except OSError as e:
        return f"{base}: {e.strerror}"
    with contextlib.suppress(OSError):
        probe.rmdir()
    return None


def detect_cgroups() -> CgroupLayout:
    """Find where child cgroups can be made: v1 controllers first (hybrid machines), else v2."""
    mounts = _mountinfo()
    own = _own_cgroups()
    problems: list[str] = []

    v1_bases: dict[str, Path] = {}
    for root, mountpoint, fstype, opts in mounts:
        if fstype != "cgroup":
            continue
        for c in _CONTROLLERS:
            if c in opts and c not in v1_bases and c in own:
                base = _join_mount(mountpoint, root, own[c])
                if base is not None and base.is_dir():
                    v1_bases[c] = base
    if v1_bases:
        usable = set()
        for c, base in v1_bases.items():
            err = _try_child(base)
            if err is None:
                usable.add(c)
            else:
                problems.append(f"{c} cgroup not writable ({err})")
        for c in _CONTROLLERS:
            if c not in v1_bases:
                problems.append(f"no cgroup v1 hierarchy with the {c} controller")
        return CgroupLayout(1, v1_bases, frozenset(usable), tuple(problems))

    for root, mountpoint, fstype, _opts in mounts:
        if fstype != "cgroup2" or "" not in own:
            continue
        base = _join_mount(mountpoint, root, own[""])
        if base is None or not base.is_dir():
            continue
        try:
            available = set((base / "cgroup.controllers").read_text().split())
        except OSError:
            available = set()
        wanted = {c for c in _CONTROLLERS if c in available}
        for c in _CONTROLLERS:
            if c not in available:
                problems.append(f"cgroup v2 controller {c} is not delegated to {base}")
        err = _try_child(base)
        if err is not None:
            problems.append(f"cgroup v2 not writable ({err})")
            wanted = set()
        return CgroupLayout(2, {"unified": base}, frozenset(wanted), tuple(problems))

    return CgroupLayout(0, {}, frozenset(), ("no cgroup filesystem found",))


def remove_stale_groups(layout: CgroupLayout) -> None:
    """Remove groups left by emulator processes that died without closing their backend (best effort)."""
    for base in layout.bases.values():
        try:
            entries = list(base.iterdir())
        except OSError:
            continue
        for entry in entries:
            m = _STALE_GROUP.match(entry.name)
            if not m or not entry.is_dir():
                continue
            pid = int(m.group(1))
            if pid == os.getpid() or _pid_alive(pid):
                continue
            for child in sorted(entry.iterdir(), reverse=True):
                if child.is_dir():
                    with contextlib.suppress(OSError):
                        child.rmdir()
            with contextlib.suppress(OSError):
                entry.rmdir()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SandboxCgroup:
    """One sandbox's cgroup (one directory per v1 controller, or one v2 directory)."""

    def __init__(self, layout: CgroupLayout, parent: str, name: str, limits: Limits) -> None:
        self.layout = layout
        self.limits = limits
        self._parent = parent
        self._name = name
        self.dirs: dict[str, Path] = {}
        if layout.version == 1:
            for c in layout.usable:
                self.dirs[c] = layout.bases[c] / parent / name
        elif layout.version == 2 and layout.usable:
            self.dirs["unified"] = layout.bases["unified"] / parent / name
        self.in_effect: set[str] = set()
        self.problems: list[str] = []
        #: the OOM counter file, kept open: it is read around every command, and re-reading an open
        #: cgroup file from offset 0 costs a tenth of opening it again
        self._oom_fd: int | None = None

    def create(self) -> None:
        """Create the group(s) and write the limits; what could not be applied is recorded in `problems`."""
        self._close_oom_fd()
        self.in_effect.clear()
        self.problems.clear()
        lim = self.limits
        if self.layout.version == 1:
            for c, d in self.dirs.items():
                try:
                    d.mkdir(parents=True, exist_ok=True)
                    if c == "memory":
                        _write(d / "memory.limit_in_bytes", lim.memory_bytes)
                        # memsw can only be set once the plain limit is in place; absent without swapaccount
                        if (d / "memory.memsw.limit_in_bytes").exists():
                            _write(d / "memory.memsw.limit_in_bytes", lim.memory_bytes)
                    elif c == "pids":
                        _write(d / "pids.max", lim.pids)
                    elif c == "cpu" and lim.cpus > 0:
                        _write(d / "cpu.cfs_period_us", _CFS_PERIOD_US)
                        _write(d / "cpu.cfs_quota_us", int(lim.cpus * _CFS_PERIOD_US))
                    self.in_effect.add(c)
                except OSError as e:
                    self.problems.append(f"{c} cgroup {d}: {e.strerror or e}")
        elif self.layout.version == 2 and "unified" in self.dirs:
            d = self.dirs["unified"]
            try:
                d.parent.mkdir(exist_ok=True)
                # controllers must be enabled on every level above the leaf (the parent holds no process)
                _write(d.parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in self.layout.usable))
                d.mkdir(exist_ok=True)
            except OSError as e:
                self.problems.append(f"cgroup v2 {d}: {e.strerror or e}")
                return
            settings = {
                "memory": [("memory.max", lim.memory_bytes), ("memory.swap.max", 0)],
                "pids": [("pids.max", lim.pids)],
                "cpu": [("cpu.max", f"{int(lim.cpus * _CFS_PERIOD_US)} {_CFS_PERIOD_US}")]
                if lim.cpus > 0
                else [],
            }
            for c in self.layout.usable:
                try:
                    for fname, value in settings[c]:
                        if fname == "memory.swap.max" and not (d / fname).exists():
                            continue
                        _write(d / fname, value)
                    self.in_effect.add(c)
                except OSError as e:
                    self.problems.append(f"{c} cgroup {d}: {e.strerror or e}")

    def procs_files(self) -> list[str]:
        """The `cgroup.procs` files a starting process writes its pid to (it joins before it forks)."""
        if self.layout.version == 1:
            return [str(self.dirs[c] / "cgroup.procs") for c in sorted(self.in_effect)]
        if self.layout.version == 2 and self.in_effect:
            return [str(self.dirs["unified"] / "cgroup.procs")]
        return []

    def visible_dirs(self) -> dict[str, Path]:
        """Directories to show read-only inside the sandbox, keyed by their path under /sys/fs/cgroup."""
        if self.layout.version == 1:
            return {c: self.dirs[c] for c in sorted(self.in_effect)}
        if self.layout.version == 2 and self.in_effect:
            return {"": self.dirs["unified"]}
        return {}

    def oom_kills(self) -> int | None:
        """The kernel's count of OOM kills in this group (v1 memory.oom_control, v2 memory.events)."""
        if "memory" not in self.in_effect:
            return None
        try:
            if self._oom_fd is None:
                if self.layout.version == 1:
                    path = self.dirs["memory"] / "memory.oom_control"
                else:
                    path = self.dirs["unified"] / "memory.events"
                self._oom_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            text = os.pread(self._oom_fd, 4096, 0).decode()
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            self._close_oom_fd()
            return None
        return None

    def _close_oom_fd(self) -> None:
        if self._oom_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._oom_fd)
            self._oom_fd = None

    def pids(self) -> list[int]:
        seen: set[int] = set()
        for f in self.procs_files():
            with contextlib.suppress(OSError, ValueError):
                seen.update(int(x) for x in Path(f).read_text().split())
        return sorted(seen)

    def kill_all(self, *, rounds: int = 20) -> None:
        """SIGKILL every process in the group until it is empty (catches forks between rounds)."""
        for _ in range(rounds):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                self._kill_member(pid)
            time.sleep(0.005)

    def _kill_member(self, pid: int) -> None:
        """SIGKILL `pid` if it is still in this group (the number read from `cgroup.procs` may be reused)."""
        group = f"/{self._parent}/{self._name}" if self._parent else f"/{self._name}"

        def still_member(pinned: int) -> bool:
            lines = Path(f"/proc/{pinned}/cgroup").read_text().splitlines()
            return any(line.endswith(group) for line in lines)

        kill_pinned(pid, still_member)

    def remove(self, *, wait_s: float = 2.0) -> bool:
        """Remove the group(s); exiting processes can hold a group briefly, so retry for a moment."""
        self._close_oom_fd()
        deadline = time.monotonic() + wait_s
        ok = True
        for d in self.dirs.values():
            while d.exists():
                try:
                    d.rmdir()
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        ok = False
                        break
                    time.sleep(0.02)
        return ok


def remove_parent_groups(layout: CgroupLayout, parent: str) -> None:
    for base in layout.bases.values():
        d = base / parent
        if d.is_dir():
            for child in d.iterdir():
                if child.is_dir():
                    with contextlib.suppress(OSError):
                        child.rmdir()
            with contextlib.suppress(OSError):
                d.rmdir()


def _write(path: Path, value: object) -> None:
    with open(path, "w") as f:
        f.write(str(value))


# --------------------------------------------------------------------------------------------------------
# probing the host
# --------------------------------------------------------------------------------------------------------

#: host paths bound into a bwrap sandbox as they are, when they are symlinks (merged /usr) or directories
ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


def usr_layout_args() -> list[str]:
    """bwrap arguments for a read-only /usr plus the top-level bin/lib links (merged /usr or not)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ROOT_LINKS:
        p = Path("/") / name
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), f"/{name}"]
        elif p.is_dir():
            args += ["--ro-bind", str(p), f"/{name}"]
    return args


@dataclass(frozen=True)
class HostProbe:
    """Facts about the machine gathered once per backend."""

    is_root: bool
    bwrap: str | None
    bwrap_version: str | None
    bwrap_works: bool
    bwrap_error: str | None
    supports_disable_userns: bool
    seccomp_program: bytes | None
    seccomp_error: str | None
    cgroups: CgroupLayout
    sandbox_uid: int | None  # the dedicated host uid sandboxes run as (root only)


def _run_probe(argv: list[str], uid: int | None, pass_fds: Iterable[int] = ()) -> tuple[int, str]:
    kwargs: dict[str, object] = {}
    if uid is not None:
        kwargs = {"user": uid, "group": uid, "extra_groups": []}
    try:
        r = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=20,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
            pass_fds=tuple(pass_fds),
            cwd="/",
            check=False,
            **kwargs,  # type: ignore[arg-type]
        )
    except (OSError, subprocess.SubprocessError) as e:
        return 255, str(e)
    return r.returncode, (r.stderr or b"").decode("utf-8", "replace").strip()


def probe_host(bwrap: str | None = None, sandbox_uid: int = 61000, *, want_bwrap: bool = True) -> HostProbe:
    """Look at the machine: root, bubblewrap (really creating namespaces), seccomp, cgroups."""
    is_root = os.geteuid() == 0
    uid = sandbox_uid if is_root else None
    bwrap_path = (
        bwrap or shutil.which("bwrap") or ("/usr/bin/bwrap" if Path("/usr/bin/bwrap").exists() else None)
    )
    version = None
    works = False
    error: str | None = None
    disable_userns = False
    program: bytes | None = None
    seccomp_error: str | None = None
    try:
        program = build_seccomp_filter()
    except (SeccompUnsupported, AssertionError) as e:
        seccomp_error = str(e)

    if want_bwrap and bwrap_path and os.access(bwrap_path, os.X_OK):
        try:
            r = subprocess.run([bwrap_path, "--version"], capture_output=True, timeout=10, check=False)
            version = r.stdout.decode().split()[-1] if r.returncode == 0 and r.stdout else version
            helptext = subprocess.run([bwrap_path, "--help"], capture_output=True, timeout=10, check=False)
            disable_userns = b"--disable-userns" in helptext.stdout
        except (OSError, subprocess.SubprocessError, IndexError):
            pass
        base = [bwrap_path, "--unshare-all", "--unshare-user", "--new-session"]
        if disable_userns:
            base.append("--disable-userns")
        base += [*usr_layout_args(), "--proc", "/proc", "--dev", "/dev", "--clearenv"]
        base += ["--setenv", "PATH", "/usr/bin:/bin"]
        rc, out = _run_probe([*base, "--", "true"], uid)
        if rc == 0:
            works = True
        else:
            error = out or f"bwrap exited with {rc}"
        if works and program is not None:
            fd = memfd_with("ce-seccomp-probe", program)
            try:
                rc, out = _run_probe([*base, "--seccomp", str(fd), "--", "true"], uid, pass_fds=[fd])
            finally:
                os.close(fd)
            if rc != 0:
                seccomp_error = f"bwrap refused the seccomp program: {out or rc}"
                program = None
    elif want_bwrap:
        error = "bubblewrap (bwrap) is not installed"

    layout = detect_cgroups()
    return HostProbe(
        is_root=is_root,
        bwrap=bwrap_path,
        bwrap_version=version,
        bwrap_works=works,
        bwrap_error=error,
        supports_disable_userns=disable_userns,
        seccomp_program=program,
        seccomp_error=seccomp_error,
        cgroups=layout,
        sandbox_uid=uid,
    )


def memfd_with(name: str, data: bytes) -> int:
    """An fd holding `data` from offset 0, inheritable by a child (what bwrap's --seccomp/--*-data read)."""
    fd = os.memfd_create(name, 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


# --------------------------------------------------------------------------------------------------------
# the in-sandbox self-check and the report
# --------------------------------------------------------------------------------------------------------

#: Run with the sandbox's python3 through the agent; prints one JSON object. Only creates sockets (never
#: connects) and attempts syscalls the filter should refuse.
SELFCHECK_CODE = r"""
import ctypes, errno, json, os, resource, socket
out = {}
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
out["uid"] = os.getuid()
out["no_new_privs"] = status("NoNewPrivs")
out["seccomp"] = status("Seccomp")
out["cap_eff"] = status("CapEff")
out["interfaces"] = sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:])
out["visible_pids"] = len([p for p in os.listdir("/proc") if p.isdigit()])
def errno_of(fn):
    try:
        r = fn()
    except OSError as e:
        return e.errno
    return 0 if r is None or r == 0 else r
def vsock():
    s = socket.socket(40, socket.SOCK_STREAM)
    s.close()
out["vsock_errno"] = errno_of(vsock)
libc = ctypes.CDLL(None, use_errno=True)
def unshare_user():
    pid = os.fork()
    if pid == 0:
        rc = libc.unshare(0x10000000)
        os._exit(0 if rc == 0 else ctypes.get_errno())
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
out["unshare_user_errno"] = unshare_user()
out["bpf_errno"] = (libc.syscall(321, 0, 0, 0), ctypes.get_errno())[1]
def write_usr():
    open("/usr/.ce-selfcheck", "x").close()
    os.unlink("/usr/.ce-selfcheck")
out["usr_write_errno"] = errno_of(write_usr)
out["shadow_errno"] = errno_of(lambda: open("/etc/shadow").close())
out["hostname"] = socket.gethostname()
lim = {}
for name in ("NOFILE", "FSIZE", "CORE", "AS"):
    lim[name.lower()] = resource.getrlimit(getattr(resource, "RLIMIT_" + name))
out["rlimits"] = lim
mem = None
for p in ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"):
    try:
        mem = open(p).read().strip()
        break
    except OSError:
        pass
out["cgroup_memory_limit"] = mem
print(json.dumps(out))
"""


def parse_selfcheck(stdout: str) -> dict[str, object] | None:
    for line in reversed(stdout.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def build_report(
    tier: str,
    probe: HostProbe | None,
    *,
    selfcheck: Mapping[str, object] | None,
    cgroups_in_effect: Iterable[str] = (),
    cgroup_problems: Iterable[str] = (),
    limits: Limits,
    seccomp_used: bool = False,
    host_uid: int | None = None,
    extra_warnings: Iterable[str] = (),
) -> IsolationReport:
    """Describe what a backend tier enforces, from the host probe and the measured in-sandbox self-check.

    `host_uid` is the owner, seen from the host, of a file the sandbox created.
    """
    checks: list[IsolationCheck] = []
    warnings: list[str] = list(extra_warnings)
    sc = dict(selfcheck or {})
    in_effect = set(cgroups_in_effect)

    def add(name: str, ok: bool, detail: str = "") -> None:
        checks.append(IsolationCheck(name, bool(ok), detail))

    if tier == "bwrap":
        ifaces = sc.get("interfaces")
        add("network namespace", ifaces == ["lo"], f"interfaces inside: {ifaces}")
        pids = sc.get("visible_pids")
        add("pid namespace", isinstance(pids, int) and pids < 16, f"{pids} processes visible inside")
        add("user namespace", sc.get("uid") == 1000, f"uid inside {sc.get('uid')}")
        usr = sc.get("usr_write_errno")
        add(
            "read-only host filesystem",
            usr in (errno.EROFS, errno.EACCES, errno.EPERM),
            f"write to /usr: errno {usr}",
        )
        shadow = sc.get("shadow_errno")
        add("curated /etc", shadow in (errno.ENOENT, errno.EACCES), f"/etc/shadow: errno {shadow}")
        dedicated = host_uid is not None and host_uid not in (0, os.geteuid())
        if dedicated:
            detail = f"files the sandbox creates belong to host uid {host_uid}"
        elif host_uid == 0:
            detail = "the sandbox's files belong to host root"
            warnings.append(
                "the bwrap sandbox maps to host root: /etc and other root-readable files may leak"
            )
        else:
            detail = f"not root: the sandbox runs as the calling user's uid ({host_uid})"
        add("dedicated uid", dedicated, detail)
        add("no new privileges", sc.get("no_new_privs") == "1", f"NoNewPrivs {sc.get('no_new_privs')}")
        add("capabilities dropped", sc.get("cap_eff") == "0000000000000000", f"CapEff {sc.get('cap_eff')}")
        seccomp_ok = (
            seccomp_used
            and sc.get("seccomp") == "2"
            and sc.get("vsock_errno") == errno.EAFNOSUPPORT
            and sc.get("unshare_user_errno") == errno.EPERM
        )
        add(
            "seccomp",
            seccomp_ok,
            f"Seccomp {sc.get('seccomp')}, socket(AF_VSOCK) errno {sc.get('vsock_errno')}, "
            f"unshare(CLONE_NEWUSER) errno {sc.get('unshare_user_errno')}, bpf errno {sc.get('bpf_errno')}",
        )
        if not seccomp_ok:
            why = (
                probe.seccomp_error if probe and probe.seccomp_error else "the self-check did not confirm it"
            )
            warnings.append(
                f"seccomp filter not in effect ({why}): AF_VSOCK and privileged syscalls are open"
            )
        add(
            "nested user namespaces disabled",
            sc.get("unshare_user_errno") not in (0, None),
            f"unshare(CLONE_NEWUSER) errno {sc.get('unshare_user_errno')}",
        )
        add("hostname", sc.get("hostname") == "sandbox", f"{sc.get('hostname')}")
    else:
        for name in (
            "network namespace",
            "pid namespace",
            "user namespace",
            "read-only host filesystem",
            "curated /etc",
            "no new privileges",
            "capabilities dropped",
            "seccomp",
        ):
            add(name, False, "isolation tier 'none'")
        add("dedicated uid", False, "commands run as the emulator's own user")
        warnings.append(
            "isolation tier 'none': commands run as plain host processes with the emulator's own user, "
            "network, filesystem and environment visibility; only rlimits apply. Install bubblewrap "
            "(apt-get install bubblewrap) for real isolation."
        )
        if os.geteuid() == 0:
            warnings.append(
                "isolation tier 'none' while running as root: sandboxed code runs as root on this machine "
                "(it can read, change and kill anything)"
            )

    mem_detail = f"limit {limits.memory_bytes} bytes"
    if tier == "bwrap" and sc.get("cgroup_memory_limit"):
        mem_detail += f" (seen inside: {sc.get('cgroup_memory_limit')})"
    add("memory cgroup", "memory" in in_effect, mem_detail if "memory" in in_effect else "not available")
    add(
        "pids cgroup",
        "pids" in in_effect,
        f"pids.max {limits.pids}" if "pids" in in_effect else "not available",
    )
    add(
        "cpu quota",
        "cpu" in in_effect,
        f"{limits.cpus} CPU (CFS quota)" if "cpu" in in_effect else "not available",
    )
    rl = sc.get("rlimits") if isinstance(sc.get("rlimits"), dict) else None
    add(
        "rlimits",
        True,
        f"nofile {limits.open_files}, fsize {limits.file_size_bytes}, core 0"
        + ("" if "memory" in in_effect else f", as {limits.memory_bytes}")
        + (f" (seen inside: {rl})" if rl else ""),
    )
    if "memory" not in in_effect:
        add("memory limit (RLIMIT_AS)", True, f"{limits.memory_bytes} bytes of address space per process")
    add(
        "disk quota",
        False,
        f"no per-sandbox disk quota; single files are capped at {limits.file_size_bytes} bytes",
    )
    add(
        "background processes killed after each command", True, "the agent kills every process a command left"
    )
    for p in cgroup_problems:
        warnings.append(f"cgroup: {p}")
    if not in_effect:
        warnings.append(
            "no cgroup: no aggregate memory limit, no pids limit, no CPU quota and no OOM detection"
            + (" (run as root for cgroups)" if os.geteuid() != 0 else "")
        )
    return IsolationReport(
        backend=f"local/{tier}", checks=tuple(checks), warnings=tuple(dict.fromkeys(warnings))
    )
