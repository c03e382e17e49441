"""An httpx2 transport that calls the ASGI app directly: no socket, still real HTTP semantics.

The official SDK takes an `httpx2.Client(transport=...)`. httpx2's own ASGI transport is async-only and
buffers whole responses; this one serves the sync client from an event loop in a background thread and
streams response bodies chunk by chunk, so SSE arrives as the app produces it.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator, MutableMapping
from contextlib import AbstractContextManager
from typing import Any

import anyio
import httpx2
from anyio.from_thread import BlockingPortal, start_blocking_portal

ASGIApp = Any

_END = object()


class _StreamedBody(httpx2.SyncByteStream):
    def __init__(self, chunks: queue.Queue[object], on_close: Any) -> None:
        self._chunks = chunks
        self._on_close = on_close

    def __iter__(self) -> Iterator[bytes]:
        while True:
            chunk = self._chunks.get()
            if chunk is _END:
                return
            if isinstance(chunk, BaseException):
                raise httpx2.ReadError(str(chunk)) from chunk
            assert isinstance(chunk, bytes)
            yield chunk

    def close(self) -> None:
        self._on_close()


class InProcessTransport(httpx2.BaseTransport):
    """Serve requests of a sync `httpx2.Client` from an ASGI app running in a private event loop."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._portal_context: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None

    def _ensure_portal(self) -> BlockingPortal:
        if self._portal is None:
            self._portal_context = start_blocking_portal()
            self._portal = self._portal_context.__enter__()
        return self._portal

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        portal = self._ensure_portal()
        body = request.read()
        started: queue.Queue[object] = queue.Queue()
        chunks: queue.Queue[object] = queue.Queue()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for (k, v) in request.headers.raw],
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "server": (request.url.host, request.url.port or 80),
            "client": ("127.0.0.1", 0),
            "root_path": "",
        }
        state: dict[str, Any] = {"body_sent": False, "closed": None}

        async def run_app() -> None:
            closed = anyio.Event()
            state["closed"] = closed

            async def receive() -> dict[str, Any]:
                if not state["body_sent"]:
                    state["body_sent"] = True
                    return {"type": "http.request", "body": body, "more_body": False}
                await closed.wait()
                return {"type": "http.disconnect"}

            async def send(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    started.put((message["status"], message.get("headers", [])))
                elif message["type"] == "http.response.body":
                    data = message.get("body", b"")
                    if data:
                        chunks.put(bytes(data))
                    if not message.get("more_body", False):
                        chunks.put(_END)

            try:
                await self._app(scope, receive, send)
            except BaseException as failure:  # surfaced to the client as a transport error
                started.put(failure)
                chunks.put(failure)
                raise
            finally:
                chunks.put(_END)

        future = portal.start_task_soon(run_app)
        head = started.get()
        if isinstance(head, BaseException):
            raise httpx2.ReadError(str(head)) from head
        status, headers = head  # type: ignore[misc]

        def on_close() -> None:
            closed = state.get("closed")
            if closed is not None:
                portal.call(closed.set)
            if not future.done():
                future.cancel()

        return httpx2.Response(status, headers=headers, stream=_StreamedBody(chunks, on_close))

    def close(self) -> None:
        if self._portal_context is not None:
            self._portal_context.__exit__(None, None, None)
            self._portal_context = None
            self._portal = None
