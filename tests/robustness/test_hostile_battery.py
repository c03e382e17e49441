"""The hostile-code battery of issue 10 that the per-backend suites do not already cover, on both backends.

Every probe is scripted through the official SDK, asserts the safe outcome, and then proves the same
container still usable: a follow-up call answers `ok` promptly with no process of the sandbox user left.
Where the local backend cannot enforce something on this machine, the test asserts that
`Emulator.isolation()` says so instead of skipping. No probe touches the network at all.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator, bash, create, python, str_replace, view

from .canaries import CLEAN, ENV_NAME, plant_host_canaries
from .canaries import report as canary_report
from .conftest import BATTERY_LIMITS, MiB

CODE_EXECUTION_TOOL = {"type": "code_execution_20250825", "name": "code_execution"}

#: prints `ok` and the sandbox user's processes other than this probe and its ancestors (shell, agent)
LEFTOVERS = r"""
import os
anc, p = set(), os.getpid()
anc.add(1)  # the sandbox's init (bwrap locally, the agent's init in Docker)
while p > 1:
    anc.add(p)
    p = int(open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[1])
left = []
for d in os.listdir('/proc'):
    if d.isdigit() and int(d) not in anc:
        try:
            if os.stat(f'/proc/{d}').st_uid == 1000:
                left.append(open(f'/proc/{d}/comm').read().strip())
        except OSError:
            pass
print('ok', left)
"""


@dataclass
class Box:
    """One container of one emulator, driven a scripted turn at a time through the SDK."""

    emulator: Emulator
    container: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        return self.emulator.config.backend

    def run(self, *steps: Any) -> list[Any]:
        """Send one turn made of `steps`; return the result blocks' contents in order."""
        self.emulator.add_turn(*steps)
        params: dict[str, Any] = {
            "model": "claude-sonnet-4-6",
            "max_tokens": 1024,
            "tools": [CODE_EXECUTION_TOOL],
            "messages": [{"role": "user", "content": "go"}],
        }
        if self.container is not None:
            params["container"] = self.container
        message = self.emulator.anthropic_client().beta.messages.create(**params)
        self.container = message.container.id
        return [b.content for b in message.content if b.type.endswith("_tool_result")]

    def check(self, name: str) -> bool | None:
        """Whether the isolation report says `name` is in effect (None: the report has no such check)."""
        for c in self.emulator.isolation().checks:
            if c.name == name:
                return c.in_effect
        return None

    def assert_usable(self) -> None:
        started = time.monotonic()
        echo, left = self.run(bash("echo ok"), python(LEFTOVERS))
        assert (echo.stdout, echo.return_code) == ("ok\n", 0), echo
        assert left.stdout.rstrip("\n") == "ok []", left
        assert time.monotonic() - started < 5.0


@pytest.fixture
def box(battery_emulator):
    b = Box(battery_emulator)
    yield b
    b.assert_usable()


def _lines(result: Any) -> list[str]:
    return result.stdout.splitlines()


# ------------------------------------------------------------------------------------------- disk


def test_tmp_fill(box):
    code = r"""
import errno, os
err, total = None, 0
try:
    for i in range(32):
        fd = os.open(f'/tmp/fill{i}', os.O_CREAT | os.O_WRONLY, 0o644)
        try:
            for _ in range(4):
                total += os.write(fd, b'x' * (256 * 1024))
        finally:
            os.close(fd)
except OSError as e:
    err = errno.errorcode[e.errno]
print(err, total)
"""
    (fill,) = box.run(python(code))
    err, total = fill.stdout.split()
    (clean,) = box.run(bash("rm -f /tmp/fill*; echo after > /tmp/after && cat /tmp/after"))
    assert clean.stdout == "after\n"
    if box.backend == "docker":
        assert box.check("small /tmp") is True
        assert err == "ENOSPC"
        assert int(total) <= BATTERY_LIMITS["tmp_bytes"]
    else:
        # the local /tmp is a directory on the host's disk: not capped, and the report says so
        assert box.check("small /tmp") is not True
        assert box.check("disk quota") is False
        assert (err, int(total)) == ("None", 32 * MiB)


INODES = r"""
import errno, os, sys, time
cap, seconds = int(sys.argv[1]), float(sys.argv[2])
os.mkdir('inodes')
deadline = time.monotonic() + seconds
n, err = 0, None
try:
    while n < cap and time.monotonic() < deadline:
        os.close(os.open(f'inodes/{n}', os.O_CREAT | os.O_WRONLY, 0o644))
        n += 1
except OSError as e:
    err = errno.errorcode[e.errno]
st = os.statvfs('/workspace')
print(n, err, st.f_files, st.f_ffree)
"""


@pytest.mark.slow
def test_inode_exhaustion_in_workspace(box):
    """Docker: the workspace is its own small ext4 image (`BATTERY_LIMITS["disk_bytes"]`), so creating
    files really runs out of inodes (ENOSPC) at the image's inode count, and `rm -rf` gives them back.
    Local: the workspace is a directory of the host's filesystem (the report says there is no disk quota),
    so the probe stops at its own cap without an error, having used the host's inode table."""
    docker = box.backend == "docker"
    cap, seconds = (1_000_000, 25) if docker else (20_000, 15)
    started = time.monotonic()
    fill, clean = box.run(
        bash("cat > /tmp/inodes.py <<'EOF'\n" + INODES + f"EOF\npython3 /tmp/inodes.py {cap} {seconds}"),
        bash("rm -rf inodes /tmp/inodes.py && touch after && ls after && rm after"),
    )
    box.timings["inodes"] = time.monotonic() - started
    n, err, files, free = fill.stdout.split()
    assert clean.stdout == "after\n", clean
    if docker:
        assert box.check("workspace disk quota") is True
        # the image's own inode table (~34k for 512 MiB), exhausted: only a handful of inodes were in use
        assert err == "ENOSPC", fill
        assert int(free) == 0 and int(files) < 100_000
        assert int(files) - 64 < int(n) < int(files), fill
    else:
        assert box.check("disk quota") is False
        assert (err, int(n)) == ("None", cap), fill
        host = os.statvfs(_host_workspace(box))
        assert int(files) == host.f_files  # the host filesystem's inode table, not a per-sandbox one


def test_file_size_limit(box):
    big, size = box.run(bash("head -c 8388608 /dev/zero > big"), bash("stat -c %s big; rm big"))
    assert big.return_code == 153  # 128 + SIGXFSZ
    assert size.stdout == f"{BATTERY_LIMITS['file_size_bytes']}\n"


# -------------------------------------------------------------------------------------- processes


def test_zombies_and_orphans_are_reaped(box):
    # parents that never wait, children orphaned mid-flight, and a setsid'd grandchild still running
    neglect = (
        'python3 -c "import os, time\n'
        "for _ in range(20):\n"
        "    os.fork() or os._exit(0)\n"
        'time.sleep(0.3)"; '
        "for i in 1 2 3 4 5; do (sh -c 'sleep 0.2' &) ; done; "
        "setsid sh -c 'sleep 30' >/dev/null 2>&1 & echo done"
    )
    for _ in range(3):
        (r,) = box.run(bash(neglect))
        assert r.stdout == "done\n", r
    (z,) = box.run(
        python(
            "import os\n"
            "z = []\n"
            "for d in os.listdir('/proc'):\n"
            "    try:\n"
            "        if d.isdigit() and open(f'/proc/{d}/stat').read().rsplit(')', 1)[1].split()[0] == 'Z':\n"
            "            z.append(d)\n"
            "    except OSError:\n"
            "        pass\n"
            "print(len(z))\n"
        )
    )
    assert z.stdout.strip() == "0", z


def test_fd_exhaustion(box):
    code = r"""
import errno
held = []
try:
    while True:
        held.append(open('/dev/null'))
except OSError as e:
    print(errno.errorcode[e.errno], len(held))
"""
    (r,) = box.run(python(code))
    name, count = r.stdout.split()
    assert name == "EMFILE"  # errno 24
    assert 1024 - 64 < int(count) < 1024


def test_cpu_quota(box):
    code = r"""
import os, resource, time
before = resource.getrusage(resource.RUSAGE_CHILDREN)
t0 = time.monotonic()
pids = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        end = time.monotonic() + 2
        while time.monotonic() < end:
            pass
        os._exit(0)
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
wall = time.monotonic() - t0
after = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
print(wall, cpu)
"""
    (r,) = box.run(python(code))
    wall, cpu = map(float, r.stdout.split())
    box.timings["cpu"] = cpu / wall
    if box.check("cpu quota"):
        assert cpu <= 1.3 * wall, (wall, cpu)
    else:
        assert box.emulator.isolation().backend == "local/none"


# ----------------------------------------------------------------------------------------- output


def test_binary_and_invalid_utf8_output(box):
    sh, py = box.run(
        bash("head -c 65536 /dev/urandom; printf '\\377\\376\\000\\200\\355\\240\\200 end'"),
        python(
            "import sys\nsys.stdout.flush()\nsys.stdout.buffer.write(b'\\xff\\x00\\xc3(\\xed\\xa0\\x80 tail')"
        ),
    )
    for r in (sh, py):
        assert isinstance(r.stdout, str)
        r.stdout.encode("utf-8")  # strict: no lone surrogates survived into the JSON string
        json.loads(json.dumps(r.stdout))
    assert sh.return_code == 0 and sh.stdout.endswith(" end")
    assert py.stdout.endswith(" tail")


# --------------------------------------------------------------------------------- text editor


def _error_code(result: Any) -> str | None:
    return getattr(result, "error_code", None)


def test_text_editor_traversal_and_nul_paths(box, tmp_path):
    canary = tmp_path / "canary.txt"
    canary.write_text("host canary\n")
    before = canary.stat()
    escape = f"ce-escape-{secrets.token_hex(6)}"
    host_passwd = Path("/etc/passwd").read_text()
    steps = [
        view("/workspace/../../etc/passwd"),
        create(f"../../../tmp/{escape}", "escaped?\n"),
        create(f"/workspace/../../../..{canary}", "overwritten\n"),
        str_replace(f"../../..{canary}", "host canary", "pwned"),
        view(str(canary)),
        create("a\x00b", "nul\n"),
        create(f"/tmp/{escape}\x00/../x", "nul\n"),
    ]
    out = box.run(*steps)
    assert len(out) == len(steps)
    passwd, escaped, *rest = out
    assert _error_code(passwd) in (None, "file_not_found", "invalid_tool_input")
    if _error_code(passwd) is None:
        assert passwd.content != host_passwd  # the sandbox's own /etc/passwd, not the host's
    for r in (escaped, *rest):
        assert _error_code(r) in (None, "file_not_found", "invalid_tool_input", "unavailable"), r
    for nul in rest[-2:]:
        assert _error_code(nul) == "invalid_tool_input", nul
    # no host effect: the canary is untouched and nothing landed in the host's /tmp or working directory
    assert canary.read_text() == "host canary\n" and canary.stat().st_mtime_ns == before.st_mtime_ns
    assert not Path("/tmp", escape).exists()
    assert not Path("a").exists()
    # what the editor wrote landed inside the sandbox (or nowhere)
    (seen,) = box.run(bash(f"cat /tmp/{escape} 2>/dev/null; rm -f /tmp/{escape}; echo end"))
    assert seen.stdout in ("end\n", "escaped?\nend\n")


# ----------------------------------------------------------------------------------- privileges


def test_mount_userns_and_setuid_refused(box):
    mount, userns, status, su = box.run(
        bash("mkdir -p /tmp/m && mount -t tmpfs none /tmp/m"),
        bash("unshare -Ur true"),
        bash("grep -E '^(NoNewPrivs|CapEff):' /proc/self/status"),
        bash("su -c id root </dev/null; echo rc=$?; id -u"),
    )
    assert mount.return_code != 0
    assert userns.return_code != 0
    assert "NoNewPrivs:\t1" in status.stdout and "CapEff:\t0000000000000000" in status.stdout
    assert "uid=0" not in su.stdout and su.stdout.endswith("1000\n")
    assert "rc=0" not in su.stdout
    (gone,) = box.run(bash("grep -c ' /tmp/m ' /proc/mounts || true"))
    assert gone.stdout == "0\n"


# ---------------------------------------------------------------------------- containers apart


#: keeps a process named `ce-peer-<me>` alive while it lists the argv[0] of every process it can see
PEERS = r"""
import os, subprocess, time
me = open('/workspace/me.txt').read().strip()
child = subprocess.Popen(['bash', '-c', f'exec -a ce-peer-{me} sleep 30'])
start, seen = time.time(), set()
while time.time() < start + 4:
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                argv0 = open(f'/proc/{d}/cmdline', 'rb').read().split(b'\0')[0].decode()
            except OSError:
                continue
            if argv0.startswith('ce-peer-'):
                seen.add(argv0)
    time.sleep(0.1)
child.kill()
print(start, time.time(), ','.join(sorted(seen)))
"""


def _host_workspace(box: Box) -> Path | None:
    """Where the box's /workspace lives on the host (None: in a Docker volume, not on a host path)."""
    sandbox = box.emulator.runtime.services.backend.open(box.container)
    if box.backend == "local":
        return sandbox.workspace_dir
    workspace = sandbox.workspace
    return workspace.mountpoint / "workspace" if getattr(workspace, "kind", None) == "loop" else None


def test_two_containers_see_neither_each_others_files_nor_processes(battery_emulator):
    from concurrent.futures import ThreadPoolExecutor

    a, b = Box(battery_emulator), Box(battery_emulator)
    secret = secrets.token_hex(8)
    head, tail = secret[:8], secret[8:]
    # A keeps a secret in its workspace, its /tmp and its output directory; each box learns its name
    a.run(
        create("me.txt", "a\n"),
        create(f"{secret}.txt", f"{secret}\n"),
        bash(f'echo {secret} > /tmp/{secret}; echo {secret} > "$OUTPUT_DIR/{secret}"'),
    )
    b.run(create("me.txt", "b\n"))
    assert a.container != b.container
    a_workspace = _host_workspace(a)
    search = (
        f's={head}; s=${{s}}{tail}; ls -A /workspace /tmp "$OUTPUT_DIR" /files/input; '
        'grep -rlsI --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev --exclude-dir=usr "$s" /; '
        'find / \\( -path /proc -o -path /sys -o -path /usr \\) -prune -o -name "$s*" -print 2>/dev/null; '
        "echo end"
    )
    steps = [bash(search), view(f"/workspace/{secret}.txt"), view(f"/tmp/{secret}")]
    if a_workspace is not None:
        steps.append(view(str(a_workspace / f"{secret}.txt")))
    found, *views = b.run(*steps)
    assert secret not in found.stdout and "me.txt" in found.stdout and found.stdout.endswith("end\n"), found
    for r in views:
        assert _error_code(r) in ("file_not_found", "invalid_tool_input"), r
    # positive control: the same search in A finds the secret three times over
    (own,) = a.run(bash(search))
    assert own.stdout.count(secret) >= 6, own

    # processes: both scan /proc for 4 s at the same time, each keeping a marked process alive meanwhile.
    # The two scripted turns are identical (each reads its name from me.txt), so which concurrent request
    # takes which queued turn does not matter.
    def scan(box: Box) -> tuple[float, float, str]:
        (r,) = box.run(python(PEERS))
        start, end, seen = [*r.stdout.split(), ""][:3]
        return float(start), float(end), seen

    with ThreadPoolExecutor(max_workers=2) as pool:
        (a_start, a_end, a_seen), (b_start, b_end, b_seen) = pool.map(scan, (a, b))
    assert min(a_end, b_end) - max(a_start, b_start) > 2.0  # the two scans really overlapped
    assert (a_seen, b_seen) == ("ce-peer-a", "ce-peer-b")  # each saw its own marked process only
    a.assert_usable()
    b.assert_usable()


# ------------------------------------------------------------------------------------ symlinks


def test_symlink_out_of_the_workspace_is_not_followed(box, tmp_path):
    """A symlink in the workspace pointing at a host file (or the sandbox's own /etc) is resolved inside
    the sandbox by view/create/str_replace: the host file is never read nor written."""
    secret = "host-secret-" + secrets.token_hex(6)
    in_tmp = Path("/tmp", f"ce-host-canary-{secrets.token_hex(6)}")  # world-readable, in the host's /tmp
    private = tmp_path / "host-canary.txt"
    host_hostname = Path("/etc/hostname").read_text() if Path("/etc/hostname").exists() else None
    try:
        for path in (in_tmp, private):
            path.write_text(f"{secret}\n")
            path.chmod(0o644)
        before = {path: path.stat().st_mtime_ns for path in (in_tmp, private)}
        made = box.run(
            bash(f"ln -s {in_tmp} evil_tmp; ln -s {private} evil_private; ln -s /etc/hostname evil_etc"),
            bash("ln -s / root"),
        )
        assert [r.return_code for r in made] == [0, 0], made
        looked = box.run(
            view("evil_tmp"),
            view("evil_private"),
            view(f"root{in_tmp}"),
            view(f"/workspace/root{private}"),
            view("evil_etc"),
        )
        *dangling, etc = looked
        for r in dangling:  # the targets do not exist inside the sandbox
            assert _error_code(r) in ("file_not_found", "invalid_tool_input"), r
        # the sandbox's own /etc/hostname (or a refusal), never the host's
        if _error_code(etc) is None:
            assert (
                etc.content.strip() == "sandbox" and etc.content.strip() != (host_hostname or "").strip()
            ), etc
        else:
            assert _error_code(etc) in ("file_not_found", "invalid_tool_input"), etc
        wrote = box.run(
            str_replace("evil_tmp", secret, "pwned"),
            str_replace("evil_private", secret, "pwned"),
            create("evil_tmp", "pwned via create\n"),
            create("evil_private", "pwned via create\n"),
            create(f"root{private}", "pwned via create\n"),
            create("evil_etc", "pwned\n"),
        )
        for r in wrote[:2]:
            assert _error_code(r) in ("file_not_found", "invalid_tool_input"), r
        for path in (in_tmp, private):
            assert path.read_text() == f"{secret}\n" and path.stat().st_mtime_ns == before[path], path
        if host_hostname is not None:
            assert Path("/etc/hostname").read_text() == host_hostname
        (cat,) = box.run(bash("cat evil_tmp evil_private evil_etc 2>&1; rm -f evil_* root; echo end"))
        assert secret not in cat.stdout and cat.stdout.endswith("end\n"), cat
    finally:
        in_tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------- host secrets


@pytest.mark.slow
def test_host_canaries_are_invisible_to_the_local_sandbox(monkeypatch, tmp_path):
    """The environment variable and the host files exist before the emulator starts; the bwrap tier shows
    the sandbox neither (nor /root at all). The Docker twin is in tests/docker/test_docker_hostile.py."""
    with (
        plant_host_canaries(monkeypatch) as canaries,
        Emulator(backend="local", state_dir=tmp_path / "state", limits=BATTERY_LIMITS) as emulator,
    ):
        box = Box(emulator)
        assert os.environ[ENV_NAME] == canaries.token  # the emulator process has it
        found, root = box.run(bash(canaries.search_script()), bash("ls -A /root 2>&1; echo rc=$?"))
        report = emulator.isolation()
        if report.backend == "local/bwrap":
            assert {c.name: c.in_effect for c in report.checks}["read-only host filesystem"] is True
            assert canary_report(found.stdout) == CLEAN, found
            # the host's /root is not mounted: at most the path down to a Python prefix living under it
            listed = root.stdout.splitlines()
            if listed[-1] == "rc=0":
                prefix = Path(sys.base_prefix)
                allowed = {prefix.relative_to("/root").parts[0]} if prefix.is_relative_to("/root") else set()
                assert set(listed[:-1]) <= allowed, root
            else:
                assert "No such file or directory" in root.stdout, root
        else:
            # isolation "none": the agent is a host process and the report says the host is unprotected
            assert report.backend == "local/none" and report.warnings, report
        box.assert_usable()


# ----------------------------------------------------------------------------------- ptrace, i386

#: runs machine code in an RWX page: `int 0x80` (the i386 syscall entry) with eax=argv[1], ebx, ecx
INT80 = r"""
import ctypes, mmap, sys
nr, a, b = (int(x) for x in sys.argv[1:4])
code = (b'\x53' + b'\xb8' + nr.to_bytes(4, 'little') + b'\xbb' + a.to_bytes(4, 'little')
        + b'\xb9' + b.to_bytes(4, 'little') + b'\x31\xd2\xcd\x80\x5b\xc3')  # ..; int 0x80; pop rbx; ret
page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
page.write(code)
call = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
print('returned', call(), flush=True)
"""


def test_ptrace_attach_to_init_and_agent_fails(box):
    code = r"""
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
chain, p = [], os.getppid()
while p > 1:
    chain.append(p)
    p = int(open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[1])
for pid in [1] + chain:
    ctypes.set_errno(0)
    rc = libc.ptrace(16, pid, 0, 0)  # PTRACE_ATTACH
    print(pid, rc, errno.errorcode.get(ctypes.get_errno()))
"""
    (r,) = box.run(python(code))
    lines = r.stdout.splitlines()
    assert len(lines) >= 2, r  # pid 1 and at least the agent above this probe
    for line in lines:
        _pid, rc, err = line.split()
        assert (rc, err) == ("-1", "EPERM"), r


def test_i386_int80_socket_vsock_is_killed_by_seccomp(box):
    (r,) = box.run(
        bash(
            "cat > /tmp/int80.py <<'EOF'\n" + INT80 + "EOF\n"
            "python3 /tmp/int80.py 359 40 1; echo socket=$?\n"  # i386 socket(AF_VSOCK, SOCK_STREAM, 0)
            "python3 /tmp/int80.py 102 1 0; echo socketcall=$?\n"  # i386 socketcall(SYS_SOCKET, NULL)
            "rm /tmp/int80.py"
        )
    )
    # 159 = 128 + SIGSYS: the filter kills any non-x86_64 system call before it runs
    assert r.stdout == "socket=159\nsocketcall=159\n", r
    assert "returned" not in r.stdout and "Bad system call" in r.stderr


def test_bash_fork_bomb_is_contained_locally(tmp_path):
    limits = {**BATTERY_LIMITS, "timeout_s": 3}
    with Emulator(backend="local", state_dir=tmp_path / "state", limits=limits) as emulator:
        box = Box(emulator)
        box.run(bash("echo warm"))
        latencies: list[float] = []
        stop = threading.Event()

        def host_probe() -> None:
            while not stop.is_set():
                started = time.monotonic()
                subprocess.run(["true"], check=True)
                latencies.append(time.monotonic() - started)
                time.sleep(0.2)

        prober = threading.Thread(target=host_probe, daemon=True)
        prober.start()
        started = time.monotonic()
        try:
            # as typed, and with the shell waiting on what it started
            bomb, held = box.run(bash(":(){ :|:& };:"), bash(":(){ :|:& };: ; wait"))
        finally:
            stop.set()
            prober.join()
        elapsed = time.monotonic() - started
        assert elapsed < 2 * (3 + 10)
        assert box.check("pids cgroup") is True  # what holds the bomb at 256 processes
        for r in (bomb, held):
            # the top-level `:` returns at once and what it left running is killed when the command returns
            # (or, if it is still running at the deadline, killed then)
            if r.type == "bash_code_execution_result":
                assert r.return_code == 0, r
            else:
                assert r.error_code == "execution_time_exceeded", r
        # the pids limit was reached: bash reports its fork retries (in whichever call returned a result;
        # on a loaded machine both may run into the deadline instead, which the loop above accepts)
        stderr = "".join(getattr(r, "stderr", "") for r in (bomb, held))
        if any(r.type == "bash_code_execution_result" for r in (bomb, held)):
            assert "fork: retry: Resource temporarily unavailable" in stderr
        assert latencies and max(latencies) < 1.0, latencies  # the host kept forking promptly
        box.assert_usable()
