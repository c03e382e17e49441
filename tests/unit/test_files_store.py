"""The file store (SQLite + blobs): atomic publication, crash recovery, paging, persistence of containers;
and the sandbox's chunked transfers that move large files in and out."""

from __future__ import annotations

import hashlib
import itertools
import os
from datetime import UTC, datetime, timedelta

import pytest

from emulator.errors import NotFoundError
from emulator.sandbox import Limits, LocalBackend
from emulator.state.clock import ManualClock
from emulator.state.containers import ContainerStore
from emulator.state.files import FileStore, FileTooLarge, InvalidCursor, guess_mime_type
from emulator.state.persistence import Database

START = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def clock():
    return ManualClock(START)


def open_store(path, clock, **kwargs):
    counter = itertools.count(1)
    database = Database.in_state_dir(path)
    return database, FileStore(path / "files", database, clock, lambda: f"file_{next(counter):04}", **kwargs)


def add(store, name, data=b"x", **kwargs):
    return store.add([data], filename=name, mime_type="text/plain", downloadable=False, **kwargs)


def test_published_file_round_trips_and_records_its_digest(tmp_path, clock):
    database, store = open_store(tmp_path, clock)
    record = store.add([b"ab", b"", b"cd"], filename="x.txt", mime_type="text/plain", downloadable=True)
    assert (record.size_bytes, record.sha256) == (4, hashlib.sha256(b"abcd").hexdigest())
    assert record.created_at == START.replace(microsecond=123000)  # milliseconds, as the API writes them
    assert b"".join(store.iter_bytes(record)) == b"abcd"
    assert store.get(record.id) == record
    database.close()


def test_too_large_or_aborted_writes_leave_nothing(tmp_path, clock):
    database, store = open_store(tmp_path, clock, max_file_bytes=10)
    with pytest.raises(FileTooLarge):
        store.add([b"123456", b"78901"], filename="big", mime_type="x/y", downloadable=False)
    with store.writer() as writer:
        writer.write(b"half")  # never committed
    assert store.count() == 0
    assert list(store.incoming_dir.iterdir()) == [] and list(store.blobs_dir.iterdir()) == []
    database.close()


def test_reopening_sweeps_what_a_crash_left(tmp_path, clock):
    database, store = open_store(tmp_path, clock)
    kept = add(store, "kept")
    lost = add(store, "lost")
    database.close()
    (tmp_path / "files" / "incoming" / "file-123.part").write_bytes(b"partial upload")
    (tmp_path / "files" / "blobs" / "file_orphan").write_bytes(b"renamed, row never committed")
    (tmp_path / "files" / "blobs" / lost.id).unlink()  # a row whose blob vanished

    database, store = open_store(tmp_path, clock)
    assert [r.id for r in store.page(limit=10).records] == [kept.id]
    assert list(store.incoming_dir.iterdir()) == []
    assert sorted(p.name for p in store.blobs_dir.iterdir()) == [kept.id]
    with pytest.raises(NotFoundError, match=f"File not found: {lost.id}"):
        store.get(lost.id)
    database.close()


def test_pages_newest_first_in_both_directions(tmp_path, clock):
    database, store = open_store(tmp_path, clock)
    ids = [add(store, f"f{i}").id for i in range(7)]
    newest = list(reversed(ids))
    first = store.page(limit=3)
    assert ([r.id for r in first.records], first.has_more) == (newest[:3], True)
    last = store.page(limit=3, after_id=newest[5])
    assert ([r.id for r in last.records], last.has_more) == (newest[6:], False)
    back = store.page(limit=2, before_id=newest[4])
    assert ([r.id for r in back.records], back.has_more) == ([newest[2], newest[3]], True)
    store.delete(newest[1])
    assert [r.id for r in store.page(limit=2, after_id=newest[1]).records] == newest[2:4]
    with pytest.raises(InvalidCursor):
        store.page(limit=2, after_id="file_never")
    assert [r.id for r in store.find([ids[0], "file_never", newest[1], ids[2]])] == [ids[2], ids[0]]
    database.close()


def test_expiry_follows_the_clock(tmp_path, clock):
    database, store = open_store(tmp_path, clock)
    record = add(store, "e", expires_at=store.expiry(3600))
    assert not record.expired(clock.now())
    clock.advance(timedelta(seconds=3600))
    assert record.expired(clock.now())
    database.close()


def test_expires_at_is_kept_in_milliseconds_and_expired_files_are_not_listed(tmp_path, clock):
    database, store = open_store(tmp_path, clock)
    given = START + timedelta(hours=1)  # microsecond 123456, as a caller might compute it
    expiring = add(store, "e", expires_at=given)
    assert expiring.expires_at == given.replace(microsecond=123000)
    assert store.get(expiring.id).expires_at == expiring.expires_at  # the stored value is the same
    assert store.expiry(60) == (START + timedelta(seconds=60)).replace(microsecond=123000)
    plain = add(store, "p")
    assert [r.id for r in store.page(limit=5).records] == [plain.id, expiring.id]
    clock.set(expiring.expires_at)  # expired from that very millisecond on
    assert [r.id for r in store.page(limit=5).records] == [plain.id]
    assert [r.id for r in store.page(limit=5, before_id=expiring.id).records] == [plain.id]
    assert store.page(limit=5, after_id=expiring.id).records == []  # an expired file is still a cursor
    assert [r.id for r in store.find([expiring.id, plain.id])] == [plain.id]
    assert store.get(expiring.id).expired(clock.now())  # `get` still has it: the API layer says file_expired
    database.close()


def test_containers_persist_in_the_database(tmp_path, clock):
    database = Database.in_state_dir(tmp_path)
    containers = ContainerStore(clock, database)
    containers.create("container_a")
    containers.create("container_b")
    clock.advance(timedelta(minutes=5))
    touched = containers.touch("container_a")
    containers.forget("container_b")
    database.close()

    database = Database.in_state_dir(tmp_path)
    reloaded = ContainerStore(clock, database)
    assert [r.id for r in reloaded.all()] == ["container_a"]
    assert reloaded.get("container_a") == touched
    reloaded.clear()
    assert ContainerStore(clock, database).all() == []
    database.close()


def test_mime_types_are_fixed_by_extension():
    assert [guess_mime_type(n) for n in ("a.csv", "b.png", "c.md", "d.xlsx", "e.tar.gz", "f")] == [
        "text/csv",
        "image/png",
        "text/markdown",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/gzip",
        "application/octet-stream",
    ]


# --- chunked transfers through the in-sandbox agent ---------------------------------------------------------


@pytest.fixture
def sandbox(tmp_path):
    with LocalBackend(tmp_path / "state", Limits(timeout_s=10), isolation="none") as backend:
        yield backend.open("container_files")


def test_chunked_write_read_and_digest(sandbox):
    data = os.urandom(3 * 1024 * 1024 + 17)
    pieces = [data[i : i + 700_000] for i in range(0, len(data), 700_000)]
    assert sandbox.write_file_chunks("$INPUT_DIR/in.bin", iter(pieces)) == len(data)
    assert sandbox.file_sha256("$INPUT_DIR/in.bin") == hashlib.sha256(data).hexdigest()
    chunks = list(sandbox.read_file_chunks("$INPUT_DIR/in.bin", chunk_bytes=1024 * 1024))
    assert [len(c) for c in chunks] == [1024 * 1024] * 3 + [17]
    assert b"".join(chunks) == data
    assert sandbox.run_command("wc -c < $INPUT_DIR/in.bin").stdout.strip() == str(len(data))
    # rewriting replaces the file; an empty write leaves an empty file
    assert sandbox.write_file_chunks("$INPUT_DIR/in.bin", iter([b"short"])) == 5
    assert sandbox.read_file("$INPUT_DIR/in.bin") == b"short"
    assert sandbox.write_file_chunks("$INPUT_DIR/empty", iter([])) == 0
    assert sandbox.read_file("$INPUT_DIR/empty") == b""


def test_chunked_transfer_errors(sandbox):
    assert sandbox.file_sha256("$INPUT_DIR/missing") is None
    assert sandbox.file_sha256("$INPUT_DIR") is None  # a directory has no digest
    with pytest.raises(FileNotFoundError):
        list(sandbox.read_file_chunks("$INPUT_DIR/missing"))
    with pytest.raises(IsADirectoryError):
        list(sandbox.read_file_chunks("$INPUT_DIR"))
    with pytest.raises(IsADirectoryError):
        sandbox.write_file_chunks("$INPUT_DIR", iter([b"x"]))
    with pytest.raises(ValueError):  # outside the sandbox's directories
        sandbox.write_file_chunks("/etc/evil", iter([b"x"]))
