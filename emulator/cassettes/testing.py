"""What the pytest plugin needs for cassettes: the `--record-mode` option shared with pytest-recording, the
per-test cassette path (pytest-recording's layout), and the report of unmatched requests."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest

from emulator.cassettes.modes import RECORD_MODES

RECORD_MODE_OPTION = "--record-mode"
#: pytest-recording's entry-point name and module
_RECORDING_PLUGINS = ("recording", "pytest_recording.plugin")
_FORBIDDEN_IN_NAMES = r"<>?%*:|\"'/\\"


def _option_registered(parser: pytest.Parser, name: str) -> bool:
    groups = [*getattr(parser, "_groups", []), getattr(parser, "_anonymous", None)]
    return any(name in option.names() for group in groups if group is not None for option in group.options)


def _pytest_recording_will_register(pluginmanager: pytest.PytestPluginManager) -> bool:
    if any(pluginmanager.has_plugin(name) for name in _RECORDING_PLUGINS):
        return True
    if importlib.util.find_spec("pytest_recording") is None:
        return False
    return not (pluginmanager.is_blocked("recording") or os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"))


def add_record_mode_option(
    group: pytest.OptionGroup, parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager
) -> None:
    """Register `--record-mode` unless pytest-recording does (then both read the same option).

    Plugins loaded from entry points add their options in load order, so pytest-recording's may come before
    or after ours; registering the name twice is an error either way.
    """
    if _option_registered(parser, RECORD_MODE_OPTION) or _pytest_recording_will_register(pluginmanager):
        return
    group.addoption(
        RECORD_MODE_OPTION,
        default=None,
        choices=RECORD_MODES,
        help="record mode for emulator cassettes, as pytest-recording's (default: none when replaying, all "
        "when recording)",
    )


def _default_dir(request: pytest.FixtureRequest) -> Path:
    try:
        return Path(request.getfixturevalue("vcr_cassette_dir"))
    except pytest.FixtureLookupError:
        module = Path(str(request.node.fspath))
        return module.parent / "cassettes" / module.stem


def _default_name(request: pytest.FixtureRequest) -> str:
    try:
        return str(request.getfixturevalue("default_cassette_name"))
    except pytest.FixtureLookupError:
        name = f"{request.cls.__name__}.{request.node.name}" if request.cls else request.node.name
        for character in _FORBIDDEN_IN_NAMES:
            name = name.replace(character, "-")
        return name


def cassette_settings(request: pytest.FixtureRequest, settings: dict[str, Any], mode: str) -> dict[str, Any]:
    """The marker's settings completed for a cassette mode: per-test cassette, record mode, upstream."""
    config = request.config
    chosen = dict(settings)
    chosen["mode"] = mode
    cassette = chosen.get("cassette")
    if cassette is None:
        chosen["cassette"] = _default_dir(request) / f"{_default_name(request)}.yaml"
    elif not Path(cassette).is_absolute():
        chosen["cassette"] = Path(str(request.node.fspath)).parent / cassette
    if chosen.get("record_mode") is None:
        chosen["record_mode"] = config.getoption(RECORD_MODE_OPTION, default=None)
    if chosen.get("upstream") is None:
        chosen["upstream"] = config.getoption("--emulator-upstream")
    return chosen


def unmatched_report(edge: Any) -> str | None:
    """A failure message for the requests a test's cassette could not answer, or None."""
    misses = edge.unmatched if edge is not None else []
    if not misses:
        return None
    plural = "s" if len(misses) != 1 else ""
    if getattr(edge, "file_missing", False):
        # no diff can help here: name the path first, it is most likely a typo or the wrong directory
        head = f"cassette file not found: {edge.path.absolute()} ({len(misses)} request{plural} unanswered):"
    else:
        head = f"{len(misses)} request{plural} did not match the cassette {edge.path}:"
    parts = [head]
    parts.extend(miss.message for miss in misses)
    return "\n\n".join(parts)
