"""The model/tool-version table (data in `emulator/data/models.json`) and what each tool version offers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from emulator.errors import InvalidRequestError, NotFoundError

LEGACY_VERSION = "code_execution_20250522"
#: sub-tools each code execution version exposes to the model
SUB_TOOLS: dict[str, frozenset[str]] = {
    LEGACY_VERSION: frozenset({"code_execution"}),
    "code_execution_20250825": frozenset(
        {"bash_code_execution", "text_editor_code_execution", "code_execution"}
    ),
    "code_execution_20260120": frozenset(
        {"bash_code_execution", "text_editor_code_execution", "code_execution"}
    ),
    "code_execution_20260521": frozenset(
        {"bash_code_execution", "text_editor_code_execution", "code_execution"}
    ),
}
#: the beta each version needs when beta enforcement is strict
REQUIRED_BETA: dict[str, str] = {
    LEGACY_VERSION: "code-execution-2025-05-22",
    "code_execution_20250825": "code-execution-2025-08-25",
}


@dataclass(frozen=True)
class ModelInfo:
    id: str
    tool_versions: frozenset[str]
    known: bool


@dataclass(frozen=True)
class Catalog:
    all_versions: tuple[str, ...]
    by_name: dict[str, ModelInfo]

    def resolve(self, name: str, *, strict: bool) -> ModelInfo:
        """The model for a requested name; unknown names pass leniently unless `strict` (then 404)."""
        info = self.by_name.get(name)
        if info is not None:
            return info
        if strict or not name.startswith("claude-"):
            raise NotFoundError(f"model: {name}")
        return ModelInfo(id=name, tool_versions=frozenset(self.all_versions), known=False)

    def check_tool_version(self, model: ModelInfo, tool_index: int, version: str) -> None:
        if version in model.tool_versions:
            return
        expected = ", ".join(f"'{tag}'" for tag in sorted(model.tool_versions | {"custom"}))
        raise InvalidRequestError(
            f"tools.{tool_index}: Input tag '{version}' found using 'type' does not match any of the "
            f"expected tags: {expected}"
        )


def _load(raw: dict[str, Any]) -> Catalog:
    all_versions = tuple(raw["all_versions"])
    by_name: dict[str, ModelInfo] = {}
    for entry in raw["models"]:
        versions = all_versions if entry["tools"] == "all" else tuple(entry["tools"])
        info = ModelInfo(id=entry["id"], tool_versions=frozenset(versions), known=True)
        for name in (entry["id"], *entry["aliases"]):
            by_name[name] = info
    return Catalog(all_versions=all_versions, by_name=by_name)


@cache
def default_catalog() -> Catalog:
    text = resources.files("emulator").joinpath("data/models.json").read_text(encoding="utf-8")
    return _load(json.loads(text))
