"""The deterministic built-in model: every fenced code block of the last user message becomes a tool call.

- ```` ```bash ```` (or `sh`, `shell`) runs as `bash_code_execution`;
- ```` ```python ```` (or `py`) runs as `code_execution`;
- a block whose info string is `create PATH` creates PATH with the block's text;
- `view PATH` views PATH (the block's body is ignored);
- `str_replace PATH` holds the old and the new text separated by a line `=======` (without that line
  the call is made without `new_str`, and the tool answers `invalid_tool_input`).
The turn ends with a short text block. A message without fenced blocks gets a plain text answer.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from typing import Any

from emulator.model.steps import (
    Step,
    TextStep,
    ToolStep,
    bash,
    create,
    python,
    str_replace,
    text,
    text_editor,
    view,
)

FENCE = re.compile(
    r"^(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.M | re.S
)
SEPARATOR = re.compile(r"^=======[ \t]*\n?", re.M)

PLAIN_ANSWER = (
    "This is code-execution-emulator's built-in model. Put fenced ```bash or ```python blocks in your "
    "message "
    "(or ```create PATH, ```view PATH, ```str_replace PATH) and I will run each of them with the code "
    "execution tool."
)


def last_user_text(messages: Sequence[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        return "\n".join(
            block.get("text", "")
            for block in content or ()
            if isinstance(block, dict) and block.get("type") == "text"
        )
    return ""


def _step_for_block(info: str, body: str) -> Step | None:
    words = shlex.split(info) if info.strip() else []
    kind = words[0].lower() if words else ""
    path = " ".join(words[1:])
    if kind in {"bash", "sh", "shell"}:
        return bash(body.rstrip("\n"))
    if kind in {"python", "py", "python3"}:
        return python(body)
    if kind == "create" and path:
        return create(path, body)
    if kind == "view" and path:
        return view(path)
    if kind == "str_replace" and path:
        parts = SEPARATOR.split(body, maxsplit=1)
        if len(parts) == 2:
            return str_replace(path, parts[0].removesuffix("\n"), parts[1].removesuffix("\n"))
        # Without the separator there is no new text: the call goes out without `new_str`, so the tool's
        # `invalid_tool_input` error tells the user why (dropping the block would hide the mistake).
        return text_editor(command="str_replace", path=path, old_str=body.removesuffix("\n"))
    return None


def plan_turn(messages: Sequence[dict[str, Any]]) -> list[Step]:
    """The steps the built-in model takes for this conversation (the tool results are filled in later)."""
    steps: list[Step] = [
        step
        for match in FENCE.finditer(last_user_text(messages))
        if (step := _step_for_block(match.group("info"), match.group("body"))) is not None
    ]
    if not steps:
        return [TextStep(PLAIN_ANSWER)]
    calls = sum(isinstance(step, ToolStep) for step in steps)
    steps.append(text(f"Ran {calls} tool call{'s' if calls != 1 else ''}."))
    return steps
