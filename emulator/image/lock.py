"""Regenerate the image's lock files: `python -m emulator.image.lock`.

Resolves `requirements.in` (and pycairo's build backend) with pip's `--dry-run --report` and writes every
distribution pinned with the sha256 of the file pip chose. Run it on the image's platform (Debian bookworm,
CPython 3.11, x86_64) with cairo's headers installed (`apt-get install libcairo2-dev pkg-config`): pycairo has
no wheel, so pip builds its metadata. A new lock changes the recipe hash, hence the image tag.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from .progress import clean_env, host_ca_bundle
from .recipe import RECIPE_DIR

HEADERS = {
    "requirements.lock": (
        "# The sandbox image's Python libraries, pinned with hashes (resolved for CPython 3.11 on Debian "
        "bookworm x86_64).\n"
        "# Regenerate with `python -m emulator.image.lock` (see docs/docker.md); any change here changes the "
        "image tag.\n"
        "# pycairo has no wheel on PyPI: its sdist is built once per recipe (see build-requirements.lock).\n"
    ),
    "build-requirements.lock": (
        "# Build backend of pycairo's sdist (pip builds it offline from these wheels). "
        "Part of the recipe hash.\n"
    ),
}


def resolve(requirements: list[str], scratch: Path) -> list[tuple[str, str, str]]:
    """(name, version, sha256) of everything pip would install for `requirements`."""
    report = scratch / "report.json"
    env = clean_env(PIP_CONFIG_FILE="/dev/null", HOME=str(scratch))
    ca = host_ca_bundle()
    if ca:
        env["PIP_CERT"] = ca
    argv = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--ignore-installed",
        "--report",
        str(report),
    ]
    subprocess.run([*argv, *requirements], env=env, check=True, stdout=subprocess.DEVNULL)
    rows = []
    for item in json.loads(report.read_text())["install"]:
        meta = item["metadata"]
        sha = item["download_info"]["archive_info"]["hashes"]["sha256"]
        rows.append((meta["name"].lower().replace("_", "-"), meta["version"], sha))
    return sorted(rows)


def write_lock(path: Path, rows: list[tuple[str, str, str]]) -> None:
    body = "".join(f"{name}=={version} \\\n    --hash=sha256:{sha}\n" for name, version, sha in rows)
    path.write_text(HEADERS[path.name] + body)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="ce-image-lock-") as tmp:
        scratch = Path(tmp)
        write_lock(
            RECIPE_DIR / "requirements.lock", resolve(["-r", str(RECIPE_DIR / "requirements.in")], scratch)
        )
        write_lock(RECIPE_DIR / "build-requirements.lock", resolve(["meson-python", "meson"], scratch))
    print(f"wrote {RECIPE_DIR / 'requirements.lock'} and {RECIPE_DIR / 'build-requirements.lock'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
