"""`cassettes lint PATH...`: check every recorded request and response against our JSON Schemas.

Our response schemas are strict (`additionalProperties: false`), so a field the real API sends that we do not
describe shows up here, named by its path: that is how users learn the API changed. Requests are checked
against the request schema, JSON responses against the message schema, error answers against the error
envelope, streams event by event (plus the event grammar), Files API objects against the files schema.
Interactions with other endpoints or other hosts are counted as not checked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from emulator.cassettes.format import CassetteFormatError, Interaction, is_cassette, read_interactions
from emulator.wire.sse import grammar_problems, parse_sse
from emulator.wire.validation import (
    REQUEST_SCHEMA,
    find_problems,
    validate_error_body,
    validate_response,
    validate_stream_event,
)

FILES_SCHEMA = "files.schema.json"


@dataclass(frozen=True)
class Finding:
    interaction: int
    where: str  # "request", "response", "event 12", "stream"
    problem: str

    def __str__(self) -> str:
        return f"interaction {self.interaction} {self.where}: {self.problem}"


@dataclass
class LintReport:
    path: Path
    interactions: int = 0
    checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.findings

    def lines(self) -> list[str]:
        if self.error is not None:
            return [f"{self.path}: ERROR {self.error}"]
        counts = f"{self.interactions} interactions, {self.checked} checked"
        if not self.findings:
            return [f"{self.path}: ok ({counts})"]
        plural = "s" if len(self.findings) != 1 else ""
        head = f"{self.path}: {len(self.findings)} problem{plural} ({counts})"
        return [head, *(f"  {finding}" for finding in self.findings)]


def _json(body: bytes | None) -> Any:
    if body is None or not body.strip():
        raise ValueError("empty body")
    return json.loads(body)


def _messages_findings(item: Interaction) -> Iterator[Finding]:
    number = item.number
    if item.method == "POST":
        try:
            request = _json(item.request_body)
        except ValueError as problem:
            yield Finding(number, "request", f"body is not JSON ({problem})")
        else:
            for found in find_problems(REQUEST_SCHEMA, request):
                yield Finding(number, "request", str(found))
    if item.status >= 400:
        yield from _error_findings(item)
        return
    if item.is_stream:
        try:
            events = parse_sse(item.response_body)
        except (ValueError, UnicodeDecodeError) as problem:
            yield Finding(number, "stream", f"cannot parse the SSE body ({problem})")
            return
        for position, event in enumerate(events):
            for problem in validate_stream_event(event.data):
                yield Finding(number, f"event {position} ({event.data.get('type')})", problem)
        ends_in_error = bool(events) and events[-1].data.get("type") == "error"
        for problem in grammar_problems(events):
            # an `error` event ends a stream for good (HTTP 200 already sent): no message_stop follows
            if ends_in_error and problem == "the stream does not end with message_stop":
                continue
            yield Finding(number, "stream", problem)
        return
    try:
        body = _json(item.response_body)
    except ValueError as problem:
        yield Finding(number, "response", f"body is not JSON ({problem})")
        return
    for problem in validate_response(body):
        yield Finding(number, "response", problem)


def _error_findings(item: Interaction) -> Iterator[Finding]:
    try:
        body = _json(item.response_body)
    except ValueError as problem:
        yield Finding(item.number, "response", f"HTTP {item.status} body is not JSON ({problem})")
        return
    for problem in validate_error_body(body):
        yield Finding(item.number, "response", f"(HTTP {item.status}) {problem}")


def _files_findings(item: Interaction) -> Iterator[Finding]:
    if item.status >= 400:
        yield from _error_findings(item)
        return
    try:
        body = _json(item.response_body)
    except ValueError:
        return  # a file's content (bytes) is not a wire object
    if not isinstance(body, dict):
        return
    kind = body.get("type")
    ref = {"file": FILES_SCHEMA, "file_deleted": f"{FILES_SCHEMA}#/$defs/file_deleted"}.get(
        str(kind), f"{FILES_SCHEMA}#/$defs/file_list"
    )
    for problem in find_problems(ref, body):
        yield Finding(item.number, "response", str(problem))


def _checker(item: Interaction) -> Any:
    path = item.path.rstrip("/")
    if path.endswith("/v1/messages"):
        return _messages_findings
    if "/v1/files" in path and not path.endswith("/content"):
        return _files_findings
    return None


def lint_cassette(path: Path) -> LintReport:
    report = LintReport(path)
    try:
        interactions = read_interactions(path)
    except CassetteFormatError as problem:
        report.error = str(problem)
        return report
    report.interactions = len(interactions)
    for item in interactions:
        checker = _checker(item)
        if checker is None:
            continue
        report.checked += 1
        report.findings.extend(checker(item))
    return report


def cassette_files(paths: Iterable[Path]) -> Iterator[tuple[Path, bool]]:
    """(file, named explicitly) for each cassette under `paths`; directories are searched recursively."""
    for path in paths:
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                if is_cassette(found):
                    yield found, False
        else:
            yield path, True


def lint_paths(paths: Iterable[Path], out: TextIO) -> int:
    """Lint every cassette under `paths`, print a report per file; 0 when all are clean."""
    reports = [lint_cassette(path) for path, _ in cassette_files(paths)]
    for report in reports:
        for line in report.lines():
            print(line, file=out)
    bad = [report for report in reports if not report.ok]
    if not reports:
        print("no cassettes found", file=out)
        return 1
    print(f"{len(reports)} cassette(s) linted, {len(bad)} with problems", file=out)
    return 1 if bad else 0
