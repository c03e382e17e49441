"""`POST /v1/messages/count_tokens`: a deterministic estimate (about four characters a token), not the real
tokenizer: enough for code that reads `input_tokens`, not for budgeting against a real model."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from emulator.app.auth import check_auth
from emulator.app.body import read_json
from emulator.app.errors import json_response
from emulator.app.messages import apply_request_faults
from emulator.engine.faults import FaultContext
from emulator.engine.turn import estimate_tokens
from emulator.errors import InvalidRequestError
from emulator.runtime import Runtime
from emulator.wire.validation import validate_request


async def count_tokens(request: Request, runtime: Runtime, request_id: str) -> Response:
    check_auth(request.headers, runtime.config.api_key)
    body = await read_json(request, runtime.config.max_body_bytes)
    context = FaultContext(
        request_number=runtime.next_request_number(),
        endpoint="/v1/messages/count_tokens",
        body=body,
    )
    await apply_request_faults(runtime, context)
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object")
    # count_tokens takes the Messages body without `max_tokens`; validate it against the same schema.
    validate_request({"max_tokens": 1, **body})
    if "max_tokens" in body:
        raise InvalidRequestError("max_tokens: Extra inputs are not permitted")
    input_tokens = estimate_tokens([body.get("system"), body.get("tools"), body["messages"]])
    return json_response({"input_tokens": input_tokens}, request_id=request_id)
