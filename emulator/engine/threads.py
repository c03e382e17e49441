"""Server-held conversation state ("threads", beta `message-threads-2026-08-12`), as SDK 2.13's tool runner
uses it.

A request with `thread: {"type": "create"}` asks the server to keep the conversation under the response's
id; `{"type": "continue", "previous_message_id": ...}` resumes from that response, sending only the new
turn's messages. On a continue the server takes `system` and `tools` from the thread and rejects a request
that repeats them. After a `pause_turn` reply the continue carries no messages at all: the held turn is
resumed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from emulator.errors import APIError, InvalidRequestError

CREATE_ONLY_FIELDS = ("system", "tools")


@dataclass(frozen=True)
class HeldThread:
    #: `system` and `tools` as the thread was created with
    fields: dict[str, Any]
    #: the whole conversation up to and including the reply this entry is keyed by
    messages: tuple[dict[str, Any], ...]


def _thread_error(status: int, error_type: str, code: str, message: str) -> APIError:
    return APIError(message, status=status, error_type=error_type, details={"error_code": code})


class ThreadStore:
    def __init__(self) -> None:
        self._held: dict[str, HeldThread] = {}
        self._continued: set[str] = set()
        self._lock = threading.Lock()

    def expand(self, body: dict[str, Any]) -> dict[str, Any]:
        """The full request a thread request stands for (a request without `thread` comes back unchanged)."""
        thread = body.get("thread")
        if not isinstance(thread, dict) or thread.get("type") != "continue":
            return body
        previous = str(thread.get("previous_message_id"))
        repeated = [name for name in CREATE_ONLY_FIELDS if name in body]
        if repeated:
            raise InvalidRequestError(
                f"{repeated[0]}: a `continue` takes `{repeated[0]}` from the thread; do not send it again"
            )
        with self._lock:
            held = self._held.get(previous)
            if held is None:
                raise _thread_error(
                    404,
                    "not_found_error",
                    "thread_not_found",
                    f"thread: no thread holds message '{previous}'",
                )
            if previous in self._continued:
                raise _thread_error(
                    409,
                    "conflict_error",
                    "thread_already_continued",
                    f"thread: message '{previous}' was already continued",
                )
            self._continued.add(previous)
        return {**body, **held.fields, "messages": [*held.messages, *body.get("messages", [])]}

    def record(self, body: dict[str, Any], reply_id: str, reply_content: list[dict[str, Any]]) -> None:
        """Hold the conversation under `reply_id` if the (expanded) request asked for a thread."""
        if not isinstance(body.get("thread"), dict):
            return
        fields = {name: body[name] for name in CREATE_ONLY_FIELDS if name in body}
        messages = list(body["messages"])
        if messages and messages[-1].get("role") == "assistant" and reply_content:
            # A resumed turn continues the held assistant message rather than starting a new one.
            last = messages[-1]
            content = (
                last["content"]
                if isinstance(last["content"], list)
                else [{"type": "text", "text": last["content"]}]
            )
            messages[-1] = {**last, "content": [*content, *reply_content]}
        elif reply_content:
            messages.append({"role": "assistant", "content": reply_content})
        with self._lock:
            self._held[reply_id] = HeldThread(fields=fields, messages=tuple(messages))

    def clear(self) -> None:
        with self._lock:
            self._held.clear()
            self._continued.clear()
