"""`POST /v1/messages`: validate, prepare the turn, then answer with JSON or an SSE stream."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from emulator.app.auth import check_auth
from emulator.app.body import read_json
from emulator.app.errors import json_response
from emulator.app.streaming import sse_stream
from emulator.engine.betas import parse_betas
from emulator.engine.faults import FaultContext, http_error_parts
from emulator.engine.turn import complete_turn, may_block, prepare_turn, run_turn, stage_turn_uploads
from emulator.errors import APIError
from emulator.runtime import Runtime
from emulator.state.journal import JournalEntry, RawHeaders
from emulator.wire.validation import validate_request


def journal_entry(request: Request, request_id: str, body: Any) -> JournalEntry:
    # from the scope: building Starlette's `request.url` costs more than the rest of the entry
    scope = request.scope
    return JournalEntry(
        request_id=request_id,
        method=scope["method"],
        path=scope["path"],
        query=scope["query_string"].decode("latin-1"),
        headers=RawHeaders(scope["headers"]),  # type: ignore[arg-type]  # decoded and redacted when read
        body=body,
    )


async def apply_request_faults(runtime: Runtime, context: FaultContext) -> None:
    """Injected stalls and HTTP errors fire here, before the request is handled."""
    faults = runtime.services.faults
    # A between-events stall belongs to the stream that writes the response (`sse_stream`): leave it armed.
    stall = faults.take("stall", context, where=lambda fault: not fault.between_events)
    if stall is not None:
        await anyio.sleep(stall.delay_s)
    failure = faults.take("http_error", context)
    if failure is not None:
        status, error_type, message, headers = http_error_parts(failure)
        raise APIError(message, status=status, error_type=error_type, headers=headers)


async def create_message(request: Request, runtime: Runtime, request_id: str) -> Response:
    check_auth(request.headers, runtime.config.api_key)
    body = await read_json(request, runtime.config.max_body_bytes)
    entry = runtime.journal.add(journal_entry(request, request_id, body))
    context = FaultContext(
        request_number=runtime.next_request_number(), endpoint=request.scope["path"], body=body
    )
    try:
        await apply_request_faults(runtime, context)
        validate_request(body)
        betas = parse_betas(request.headers.getlist("anthropic-beta"))
        services = runtime.services
        # preparing is CPU-only but for the uploads; each thread hop costs 0.3-1 ms on a busy 2-vCPU machine
        prepared = prepare_turn(body, betas, services, context)
        if prepared.uploads:
            prepared = await anyio.to_thread.run_sync(stage_turn_uploads, prepared, services)
    except APIError as error:
        entry.status = error.status
        raise
    if body.get("stream") is True:
        entry.stream = True
        entry.status = 200
        stream = sse_stream(
            run_turn(prepared, services),
            services,
            context,
            runtime.config.streaming,
            blocking=may_block(prepared),
        )
        return StreamingResponse(
            stream,
            media_type="text/event-stream",
            headers={"request-id": request_id, "cache-control": "no-cache"},
        )
    if may_block(prepared):
        message = await anyio.to_thread.run_sync(complete_turn, prepared, services)
    else:
        message = complete_turn(prepared, services)
    payload = message.to_wire()
    entry.status = 200
    entry.response = payload
    return json_response(payload, request_id=request_id)
