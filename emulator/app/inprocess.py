"""An httpx2 transport that calls the ASGI app directly: no socket, still real HTTP semantics.

The official SDK takes an `httpx2.Client(transport=...)`. httpx2's own ASGI transport is async-only and
buffers whole responses; this one serves the sync client and streams response bodies chunk by chunk, so SSE
arrives as the app produces it.

The app runs on the calling thread, in a private event loop kept per thread: `handle_request` runs the loop
until the response head is out, and reading the body runs it until the next chunk. Handing each request to
an event loop in another thread instead costs two or three thread wake-ups per request, each 0.1-1 ms on a
busy 2-vCPU machine, which was most of an in-process request's time. A thread that already runs an event
loop (a sync client called from async code) cannot run a second one, so there the app runs in a portal
thread as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
from anyio.from_thread import BlockingPortal, start_blocking_portal

ASGIApp = Any

_END = object()


def _scope(request: httpx2.Request) -> dict[str, Any]:
    return {
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


def _transport_error(failure: BaseException) -> httpx2.ReadError:
    error = httpx2.ReadError(str(failure))
    error.__cause__ = failure
    return error


def _bytes_of(chunk: object) -> bytes:
    """A body chunk from the app, or the failure the app ended with, raised as a transport error."""
    if isinstance(chunk, BaseException):
        raise _transport_error(chunk)
    assert isinstance(chunk, bytes)
    return chunk


# --- the calling thread's own loop --------------------------------------------------------------------------


@dataclass
class _ThreadLoop:
    """An event loop that only its thread runs (the lock lets `close` run it once that thread is done)."""

    thread: threading.Thread
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def run(self, awaitable: Any) -> Any:
        with self.lock:
            return self.loop.run_until_complete(awaitable)

    def close(self) -> None:
        with self.lock:
            if self.loop.is_closed():
                return
            pending = [task for task in asyncio.all_tasks(self.loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()


class _Exchange:
    """One request's run of the ASGI app on a `_ThreadLoop`: its response head, then its body chunks."""

    def __init__(self, app: ASGIApp, scope: dict[str, Any], body: bytes, owner: _ThreadLoop) -> None:
        self.owner = owner
        self.head: asyncio.Future[tuple[int, list[Any]]] = owner.loop.create_future()
        self.chunks: asyncio.Queue[object] = asyncio.Queue()
        self.disconnected = asyncio.Event()
        self._body_sent = False
        self.task = owner.loop.create_task(self._run(app, scope, body))

    async def _run(self, app: ASGIApp, scope: dict[str, Any], body: bytes) -> None:
        async def receive() -> dict[str, Any]:
            if not self._body_sent:
                self._body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await self.disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                if not self.head.done():
                    self.head.set_result((message["status"], message.get("headers", [])))
            elif message["type"] == "http.response.body":
                data = message.get("body", b"")
                if data:
                    self.chunks.put_nowait(bytes(data))
                if not message.get("more_body", False):
                    self.chunks.put_nowait(_END)

        try:
            await app(scope, receive, send)
        except asyncio.CancelledError:
            raise
        except BaseException as failure:  # surfaced to the client as a transport error
            if not self.head.done():
                self.head.set_exception(failure)
            self.chunks.put_nowait(failure)
        finally:
            self.chunks.put_nowait(_END)

    def close(self, *, body_complete: bool = False) -> None:
        """The client is done with the body: tell the app, and stop it if it is still running.

        After a complete body the app only has its own teardown left: that runs with the loop's next run
        (or at the transport's close) instead of costing this request one more run of the loop.
        """
        if self.task.done():
            return
        if body_complete:
            self.disconnected.set()
            return
        if threading.current_thread() is not self.owner.thread or self.owner.loop.is_running():
            # not ours to run: let the loop's next run cancel it
            self.owner.loop.call_soon_threadsafe(self.task.cancel)
            return
        self.disconnected.set()
        self.task.cancel()
        with contextlib.suppress(RuntimeError):  # the loop was closed by the transport meanwhile
            self.owner.run(asyncio.gather(self.task, return_exceptions=True))


class _LoopBody(httpx2.SyncByteStream):
    def __init__(self, exchange: _Exchange) -> None:
        self._exchange = exchange
        self._complete = False

    def __iter__(self) -> Iterator[bytes]:
        exchange = self._exchange
        while True:
            try:
                chunk = exchange.chunks.get_nowait()
            except asyncio.QueueEmpty:
                chunk = exchange.owner.run(exchange.chunks.get())
            if chunk is _END:
                self._complete = True
                return
            yield _bytes_of(chunk)

    def close(self) -> None:
        self._exchange.close(body_complete=self._complete)


# --- the portal thread, for callers already inside an event loop --------------------------------------------


class _StreamedBody(httpx2.SyncByteStream):
    def __init__(self, chunks: queue.Queue[object], on_close: Any) -> None:
        self._chunks = chunks
        self._on_close = on_close

    def __iter__(self) -> Iterator[bytes]:
        while True:
            chunk = self._chunks.get()
            if chunk is _END:
                return
            yield _bytes_of(chunk)

    def close(self) -> None:
        self._on_close()


def _portal_request(portal: BlockingPortal, app: ASGIApp, request: httpx2.Request) -> httpx2.Response:
    body = request.read()
    scope = _scope(request)
    started: queue.Queue[object] = queue.Queue()
    chunks: queue.Queue[object] = queue.Queue()
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
            await app(scope, receive, send)
        except BaseException as failure:
            started.put(failure)
            chunks.put(failure)
            raise
        finally:
            chunks.put(_END)

    future = portal.start_task_soon(run_app)
    head = started.get()
    if isinstance(head, BaseException):
        raise _transport_error(head)
    status, headers = head  # type: ignore[misc]

    def on_close() -> None:
        if future.done():
            return
        closed = state.get("closed")
        if closed is not None:
            portal.call(closed.set)
        future.cancel()

    return httpx2.Response(status, headers=headers, stream=_StreamedBody(chunks, on_close))


# --- the transport ------------------------------------------------------------------------------------------


class InProcessTransport(httpx2.BaseTransport):
    """Serve requests of a sync `httpx2.Client` from an ASGI app, on the calling thread where it can."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._loops: dict[int, _ThreadLoop] = {}
        self._portal_context: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._closed = False

    def _thread_loop(self) -> _ThreadLoop:
        thread = threading.current_thread()
        owner = self._loops.get(thread.ident or 0)
        if owner is not None and owner.thread is thread:
            return owner
        with self._lock:
            if self._closed:
                raise httpx2.ConnectError("the emulator's in-process transport is closed")
            # the loops of threads that ended are nobody's to run any more
            for ident, other in list(self._loops.items()):
                if not other.thread.is_alive():
                    other.close()
                    del self._loops[ident]
            owner = _ThreadLoop(thread)
            self._loops[thread.ident or 0] = owner
            return owner

    def _ensure_portal(self) -> BlockingPortal:
        with self._lock:
            if self._portal is None:
                self._portal_context = start_blocking_portal()
                self._portal = self._portal_context.__enter__()
            return self._portal

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            return _portal_request(self._ensure_portal(), self._app, request)
        owner = self._thread_loop()
        exchange = _Exchange(self._app, _scope(request), request.read(), owner)
        try:
            status, headers = owner.run(exchange.head)
        except BaseException as failure:
            exchange.close()
            if isinstance(failure, Exception):
                raise _transport_error(failure) from failure
            raise
        return httpx2.Response(status, headers=headers, stream=_LoopBody(exchange))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            loops, self._loops = list(self._loops.values()), {}
            portal_context, self._portal_context, self._portal = self._portal_context, None, None
        for owner in loops:
            owner.close()
        if portal_context is not None:
            portal_context.__exit__(None, None, None)
