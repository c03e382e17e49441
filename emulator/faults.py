"""Public fault helpers: `emulator.inject(faults.tool_error("unavailable"), faults.http_error(529))`."""

from emulator.engine.faults import (
    Fault,
    drop_connection,
    force_stop,
    http_error,
    stall,
    stream_error,
    tool_error,
)

__all__ = ["Fault", "drop_connection", "force_stop", "http_error", "stall", "stream_error", "tool_error"]
