"""REPL cells in a real local sandbox (tiers "none" and "bwrap"), and the PTC engine helpers driving them.

Interpreter state lives in the sandbox's processes: it survives calls and `open()` again, and is lost when
the sandbox stops or restarts (the next persistent cell then reports `interpreter_restarted`).
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest

from emulator.engine import ptc
from emulator.sandbox import CommandResult, Limits, LocalBackend
from emulator.sandbox.agent import TRUNCATION_MARKER
from emulator.sandbox.base import CellNotPending, PendingCalls, ReplSandbox, Sandbox, ToolCallResult
from emulator.wire import models as wire
from emulator.wire.ids import IdFactory

HAVE_BWRAP = Path("/usr/bin/bwrap").exists()
TIERS = [
    "none",
    pytest.param("bwrap", marks=pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap not installed")),
]
LIMITS = Limits(timeout_s=20, output_cap_bytes=4096, output_kill_bytes=1 << 20)

GATHER = """
import asyncio

async def main():
    results = await asyncio.gather(rollDie({"player": "player1"}), rollDie({"player": "player2"}))
    print("round", [int(r) for r in results])

asyncio.run(main())
"""


@pytest.fixture(scope="module", params=TIERS)
def backend(request, tmp_path_factory):
    with LocalBackend(tmp_path_factory.mktemp(f"repl-{request.param}"), LIMITS, isolation=request.param) as b:
        assert b.tier == request.param
        yield b


@pytest.fixture
def sb(backend):
    box = backend.open("c-" + secrets.token_hex(4))
    yield box
    box.destroy()


def done(outcome: object) -> CommandResult:
    assert isinstance(outcome, CommandResult), outcome
    return outcome


def waiting(outcome: object) -> PendingCalls:
    assert isinstance(outcome, PendingCalls), outcome
    return outcome


def test_the_local_sandbox_is_a_repl_sandbox(sb):
    assert isinstance(sb, ReplSandbox)
    assert isinstance(sb, Sandbox)


def test_state_persists_across_calls_and_reopen(backend, sb):
    assert done(sb.run_cell("total = 40")).return_code == 0
    again = backend.open(sb.container_id)
    assert again is sb
    result = done(again.run_cell("total += 2\nprint(total)"))
    assert (result.stdout, result.interpreter_restarted) == ("42\n", False)


def test_files_are_shared_with_commands(sb):
    done(sb.run_cell("open('from_cell.txt', 'w').write('cell')"))
    assert sb.run_command("cat from_cell.txt").stdout == "cell"


def test_state_is_lost_on_stop_and_the_next_cell_says_so(sb):
    done(sb.run_cell("token = 'x'"))
    sb.stop()
    after = done(sb.run_cell("print('token' in globals())"))
    assert (after.stdout, after.interpreter_restarted) == ("False\n", True)
    assert done(sb.run_cell("print(1)")).interpreter_restarted is False


def test_timeout_restarts_the_interpreter(sb):
    done(sb.run_cell("n = 1"))
    started = time.monotonic()
    slow = done(sb.run_cell("import time\nprint('start', flush=True)\ntime.sleep(60)", timeout_s=1))
    assert time.monotonic() - started < 8
    assert (slow.timed_out, slow.interpreter_died, slow.stdout) == (True, True, "start\n")
    after = done(sb.run_cell("print('n' in globals())"))
    assert (after.stdout, after.interpreter_restarted) == ("False\n", True)


def test_crash_restarts_the_interpreter(sb):
    done(sb.run_cell("m = 1"))
    crashed = done(sb.run_cell("import os\nos._exit(9)"))
    assert (crashed.return_code, crashed.interpreter_died, crashed.sandbox_restarted) == (9, True, False)
    assert done(sb.run_cell("print('m' in globals())")).interpreter_restarted is True


def test_killing_the_agent_from_a_cell_restarts_the_sandbox(sb):
    done(sb.run_cell("k = 1"))
    killed = done(
        sb.run_cell("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nimport time\ntime.sleep(30)")
    )
    assert (killed.return_code, killed.sandbox_restarted, killed.interpreter_died) == (137, True, True)
    after = done(sb.run_cell("print('k' in globals())"))
    assert (after.stdout, after.interpreter_restarted) == ("False\n", True)


def test_output_cap_marks_truncation(sb):
    result = done(sb.run_cell("print('z' * 10000)"))
    assert result.truncated
    assert result.stdout.startswith("z" * 4096)
    assert result.stdout.endswith(TRUNCATION_MARKER.format(omitted=10001 - 4096))


def test_output_flood_is_killed(sb):
    started = time.monotonic()
    result = done(sb.run_cell("while True:\n    print('w' * 65536)"))
    assert time.monotonic() - started < 10
    assert (result.output_killed, result.interpreter_died) == (True, True)


def test_output_streams_live(sb):
    seen: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def on_output(stream: str, data: bytes) -> None:
        seen[stream] += data

    result = done(sb.run_cell("import sys\nprint('out')\nprint('err', file=sys.stderr)", on_output=on_output))
    assert seen == {"stdout": b"out\n", "stderr": b"err\n"}
    assert (result.stdout, result.stderr) == ("out\n", "err\n")


def test_gathered_tool_calls_pause_and_resume(sb):
    first = waiting(sb.run_cell(GATHER, tools=["rollDie"], persist=False))
    assert [call.input for call in first.calls] == [{"player": "player1"}, {"player": "player2"}]
    final = done(
        sb.resume_cell({call.id: ToolCallResult(str(n)) for n, call in zip((6, 4), first.calls, strict=True)})
    )
    assert (final.stdout, final.return_code) == ("round [6, 4]\n", 0)


def test_output_before_a_call_is_kept_in_the_final_result(sb):
    first = waiting(sb.run_cell("print('before')\nr = await ask({'q': 1})\nprint('after', r)", tools=["ask"]))
    final = done(sb.resume_cell({first.calls[0].id: ToolCallResult("yes")}))
    assert final.stdout == "before\nafter yes\n"


def test_call_timeout_raises_timeout_error_in_the_code(sb):
    first = waiting(sb.run_cell("await never({})", tools=["never"], call_timeout_s=0.5))
    time.sleep(1.0)
    final = done(sb.resume_cell({first.calls[0].id: ToolCallResult("late")}))
    assert final.return_code == 1
    assert "TimeoutError" in final.stderr


def test_commands_run_while_a_cell_waits(sb):
    first = waiting(sb.run_cell("v = await get({})\nprint('got', v)", tools=["get"]))
    assert sb.run_command("echo between").stdout == "between\n"
    assert done(sb.resume_cell({first.calls[0].id: ToolCallResult("it")})).stdout == "got it\n"


def test_resume_after_stop_raises(sb):
    waiting(sb.run_cell("await get({})", tools=["get"]))
    sb.stop()
    with pytest.raises(CellNotPending):
        sb.resume_cell({"call_1": ToolCallResult("x")})


def test_cancel_cell(sb):
    assert sb.cancel_cell() is None
    waiting(sb.run_cell("await get({})", tools=["get"]))
    cancelled = sb.cancel_cell()
    assert cancelled is not None and "CancelledError" in cancelled.stderr
    with pytest.raises(CellNotPending):
        sb.resume_cell({"call_1": ToolCallResult("x")})


def test_reset_repl(sb):
    done(sb.run_cell("gone = 1"))
    sb.reset_repl()
    after = done(sb.run_cell("print('gone' in globals())"))
    assert (after.stdout, after.interpreter_restarted) == ("False\n", False)


def test_output_files_of_a_cell(sb):
    result = done(sb.run_cell("import os\nopen(os.environ['OUTPUT_DIR'] + '/chart.txt', 'w').write('abc')"))
    assert [(f.name, f.size_bytes) for f in result.output_files] == [("chart.txt", 3)]


# ------------------------------------------------------------------------------------------- engine helpers


def _policy(version: str, allowed: str) -> ptc.ToolPolicy:
    body = {
        "tools": [
            {"type": version, "name": "code_execution"},
            {"name": "rollDie", "input_schema": {"type": "object"}, "allowed_callers": [allowed]},
        ]
    }
    return ptc.tool_policy(body, version, "claude-sonnet-4-5-20250929")


def test_engine_helpers_reproduce_the_recorded_block_sequence(sb):
    """start_cell / find_continuation / resume_cell against a real sandbox: the shape of the recording
    (tool_use pairs with the caller naming the srvtoolu, then the code_execution_tool_result)."""
    state, ids = ptc.PtcState(call_timeout_s=30), IdFactory(seed=1)
    policy = _policy("code_execution_20250825", "code_execution_20250825")
    srvtoolu = ids.server_tool_use()
    code = GATHER.replace("results = await", "for _ in range(2):\n        results = await")
    code = code.replace('    print("round"', '        print("round"')
    progress = ptc.start_cell(
        sb,
        container_id=sb.container_id,
        server_tool_use_id=srvtoolu,
        code=code,
        policy=policy,
        state=state,
        ids=ids,
        remaining_steps=("text step",),
    )
    history: list[dict] = [
        {"role": "user", "content": "Simulate the dice game"},
        {"role": "assistant", "content": [ptc.server_tool_use_block(srvtoolu, code, policy).to_wire()]},
    ]
    rounds = 0
    while progress.waiting:
        rounds += 1
        blocks = [block.to_wire() for block in progress.blocks]
        assert [b["caller"] for b in blocks] == [{"type": "code_execution_20250825", "tool_id": srvtoolu}] * 2
        if rounds > 1:
            history.append({"role": "assistant", "content": blocks})
        else:
            history[-1]["content"].extend(blocks)
        history.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": b["id"], "content": "3"} for b in blocks],
            }
        )
        continuation = ptc.find_continuation(history, sb.container_id, state)
        assert continuation is not None and continuation.cell.remaining_steps == ("text step",)
        progress = ptc.resume_cell(sb, continuation, state=state, ids=ids)
    assert rounds == 2
    (result,) = progress.blocks
    assert isinstance(result, wire.CodeExecutionToolResultBlock)
    assert result.tool_use_id == srvtoolu
    assert result.content.stdout == "round [3, 3]\nround [3, 3]\n"  # type: ignore[union-attr]
    assert state.get(sb.container_id) is None


def test_engine_helpers_persist_state_under_20260120(sb):
    state, ids = ptc.PtcState(), IdFactory(seed=2)
    policy = _policy("code_execution_20260120", "direct")
    assert (policy.persist, policy.ptc, policy.uses_cells) == (True, False, True)
    for code in ("counter = 1", "counter += 1\nprint(counter)"):
        progress = ptc.start_cell(
            sb,
            container_id=sb.container_id,
            server_tool_use_id=ids.server_tool_use(),
            code=code,
            policy=policy,
            state=state,
            ids=ids,
        )
    (result,) = progress.blocks
    assert result.content.stdout == "2"


def test_engine_helpers_tag_20260521_calls_as_20260120_and_report_restarts(sb):
    state, ids = ptc.PtcState(), IdFactory(seed=3)
    policy = _policy("code_execution_20260521", "code_execution_20260521")
    assert policy.cell_timeout_s() == 90.0
    srvtoolu = ids.server_tool_use()
    progress = ptc.start_cell(
        sb,
        container_id=sb.container_id,
        server_tool_use_id=srvtoolu,
        code="await rollDie({})",
        policy=policy,
        state=state,
        ids=ids,
    )
    (use,) = progress.blocks
    assert use.caller == wire.CodeExecutionCaller(type="code_execution_20260120", tool_id=srvtoolu)
    sb.stop()  # the parked cell dies with the sandbox
    history = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [use.to_wire()]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "1"}]},
    ]
    continuation = ptc.find_continuation(history, sb.container_id, state)
    assert continuation is not None
    lost = ptc.resume_cell(sb, continuation, state=state, ids=ids)
    assert lost.blocks[0].content.error_code == "unavailable"
    fresh = ptc.start_cell(
        sb,
        container_id=sb.container_id,
        server_tool_use_id=ids.server_tool_use(),
        code="print(1)",
        policy=policy,
        state=state,
        ids=ids,
    )
    assert fresh.blocks[0].content.stderr.startswith(ptc.RESTART_NOTE)
