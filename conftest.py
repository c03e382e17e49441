"""Project-wide test fixtures. The emulator's own fixtures come from its pytest plugin (`emulator.plugin`)."""

from __future__ import annotations

import os
from pathlib import Path

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
