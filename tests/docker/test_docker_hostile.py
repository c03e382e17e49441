"""The hostile battery of sandbox-notes §8(c) against the Docker backend, through the official SDK.

Network probes only ever aim at a listener this test starts on the host's loopback. After each probe the
same container must still answer (`echo ok` within 2 s) with no process of the sandbox user left behind.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time

import pytest

from emulator import Emulator, bash, python
from tests.robustness.canaries import CLEAN, ENV_NAME, plant_host_canaries
from tests.robustness.canaries import report as canary_report

from .conftest import ask, results

pytestmark = pytest.mark.docker


#: lists the sandbox user's processes other than this probe and its ancestors (its shell and the agent)
LEFTOVERS = (
    "import os\n"
    "anc, p = set(), os.getpid()\n"
    "while p > 1:\n"
    "    anc.add(p)\n"
    "    p = int(open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[1])\n"
    "left = []\n"
    "for d in os.listdir('/proc'):\n"
    "    if d.isdigit() and int(d) not in anc:\n"
    "        try:\n"
    "            if os.stat(f'/proc/{d}').st_uid == 1000:\n"
    "                left.append(open(f'/proc/{d}/comm').read().strip())\n"
    "        except OSError:\n"
    "            pass\n"
    "print('ok', left)\n"
)


def assert_usable(emulator, container: str) -> None:
    """A follow-up call in the same container answers within 2 s and no user process is left."""
    started = time.monotonic()
    message = ask(emulator, python(LEFTOVERS), container=container)
    (result,) = results(message)
    assert result.stdout.rstrip("\n") == "ok []", result
    assert time.monotonic() - started < 2.0


def test_network_only_loopback_and_host_listener_unreachable(docker_emulator):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept())
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    code = (
        "import socket\n"
        "print(sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]))\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "    print('connected')\n"
        "except OSError as e:\n"
        "    print(type(e).__name__)\n"
        "try:\n"
        "    socket.getaddrinfo('localhost-does-not-resolve.invalid', 80)\n"
        "except OSError as e:\n"
        "    print('no resolver')\n"
    )
    try:
        message = ask(
            docker_emulator, python(code), bash("cat /etc/resolv.conf | grep -c nameserver || true")
        )
    finally:
        stop.set()
        thread.join()
        listener.close()
    py, resolv = results(message)
    assert py.stdout.rstrip("\n") == "['lo']\nConnectionRefusedError\nno resolver"
    assert resolv.stdout.strip() == "0"
    assert accepted == []
    assert_usable(docker_emulator, message.container.id)


def docker_bridge_addresses() -> list[str]:
    """IPv4 addresses of this machine's Docker bridges (docker0, br-*): local addresses, on which a test may
    start a listener of its own (sandbox-notes: the rule for network probes)."""
    found = []
    for interface in os.listdir("/sys/class/net"):
        if interface != "docker0" and not interface.startswith("br-"):
            continue
        shown = subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "dev", interface], capture_output=True, text=True
        )
        found += [line.split()[3].split("/")[0] for line in shown.stdout.splitlines() if " inet " in line]
    return found


def test_a_listener_on_the_docker_bridge_is_unreachable(docker_emulator):
    addresses = docker_bridge_addresses()
    if not addresses:
        pytest.skip(
            "no Docker bridge on this machine (dockerd --bridge=none, as in CI): nothing to listen on"
        )
    listeners = []
    for address in addresses:
        listener = socket.socket()
        listener.bind((address, 0))
        listener.listen()
        listener.setblocking(False)
        listeners.append(listener)
    targets = [listener.getsockname()[:2] for listener in listeners]
    code = (
        "import socket\n"
        f"for target in {targets!r}:\n"
        "    try:\n"
        "        socket.create_connection(tuple(target), timeout=2)\n"
        "        print('connected')\n"
        "    except OSError as e:\n"
        "        print(e.errno)\n"
    )
    try:
        message = ask(docker_emulator, python(code))
        (result,) = results(message)
        accepted = []
        for listener in listeners:
            with contextlib.suppress(BlockingIOError):
                accepted.append(listener.accept())
    finally:
        for listener in listeners:
            listener.close()
    assert result.stdout.split() == ["101"] * len(targets)  # ENETUNREACH: no route, no packet sent
    assert accepted == []
    assert_usable(docker_emulator, message.container.id)


def test_vsock_raw_sockets_and_privileged_calls_denied(docker_emulator):
    code = (
        "import ctypes, errno, socket\n"
        "def probe(fn):\n"
        "    try:\n"
        "        fn()\n"
        "        return 'allowed'\n"
        "    except OSError as e:\n"
        "        return errno.errorcode[e.errno]\n"
        "print(probe(lambda: socket.socket(40, socket.SOCK_STREAM)))\n"
        "print(probe(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)))\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "calls = ((321, (0, 0, 0)), (298, (0, 0, -1, -1, 0)), (250, (0,)),\n"
        "         (425, (1, 0)), (272, (1 << 28,)))\n"
        "for nr, args in calls:\n"
        "    rc = libc.syscall(nr, *args)\n"
        "    print(nr, rc, errno.errorcode.get(ctypes.get_errno()))\n"
    )
    message = ask(
        docker_emulator, python(code), bash("grep -E 'NoNewPrivs|CapEff|Seccomp:' /proc/self/status")
    )
    py, status = results(message)
    lines = py.stdout.splitlines()
    assert lines[0] == "EAFNOSUPPORT" and lines[1] == "EPERM"
    assert lines[2:] == [f"{nr} -1 EPERM" for nr in (321, 298, 250, 425, 272)]
    assert "NoNewPrivs:\t1" in status.stdout and "CapEff:\t0000000000000000" in status.stdout
    assert "Seccomp:\t2" in status.stdout


def test_no_docker_socket_no_host_env_no_host_secrets(sandbox_image, monkeypatch, tmp_path):
    """Canaries are planted before the emulator starts: an environment variable of the emulator process, a
    world-readable file in the host's /tmp and one under /root, each holding one random token. The sandbox
    searches its environment, every /proc/*/environ it can read, every readable file (`grep -r /`) and
    every file name, and opens the two paths directly: the token is nowhere."""
    with (
        plant_host_canaries(monkeypatch) as canaries,
        Emulator(backend="docker", state_dir=tmp_path / "state", limits={"timeout_s": 120}) as emulator,
    ):
        assert os.environ[ENV_NAME] == canaries.token  # the emulator process has it
        message = ask(
            emulator,
            bash("ls /var/run/docker.sock /run/docker.sock 2>&1; env | grep -ci docker"),
            bash(canaries.search_script()),
            bash("head -1 /etc/shadow"),
            bash("touch /usr/bin/x; touch /etc/x; touch /x; echo 1 > /proc/sys/kernel/sysrq"),
            bash("mount -t tmpfs none /tmp/m; unshare -Ur true; su -c id root </dev/null; id -u"),
        )
        sock, found, shadow, writes, escalate = results(message)
        assert "No such file or directory" in sock.stdout and sock.stdout.rstrip().endswith("0")
        assert canary_report(found.stdout) == CLEAN, found
        assert shadow.return_code != 0 and "Permission denied" in shadow.stderr
        assert writes.return_code != 0 and writes.stderr.count("Read-only file system") >= 3
        assert escalate.stdout.endswith("1000\n")
        assert "must be superuser" in escalate.stderr or "permission denied" in escalate.stderr.lower()
        assert_usable(emulator, message.container.id)


def test_kill_everything_leaves_the_sandbox_usable(docker_emulator):
    message = ask(docker_emulator, bash("kill -9 1; kill -9 -1; echo unreachable"))
    (result,) = results(message)
    assert result.return_code == 137 and "unreachable" not in result.stdout
    assert_usable(docker_emulator, message.container.id)
    again = ask(docker_emulator, bash("echo still here"), container=message.container.id)
    assert results(again)[0].stdout == "still here\n"


def test_fork_bomb_is_contained(small_emulator):
    started = time.monotonic()
    message = ask(small_emulator, bash(":(){ :|:& };:"))
    (result,) = results(message)
    assert time.monotonic() - started < 3 + 10
    assert result.type in ("bash_code_execution_result", "bash_code_execution_tool_result_error")
    assert_usable(small_emulator, message.container.id)


def test_memory_bomb_is_oom_killed_and_detected(small_emulator):
    message = ask(small_emulator, bash("true"))
    container = message.container.id
    box = small_emulator.runtime.services.backend.open(container)
    result = box.run_command("python3 -c \"b = bytearray(1 << 30); print('survived')\"", timeout_s=30)
    assert result.return_code == 137 and result.oom_killed and not result.timed_out, result
    assert "survived" not in result.stdout
    # a small allocation works right after
    assert box.run_command('python3 -c "b = bytearray(100 << 20); print(len(b))"').stdout == f"{100 << 20}\n"
    api = ask(small_emulator, bash('python3 -c "bytearray(1 << 30)"'), container=container)
    assert results(api)[0].return_code == 137
    assert_usable(small_emulator, container)


def test_timeout_kills_escaped_children(small_emulator):
    started = time.monotonic()
    message = ask(
        small_emulator,
        bash(
            "setsid sleep 1000 >/dev/null 2>&1 & nohup sleep 1000 >/dev/null 2>&1 & "
            "(sleep 1000 &); sleep 1000"
        ),
    )
    elapsed = time.monotonic() - started
    (result,) = results(message)
    assert result.type == "bash_code_execution_tool_result_error"
    assert result.error_code == "execution_time_exceeded"
    assert elapsed < 3 + 2
    assert_usable(small_emulator, message.container.id)


def test_stdout_flood_is_truncated(docker_emulator):
    started = time.monotonic()
    message = ask(docker_emulator, bash("head -c 100M /dev/zero | tr '\\0' a"))
    (result,) = results(message)
    cap = docker_emulator.config.limits.output_cap_bytes
    assert result.stdout.startswith("a" * 1000)
    assert "[output truncated: " in result.stdout and len(result.stdout) < cap + 200
    assert time.monotonic() - started < 10
    assert_usable(docker_emulator, message.container.id)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_disk_fill_stops_at_the_workspace_cap(docker_emulator):
    message = ask(
        docker_emulator,
        bash(
            "dd if=/dev/zero of=/workspace/fill bs=1M count=6144 2>&1 | grep -o 'No space.*'; "
            "df -B1 /workspace | tail -1"
        ),
    )
    (result,) = results(message)
    assert result.return_code == 0
    assert "No space left on device" in result.stdout
    size = int(result.stdout.splitlines()[-1].split()[1])
    assert abs(size - 5 * 1024**3) < 0.05 * 5 * 1024**3
    after = ask(
        docker_emulator,
        bash("rm /workspace/fill; python3 -c \"b = bytearray(1 << 30); print('alloc ok')\""),
        container=message.container.id,
    )
    assert results(after)[0].stdout == "alloc ok\n"
    assert_usable(docker_emulator, message.container.id)
