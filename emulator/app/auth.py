"""API-key checks: `x-api-key` or `Authorization: Bearer` (what SDK 2.13 sends)."""

from __future__ import annotations

from starlette.datastructures import Headers

from emulator.errors import AuthenticationError


def presented_key(headers: Headers) -> str | None:
    key = headers.get("x-api-key")
    if key:
        return key
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def check_auth(headers: Headers, required_key: str | None) -> None:
    key = presented_key(headers)
    if key is None:
        raise AuthenticationError("x-api-key header is required")
    if required_key is not None and key != required_key:
        raise AuthenticationError("invalid x-api-key")
