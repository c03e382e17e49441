"""The emulator's SQLite database: metadata of Files API files and of containers, in the state directory.

One database file per state directory, opened by one `Emulator`. Blobs (file contents, sandbox files) live
beside it as plain files; only small metadata goes in here. WAL journaling keeps a committed transaction
durable across a crash of the process (what a killed `serve` must survive) without an fsync per commit.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DATABASE_NAME = "emulator.sqlite3"

#: bump when a table changes shape; older databases are migrated in `_migrate`
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    filename TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    downloadable INTEGER NOT NULL,
    expires_at TEXT,
    container_id TEXT,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS files_live ON files (deleted, seq);
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    last_used_at TEXT NOT NULL
);
"""


class Database:
    """A thread-safe SQLite connection. Every write goes through `transaction()`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the server's threads, serialised by our lock: simpler than a pool and
        # plenty for metadata rows.
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._connection.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._closed = False
        with self._lock:
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._connection.execute("PRAGMA foreign_keys=ON")
            self._migrate()

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> Database:
        return cls(state_dir / DATABASE_NAME)

    def _migrate(self) -> None:
        version = int(self._connection.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} was written by a newer code-execution-emulator (schema {version}); "
                f"this one understands schema {SCHEMA_VERSION}"
            )
        self._connection.executescript(_SCHEMA)
        self._connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error), holding the lock throughout."""
        with self._lock:
            self._check_open()
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            self._check_open()
            return list(self._connection.execute(sql, params))

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the database {self.path} is closed")

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._connection.close()
