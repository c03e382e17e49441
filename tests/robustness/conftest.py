"""Fixtures of the hostile battery: one emulator per backend, the Docker one behind the Docker tier's checks.

The Docker engine and image checks are the Docker tier's own fixtures (skip naming what is missing locally,
fail under CI), imported rather than copied so both tiers agree on what a missing engine means.
"""

from __future__ import annotations

from typing import Any

import pytest

from emulator import Emulator
from tests.docker.conftest import docker_client, sandbox_image  # noqa: F401  (fixtures, used by name)

MiB = 1024 * 1024

#: small /tmp and file-size caps so the fill probes finish in a second, well below the 5 GiB disk; a 512 MiB
#: workspace (Docker's loop image: ~34k inodes) so the inode probe reaches ENOSPC in seconds. Below ~512 MiB
#: mkfs.ext4 picks its "small" profile, whose metadata overhead makes the report's quota check say NO.
BATTERY_LIMITS: dict[str, Any] = {
    "timeout_s": 30,
    "tmp_bytes": 16 * MiB,
    "file_size_bytes": 4 * MiB,
    "disk_bytes": 512 * MiB,
}

BACKENDS = ["local", pytest.param("docker", marks=pytest.mark.docker)]


@pytest.fixture(scope="module", params=BACKENDS)
def battery_emulator(request, tmp_path_factory):
    """An emulator of each backend with `BATTERY_LIMITS` (the Docker one needs the engine and the image)."""
    backend = request.param
    if backend == "docker":
        request.getfixturevalue("sandbox_image")
    state = tmp_path_factory.mktemp(f"battery-{backend}")
    with Emulator(backend=backend, state_dir=state, limits=BATTERY_LIMITS) as emulator:
        yield emulator
