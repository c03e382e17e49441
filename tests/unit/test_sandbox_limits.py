"""The host-side pieces behind `too_many_requests` and hung-agent detection, on their own."""

from __future__ import annotations

import threading

import pytest

from emulator.engine import tools
from emulator.sandbox.agent_client import CallLimiter, Liveness
from emulator.sandbox.base import CommandResult, Limits, SandboxBusy, SandboxUnavailable


def test_the_default_limit_is_generous():
    assert Limits().max_concurrent_calls == 32


def test_a_slot_past_the_limit_fails_at_once_and_comes_back():
    limiter = CallLimiter(2)
    with limiter.slot(), limiter.slot():
        assert limiter.in_use == 2
        with pytest.raises(SandboxBusy), limiter.slot():
            pass
        assert limiter.in_use == 2
    assert limiter.in_use == 0
    with limiter.slot():
        assert limiter.in_use == 1


def test_a_failing_call_gives_its_slot_back():
    limiter = CallLimiter(1)
    with pytest.raises(RuntimeError), limiter.slot():
        raise RuntimeError("boom")
    with limiter.slot():
        pass


def test_zero_means_no_limit_and_negative_is_refused():
    limiter = CallLimiter(0)
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with limiter.slot():
            held.set()
            release.wait(5)

    threads = [threading.Thread(target=hold) for _ in range(50)]
    for t in threads:
        t.start()
    held.wait(5)
    with limiter.slot():
        pass
    release.set()
    for t in threads:
        t.join(5)
    assert limiter.in_use == 0
    with pytest.raises(ValueError):
        CallLimiter(-1)


def test_busy_is_an_unavailable_to_callers_that_only_know_that():
    assert issubclass(SandboxBusy, SandboxUnavailable)


def test_the_engine_maps_busy_to_too_many_requests():
    def busy() -> CommandResult:
        raise SandboxBusy("full")

    def gone() -> CommandResult:
        raise SandboxUnavailable("down")

    assert tools._execute(busy) == "too_many_requests"
    assert tools._execute(gone) == "unavailable"


def test_liveness_follows_the_agents_frames():
    live = Liveness(budget=5.0, grace=1.0)
    live.arm(100.0)
    assert live.wait_until(200.0) == 106.0
    # the agent's clock starts later (after its output scan): the watch moves with it
    live.seen({"type": "started", "pid": 7, "budget": 5.0}, 102.0)
    assert live.wait_until(200.0) == 108.0
    live.seen({"type": "out", "fd": 1, "data": ""}, 103.0)
    assert live.wait_until(200.0) == 108.0
    # alive and cleaning up: only the hard deadline is left
    live.seen({"type": "ending"}, 107.0)
    assert live.wait_until(200.0) == 200.0


def test_liveness_without_a_budget_waits_for_started():
    live = Liveness(budget=None)
    live.arm(0.0)
    assert live.wait_until(50.0) == 50.0
    live.seen({"type": "started", "pid": 3, "budget": 2.0}, 1.0)
    assert live.wait_until(50.0) == pytest.approx(1.0 + 2.0 + live.grace)
