"""The sandbox image's recipe: which files define it, its hash, and the tag an image of it carries.

The tag is a hash of every file of the recipe (plus `RECIPE_VERSION` for changes to the builders' logic), so
an unchanged recipe names an image that already exists and is never rebuilt, and any change names a new one.
Both ways of building (offline, or the `Dockerfile` against a registry) produce the same tag: they are two
routes to one documented environment, told apart by the image's `ce.image.variant` label.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

#: bump when the builders' logic changes what an image contains without any recipe file changing
RECIPE_VERSION = "1"
REPOSITORY = "code-execution-emulator-sandbox"
RECIPE_DIR = Path(__file__).resolve().parent
RECIPE_FILES = (
    "Dockerfile",
    "debian-packages.txt",
    "requirements.lock",
    "build-requirements.lock",
    "finalize.sh",
)
#: the registry base of the `Dockerfile` (the documented Python patch version)
REGISTRY_BASE = "python:3.11.12-slim-bookworm"
#: what the offline route is built from
DEBIAN_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
#: the in-image Python environment of the offline route (the registry route installs into the base's Python)
VENV = "/opt/venv"
IMAGE_PATH = "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LABEL_RECIPE = "ce.image.recipe"
LABEL_VARIANT = "ce.image.variant"
#: distributions built from source (no wheel on PyPI) by the offline route
SOURCE_BUILT = ("pycairo",)


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    sha256: str


def recipe_hash(recipe_dir: Path = RECIPE_DIR) -> str:
    """sha256 over the recipe files' names and contents (and `RECIPE_VERSION`), hex."""
    h = hashlib.sha256(f"recipe-version {RECIPE_VERSION}\n".encode())
    for name in RECIPE_FILES:
        data = (recipe_dir / name).read_bytes()
        h.update(f"{name} {len(data)}\n".encode())
        h.update(data)
    return h.hexdigest()


def image_tag(recipe_dir: Path = RECIPE_DIR) -> str:
    """`code-execution-emulator-sandbox:<first 16 hex of the recipe hash>`."""
    return f"{REPOSITORY}:{recipe_hash(recipe_dir)[:16]}"


def read_lock(path: Path) -> list[Pin]:
    """The `name==version --hash=sha256:...` entries of a pip lock file (continuation lines joined)."""
    text = path.read_text().replace("\\\n", " ")
    pins = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *opts = line.split()
        name, _, version = spec.partition("==")
        hashes = [o.split("sha256:", 1)[1] for o in opts if o.startswith("--hash=sha256:")]
        if not version or not hashes:
            raise ValueError(f"{path.name}: not pinned with a hash: {line!r}")
        pins.append(Pin(name, version, hashes[0]))
    return pins


def debian_packages(recipe_dir: Path = RECIPE_DIR) -> list[str]:
    lines = (recipe_dir / "debian-packages.txt").read_text().splitlines()
    return [x.strip() for x in lines if x.strip() and not x.lstrip().startswith("#")]


def locked_versions(recipe_dir: Path = RECIPE_DIR) -> dict[str, str]:
    """distribution name -> the version the lock file pins."""
    return {p.name: p.version for p in read_lock(recipe_dir / "requirements.lock")}
