"""Message Batches routes: create, retrieve, list, cancel, delete and JSONL results."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from emulator.app.auth import check_auth
from emulator.app.body import read_json
from emulator.app.errors import json_response
from emulator.engine.batches import check_batch_body
from emulator.errors import InvalidRequestError, NotFoundError
from emulator.runtime import Runtime
from emulator.state.batches import BatchRecord
from emulator.wire.models import format_timestamp

BATCH_BODY_LIMIT = 256 * 1024 * 1024


def _stamp(moment: Any) -> str | None:
    return format_timestamp(moment) if moment is not None else None


def batch_object(record: BatchRecord, base_url: str) -> dict[str, Any]:
    ended = record.processing_status == "ended"
    return {
        "id": record.id,
        "type": "message_batch",
        "processing_status": record.processing_status,
        "request_counts": record.counts(),
        "ended_at": _stamp(record.ended_at),
        "created_at": format_timestamp(record.created_at),
        "expires_at": format_timestamp(record.expires_at),
        "archived_at": None,
        "cancel_initiated_at": _stamp(record.cancel_initiated_at),
        # Absolute, pointing at this emulator: the SDK fetches it as given.
        "results_url": f"{base_url}/v1/messages/batches/{record.id}/results" if ended else None,
    }


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _record(runtime: Runtime, batch_id: str) -> BatchRecord:
    record = runtime.batches.get(batch_id)
    if record is None:
        raise NotFoundError(f"message_batch: batch '{batch_id}' not found")
    return record


async def create_batch(request: Request, runtime: Runtime, request_id: str) -> Response:
    check_auth(request.headers, runtime.config.api_key)
    body = await read_json(request, BATCH_BODY_LIMIT)
    record = runtime.batch_processor.create(check_batch_body(body))
    return json_response(batch_object(record, _base_url(request)), request_id=request_id)


async def batch_item(request: Request, runtime: Runtime, request_id: str) -> Response:
    check_auth(request.headers, runtime.config.api_key)
    record = _record(runtime, request.path_params["batch_id"])
    if request.method == "DELETE":
        if record.processing_status != "ended":
            raise InvalidRequestError(
                f"message_batch: batch '{record.id}' is still processing; "
                "cancel it and wait for it to end first"
            )
        runtime.batches.delete(record.id)
        return json_response({"id": record.id, "type": "message_batch_deleted"}, request_id=request_id)
    with runtime.batches.lock:
        return json_response(batch_object(record, _base_url(request)), request_id=request_id)


async def cancel_batch(request: Request, runtime: Runtime, request_id: str) -> Response:
    check_auth(request.headers, runtime.config.api_key)
    record = _record(runtime, request.path_params["batch_id"])
    runtime.batch_processor.cancel(record)
    with runtime.batches.lock:
        return json_response(batch_object(record, _base_url(request)), request_id=request_id)


async def batch_results(request: Request, runtime: Runtime, request_id: str) -> Response:
    check_auth(request.headers, runtime.config.api_key)
    record = _record(runtime, request.path_params["batch_id"])
    with runtime.batches.lock:
        if record.processing_status != "ended":
            raise InvalidRequestError(
                f"message_batch: batch '{record.id}' has not ended; results are not ready"
            )
        lines = [
            json.dumps({"custom_id": custom_id, "result": result}, separators=(",", ":"), ensure_ascii=False)
            for custom_id, result in record.results.items()
        ]
    body = ("\n".join(lines) + "\n").encode("utf-8")
    return Response(body, media_type="application/binary", headers={"request-id": request_id})


async def list_batches(request: Request, runtime: Runtime, request_id: str) -> Response:
    check_auth(request.headers, runtime.config.api_key)
    query = request.query_params
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        raise InvalidRequestError("limit: Input should be a valid integer") from None
    if not 1 <= limit <= 1000:
        raise InvalidRequestError("limit: Input should be between 1 and 1000")
    records = runtime.batches.ordered()
    ids = [record.id for record in records]
    if "after_id" in query:
        start = ids.index(query["after_id"]) + 1 if query["after_id"] in ids else len(ids)
        window = records[start : start + limit]
        has_more = start + limit < len(records)
    elif "before_id" in query:
        end = ids.index(query["before_id"]) if query["before_id"] in ids else 0
        window = records[max(0, end - limit) : end]
        has_more = end - limit > 0
    else:
        window = records[:limit]
        has_more = limit < len(records)
    base_url = _base_url(request)
    with runtime.batches.lock:
        data = [batch_object(record, base_url) for record in window]
    payload = {
        "data": data,
        "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
    return json_response(payload, request_id=request_id)
