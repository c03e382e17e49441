"""The in-sandbox agent's REPL worker, driven over the agent's real frame protocol (no sandbox around it).

The agent runs as a plain child process here, which is how the local backend's "none" tier runs it.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.sandbox import agent as agent_module
from emulator.sandbox.agent import TRUNCATION_MARKER, Channel, _frame, _FrameBuffer

#: Runs the agent from source read on stdin, with a `__file__` that does not exist (as the Docker backend's
#: bootstrap does); {define} is where such a bootstrap hands the REPL worker the source.
FROM_SOURCE = (
    "import os\n"
    "n = int.from_bytes(os.read(0, 4), 'big')\n"
    "src = b''\n"
    "while len(src) < n:\n"
    "    src += os.read(0, n - len(src))\n"
    "g = {{'__name__': '__main__', '__file__': '/nonexistent/agent.py'{define}}}\n"
    "exec(compile(src, '/nonexistent/agent.py', 'exec'), g)\n"
)


def _measured(argv: list[str]) -> list[str]:
    """The agent under `coverage run` when this session measures coverage (the backends start it with
    `-I -S`, which no coverage hook reaches); its data file is combined with the session's."""
    try:
        import coverage
    except ImportError:  # pragma: no cover - coverage comes with the dev extras
        return argv
    current = coverage.Coverage.current()
    if current is None:
        return argv
    data_file = current.config.data_file
    return [
        sys.executable,
        "-I",
        "-m",
        "coverage",
        "run",
        "--parallel-mode",
        f"--rcfile={current.config.config_file or ''}",
        f"--data-file={data_file}",
        *argv[3:],
    ]


class Driver:
    """Speaks the agent protocol: one request at a time, output frames collected per request."""

    def __init__(self, workdir: Path, bootstrap: str | None = None) -> None:
        source = Path(agent_module.__file__).read_bytes()
        argv = [sys.executable, "-I", "-S"] + (["-c", bootstrap] if bootstrap else [agent_module.__file__])
        if not bootstrap:
            argv = _measured(argv)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if bootstrap:
            self.proc.stdin.write(len(source).to_bytes(4, "big") + source)
            self.proc.stdin.flush()
        self.ch = Channel(self.proc.stdout.fileno(), self.proc.stdin.fileno())
        self.ids = 0
        for name in ("in", "out", "scratch"):
            (workdir / name).mkdir(parents=True, exist_ok=True)
        config = {
            "workdir": str(workdir),
            "input_dir": str(workdir / "in"),
            "output_dir": str(workdir / "out"),
            "scratch_dir": str(workdir / "scratch"),
            "env": {
                "PATH": os.environ["PATH"],
                "PYTHONUNBUFFERED": "1",
                "HOME": str(workdir),
                "OUTPUT_DIR": str(workdir / "out"),
            },
            "python": sys.executable,
        }
        self.info = self.ok("init", config=config)

    def request(self, op: str, **fields: Any) -> tuple[dict[str, Any], str, str, list[dict[str, Any]]]:
        self.ids += 1
        self.ch.write({"id": self.ids, "op": op, **fields})
        out = {1: b"", 2: b""}
        progress = []
        while True:
            frame = self.ch.read()
            assert frame is not None, "the agent died"
            assert frame["id"] == self.ids
            if frame["type"] == "out":
                out[frame["fd"]] += base64.b64decode(frame["data"])
            elif frame["type"] in ("result", "error"):
                return frame, out[1].decode(), out[2].decode(), progress
            else:
                progress.append(frame)

    def ok(self, op: str, **fields: Any) -> dict[str, Any]:
        frame, stdout, stderr, _ = self.request(op, **fields)
        assert frame["type"] == "result", frame
        frame["stdout"], frame["stderr"] = stdout, stderr
        return frame

    def cell(self, code: str, **fields: Any) -> dict[str, Any]:
        return self.ok("repl_run", code=code, timeout=fields.pop("timeout", 20), **fields)

    def resume(self, results: dict[str, str], **fields: Any) -> dict[str, Any]:
        answers = {call_id: {"content": text, "is_error": False} for call_id, text in results.items()}
        return self.ok("repl_resume", results=answers, **fields)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.request("shutdown")
        self.proc.wait(timeout=10)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Driver]:
    driver = Driver(tmp_path / "box")
    yield driver
    driver.close()


def _pids_with(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmd and state != "Z":
            found.append(int(pid))
    return found


# ------------------------------------------------------------------------------------------- persistence


def test_state_persists_across_cells_and_requests(agent):
    first = agent.cell("x = 41\nprint('hi', x)")
    assert (first["stdout"], first["return_code"], first["restarted"]) == ("hi 41\n", 0, False)
    second = agent.cell("x += 1\nprint(x)")
    assert second["stdout"] == "42\n"
    assert second["worker_died"] is False


def test_fresh_namespace_without_persist(agent):
    agent.cell("kept = 1")
    fresh = agent.cell("print('kept' in globals(), __name__)", persist=False)
    assert fresh["stdout"] == "False __main__\n"
    assert agent.cell("print(kept)")["stdout"] == "1\n"  # the persistent namespace is untouched


def test_classes_defined_in_a_cell_pickle(agent):
    agent.cell("import pickle\nclass Point:\n    def __init__(self, x): self.x = x\n")
    assert agent.cell("print(pickle.loads(pickle.dumps(Point(3))).x)")["stdout"] == "3\n"


def test_errors_print_like_a_script(agent):
    failed = agent.cell("y = 1\n1/0")
    assert failed["return_code"] == 1
    assert failed["stderr"].startswith('Traceback (most recent call last):\n  File "<cell ')
    assert failed["stderr"].endswith("ZeroDivisionError: division by zero\n")
    assert "agent.py" not in failed["stderr"]
    assert agent.cell("print(y)")["stdout"] == "1\n"  # an exception does not lose the state
    syntax = agent.cell("def f(:\n    pass")
    assert syntax["return_code"] == 1
    assert "Traceback" not in syntax["stderr"]
    assert "SyntaxError" in syntax["stderr"]


@pytest.mark.parametrize(
    ("code", "status", "stderr"),
    [("sys.exit(4)", 4, ""), ("sys.exit()", 0, ""), ("sys.exit('bye')", 1, "bye\n")],
)
def test_system_exit_sets_the_status_and_keeps_the_interpreter(agent, code, status, stderr):
    agent.cell("import sys\nz = 7")
    result = agent.cell(code)
    assert (result["return_code"], result["stderr"], result["worker_died"]) == (status, stderr, False)
    assert agent.cell("print(z)")["stdout"] == "7\n"


def test_top_level_await(agent):
    result = agent.cell("import asyncio\nawait asyncio.sleep(0)\nvalue = 5\nprint('awaited')")
    assert result["stdout"] == "awaited\n"
    assert agent.cell("print(value)")["stdout"] == "5\n"


# ------------------------------------------------------------------------------------------- tool calls

GATHER = """
import asyncio

async def main():
    results = await asyncio.gather(rollDie({"player": "player1"}), rollDie({"player": "player2"}))
    print("rolls", results)
    third = await rollDie(player="player3")
    print("third", third)

asyncio.run(main())
"""


def test_gathered_calls_arrive_together_then_the_cell_resumes(agent):
    first = agent.cell(GATHER, tools=["rollDie"], persist=False)
    assert [c["input"] for c in first["pending"]] == [{"player": "player1"}, {"player": "player2"}]
    assert {c["name"] for c in first["pending"]} == {"rollDie"}
    ids = [c["id"] for c in first["pending"]]
    second = agent.resume({ids[0]: "6", ids[1]: "3"})
    assert second["stdout"] == "rolls ['6', '3']\n"  # printed before the next call, streamed with it
    assert [c["input"] for c in second["pending"]] == [{"player": "player3"}]
    final = agent.resume({second["pending"][0]["id"]: "5"})
    assert final["return_code"] == 0
    assert final["stdout"] == "third 5\n"
    assert final["cell_duration"] >= final["duration"]


def test_top_level_await_of_a_tool_and_tools_leave_the_namespace(agent):
    pending = agent.cell(
        "weather = await get_weather({'city': 'Paris'})\nprint(weather)", tools=["get_weather"]
    )
    final = agent.resume({pending["pending"][0]["id"]: "sunny"})
    assert final["stdout"] == "sunny\n"
    after = agent.cell("print(weather, 'get_weather' in globals())")
    assert after["stdout"] == "sunny False\n"


def test_error_result_raises_in_the_cell(agent):
    pending = agent.cell(
        "try:\n    await f({})\nexcept Exception as e:\n    print(type(e).__name__, e)", tools=["f"]
    )
    final = agent.ok(
        "repl_resume", results={pending["pending"][0]["id"]: {"content": "no such city", "is_error": True}}
    )
    assert final["stdout"] == "ToolCallError f: no such city\n"


def test_unanswered_call_times_out_inside_the_cell(agent):
    pending = agent.cell("v = await slow({})\nprint(v)", tools=["slow"], call_timeout=0.3)
    assert pending["pending"]
    time.sleep(0.6)
    late = agent.resume({pending["pending"][0]["id"]: "too late"})
    assert late["return_code"] == 1
    assert "TimeoutError: tool call slow" in late["stderr"]
    assert "0.3 seconds" in late["stderr"]


def test_bad_tool_arguments_raise_type_error(agent):
    result = agent.cell("await f(1, 2)", tools=["f"])
    assert result["return_code"] == 1
    assert "TypeError: f() takes one dict" in result["stderr"]


def test_resume_without_a_waiting_cell_is_an_error(agent):
    frame, *_ = agent.request("repl_resume", results={})
    assert (frame["type"], frame["code"]) == ("error", "no_pending_cell")


def test_a_new_cell_cancels_the_waiting_one(agent):
    agent.cell("keep = 'me'")
    pending = agent.cell(
        "import asyncio\ntry:\n    await f({})\nexcept asyncio.CancelledError:\n"
        "    print('cancelled')\n    raise",
        tools=["f"],
    )
    assert pending["pending"]
    after = agent.cell("print(keep)")
    assert after["cancelled_pending"] is True
    assert after["stdout"] == "me\n"  # the cancelled cell's output is dropped; the state survives


def test_repl_cancel(agent):
    assert agent.ok("repl_cancel")["cancelled"] is False
    agent.cell("await f({})", tools=["f"])
    cancelled = agent.ok("repl_cancel")
    assert cancelled["cancelled"] is True
    assert "CancelledError" in cancelled["stderr"]
    assert cancelled["worker_died"] is False


# ------------------------------------------------------------------------------------------- failures


def test_timeout_kills_the_worker_and_the_next_cell_says_restarted(agent):
    agent.cell("state = 1")
    started = time.monotonic()
    slow = agent.cell("while True: pass", timeout=0.5)
    assert time.monotonic() - started < 5
    assert (slow["timed_out"], slow["worker_died"], slow["return_code"]) == (True, True, 137)
    after = agent.cell("print('state' in globals())")
    assert (after["stdout"], after["restarted"]) == ("False\n", True)
    assert agent.cell("print('again')")["restarted"] is False  # said once


def test_crash_reports_the_exit_status_and_restarts(agent):
    agent.cell("a = 1")
    crashed = agent.cell("print('bye', flush=True)\nimport os\nos._exit(3)")
    assert (crashed["return_code"], crashed["worker_died"], crashed["stdout"]) == (3, True, "bye\n")
    assert agent.cell("print('a' in globals())")["restarted"] is True


def test_non_persistent_cells_do_not_report_restarts(agent):
    agent.cell("import os\nos._exit(1)", persist=False)
    assert agent.cell("print(0)")["restarted"] is False  # no persistent state existed to lose
    agent.cell("import os\nos._exit(1)")
    fresh = agent.cell("print(1)", persist=False)
    assert fresh["restarted"] is False
    assert agent.cell("print(2)")["restarted"] is True  # the persistent state was lost all the same


def test_repl_reset_is_not_a_restart(agent):
    agent.cell("b = 1")
    assert agent.ok("repl_reset")["reset"] is True
    after = agent.cell("print('b' in globals())")
    assert (after["stdout"], after["restarted"]) == ("False\n", False)


def test_output_cap_and_flood(agent):
    capped = agent.cell("print('x' * 5000)", cap=100)
    assert capped["truncated"] is True
    assert capped["stdout"].startswith("x" * 100)
    assert capped["stdout"].endswith(TRUNCATION_MARKER.format(omitted=capped["omitted"][0]))
    started = time.monotonic()
    flood = agent.cell("while True: print('y' * 10000)", cap=100, kill_bytes=1 << 20)
    assert time.monotonic() - started < 10
    assert (flood["output_killed"], flood["worker_died"], flood["truncated"]) == (True, True, True)


def test_garbage_on_the_event_pipe_ends_the_worker(agent):
    result = agent.cell(
        "import os\nfor fd in range(3, 64):\n    try: os.write(fd, b'\\xff' * 8)\n    except OSError: pass"
    )
    assert result["worker_died"] is True
    assert agent.cell("print('fine')")["stdout"] == "fine\n"


# ------------------------------------------------------------------------------------------- process policy


def test_commands_spare_the_worker_without_waiting(agent):
    agent.cell("w = 'alive'")
    started = time.monotonic()
    command = agent.ok("run", command="echo hi", timeout=10)
    assert command["stdout"] == "hi\n"
    assert time.monotonic() - started < 1.0  # a live worker child must not make the sweep spin 2 s
    assert agent.cell("print(w)")["stdout"] == "alive\n"


def test_processes_a_cell_left_are_killed_when_it_ends(agent):
    marker = f"{time.time_ns() % 100000}.{os.getpid()}"
    agent.cell(f"import subprocess\np = subprocess.Popen(['sleep', '{marker}'])")
    assert _pids_with(f"sleep {marker}") == []


def test_a_waiting_cell_keeps_its_processes_across_a_command(agent):
    marker = f"{time.time_ns() % 100000}.{os.getpid() + 1}"
    code = f"import subprocess\np = subprocess.Popen(['sleep', '{marker}'])\nawait f({{}})\nprint(p.poll())"
    pending = agent.cell(code, tools=["f"])
    assert pending.get("pending"), pending
    assert len(_pids_with(f"sleep {marker}")) == 1, ("before the command", pending)
    command = agent.ok("run", command="true", timeout=10)
    assert len(_pids_with(f"sleep {marker}")) == 1, ("after the command", command)
    final = agent.resume({pending["pending"][0]["id"]: "ok"})
    assert final["stdout"] == "None\n"  # still running when the cell went on
    assert _pids_with(f"sleep {marker}") == []


def test_started_frame_names_the_worker(agent):
    # the host kills this process group if the agent dies (tier none)
    _, stdout, _, progress = agent.request("repl_run", code="import os\nprint(os.getpid())", timeout=10)
    assert progress[0]["type"] == "started"
    assert str(progress[0]["pid"]) == stdout.strip()


def test_output_files_of_a_cell(agent):
    agent.cell("import os\nopen(os.environ['OUTPUT_DIR'] + '/old.txt', 'w').write('1')")
    result = agent.cell("open(os.environ['OUTPUT_DIR'] + '/new.txt', 'w').write('22')")
    assert [(name, size) for _, name, size in result["output_files"]] == [("new.txt", 2)]


# ------------------------------------------------------------------------------------------- framing


def test_frame_buffer_parses_split_frames_and_rejects_garbage():
    buf = _FrameBuffer()
    data = _frame({"a": 1}) + _frame({"b": 2})
    buf.feed(data[:3])
    assert buf.next() is None
    buf.feed(data[3:])
    assert buf.next() == {"a": 1}
    assert buf.next() == {"b": 2}
    assert buf.next() is None
    buf.feed(b"\xff\xff\xff\xff")
    with pytest.raises(ValueError):
        buf.next()
    bad = _FrameBuffer()
    bad.feed(_frame([1]))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        bad.next()


def test_an_agent_run_from_source_starts_the_worker_from_agent_source(tmp_path):
    driver = Driver(tmp_path / "a", FROM_SOURCE.format(define=", 'AGENT_SOURCE': src"))
    try:
        assert driver.cell("v = 1")["return_code"] == 0
        assert driver.cell("print(v + 1)")["stdout"] == "2\n"
    finally:
        driver.close()


def test_an_agent_run_from_source_without_agent_source_says_why(tmp_path):
    driver = Driver(tmp_path / "b", FROM_SOURCE.format(define=""))
    try:
        frame, *_ = driver.request("repl_run", code="1", timeout=5)
        assert (frame["type"], frame["code"]) == ("error", "repl_unavailable")
        assert "AGENT_SOURCE" in frame["message"]
        assert driver.ok("run", command="echo still-serving", timeout=5)["stdout"] == "still-serving\n"
    finally:
        driver.close()


def test_forged_but_well_formed_frames_are_ignored(agent):
    forge = (
        "import json, os, struct, sys\n"
        "cell = int(sys._getframe().f_code.co_filename.strip('<>').split()[1])\n"
        "for calls in ('x', [1], [{'id': 'c', 'name': 'n', 'input': 'not a dict'}]):\n"
        "    body = json.dumps({'type': 'calls', 'cell': cell, 'calls': calls}).encode()\n"
        "    for fd in range(3, 64):\n"
        "        try: os.write(fd, struct.pack('>I', len(body)) + body)\n"
        "        except OSError: pass\n"
        "print('finished')\n"
    )
    result = agent.cell(forge)
    assert "pending" not in result
    assert (result["stdout"], result["worker_died"]) == ("finished\n", False)
