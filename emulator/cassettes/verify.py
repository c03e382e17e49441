"""`cassettes verify PATH...`: re-run the recorded tool calls in today's sandbox and report what drifted.

Every `server_tool_use` of the recorded responses (JSON or streamed) whose result is in the cassette is run
again, in order, in a local sandbox per recorded container (so files persist as they did), through the same
tool semantics the emulator uses. Compared: stdout and return code (bash and Python), the output files (their
number; their names where the cassette recorded them, from `GET /v1/files/{id}` metadata, a file list or a
download's `content-disposition`; their SHA-256 where it holds the `GET /v1/files/{id}/content` download),
and the whole result of text-editor commands; error results by their code. Errors that came from the
infrastructure rather than the call (`unavailable`, `too_many_requests`, `execution_time_exceeded`,
`output_file_too_large`, `container_expired`) are not re-run. Stderr is not compared (it carries paths and
versions that differ between machines without the call behaving differently). Files the cassette uploaded
(`POST /v1/files`) and a request put in the container (`container_upload`) are restored in `$INPUT_DIR`
first.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import unquote

from emulator.cassettes.format import CassetteFormatError, Interaction, read_interactions
from emulator.cassettes.lint import cassette_files
from emulator.engine.tools import run_tool
from emulator.sandbox import INPUT_DIR, Limits, OutputFile, Sandbox, SandboxBackend, make_backend
from emulator.sandbox.base import StreamingFiles
from emulator.wire.sse import parse_sse

RERUN_TOOLS = frozenset({"bash_code_execution", "text_editor_code_execution", "code_execution"})
NOT_REPRODUCIBLE = frozenset(
    {
        "unavailable",
        "too_many_requests",
        "execution_time_exceeded",
        "output_file_too_large",
        "container_expired",
    }
)
_SHOWN = 120


@dataclass(frozen=True)
class Drift:
    interaction: int
    tool_use_id: str
    tool: str
    call: str
    field: str
    recorded: Any
    today: Any

    def __str__(self) -> str:
        return (
            f"interaction {self.interaction}, {self.tool} {self.call} ({self.tool_use_id}): {self.field}: "
            f"recorded {_show(self.recorded)}, today {_show(self.today)}"
        )


@dataclass
class VerifyReport:
    path: Path
    executed: int = 0
    skipped: list[str] = field(default_factory=list)
    drifts: list[Drift] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.drifts

    def lines(self) -> list[str]:
        if self.error is not None:
            return [f"{self.path}: ERROR {self.error}"]
        counts = f"{self.executed} tool call(s) re-run, {len(self.skipped)} skipped"
        head = (
            f"{self.path}: ok ({counts})"
            if not self.drifts
            else f"{self.path}: {len(self.drifts)} drift(s) ({counts})"
        )
        return [
            head,
            *(f"  {drift}" for drift in self.drifts),
            *(f"  skipped: {why}" for why in self.skipped),
        ]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "...'"


def _call_text(name: str, tool_input: dict[str, Any]) -> str:
    if name == "bash_code_execution":
        summary = str(tool_input.get("command", ""))
    elif name == "code_execution":
        summary = str(tool_input.get("code", ""))
    else:
        summary = f"{tool_input.get('command')} {tool_input.get('path')}"
    summary = summary.strip().replace("\n", "; ")
    return f"`{summary[:60]}{'...' if len(summary) > 60 else ''}`"


# --- the recorded message, JSON or streamed ---------------------------------------------------------------


def message_of(item: Interaction) -> dict[str, Any] | None:
    """The assistant message a `/v1/messages` interaction answered with (streams are accumulated)."""
    if item.status != 200:
        return None
    if not item.is_stream:
        try:
            body = json.loads(item.response_body)
        except ValueError:
            return None
        return body if isinstance(body, dict) and body.get("type") == "message" else None
    message: dict[str, Any] | None = None
    partial: dict[int, list[str]] = {}
    for event in parse_sse(item.response_body):
        data = event.data
        kind = data.get("type")
        if kind == "message_start":
            message = dict(data["message"])
            message["content"] = list(message.get("content") or [])
        elif message is None:
            continue
        elif kind == "content_block_start":
            message["content"].append(dict(data["content_block"]))
        elif kind == "content_block_delta":
            block = message["content"][-1]
            delta = data.get("delta", {})
            if delta.get("type") == "input_json_delta":
                partial.setdefault(len(message["content"]) - 1, []).append(delta.get("partial_json", ""))
            elif delta.get("type") == "text_delta":
                block["text"] = block.get("text", "") + delta.get("text", "")
        elif kind == "content_block_stop":
            position = len(message["content"]) - 1
            if position in partial:
                text = "".join(partial.pop(position))
                message["content"][position]["input"] = json.loads(text) if text.strip() else {}
        elif kind == "message_delta":
            message.update({k: v for k, v in data.get("delta", {}).items() if v is not None})
    return message


# --- uploaded files ---------------------------------------------------------------------------------------


def _upload_of(item: Interaction) -> tuple[str, str, bytes] | None:
    """(file id, file name, content) of a recorded `POST /v1/files` upload."""
    if item.method != "POST" or item.status >= 300 or not item.path.rstrip("/").endswith("/v1/files"):
        return None
    try:
        answer = json.loads(item.response_body)
    except ValueError:
        return None
    content_type = item.request_headers.get("content-type") or item.request_headers.get("Content-Type") or ""
    if not isinstance(answer, dict) or "id" not in answer or "multipart/" not in content_type:
        return None
    raw = f"Content-Type: {content_type}\r\n\r\n".encode() + (item.request_body or b"")
    for part in BytesParser(policy=default_policy).parsebytes(raw).iter_parts():
        name = part.get_filename()
        if name:
            data = part.get_payload(decode=True)
            return str(answer["id"]), str(answer.get("filename") or name), bytes(data or b"")
    return None


def _container_uploads(item: Interaction) -> list[str]:
    """File ids a `/v1/messages` request asks to put in the container."""
    try:
        body = json.loads(item.request_body or b"")
    except ValueError:
        return []
    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            if value.get("type") == "container_upload" and isinstance(value.get("file_id"), str):
                found.append(value["file_id"])
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(body)
    return found


def _declared_tools(item: Interaction) -> set[str]:
    """Names of the request's tools other than code execution (code may call them when they allow it)."""
    try:
        tools = json.loads(item.request_body or b"").get("tools") or []
    except (ValueError, AttributeError):
        return set()
    tools = [tool for tool in tools if isinstance(tool, dict) and "name" in tool]
    return {str(tool["name"]) for tool in tools if not str(tool.get("type", "")).startswith("code_execution")}


def _callers(content: list[dict[str, Any]], declared: set[str]) -> dict[str, set[str]]:
    """For each code execution whose code called tools, the tools' names: those whose blocks name it as
    `caller.tool_id`, and (when the API left those blocks out) declared tools the code awaits."""
    calling: dict[str, set[str]] = {}
    for block in content:
        caller = block.get("caller")
        if isinstance(caller, dict) and isinstance(caller.get("tool_id"), str):
            calling.setdefault(caller["tool_id"], set()).add(str(block.get("name")))
        if block.get("type") == "server_tool_use" and block.get("name") == "code_execution":
            code = str((block.get("input") or {}).get("code", ""))
            awaited = {name for name in declared if f"await {name}(" in code}
            if awaited:
                calling.setdefault(str(block.get("id")), set()).update(awaited)
    return calling


# --- re-running ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FileFacts:
    """What is known of one output file: its name and its content's digest, each when known."""

    name: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None

    def content(self) -> str:
        return f"{self.size_bytes} bytes, sha256 {str(self.sha256)[:16]}"


class _OutputCollector:
    """The output-file sink: names and hashes the files a call left in `$OUTPUT_DIR` under made-up ids (the
    recorded ids are not reproducible), for `_compare` to look up."""

    def __init__(self) -> None:
        self.files: dict[str, _FileFacts] = {}

    def __call__(self, box: Sandbox, outputs: Sequence[OutputFile]) -> list[str]:
        ids: list[str] = []
        for output in outputs:
            file_id = f"file_verify_{len(self.files)}"
            self.files[file_id] = _FileFacts(
                output.name, output.size_bytes, _sandbox_sha256(box, output.path)
            )
            ids.append(file_id)
        return ids


def _sandbox_sha256(box: Sandbox, path: str) -> str | None:
    try:
        if isinstance(box, StreamingFiles):
            return box.file_sha256(path)
        return hashlib.sha256(box.read_file(path)).hexdigest()
    except (OSError, ValueError):
        return None


# --- what the cassette recorded about files -------------------------------------------------------------

_FILE_PATH = re.compile(r"/v1/files/([^/]+)(/content)?$")
_DISPOSITION_NAME = re.compile(r"filename\*=(?:utf-8|UTF-8)''([^;]+)|filename=\"?([^\";]+)\"?")


def _recorded_files(interactions: Iterable[Interaction]) -> dict[str, _FileFacts]:
    """Names and content digests of files, by id, from the cassette's Files API answers (whatever their
    position: a client fetches an output file's metadata and content after the message that made it)."""
    names: dict[str, str] = {}
    contents: dict[str, tuple[int, str]] = {}
    for item in interactions:
        if item.method != "GET" or item.status != 200:
            continue
        path = item.path.rstrip("/")
        if path.endswith("/v1/files"):
            for entry in _json_object(item.response_body).get("data") or []:
                if isinstance(entry, dict) and isinstance(entry.get("filename"), str):
                    names.setdefault(str(entry.get("id")), entry["filename"])
            continue
        found = _FILE_PATH.search(path)
        if found is None:
            continue
        file_id = found.group(1)
        if found.group(2) is None:
            filename = _json_object(item.response_body).get("filename")
            if isinstance(filename, str):
                names[file_id] = filename
            continue
        body = _decoded(item)
        if body is not None:
            contents[file_id] = (len(body), hashlib.sha256(body).hexdigest())
        for disposition in _header_values(item.response_headers, "content-disposition"):
            named = _DISPOSITION_NAME.search(disposition)
            if named:
                names.setdefault(file_id, unquote(named.group(1) or named.group(2)))
    return {
        file_id: _FileFacts(
            names.get(file_id),
            contents[file_id][0] if file_id in contents else None,
            contents[file_id][1] if file_id in contents else None,
        )
        for file_id in names.keys() | contents.keys()
    }


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _header_values(headers: dict[str, Any], name: str) -> list[str]:
    found: list[str] = []
    for key, values in headers.items():
        if key.lower() == name:
            found.extend(str(value) for value in (values if isinstance(values, list) else [values]))
    return found


def _decoded(item: Interaction) -> bytes | None:
    """A download's bytes as the client got them (None when stored in an encoding we cannot undo)."""
    encodings = [value.strip().lower() for value in _header_values(item.response_headers, "content-encoding")]
    encodings = [value for value in encodings if value not in ("", "identity")]
    if not encodings:
        return item.response_body
    if encodings == ["gzip"]:
        try:
            return gzip.decompress(item.response_body)
        except (OSError, EOFError):
            return None
    return None


def _compare(
    report: VerifyReport,
    item: Interaction,
    use: dict[str, Any],
    recorded: dict[str, Any],
    today: dict[str, Any],
    recorded_files: dict[str, _FileFacts],
    today_files: dict[str, _FileFacts],
) -> None:
    name, tool_input = use["name"], use.get("input") or {}

    def drift(field_name: str, was: Any, now: Any) -> None:
        report.drifts.append(
            Drift(item.number, str(use.get("id")), name, _call_text(name, tool_input), field_name, was, now)
        )

    recorded_type, today_type = recorded.get("type"), today.get("type")
    if str(recorded_type).endswith("_error") or str(today_type).endswith("_error"):
        if recorded.get("error_code") != today.get("error_code"):
            drift("error_code", recorded.get("error_code"), today.get("error_code"))
        return
    if name in ("bash_code_execution", "code_execution"):
        for key in ("stdout", "return_code"):
            if recorded.get(key) != today.get(key):
                drift(key, recorded.get(key), today.get(key))
        was_ids = _output_ids(recorded)
        now_ids = _output_ids(today)
        if len(was_ids) != len(now_ids):
            drift("output files", len(was_ids), len(now_ids))
        was = [(file_id, recorded_files.get(file_id, _FileFacts())) for file_id in was_ids]
        now = [today_files.get(file_id, _FileFacts()) for file_id in now_ids]
        _compare_files(drift, was, now)
        return
    for key in sorted(set(recorded) | set(today)):
        if recorded.get(key) != today.get(key):
            drift(key, recorded.get(key), today.get(key))


def _output_ids(result: dict[str, Any]) -> list[str]:
    return [
        str(block.get("file_id"))
        for block in result.get("content") or []
        if isinstance(block, dict) and "file_id" in block
    ]


def _compare_files(
    drift: Callable[[str, Any, Any], None], was: list[tuple[str, _FileFacts]], now: list[_FileFacts]
) -> None:
    """Report each output file whose name or content differs, naming it. Recorded files are paired with
    today's by name; a lone unpaired file on each side is taken as the same file renamed (or, names unknown,
    the only file of each side)."""
    unpaired_now = list(now)
    pairs: list[tuple[str, _FileFacts, _FileFacts]] = []
    unpaired_was: list[tuple[str, _FileFacts]] = []
    for file_id, facts in was:
        match = next((today for today in unpaired_now if facts.name and today.name == facts.name), None)
        if match is None:
            unpaired_was.append((file_id, facts))
        else:
            unpaired_now.remove(match)
            pairs.append((file_id, facts, match))
    named_was = [(file_id, facts) for file_id, facts in unpaired_was if facts.name]
    if len(unpaired_was) == 1 and len(unpaired_now) == 1:
        (file_id, facts), today = unpaired_was[0], unpaired_now[0]
        if facts.name:
            drift(f"output file {facts.name} ({file_id}): name", facts.name, today.name)
        pairs.append((file_id, facts, today))
        unpaired_was, unpaired_now, named_was = [], [], []
    for file_id, facts in named_was:
        drift(f"output file {facts.name} ({file_id})", "written", "not written")
    if len(named_was) == len(unpaired_was):  # every recorded name is known: today's extra files are new
        for today in unpaired_now:
            drift(f"output file {today.name}", "not written", "written")
    for file_id, facts, today in pairs:
        if facts.sha256 is not None and today.sha256 is not None and facts.sha256 != today.sha256:
            drift(
                f"output file {facts.name or today.name} ({file_id}): content",
                facts.content(),
                today.content(),
            )


def verify_cassette(path: Path, backend: SandboxBackend) -> VerifyReport:
    report = VerifyReport(path)
    try:
        interactions = read_interactions(path)
    except CassetteFormatError as problem:
        report.error = str(problem)
        return report
    uses: dict[str, dict[str, Any]] = {}
    boxes: dict[str, Sandbox] = {}
    uploads: dict[str, tuple[str, bytes]] = {}
    placed: set[tuple[str, str]] = set()
    recorded_files = _recorded_files(interactions)
    sink = _OutputCollector()
    try:
        for item in interactions:
            upload = _upload_of(item)
            if upload is not None:
                uploads[upload[0]] = (upload[1], upload[2])
                continue
            if not item.path.rstrip("/").endswith("/v1/messages"):
                continue
            message = message_of(item)
            if message is None:
                continue
            container = message.get("container")
            container_id = container.get("id") if isinstance(container, dict) else None
            container_id = container_id or f"container_verify_{path.stem}_{item.number}"
            for file_id in _container_uploads(item):
                if (container_id, file_id) in placed:
                    continue
                if file_id not in uploads:
                    report.skipped.append(
                        f"interaction {item.number}: {file_id} (container_upload) is not in the cassette; "
                        "calls reading it may drift"
                    )
                    placed.add((container_id, file_id))
                    continue
                box = boxes.get(container_id)
                if box is None:
                    box = boxes[container_id] = backend.open(container_id)
                name, data = uploads[file_id]
                box.put_file(f"{INPUT_DIR}/{name}", data)
                placed.add((container_id, file_id))
            calling = _callers(message.get("content") or [], _declared_tools(item))
            for block in message.get("content") or []:
                if block.get("type") == "server_tool_use":
                    uses[str(block.get("id"))] = block
                    continue
                if "tool_use_id" not in block or not str(block.get("type")).endswith("_tool_result"):
                    continue
                use = uses.get(str(block["tool_use_id"]))
                if use is None or use.get("name") not in RERUN_TOOLS:
                    continue
                recorded = block.get("content")
                if not isinstance(recorded, dict):
                    continue
                if recorded.get("error_code") in NOT_REPRODUCIBLE:
                    report.skipped.append(
                        f"interaction {item.number} {use['id']}: recorded `{recorded['error_code']}` is not "
                        "reproducible by re-running"
                    )
                    continue
                caller = use.get("caller")
                if isinstance(caller, dict) and caller.get("type") not in (None, "direct"):
                    report.skipped.append(f"interaction {item.number} {use['id']}: called from code")
                    continue
                if use["id"] in calling:
                    report.skipped.append(
                        f"interaction {item.number} {use['id']}: the code called tools "
                        f"({', '.join(sorted(calling[use['id']]))}), which verify cannot answer"
                    )
                    continue
                box = boxes.get(container_id)
                if box is None:
                    box = boxes[container_id] = backend.open(container_id)
                # a recording made when the API still answered `string_not_found` (2025) expects that code
                legacy = recorded.get("error_code") == "string_not_found"
                today = run_tool(
                    box,
                    use["name"],
                    str(use["id"]),
                    dict(use.get("input") or {}),
                    sink=sink,
                    legacy_codes=legacy,
                )
                report.executed += 1
                _compare(report, item, use, recorded, today.to_wire()["content"], recorded_files, sink.files)
    finally:
        for box in boxes.values():
            box.destroy()
    return report


def verify_paths(
    paths: Iterable[Path],
    out: TextIO,
    *,
    backend: str = "local",
    isolation: str = "auto",
    timeout_s: float = 300.0,
) -> int:
    """Verify every cassette under `paths` in a fresh sandbox backend; 0 when nothing drifted."""
    files = [path for path, _ in cassette_files(paths)]
    if not files:
        print("no cassettes found", file=out)
        return 1
    reports: list[VerifyReport] = []
    with tempfile.TemporaryDirectory(prefix="code-execution-emulator-verify-") as scratch:
        sandboxes = make_backend(
            backend, state_dir=Path(scratch), limits=Limits(timeout_s=timeout_s), isolation=isolation
        )
        try:
            for path in files:
                report = verify_cassette(path, sandboxes)
                reports.append(report)
                for line in report.lines():
                    print(line, file=out, flush=True)
        finally:
            sandboxes.close()
    bad = [report for report in reports if not report.ok]
    print(f"{len(reports)} cassette(s) verified, {len(bad)} with drift", file=out)
    return 1 if bad else 0
