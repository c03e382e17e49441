"""code-execution-emulator: an offline emulator of the Messages API code execution tool, with real execution.

The public API: `Emulator` (a context manager), its `EmulatorConfig`, and the script steps a test queues
as assistant turns (`bash`, `python`, `view`, `create`, `str_replace`, `text`, `tool_use`, `stop`, ...).
"""

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
