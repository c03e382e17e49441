"""The `/_emulator/` admin API: health, the request journal, reset, scripting, faults and the clock over
HTTP."""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from emulator.app.body import read_json
from emulator.app.errors import json_response
from emulator.engine.faults import fault_from_json, require_fidelity
from emulator.errors import InvalidRequestError, NotFoundError
from emulator.model.steps import Step, step_from_json
from emulator.runtime import Runtime
from emulator.state.clock import ManualClock
from emulator.wire.models import format_timestamp

ADMIN_BODY_LIMIT = 4 * 1024 * 1024


def _turns_from(body: Any) -> list[list[Step]]:
    if not isinstance(body, dict) or not isinstance(body.get("turns"), list):
        raise InvalidRequestError('turns: Field required (expected {"turns": [[step, ...], ...]})')
    turns: list[list[Step]] = []
    for turn_index, turn in enumerate(body["turns"]):
        if not isinstance(turn, list) or not turn:
            raise InvalidRequestError(f"turns.{turn_index}: Input should be a non-empty list of steps")
        steps: list[Step] = []
        for step_index, raw in enumerate(turn):
            try:
                steps.append(step_from_json(raw if isinstance(raw, dict) else {}))
            except ValueError as problem:
                raise InvalidRequestError(f"turns.{turn_index}.{step_index}: {problem}") from None
        turns.append(steps)
    return turns


def _advance_clock(runtime: Runtime, body: Any) -> dict[str, str]:
    """`POST /_emulator/clock {"seconds": N}`: move a manual clock forward (container and file expiry)."""
    clock = runtime.services.clock
    if not isinstance(clock, ManualClock):
        # moving the system clock is not ours to do, and a clock that jumped back would corrupt expiry
        raise InvalidRequestError(
            "clock: the emulator runs on the system clock; start it with a manual clock "
            "(`serve --manual-clock`, `Emulator(manual_clock=True)`) to move time"
        )
    seconds = body.get("seconds") if isinstance(body, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds < math.inf:
        raise InvalidRequestError("seconds: Input should be a finite number greater than or equal to 0")
    try:
        now = clock.advance(seconds)
    except OverflowError:
        raise InvalidRequestError("seconds: moves the clock past the year 9999") from None
    return {"now": format_timestamp(now)}


async def admin(request: Request, runtime: Runtime, request_id: str) -> Response:
    action = request.path_params["action"]
    method = request.method
    services = runtime.services
    if action == "health" and method == "GET":
        report = services.backend.report()
        return json_response(
            {
                "status": "ok",
                "backend": report.backend,
                "isolation": {check.name: check.in_effect for check in report.checks},
                "warnings": list(report.warnings),
            },
            request_id=request_id,
        )
    if action == "requests" and method == "GET":
        return json_response(
            {"data": [e.as_dict() for e in runtime.journal.entries()]}, request_id=request_id
        )
    if action == "reset" and method == "POST":
        runtime.reset()
        return json_response({"status": "reset"}, request_id=request_id)
    if action == "script":
        if method == "POST":
            turns = _turns_from(await read_json(request, ADMIN_BODY_LIMIT))
            for turn in turns:
                services.script.add_turn(turn)
            return json_response({"pending": services.script.pending()}, request_id=request_id)
        if method == "GET":
            return json_response({"pending": services.script.pending()}, request_id=request_id)
        if method == "DELETE":
            services.script.clear()
            return json_response({"pending": 0}, request_id=request_id)
    if action == "faults":
        if method == "POST":
            raw = await read_json(request, ADMIN_BODY_LIMIT)
            items = raw.get("faults") if isinstance(raw, dict) and "faults" in raw else [raw]
            try:
                faults = [fault_from_json(item if isinstance(item, dict) else {}) for item in items]
                for fault in faults:
                    require_fidelity(fault, services.fidelity.documented_2025_codes)
            except ValueError as problem:
                raise InvalidRequestError(f"faults: {problem}") from None
            for fault in faults:
                services.faults.add(fault)
        elif method == "DELETE":
            services.faults.clear()
        return json_response({"data": [f.as_dict() for f in services.faults.armed()]}, request_id=request_id)
    if action == "clock" and method == "POST":
        body = await read_json(request, ADMIN_BODY_LIMIT)
        return json_response(_advance_clock(runtime, body), request_id=request_id)
    if action == "usage" and method == "GET":
        ledger = runtime.usage
        per_container = {
            key: {"executed_s": usage.executed_s, "calls": usage.calls}
            for key, usage in ledger.per_container().items()
        }
        return json_response(
            {**ledger.summary().as_dict(), "per_container": per_container}, request_id=request_id
        )
    if action == "containers" and method == "GET":
        records = [
            {"id": r.id, "created_at": r.created_at.isoformat(), "expires_at": r.expires_at.isoformat()}
            for r in services.containers.all()
        ]
        return json_response({"data": records}, request_id=request_id)
    raise NotFoundError(f"No admin endpoint {method} /_emulator/{action}")
