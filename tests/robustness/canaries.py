"""Host canaries for the "no host secrets" probes: planted before an emulator starts, searched for inside.

`plant_host_canaries` puts one random token in the emulator process's environment and in two host files
(`/tmp/ce-host-canary-<random>`, world-readable in the world-writable /tmp, and one under `/root`). The
search script runs inside a sandbox and reports, per channel, how many times the token shows up; it never
spells the token (nor the files' names) in one piece, because the agent may keep the script in a file of the
sandbox that a `grep -r` would find.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ENV_NAME = "CE_HOST_CANARY"
PREFIX = "ce-host-canary-"


@dataclass(frozen=True)
class Canaries:
    token: str
    files: tuple[Path, ...]

    def search_script(self) -> str:
        """A bash script printing `<channel> <count>` lines (`files` lists paths instead).

        As a positive control it first writes the token to `/tmp/ce-control` inside the sandbox, so `files`
        must list exactly that file: the walk reached and read the sandbox's tree.
        """
        half = len(self.token) // 2
        head, tail = self.token[:half], self.token[half:]
        cut = len(PREFIX) + 3
        stems = " ".join(str(path.parent / path.name[:cut]) for path in self.files)
        rests = " ".join(path.name[cut:] for path in self.files)
        return (
            f"a={head}; b={tail}; t=$a$b\n"
            "printf '%s\\n' \"$t\" > /tmp/ce-control\n"
            'echo "env $(env | grep -c "$t")"\n'
            "echo \"environ $(cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c \"$t\")\"\n"
            # every readable text file of the sandbox's tree (the kernel's pseudo trees aside)
            'echo "files $(grep -rlsI --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev "$t" / | '
            "tr '\\n' ,)\"\n"
            "echo \"names $(find / \\( -path /proc -o -path /sys \\) -prune -o -name 'ce-host-canary-*' "
            '-print 2>/dev/null | wc -l)"\n'
            f"set -- {rests}; n=0\n"
            f'for s in {stems}; do cat "$s$1" 2>/dev/null | grep -q "$t" && n=$((n+1)); shift; done\n'
            'echo "direct $n"\n'
            "rm -f /tmp/ce-control\n"
        )


def report(stdout: str) -> dict[str, str]:
    """The search script's report as {channel: value}."""
    return dict(line.split(" ", 1) for line in stdout.splitlines())


CLEAN = {"env": "0", "environ": "0", "files": "/tmp/ce-control,", "names": "0", "direct": "0"}


@contextmanager
def plant_host_canaries(monkeypatch: pytest.MonkeyPatch) -> Iterator[Canaries]:
    """Plant the canaries (call this before the Emulator is created); removed again on exit."""
    token = secrets.token_hex(16)
    files = (Path("/tmp", PREFIX + secrets.token_hex(6)), Path("/root", PREFIX + secrets.token_hex(6)))
    assert os.access("/root", os.W_OK), "the canary under /root needs the tests to run as root"
    monkeypatch.setenv(ENV_NAME, token)
    assert os.environ[ENV_NAME] == token
    try:
        for path in files:
            path.write_text(f"host secret {token}\n")
            path.chmod(0o644)
        yield Canaries(token, files)
    finally:
        for path in files:
            path.unlink(missing_ok=True)
