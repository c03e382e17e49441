"""The request journal: what clients sent and what they got, for tests to assert on."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any

#: header values that never reach the journal in clear
SECRET_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization", "cookie"})


def redact_headers(headers: dict[str, str], extra_secrets: frozenset[str] = frozenset()) -> dict[str, str]:
    hidden = SECRET_HEADERS | extra_secrets
    return {name: ("[redacted]" if name.lower() in hidden else value) for name, value in headers.items()}


@dataclass
class JournalEntry:
    request_id: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    status: int | None = None
    response: Any = None
    stream: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Journal:
    def __init__(self) -> None:
        self._entries: list[JournalEntry] = []
        self._lock = threading.Lock()

    def add(self, entry: JournalEntry) -> JournalEntry:
        with self._lock:
            self._entries.append(entry)
        return entry

    def entries(self) -> list[JournalEntry]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
