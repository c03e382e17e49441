"""Four pytest-xdist workers run a slice of the suite at once, sharing nothing by accident, and leave no
sandbox processes, cgroups or state directories behind; with a Docker file in the slice, no container, volume,
workspace mount or loop device of the run either."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emulator.sandbox.docker_backend import LABEL
from emulator.sandbox.isolation import detect_cgroups

REPO = Path(__file__).resolve().parents[2]
SLICE = [
    "tests/integration/test_sdk_tools.py",
    "tests/integration/test_builtin_model.py",
    "tests/integration/test_containers.py",
    "tests/integration/test_pause_turn.py",
]


def sandbox_cgroups() -> set[Path]:
    layout = detect_cgroups()
    return {child for base in layout.bases.values() for child in base.glob("ce-sandbox-*")}


def orphaned(cgroups: set[Path]) -> set[Path]:
    """The groups whose emulator process (`ce-sandbox-<pid>-<n>`) has ended: left behind. Groups of live
    processes belong to emulators still running, e.g. the other tests of an outer xdist run."""
    left = set()
    for group in cgroups:
        owner = group.name.split("-")[2]
        if not owner.isdigit() or not Path(f"/proc/{owner}").exists():
            left.add(group)
    return left


def processes_mentioning(needle: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


#: the Docker variant's slice: two local files and a Docker file whose tests share a module-scoped emulator
#: (with its warm pool) per worker, so several Docker emulators run at once
DOCKER_SLICE = [
    "tests/integration/test_sdk_tools.py",
    "tests/integration/test_containers.py",
    "tests/docker/test_docker_tools.py",
]


def run_slice(tmp_path: Path, files: list[str]) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Run `files` with four xdist workers, every temporary path under a scratch TMPDIR of this test."""
    pytest.importorskip("xdist", reason="pytest-xdist is part of the dev extra")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "4", "-q", "-p", "no:cacheprovider", "--no-cov", *files],
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert " passed" in completed.stdout
    return scratch, completed


def assert_no_local_leftovers(scratch: Path, cgroups_before: set[Path]) -> None:
    leftovers = [path.name for path in scratch.iterdir() if path.name.startswith("code-execution-emulator-")]
    assert leftovers == []
    assert processes_mentioning(str(scratch)) == []
    assert orphaned(sandbox_cgroups() - cgroups_before) == set()


def docker_leftovers(docker_client, scratch: Path) -> dict[str, list[str]]:
    """The run's containers and volumes (labelled with a state directory under `scratch`), its mounts and
    its loop devices (backing files under `scratch`)."""
    under = str(scratch.resolve())

    def ours(labels: dict[str, str] | None) -> bool:
        labels = labels or {}
        return any(labels.get(key, "").startswith(under) for key in ("ce.state_dir", "ce.workspace"))

    containers = docker_client.api.containers(all=True, filters={"label": f"{LABEL}=1"})
    volumes = docker_client.api.volumes(filters={"label": f"{LABEL}=1"}).get("Volumes") or []
    mounts = [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4].startswith(under)
    ]
    return {
        "containers": [c["Id"][:12] for c in containers if ours(c.get("Labels"))],
        "volumes": [v["Name"] for v in volumes if ours(v.get("Labels"))],
        "mounts": mounts,
        "loop devices": [name for name, backing in loop_devices().items() if backing.startswith(under)],
    }


def loop_devices() -> dict[str, str]:
    """{loop device: its backing file}, read from sysfs (`losetup -J` can print a half-written table while
    other tests attach and detach devices)."""
    devices = {}
    for backing_file in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            devices[backing_file.parent.parent.name] = backing_file.read_text().strip()
        except OSError:  # detached between the glob and the read
            continue
    return devices


@pytest.mark.slow
def test_four_workers_share_nothing_and_leave_nothing(tmp_path):
    cgroups_before = sandbox_cgroups()
    scratch, _ = run_slice(tmp_path, SLICE)
    assert_no_local_leftovers(scratch, cgroups_before)


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.timeout(660)
def test_four_workers_with_docker_leave_no_container_or_loop_device(docker_client, sandbox_image, tmp_path):
    cgroups_before = sandbox_cgroups()
    scratch, completed = run_slice(tmp_path, DOCKER_SLICE)
    assert "skipped" not in completed.stdout.splitlines()[-1]  # the Docker tests really ran
    assert_no_local_leftovers(scratch, cgroups_before)
    # a loop device detaches (autoclear) asynchronously after its unmount: allow it a few seconds
    deadline = time.monotonic() + 10
    while (left := docker_leftovers(docker_client, scratch)) != {
        "containers": [],
        "volumes": [],
        "mounts": [],
        "loop devices": [],
    } and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == {"containers": [], "volumes": [], "mounts": [], "loop devices": []}
