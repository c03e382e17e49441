"""Four pytest-xdist workers run a slice of the suite at once, sharing nothing by accident, and leave no
sandbox processes, cgroups or state directories behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.slow
def test_four_workers_share_nothing_and_leave_nothing(tmp_path):
    pytest.importorskip("xdist", reason="pytest-xdist is part of the dev extra")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    cgroups_before = sandbox_cgroups()
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "4", "-q", "-p", "no:cacheprovider", "--no-cov", *SLICE],
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert " passed" in completed.stdout
    leftovers = [path.name for path in scratch.iterdir() if path.name.startswith("code-execution-emulator-")]
    assert leftovers == []
    assert processes_mentioning(str(scratch)) == []
    assert sandbox_cgroups() - cgroups_before == set()
