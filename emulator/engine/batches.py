"""Running Message Batches: every request goes through the same turn engine, one after another, in a
background worker; per-request failures become `errored` results carrying the error envelope."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from emulator.engine.betas import parse_betas
from emulator.engine.faults import FaultContext
from emulator.engine.turn import EngineServices, complete_turn, prepare_turn, stage_turn_uploads
from emulator.errors import APIError, InvalidRequestError
from emulator.state.batches import BatchRecord, BatchStore
from emulator.wire.models import error_envelope

BATCH_LIFETIME = timedelta(hours=24)
MAX_BATCH_REQUESTS = 100_000

#: validates one request's params (raises InvalidRequestError), injected so the engine does not import wire
ParamsValidator = Callable[[dict[str, Any]], None]


def check_batch_body(body: Any) -> list[dict[str, Any]]:
    """The batch's requests, after the checks the API makes at creation (shape, count, unique custom ids)."""
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        raise InvalidRequestError("requests: Field required")
    requests = body["requests"]
    if not requests:
        raise InvalidRequestError("requests: List should have at least 1 item after validation, not 0")
    if len(requests) > MAX_BATCH_REQUESTS:
        raise InvalidRequestError(f"requests: List should have at most {MAX_BATCH_REQUESTS} items")
    seen: set[str] = set()
    for index, item in enumerate(requests):
        if not isinstance(item, dict):
            raise InvalidRequestError(f"requests.{index}: Input should be a valid dictionary")
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            raise InvalidRequestError(f"requests.{index}.custom_id: Field required")
        if custom_id in seen:
            raise InvalidRequestError(
                f"requests.{index}.custom_id: Duplicate custom_id '{custom_id}' in batch"
            )
        seen.add(custom_id)
        if not isinstance(item.get("params"), dict):
            raise InvalidRequestError(f"requests.{index}.params: Field required")
        if item["params"].get("stream"):
            raise InvalidRequestError(f"requests.{index}.params.stream: Batch requests cannot be streamed")
    return requests


class BatchProcessor:
    """Processes batches in one background worker; `delay_s` keeps each batch `in_progress` that long."""

    def __init__(
        self, services: EngineServices, store: BatchStore, validate: ParamsValidator, delay_s: float = 0.0
    ) -> None:
        self._services = services
        self._store = store
        self._validate = validate
        self._delay_s = delay_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emulator-batches")
        self._closed = threading.Event()

    def create(self, requests: list[dict[str, Any]]) -> BatchRecord:
        now = self._services.clock.now()
        record = BatchRecord(
            id=self._services.ids.new("msgbatch"),
            requests=requests,
            created_at=now,
            expires_at=now + BATCH_LIFETIME,
        )
        self._store.add(record)
        self._executor.submit(self._process, record)
        return record

    def cancel(self, record: BatchRecord) -> None:
        with self._store.lock:
            if record.processing_status == "in_progress":
                record.processing_status = "canceling"
                record.cancel_initiated_at = self._services.clock.now()

    def _run_one(self, params: dict[str, Any], number: int) -> dict[str, Any]:
        request_id = self._services.ids.request()
        try:
            self._validate(params)
            context = FaultContext(request_number=number, endpoint="/v1/messages/batches", body=params)
            prepared = prepare_turn(params, parse_betas([]), self._services, context)
            prepared = stage_turn_uploads(prepared, self._services)
            message = complete_turn(prepared, self._services)
        except APIError as error:
            return {"type": "errored", "error": error_envelope(error.error_type, error.message, request_id)}
        return {"type": "succeeded", "message": message.to_wire()}

    def _process(self, record: BatchRecord) -> None:
        if self._delay_s:
            self._closed.wait(self._delay_s)
        for number, item in enumerate(record.requests, start=1):
            if self._closed.is_set():
                return
            with self._store.lock:
                canceled = record.processing_status == "canceling"
            result = {"type": "canceled"} if canceled else self._run_one(dict(item["params"]), number)
            with self._store.lock:
                record.results[item["custom_id"]] = result
        with self._store.lock:
            record.processing_status = "ended"
            record.ended_at = self._services.clock.now()

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Block until every submitted batch has ended (for tests and for an orderly close)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(record.processing_status == "ended" for record in self._store.ordered()):
                return True
            time.sleep(0.01)
        return False

    def close(self) -> None:
        self._closed.set()
        self._executor.shutdown(wait=True, cancel_futures=True)
