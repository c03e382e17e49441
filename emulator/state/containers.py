"""API containers: ids, creation, rolling expiry and the hard 30-day limit.

The real API reports a short rolling `expires_at` (about an hour past the last use, pushed forward by each
request) while a container stays restorable for 30 days after creation. Reuse after the rolling value but
inside the 30 days works, as the docs describe (the container was only checkpointed).

With a `Database` the records are written through to SQLite, so a restarted `serve --state-dir` still knows
its containers (their files are kept by the sandbox backend under the same state directory).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from emulator.errors import InvalidRequestError, NotFoundError
from emulator.state.clock import Clock
from emulator.state.persistence import Database

ROLLING_EXPIRY = timedelta(hours=1)
HARD_LIMIT = timedelta(days=30)


@dataclass(frozen=True)
class ContainerRecord:
    id: str
    created_at: datetime
    last_used_at: datetime

    @property
    def expires_at(self) -> datetime:
        return min(self.last_used_at + ROLLING_EXPIRY, self.created_at + HARD_LIMIT)

    def expired(self, now: datetime) -> bool:
        return now >= self.created_at + HARD_LIMIT


class ContainerStore:
    """Thread-safe registry of the containers this emulator created (kept in `database` when given)."""

    def __init__(self, clock: Clock, database: Database | None = None) -> None:
        self._clock = clock
        self._database = database
        self._records: dict[str, ContainerRecord] = {}
        self._lock = threading.Lock()
        if database is not None:
            for row in database.query("SELECT id, created_at, last_used_at FROM containers"):
                self._records[row["id"]] = ContainerRecord(
                    id=row["id"],
                    created_at=datetime.fromisoformat(row["created_at"]),
                    last_used_at=datetime.fromisoformat(row["last_used_at"]),
                )

    def _save(self, record: ContainerRecord) -> None:
        if self._database is not None:
            with self._database.transaction() as db:
                db.execute(
                    "INSERT INTO containers (id, created_at, last_used_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET last_used_at = excluded.last_used_at",
                    (record.id, record.created_at.isoformat(), record.last_used_at.isoformat()),
                )

    def create(self, container_id: str) -> ContainerRecord:
        now = self._clock.now()
        record = ContainerRecord(id=container_id, created_at=now, last_used_at=now)
        with self._lock:
            self._records[container_id] = record
            self._save(record)
        return record

    def get(self, container_id: str) -> ContainerRecord:
        """The live container with this id; 404 for an unknown id, 400 for one past the 30-day limit."""
        with self._lock:
            record = self._records.get(container_id)
        if record is None:
            raise NotFoundError(f"container: container '{container_id}' not found")
        if record.expired(self._clock.now()):
            raise InvalidRequestError(
                f"container: container '{container_id}' has expired and can no longer be used; "
                "send the request without `container` to get a new one"
            )
        return record

    def touch(self, container_id: str) -> ContainerRecord:
        with self._lock:
            record = replace(self._records[container_id], last_used_at=self._clock.now())
            self._records[container_id] = record
            self._save(record)
        return record

    def all(self) -> list[ContainerRecord]:
        with self._lock:
            return list(self._records.values())

    def expired_ids(self) -> list[str]:
        now = self._clock.now()
        return [record.id for record in self.all() if record.expired(now)]

    def forget(self, container_id: str) -> None:
        with self._lock:
            self._records.pop(container_id, None)
            if self._database is not None:
                with self._database.transaction() as db:
                    db.execute("DELETE FROM containers WHERE id = ?", (container_id,))

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            if self._database is not None:
                with self._database.transaction() as db:
                    db.execute("DELETE FROM containers")
