"""Fixtures of the Docker tier: an engine and the sandbox image are real prerequisites.

Without an engine (or without the image of the current recipe) a docker-marked test skips, naming what is
missing; under CI (`CI=true`, where `.ci/run` starts dockerd and builds the image) it fails instead, so a
broken engine can never pass as a skip.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from emulator import Emulator
from emulator.image import image_tag

CODE_EXECUTION_TOOL = {"type": "code_execution_20250825", "name": "code_execution"}


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI must provide it: .ci/run starts dockerd and builds the image)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client():
    import docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as e:
        _missing(f"no Docker engine ({type(e).__name__}: {e})")
    yield client
    client.close()


@pytest.fixture(scope="session")
def sandbox_image(docker_client) -> str:
    import docker.errors

    tag = image_tag()
    try:
        docker_client.images.get(tag)
    except docker.errors.ImageNotFound:
        _missing(f"sandbox image {tag} not built (run `code-execution-emulator image build`)")
    return tag


def _emulator(tmp_path_factory, name: str, **overrides: Any) -> Emulator:
    return Emulator(backend="docker", state_dir=tmp_path_factory.mktemp(name), **overrides)


@pytest.fixture(scope="module")
def docker_emulator(sandbox_image, tmp_path_factory):
    """The documented limits (5 GiB, 1 CPU), a 120 s time limit (filling 5 GiB takes ~30 s here)."""
    with _emulator(tmp_path_factory, "docker-state", limits={"timeout_s": 120}) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def small_emulator(sandbox_image, tmp_path_factory):
    """Small memory and a 3 s time limit, so bombs and timeouts are quick to reach."""
    limits = {"timeout_s": 3, "memory_bytes": 512 * 1024 * 1024}
    with _emulator(tmp_path_factory, "docker-small", limits=limits) as emulator:
        yield emulator


def ask(emulator: Emulator, *steps: Any, container: str | None = None):
    """Queue one scripted turn and send one request through the official SDK (in-process)."""
    emulator.add_turn(*steps)
    client = emulator.anthropic_client()
    params: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "tools": [CODE_EXECUTION_TOOL],
        "messages": [{"role": "user", "content": "go"}],
    }
    if container is not None:
        params["container"] = container
    return client.beta.messages.create(**params)


def results(message) -> list[Any]:
    """The result blocks' contents, in order."""
    return [b.content for b in message.content if b.type.endswith("_tool_result")]
