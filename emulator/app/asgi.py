"""The ASGI application: routing, the request id on every answer, and errors in the API's envelope."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from emulator.app.admin import admin
from emulator.app.batches import batch_item, batch_results, cancel_batch, create_batch, list_batches
from emulator.app.count_tokens import count_tokens
from emulator.app.errors import error_response
from emulator.app.files import download_file, file_item, list_files, upload_file
from emulator.app.messages import create_message
from emulator.app.streaming import DroppedConnection
from emulator.errors import ERROR_TYPE_BY_STATUS, APIError, InvalidRequestError
from emulator.runtime import Runtime

log = logging.getLogger("emulator.app")

Handler = Callable[[Request, Runtime, str], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


class _DroppedConnectionAsWarning(logging.Filter):
    """An injected `drop_connection` is an exception the server must see (so that it cuts the connection
    instead of ending the body cleanly), but it is no bug: the server logs it as one warning line, not as an
    "Exception in ASGI application" traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        failure = record.exc_info[1] if record.exc_info else None
        if isinstance(failure, DroppedConnection):
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
            record.msg, record.args = "%s", (failure,)
            record.exc_info, record.exc_text = None, None
        return True


def _quiet_dropped_connections() -> None:
    # uvicorn logs what escapes the app on "uvicorn.error" (its dictConfig keeps logger filters)
    server_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(item, _DroppedConnectionAsWarning) for item in server_log.filters):
        server_log.addFilter(_DroppedConnectionAsWarning())


def _endpoint(handler: Handler, runtime: Runtime) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        request_id = runtime.services.ids.request()
        try:
            return await handler(request, runtime, request_id)
        except APIError as error:
            return error_response(error, request_id)
        except RecursionError:
            return error_response(InvalidRequestError("Request body is nested too deeply"), request_id)
        except Exception:
            # A bug of ours still answers in the envelope (never a bare traceback), and is logged.
            log.exception("internal error while handling %s %s", request.method, request.url.path)
            return error_response(APIError("Internal server error"), request_id)

    return endpoint


def build_app(runtime: Runtime, edge: Handler | None = None) -> ASGIApp:
    """The app. With `edge` (replay and record modes: `emulator.cassettes.CassetteEdge.handle`), every `/v1/`
    request goes to it instead of the engine; errors keep the envelope and the `request-id` header."""

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = {404: "Not found", 405: "Method not allowed"}.get(status, "Request failed")
        if status in (404, 405):
            message = f"{message}: {request.method} {request.url.path}"
        error = APIError(message, status=status, error_type=ERROR_TYPE_BY_STATUS.get(status, "api_error"))
        return error_response(error, runtime.services.ids.request())

    routes = [
        Route("/v1/messages", _endpoint(create_message, runtime), methods=["POST"]),
        Route("/v1/messages/count_tokens", _endpoint(count_tokens, runtime), methods=["POST"]),
        Route("/v1/messages/batches", _endpoint(create_batch, runtime), methods=["POST"]),
        Route("/v1/messages/batches", _endpoint(list_batches, runtime), methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}", _endpoint(batch_item, runtime), methods=["GET", "DELETE"]),
        Route("/v1/messages/batches/{batch_id}/cancel", _endpoint(cancel_batch, runtime), methods=["POST"]),
        Route("/v1/messages/batches/{batch_id}/results", _endpoint(batch_results, runtime), methods=["GET"]),
        Route("/v1/files", _endpoint(upload_file, runtime), methods=["POST"]),
        Route("/v1/files", _endpoint(list_files, runtime), methods=["GET"]),
        Route("/v1/files/{file_id}", _endpoint(file_item, runtime), methods=["GET", "DELETE"]),
        Route("/v1/files/{file_id}/content", _endpoint(download_file, runtime), methods=["GET"]),
        Route("/_emulator/{action:str}", _endpoint(admin, runtime), methods=["GET", "POST", "DELETE"]),
    ]
    messages = _endpoint(create_message, runtime)
    if edge is not None:
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        routes = [route for route in routes if not route.path.startswith("/v1/")]
        messages = _endpoint(edge, runtime)
        routes.insert(0, Route("/v1/{path:path}", messages, methods=methods))
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    _quiet_dropped_connections()
    return _HotPath(app, {("POST", "/v1/messages"): messages})


class _HotPath:
    """`POST /v1/messages` straight to its endpoint; everything else through Starlette.

    Starlette's middleware and router cost ~16 us a request, a tenth of a replayed turn in-process. The
    endpoints catch every exception themselves (the envelope), so what the middleware adds is not needed on
    these routes.
    """

    def __init__(self, app: Starlette, routes: dict[tuple[str, str], Endpoint]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.routes.get((scope["method"], scope["path"]))
            if endpoint is not None:
                response = await endpoint(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
