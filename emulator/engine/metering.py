"""A sandbox backend wrapper that measures every call's sandbox time into the usage ledger.

Wrapping keeps accounting out of both the turn loop and the backends: any backend gets metered the same way.
"""

from __future__ import annotations

import time
from typing import Any

from emulator.sandbox.base import (
    CellOutcome,
    CommandResult,
    FileOpResult,
    IsolationReport,
    Sandbox,
    SandboxBackend,
)
from emulator.state.usage import UsageLedger


class MeteredSandbox:
    def __init__(self, inner: Sandbox, ledger: UsageLedger) -> None:
        self._inner = inner
        self._ledger = ledger
        self.container_id = inner.container_id
        ledger.touch(inner.container_id)

    def _command(self, result: CommandResult) -> CommandResult:
        self._ledger.record(self.container_id, result.duration_s)
        return result

    def _timed(self, operation: Any, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return operation(*args)
        finally:
            self._ledger.record(self.container_id, time.perf_counter() - started)

    def run_command(self, command: str, *, timeout_s: float | None = None) -> CommandResult:
        return self._command(self._inner.run_command(command, timeout_s=timeout_s))

    def run_python(self, code: str, *, timeout_s: float | None = None) -> CommandResult:
        return self._command(self._inner.run_python(code, timeout_s=timeout_s))

    def view(self, path: str) -> FileOpResult:
        return self._timed(self._inner.view, path)

    def create(self, path: str, file_text: str) -> FileOpResult:
        return self._timed(self._inner.create, path, file_text)

    def str_replace(self, path: str, old_str: str, new_str: str) -> FileOpResult:
        return self._timed(self._inner.str_replace, path, old_str, new_str)

    def run_cell(self, code: str, **options: Any) -> CellOutcome:
        return self._cell(self._inner.run_cell(code, **options))  # type: ignore[attr-defined]

    def resume_cell(self, results: Any) -> CellOutcome:
        return self._cell(self._inner.resume_cell(results))  # type: ignore[attr-defined]

    def _cell(self, outcome: CellOutcome) -> CellOutcome:
        # Each answer carries the time of that one call, so adding them up meters the whole cell.
        self._ledger.record(self.container_id, outcome.duration_s)
        return outcome

    def __getattr__(self, name: str) -> Any:
        # File transfer, output listing, stop and destroy are not execution time: pass them through.
        return getattr(self._inner, name)


class MeteredBackend:
    def __init__(self, inner: SandboxBackend, ledger: UsageLedger) -> None:
        self._inner = inner
        self._ledger = ledger
        self.name = inner.name

    def open(self, container_id: str) -> Sandbox:
        return MeteredSandbox(self._inner.open(container_id), self._ledger)  # type: ignore[return-value]

    def report(self) -> IsolationReport:
        return self._inner.report()

    def close(self) -> None:
        self._inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
