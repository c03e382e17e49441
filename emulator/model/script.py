"""Scripted turns: a queue of turns a test pushes, consumed one per Messages request."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence

from emulator.model.steps import Step


class Script:
    """A thread-safe FIFO of turns; each turn is the list of steps of one assistant response.

    A paused turn leaves its remaining steps as a continuation, keyed by the id of the last tool block of
    the paused content; the client's continuation request (which ends with that content) picks them up.
    """

    def __init__(self) -> None:
        self._turns: deque[tuple[Step, ...]] = deque()
        self._continuations: dict[str, tuple[Step, ...]] = {}
        self._lock = threading.Lock()

    def save_continuation(self, key: str, steps: Iterable[Step]) -> None:
        with self._lock:
            self._continuations[key] = tuple(steps)

    def take_continuation(self, key: str) -> tuple[Step, ...] | None:
        with self._lock:
            return self._continuations.pop(key, None)

    def add_turn(self, steps: Iterable[Step]) -> None:
        turn = tuple(steps)
        if not turn:
            raise ValueError("a scripted turn needs at least one step")
        with self._lock:
            self._turns.append(turn)

    def next_turn(self) -> Sequence[Step] | None:
        with self._lock:
            return self._turns.popleft() if self._turns else None

    def pending(self) -> int:
        with self._lock:
            return len(self._turns)

    def clear(self) -> None:
        with self._lock:
            self._turns.clear()
            self._continuations.clear()
