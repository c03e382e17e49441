"""code-execution-emulator: an offline emulator of the Messages API code execution tool, with real execution.

The public API: `Emulator` (a context manager), its `EmulatorConfig`, and the script steps a test queues
as assistant turns (`bash`, `python`, `view`, `create`, `str_replace`, `text`, `tool_use`, `stop`, ...).

Names are resolved on first use: the pytest plugin (`emulator.plugin`) is imported by every pytest session
of a project that installed us, before coverage starts, so importing the engine here would slow every session
and hide the engine's module-level lines from our own coverage.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emulator import faults
    from emulator.config import EmulatorConfig
    from emulator.model.steps import (
        bash,
        create,
        pause,
        python,
        step_from_json,
        stop,
        str_replace,
        text,
        text_editor,
        tool_use,
        view,
    )
    from emulator.service import Emulator

_STEPS = "emulator.model.steps"
_HOMES = {
    "Emulator": "emulator.service",
    "EmulatorConfig": "emulator.config",
    **{
        name: _STEPS
        for name in (
            "bash",
            "create",
            "pause",
            "python",
            "step_from_json",
            "stop",
            "str_replace",
            "text",
            "text_editor",
            "tool_use",
            "view",
        )
    },
}

__all__ = [
    "Emulator",
    "EmulatorConfig",
    "bash",
    "create",
    "faults",
    "pause",
    "python",
    "step_from_json",
    "stop",
    "str_replace",
    "text",
    "text_editor",
    "tool_use",
    "view",
]


def __getattr__(name: str) -> Any:
    if name == "faults":
        return importlib.import_module("emulator.faults")
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'emulator' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
