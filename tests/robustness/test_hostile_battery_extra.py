"""Hostile probes added after the sandbox audit, on both backends, through the official SDK over HTTP.

* a backend-wide limit on concurrent calls answers `too_many_requests` at once instead of queueing;
* user code that fills the agent's scratch dir (`/run/ce-agent`) does not break the `python` tool;
* `kill -STOP -1` stops the agent too: the host notices within about a second of the deadline, reports
  `execution_time_exceeded` and replaces the agent, instead of waiting the full host grace;
* (local) the sandbox's pid 1 is bwrap, and its command line names no host path.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from emulator import Emulator, bash, python, view
from emulator.sandbox.agent_client import HOST_GRACE_S

from .conftest import BACKENDS

CODE_EXECUTION_TOOL = {"type": "code_execution_20250825", "name": "code_execution"}
STOP_LIMIT_S = 2.0

#: the processes of the sandbox that are stopped (state T), other than this probe
STOPPED = r"""
import os
found = []
for d in os.listdir('/proc'):
    if d.isdigit() and int(d) != os.getpid():
        try:
            state = open(f'/proc/{d}/stat').read().rsplit(')', 1)[1].split()[0]
        except OSError:
            continue
        if state in ('T', 't'):
            found.append(d)
print('stopped', found)
"""


def _emulator(request: Any, tmp_path_factory: Any, name: str, limits: dict[str, Any]) -> Emulator:
    backend = request.param
    if backend == "docker":
        request.getfixturevalue("sandbox_image")
    state = tmp_path_factory.mktemp(f"{name}-{backend}")
    return Emulator(backend=backend, state_dir=state, limits=limits)


@pytest.fixture(scope="module", params=BACKENDS)
def one_call_emulator(request, tmp_path_factory):
    """At most one sandbox call at a time over the whole backend."""
    with _emulator(request, tmp_path_factory, "one-call", {"timeout_s": 30, "max_concurrent_calls": 1}) as e:
        yield e


@pytest.fixture(scope="module", params=BACKENDS)
def short_emulator(request, tmp_path_factory):
    """A 2 s time limit, so the SIGSTOP probe is quick."""
    with _emulator(request, tmp_path_factory, "short", {"timeout_s": STOP_LIMIT_S}) as e:
        yield e


REPL_TOOL = {"type": "code_execution_20260120", "name": "code_execution"}


def send(
    emulator: Emulator, *steps: Any, container: str | None = None, tool: dict[str, str] | None = None
) -> tuple[str, list]:
    """One scripted turn over real HTTP (so concurrent requests really run concurrently); returns the
    container id and the result blocks' contents."""
    emulator.add_turn(*steps)
    params: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 1024,
        "tools": [tool or CODE_EXECUTION_TOOL],
        "messages": [{"role": "user", "content": "go"}],
    }
    if container is not None:
        params["container"] = container
    message = emulator.anthropic_client(in_process=False).beta.messages.create(**params)
    return message.container.id, [b.content for b in message.content if b.type.endswith("_tool_result")]


def error_code(content: Any) -> str | None:
    return getattr(content, "error_code", None)


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.01)


# ------------------------------------------------------------------------------------- concurrency


def test_calls_past_the_limit_get_too_many_requests(one_call_emulator):
    emulator = one_call_emulator
    calls = emulator.runtime.services.backend.calls
    busy_container, _ = send(emulator, bash("true"))
    other_container, _ = send(emulator, bash("true"))

    slow: dict[str, Any] = {}

    def slow_call() -> None:
        slow["result"] = send(emulator, bash("sleep 2; echo slow"), container=busy_container)

    worker = threading.Thread(target=slow_call)
    worker.start()
    try:
        wait_for(lambda: calls.in_use == 1)
        started = time.monotonic()
        # another container: the limit is the backend's, not one sandbox's
        _, (other,) = send(emulator, bash("echo other"), container=other_container)
        # the busy container: fails fast too instead of queueing behind the running call
        _, (same,) = send(emulator, view("/workspace"), container=busy_container)
        # a new container
        _, (fresh,) = send(emulator, python("print('fresh')"))
        # a REPL cell (the 2026 tool runs Python in the container's long-lived interpreter)
        _, (cell,) = send(emulator, python("print('cell')"), tool=REPL_TOOL)
        refused_in = time.monotonic() - started
    finally:
        worker.join(60)
    assert error_code(other) == "too_many_requests", other
    assert error_code(same) == "too_many_requests", same
    assert error_code(fresh) == "too_many_requests", fresh
    assert error_code(cell) == "too_many_requests", cell
    assert refused_in < 1.5, refused_in  # answered at once, not after the 2 s call
    (slow_result,) = slow["result"][1]
    assert (slow_result.stdout, slow_result.return_code) == ("slow\n", 0)

    # the slot came back: the next calls run
    assert calls.in_use == 0
    _, (after,) = send(emulator, bash("echo after"), container=other_container)
    assert (after.stdout, after.return_code) == ("after\n", 0)


# ------------------------------------------------------------------------------------- scratch dir


def test_python_survives_a_full_agent_scratch_dir(one_call_emulator):
    emulator = one_call_emulator
    fill = (
        "mkdir -p /run/ce-agent 2>/dev/null; "
        "head -c 64M /dev/zero > /run/ce-agent/fill 2>/dev/null; "
        "head -c 64M /dev/zero > /tmp/fill 2>/dev/null; "
        "python3 -c \"import os; print('free', os.statvfs('/run/ce-agent').f_bavail)\""
    )
    _, (filled, first, failing) = send(
        emulator,
        bash(fill),
        python("print('python ok')"),
        python("def f():\n    raise ValueError('boom')\nf()\n"),
    )
    assert filled.stdout == "free 0\n", filled  # the scratch dir really is full
    assert (first.stdout, first.return_code) == ("python ok", 0), first
    # a traceback still names the code's lines, with their source, and nothing of the bootstrap
    assert failing.return_code == 1
    assert "    raise ValueError('boom')\n" in failing.stderr, failing.stderr
    assert failing.stderr.rstrip().endswith("ValueError: boom")
    assert "<string>" not in failing.stderr
    # the sandbox stays usable, python included, while the files are still there
    _, (again, clean) = send(
        emulator, python("print(2 + 2)"), bash("rm -f /run/ce-agent/fill /tmp/fill; echo ok")
    )
    assert (again.stdout, again.return_code) == ("4", 0), again
    assert clean.stdout == "ok\n"


# ------------------------------------------------------------------------------------- SIGSTOP


def test_sigstop_of_the_agent_recovers_soon_after_the_deadline(short_emulator):
    emulator = short_emulator
    container, (warm,) = send(emulator, bash("echo warm"))
    assert warm.stdout == "warm\n"
    started = time.monotonic()
    _, (stopped,) = send(emulator, bash("kill -STOP -1; sleep 30"), container=container)
    elapsed = time.monotonic() - started
    print(f"SIGSTOP recovery: answered in {elapsed:.2f} s ({emulator.config.backend})")
    assert error_code(stopped) == "execution_time_exceeded", stopped
    # the deadline plus about a second plus the restart, far from the old deadline + HOST_GRACE_S
    assert elapsed < STOP_LIMIT_S + HOST_GRACE_S / 2, elapsed
    started = time.monotonic()
    _, (echo, left) = send(emulator, bash("echo ok"), python(STOPPED), container=container)
    assert (echo.stdout, echo.return_code) == ("ok\n", 0), echo
    assert left.stdout == "stopped []", left  # nothing is left stopped
    assert time.monotonic() - started < 5.0


def test_a_live_agent_at_its_deadline_is_not_taken_for_hung(short_emulator):
    """Timeouts the agent handles itself (here with 200 processes to sweep) keep the same agent."""
    agent_pid = "import os; print(os.getppid())"
    container, (pid_a,) = send(short_emulator, python(agent_pid))
    many = "for i in $(seq 200); do sleep 30 & done; wait"
    _, (plain, swept, pid_b) = send(
        short_emulator, bash("sleep 30"), bash(many), python(agent_pid), container=container
    )
    assert error_code(plain) == "execution_time_exceeded"
    assert error_code(swept) == "execution_time_exceeded"
    assert pid_a.stdout == pid_b.stdout  # the same agent served them all: it was never replaced


# ------------------------------------------------------------------------------------- host paths


def test_local_pid1_cmdline_names_no_host_path(tmp_path):
    with Emulator(backend="local", isolation="bwrap", state_dir=tmp_path) as emulator:
        _, (cmdline,) = send(emulator, bash("tr '\\0' ' ' < /proc/1/cmdline"))
    assert cmdline.return_code == 0
    assert "bwrap" in cmdline.stdout
    assert str(tmp_path) not in cmdline.stdout, cmdline.stdout
    assert "/sandboxes/" not in cmdline.stdout
