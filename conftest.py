"""Project-wide test fixtures. The emulator's own fixtures come from its pytest plugin (`emulator.plugin`)."""

from __future__ import annotations

import os
from pathlib import Path

# httpcore2 and httpx2's transport are imported here, before any test runs, so that they stay imported:
# pytester's in-process runs remove the modules first imported inside them, and an `httpcore2` imported
# twice gives two sets of exception classes, after which httpx2 no longer maps the transport's errors (a
# dropped connection then escapes as a raw `httpcore2.RemoteProtocolError`, depending on test order).
import httpcore2  # noqa: F401
import httpx2._transports.default  # noqa: F401
import pytest

REPO_ROOT = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def real_api_dir() -> Path:
    """The recorded real-API corpus (`../shared/real-api`, or `$CE_REAL_API_DIR`)."""
    configured = os.environ.get("CE_REAL_API_DIR")
    path = Path(configured) if configured else REPO_ROOT.parent / "shared" / "real-api"
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"real-api corpus not found at {path} (CI must provide ../shared)")
        pytest.skip(f"real-api corpus not found at {path}")
    return path
