"""Reading a JSON request body with a size cap and clear 4xx answers."""

from __future__ import annotations

import json
import sys
from typing import Any

from starlette.requests import ClientDisconnect, Request

from emulator.errors import InvalidRequestError, RequestTooLargeError


async def read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLargeError(f"Request exceeds the maximum allowed size of {limit} bytes")
    # straight from ASGI `receive`: Starlette's `request.stream()` generator costs more than the read
    chunks: list[bytes] = []
    size = 0
    receive = request.receive
    while True:
        message = await receive()
        if message["type"] != "http.request":  # as Starlette's own reader does
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLargeError(f"Request exceeds the maximum allowed size of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_json(request: Request, limit: int) -> Any:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise InvalidRequestError(f"Content-Type must be application/json, got '{media_type}'")
    raw = await read_capped(request, limit)
    if not raw.strip():
        raise InvalidRequestError("Request body is empty; expected a JSON object")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as problem:
        raise InvalidRequestError(f"Request body is not valid UTF-8 (byte {problem.start})") from None
    except json.JSONDecodeError as problem:
        raise InvalidRequestError(
            f"Invalid JSON in request body: {problem.msg} (line {problem.lineno}, column {problem.colno})"
        ) from None
    except ValueError:
        # the one other way valid JSON fails to load: an integer literal longer than Python converts
        raise InvalidRequestError(
            f"Invalid JSON in request body: an integer has more than {sys.get_int_max_str_digits()} digits"
        ) from None
