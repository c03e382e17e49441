"""Hypothesis strategies for property-testing code that parses Messages API responses.

Every function here returns a `hypothesis` strategy. What they generate is what the real API sends for the
code execution tool: whole messages, each content block and each of its variants, SSE event streams with the
API's grammar, the raw bytes of those streams cut as a network delivers them, HTTP error responses, Files
API objects and request bodies. Everything validates against the JSON Schemas in `schemas/` and parses into
the official SDK's typed classes; a generated stream accumulates in the SDK to the message it was made from
(`accumulated_message`: plus the `stop_details: null` a `message_delta` always brings).

One source of truth: the vocabularies (tool versions, result and error variants, error codes, stop reasons,
error types, file types, service tiers) are read from `schemas/` when this module is imported, and the import
fails if the schemas name a variant no strategy here can build. Values are shaped by hand where realism
needs it: ids, timestamps, commands, stdout, unified-diff hunks, token counts.

Generation never uses `.filter`, so the default settings raise no health check. Small examples shrink to
small, readable counterexamples (a text block shrinks to `"hello"`, a path to `/tmp/fib.py`).

    from hypothesis import given
    from emulator import strategies as ce

    @given(ce.messages(tool_version="code_execution_20250825"))
    def test_my_parser_survives_any_message(message):
        my_parser(message)
"""

from __future__ import annotations

import base64
import datetime
import difflib
import functools
import itertools
import json
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from emulator.wire import sse
from emulator.wire.ids import BASE58
from emulator.wire.models import format_timestamp
from emulator.wire.schemas import default_store

__all__ = [
    "BLOCK_TYPES",
    "DOCUMENTED_2025_CODES",
    "ERAS",
    "ERROR_CODES",
    "ERROR_STATUSES",
    "LEGACY_TOOL_VERSION",
    "RESULT_BLOCK_FOR_TOOL",
    "RESULT_CONTENT_TYPES",
    "STOP_REASONS",
    "TOOL_VERSIONS",
    "ErrorResponse",
    "GeneratedStream",
    "RawStream",
    "accumulated_message",
    "containers",
    "content_blocks",
    "deleted_files",
    "file_lists",
    "file_metadata",
    "http_errors",
    "ids",
    "messages",
    "ptc_continuations",
    "raw_streams",
    "request_bodies",
    "streams",
    "sub_tools",
    "timestamps",
    "tool_calls",
]

JSON = dict[str, Any]

# --- vocabularies, read from the schemas ------------------------------------------------------------------


def _schema_enum(document: str, definition: str, *path: str) -> tuple[str, ...]:
    node: Any = default_store().document(document)["$defs"][definition]
    for key in path:
        node = node[key]
    if "anyOf" in node:  # `X | null`: the enum is the non-null branch
        node = next(branch for branch in node["anyOf"] if "enum" in branch)
    return tuple(node["enum"])


#: every code execution tool version, oldest first
TOOL_VERSIONS: tuple[str, ...] = _schema_enum(
    "tools.schema.json", "code_execution_tool", "properties", "type"
)
#: Python only: its one sub-tool is `code_execution`
LEGACY_TOOL_VERSION = "code_execution_20250522"
#: every `stop_reason` a message may carry
STOP_REASONS: tuple[str, ...] = _schema_enum("response.schema.json", "message", "properties", "stop_reason")
#: codes only the 2025 docs list; opt in with `documented_2025=True` (the SDK's strict types reject them)
DOCUMENTED_2025_CODES = frozenset({"container_expired", "string_not_found"})
#: wire shapes by recording date: 2026 adds `stop_details: null`, `usage.inference_geo`, `abort_reason: null`
#: on Python results and `caller: {"type": "direct"}` on server tool calls
ERAS = ("2025", "2026")

#: server tool name -> the block type of its result
RESULT_BLOCK_FOR_TOOL: dict[str, str] = {
    "bash_code_execution": "bash_code_execution_tool_result",
    "text_editor_code_execution": "text_editor_code_execution_tool_result",
    "code_execution": "code_execution_tool_result",
}
#: result block type -> the `content.type` variants it may hold (results and error objects)
RESULT_CONTENT_TYPES: dict[str, tuple[str, ...]] = {
    block: _schema_enum("blocks.schema.json", f"{block}_content", "properties", "type")
    for block in RESULT_BLOCK_FOR_TOOL.values()
}
#: error object type -> its `error_code` values, documented-2025 ones included
ERROR_CODES: dict[str, tuple[str, ...]] = {
    kind: _schema_enum("blocks.schema.json", kind, "properties", "error_code")
    for kinds in RESULT_CONTENT_TYPES.values()
    for kind in kinds
    if kind.endswith("_tool_result_error")
}
#: the content block types these strategies build (`block_types=` picks among them)
BLOCK_TYPES: tuple[str, ...] = (
    "text",
    "thinking",
    "server_tool_use",
    "tool_use",
    *RESULT_BLOCK_FOR_TOOL.values(),
)

_VIEW_FILE_TYPES = _schema_enum(
    "blocks.schema.json", "text_editor_code_execution_view_result", "properties", "file_type"
)
_SERVICE_TIERS = _schema_enum("response.schema.json", "usage", "properties", "service_tier")
_REFUSAL_CATEGORIES = _schema_enum("response.schema.json", "refusal_stop_details", "properties", "category")
_ERROR_TYPES = _schema_enum("errors.schema.json", "error_object", "properties", "type")

#: HTTP status -> `error.type`, as the API answers (wire contract §8)
ERROR_STATUSES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_unknown_error_types = set(ERROR_STATUSES.values()) - set(_ERROR_TYPES)
if _unknown_error_types:
    raise RuntimeError(f"errors.schema.json lacks error types {sorted(_unknown_error_types)}")


def sub_tools(tool_version: str) -> tuple[str, ...]:
    """The `server_tool_use` names a tool version calls: `code_execution` alone for the legacy 20250522,
    bash, the text editor and Python cells (`code_execution`) for 20250825 and later."""
    if tool_version not in TOOL_VERSIONS:
        raise InvalidArgument(f"unknown tool version {tool_version!r}; expected one of {TOOL_VERSIONS}")
    if tool_version == LEGACY_TOOL_VERSION:
        return ("code_execution",)
    return ("bash_code_execution", "text_editor_code_execution", "code_execution")


def _caller_type(tool_version: str) -> str:
    # responses tag 20260521 callers as 20260120 (wire contract §14)
    return (
        "code_execution_20250825" if tool_version == "code_execution_20250825" else "code_execution_20260120"
    )


# --- realistic atoms --------------------------------------------------------------------------------------

_TEXT_CHARACTERS = st.characters(codec="utf-8")
_LINE_CHARACTERS = st.characters(codec="utf-8", exclude_characters="\n\r")
_WORDS = (
    "hello",
    "The answer is 55.",
    "Let me run that.",
    "café",
    "naïve",
    "✓ done",
    "日本語",
    "🎉",
    'say "hi"',
    "C:\\temp",
    "tab\there",
    "x = 1",
    "3.14",
    "—",
    "\u2028",
)
_NAMES = ("fib", "data", "report", "main", "notes", "q", "sample", "output")
_EXTENSIONS = ("py", "txt", "csv", "json", "md", "sh")
_MIME_TYPES = {
    "csv": "text/csv",
    "txt": "text/plain",
    "md": "text/markdown",
    "json": "application/json",
    "py": "text/x-python",
    "pdf": "application/pdf",
    "png": "image/png",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
_MODELS = {
    "2025": (
        "claude-sonnet-4-5-20250929",
        "claude-opus-4-5-20251101",
        "claude-haiku-4-5-20251001",
        "claude-sonnet-4-20250514",
    ),
    "2026": ("claude-sonnet-4-6", "claude-sonnet-5", "claude-opus-4-6", "claude-haiku-4-5-20251001"),
}
# current names that take every tool version (SDK 2.13 warns on the deprecated 4.5 Sonnet and Opus)
_REQUEST_MODELS = (
    "claude-sonnet-4-6",
    "claude-opus-4-6",
    "claude-haiku-4-5",
    "claude-sonnet-5",
    "claude-opus-4-7",
)
# 2025-05-22T00:00:00Z .. 2026-12-31T23:59:59Z, in microseconds
_FIRST_MICROS = 1_747_872_000_000_000
_LAST_MICROS = 1_798_761_599_999_999


@functools.cache
def _prose(max_size: int, *, min_size: int = 0, line: bool = False) -> st.SearchStrategy[str]:
    """Model text: words from a realistic list (escapes, non-ASCII, U+2028) or any Unicode text."""
    alphabet = _LINE_CHARACTERS if line else _TEXT_CHARACTERS
    words = _WORDS if not line else tuple(word for word in _WORDS if "\u2028" not in word)
    return st.one_of(
        st.lists(st.sampled_from(words), min_size=max(1, min_size), max_size=4).map(
            lambda chosen: " ".join(chosen)[: max(max_size, 1)]
        ),
        st.text(alphabet, min_size=min_size, max_size=max_size),
    )


@functools.cache
def _nonblank(max_size: int) -> st.SearchStrategy[str]:
    """Text with something besides whitespace, as the API requires of text blocks, prompts and stop
    sequences in requests (a blank draw becomes `"hello"`, which is also what it shrinks to)."""
    return _prose(max_size, min_size=1).map(lambda text: text if text.strip() else "hello")


@functools.cache
def _output(max_size: int) -> st.SearchStrategy[str]:
    """stdout/stderr: newline-terminated lines, or any text (no final newline, control characters)."""
    return st.one_of(
        st.just(""),
        st.lists(_prose(max(1, max_size // 3), line=True), min_size=1, max_size=3).map(
            lambda lines: "".join(f"{text}\n" for text in lines)
        ),
        st.text(_TEXT_CHARACTERS, max_size=max_size),
    )


@functools.cache
def _base64(min_bytes: int, max_bytes: int) -> st.SearchStrategy[str]:
    return st.binary(min_size=min_bytes, max_size=max_bytes).map(lambda raw: base64.b64encode(raw).decode())


@functools.cache
def _paths() -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds("/tmp/{}.{}".format, st.sampled_from(_NAMES), st.sampled_from(_EXTENSIONS)),
        st.sampled_from(("$INPUT_DIR/sample.csv", "config.json", "/skills/pptx/SKILL.md", "notes/todo.md")),
        st.builds(
            "/files/output/{}/{}.csv".format,
            st.text("0123456789abcdef", min_size=16, max_size=16),
            st.sampled_from(_NAMES),
        ),
        st.builds("/tmp/{}".format, st.text(_LINE_CHARACTERS, min_size=1, max_size=12)),
    )


_BASH_TEMPLATES = (
    "echo {word}",
    "python3 {path}",
    "ls -la /tmp",
    "cat {path}",
    "wc -l {path} && head -n 5 {path}",
    'for n in $(seq 1 3); do echo "$n: {word}"; done',
    "cd /tmp && python3 - <<'EOF'\nprint({literal})\nEOF",
    "printf '%s\\n' {literal} > {path} && cat {path}",
)
_PYTHON_TEMPLATES = (
    "print({literal})",
    "print(sum(range({number})))",
    "import math\nprint(math.sqrt({number}))",
    "import pandas as pd\ndf = pd.read_csv({path_literal})\nprint(df.describe())",
    "with open({path_literal}, 'w') as handle:\n    handle.write({literal})",
)


@functools.cache
def _from_template(templates: tuple[str, ...], max_text: int) -> st.SearchStrategy[str]:
    return st.builds(
        lambda template, word, path, number: template.format(
            word=word, literal=repr(word), path=path, path_literal=repr(path), number=number
        ),
        st.sampled_from(templates),
        _prose(max_text, line=True),
        _paths(),
        st.integers(0, 10**6),
    )


@functools.cache
def ids(prefix: str) -> st.SearchStrategy[str]:
    """Ids shaped like the API's: `<prefix>_01` then 22 base58 characters (e.g. `srvtoolu_01K2E2j5m...`)."""
    return st.text(BASE58, min_size=22, max_size=22).map(lambda tail: f"{prefix}_01{tail}")


@functools.cache
def timestamps() -> st.SearchStrategy[str]:
    """RFC 3339 UTC timestamps with six fraction digits and `Z`, 2025-05-22 to 2026-12-31, as `expires_at`
    and `created_at` are written. The fraction is never zero: the API always writes one, and the SDK's
    datetime would re-serialise `.000000` without it."""
    return st.integers(_FIRST_MICROS, _LAST_MICROS).map(_format_micros)


def _format_micros(micros: int) -> str:
    seconds, fraction = divmod(micros, 1_000_000)
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC).replace(microsecond=fraction or 1)
    return format_timestamp(moment)


class _Ids:
    """Ids unique within one generated object, even after shrinking makes every drawn tail `111...1`."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def new(self, draw: st.DrawFn, prefix: str) -> str:
        value = draw(ids(prefix))
        if value in self.used:
            counter = ""
            number = len(self.used)
            while True:
                number, digit = divmod(number, len(BASE58))
                counter = BASE58[digit] + counter
                if not number:
                    break
            value = value[: -len(counter)] + counter
            while value in self.used:  # a drawn id may already end with this counter
                value = value[:-1] + BASE58[(BASE58.index(value[-1]) + 1) % len(BASE58)]
        self.used.add(value)
        return value


@st.composite
def containers(draw: st.DrawFn, *, container_id: str | None = None, skills: bool | None = None) -> JSON:
    """A response `container`: `{"id": "container_01...", "expires_at": ...}`, with `skills` (Anthropic
    skills at a resolved date version, custom skills at an epoch-microsecond version) when `skills` is
    True, never when False, sometimes when None."""
    container: JSON = {
        "id": container_id if container_id is not None else draw(ids("container")),
        "expires_at": draw(timestamps()),
    }
    with_skills = draw(st.booleans()) if skills is None else skills
    if with_skills:
        anthropic_skill = st.builds(
            lambda skill_id, version: {"type": "anthropic", "skill_id": skill_id, "version": version},
            st.sampled_from(("pptx", "xlsx", "docx", "pdf")),
            st.sampled_from(("20251013", "20260115")),
        )
        custom_skill = st.builds(
            lambda skill_id, version: {"type": "custom", "skill_id": skill_id, "version": str(version)},
            ids("skill"),
            st.integers(1_750_000_000_000_000, 1_790_000_000_000_000),
        )
        container["skills"] = draw(st.lists(st.one_of(anthropic_skill, custom_skill), min_size=1, max_size=3))
    return container


# --- what a strategy may generate -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    versions: tuple[str, ...]
    block_types: frozenset[str]
    result_types: frozenset[str] | None
    error_codes: frozenset[str] | None
    documented_2025: bool
    eras: tuple[str, ...]
    max_text: int
    max_files: int
    client_tools: tuple[str, ...] = ("get_weather", "rollDie", "lookup_order")

    def codes(self, error_type: str) -> tuple[str, ...]:
        return tuple(
            code
            for code in ERROR_CODES[error_type]
            if (self.documented_2025 or code not in DOCUMENTED_2025_CODES)
            and (self.error_codes is None or code in self.error_codes)
        )

    def content_types(self, block_type: str, tool_version: str) -> tuple[str, ...]:
        """The `content.type` variants a result block may take under this spec."""
        chosen = []
        for kind in RESULT_CONTENT_TYPES[block_type]:
            if self.result_types is not None and kind not in self.result_types:
                continue
            if kind in ERROR_CODES and not self.codes(kind):
                continue
            # Encrypted stdout comes from code that called web search: 2026 tool versions only.
            if kind == "encrypted_code_execution_result" and tool_version in (
                LEGACY_TOOL_VERSION,
                "code_execution_20250825",
            ):
                continue
            chosen.append(kind)
        return tuple(chosen)

    def result_tools(self, tool_version: str) -> tuple[str, ...]:
        """Sub-tools whose result blocks may appear."""
        return tuple(
            name
            for name in sub_tools(tool_version)
            if RESULT_BLOCK_FOR_TOOL[name] in self.block_types
            and self.content_types(RESULT_BLOCK_FOR_TOOL[name], tool_version)
        )

    def paired_tools(self, tool_version: str) -> tuple[str, ...]:
        """Sub-tools that may appear as a call followed by its result."""
        if "server_tool_use" not in self.block_types:
            return ()
        return self.result_tools(tool_version)

    def ptc(self, tool_version: str) -> bool:
        """Programmatic tool calling: a Python cell that calls client tools (20250825 and later)."""
        return (
            tool_version != LEGACY_TOOL_VERSION
            and {"server_tool_use", "tool_use"} <= self.block_types
            and bool(self.client_tools)
        )

    def stop_reasons(self, allowed: tuple[str, ...]) -> tuple[str, ...]:
        """The stop reasons whose endings these block types can build."""
        feasible = []
        for reason in allowed:
            if reason == "pause_turn" and "server_tool_use" not in self.block_types:
                continue
            if reason == "tool_use" and ("tool_use" not in self.block_types or not self.client_tools):
                continue
            feasible.append(reason)
        return tuple(feasible)


def _spec(
    tool_version: str | Collection[str] | None,
    block_types: Collection[str] | None,
    result_types: Collection[str] | None,
    error_codes: Collection[str] | None,
    documented_2025: bool,
    era: str | None,
    max_text: int,
    max_files: int,
) -> _Spec:
    if tool_version is None:
        versions = TOOL_VERSIONS
    elif isinstance(tool_version, str):
        versions = (tool_version,)
    else:
        versions = tuple(tool_version)
    for version in versions:
        sub_tools(version)  # raises on an unknown version
    if not versions:
        raise InvalidArgument("tool_version must name at least one version")
    chosen_blocks = frozenset(BLOCK_TYPES if block_types is None else block_types)
    unknown = chosen_blocks - set(BLOCK_TYPES)
    if unknown:
        raise InvalidArgument(f"unknown block types {sorted(unknown)}; expected some of {BLOCK_TYPES}")
    all_content_types = {kind for kinds in RESULT_CONTENT_TYPES.values() for kind in kinds}
    if result_types is not None and set(result_types) - all_content_types:
        raise InvalidArgument(f"unknown result types {sorted(set(result_types) - all_content_types)}")
    all_codes = {code for codes in ERROR_CODES.values() for code in codes}
    if error_codes is not None:
        if set(error_codes) - all_codes:
            raise InvalidArgument(f"unknown error codes {sorted(set(error_codes) - all_codes)}")
        if set(error_codes) & DOCUMENTED_2025_CODES and not documented_2025:
            raise InvalidArgument(f"{sorted(DOCUMENTED_2025_CODES)} need documented_2025=True")
    if era is not None and era not in ERAS:
        raise InvalidArgument(f"era must be one of {ERAS} or None, not {era!r}")
    if max_text < 1 or max_files < 0:
        raise InvalidArgument("max_text must be at least 1 and max_files at least 0")
    return _Spec(
        versions=versions,
        block_types=chosen_blocks,
        result_types=None if result_types is None else frozenset(result_types),
        error_codes=None if error_codes is None else frozenset(error_codes),
        documented_2025=documented_2025,
        eras=ERAS if era is None else (era,),
        max_text=max_text,
        max_files=max_files,
    )


# --- tool calls and their results -------------------------------------------------------------------------

_ERROR_MESSAGES = {
    "invalid_tool_input": ("Unknown command: insert", "String to replace not found in file", "Invalid path"),
    "unavailable": ("The tool is temporarily unavailable",),
    "too_many_requests": ("Too many requests",),
    "execution_time_exceeded": ("Execution time exceeded",),
    "file_not_found": ("File not found",),
    "container_expired": ("Container expired",),
    "string_not_found": ("String not found in file",),
}


def _output_files(draw: st.DrawFn, spec: _Spec, kind: str, made: _Ids) -> list[JSON]:
    count = draw(st.integers(0, spec.max_files))
    return [{"type": kind, "file_id": made.new(draw, "file")} for _ in range(count)]


def _error_object(draw: st.DrawFn, spec: _Spec, kind: str, path: str | None) -> JSON:
    code = draw(st.sampled_from(spec.codes(kind)))
    error: JSON = {"type": kind, "error_code": code}
    if kind == "text_editor_code_execution_tool_result_error":
        # the only error object with a message; the SDK types it optional and nullable
        shape = draw(st.sampled_from(("message", "absent", "null")))
        if shape == "null":
            error["error_message"] = None
        elif shape == "message":
            message = draw(st.sampled_from(_ERROR_MESSAGES.get(code, ("Error",))))
            error["error_message"] = f"{message}: {path}" if code == "file_not_found" and path else message
    return error


def _bash_call(draw: st.DrawFn, spec: _Spec, content_type: str, made: _Ids) -> tuple[JSON, JSON]:
    tool_input = {"command": draw(_from_template(_BASH_TEMPLATES, spec.max_text))}
    if content_type in ERROR_CODES:
        return tool_input, _error_object(draw, spec, content_type, None)
    return tool_input, {
        "type": content_type,
        "stdout": draw(_output(spec.max_text)),
        "stderr": draw(st.one_of(st.just(""), _output(spec.max_text))),
        "return_code": draw(st.one_of(st.sampled_from((0, 1, 2, 124, 127, 137)), st.integers(0, 255))),
        "content": _output_files(draw, spec, "bash_code_execution_output", made),
    }


def _python_call(draw: st.DrawFn, spec: _Spec, content_type: str, era: str, made: _Ids) -> tuple[JSON, JSON]:
    tool_input = {"code": draw(_from_template(_PYTHON_TEMPLATES, spec.max_text))}
    if content_type in ERROR_CODES:
        return tool_input, _error_object(draw, spec, content_type, None)
    result: JSON = {"type": content_type}
    if content_type == "encrypted_code_execution_result":
        result["encrypted_stdout"] = draw(_base64(8, 48))
    else:
        result["stdout"] = draw(_output(spec.max_text))
    result["stderr"] = draw(st.one_of(st.just(""), _output(spec.max_text)))
    result["return_code"] = draw(st.one_of(st.sampled_from((0, 1)), st.integers(0, 255)))
    result["content"] = _output_files(draw, spec, "code_execution_output", made)
    if era == "2026" and content_type == "code_execution_result":
        result["abort_reason"] = None
    return tool_input, result


_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def _str_replace(draw: st.DrawFn, spec: _Spec, path: str) -> tuple[JSON, JSON]:
    """A real edit: a file, a span of its lines replaced, and the unified-diff hunk (3 lines of context)
    the API reports for it."""
    line = _prose(max(1, spec.max_text // 3), min_size=1, line=True)
    lines = draw(st.lists(line, min_size=1, max_size=10))
    start = draw(st.integers(0, len(lines) - 1))
    count = draw(st.integers(1, min(3, len(lines) - start)))
    replacement = draw(st.lists(line, max_size=3))
    old = lines[start : start + count]
    if replacement == old:
        replacement = [*old, ""]  # an edit that changes nothing has no hunk
    old_str, new_str = "\n".join(old), "\n".join(replacement)
    # the tool edits text, not lines: replacing whole lines with "" leaves an empty line behind
    text = "\n".join(lines)
    at = len("\n".join(lines[:start])) + (1 if start else 0)
    new_file = (text[:at] + new_str + text[at + len(old_str) :]).split("\n")
    diff = list(difflib.unified_diff(lines, new_file, n=3, lineterm=""))
    header = _HUNK_HEADER.match(diff[2])  # after the ---/+++ lines: one hunk, the edit is contiguous
    assert header is not None, diff[:3]
    old_start, old_lines, new_start, new_lines = header.groups()
    tool_input = {"command": "str_replace", "path": path, "old_str": old_str, "new_str": new_str}
    result = {
        "type": "text_editor_code_execution_str_replace_result",
        "old_start": int(old_start),
        "old_lines": 1 if old_lines is None else int(old_lines),
        "new_start": int(new_start),
        "new_lines": 1 if new_lines is None else int(new_lines),
        "lines": [entry for entry in diff[3:] if not entry.startswith("@@")],
    }
    return tool_input, result


def _text_editor_call(draw: st.DrawFn, spec: _Spec, content_type: str) -> tuple[JSON, JSON]:
    path = draw(_paths())
    command = {
        "text_editor_code_execution_view_result": "view",
        "text_editor_code_execution_create_result": "create",
        "text_editor_code_execution_str_replace_result": "str_replace",
    }.get(content_type) or draw(st.sampled_from(("view", "create", "str_replace")))
    if command == "str_replace":
        tool_input, result = _str_replace(draw, spec, path)
    elif command == "create":
        tool_input = {"command": "create", "path": path, "file_text": draw(_prose(spec.max_text))}
        result = {"type": "text_editor_code_execution_create_result", "is_file_update": draw(st.booleans())}
    else:
        tool_input = {"command": "view", "path": path}
        file_type = draw(st.sampled_from(_VIEW_FILE_TYPES))
        result = {"type": "text_editor_code_execution_view_result", "file_type": file_type}
        if file_type == "text":
            lines = draw(st.lists(_prose(max(1, spec.max_text // 3), line=True), min_size=1, max_size=6))
            result.update(
                content="\n".join(lines), num_lines=len(lines), start_line=1, total_lines=len(lines)
            )
        else:
            result["content"] = draw(_base64(4, 48))
    if content_type in ERROR_CODES:
        result = _error_object(draw, spec, content_type, path)
    return tool_input, result


def _call(
    draw: st.DrawFn,
    spec: _Spec,
    tool_version: str,
    name: str,
    era: str,
    made: _Ids,
    *,
    caller: JSON | None = None,
) -> tuple[JSON, JSON]:
    """A `server_tool_use` block and the matching result block."""
    block_type = RESULT_BLOCK_FOR_TOOL[name]
    content_type = draw(st.sampled_from(spec.content_types(block_type, tool_version)))
    if name == "bash_code_execution":
        tool_input, content = _bash_call(draw, spec, content_type, made)
    elif name == "text_editor_code_execution":
        tool_input, content = _text_editor_call(draw, spec, content_type)
    else:
        tool_input, content = _python_call(draw, spec, content_type, era, made)
    use: JSON = {
        "type": "server_tool_use",
        "id": made.new(draw, "srvtoolu"),
        "name": name,
        "input": tool_input,
    }
    if caller is not None:
        use["caller"] = caller
    elif tool_version != LEGACY_TOOL_VERSION and (name == "code_execution" or era == "2026"):
        # Python cells run under programmatic tool calling, which tags calls as direct; 2026 recordings
        # tag every server tool call.
        use["caller"] = {"type": "direct"}
    return use, {"type": block_type, "tool_use_id": use["id"], "content": content}


_CLIENT_TOOL_INPUTS: dict[str, st.SearchStrategy[JSON]] = {
    "get_weather": st.fixed_dictionaries(
        {"location": _prose(20, min_size=1, line=True)},
        optional={"unit": st.sampled_from(("celsius", "fahrenheit"))},
    ),
    "rollDie": st.fixed_dictionaries({"player": st.sampled_from(("player1", "player2"))}),
    "lookup_order": st.fixed_dictionaries(
        {"order_id": st.integers(1, 10**9).map(str), "include_items": st.booleans()},
        optional={"fields": st.lists(st.sampled_from(("status", "total", "items")), max_size=3)},
    ),
}
_CLIENT_TOOL_SCHEMAS: dict[str, JSON] = {
    "get_weather": {
        "type": "object",
        "properties": {"location": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["location"],
    },
    "rollDie": {"type": "object", "properties": {"player": {"type": "string"}}, "required": ["player"]},
    "lookup_order": {
        "type": "object",
        "properties": {
            "order_id": {"type": "string"},
            "include_items": {"type": "boolean"},
            "fields": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["order_id", "include_items"],
    },
}


def _client_tool_use(draw: st.DrawFn, spec: _Spec, made: _Ids, caller: JSON | None) -> JSON:
    name = draw(st.sampled_from(spec.client_tools))
    block: JSON = {"type": "tool_use", "id": made.new(draw, "toolu"), "name": name}
    block["input"] = draw(_CLIENT_TOOL_INPUTS[name])
    if caller is not None:
        block["caller"] = caller
    return block


def tool_calls(
    tool_version: str | Collection[str] | None = None,
    *,
    result_types: Collection[str] | None = None,
    error_codes: Collection[str] | None = None,
    documented_2025: bool = False,
    era: str | None = None,
    max_text: int = 60,
    max_files: int = 2,
) -> st.SearchStrategy[tuple[JSON, JSON]]:
    """A `(server_tool_use, result block)` pair that belong together: the result's `tool_use_id` is the
    call's id and its type matches the call's `name`; a text editor `view` gets a view result (or an
    error), a `str_replace` gets the diff hunk of that very edit, a `create` a create result.

    `tool_version` restricts the sub-tools (20250522: `code_execution` only); `result_types` picks
    `content.type` variants (e.g. `{"bash_code_execution_tool_result_error"}`), `error_codes` the codes
    of error objects; `documented_2025` adds `container_expired` and `string_not_found`."""
    spec = _spec(tool_version, None, result_types, error_codes, documented_2025, era, max_text, max_files)
    options = [(version, name) for version in spec.versions for name in spec.paired_tools(version)]
    if not options:
        raise InvalidArgument("no tool call can be built with these restrictions")

    @st.composite
    def build(draw: st.DrawFn) -> tuple[JSON, JSON]:
        version, name = draw(st.sampled_from(options))
        return _call(draw, spec, version, name, draw(st.sampled_from(spec.eras)), _Ids())

    return build()


def _text_block(draw: st.DrawFn, spec: _Spec) -> JSON:
    return {"type": "text", "text": draw(_nonblank(spec.max_text))}


def _thinking_block(draw: st.DrawFn, spec: _Spec, era: str) -> JSON:
    # 2026 models may omit the thinking text and send only the signature
    thinking = draw(_prose(spec.max_text, min_size=0 if era == "2026" else 1))
    return {"type": "thinking", "thinking": thinking, "signature": draw(_base64(16, 64))}


def content_blocks(
    tool_version: str | Collection[str] | None = None,
    *,
    block_types: Collection[str] | None = None,
    result_types: Collection[str] | None = None,
    error_codes: Collection[str] | None = None,
    documented_2025: bool = False,
    era: str | None = None,
    max_text: int = 60,
    max_files: int = 2,
) -> st.SearchStrategy[JSON]:
    """One response content block of any type in `BLOCK_TYPES` (or of `block_types`): `text`,
    `thinking`, `server_tool_use` (bash command, text editor view/create/str_replace, Python cell), client
    `tool_use` (with or without a programmatic `caller`), and every result block with every `content`
    variant: results with output file lists, view/create/str_replace results, encrypted Python results,
    and each error object with each of its error codes. Restrict with the same knobs as `messages`."""
    spec = _spec(
        tool_version, block_types, result_types, error_codes, documented_2025, era, max_text, max_files
    )
    options: list[tuple[str, str]] = []
    for version in spec.versions:
        for kind in sorted(spec.block_types):
            if kind in RESULT_BLOCK_FOR_TOOL.values():
                tools = [name for name in spec.result_tools(version) if RESULT_BLOCK_FOR_TOOL[name] == kind]
                options += [(version, kind)] if tools else []
            elif kind == "server_tool_use":
                options.append((version, kind))
            elif kind == "tool_use":
                options += [(version, kind)] if spec.client_tools else []
            else:
                options.append((version, kind))
    if not options:
        raise InvalidArgument("no content block can be built with these restrictions")

    @st.composite
    def build(draw: st.DrawFn) -> JSON:
        version, kind = draw(st.sampled_from(options))
        era_drawn = draw(st.sampled_from(spec.eras))
        made = _Ids()
        if kind == "text":
            return _text_block(draw, spec)
        if kind == "thinking":
            return _thinking_block(draw, spec, era_drawn)
        if kind == "tool_use":
            caller = None
            if version != LEGACY_TOOL_VERSION and draw(st.booleans()):
                caller = {"type": _caller_type(version), "tool_id": made.new(draw, "srvtoolu")}
            return _client_tool_use(draw, spec, made, caller)
        if kind == "server_tool_use":
            name = draw(st.sampled_from(sub_tools(version)))
            return _call(draw, _unrestricted(spec), version, name, era_drawn, made)[0]
        names = [name for name in spec.result_tools(version) if RESULT_BLOCK_FOR_TOOL[name] == kind]
        return _call(draw, spec, version, draw(st.sampled_from(names)), era_drawn, made)[1]

    return build()


# --- whole messages ---------------------------------------------------------------------------------------


def _usage(draw: st.DrawFn, era: str, *, thinking: bool) -> JSON:
    five_minutes = draw(st.integers(0, 5000))
    one_hour = draw(st.integers(0, 5000))
    usage: JSON = {
        "input_tokens": draw(st.integers(0, 200_000)),
        "cache_creation_input_tokens": five_minutes + one_hour,
        "cache_read_input_tokens": draw(st.integers(0, 100_000)),
        "cache_creation": {"ephemeral_5m_input_tokens": five_minutes, "ephemeral_1h_input_tokens": one_hour},
        "output_tokens": draw(st.integers(1, 32_000)),
        "service_tier": draw(st.sampled_from(_SERVICE_TIERS)),
    }
    if era == "2026":
        usage["inference_geo"] = draw(st.sampled_from(("global", "not_available")))
    # (some 2025 recordings lack `web_fetch_requests`, which SDK 2.13's strict types require: not generated)
    if draw(st.booleans()):
        usage["server_tool_use"] = {"web_search_requests": 0, "web_fetch_requests": 0}
    if era == "2026" and thinking and draw(st.booleans()):
        usage["output_tokens_details"] = {"thinking_tokens": draw(st.integers(0, usage["output_tokens"]))}
    return usage


def _stop_details(draw: st.DrawFn, stop_reason: str) -> JSON | None:
    if stop_reason != "refusal" or not draw(st.booleans()):
        return None
    return {
        "type": "refusal",
        "category": draw(st.one_of(st.none(), st.sampled_from(_REFUSAL_CATEGORIES))),
        "explanation": draw(st.one_of(st.none(), _prose(40))),
    }


@st.composite
def _message(
    draw: st.DrawFn,
    spec: _Spec,
    stop_reasons: tuple[str, ...],
    min_blocks: int,
    max_blocks: int,
    *,
    container_id: str | None = None,
    leading_results: bool = True,
    ptc: bool = True,
) -> JSON:
    version = draw(st.sampled_from(spec.versions))
    era = draw(st.sampled_from(spec.eras))
    stop_reason = draw(st.sampled_from(spec.stop_reasons(stop_reasons)))
    made = _Ids()

    # How the turn ends decides its last blocks.
    ending: list[JSON] = []
    if stop_reason == "pause_turn":
        # the paused call has not run: any sub-tool will do, whatever results the spec allows
        name = draw(st.sampled_from(sub_tools(version)))
        ending.append(_call(draw, _unrestricted(spec), version, name, era, made)[0])
    elif stop_reason == "tool_use":
        programmatic = ptc and spec.ptc(version) and max_blocks >= 2 and draw(st.booleans())
        caller = None
        if programmatic:
            cell, _ = _call(
                draw,
                _unrestricted(spec),
                version,
                "code_execution",
                era,
                made,
                caller={"type": "direct"},
            )
            ending.append(cell)
            caller = {"type": _caller_type(version), "tool_id": cell["id"]}
        room = max(1, min(3, max_blocks - len(ending)))
        for _ in range(draw(st.integers(1, room))):
            ending.append(_client_tool_use(draw, spec, made, caller))

    target = draw(st.integers(min(min_blocks, max_blocks), max_blocks))
    body: list[JSON] = []
    if (
        leading_results
        and spec.result_tools(version)
        and target - len(ending) >= 1
        and draw(st.integers(0, 3)) == 0
    ):
        # A continuation (after pause_turn, or the end of a programmatic run) opens with the result of a
        # call made in an earlier message.
        name = draw(st.sampled_from(spec.result_tools(version)))
        body.append(_call(draw, spec, version, name, era, made)[1])
    while True:
        room = target - len(ending) - len(body)
        kinds = [kind for kind in ("text", "thinking") if kind in spec.block_types]
        if room >= 2 and spec.paired_tools(version):
            kinds.append("call")
        if room >= 4 and spec.paired_tools(version):
            kinds.append("parallel")
        if room < 1 or not kinds:
            break
        kind = draw(st.sampled_from(kinds))
        if kind == "text":
            body.append(_text_block(draw, spec))
        elif kind == "thinking":
            body.append(_thinking_block(draw, spec, era))
        else:
            # parallel calls: every call first, then the results in the same order
            count = 1 if kind == "call" else draw(st.integers(2, min(4, room // 2)))
            pairs = [
                _call(draw, spec, version, draw(st.sampled_from(spec.paired_tools(version))), era, made)
                for _ in range(count)
            ]
            body += [use for use, _ in pairs] + [result for _, result in pairs]
    content = body + ending

    message: JSON = {
        "model": draw(st.sampled_from(_MODELS[era])),
        "id": made.new(draw, "msg"),
        "type": "message",
        "role": "assistant",
        "content": content,
    }
    server_blocks = [
        b for b in content if b["type"] == "server_tool_use" or b["type"].endswith("_tool_result")
    ]
    if server_blocks:
        message["container"] = draw(containers(container_id=container_id))
    message["stop_reason"] = stop_reason
    message["stop_sequence"] = draw(_prose(12, min_size=1)) if stop_reason == "stop_sequence" else None
    if era == "2026":
        message["stop_details"] = _stop_details(draw, stop_reason)
    message["usage"] = _usage(draw, era, thinking=any(b["type"] == "thinking" for b in content))
    return message


def _unrestricted(spec: _Spec) -> _Spec:
    """The spec for a call whose result is not in the message (a paused call, a programmatic Python cell):
    only its input shows, so every result variant stays available and `_call` can always draw."""
    return _Spec(
        versions=spec.versions,
        block_types=spec.block_types,
        result_types=None,
        error_codes=None,
        documented_2025=False,
        eras=spec.eras,
        max_text=spec.max_text,
        max_files=spec.max_files,
        client_tools=spec.client_tools,
    )


def messages(
    tool_version: str | Collection[str] | None = None,
    *,
    block_types: Collection[str] | None = None,
    stop_reasons: Collection[str] | None = None,
    result_types: Collection[str] | None = None,
    error_codes: Collection[str] | None = None,
    documented_2025: bool = False,
    era: str | None = None,
    min_blocks: int = 0,
    max_blocks: int = 8,
    max_text: int = 60,
    max_files: int = 2,
) -> st.SearchStrategy[JSON]:
    """Whole non-streaming Messages responses (the JSON body as a dict, keys in the API's order).

    Content mixes text, thinking, tool calls each followed by their result, parallel calls (every call,
    then every result in the same order) and, now and then, a leading result for a call made in an
    earlier message (how a continuation after `pause_turn` begins). The stop reason shapes the end:
    `pause_turn` ends with an unpaired `server_tool_use`; `tool_use` ends with client `tool_use` blocks,
    sometimes issued by a Python cell (programmatic tool calling: the cell's `server_tool_use` has no result
    yet and the `tool_use` blocks carry its `caller`); `stop_sequence` sets `stop_sequence`. `container` is
    present when server tool blocks are, `usage` is realistic (2026 messages carry `stop_details`,
    `inference_geo` and `caller` tags).

    Knobs: `tool_version` (one or several; 20250522 gives only `code_execution` blocks), `block_types`
    (a subset of `BLOCK_TYPES`), `stop_reasons`, `result_types` and `error_codes` (variants of result
    contents), `documented_2025` (adds `container_expired` and `string_not_found`), `era` ("2025" or
    "2026"), sizes (at most `max_blocks` content blocks, at least `min_blocks` when the allowed types can
    fill them, `max_text` characters per text field, `max_files` output files per result)."""
    spec = _spec(
        tool_version, block_types, result_types, error_codes, documented_2025, era, max_text, max_files
    )
    reasons = STOP_REASONS if stop_reasons is None else tuple(stop_reasons)
    if set(reasons) - set(STOP_REASONS):
        raise InvalidArgument(f"unknown stop reasons {sorted(set(reasons) - set(STOP_REASONS))}")
    if not spec.stop_reasons(reasons):
        raise InvalidArgument(
            f"none of the stop reasons {list(reasons)} fits block types {sorted(spec.block_types)} "
            "(pause_turn needs server_tool_use, tool_use needs tool_use)"
        )
    if max_blocks < 1 or min_blocks < 0:
        raise InvalidArgument("max_blocks must be at least 1 and min_blocks at least 0")
    return _message(spec, reasons, min_blocks, max_blocks)


@st.composite
def _continuation(draw: st.DrawFn, spec: _Spec) -> JSON:
    version = draw(st.sampled_from([v for v in spec.versions if v != LEGACY_TOOL_VERSION]))
    made = _Ids()
    caller = {"type": _caller_type(version), "tool_id": made.new(draw, "srvtoolu")}
    content = [_client_tool_use(draw, spec, made, caller) for _ in range(draw(st.integers(1, 3)))]
    return {
        "model": draw(st.sampled_from(_MODELS["2025"] + _MODELS["2026"])),
        "id": made.new(draw, "msg"),
        "type": "message",
        "role": "assistant",
        "content": content,
        "container": draw(containers(skills=False)),
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 0,
            "output_tokens": 0,
            "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
        },
    }


def ptc_continuations(tool_version: str | Collection[str] | None = None) -> st.SearchStrategy[JSON]:
    """Messages the server sends without sampling the model, when resumed Python code calls the next
    client tool (programmatic tool calling): only `tool_use` blocks with a code-execution `caller`,
    `stop_reason: "tool_use"`, the container, and usage `0/0`. `streams(continuations=True)` sends them
    as the two-event streams the API uses (`message_start` already holding the content, `message_stop`)."""
    spec = _spec(tool_version, None, None, None, False, None, 60, 0)
    if spec.versions == (LEGACY_TOOL_VERSION,):
        raise InvalidArgument("programmatic tool calling needs code_execution_20250825 or later")
    return _continuation(spec)


# --- SSE event streams ------------------------------------------------------------------------------------


def accumulated_message(message: JSON, events: Sequence[JSON]) -> JSON:
    """`message` as a stream accumulator (the official SDK's, or any that applies `message_delta` the way
    the API documents it) ends up holding it after reading `events`.

    It differs from `message` in one way: a `message_delta` carries `stop_details` (null or an object) in
    every stream, so a 2025-shaped message, whose JSON body has no `stop_details` key, gains
    `stop_details: null` once streamed. Compare a client's accumulated message with this, not `message`.
    """
    accumulated = dict(message)
    if any(event.get("type") == "message_delta" for event in events):
        accumulated.setdefault("stop_details", None)
    return accumulated


@dataclass(frozen=True)
class GeneratedStream:
    """A message and the SSE events (the `data:` payloads, pings included, in order) that stream it.
    Feeding `events` to a client accumulates `accumulated`: `message` itself, but for the one field an
    accumulator adds (see `accumulated_message`)."""

    message: JSON
    events: list[JSON] = field(repr=False)

    @property
    def accumulated(self) -> JSON:
        return accumulated_message(self.message, self.events)

    @property
    def shape(self) -> list[str]:
        """Event types, with the block type on starts and the delta type on deltas (for reading)."""
        shape = []
        for event in self.events:
            kind = event["type"]
            if kind == "content_block_start":
                kind += f"[{event['index']}]:" + event["content_block"]["type"]
            elif kind == "content_block_delta":
                kind += f"[{event['index']}]:" + event["delta"]["type"]
            shape.append(kind)
        return shape


def _escape_positions(text: str) -> list[int]:
    """Cut points inside JSON escapes (`\\"`, `\\n`, `\\u00e9`, between the halves of a surrogate pair)."""
    positions = []
    index = 0
    while index < len(text):
        if text[index] == "\\":
            length = 6 if text[index + 1 : index + 2] == "u" else 2
            positions += range(index + 1, index + length)
            index += length
        else:
            index += 1
    return positions


def _interesting_positions(text: str) -> list[int]:
    """Cut points next to line breaks and non-ASCII characters."""
    return [index for index in range(1, len(text)) if not text[index - 1].isascii() or text[index] in "\r\n"]


def _fragments(draw: st.DrawFn, text: str, special: Iterable[list[int]], max_fragments: int) -> list[str]:
    """`text` cut at arbitrary points, biased toward each kind of `special` ones; shrinks to one fragment."""
    if len(text) < 2 or max_fragments < 2:
        return [text] if text else []
    kinds = [st.sampled_from(sorted(set(points))) for points in special if points]
    count = draw(st.integers(0, max_fragments - 1))
    points = st.one_of(st.integers(1, len(text) - 1), *kinds)
    cuts = sorted(set(draw(st.lists(points, min_size=count, max_size=count))))
    bounds = [0, *cuts, len(text)]
    return [text[start:end] for start, end in itertools.pairwise(bounds)]


def _block_events(
    draw: st.DrawFn, block: JSON, index: int, start_index: int, max_fragments: int
) -> list[JSON]:
    def start(content_block: JSON) -> JSON:
        return {"type": "content_block_start", "index": start_index, "content_block": content_block}

    def delta(payload: JSON) -> JSON:
        return {"type": "content_block_delta", "index": index, "delta": payload}

    kind = block["type"]
    events: list[JSON]
    if kind == "text":
        events = [start({**block, "text": ""})]
        text = block["text"]
        for piece in _fragments(draw, text, [_interesting_positions(text)], max_fragments):
            events.append(delta({"type": "text_delta", "text": piece}))
    elif kind == "thinking":
        events = [start({**block, "thinking": "", "signature": ""})]
        thinking = block["thinking"]
        for piece in _fragments(draw, thinking, [_interesting_positions(thinking)], max_fragments):
            events.append(delta({"type": "thinking_delta", "thinking": piece}))
        events.append(delta({"type": "signature_delta", "signature": block["signature"]}))
    elif kind in ("server_tool_use", "tool_use") and not (
        kind == "tool_use" and block.get("caller", {}).get("type", "direct") != "direct"
    ):
        events = [start({**block, "input": {}})]
        # the model writes `{"key": "value"}` with spaces; escaping of non-ASCII varies
        text = json.dumps(block["input"], ensure_ascii=draw(st.booleans()))
        special = [_escape_positions(text), _interesting_positions(text)]
        for piece in ["", *_fragments(draw, text, special, max_fragments)]:
            events.append(delta({"type": "input_json_delta", "partial_json": piece}))
    else:
        # result blocks, and tool_use blocks issued by code, arrive whole
        events = [start(block)]
    events.append({"type": "content_block_stop", "index": index})
    return events


def _message_start(draw: st.DrawFn, message: JSON) -> JSON:
    started: JSON = {key: message[key] for key in ("model", "id", "type", "role")}
    started.update(content=[], stop_reason=None, stop_sequence=None)
    if "stop_details" in message:
        started["stop_details"] = None
    usage = dict(message["usage"])
    # The counts message_delta overwrites start out as the API's early figures (recorded: 2 input tokens at
    # the start, 6 at the end), so a client that keeps the message_start usage has it wrong, as with the API.
    for key in _CUMULATIVE_COUNTS:
        if key in usage:
            usage[key] = draw(st.integers(0, usage[key]))
    usage["output_tokens"] = draw(st.integers(1, 8))
    usage.pop("server_tool_use", None)  # only message_delta carries these two
    usage.pop("output_tokens_details", None)
    started["usage"] = usage
    return {"type": "message_start", "message": started}


_CUMULATIVE_COUNTS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def _message_delta(message: JSON) -> JSON:
    event = sse.message_delta(message)
    details = message["usage"].get("output_tokens_details")
    if details is not None:
        # the emulator's own streams never send it; the API writes it after output_tokens
        usage = event["usage"]
        server_tool_use = usage.pop("server_tool_use", None)
        usage["output_tokens_details"] = details
        if server_tool_use is not None:
            usage["server_tool_use"] = server_tool_use
    return event


@st.composite
def _stream(
    draw: st.DrawFn,
    source: st.SearchStrategy[JSON],
    continuation_source: st.SearchStrategy[JSON] | None,
    irregular: bool,
    max_pings: int,
    max_fragments: int,
) -> GeneratedStream:
    if continuation_source is not None and draw(st.booleans()):
        message = draw(continuation_source)
        events = [{"type": "message_start", "message": message}, {"type": "message_stop"}]
    else:
        message = draw(source)
        events = [_message_start(draw, message)]
        content = message["content"]
        for index, block in enumerate(content):
            start_index = index
            if (
                irregular
                and index
                and content[index - 1]["type"].endswith("_tool_result")
                and draw(st.integers(0, 3))
            ):
                # As in a recorded stream (where every block after a result did it): the start reuses the
                # previous index, its deltas and stop do not.
                start_index = index - 1
            events += _block_events(draw, block, index, start_index, max_fragments)
        events += [_message_delta(message), {"type": "message_stop"}]
    if max_pings:
        for position in sorted(
            draw(st.lists(st.integers(1, len(events) - 1), max_size=max_pings)), reverse=True
        ):
            events.insert(position, {"type": "ping"})
    return GeneratedStream(message=message, events=events)


def streams(
    source: st.SearchStrategy[JSON] | None = None,
    *,
    irregular: bool = False,
    continuations: bool = False,
    max_pings: int = 3,
    max_fragments: int = 8,
) -> st.SearchStrategy[GeneratedStream]:
    """SSE event streams (`GeneratedStream`: `.message` and `.events`) with the API's grammar:
    `message_start` holding the message with empty content, null stop fields and early usage; for each
    block a `content_block_start`, its deltas and a `content_block_stop` — text as `text_delta`s, thinking
    as `thinking_delta`s then one `signature_delta`, tool calls starting with `"input": {}` and a first
    `input_json_delta` of `""` followed by the input JSON cut anywhere (inside escapes such as `\\"` and
    `\\u00e9`, between surrogate halves, next to multi-byte characters), result blocks whole in their start;
    then `message_delta` (stop reason, container, cumulative usage) and `message_stop`. Pings (up to
    `max_pings`) land anywhere after `message_start`.

    `source` is the message strategy (default `messages()`). `irregular=True` reproduces a recorded
    anomaly: a block that follows a result block may start with the previous index while its deltas and
    stop use the right one. `continuations=True` mixes in programmatic-tool-calling continuations sent as
    two events (`message_start` already holding the final message, then `message_stop`)."""
    if max_pings < 0 or max_fragments < 1:
        raise InvalidArgument("max_pings must be at least 0 and max_fragments at least 1")
    return _stream(
        messages() if source is None else source,
        ptc_continuations() if continuations else None,
        irregular,
        max_pings,
        max_fragments,
    )


# --- raw SSE bytes ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawStream:
    """A generated stream as the network delivers it: `chunks` of bytes that concatenate to `body`, the
    SSE text of `events` (an `event:` line and a `data:` line per event, a blank line after each)."""

    message: JSON
    events: list[JSON] = field(repr=False)
    chunks: list[bytes] = field(repr=False)

    @property
    def accumulated(self) -> JSON:
        return accumulated_message(self.message, self.events)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


def _encode(event: JSON, line_ending: str, ascii_only: bool, padding: int) -> bytes:
    if event == {"type": "ping"}:
        data = '{"type": "ping"}'  # the API writes ping with a space
    else:
        data = json.dumps(event, separators=(",", ":"), ensure_ascii=ascii_only)
        # the API pads most payloads with spaces before the final brace
        data = data[:-1] + " " * padding + "}"
    return f"event: {event['type']}{line_ending}data: {data}{line_ending}{line_ending}".encode()


def _split_points(body: bytes, line_ending: str) -> list[list[int]]:
    """Cut points a naive reader gets wrong, by kind: inside UTF-8 sequences, inside `\\r\\n`, between the
    two line ends closing an event, right after `data:`."""
    end = line_ending.encode()
    kinds = [
        [index for index in range(1, len(body)) if body[index] & 0xC0 == 0x80],
        [index + 1 for index in range(len(body) - 1) if body[index : index + 2] == b"\r\n"],
        [match.start() + len(end) for match in re.finditer(re.escape(end + end), body)],
        [match.end() for match in re.finditer(rb"data:", body)],
    ]
    return [[point for point in points if 0 < point < len(body)] for points in kinds]


@st.composite
def _raw(
    draw: st.DrawFn,
    source: st.SearchStrategy[GeneratedStream],
    line_endings: tuple[str, ...],
    padding: bool,
    max_chunks: int,
) -> RawStream:
    stream = draw(source)
    line_ending = draw(st.sampled_from(line_endings))
    ascii_only = draw(st.integers(0, 3)) == 3  # most streams send non-ASCII raw
    pads = st.integers(0, 16) if padding else st.just(0)
    body = b"".join(_encode(event, line_ending, ascii_only, draw(pads)) for event in stream.events)
    # each kind of hard cut is as likely as a cut anywhere
    kinds = [st.sampled_from(points) for points in _split_points(body, line_ending) if points]
    points = st.one_of(st.integers(1, len(body) - 1), *kinds)
    count = draw(st.integers(0, max_chunks - 1))
    cuts = sorted(set(draw(st.lists(points, min_size=count, max_size=count))))
    bounds = [0, *cuts, len(body)]
    chunks = [body[start:end] for start, end in itertools.pairwise(bounds)]
    return RawStream(message=stream.message, events=stream.events, chunks=chunks)


def raw_streams(
    source: st.SearchStrategy[GeneratedStream] | None = None,
    *,
    line_endings: Collection[str] = ("\n", "\r\n"),
    padding: bool = True,
    max_chunks: int = 32,
) -> st.SearchStrategy[RawStream]:
    """Raw `text/event-stream` bodies (`RawStream`: `.message`, `.events`, `.chunks`, `.body`) cut into
    network chunks anywhere, biased toward the cuts naive readers get wrong: inside multi-byte UTF-8
    characters, between `\\r` and `\\n`, between the two line ends that close an event. Line ends are `\\n`
    or `\\r\\n` per stream (`line_endings`); payloads carry the API's whitespace padding before their final
    brace (`padding=False` for compact JSON), non-ASCII is sent raw or `\\u`-escaped, and pings are
    `{"type": "ping"}` with a space, as the API writes them. `source` defaults to `streams()`."""
    endings = tuple(line_endings)
    if not endings or set(endings) - {"\n", "\r\n", "\r"}:
        raise InvalidArgument("line_endings must be a non-empty subset of '\\n', '\\r\\n', '\\r'")
    if max_chunks < 1:
        raise InvalidArgument("max_chunks must be at least 1")
    return _raw(streams() if source is None else source, endings, padding, max_chunks)


# --- HTTP errors ------------------------------------------------------------------------------------------

_HTTP_ERROR_MESSAGES: dict[int, tuple[str, ...]] = {
    400: (
        'messages: roles must alternate between "user" and "assistant"',
        "messages.1: all messages must have non-empty content except for the optional final assistant "
        "message",
        "container: Input should be a valid string",
        "Unexpected value(s) `files-api-2025-04-1` for the `anthropic-beta` header. Please consult our "
        "documentation at platform.claude.com/docs or try again without the header.",
        "`max_tokens` must be greater than `thinking.budget_tokens`.",
    ),
    401: ("invalid x-api-key", "x-api-key header is required"),
    402: ("Your credit balance is too low to access the Anthropic API.",),
    403: ("Your API key does not have permission to use the specified resource.",),
    404: ("model: claude-unknown", "File not found: file_011CNha8iCJcU1wXNR6q4V8w", "Not found"),
    413: ("Request exceeds the maximum allowed number of bytes.",),
    429: ("Number of request tokens has exceeded your per-minute rate limit.",),
    500: ("Internal server error",),
    504: ("Request timed out",),
    529: ("Overloaded",),
}
_ERROR_DETAILS: dict[int, tuple[str, ...]] = {400: ("file_not_downloadable",), 404: ("file_expired",)}


@dataclass(frozen=True)
class ErrorResponse:
    """An HTTP error as the API sends it: `status`, `headers` (lower-case names) and the JSON `body`."""

    status: int
    headers: dict[str, str]
    body: JSON

    @property
    def content(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()


@st.composite
def _http_error(draw: st.DrawFn, statuses: tuple[int, ...], max_retry_after: int) -> ErrorResponse:
    status = draw(st.sampled_from(statuses))
    request_id = draw(ids("req"))
    error: JSON = {
        "type": ERROR_STATUSES[status],
        "message": draw(st.sampled_from(_HTTP_ERROR_MESSAGES[status])),
    }
    if status in _ERROR_DETAILS and draw(st.booleans()):
        error["details"] = {"error_code": draw(st.sampled_from(_ERROR_DETAILS[status]))}
    body: JSON = {"type": "error", "error": error}
    if draw(st.integers(0, 4)):  # most bodies repeat the request id; older ones do not
        body["request_id"] = request_id
    headers = {"content-type": "application/json", "request-id": request_id}
    if draw(st.booleans()):
        headers["anthropic-organization-id"] = str(draw(st.uuids()))
    retryable = status in (429, 500, 504, 529)
    if retryable and draw(st.booleans()):
        headers["retry-after"] = str(draw(st.integers(0, max_retry_after)))
    if retryable and draw(st.integers(0, 3)) == 0:
        headers["retry-after-ms"] = str(draw(st.integers(0, max_retry_after * 1000)))
    if draw(st.integers(0, 3)) == 0:
        headers["x-should-retry"] = "true" if retryable else "false"
    if status == 429:
        reset = draw(timestamps())
        for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
            limit = draw(st.integers(1, 400_000))
            headers[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
            headers[f"anthropic-ratelimit-{kind}-remaining"] = str(draw(st.integers(0, limit)))
            headers[f"anthropic-ratelimit-{kind}-reset"] = reset
    return ErrorResponse(status=status, headers=headers, body=body)


def http_errors(
    statuses: Collection[int] | None = None, *, max_retry_after: int = 60
) -> st.SearchStrategy[ErrorResponse]:
    """HTTP error responses (`ErrorResponse`) for the statuses the API uses (`ERROR_STATUSES`: 400, 401,
    402, 403, 404, 413, 429, 500, 504, 529, or `statuses`): the error envelope with the matching
    `error.type` and a real message, `request_id` in the body (usually) and the `request-id` header
    (always), `details.error_code` for Files errors, `retry-after` / `retry-after-ms` (up to
    `max_retry_after` seconds) on retryable statuses, `x-should-retry`, and the `anthropic-ratelimit-*`
    headers on 429. Mind that the SDK sleeps for `retry-after` when it retries."""
    chosen = tuple(ERROR_STATUSES) if statuses is None else tuple(statuses)
    unknown = set(chosen) - set(ERROR_STATUSES)
    if not chosen or unknown:
        raise InvalidArgument(f"statuses must be a non-empty subset of {tuple(ERROR_STATUSES)}")
    if max_retry_after < 0:
        raise InvalidArgument("max_retry_after must be at least 0")
    return _http_error(chosen, max_retry_after)


# --- Files API --------------------------------------------------------------------------------------------

# Filenames the API accepts: 1-255 characters, none of < > : " | ? * \ / and no control characters.
_FILENAME_CHARACTERS = st.characters(
    codec="utf-8", exclude_categories=("Cc",), exclude_characters='<>:"|?*\\/'
)


@st.composite
def _file(draw: st.DrawFn, downloadable: bool | None, file_id: str | None = None) -> JSON:
    extension = draw(st.sampled_from(sorted(_MIME_TYPES)))
    stem = draw(st.one_of(st.sampled_from(_NAMES), st.text(_FILENAME_CHARACTERS, min_size=1, max_size=40)))
    metadata: JSON = {
        "id": file_id if file_id is not None else draw(ids("file")),
        "type": "file",
        "filename": f"{stem}.{extension}",
        "mime_type": _MIME_TYPES[extension],
        "size_bytes": draw(st.integers(0, 500 * 1024 * 1024)),
        "created_at": draw(timestamps()),
    }
    # uploads are not downloadable; files written by code execution are
    metadata["downloadable"] = draw(st.booleans()) if downloadable is None else downloadable
    optional = draw(st.sampled_from(("none", "expires_at", "expires_at_null", "scope")))
    if optional == "expires_at":
        metadata["expires_at"] = draw(timestamps())
    elif optional == "expires_at_null":
        metadata["expires_at"] = None
    elif optional == "scope":
        metadata["scope"] = {"id": draw(ids("sesn")), "type": "session"}
    return metadata


def file_metadata(*, downloadable: bool | None = None) -> st.SearchStrategy[JSON]:
    """Files API `FileMetadata` objects (`GET /v1/files/{id}`, upload responses): `file_01...` ids,
    filenames the API accepts with a matching `mime_type`, sizes up to 500 MB, `created_at`, `downloadable`
    (True, False or drawn), and sometimes `expires_at` (or null) or a session `scope`."""
    return _file(downloadable)


@st.composite
def _file_list(draw: st.DrawFn, scheme: str | None, max_size: int) -> JSON:
    made = _Ids()
    count = draw(st.integers(0, max_size))
    data = [draw(_file(None, made.new(draw, "file"))) for _ in range(count)]
    chosen = draw(st.sampled_from(("2025", "2026", "both"))) if scheme is None else scheme
    page: JSON = {"data": data}
    if chosen in ("2025", "both"):
        page["has_more"] = draw(st.booleans())
        page["first_id"] = data[0]["id"] if data else None
        page["last_id"] = data[-1]["id"] if data else None
    if chosen in ("2026", "both"):
        page["next_page"] = draw(
            st.one_of(st.none(), st.text(BASE58, min_size=8, max_size=24).map("page_{}".format))
        )
    return page


def file_lists(scheme: str | None = None, *, max_size: int = 4) -> st.SearchStrategy[JSON]:
    """`GET /v1/files` pages: the 2025 scheme (`has_more`, `first_id`, `last_id`), the SDK 2.13 scheme
    (`next_page`), or both at once (`scheme` "2025", "2026", "both" or None for any)."""
    if scheme not in (None, "2025", "2026", "both"):
        raise InvalidArgument("scheme must be '2025', '2026', 'both' or None")
    return _file_list(scheme, max_size)


def deleted_files() -> st.SearchStrategy[JSON]:
    """`DELETE /v1/files/{id}` answers: `{"id": "file_01...", "type": "file_deleted"}`."""
    return ids("file").map(lambda file_id: {"id": file_id, "type": "file_deleted"})


# --- request bodies ---------------------------------------------------------------------------------------


def _user_text(draw: st.DrawFn, spec: _Spec) -> str | list[JSON]:
    prompt = _nonblank(spec.max_text)
    if draw(st.booleans()):
        return draw(prompt)
    return [{"type": "text", "text": draw(prompt)}]


def _tool_results(draw: st.DrawFn, spec: _Spec, assistant: list[JSON]) -> list[JSON]:
    results: list[JSON] = []
    for block in assistant:
        if block["type"] != "tool_use":
            continue
        result: JSON = {"type": "tool_result", "tool_use_id": block["id"]}
        shape = draw(st.sampled_from(("string", "blocks", "error")))
        output = draw(_nonblank(spec.max_text))
        if shape == "blocks":
            result["content"] = [{"type": "text", "text": output}]
        else:
            result["content"] = output
        if shape == "error":
            result["is_error"] = True
        results.append(result)
    return results


@st.composite
def _request(draw: st.DrawFn, spec: _Spec, stream: bool | None, max_turns: int, client_tools: bool) -> JSON:
    version = draw(st.sampled_from(spec.versions))
    tool_names = (
        tuple(draw(st.lists(st.sampled_from(spec.client_tools), unique=True, max_size=2)))
        if client_tools
        else ()
    )
    turn_spec = _Spec(
        versions=(version,),
        block_types=spec.block_types,
        result_types=spec.result_types,
        error_codes=spec.error_codes,
        documented_2025=spec.documented_2025,
        eras=spec.eras,
        max_text=spec.max_text,
        max_files=spec.max_files,
        client_tools=tool_names,
    )
    container_id = draw(ids("container"))
    first: JSON = {"role": "user", "content": _user_text(draw, spec)}
    if draw(st.integers(0, 3)) == 0:
        upload = {"type": "container_upload", "file_id": draw(ids("file"))}
        first["content"] = [
            *(
                first["content"]
                if isinstance(first["content"], list)
                else [{"type": "text", "text": first["content"]}]
            ),
            upload,
        ]
    history: list[JSON] = [first]
    used_container = False
    turns = draw(st.integers(0, max_turns))
    for turn in range(turns):
        last_turn = turn == turns - 1
        reasons = (
            ("end_turn", "max_tokens", "tool_use", "pause_turn")
            if last_turn
            else ("end_turn", "max_tokens", "tool_use")
        )
        reasons = turn_spec.stop_reasons(reasons)
        reply = draw(
            _message(turn_spec, reasons, 1, 6, container_id=container_id, leading_results=False, ptc=False)
        )
        history.append({"role": "assistant", "content": reply["content"]})
        used_container = used_container or "container" in reply
        if reply["stop_reason"] == "pause_turn":
            break  # the paused turn is sent back as the last message
        if reply["stop_reason"] == "tool_use":
            history.append({"role": "user", "content": _tool_results(draw, turn_spec, reply["content"])})
        else:
            history.append({"role": "user", "content": _user_text(draw, spec)})

    body: JSON = {
        "max_tokens": draw(st.integers(1, 16_384)),
        "messages": history,
        "model": draw(st.sampled_from(_REQUEST_MODELS)),
    }
    if used_container or draw(st.booleans()):
        body["container"] = container_id
    if draw(st.booleans()):
        body["system"] = draw(_nonblank(spec.max_text))
    # (no sampling parameters: SDK 2.13 no longer takes `temperature`, `top_p` or `top_k`)
    if draw(st.booleans()):
        body["metadata"] = {"user_id": str(draw(st.uuids()))}
    if draw(st.booleans()):
        body["stop_sequences"] = draw(st.lists(_nonblank(12), min_size=1, max_size=2))
    if tool_names and draw(st.booleans()):
        body["tool_choice"] = {"type": "auto"}
    chosen_stream = draw(st.booleans()) if stream is None else stream
    if chosen_stream or draw(st.booleans()):
        body["stream"] = chosen_stream
    tools: list[JSON] = [{"type": version, "name": "code_execution"}]
    tools += [
        {"name": name, "description": f"{name} tool", "input_schema": _CLIENT_TOOL_SCHEMAS[name]}
        for name in tool_names
    ]
    body["tools"] = tools
    return body


def request_bodies(
    tool_version: str | Collection[str] | None = None,
    *,
    stream: bool | None = None,
    max_turns: int = 2,
    client_tools: bool = True,
    max_text: int = 40,
) -> st.SearchStrategy[JSON]:
    """Valid `POST /v1/messages` bodies for a code execution conversation, for testing request
    builders: the tool of `tool_version`, client tools when the history calls them, a first user message
    (text, sometimes with a `container_upload`), then up to `max_turns` assistant turns replayed verbatim
    (code-execution blocks with their results) each answered by the user (`tool_result` blocks after a
    `tool_use` stop); the last message may be a paused assistant turn ending with an unpaired
    `server_tool_use`. `container` is set whenever the history used one, as continuing requires. `stream`
    fixes the `stream` field (None: drawn, sometimes absent)."""
    spec = _spec(
        tool_version,
        ("text", "server_tool_use", "tool_use", *RESULT_BLOCK_FOR_TOOL.values()),
        None,
        None,
        False,
        None,
        max_text,
        1,
    )
    if max_turns < 0:
        raise InvalidArgument("max_turns must be at least 0")
    return _request(spec, stream, max_turns, client_tools)


# Every result variant the schemas list must be buildable here: a new variant fails the import, not a user.
_BUILT_CONTENT_TYPES = frozenset(
    {
        "bash_code_execution_result",
        "bash_code_execution_tool_result_error",
        "text_editor_code_execution_view_result",
        "text_editor_code_execution_create_result",
        "text_editor_code_execution_str_replace_result",
        "text_editor_code_execution_tool_result_error",
        "code_execution_result",
        "encrypted_code_execution_result",
        "code_execution_tool_result_error",
    }
)
_unbuilt = {kind for kinds in RESULT_CONTENT_TYPES.values() for kind in kinds} - _BUILT_CONTENT_TYPES
if _unbuilt:
    raise RuntimeError(f"the schemas name result variants no strategy builds: {sorted(_unbuilt)}")
