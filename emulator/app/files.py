"""The Files API: `POST/GET /v1/files`, `GET/DELETE /v1/files/{file_id}`, `GET /v1/files/{file_id}/content`.

Uploads are parsed as they stream in (python-multipart's push parser, not `request.form()`): the `file`
part goes straight to a temp file in the store, a chunk at a time, with the size limit enforced as bytes
arrive, so a large upload never sits in memory or in a second spool file. Downloads stream from the blob.

Both list schemes are answered with every key (wire-contract §12): `limit`/`after_id`/`before_id` read
`has_more`/`first_id`/`last_id`; SDK 2.13's `limit`/`page` reads `next_page` (an opaque `page_...` cursor).
Files are listed newest first; expired files are left out of lists (see docs/files.md).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import anyio
import anyio.to_thread
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from emulator.app.auth import check_auth
from emulator.app.errors import json_response
from emulator.app.messages import apply_request_faults, journal_entry
from emulator.engine.container_files import file_expired
from emulator.engine.faults import FaultContext
from emulator.errors import APIError, InvalidRequestError, RequestTooLargeError
from emulator.runtime import Runtime
from emulator.state.files import (
    READ_CHUNK_BYTES,
    BlobWriter,
    FileRecord,
    FileStore,
    FileTooLarge,
    InvalidCursor,
    guess_mime_type,
)
from emulator.state.journal import JournalEntry
from emulator.wire.models import format_timestamp

#: what a multipart body may add around the file part (boundaries, part headers, small fields)
MULTIPART_OVERHEAD_BYTES = 64 * 1024
#: after an early error the rest of an upload is read and dropped (so the client gets the answer rather than
#: a reset connection mid-send), up to this much
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024
#: file bytes gathered before one write to disk (written off the event loop)
WRITE_BATCH_BYTES = 1024 * 1024
FIELD_LIMIT_BYTES = 1024
EXPIRES_MIN_S = 3600
EXPIRES_MAX_S = 7_776_000
LIST_DEFAULT_LIMIT = 20
LIST_MAX_LIMIT = 1000
IDS_MAX = 100
#: characters a filename may not contain (besides control characters 0-31), per the Files API docs
FORBIDDEN_FILENAME_CHARS = frozenset('<>:"|?*\\/')
PAGE_PREFIX = "page_"


def _store(runtime: Runtime) -> FileStore:
    store = runtime.services.files
    if store is None:  # pragma: no cover - every Emulator has a store
        raise APIError("The Files API is not available in this emulator")
    return store


def metadata(record: FileRecord) -> dict[str, Any]:
    """`FileMetadata` as the API writes it (key order of the recordings; `expires_at` only when set)."""
    payload: dict[str, Any] = {
        "id": record.id,
        "type": "file",
        "filename": record.filename,
        "mime_type": record.mime_type,
        "size_bytes": record.size_bytes,
        "created_at": format_timestamp(record.created_at),
        "downloadable": record.downloadable,
    }
    if record.expires_at is not None:
        payload["expires_at"] = format_timestamp(record.expires_at)
    return payload


async def _begin(
    request: Request, runtime: Runtime, request_id: str, body_text: str, endpoint: str
) -> JournalEntry:
    """Auth, the journal entry, then injected faults (`endpoint` is the route, e.g. `/v1/files/{file_id}`)."""
    check_auth(request.headers, runtime.config.api_key)
    entry = runtime.journal.add(journal_entry(request, request_id, None))
    context = FaultContext(request_number=runtime.next_request_number(), endpoint=endpoint, body=body_text)
    try:
        await apply_request_faults(runtime, context)
    except APIError as error:
        entry.status = error.status
        raise
    return entry


def _answer(entry: JournalEntry, payload: dict[str, Any], request_id: str) -> Response:
    entry.status = 200
    entry.response = payload
    return json_response(payload, request_id=request_id)


# --- upload ------------------------------------------------------------------------------------------------


def check_filename(filename: str) -> None:
    if not 1 <= len(filename) <= 255:
        raise InvalidRequestError("file: The filename must be between 1 and 255 characters long")
    bad = sorted({c for c in filename if c in FORBIDDEN_FILENAME_CHARS or ord(c) < 32})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise InvalidRequestError(
            f'file: The filename contains characters that are not allowed ({shown}); < > : " | ? * \\ / '
            "and control characters cannot be used"
        )


def _expires_in(raw: bytes | None) -> int | None:
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace").strip()
    try:
        seconds = int(text)
    except ValueError:
        raise InvalidRequestError(
            "expires_in_seconds: Input should be a valid integer, unable to parse string as an integer"
        ) from None
    if seconds < EXPIRES_MIN_S:
        raise InvalidRequestError(
            f"expires_in_seconds: Input should be greater than or equal to {EXPIRES_MIN_S}"
        )
    if seconds > EXPIRES_MAX_S:
        raise InvalidRequestError(
            f"expires_in_seconds: Input should be less than or equal to {EXPIRES_MAX_S}"
        )
    return seconds


class _UploadForm:
    """The multipart parser's callbacks: collects small fields, queues the `file` part's bytes for disk."""

    def __init__(self, boundary: bytes, store: FileStore) -> None:
        self._store = store
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_end": self._end,
            },
        )
        self.fields: dict[str, bytearray] = {}
        self.writer: BlobWriter | None = None
        self.filename: str | None = None
        self.part_type: str | None = None
        self.pending: list[memoryview] = []
        self.pending_bytes = 0
        self.file_bytes = 0
        self.complete = False
        self._headers: dict[str, bytes] = {}
        self._field_name = bytearray()
        self._field_value = bytearray()
        self._target: str | None = None

    def _part_begin(self) -> None:
        self._headers = {}
        self._target = None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field_name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._field_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field_name.decode("latin-1").lower()] = bytes(self._field_value)
        self._field_name.clear()
        self._field_value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name == "file":
            if self.writer is not None:
                raise InvalidRequestError("file: Only one file can be uploaded per request")
            if b"filename" not in options:
                raise InvalidRequestError("file: Input should be a file upload (a part with a filename)")
            filename = options[b"filename"].decode("utf-8", "replace")
            check_filename(filename)
            self.filename = filename
            content_type, _ = parse_options_header(self._headers.get("content-type", b""))
            self.part_type = content_type.decode("latin-1").strip() or None
            self.writer = self._store.writer()
        elif name == "expires_in_seconds":
            if name in self.fields:
                raise InvalidRequestError(f"{name}: The field was given more than once")
            self.fields[name] = bytearray()
        else:
            raise InvalidRequestError(f"{name or '(unnamed part)'}: Extra inputs are not permitted")
        self._target = name

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._target == "file":
            self.file_bytes += end - start
            if self.writer is not None and self.file_bytes > self.writer.limit:
                raise FileTooLarge(self.writer.limit)
            self.pending.append(memoryview(data)[start:end])
            self.pending_bytes += end - start
        elif self._target is not None:
            field = self.fields[self._target]
            field += data[start:end]
            if len(field) > FIELD_LIMIT_BYTES:
                raise InvalidRequestError(f"{self._target}: The value is too long")

    def _end(self) -> None:
        self.complete = True

    def take_pending(self) -> list[memoryview]:
        # Views into the body's chunks, which are immutable bytes: safe to keep until written.
        batch = self.pending
        self.pending = []
        self.pending_bytes = 0
        return batch


def _too_large(limit: int) -> RequestTooLargeError:
    return RequestTooLargeError(f"File exceeds the maximum allowed size of {limit} bytes")


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read and drop what is left of the body, so the client gets the error instead of a reset connection."""
    seen = 0
    try:
        async for chunk in chunks:
            seen += len(chunk)
            if seen > DRAIN_LIMIT_BYTES:
                return
    except (ClientDisconnect, RuntimeError):
        return


async def upload_file(request: Request, runtime: Runtime, request_id: str) -> Response:
    chunks = request.stream()
    try:
        return await _upload(request, runtime, request_id, chunks)
    except APIError:
        await _drain(chunks)
        raise


async def _upload(
    request: Request, runtime: Runtime, request_id: str, chunks: AsyncIterator[bytes]
) -> Response:
    entry = await _begin(request, runtime, request_id, "", "/v1/files")
    store = _store(runtime)
    try:
        media_type, options = parse_options_header(request.headers.get("content-type", ""))
        boundary = options.get(b"boundary")
        if media_type != b"multipart/form-data" or not boundary:
            raise InvalidRequestError("Content-Type must be multipart/form-data with a boundary")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > store.max_file_bytes + MULTIPART_OVERHEAD_BYTES:
            raise _too_large(store.max_file_bytes)
        form = _UploadForm(boundary, store)
        try:
            record = await _receive(form, chunks, store)
        finally:
            if form.writer is not None:
                form.writer.abort()  # no-op once committed
    except APIError as error:
        entry.status = error.status
        raise
    entry.body = {
        "file": {"filename": record.filename, "mime_type": record.mime_type, "size_bytes": record.size_bytes},
        **({"expires_in_seconds": int(form.fields["expires_in_seconds"])} if record.expires_at else {}),
    }
    return _answer(entry, metadata(record), request_id)


async def _receive(form: _UploadForm, chunks: AsyncIterator[bytes], store: FileStore) -> FileRecord:
    try:
        async for chunk in chunks:
            form.parser.write(chunk)
            if form.pending_bytes >= WRITE_BATCH_BYTES:
                await _flush(form)
        form.parser.finalize()
        await _flush(form)
    except FileTooLarge as problem:
        raise _too_large(problem.limit) from None
    except MultipartParseError as problem:
        raise InvalidRequestError(f"Malformed multipart body: {problem}") from None
    except ClientDisconnect:
        raise InvalidRequestError("The client disconnected before the upload finished") from None
    if not form.complete:
        raise InvalidRequestError("Malformed multipart body: it ends before its closing boundary")
    if form.writer is None or form.filename is None:
        raise InvalidRequestError("file: Field required")
    raw_expiry = form.fields.get("expires_in_seconds")
    expires_in = _expires_in(bytes(raw_expiry) if raw_expiry is not None else None)
    writer = form.writer
    filename = form.filename
    mime_type = form.part_type or guess_mime_type(filename)
    expires_at = store.expiry(expires_in) if expires_in is not None else None
    return await anyio.to_thread.run_sync(
        lambda: writer.commit(
            filename=filename, mime_type=mime_type, downloadable=False, expires_at=expires_at
        )
    )


async def _flush(form: _UploadForm) -> None:
    batch = form.take_pending()
    if batch and form.writer is not None:
        await anyio.to_thread.run_sync(form.writer.write_all, batch)


# --- list --------------------------------------------------------------------------------------------------


def _encode_page(direction: str, file_id: str) -> str:
    raw = json.dumps({direction: file_id}, separators=(",", ":")).encode()
    return PAGE_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_page(token: str) -> tuple[str, str]:
    problem = InvalidRequestError("page: Invalid page token")
    if not token.startswith(PAGE_PREFIX):
        raise problem
    body = token[len(PAGE_PREFIX) :]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError):
        raise problem from None
    if not isinstance(decoded, dict) or len(decoded) != 1:
        raise problem
    ((direction, file_id),) = decoded.items()
    if direction not in ("after", "before") or not isinstance(file_id, str):
        raise problem
    return direction, file_id


def _limit(raw: str | None) -> int:
    if raw is None:
        return LIST_DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise InvalidRequestError(
            "limit: Input should be a valid integer, unable to parse string as an integer"
        ) from None
    if not 1 <= limit <= LIST_MAX_LIMIT:
        raise InvalidRequestError(f"limit: Input should be between 1 and {LIST_MAX_LIMIT}")
    return limit


def _list_page(records: list[FileRecord], has_more: bool, next_page: str | None) -> dict[str, Any]:
    return {
        "data": [metadata(record) for record in records],
        "has_more": has_more,
        "first_id": records[0].id if records else None,
        "last_id": records[-1].id if records else None,
        "next_page": next_page,
    }


async def list_files(request: Request, runtime: Runtime, request_id: str) -> Response:
    entry = await _begin(request, runtime, request_id, request.url.query, "/v1/files")
    store = _store(runtime)
    query = request.query_params
    try:
        ids = [
            part for raw in query.getlist("ids") + query.getlist("ids[]") for part in raw.split(",") if part
        ]
        if ids:
            if "page" in query or "limit" in query:
                raise InvalidRequestError("ids: cannot be combined with `page` or `limit`")
            unique = list(dict.fromkeys(ids))
            if len(unique) > IDS_MAX:
                raise InvalidRequestError(f"ids: List should have at most {IDS_MAX} items")
            found = await anyio.to_thread.run_sync(store.find, unique)
            return _answer(entry, _list_page(found, False, None), request_id)
        limit = _limit(query.get("limit"))
        after_id, before_id, token = query.get("after_id"), query.get("before_id"), query.get("page")
        if after_id and before_id:
            raise InvalidRequestError("after_id and before_id cannot be used together")
        if token:
            if after_id or before_id:
                raise InvalidRequestError("page: cannot be combined with `after_id` or `before_id`")
            direction, cursor = _decode_page(token)
            after_id, before_id = (cursor, None) if direction == "after" else (None, cursor)
        try:
            page = await anyio.to_thread.run_sync(
                lambda: store.page(limit=limit, after_id=after_id or None, before_id=before_id or None)
            )
        except InvalidCursor as unknown:
            name = "page" if token else ("before_id" if before_id else "after_id")
            raise InvalidRequestError(f"{name}: no file with id {unknown}") from None
        next_page = None
        if page.has_more and page.records:
            next_page = (
                _encode_page("before", page.records[0].id)
                if before_id
                else _encode_page("after", page.records[-1].id)
            )
    except APIError as error:
        entry.status = error.status
        raise
    return _answer(entry, _list_page(page.records, page.has_more, next_page), request_id)


# --- one file ----------------------------------------------------------------------------------------------


async def file_item(request: Request, runtime: Runtime, request_id: str) -> Response:
    """`GET` (metadata) and `DELETE` of `/v1/files/{file_id}`. An expired file's metadata is a 404
    `file_expired`; deleting it still works (it is how a client cleans up after itself)."""
    file_id = request.path_params["file_id"]
    entry = await _begin(request, runtime, request_id, file_id, "/v1/files/{file_id}")
    store = _store(runtime)
    try:
        if request.method == "DELETE":
            await anyio.to_thread.run_sync(store.delete, file_id)
            return _answer(entry, {"id": file_id, "type": "file_deleted"}, request_id)
        record = await anyio.to_thread.run_sync(store.get, file_id)
        if record.expired(store.now()):
            # the same answer as its download and `container_upload`: an expired file is gone for reading
            raise file_expired(file_id)
    except APIError as error:
        entry.status = error.status
        raise
    return _answer(entry, metadata(record), request_id)


async def download_file(request: Request, runtime: Runtime, request_id: str) -> Response:
    file_id = request.path_params["file_id"]
    entry = await _begin(request, runtime, request_id, file_id, "/v1/files/{file_id}/content")
    store = _store(runtime)
    try:
        record = await anyio.to_thread.run_sync(store.get, file_id)
        if record.expired(store.now()):
            raise file_expired(file_id)
        if not record.downloadable:
            raise InvalidRequestError(
                f"File {file_id} is not downloadable: only files generated by a tool (such as the code "
                "execution tool) can be downloaded",
                details={"error_code": "file_not_downloadable"},
            )
        blob = await anyio.to_thread.run_sync(store.open, record)
    except APIError as error:
        entry.status = error.status
        raise
    entry.status = 200

    async def body() -> AsyncIterator[bytes]:
        try:
            while chunk := await anyio.to_thread.run_sync(blob.read, READ_CHUNK_BYTES):
                yield chunk
        finally:
            blob.close()

    headers = {
        "request-id": request_id,
        # set here, not as `media_type`, which would append `; charset=utf-8` to text types
        "content-type": record.mime_type,
        "content-length": str(record.size_bytes),
        "content-disposition": f"attachment; filename*=utf-8''{quote(record.filename, safe='')}",
    }
    return StreamingResponse(body(), headers=headers)
