"""The hostile-code battery of issue 10 that the per-backend suites do not already cover, on both backends.

Every probe is scripted through the official SDK, asserts the safe outcome, and then proves the same
container still usable: a follow-up call answers `ok` promptly with no process of the sandbox user left.
Where the local backend cannot enforce something on this machine, the test asserts that
`Emulator.isolation()` says so instead of skipping. No probe touches the network at all.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator, bash, create, python, str_replace, view

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
    print("DEBUG", box.backend, fill.stdout)
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


@pytest.mark.slow
def test_inode_exhaustion_in_workspace(box):
    code = r"""
import errno, os, time
os.mkdir('inodes')
deadline = time.monotonic() + 15
n, err = 0, None
try:
    while n < 200_000 and time.monotonic() < deadline:
        os.close(os.open(f'inodes/{n}', os.O_CREAT | os.O_WRONLY, 0o644))
        n += 1
except OSError as e:
    err = errno.errorcode[e.errno]
st = os.statvfs('/workspace')
print(n, err, st.f_files)
"""
    started = time.monotonic()
    (fill,) = box.run(python(code))
    print("DEBUG", box.backend, fill.stdout)
    n, err, files = fill.stdout.split()
    (clean,) = box.run(bash("rm -rf inodes && touch after && ls after"))
    box.timings["inodes"] = time.monotonic() - started
    assert clean.stdout == "after\n"
    assert err in ("None", "ENOSPC"), fill
    assert int(n) > 10_000
    if box.backend == "docker":
        # the workspace is its own filesystem: its inode table is the loop image's, not the host's
        assert box.check("workspace disk quota") is True
        assert 0 < int(files) < 2_000_000
    else:
        assert box.check("disk quota") is False


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
    print("DEBUG", box.backend, wall, cpu)
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
    print("DEBUG", box.backend, out)
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
