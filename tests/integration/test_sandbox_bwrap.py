"""The local sandbox backend in its bubblewrap tier: semantics plus the hostile battery (sandbox-notes §8(c)).

Network probes only ever aim at listeners these tests start themselves on the host's loopback.
"""

from __future__ import annotations

import difflib
import errno
import os
import secrets
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from emulator.sandbox import (
    CreateResult,
    FileOpError,
    Limits,
    LocalBackend,
    StrReplaceResult,
    ViewResult,
)
from emulator.sandbox.agent import TRUNCATION_MARKER

pytestmark = pytest.mark.skipif(not Path("/usr/bin/bwrap").exists(), reason="bubblewrap not installed")

LIMITS = Limits(timeout_s=10)
IS_ROOT = os.geteuid() == 0


def _procs_with(marker: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd:
            found.append(f"{pid}: {cmd}")
    return found


def _marker() -> str:
    return f"{time.time_ns() % 1000}.{secrets.randbelow(1000) + 1}"


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    with LocalBackend(tmp_path_factory.mktemp("bwrap-state"), LIMITS, isolation="bwrap") as b:
        yield b


@pytest.fixture
def sb(backend):
    s = backend.open("c-" + secrets.token_hex(4))
    yield s
    s.destroy()


# ------------------------------------------------------------------------------------------- basics


def test_auto_picks_bwrap(tmp_path):
    with LocalBackend(tmp_path, LIMITS, isolation="auto", selfcheck=False) as b:
        assert b.tier == "bwrap"


def test_stdout_stderr_return_code(sb):
    r = sb.run_command("echo out; echo err >&2; exit 3")
    assert (r.stdout, r.stderr, r.return_code) == ("out\n", "err\n", 3)
    assert sb.run_command("pwd; echo $HOME").stdout == "/workspace\n/workspace\n"
    r = sb.run_python("import sys; print(sys.argv[0].startswith('/run/')); sys.exit(2)")
    assert (r.stdout, r.return_code) == ("True\n", 2)


def test_environment(sb, monkeypatch):
    canary = "ce-canary-" + secrets.token_hex(8)
    monkeypatch.setenv("CE_CANARY", canary)
    sb.stop()  # the next call starts a new agent while the canary is in the emulator's environment
    r = sb.run_command("env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'")
    assert canary not in r.stdout
    env = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    assert env["HOME"] == "/workspace"
    assert env["INPUT_DIR"] == "/files/input"
    assert env["OUTPUT_DIR"] == sb.output_dir and sb.output_dir.startswith("/files/output/")
    assert len(sb.output_dir.rsplit("/", 1)[1]) == 16
    assert env["OMP_NUM_THREADS"] == "1" and env["LANG"] == "C.UTF-8"
    assert sb.run_command("hostname").stdout == "sandbox\n"


def test_uid_is_not_root(sb):
    assert sb.run_command("id -u; id -un").stdout == "1000\nuser\n"
    sb.run_command("touch mine")
    owner = (sb.workspace_dir / "mine").stat().st_uid
    assert owner != 0
    if IS_ROOT:
        assert owner == 61000
    status = sb.run_command("grep -E '^(NoNewPrivs|CapEff|Seccomp):' /proc/self/status").stdout
    assert "NoNewPrivs:\t1" in status and "CapEff:\t0000000000000000" in status and "Seccomp:\t2" in status


# ------------------------------------------------------------------------------ processes and limits


def test_timeout_kills_escapees(sb):
    m = _marker()
    t0 = time.monotonic()
    r = sb.run_command(
        f"setsid sleep {m} >/dev/null 2>&1 & nohup sleep {m} >/dev/null 2>&1 & (sleep {m} &); sleep {m}",
        timeout_s=2,
    )
    assert r.timed_out and r.return_code == 137
    assert time.monotonic() - t0 < 8
    assert _procs_with(f"sleep {m}") == []
    assert "sleep" not in sb.run_command("ps -eo comm").stdout


def test_background_job_killed_after_return(sb):
    m = _marker()
    t0 = time.monotonic()
    r = sb.run_command(f"sleep {m} & echo started")
    assert r.stdout == "started\n" and time.monotonic() - t0 < 3
    assert _procs_with(f"sleep {m}") == []
    assert sb.run_command("pgrep sleep; echo rc=$?").stdout == "rc=1\n"


def test_kill_all_restarts_the_sandbox(sb):
    sb.create("keep.txt", "kept")
    r = sb.run_command("echo before; sleep 0.3; kill -9 1; kill -9 -1; sleep 5; echo never")
    assert r.sandbox_restarted and r.return_code == 137
    assert r.stdout == "before\n"
    after = sb.run_command("cat keep.txt")
    assert (after.stdout, after.return_code, after.sandbox_restarted) == ("kept", 0, False)


def test_output_cap_and_flood(sb):
    cap = LIMITS.output_cap_bytes
    r = sb.run_command(f"head -c {cap + 5000} /dev/zero | tr '\\0' a")
    assert r.truncated and not r.output_killed and r.return_code == 0
    assert r.stdout == "a" * cap + TRUNCATION_MARKER.format(omitted=5000)
    t0 = time.monotonic()
    r = sb.run_command("yes", timeout_s=30)
    assert time.monotonic() - t0 < 10
    assert r.output_killed and r.truncated and r.return_code == 137 and not r.timed_out
    assert sb.run_command("echo ok").stdout == "ok\n"


@pytest.fixture(scope="module")
def small_backend(tmp_path_factory):
    lim = Limits(timeout_s=20, memory_bytes=256 * 1024**2, pids=64)
    with LocalBackend(tmp_path_factory.mktemp("small"), lim, isolation="bwrap", selfcheck=False) as b:
        if not b.report().enforced("memory cgroup"):
            pytest.skip("no writable memory cgroup here (needs root)")
        yield b


def test_memory_limit_visible_and_oom_detected(small_backend):
    sb = small_backend.open("oom")
    limit = sb.run_command(
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"
    )
    assert limit.stdout.strip() == str(256 * 1024**2)
    r = sb.run_python("b = b'\\x01' * (600 << 20)\nprint('survived')")
    assert r.return_code == 137 and r.oom_killed
    assert "survived" not in r.stdout
    assert sb.run_command("echo ok").stdout == "ok\n"


def test_pids_limit(small_backend):
    if not small_backend.report().enforced("pids cgroup"):
        pytest.skip("no writable pids cgroup")
    sb = small_backend.open("pids")
    code = (
        "import os, time\nn = 0\ntry:\n    while n < 500:\n        pid = os.fork()\n        if pid == 0:\n"
        "            time.sleep(60)\n            os._exit(0)\n        n += 1\nexcept OSError as e:\n"
        "    print(n, e.errno)\n"
    )
    r = sb.run_python(code)
    n, err = r.stdout.split()
    assert int(n) < 64 and int(err) == errno.EAGAIN
    # the forked children were all killed when the command returned: only the agent itself is left
    assert sorted(sb.run_command("ps -eo comm --no-headers").stdout.split()) == ["bwrap", "ps", "python3"]


# ----------------------------------------------------------------------------------- isolation


def test_only_loopback_interface(sb):
    lines = sb.run_command("cat /proc/net/dev").stdout.splitlines()[2:]
    assert [line.split(":")[0].strip() for line in lines] == ["lo"]
    assert sb.run_command("cat /etc/resolv.conf").stdout == ""


def test_host_loopback_listener_unreachable(sb):
    accepted: list[object] = []
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    port = srv.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, peer = srv.accept()
            except OSError:
                continue
            accepted.append(peer)
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        code = (
            "import socket\ntry:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    print('connected')\n"
            "except OSError as e:\n    print('errno', e.errno)\n"
        )
        r = sb.run_python(code)
        assert r.stdout.strip() == f"errno {errno.ECONNREFUSED}"
        time.sleep(0.3)
    finally:
        stop.set()
        t.join()
        srv.close()
    assert accepted == []


def test_sensitive_files_and_writes(sb):
    r = sb.run_command("head -c 64 /etc/shadow")
    assert r.return_code != 0 and r.stdout == ""
    passwd = sb.view("/workspace/../../etc/passwd")
    assert isinstance(passwd, ViewResult) and "user:x:1000:1000" in passwd.content
    assert len(passwd.content.splitlines()) == 3
    for target in ("/usr/bin/ce-x", "/etc/ce-x", "/ce-x"):
        r = sb.run_command(f"touch {target}")
        assert r.return_code != 0 and "Read-only file system" in r.stderr, target
    assert sb.create("/usr/ce-x", "x").code == "invalid_tool_input"
    assert sb.run_command("ls /root /home /var/run/docker.sock 2>&1; echo rc=$?").stdout.endswith("rc=2\n")


def test_privileged_syscalls_refused(sb):
    code = """
import ctypes, errno, socket
libc = ctypes.CDLL(None, use_errno=True)
out = []
try:
    socket.socket(40, socket.SOCK_STREAM)
    out.append("vsock:created")
except OSError as e:
    out.append(f"vsock:{e.errno}")
try:
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    out.append("raw:created")
except OSError as e:
    out.append(f"raw:{e.errno}")
for name, nr in (("bpf", 321), ("perf", 298), ("keyctl", 250), ("io_uring", 425), ("unshare", 272)):
    rc = libc.syscall(nr, 0, 0, 0, 0, 0)
    out.append(f"{name}:{rc}:{ctypes.get_errno()}")
print(" ".join(out))
"""
    got = dict(item.split(":", 1) for item in sb.run_python(code).stdout.split())
    assert got["vsock"] == str(errno.EAFNOSUPPORT)
    assert got["raw"] == str(errno.EPERM)
    for name in ("bpf", "perf", "keyctl", "io_uring", "unshare"):
        assert got[name] == f"-1:{errno.EPERM}", name
    r = sb.run_command("unshare -Ur true")
    assert r.return_code != 0
    r = sb.run_command("mount -t tmpfs none /tmp")
    assert r.return_code != 0


def test_agent_is_out_of_reach(sb):
    # commands share the agent's uid, but the agent is non-dumpable: its protocol pipes stay private
    r = sb.run_command("ls /proc/$PPID/fd; cat /proc/$PPID/environ")
    assert r.return_code != 0 and "Permission denied" in r.stderr


def test_symlink_to_host_file_is_not_followed(sb, tmp_path):
    canary = tmp_path / "host-canary.txt"
    secret = "host-secret-" + secrets.token_hex(6)
    canary.write_text(secret)
    canary.chmod(0o644)
    sb.run_command(f"ln -s {canary} evil")
    r = sb.view("evil")
    assert isinstance(r, FileOpError) and r.code == "file_not_found"
    with pytest.raises(FileNotFoundError):
        sb.read_file("evil")
    assert secret not in sb.run_command("cat evil").stdout
    assert sb.view(str(canary)).code == "file_not_found"


def test_two_containers_cannot_see_each_other(backend):
    a, b = backend.open("iso-a"), backend.open("iso-b")
    try:
        secret = "secret-" + secrets.token_hex(6)
        a.create(f"{secret}.txt", secret)
        a.run_command(f"echo {secret} > /tmp/{secret}")
        seen = b.run_command(
            f"ls -A /workspace /tmp /files/input; ls /files/output; grep -rl {secret} / --exclude-dir=proc "
            "--exclude-dir=sys --exclude-dir=usr --exclude-dir=dev 2>/dev/null; true"
        ).stdout
        assert secret not in seen
        assert b.view(str(a.workspace_dir / f"{secret}.txt")).code == "file_not_found"
        assert b.view(f"{secret}.txt").code == "file_not_found"
    finally:
        a.destroy()
        b.destroy()


def test_report(backend):
    report = backend.report()
    assert report.backend == "local/bwrap"
    for name in (
        "network namespace",
        "pid namespace",
        "user namespace",
        "read-only host filesystem",
        "curated /etc",
        "no new privileges",
        "capabilities dropped",
        "seccomp",
        "rlimits",
    ):
        assert report.enforced(name), name
    if IS_ROOT:
        assert report.enforced("dedicated uid")
    assert not report.enforced("disk quota")


# ----------------------------------------------------------------------------------- files


def test_file_ops(sb):
    assert sb.create("/workspace/a/b.txt", "one\ntwo\n") == CreateResult(is_file_update=False)
    assert sb.create("a/b.txt", "one\ntwo\nthree\n") == CreateResult(is_file_update=True)
    assert sb.view("a/b.txt") == ViewResult("text", "one\ntwo\nthree", 3, 1, 3)
    assert sb.view("/workspace/a").content == "b.txt"
    before = "".join(f"row {i}\n" for i in range(1, 13))
    sb.create("t.txt", before)
    r = sb.str_replace("t.txt", "row 6\n", "ROW six\nROW 6b\n")
    after = before.replace("row 6\n", "ROW six\nROW 6b\n")
    diff = list(difflib.unified_diff(before.splitlines(), after.splitlines(), n=3, lineterm=""))
    assert diff[2] == "@@ -3,7 +3,8 @@"
    assert r == StrReplaceResult(3, 7, 3, 8, tuple(diff[3:]))
    assert sb.run_command("cat t.txt").stdout == after
    assert sb.str_replace("t.txt", "nope", "x") == FileOpError(
        "string_not_found", "String to replace not found in file."
    )
    assert sb.str_replace("t.txt", "row", "x").code == "invalid_tool_input"
    assert sb.view("missing").code == "file_not_found"
    assert sb.str_replace("missing", "a", "b").code == "file_not_found"
    assert sb.view("bad\x00path").code == "invalid_tool_input"
    assert sb.view("").code == "invalid_tool_input"


def test_tmp_and_workspace_persist(tmp_path):
    with LocalBackend(tmp_path, LIMITS, isolation="bwrap", selfcheck=False) as b:
        sb = b.open("persist")
        assert sb.create("/tmp/x.py", "print(6 * 7)") == CreateResult(False)
        assert sb.run_command("python3 /tmp/x.py").stdout == "42\n"
        sb.run_command("echo w > w.txt")
        sb.stop()
        assert sb.run_command("python3 /tmp/x.py; cat w.txt").stdout == "42\nw\n"
        out_dir = sb.output_dir
    with LocalBackend(tmp_path, LIMITS, isolation="bwrap", selfcheck=False) as b:
        sb = b.open("persist")
        assert sb.output_dir == out_dir
        assert sb.run_command("python3 /tmp/x.py; cat /workspace/w.txt").stdout == "42\nw\n"


def test_output_files_and_transfers(sb):
    sb.put_file("$INPUT_DIR/in.csv", b"x,y\n")
    assert sb.run_command("cat /files/input/in.csv").stdout == "x,y\n"
    r = sb.run_command('cp /files/input/in.csv "$OUTPUT_DIR/out.csv"; echo z > plain.txt')
    assert [(f.path, f.name, f.size_bytes) for f in r.output_files] == [
        (f"{sb.output_dir}/out.csv", "out.csv", 4)
    ]
    assert sb.read_file(r.output_files[0].path) == b"x,y\n"
    assert sb.read_file("plain.txt") == b"z\n"


def test_python_outside_usr_is_staged(tmp_path):
    if os.path.realpath(sys.executable).startswith("/usr/"):
        pytest.skip("the emulator's interpreter already lives under /usr")
    with LocalBackend(
        tmp_path, LIMITS, isolation="bwrap", sandbox_python=sys.executable, selfcheck=False
    ) as b:
        sb = b.open("py")
        r = sb.run_python("import sys; print(sys.version.split()[0])")
        assert r.stdout.strip() == sys.version.split()[0], r.stderr
        assert sb.run_command("python3 -c 'print(1)'").stdout == "1\n"
