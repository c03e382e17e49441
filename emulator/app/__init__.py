"""The HTTP edge: ASGI routes for the Messages API and the `/_emulator/` admin API."""

from emulator.app.asgi import build_app

__all__ = ["build_app"]
