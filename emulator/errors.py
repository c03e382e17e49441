"""API-level errors, raised anywhere below the HTTP edge and turned into the API's error envelope by `app/`.

This module imports nothing from the rest of the package so every layer may raise these.
"""

from __future__ import annotations


class APIError(Exception):
    """An error the real API answers with `{"type":"error","error":{"type":..., "message":...}}`."""

    status: int = 500
    error_type: str = "api_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if error_type is not None:
            self.error_type = error_type
        self.headers: dict[str, str] = dict(headers or {})
        self.details = details


class InvalidRequestError(APIError):
    status = 400
    error_type = "invalid_request_error"


class AuthenticationError(APIError):
    status = 401
    error_type = "authentication_error"


class PermissionDeniedError(APIError):
    status = 403
    error_type = "permission_error"


class NotFoundError(APIError):
    status = 404
    error_type = "not_found_error"


class RequestTooLargeError(APIError):
    status = 413
    error_type = "request_too_large"


#: The API's error `type` for each HTTP status it documents (used by fault injection and the error builder).
ERROR_TYPE_BY_STATUS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
