"""The record/replay edge: what answers `/v1/*` when the emulator runs in `replay` or `record` mode.

Server-side, so it works for any client (curl, the TypeScript SDK, the Python SDK): the request is turned into
a vcrpy `Request` and looked up in the cassette (vcrpy's `Cassette` and matchers); a hit is served back byte
for byte (streams in event-sized chunks, so a client sees the same events with the same boundaries); a miss
is forwarded to the upstream API when the record mode allows it, relayed to the client as it arrives, and
appended to the cassette, which is saved atomically after each interaction; otherwise it is answered with
`UNMATCHED_STATUS` and a message naming the request and diffing it against the closest recorded one.

Secrets never reach the cassette: `x-api-key`, `authorization`, cookies and any configured header (a trailing
`*` matches a prefix) are dropped from what is recorded (they are still forwarded upstream), and the API key's
value is scrubbed from recorded bodies too.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import httpx2
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from vcr.request import Request as VcrRequest

from emulator.app.body import read_capped
from emulator.cassettes.matching import (
    BodyNormalizer,
    IndexedCassette,
    cassette_file_missing,
    explain_miss,
    open_cassette,
)
from emulator.cassettes.modes import DEFAULT_UPSTREAM, effective_record_mode
from emulator.errors import APIError
from emulator.state.journal import JournalEntry, RawHeaders, RawJSON

if TYPE_CHECKING:
    from emulator.config import EmulatorConfig
    from emulator.runtime import Runtime

log = logging.getLogger("emulator.cassettes")

#: the status of the answer to a request the cassette cannot answer (not one the API uses; not retried)
UNMATCHED_STATUS = 418
UNMATCHED_ERROR_TYPE = "unmatched_request_error"
#: upstream unreachable or failing at the transport level while recording
UPSTREAM_STATUS = 502

#: never written to a cassette, whatever the configuration
SECRET_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization", "cookie", "set-cookie"})
#: connection-level headers, and those that would lie about a decoded body
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
        "content-length",
        "content-encoding",
    }
)
_NOT_FORWARDED = _HOP_BY_HOP | {"host", "accept-encoding"}
#: headers carrying the API key: their values are also scrubbed from recorded bodies
_KEY_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization"})
_SCRUBBED = b"[filtered]"


@dataclass(frozen=True)
class Unmatched:
    """A request the cassette could not answer."""

    cassette: Path
    method: str
    path: str
    record_mode: str
    summary: str
    detail: str

    @property
    def message(self) -> str:
        text = (
            f"No recorded interaction in cassette {self.cassette} matches {self.method} {self.path} "
            f"(record mode '{self.record_mode}'); {self.summary}"
        )
        return f"{text}\n{self.detail}" if self.detail else text


@dataclass(frozen=True)
class EdgeSettings:
    cassette: Path
    mode: str = "replay"
    record_mode: str | None = None
    upstream: str = DEFAULT_UPSTREAM
    filter_headers: tuple[str, ...] = ()
    match_ignore: tuple[str, ...] = ()
    #: the base URL written in recorded `uri`s (default: `upstream`)
    record_base_url: str | None = None
    max_body_bytes: int = 32 * 1024 * 1024
    upstream_timeout_s: float = 600.0

    @classmethod
    def from_config(cls, config: EmulatorConfig) -> EdgeSettings:
        if config.cassette is None:
            raise ValueError(f"mode {config.mode!r} needs a cassette path (`cassette=` / `--cassette`)")
        return cls(
            cassette=Path(config.cassette),
            mode=config.mode,
            record_mode=config.record_mode,
            upstream=config.upstream,
            filter_headers=tuple(config.filter_headers),
            match_ignore=tuple(config.match_ignore),
            record_base_url=config.record_base_url,
            max_body_bytes=config.max_body_bytes,
        )


@dataclass(frozen=True)
class _RecordedAnswer:
    """A recorded response as the replay sends it (worked out once per interaction, not per play)."""

    recorded: dict[str, Any]
    status: int
    body: bytes
    headers: dict[str, str]
    stream: bool

    @classmethod
    def of(cls, recorded: dict[str, Any]) -> _RecordedAnswer:
        body = recorded.get("body", {}).get("string") or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        headers = {
            name.lower(): ", ".join(values if isinstance(values, list) else [values])
            for name, values in (recorded.get("headers") or {}).items()
            if name.lower() not in _HOP_BY_HOP
        }
        stream = "text/event-stream" in headers.get("content-type", "") or body.lstrip()[:6] in (
            b"event:",
            b"data: ",
        )
        headers.setdefault("content-type", "text/event-stream" if stream else "application/json")
        headers.pop("content-length", None)  # ours is the body's length as sent, not the recorded header
        return cls(recorded, int(recorded["status"]["code"]), body, headers, stream)

    @functools.cached_property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        encoded = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in self.headers.items()]
        return [*encoded, (b"content-length", str(len(self.body)).encode("latin-1"))]


class _ReadyResponse(Response):
    """A recorded JSON answer with its headers encoded once per interaction (Starlette's `Response` encodes
    them again for every play), plus this request's id."""

    def __init__(self, answer: _RecordedAnswer, request_id: str) -> None:
        self.status_code = answer.status
        self.body = answer.body
        self.background = None
        extra = [(b"request-id", request_id.encode("latin-1"))] if "request-id" not in answer.headers else []
        self.raw_headers = [*answer.raw_headers, *extra]


class CassetteEdge:
    """Answers API requests from a vcrpy cassette, recording misses from upstream when allowed."""

    def __init__(self, settings: EdgeSettings) -> None:
        self.settings = settings
        self.path = Path(settings.cassette)
        self.record_mode = effective_record_mode(settings.mode, settings.record_mode)
        self._normalizer = BodyNormalizer(settings.match_ignore)
        vcr_mode = "all" if self.record_mode == "rewrite" else self.record_mode
        self.cassette: IndexedCassette = open_cassette(
            self.path, vcr_mode, settings.match_ignore, normalizer=self._normalizer
        )  # type: ignore[assignment]
        if self.record_mode == "rewrite":
            self.cassette.drop_unused_requests = True
        if self.cassette.write_protected and self.file_missing:
            # said at once: every request will miss, and the per-request errors come later (or get swallowed)
            log.warning(
                "cassette file not found: %s (record mode '%s')", self.path.absolute(), self.record_mode
            )
        configured = [name.lower() for name in settings.filter_headers]
        self._hidden = SECRET_HEADERS | {name for name in configured if not name.endswith("*")}
        self._hidden_prefixes = tuple(name[:-1] for name in configured if name.endswith("*"))
        self._hidden_names = frozenset(self._hidden)
        self._path_text = str(self.path)
        self._answers: dict[int, _RecordedAnswer] = {}
        self._base = (settings.record_base_url or settings.upstream).rstrip("/")
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._unmatched: list[Unmatched] = []
        self._closed = False

    # --- inspection ----------------------------------------------------------------------------------------

    @property
    def unmatched(self) -> list[Unmatched]:
        with self._lock:
            return list(self._unmatched)

    @property
    def all_played(self) -> bool:
        return bool(self.cassette.all_played)

    @property
    def file_missing(self) -> bool:
        """The cassette file did not exist when it was opened (a typo'd path, when nothing may record)."""
        return cassette_file_missing(self.cassette)

    # --- the endpoint --------------------------------------------------------------------------------------

    async def handle(self, request: Request, runtime: Runtime, request_id: str) -> Response:
        raw = await read_capped(request, self.settings.max_body_bytes)
        entry = runtime.journal.add(self._journal_entry(request, request_id, raw))
        if self.cassette.write_protected:
            # pure replay: the index key decides, as the matchers would, without a vcrpy Request
            scope = request.scope
            content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
            key = self._normalizer.key_of(scope["method"], scope["path"], raw, content_type.decode("latin-1"))
            with self._lock:
                found = self.cassette.play_key(key)
            if found is not None:
                return self._replay(found, request_id, entry)
        live = self._vcr_request(request, raw, request.headers.items())
        with self._lock:
            if self.cassette.can_play_response_for(live):
                recorded = self.cassette.play_response(live)
                verdict = "play"
            elif self.cassette.write_protected:
                summary, detail = explain_miss(self.cassette, live, self._normalizer)
                miss = Unmatched(
                    self.path, request.method, request.url.path, self.record_mode, summary, detail
                )
                self._unmatched.append(miss)
                verdict = "miss"
            else:
                verdict = "forward"
        if verdict == "play":
            return self._replay(recorded, request_id, entry)
        if verdict == "miss":
            entry.status = UNMATCHED_STATUS
            log.warning("%s", miss.message)
            raise APIError(
                miss.message,
                status=UNMATCHED_STATUS,
                error_type=UNMATCHED_ERROR_TYPE,
                headers={"x-should-retry": "false"},
                details={"cassette": str(self.path), "closest": summary, "diff": detail},
            )
        return await self._forward(request, raw, live, entry)

    # --- replay --------------------------------------------------------------------------------------------

    def _replay(self, recorded: dict[str, Any], request_id: str, entry: JournalEntry) -> Response:
        answer = self._answers.get(id(recorded))
        if answer is None or answer.recorded is not recorded:
            answer = self._answers[id(recorded)] = _RecordedAnswer.of(recorded)
        entry.status = answer.status
        if answer.stream:
            entry.stream = True
            headers = dict(answer.headers)
            headers.setdefault("request-id", request_id)
            return StreamingResponse(_event_chunks(answer.body), status_code=answer.status, headers=headers)
        entry.response = RawJSON(answer.body)
        return _ReadyResponse(answer, request_id)

    # --- record --------------------------------------------------------------------------------------------

    def _vcr_request(self, request: Request, raw: bytes, header_items: list[tuple[str, str]]) -> VcrRequest:
        query = request.scope["query_string"].decode("latin-1")
        uri = f"{self._base}{request.scope['path']}{'?' + query if query else ''}"
        headers = {
            name: value
            for name, value in header_items
            if name not in _NOT_FORWARDED and not self._is_hidden(name)
        }
        return VcrRequest(request.method, uri, raw, headers)

    def _is_hidden(self, name: str) -> bool:
        lowered = name.lower()
        return lowered in self._hidden or lowered.startswith(self._hidden_prefixes)

    def _secrets(self, request: Request) -> list[bytes]:
        values: list[bytes] = []
        for name, value in request.headers.items():
            if name.lower() in _KEY_HEADERS:
                token = value.split(" ", 1)[1] if value.lower().startswith("bearer ") else value
                if len(token) >= 8:
                    values.append(token.encode("utf-8"))
        return values

    async def _forward(self, request: Request, raw: bytes, live: VcrRequest, entry: JournalEntry) -> Response:
        upstream = self.settings.upstream.rstrip("/")
        query = f"?{request.url.query}" if request.url.query else ""
        url = f"{upstream}{request.url.path}{query}"
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED]
        # bodies are recorded decoded; asking for identity keeps what we relay and what we record the same
        headers.append(("accept-encoding", "identity"))
        timeout = httpx2.Timeout(self.settings.upstream_timeout_s, connect=30.0)
        client = httpx2.AsyncClient(timeout=timeout)
        try:
            upstream_response = await client.send(
                client.build_request(request.method, url, content=raw, headers=headers), stream=True
            )
        except httpx2.HTTPError as problem:
            await client.aclose()
            raise APIError(
                f"record mode: the upstream {upstream} could not be reached: {problem!r}",
                status=UPSTREAM_STATUS,
                error_type="api_error",
                headers={"x-should-retry": "false"},
            ) from None
        secrets = self._secrets(request)
        status = upstream_response.status_code
        reason = upstream_response.reason_phrase
        relayed = {k: v for k, v in upstream_response.headers.items() if k.lower() not in _HOP_BY_HOP}
        recorded_headers: dict[str, list[str]] = {}
        for name, value in upstream_response.headers.multi_items():
            if name.lower() not in _HOP_BY_HOP and not self._is_hidden(name):
                recorded_headers.setdefault(name.lower(), []).append(value)
        entry.status = status
        stored = VcrRequest(live.method, live.uri, _scrub(raw, secrets), dict(live.headers))

        def record(body: bytes) -> None:
            response = {
                "status": {"code": status, "message": reason},
                "headers": recorded_headers,
                "body": {"string": _scrub(body, secrets)},
            }
            with self._lock:
                self.cassette.append(stored, response)
            # saving can take a while on a big cassette: lookups must not wait for it. Forced, because a
            # concurrent save may have cleared vcrpy's dirty flag without having written this append.
            with self._save_lock:
                self.cassette._save(force=True)

        if "text/event-stream" in upstream_response.headers.get("content-type", ""):
            entry.stream = True

            async def relay() -> AsyncIterator[bytes]:
                # The last chunk is held back until the interaction is on disk: a client that got the
                # whole stream may count on it being recorded, even if the emulator is killed next.
                chunks: list[bytes] = []
                held: bytes | None = None
                complete = False
                try:
                    async for chunk in upstream_response.aiter_bytes():
                        chunks.append(chunk)
                        if held is not None:
                            yield held
                        held = chunk
                    complete = True
                finally:
                    with anyio.CancelScope(shield=True):
                        await upstream_response.aclose()
                        await client.aclose()
                        if complete:
                            await anyio.to_thread.run_sync(record, b"".join(chunks))
                        else:
                            log.warning("record mode: %s %s ended early; not recorded", request.method, url)
                if held is not None:
                    yield held

            return StreamingResponse(relay(), status_code=status, headers=relayed)
        try:
            body = await upstream_response.aread()
        except httpx2.HTTPError as problem:
            raise APIError(
                f"record mode: reading the upstream answer failed: {problem!r}",
                status=UPSTREAM_STATUS,
                error_type="api_error",
                headers={"x-should-retry": "false"},
            ) from None
        finally:
            await upstream_response.aclose()
            await client.aclose()
        await anyio.to_thread.run_sync(record, body)
        entry.response = RawJSON(body)
        return Response(body, status_code=status, headers=relayed)

    def _journal_entry(self, request: Request, request_id: str, raw: bytes) -> JournalEntry:
        scope = request.scope
        return JournalEntry(
            request_id=request_id,
            method=scope["method"],
            path=scope["path"],
            query=scope["query_string"].decode("latin-1"),
            headers=RawHeaders(scope["headers"], self._hidden_names),  # type: ignore[arg-type]
            body=RawJSON(raw),
            extra={"cassette": self._path_text},
        )

    # --- lifecycle -----------------------------------------------------------------------------------------

    def rewind(self) -> None:
        """Make every recorded interaction playable again and forget the misses (vcrpy's `rewind`)."""
        with self._lock:
            self.cassette.rewind()
            self._unmatched.clear()

    def save(self) -> None:
        """Write the cassette if this run changed it (each recorded interaction is already saved)."""
        with self._save_lock:
            self.cassette._save()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.save()


def _scrub(body: bytes, secrets: Iterable[bytes]) -> bytes:
    for secret in secrets:
        body = body.replace(secret, _SCRUBBED)
    return body


def _event_chunks(body: bytes) -> Iterator[bytes]:
    """The body cut after each blank line, so a replayed stream arrives event by event."""
    start = 0
    length = len(body)
    while start < length:
        ends = [found for found in (body.find(b"\n\n", start), body.find(b"\r\n\r\n", start)) if found >= 0]
        if not ends:
            yield body[start:]
            return
        end = min(ends)
        end += 4 if body.startswith(b"\r\n\r\n", end) else 2
        yield body[start:end]
        start = end
