"""Files in and out of containers: `container_upload` blocks and the files tool calls leave in `$OUTPUT_DIR`.

In: every `container_upload` block of the conversation's user messages names a Files API file, which is
copied into the container's `$INPUT_DIR` under its filename before the model's turn runs (a file already
there with the same bytes is left alone, so a long conversation does not re-copy its uploads each turn).
Out: the files a bash or Python call writes into `$OUTPUT_DIR` become downloadable Files API files that
outlive the container, listed in the result block as `bash_code_execution_output`/`code_execution_output`.

Bytes move in bounded chunks when the sandbox offers `StreamingFiles`, so a 100 MB file never sits whole in
memory; other sandboxes fall back to `put_file`/`read_file`.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from emulator.engine.tools import OutputFileTooLarge
from emulator.errors import InvalidRequestError, NotFoundError
from emulator.sandbox.base import OutputFile, Sandbox, SandboxUnavailable
from emulator.state.files import FileRecord, FileStore, FileTooLarge, guess_mime_type

INPUT_DIR_VARIABLE = "$INPUT_DIR"


@dataclass(frozen=True)
class UploadBlock:
    """A `container_upload` block found in the conversation (indices for error paths)."""

    message_index: int
    block_index: int
    file_id: str


def upload_blocks(messages: Sequence[Any]) -> list[UploadBlock]:
    """The `container_upload` blocks of the user messages, in conversation order."""
    found: list[UploadBlock] = []
    for message_index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for block_index, block in enumerate(content):
            if isinstance(block, dict) and block.get("type") == "container_upload":
                found.append(UploadBlock(message_index, block_index, str(block.get("file_id"))))
    return found


def file_expired(file_id: str) -> NotFoundError:
    return NotFoundError(f"File has expired: {file_id}", details={"error_code": "file_expired"})


def resolve_uploads(
    messages: Sequence[Any], tool_version: str | None, store: FileStore | None
) -> list[FileRecord]:
    """The files the conversation's `container_upload` blocks name, checked the way the API checks them: a
    400 without a code execution tool, a 404 for an unknown or expired file."""
    blocks = upload_blocks(messages)
    if not blocks:
        return []
    first = blocks[0]
    if tool_version is None:
        raise InvalidRequestError(
            f"messages.{first.message_index}.content.{first.block_index}: `container_upload` blocks need "
            "the code execution tool in `tools`"
        )
    if store is None:
        raise NotFoundError(f"File not found: {first.file_id}")
    now = store.now()
    records: list[FileRecord] = []
    for block in blocks:
        record = store.get(block.file_id)
        if record.expired(now):
            raise file_expired(block.file_id)
        if record.filename in (".", ".."):
            raise InvalidRequestError(
                f"messages.{block.message_index}.content.{block.block_index}: file {block.file_id} is named "
                f"{record.filename!r}, which cannot be a file in the container's input directory"
            )
        records.append(record)
    return records


# --- moving bytes in and out of a sandbox ------------------------------------------------------------------


def _streaming(box: Sandbox, method: str) -> Any:
    # getattr, not isinstance on the Protocol: wrappers such as the metering sandbox forward attributes
    # through __getattr__, which runtime protocol checks do not see on every Python version.
    operation = getattr(box, method, None)
    return operation if callable(operation) else None


def write_into(box: Sandbox, path: str, chunks: Iterable[bytes]) -> None:
    write_chunks = _streaming(box, "write_file_chunks")
    if write_chunks is not None:
        write_chunks(path, chunks)
    else:
        box.put_file(path, b"".join(chunks))


def read_from(box: Sandbox, path: str) -> Iterator[bytes]:
    read_chunks = _streaming(box, "read_file_chunks")
    if read_chunks is not None:
        yield from read_chunks(path)
    else:
        yield box.read_file(path)


def sha256_in(box: Sandbox, path: str) -> str | None:
    file_sha256 = _streaming(box, "file_sha256")
    if file_sha256 is not None:
        digest = file_sha256(path)
        return str(digest) if digest is not None else None
    try:
        return hashlib.sha256(box.read_file(path)).hexdigest()
    except (OSError, ValueError):
        return None


def stage_uploads(box: Sandbox, records: Sequence[FileRecord], store: FileStore) -> None:
    """Copy the uploads into `$INPUT_DIR` (the last upload of a name wins, as later copies overwrite)."""
    latest: dict[str, FileRecord] = {}
    for record in records:
        latest.pop(record.filename, None)
        latest[record.filename] = record
    for name, record in latest.items():
        path = f"{INPUT_DIR_VARIABLE}/{name}"
        if sha256_in(box, path) == record.sha256:
            continue
        write_into(box, path, store.iter_bytes(record))


# --- output files ------------------------------------------------------------------------------------------


class OutputCollector:
    """The turn loop's `OutputFileSink`: a call's output files become downloadable Files API files."""

    def __init__(self, store: FileStore, max_bytes: int) -> None:
        self._store = store
        self.max_bytes = max_bytes

    def __call__(self, box: Sandbox, outputs: Sequence[OutputFile]) -> list[str]:
        for output in outputs:
            if output.size_bytes > self.max_bytes:
                raise OutputFileTooLarge(self._too_large(output))
        kept: list[str] = []
        try:
            for output in outputs:
                try:
                    record = self._store.add(
                        read_from(box, output.path),
                        filename=output.name,
                        mime_type=guess_mime_type(output.name),
                        downloadable=True,
                        container_id=box.container_id,
                        limit=self.max_bytes,
                    )
                except FileTooLarge:  # it grew between the scan and the copy
                    raise OutputFileTooLarge(self._too_large(output)) from None
                except (OSError, ValueError, SandboxUnavailable):
                    continue  # gone or unreadable since the scan: nothing to keep
                kept.append(record.id)
        except OutputFileTooLarge:
            for file_id in kept:  # all or nothing, like the API's single error code
                with contextlib.suppress(NotFoundError):
                    self._store.delete(file_id)
            raise
        return kept

    def _too_large(self, output: OutputFile) -> str:
        return f"{output.name} is larger than {self.max_bytes} bytes"
