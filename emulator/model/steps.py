"""The steps an assistant turn is made of. Tests build turns from these; the built-in model does too.

Each helper returns a plain frozen dataclass, so scripts can be built, compared and serialised (the admin
HTTP API accepts the same steps as JSON, see `step_from_json`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ServerToolName = Literal["bash_code_execution", "text_editor_code_execution", "code_execution"]


@dataclass(frozen=True)
class ToolStep:
    """One server tool call: the emulator executes it in the container and emits the result block."""

    name: ServerToolName
    input: dict[str, Any]


@dataclass(frozen=True)
class TextStep:
    text: str


@dataclass(frozen=True)
class ClientToolStep:
    """A call to one of the request's custom tools; the turn then stops with `tool_use`."""

    name: str
    input: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StopStep:
    """End the turn here with this stop reason (e.g. `max_tokens`), whatever steps follow."""

    reason: str


Step = ToolStep | TextStep | ClientToolStep | StopStep


def bash(command: str) -> ToolStep:
    return ToolStep("bash_code_execution", {"command": command})


def python(code: str) -> ToolStep:
    return ToolStep("code_execution", {"code": code})


def view(path: str) -> ToolStep:
    return ToolStep("text_editor_code_execution", {"command": "view", "path": path})


def create(path: str, file_text: str) -> ToolStep:
    return ToolStep("text_editor_code_execution", {"command": "create", "path": path, "file_text": file_text})


def str_replace(path: str, old_str: str, new_str: str) -> ToolStep:
    return ToolStep(
        "text_editor_code_execution",
        {"command": "str_replace", "path": path, "old_str": old_str, "new_str": new_str},
    )


def text_editor(**tool_input: Any) -> ToolStep:
    """A raw text-editor call with any input, e.g. to exercise `invalid_tool_input`."""
    return ToolStep("text_editor_code_execution", dict(tool_input))


def text(content: str) -> TextStep:
    return TextStep(content)


def tool_use(name: str, tool_input: dict[str, Any] | None = None) -> ClientToolStep:
    return ClientToolStep(name, dict(tool_input or {}))


def stop(reason: str) -> StopStep:
    return StopStep(reason)


def pause() -> StopStep:
    """Pause the turn here (`stop_reason: "pause_turn"`). If a tool step follows, its `server_tool_use` ends
    the paused content without a result; the client's continuation runs it and the rest of the turn."""
    return StopStep("pause_turn")


_TOOL_HELPERS = {
    "bash": lambda d: bash(d["command"]),
    "python": lambda d: python(d["code"]),
    "view": lambda d: view(d["path"]),
    "create": lambda d: create(d["path"], d["file_text"]),
    "str_replace": lambda d: str_replace(d["path"], d["old_str"], d["new_str"]),
    "text_editor": lambda d: text_editor(**d["input"]),
    "text": lambda d: text(d["text"]),
    "tool_use": lambda d: tool_use(d["name"], d.get("input")),
    "stop": lambda d: stop(d["reason"]),
    "pause": lambda d: pause(),
}

STEP_KINDS = tuple(sorted(_TOOL_HELPERS))


def step_from_json(data: dict[str, Any]) -> Step:
    """Build a step from its JSON form, e.g. `{"type": "bash", "command": "ls"}`; raises ValueError."""
    kind = data.get("type")
    helper = _TOOL_HELPERS.get(kind) if isinstance(kind, str) else None
    if helper is None:
        raise ValueError(f"unknown step type {kind!r}; expected one of {', '.join(STEP_KINDS)}")
    try:
        return helper(data)
    except (KeyError, TypeError) as missing:
        raise ValueError(f"step {kind!r} is missing field {missing}") from None
