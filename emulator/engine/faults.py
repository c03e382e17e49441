"""Faults injected on demand: tool error codes, HTTP errors, stream failures and stop reasons.

A fault has a kind, a target (tool, endpoint, request number, a substring of the request body) and a count
("the next N that match"). Faults are consulted at exactly two places: where a tool step would run (the
engine) and where a response would be written (the HTTP edge), never sprinkled through handlers.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from emulator.errors import ERROR_TYPE_BY_STATUS

FaultKind = Literal["tool_error", "http_error", "stream_error", "stream_drop", "stall", "stop_reason"]

#: error codes each tool's error object allows (current API), and the ones only the 2025 docs list
TOOL_ERROR_CODES: dict[str, frozenset[str]] = {
    "bash_code_execution": frozenset(
        {
            "invalid_tool_input",
            "unavailable",
            "too_many_requests",
            "execution_time_exceeded",
            "output_file_too_large",
        }
    ),
    "text_editor_code_execution": frozenset(
        {
            "invalid_tool_input",
            "unavailable",
            "too_many_requests",
            "execution_time_exceeded",
            "file_not_found",
        }
    ),
    "code_execution": frozenset(
        {"invalid_tool_input", "unavailable", "too_many_requests", "execution_time_exceeded"}
    ),
}
DOCUMENTED_2025_CODES: dict[str, frozenset[str]] = {
    "bash_code_execution": frozenset({"container_expired"}),
    "text_editor_code_execution": frozenset({"container_expired", "string_not_found"}),
    "code_execution": frozenset({"container_expired"}),
}
DEFAULT_HTTP_MESSAGES: dict[int, str] = {
    400: "Invalid request",
    401: "invalid x-api-key",
    402: "Your credit balance is too low to access the Anthropic API.",
    403: "Your API key does not have permission to use the specified resource.",
    404: "The requested resource could not be found.",
    413: "Request exceeds the maximum allowed number of bytes.",
    429: "Number of request tokens has exceeded your per-minute rate limit",
    500: "Internal server error",
    504: "Request timed out",
    529: "Overloaded",
}
RETRYABLE = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
#: the SDK waits `retry-after-ms` when it is above 0 and falls back to its own 0.5-8 s backoff otherwise, so
#: the default is the smallest wait it honours: tests that retry stay fast
DEFAULT_RETRY_AFTER_S = 0.001
#: where faults are consulted: the routes that answer through the fault hook, and `/v1/messages/batches`
#: (the requests a batch runs; tool and stop-reason faults only)
FAULT_ENDPOINTS = (
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/messages/batches",
    "/v1/files",
    "/v1/files/{file_id}",
    "/v1/files/{file_id}/content",
)


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    #: how many matching occasions this fault fires on (None: every one)
    count: int | None = 1
    # --- targets (all optional; a fault with none matches everything of its kind) ---
    tool: str | None = None
    endpoint: str | None = None
    request_number: int | None = None
    match: str | None = None
    # --- payloads ---
    error_code: str | None = None
    error_message: str | None = None
    status: int | None = None
    error_type: str | None = None
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    retry_after_s: float | None = DEFAULT_RETRY_AFTER_S
    should_retry: bool | None = None
    after_events: int = 0
    delay_s: float = 0.0
    between_events: bool = False
    stop_reason: str | None = None
    after_tool_calls: int | None = None

    def as_dict(self) -> dict[str, Any]:
        shown = {key: value for key, value in self.__dict__.items() if value not in (None, {}, False)}
        if self.kind != "http_error":
            shown.pop("retry_after_s", None)  # a default only HTTP errors use
        return shown


@dataclass(frozen=True)
class FaultContext:
    """Where a fault could fire: the request (number, endpoint, body) and, for tool faults, the tool."""

    request_number: int
    endpoint: str
    #: the request body (parsed JSON, or text); turned into text only for a fault that has a `match`
    body: Any
    tool: str | None = None

    @property
    def body_text(self) -> str:
        return self.body if isinstance(self.body, str) else body_text(self.body)


def _matches(fault: Fault, context: FaultContext) -> bool:
    if fault.tool is not None and fault.tool != context.tool:
        return False
    if fault.endpoint is not None and fault.endpoint != context.endpoint:
        return False
    if fault.request_number is not None and fault.request_number != context.request_number:
        return False
    if fault.kind == "tool_error" and context.tool is not None:
        allowed = TOOL_ERROR_CODES.get(context.tool, frozenset()) | DOCUMENTED_2025_CODES.get(
            context.tool, frozenset()
        )
        if fault.error_code not in allowed:
            return False
    return fault.match is None or fault.match in context.body_text


class FaultPlan:
    """The faults armed on one emulator; thread-safe; each firing uses up one of a fault's count."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        validate_fault(fault)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(
        self, kind: FaultKind, context: FaultContext, where: Callable[[Fault], bool] | None = None
    ) -> Fault | None:
        """Use up the first armed fault of `kind` matching `context` (and `where`, when given)."""
        with self._lock:
            for position, fault in enumerate(self._faults):
                if fault.kind != kind or not _matches(fault, context):
                    continue
                if where is not None and not where(fault):
                    continue
                if fault.count is not None:
                    remaining = fault.count - 1
                    if remaining <= 0:
                        del self._faults[position]
                    else:
                        self._faults[position] = replace(fault, count=remaining)
                return fault
        return None

    def armed(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


def validate_fault(fault: Fault) -> None:
    """Reject faults that could never fire or would produce something the API never sends."""
    if fault.count is not None and fault.count < 1:
        raise ValueError("count must be at least 1 (or None for every occasion)")
    waits: dict[str, object] = {"delay_s": fault.delay_s}
    if fault.retry_after_s is not None:
        waits["retry_after_s"] = fault.retry_after_s
    for name, seconds in waits.items():
        # (admin JSON may carry anything, NaN included: caught here rather than as a 500 when the fault fires)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds < math.inf:
            raise ValueError(f"{name} must be a number of seconds, at least 0")
    if fault.endpoint is not None and fault.endpoint not in FAULT_ENDPOINTS:
        known = ", ".join(FAULT_ENDPOINTS)
        raise ValueError(f"endpoint {fault.endpoint!r} is not one of the emulator's endpoints: {known}")
    if fault.kind == "tool_error":
        if not fault.error_code:
            raise ValueError("a tool_error fault needs error_code")
        tools = [fault.tool] if fault.tool else list(TOOL_ERROR_CODES)
        for tool in tools:
            if tool not in TOOL_ERROR_CODES:
                raise ValueError(f"unknown tool {tool!r}; expected one of {', '.join(TOOL_ERROR_CODES)}")
        allowed = set().union(*(TOOL_ERROR_CODES[t] | DOCUMENTED_2025_CODES[t] for t in tools))
        if fault.error_code not in allowed:
            raise ValueError(f"error_code {fault.error_code!r} is not defined for {', '.join(tools)}")
    if fault.kind == "http_error" and (fault.status is None or not 400 <= fault.status <= 599):
        raise ValueError("an http_error fault needs a 4xx or 5xx status")
    if fault.kind == "stop_reason" and not fault.stop_reason:
        raise ValueError("a stop_reason fault needs stop_reason")


LEGACY_ONLY_CODES = frozenset().union(*DOCUMENTED_2025_CODES.values())


def require_fidelity(fault: Fault, documented_2025_codes: bool) -> None:
    """Codes only the 2025 docs list are reachable only under the documented-2025 fidelity profile."""
    if fault.error_code in LEGACY_ONLY_CODES and not documented_2025_codes:
        raise ValueError(
            f"error code {fault.error_code!r} exists only in the 2025 docs; "
            "use the documented-2025 fidelity profile to inject it"
        )


def http_error_parts(fault: Fault) -> tuple[int, str, str, dict[str, str]]:
    """Status, error type, message and headers for an injected HTTP error (retry headers kept tiny)."""
    status = int(fault.status or 500)
    error_type = fault.error_type or ERROR_TYPE_BY_STATUS.get(status, "api_error")
    message = fault.message or DEFAULT_HTTP_MESSAGES.get(status, "Error")
    headers: dict[str, str] = {}
    if fault.retry_after_s is not None and (status in RETRYABLE):
        # Seconds (the SDKs honour non-integer values) and milliseconds (which the SDK reads first); a
        # positive wait is never rounded down to 0, which the SDK takes as "use your own 0.5-8 s backoff".
        wait_ms = fault.retry_after_s * 1000
        headers["retry-after"] = f"{fault.retry_after_s:g}"
        headers["retry-after-ms"] = f"{max(1, round(wait_ms)) if wait_ms > 0 else 0}"
    if fault.should_retry is not None:
        headers["x-should-retry"] = "true" if fault.should_retry else "false"
    if status == 429:
        headers.update(
            {
                "anthropic-ratelimit-requests-limit": "50",
                "anthropic-ratelimit-requests-remaining": "0",
                "anthropic-ratelimit-requests-reset": "1970-01-01T00:00:00Z",
                "anthropic-ratelimit-tokens-limit": "40000",
                "anthropic-ratelimit-tokens-remaining": "0",
                "anthropic-ratelimit-tokens-reset": "1970-01-01T00:00:00Z",
            }
        )
    headers.update(fault.headers)
    return status, error_type, message, headers


def fault_from_json(data: dict[str, Any]) -> Fault:
    """Build a fault from its JSON form (the admin API), e.g. `{"kind": "http_error", "status": 529}`."""
    known = set(Fault.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown fault field(s): {', '.join(unknown)}")
    if "kind" not in data:
        raise ValueError("kind: Field required")
    try:
        fault = Fault(**data)
    except TypeError as problem:
        raise ValueError(str(problem)) from None
    validate_fault(fault)
    return fault


def body_text(body: Any) -> str:
    try:
        return json.dumps(body, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return str(body)


# --- constructors for the public API ----------------------------------------------------------------------


def tool_error(
    error_code: str,
    *,
    tool: str | None = None,
    count: int | None = 1,
    error_message: str | None = None,
    match: str | None = None,
    request_number: int | None = None,
) -> Fault:
    """The next `count` matching tool calls return this error code instead of running."""
    return Fault(
        "tool_error",
        count=count,
        tool=tool,
        error_code=error_code,
        error_message=error_message,
        match=match,
        request_number=request_number,
    )


def http_error(
    status: int,
    *,
    count: int | None = 1,
    error_type: str | None = None,
    message: str | None = None,
    endpoint: str | None = None,
    retry_after_s: float | None = DEFAULT_RETRY_AFTER_S,
    should_retry: bool | None = None,
    headers: dict[str, str] | None = None,
    match: str | None = None,
    request_number: int | None = None,
) -> Fault:
    """The next `count` matching requests fail with this HTTP status in the API's error envelope.

    Retryable statuses carry `retry-after` / `retry-after-ms` of `retry_after_s` (default 1 ms, so the SDK
    retries at once; 0 lets the SDK use its own 0.5-8 s backoff; None sends neither header)."""
    return Fault(
        "http_error",
        count=count,
        status=status,
        error_type=error_type,
        message=message,
        endpoint=endpoint,
        retry_after_s=retry_after_s,
        should_retry=should_retry,
        headers=dict(headers or {}),
        match=match,
        request_number=request_number,
    )


def stream_error(
    *,
    after_events: int = 1,
    error_type: str = "overloaded_error",
    message: str = "Overloaded",
    count: int | None = 1,
) -> Fault:
    """An `event: error` after `after_events` events of the next streamed response (HTTP status stays 200)."""
    return Fault(
        "stream_error", count=count, after_events=after_events, error_type=error_type, message=message
    )


def drop_connection(*, after_events: int = 1, count: int | None = 1) -> Fault:
    """Cut the connection after `after_events` events of the next streamed response."""
    return Fault("stream_drop", count=count, after_events=after_events)


def stall(
    seconds: float, *, between_events: bool = False, count: int | None = 1, endpoint: str | None = None
) -> Fault:
    """Wait before the first byte (or, with `between_events`, before every SSE event) of the next response."""
    return Fault("stall", count=count, delay_s=seconds, between_events=between_events, endpoint=endpoint)


def force_stop(
    reason: str, *, after_tool_calls: int = 0, count: int | None = 1, match: str | None = None
) -> Fault:
    """End the next turn with this stop reason once `after_tool_calls` tool calls ran (`pause_turn`: the next
    tool call is emitted without its result, and the continuation runs it)."""
    return Fault(
        "stop_reason", count=count, stop_reason=reason, after_tool_calls=after_tool_calls, match=match
    )
