"""Turning errors into the API's error envelope, with the `request-id` header on every answer."""

from __future__ import annotations

import json

from starlette.responses import Response

from emulator.errors import APIError
from emulator.wire.models import error_envelope


def json_response(
    payload: object, *, status: int = 200, request_id: str, headers: dict[str, str] | None = None
) -> Response:
    # Compact separators: the API's JSON bodies have no spaces.
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    all_headers = {"request-id": request_id, **(headers or {})}
    return Response(body, status_code=status, media_type="application/json", headers=all_headers)


def error_response(error: APIError, request_id: str) -> Response:
    payload = error_envelope(error.error_type, error.message, request_id)
    if error.details:
        payload["error"]["details"] = error.details
    return json_response(payload, status=error.status, request_id=request_id, headers=error.headers)
