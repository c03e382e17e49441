"""Container lifecycle: a crashed run's containers (and workspace mounts) are collected at the next start;
closing keeps files, destroying removes them; a container that dies is replaced over the same files."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from emulator.sandbox import Limits, make_backend
from emulator.sandbox.docker_workspace import _is_mounted

pytestmark = pytest.mark.docker

CRASHING_RUN = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from emulator.sandbox import Limits, make_backend
    backend = make_backend("docker", Path(sys.argv[1]), Limits(), pool_size=0, selfcheck=False)
    box = backend.open("crashed")
    box.run_command("echo left behind > /workspace/f")
    print(box.engine_container, box.workspace.label(), flush=True)
    os._exit(0)  # no close(): the container and its mount stay behind
    """
)


def test_crashed_run_leftovers_are_collected_at_next_start(sandbox_image, docker_client, tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", CRASHING_RUN, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    container, mountpoint = out.stdout.split()
    assert docker_client.containers.get(container).status == "running"
    assert _is_mounted(Path(mountpoint))
    backend = make_backend("docker", tmp_path, Limits(), pool_size=0, selfcheck=False)
    try:
        backend.ready()
        ids = [c.id for c in docker_client.containers.list(all=True)]
        assert container not in ids
        assert not _is_mounted(Path(mountpoint))
        # the files are still there: the same state dir and container id re-attach them
        box = backend.open("crashed")
        assert box.run_command("cat /workspace/f").stdout == "left behind\n"
    finally:
        backend.close()


def test_stop_keeps_files_destroy_removes_them(sandbox_image, docker_client, tmp_path):
    backend = make_backend("docker", tmp_path, Limits(), pool_size=0, selfcheck=False)
    try:
        box = backend.open("keep")
        box.run_command("echo kept > f; echo gone > /tmp/t")
        first = box.engine_container
        box.stop()
        assert first not in [c.id for c in docker_client.containers.list(all=True)]
        assert box.run_command("cat f; cat /tmp/t 2>&1 | head -c 20").stdout.startswith("kept\n")
        workspace = box.workspace
        box.destroy()
        assert not workspace.exists()
    finally:
        backend.close()
    assert not [
        c for c in docker_client.containers.list(all=True) if c.labels.get("ce.state_dir") == str(tmp_path)
    ]


def test_dead_container_is_replaced_over_the_same_files(sandbox_image, docker_client, tmp_path):
    backend = make_backend("docker", tmp_path, Limits(), pool_size=0, selfcheck=False)
    try:
        box = backend.open("revive")
        box.run_command("echo survives > f")
        docker_client.containers.get(box.engine_container).kill()
        # noticed before the next call runs, which then runs in a new container over the same files
        result = box.run_command("cat f")
        assert (result.stdout, result.return_code) == ("survives\n", 0)
        assert box.engine_container is not None
    finally:
        backend.close()
