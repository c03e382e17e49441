"""The Files API store: metadata in SQLite, contents as plain blob files under the state directory.

Layout under `<state_dir>/files/`: `blobs/<file_id>` holds each file's bytes, `incoming/` the uploads and
output files still being written. A file becomes visible in three steps: its bytes are streamed to a temp
file in `incoming/` (never held whole in memory) and fsynced, the temp file is renamed into `blobs/` (same
filesystem, so atomic) and the directory fsynced, and only then is its metadata row inserted in one
transaction. A crash at any point leaves either nothing listed or a complete file; what it leaves behind on
disk (temp files, a blob whose row never committed) is swept when the store opens. (The fsyncs guard against
a power loss too; a temporary state directory skips them, `durable=False`.)

Deleting marks the row deleted (so list cursors naming it keep working) and removes the blob.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import mimetypes
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from emulator.errors import NotFoundError
from emulator.state.clock import Clock
from emulator.state.persistence import Database

#: the documented per-file limit of the Files API, "500 MB" (wire-contract §8 and §12): decimal megabytes, as
#: the same docs' "32 MB" request limit is; a 500 MiB file would be 24 MB over what the API accepts
DEFAULT_MAX_FILE_BYTES = 500_000_000
#: rows read per query while paging (a page skips expired files, so it may need more than `limit` rows)
_SCAN_BATCH = 256
#: bytes per read when streaming a blob out
READ_CHUNK_BYTES = 1024 * 1024

#: a private table (not the host's /etc/mime.types), so a file's `mime_type` is the same on every machine
_MIME_TYPES = mimetypes.MimeTypes()
for _type, _extension in (
    ("text/markdown", ".md"),
    ("text/x-log", ".log"),
    ("image/webp", ".webp"),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".xlsx"),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", ".docx"),
    ("application/vnd.openxmlformats-officedocument.presentationml.presentation", ".pptx"),
    ("application/vnd.ms-excel", ".xls"),
    ("application/x-parquet", ".parquet"),
    ("application/x-ipynb+json", ".ipynb"),
    ("application/x-yaml", ".yaml"),
    ("application/x-yaml", ".yml"),
):
    _MIME_TYPES.add_type(_type, _extension)


def guess_mime_type(filename: str) -> str:
    """The MIME type for a file name (`application/octet-stream` when the extension says nothing)."""
    mime_type, encoding = _MIME_TYPES.guess_type(filename, strict=False)
    if encoding is not None:  # `x.tar.gz` is a gzip file, not a tar file
        return _COMPRESSED.get(encoding, "application/octet-stream")
    return mime_type or "application/octet-stream"


_COMPRESSED = {"gzip": "application/gzip", "bzip2": "application/x-bzip2", "xz": "application/x-xz"}


_COLUMNS = "id, filename, mime_type, size_bytes, sha256, created_at, downloadable, expires_at, container_id"


class FileTooLarge(Exception):
    """The bytes written passed the store's limit; nothing was kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"file exceeds the maximum allowed size of {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class FileRecord:
    """One Files API file's metadata."""

    id: str
    filename: str
    mime_type: str
    size_bytes: int
    sha256: str
    created_at: datetime
    #: only files generated in a container (code execution outputs) can be downloaded
    downloadable: bool
    expires_at: datetime | None = None
    #: the container that generated it (None for uploads)
    container_id: str | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def _record(row: sqlite3.Row) -> FileRecord:
    expires = row["expires_at"]
    return FileRecord(
        id=row["id"],
        filename=row["filename"],
        mime_type=row["mime_type"],
        size_bytes=int(row["size_bytes"]),
        sha256=row["sha256"],
        created_at=datetime.fromisoformat(row["created_at"]),
        downloadable=bool(row["downloadable"]),
        expires_at=datetime.fromisoformat(expires) if expires else None,
        container_id=row["container_id"],
    )


def to_milliseconds(moment: datetime) -> datetime:
    """`moment` cut to whole milliseconds: the precision of the Files API's timestamps on the wire (recorded
    `created_at` values such as `2026-07-09T02:42:51.126000Z`)."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def not_found(file_id: str) -> NotFoundError:
    return NotFoundError(f"File not found: {file_id}")


class InvalidCursor(ValueError):
    """A list cursor (`after_id`/`before_id`) names no file this store ever had."""


@dataclass(frozen=True)
class Page:
    records: list[FileRecord]
    #: more files lie beyond this page in the direction of travel
    has_more: bool


class BlobWriter:
    """Streams one file's bytes to a temp file; `commit` makes it a file, anything else discards it."""

    def __init__(self, store: FileStore, limit: int) -> None:
        self._store = store
        self.limit = limit
        fd, name = tempfile.mkstemp(prefix="file-", suffix=".part", dir=store.incoming_dir)
        self._path = Path(name)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0
        self._published = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._file is None:
            raise ValueError("this writer is closed")
        if self.size + len(data) > self.limit:
            raise FileTooLarge(self.limit)
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)

    def write_all(self, chunks: Iterable[bytes | bytearray | memoryview]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def commit(
        self,
        *,
        filename: str,
        mime_type: str,
        downloadable: bool,
        expires_at: datetime | None = None,
        container_id: str | None = None,
    ) -> FileRecord:
        if self._file is None:
            raise ValueError("this writer is closed")
        self._file.flush()
        if self._store.durable:
            os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        record = self._store._publish(
            self._path,
            size_bytes=self.size,
            sha256=self._hash.hexdigest(),
            filename=filename,
            mime_type=mime_type,
            downloadable=downloadable,
            expires_at=expires_at,
            container_id=container_id,
        )
        self._published = True
        return record

    def abort(self) -> None:
        """Discard the bytes (a no-op after a successful commit)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if not self._published:
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.abort()


class FileStore:
    """Thread-safe Files API storage for one emulator."""

    def __init__(
        self,
        root: Path,
        database: Database,
        clock: Clock,
        new_id: Callable[[], str],
        *,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        durable: bool = True,
    ) -> None:
        self.root = root
        #: fsync blobs and their directory before the row commits (what survives a power loss, not only a
        #: crash of the process); pointless for a temporary state directory that dies with the emulator
        self.durable = durable
        self.blobs_dir = root / "blobs"
        self.incoming_dir = root / "incoming"
        self._database = database
        self._clock = clock
        self._new_id = new_id
        self.max_file_bytes = max_file_bytes
        for directory in (self.blobs_dir, self.incoming_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._recover()

    # --- crash recovery ------------------------------------------------------------------------------------

    def _recover(self) -> None:
        """Sweep what a crash left: partial temp files, blobs without a committed row, rows without a blob."""
        for leftover in self.incoming_dir.iterdir():
            with contextlib.suppress(OSError):
                leftover.unlink()
        live = {row["id"] for row in self._database.query("SELECT id FROM files WHERE deleted = 0")}
        on_disk = {path.name for path in self.blobs_dir.iterdir()}
        for orphan in on_disk - live:
            with contextlib.suppress(OSError):
                (self.blobs_dir / orphan).unlink()
        missing = live - on_disk
        if missing:
            with self._database.transaction() as db:
                db.executemany("UPDATE files SET deleted = 1 WHERE id = ?", [(i,) for i in sorted(missing)])

    # --- writing -------------------------------------------------------------------------------------------

    def writer(self, limit: int | None = None) -> BlobWriter:
        """A writer for one new file (use as a context manager; `commit` publishes it)."""
        return BlobWriter(self, self.max_file_bytes if limit is None else limit)

    def add(
        self,
        chunks: Iterable[bytes],
        *,
        filename: str,
        mime_type: str,
        downloadable: bool,
        expires_at: datetime | None = None,
        container_id: str | None = None,
        limit: int | None = None,
    ) -> FileRecord:
        """Store a file from chunks in one go (raises FileTooLarge past `limit`, keeping nothing)."""
        with self.writer(limit) as writer:
            writer.write_all(chunks)
            return writer.commit(
                filename=filename,
                mime_type=mime_type,
                downloadable=downloadable,
                expires_at=expires_at,
                container_id=container_id,
            )

    def _publish(
        self,
        temp_path: Path,
        *,
        size_bytes: int,
        sha256: str,
        filename: str,
        mime_type: str,
        downloadable: bool,
        expires_at: datetime | None,
        container_id: str | None,
    ) -> FileRecord:
        created_at = to_milliseconds(self._clock.now())
        record = FileRecord(
            id=self._new_id(),
            filename=filename,
            mime_type=mime_type,
            size_bytes=size_bytes,
            sha256=sha256,
            created_at=created_at,
            downloadable=downloadable,
            # whatever the caller computed it from, the wire (and `expired`) sees milliseconds
            expires_at=to_milliseconds(expires_at) if expires_at is not None else None,
            container_id=container_id,
        )
        blob = self.blobs_dir / record.id
        os.replace(temp_path, blob)
        if self.durable:
            _fsync_dir(self.blobs_dir)
        try:
            with self._database.transaction() as db:
                db.execute(
                    f"INSERT INTO files ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.id,
                        record.filename,
                        record.mime_type,
                        record.size_bytes,
                        record.sha256,
                        record.created_at.isoformat(),
                        int(record.downloadable),
                        record.expires_at.isoformat() if record.expires_at else None,
                        record.container_id,
                    ),
                )
        except BaseException:
            with contextlib.suppress(OSError):
                blob.unlink()
            raise
        return record

    # --- reading -------------------------------------------------------------------------------------------

    def get(self, file_id: str) -> FileRecord:
        """The live file with this id; 404 `File not found: <id>` otherwise."""
        rows = self._database.query(f"SELECT {_COLUMNS} FROM files WHERE id = ? AND deleted = 0", (file_id,))
        if not rows:
            raise not_found(file_id)
        return _record(rows[0])

    def find(self, file_ids: Sequence[str]) -> list[FileRecord]:
        """The listable files among these ids, newest first; unknown, deleted and expired ids are left out."""
        if not file_ids:
            return []
        now = self._clock.now()
        marks = ", ".join("?" for _ in file_ids)
        rows = self._database.query(
            f"SELECT {_COLUMNS} FROM files WHERE deleted = 0 AND id IN ({marks}) ORDER BY seq DESC",
            list(file_ids),
        )
        return [record for record in map(_record, rows) if not record.expired(now)]

    def page(self, *, limit: int, after_id: str | None = None, before_id: str | None = None) -> Page:
        """Listable files (live, not expired) newest first. `after_id`: the page of older files right after
        that one; `before_id`: the page of newer files right before it (still newest first). Raises
        InvalidCursor for an unknown id; a deleted or expired file still works as a cursor."""
        if after_id is not None and before_id is not None:
            raise ValueError("after_id and before_id are exclusive")
        if before_id is not None:
            found = list(itertools.islice(self._listable(self._seq(before_id), newer=True), limit + 1))
            return Page(records=list(reversed(found[:limit])), has_more=len(found) > limit)
        start = self._seq(after_id) if after_id is not None else None
        found = list(itertools.islice(self._listable(start, newer=False), limit + 1))
        return Page(records=found[:limit], has_more=len(found) > limit)

    def _listable(self, seq: int | None, *, newer: bool) -> Iterator[FileRecord]:
        """Live unexpired files beyond `seq` (None: from the newest), oldest first if `newer` else newest
        first. Expiry is checked here rather than in SQL: the stored timestamps are ISO text whose fraction
        is optional, which does not compare reliably as text."""
        now = self._clock.now()
        while True:
            if newer:
                where, order = "AND seq > ?", "ASC"
            else:
                where, order = ("AND seq < ?", "DESC") if seq is not None else ("", "DESC")
            rows = self._database.query(
                f"SELECT seq, {_COLUMNS} FROM files WHERE deleted = 0 {where} ORDER BY seq {order} LIMIT ?",
                (*(() if seq is None else (seq,)), _SCAN_BATCH),
            )
            for row in rows:
                seq = int(row["seq"])
                record = _record(row)
                if not record.expired(now):
                    yield record
            if len(rows) < _SCAN_BATCH:
                return

    def _seq(self, file_id: str) -> int:
        rows = self._database.query("SELECT seq FROM files WHERE id = ?", (file_id,))
        if not rows:
            raise InvalidCursor(file_id)
        return int(rows[0]["seq"])

    def open(self, record: FileRecord) -> BinaryIO:
        """Open a file's bytes for reading (the caller closes it). A file deleted meanwhile is a 404."""
        try:
            return (self.blobs_dir / record.id).open("rb")
        except FileNotFoundError:
            raise not_found(record.id) from None

    def iter_bytes(self, record: FileRecord, chunk_bytes: int = READ_CHUNK_BYTES) -> Iterator[bytes]:
        with self.open(record) as blob:
            while chunk := blob.read(chunk_bytes):
                yield chunk

    def count(self) -> int:
        return int(self._database.query("SELECT COUNT(*) AS n FROM files WHERE deleted = 0")[0]["n"])

    def now(self) -> datetime:
        return self._clock.now()

    def expiry(self, seconds: int) -> datetime:
        return to_milliseconds(self._clock.now() + timedelta(seconds=seconds))

    # --- deleting ------------------------------------------------------------------------------------------

    def delete(self, file_id: str) -> None:
        with self._database.transaction() as db:
            changed = db.execute("UPDATE files SET deleted = 1 WHERE id = ? AND deleted = 0", (file_id,))
            if changed.rowcount == 0:
                raise not_found(file_id)
        with contextlib.suppress(FileNotFoundError):
            (self.blobs_dir / file_id).unlink()

    def clear(self) -> None:
        """Forget every file (the emulator's reset)."""
        with self._database.transaction() as db:
            db.execute("DELETE FROM files")
        # `incoming/` is left alone: an upload still streaming there finishes normally.
        shutil.rmtree(self.blobs_dir, ignore_errors=True)
        self.blobs_dir.mkdir(parents=True, exist_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
