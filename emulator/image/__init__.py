"""The documented sandbox environment as a Docker image: recipe, builders and the parity check.

`build_image()` makes sure the image of the current recipe exists (tag = hash of the recipe, so an unchanged
recipe is never rebuilt), from a registry with the `Dockerfile` when one answers, else offline (debootstrap
plus a host-side wheelhouse plus `docker import`). `parity_report()` runs inside a sandbox of that image and
compares what it sees with the documented environment.
"""

from .build import BuildOutcome, build_image, docker_client, find_image
from .progress import ImageBuildError
from .recipe import RECIPE_DIR, REGISTRY_BASE, REPOSITORY, image_tag, recipe_hash

__all__ = [
    "RECIPE_DIR",
    "REGISTRY_BASE",
    "REPOSITORY",
    "BuildOutcome",
    "ImageBuildError",
    "build_image",
    "docker_client",
    "find_image",
    "image_tag",
    "recipe_hash",
]
