"""The request journal: what clients sent and what they got, for tests to assert on."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

#: header values that never reach the journal in clear
SECRET_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization", "cookie"})


def redact_headers(
    headers: Iterable[tuple[str, str]], extra_secrets: frozenset[str] = frozenset()
) -> dict[str, str]:
    """(name, value) pairs as a dict, secrets replaced (names as given; a repeated name keeps the last)."""
    hidden = SECRET_HEADERS | extra_secrets if extra_secrets else SECRET_HEADERS
    return {name: ("[redacted]" if name.lower() in hidden else value) for name, value in headers}


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


class RawJSON(bytes):
    """A body kept as the bytes that came over the wire, parsed (or None) when first read.

    Most journal entries are never read, and parsing every request and response body cost a replayed turn
    as much as finding its answer in the cassette.
    """


def _parsed(raw: RawJSON) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None


def _lazy_json(name: str) -> property:
    slot = f"_{name}"

    def read(entry: JournalEntry) -> Any:
        value = entry.__dict__.get(slot)
        if isinstance(value, RawJSON):
            value = entry.__dict__[slot] = _parsed(value)
        return value

    def write(entry: JournalEntry, value: Any) -> None:
        entry.__dict__[slot] = value

    return property(read, write)


@dataclass(frozen=True)
class RawHeaders:
    """An ASGI scope's headers (latin-1 byte pairs), decoded and redacted when first read."""

    items: list[tuple[bytes, bytes]]
    extra_secrets: frozenset[str] = frozenset()

    def redacted(self) -> dict[str, str]:
        return redact_headers(
            ((name.decode("latin-1"), value.decode("latin-1")) for name, value in self.items),
            self.extra_secrets,
        )


def _lazy_headers() -> property:
    def read(entry: JournalEntry) -> dict[str, str]:
        value = entry.__dict__.get("_headers")
        if isinstance(value, RawHeaders):
            value = entry.__dict__["_headers"] = value.redacted()
        return value  # type: ignore[no-any-return]

    def write(entry: JournalEntry, value: dict[str, str] | RawHeaders) -> None:
        entry.__dict__["_headers"] = value

    return property(read, write)


# After the dataclass is made, so that its __init__ and asdict go through the properties.
JournalEntry.body = _lazy_json("body")  # type: ignore[assignment,method-assign]
JournalEntry.response = _lazy_json("response")  # type: ignore[assignment,method-assign]
JournalEntry.headers = _lazy_headers()  # type: ignore[assignment,method-assign]


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
