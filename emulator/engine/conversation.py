"""Checks on the conversation history the client sends back, with the real API's messages.

The schema has already checked each block's shape; these are the rules that span blocks and messages:
results must pair with a preceding tool use, and a server tool use may stay unpaired only in the final
assistant message (a paused turn, which the engine then continues). Programmatic tool calling is the one
exception: a `code_execution` server tool use whose code called client tools (`tool_use` blocks with
`caller.tool_id` naming it) stays open while the client answers those calls, and its
`code_execution_tool_result` arrives in a later assistant message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from emulator.errors import InvalidRequestError

#: server tool name -> the result block type that pairs with it
RESULT_TYPE_FOR_TOOL: dict[str, str] = {
    "bash_code_execution": "bash_code_execution_tool_result",
    "text_editor_code_execution": "text_editor_code_execution_tool_result",
    "code_execution": "code_execution_tool_result",
    "web_search": "web_search_tool_result",
    "web_fetch": "web_fetch_tool_result",
    "tool_search_tool_regex": "tool_search_tool_result",
    "tool_search_tool_bm25": "tool_search_tool_result",
}
SERVER_RESULT_TYPES = frozenset(RESULT_TYPE_FOR_TOOL.values())


@dataclass(frozen=True)
class PendingServerToolUse:
    """An unpaired `server_tool_use` at the end of a paused assistant turn."""

    id: str
    name: str
    input: dict[str, Any]


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [block for block in content or [] if isinstance(block, dict)]


def _check_non_empty(messages: Sequence[dict[str, Any]]) -> None:
    last = len(messages) - 1
    for index, message in enumerate(messages):
        content = message.get("content")
        empty = content == "" or content == []
        if empty and not (index == last and message.get("role") == "assistant"):
            raise InvalidRequestError(
                f"messages.{index}: all messages must have non-empty content except for the optional "
                "final assistant message"
            )


def _check_client_tool_results(messages: Sequence[dict[str, Any]]) -> None:
    for index, message in enumerate(messages):
        if message.get("role") != "user":
            continue
        previous = messages[index - 1] if index > 0 else None
        offered = {
            block.get("id")
            for block in (_blocks(previous) if previous and previous.get("role") == "assistant" else [])
            if block.get("type") in {"tool_use", "mcp_tool_use"}
        }
        for position, block in enumerate(_blocks(message)):
            if block.get("type") == "tool_result" and block.get("tool_use_id") not in offered:
                raise InvalidRequestError(
                    f"messages.{index}.content.{position}: unexpected `tool_use_id` found in `tool_result` "
                    f"blocks: {block.get('tool_use_id')}. Each `tool_result` block must have a corresponding "
                    "`tool_use` block in the previous message."
                )


def _orphan_result(index: int, position: int, kind: str, tool_use_id: object) -> InvalidRequestError:
    return InvalidRequestError(
        f"messages.{index}.content.{position}: unexpected `tool_use_id` found in `{kind}` blocks: "
        f"{tool_use_id}. Each `{kind}` block must have a corresponding `server_tool_use` block before it "
        "in the same message."
    )


def _assistant_runs(messages: Sequence[dict[str, Any]]) -> list[list[int]]:
    """Indices of consecutive assistant messages: the API treats such a run as one assistant turn."""
    runs: list[list[int]] = []
    for index, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        if runs and runs[-1][-1] == index - 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


def programmatic_callers(messages: Sequence[dict[str, Any]]) -> set[str]:
    """Ids of the server tool uses whose code called client tools (`tool_use.caller.tool_id`)."""
    found: set[str] = set()
    for message in messages:
        if message.get("role") != "assistant":
            continue
        for block in _blocks(message):
            caller = block.get("caller")
            if block.get("type") == "tool_use" and isinstance(caller, dict):
                kind, tool_id = caller.get("type"), caller.get("tool_id")
                if isinstance(kind, str) and kind.startswith("code_execution_") and isinstance(tool_id, str):
                    found.add(tool_id)
    return found


def _check_server_pairs(messages: Sequence[dict[str, Any]]) -> list[PendingServerToolUse]:
    pending_at_end: list[PendingServerToolUse] = []
    last = len(messages) - 1
    programmatic = programmatic_callers(messages)
    #: programmatic cells still open after their run: their result may come in a later assistant message
    carried: dict[str, tuple[int, dict[str, Any]]] = {}
    for run in _assistant_runs(messages):
        open_uses: dict[str, tuple[int, dict[str, Any]]] = {}
        for index in run:
            for position, block in enumerate(_blocks(messages[index])):
                kind = block.get("type")
                if kind == "server_tool_use":
                    open_uses[str(block.get("id"))] = (index, block)
                elif kind in SERVER_RESULT_TYPES:
                    key = str(block.get("tool_use_id"))
                    found = open_uses.pop(key, None) or carried.pop(key, None)
                    expected = RESULT_TYPE_FOR_TOOL.get(str(found[1].get("name"))) if found else None
                    if expected != kind:
                        raise _orphan_result(index, position, kind, block.get("tool_use_id"))
        for key in [key for key in open_uses if key in programmatic]:
            carried[key] = open_uses.pop(key)  # waiting on client tool results, not paused
        for index, use in open_uses.values():
            if run[-1] != last:
                name = use.get("name")
                raise InvalidRequestError(
                    f"messages.{index}: `{name}` tool use with id `{use.get('id')}` was found without a "
                    f"corresponding `{RESULT_TYPE_FOR_TOOL.get(str(name), 'tool_result')}` block"
                )
            pending_at_end.append(
                PendingServerToolUse(
                    id=str(use["id"]), name=str(use["name"]), input=dict(use.get("input") or {})
                )
            )
    return pending_at_end


def check_history(messages: Sequence[dict[str, Any]]) -> list[PendingServerToolUse]:
    """Validate the cross-block rules; return the unpaired server tool uses of a final paused turn."""
    _check_non_empty(messages)
    _check_client_tool_results(messages)
    return _check_server_pairs(messages)
