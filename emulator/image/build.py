"""`image build`: the image for the current recipe, from a registry when one answers, else offline.

An image already tagged with the recipe's hash is never rebuilt (unless `force`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from .offline import build_offline
from .progress import ImageBuildError
from .recipe import LABEL_RECIPE, LABEL_VARIANT, RECIPE_DIR, REGISTRY_BASE, image_tag, recipe_hash

Source = Literal["auto", "offline", "registry"]


@dataclass(frozen=True)
class BuildOutcome:
    tag: str
    image_id: str
    #: False when an image of this recipe already existed
    built: bool
    #: "offline" or "registry"
    variant: str
    seconds: float


def docker_client(timeout: float = 900.0) -> Any:
    """docker-py against `DOCKER_HOST` (default: the local socket), with a long timeout for builds."""
    import docker

    return docker.from_env(timeout=int(timeout))


def find_image(client: Any, tag: str | None = None) -> Any | None:
    """The local image of this recipe, or None."""
    import docker.errors

    try:
        return client.images.get(tag or image_tag())
    except docker.errors.ImageNotFound:
        return None


def _registry_base(client: Any, out: TextIO) -> bool:
    """True when the registry base image is present or can be pulled."""
    import docker.errors

    try:
        client.images.get(REGISTRY_BASE)
        return True
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError:
        return False
    repo, _, tag = REGISTRY_BASE.partition(":")
    print(f"pulling {REGISTRY_BASE} ...", file=out, flush=True)
    try:
        client.images.pull(repo, tag=tag)
    except docker.errors.APIError as e:
        print(f"no registry: {getattr(e, 'explanation', None) or e}", file=out, flush=True)
        return False
    return True


def build_registry(client: Any, tag: str, out: TextIO) -> str:
    """`docker build` of the recipe's Dockerfile; the build uses the host network (no bridge needed)."""
    import docker.errors

    step = "docker build"
    last: list[str] = []
    try:
        for chunk in client.api.build(
            path=str(RECIPE_DIR),
            tag=tag,
            rm=True,
            forcerm=True,
            network_mode="host",
            labels={LABEL_RECIPE: recipe_hash(), LABEL_VARIANT: "registry"},
            decode=True,
        ):
            if "error" in chunk:
                raise ImageBuildError(step, str(chunk["error"]).strip(), None, "\n".join(last[-15:]))
            text = str(chunk.get("stream", "")).rstrip()
            if text:
                last.append(text)
                if text.startswith("Step "):
                    step = text
                    print(text, file=out, flush=True)
    except docker.errors.APIError as e:
        raise ImageBuildError(step, str(e)) from e
    return str(client.images.get(tag).id)


def build_image(
    client: Any | None = None,
    *,
    source: Source = "auto",
    force: bool = False,
    out: TextIO | None = None,
    mirror: str | None = None,
    cache_dir: Path | None = None,
) -> BuildOutcome:
    """Make sure the image of the current recipe exists; build it if not. Raises ImageBuildError."""
    out = out or sys.stdout
    client = client or docker_client()
    tag = image_tag()
    started = time.monotonic()
    existing = find_image(client, tag)
    if existing is not None and not force:
        variant = (existing.labels or {}).get(LABEL_VARIANT, "?")
        print(f"{tag} is up to date ({variant}, {existing.id[:19]}): nothing to build", file=out, flush=True)
        return BuildOutcome(tag, existing.id, False, variant, 0.0)
    if source == "registry" or (source == "auto" and _registry_base(client, out)):
        if source == "registry" and not _registry_base(client, out):
            raise ImageBuildError("pull base image", f"{REGISTRY_BASE} is not available from a registry")
        print(f"building {tag} from {REGISTRY_BASE} (Dockerfile)", file=out, flush=True)
        image_id = build_registry(client, tag, out)
        variant = "registry"
    else:
        kwargs: dict[str, Any] = {"out": out, "cache_dir": cache_dir}
        if mirror:
            kwargs["mirror"] = mirror
        image_id = build_offline(client, tag, **kwargs)
        variant = "offline"
    return BuildOutcome(tag, image_id, True, variant, time.monotonic() - started)
