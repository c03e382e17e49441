"""Sandboxes: where tool calls really run. `make_backend` picks a backend by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import (
    INPUT_DIR,
    OUTPUT_DIR_PARENT,
    WORKDIR,
    CommandResult,
    CreateResult,
    FileErrorCode,
    FileOpError,
    FileOpResult,
    IsolationCheck,
    IsolationReport,
    Limits,
    OutputFile,
    Sandbox,
    SandboxBackend,
    SandboxBusy,
    SandboxUnavailable,
    StrReplaceResult,
    ViewResult,
)
from .local import LocalBackend, LocalSandbox

BACKENDS = ("local", "docker")


def make_backend(name: str, state_dir: Path, limits: Limits, **options: Any) -> SandboxBackend:
    """Build the sandbox backend called `name` ("local" or "docker").

    `options` go to the backend's constructor (for "local": `isolation`, `sandbox_uid`, `bwrap`,
    `sandbox_python`, `selfcheck`; for "docker": `image`, `pool_size`, `strict`, `selfcheck`, `workspace`,
    `cpuset`, `client`, and `isolation`, which it ignores).
    """
    if name == "local":
        return LocalBackend(Path(state_dir), limits, **options)
    if name == "docker":
        # imported here: docker-py is only needed by those who pick this backend
        from .docker_backend import DockerBackend

        return DockerBackend(Path(state_dir), limits, **options)
    raise ValueError(f"unknown sandbox backend {name!r}; available: " + ", ".join(BACKENDS))


__all__ = [
    "BACKENDS",
    "INPUT_DIR",
    "OUTPUT_DIR_PARENT",
    "WORKDIR",
    "CommandResult",
    "CreateResult",
    "FileErrorCode",
    "FileOpError",
    "FileOpResult",
    "IsolationCheck",
    "IsolationReport",
    "Limits",
    "LocalBackend",
    "LocalSandbox",
    "OutputFile",
    "Sandbox",
    "SandboxBackend",
    "SandboxBusy",
    "SandboxUnavailable",
    "StrReplaceResult",
    "ViewResult",
    "make_backend",
]
