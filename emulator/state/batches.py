"""Message Batches: each batch's requests, status, timestamps and results (kept in memory)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

ProcessingStatus = Literal["in_progress", "canceling", "ended"]


@dataclass
class BatchRecord:
    id: str
    requests: list[dict[str, Any]]
    created_at: datetime
    expires_at: datetime
    processing_status: ProcessingStatus = "in_progress"
    ended_at: datetime | None = None
    cancel_initiated_at: datetime | None = None
    #: custom_id -> result object (`{"type": "succeeded", "message": ...}` etc.), in completion order
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        tally = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for result in self.results.values():
            tally[result["type"]] += 1
        tally["processing"] = len(self.requests) - len(self.results)
        return tally


class BatchStore:
    def __init__(self) -> None:
        self._batches: dict[str, BatchRecord] = {}
        self._lock = threading.RLock()

    @property
    def lock(self) -> threading.RLock:
        """Held while a batch record is read or changed as a whole."""
        return self._lock

    def add(self, record: BatchRecord) -> None:
        with self._lock:
            self._batches[record.id] = record

    def get(self, batch_id: str) -> BatchRecord | None:
        with self._lock:
            return self._batches.get(batch_id)

    def delete(self, batch_id: str) -> None:
        with self._lock:
            self._batches.pop(batch_id, None)

    def ordered(self) -> list[BatchRecord]:
        """Newest first, as the API lists batches."""
        with self._lock:
            return sorted(self._batches.values(), key=lambda record: record.created_at, reverse=True)

    def clear(self) -> None:
        with self._lock:
            self._batches.clear()
