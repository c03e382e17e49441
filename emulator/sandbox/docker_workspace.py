"""Where a Docker sandbox's files live: a loop-mounted ext4 image per sandbox, or named volumes as a fallback.

A real 5 GiB cap that is not charged to RAM needs its own filesystem: tmpfs counts against the memory cgroup
(a full workspace then OOM-kills instead of ENOSPC) and breaks the archive API, and `--storage-opt size` needs
overlay on xfs with pquota (see `../shared/sandbox-notes.md` §0). So, as root with loop devices and a local
engine, each sandbox gets a sparse ext4 image, mounted on the host and bind-mounted into the container:

    <state>/docker/workspaces/<token>.img      the filesystem image (sparse, grows with use)
    <state>/docker/workspaces/<token>/          its mount point, holding workspace/ and files/{input,output}

`/workspace` and `/files` inside are binds of the two subdirectories. The image persists across container
restarts and emulator restarts with the same state directory; `delete()` removes it.

Elsewhere (no root, no loop devices, or a remote engine whose host paths are not ours) each sandbox gets two
named volumes instead: persistent and RAM-independent, but without a size cap (the report warns).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INSIDE_UID = 1000
#: ext4 metadata (inode tables, journal) comes out of the image: this much extra keeps `df` at the limit
_EXT4_OVERHEAD = 0.03
_MIN_IMAGE_BYTES = 64 * 1024 * 1024


class WorkspaceError(RuntimeError):
    pass


def _run(argv: list[str], timeout: float = 60.0) -> None:
    try:
        r = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        raise WorkspaceError(f"{argv[0]}: {e}") from e
    if r.returncode != 0:
        detail = (r.stderr or r.stdout).decode("utf-8", "replace").strip()[-400:]
        raise WorkspaceError(f"`{' '.join(argv[:3])} ...` failed ({r.returncode}): {detail}")


def _is_mounted(path: Path) -> bool:
    target = str(path)
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            if len(fields) > 4 and fields[4].replace("\\040", " ") == target:
                return True
    except OSError:
        pass
    return False


def loop_supported() -> tuple[bool, str]:
    """(usable, why not): root, loop devices, mkfs.ext4 and mount present."""
    if os.geteuid() != 0:
        return False, "not root (loop mounts need root)"
    if not Path("/dev/loop-control").exists():
        return False, "no loop devices (/dev/loop-control missing)"
    for tool in ("mkfs.ext4", "mount", "umount"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return False, f"`{tool}` not found"
    return True, ""


@dataclass
class LoopWorkspace:
    """One sandbox's ext4 image and its host mount."""

    image: Path
    mountpoint: Path
    size_bytes: int

    kind = "loop"

    @classmethod
    def for_token(cls, root: Path, token: str, size_bytes: int) -> LoopWorkspace:
        return cls(root / f"{token}.img", root / token, size_bytes)

    def exists(self) -> bool:
        return self.image.exists()

    def ensure(self) -> None:
        """Create the filesystem if needed and mount it (idempotent)."""
        self.image.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.image.parent, 0o700)
        if not self.image.exists():
            fresh = self.image.with_suffix(".new")
            with open(fresh, "wb") as f:
                f.truncate(max(_MIN_IMAGE_BYTES, int(self.size_bytes * (1 + _EXT4_OVERHEAD))))
            _run(
                [
                    "mkfs.ext4",
                    "-q",
                    "-F",
                    "-m",
                    "0",
                    "-E",
                    f"lazy_itable_init=1,lazy_journal_init=1,root_owner={INSIDE_UID}:{INSIDE_UID}",
                    str(fresh),
                ]
            )
            os.replace(fresh, self.image)
        self.mountpoint.mkdir(exist_ok=True)
        if not _is_mounted(self.mountpoint):
            _run(["mount", "-o", "loop,nosuid,nodev", str(self.image), str(self.mountpoint)])
        for sub in ("workspace", "files", "files/input", "files/output"):
            d = self.mountpoint / sub
            if not d.is_dir():
                d.mkdir(parents=True, exist_ok=True)
                os.chown(d, INSIDE_UID, INSIDE_UID)
        os.chmod(self.mountpoint, 0o755)

    def binds(self) -> dict[str, dict[str, str]]:
        """docker-py `volumes=` entries (host path -> container path)."""
        return {
            str(self.mountpoint / "workspace"): {"bind": "/workspace", "mode": "rw"},
            str(self.mountpoint / "files"): {"bind": "/files", "mode": "rw"},
        }

    def release(self) -> None:
        """Unmount (the loop device is freed with it: `mount -o loop` sets autoclear); the image stays."""
        if _is_mounted(self.mountpoint):
            try:
                _run(["umount", str(self.mountpoint)])
            except WorkspaceError:
                _run(["umount", "-l", str(self.mountpoint)])

    def delete(self) -> None:
        self.release()
        with contextlib.suppress(OSError):
            self.mountpoint.rmdir()
        with contextlib.suppress(FileNotFoundError):
            self.image.unlink()

    def label(self) -> str:
        return str(self.mountpoint)


@dataclass
class VolumeWorkspace:
    """Two named volumes (`/workspace`, `/files`). The image's directories are copied into a fresh volume
    with their ownership, so uid 1000 can write. No size cap."""

    client: Any
    token: str
    labels: dict[str, str]

    kind = "volume"

    @property
    def names(self) -> tuple[str, str]:
        return (f"ce-{self.token}-workspace", f"ce-{self.token}-files")

    def exists(self) -> bool:
        import docker.errors

        try:
            self.client.volumes.get(self.names[0])
        except docker.errors.NotFound:
            return False
        return True

    def ensure(self) -> None:
        import docker.errors

        for name in self.names:
            try:
                self.client.volumes.get(name)
            except docker.errors.NotFound:
                self.client.volumes.create(name=name, labels=self.labels)

    def binds(self) -> dict[str, dict[str, str]]:
        return {
            self.names[0]: {"bind": "/workspace", "mode": "rw"},
            self.names[1]: {"bind": "/files", "mode": "rw"},
        }

    def release(self) -> None:
        """Volumes are not mounted on the host: nothing to do."""

    def delete(self) -> None:
        import docker.errors

        for name in self.names:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                self.client.volumes.get(name).remove(force=True)

    def label(self) -> str:
        return ",".join(self.names)


Workspace = LoopWorkspace | VolumeWorkspace


def unmount_stale(mountpoint: str) -> None:
    """Unmount a workspace a crashed run left mounted (best effort; the image file stays)."""
    path = Path(mountpoint)
    if _is_mounted(path):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30, check=False)
