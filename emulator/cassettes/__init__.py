"""Record and replay with vcrpy cassettes: modes, the server-side edge, matching, lint, verify, fixtures.

    with Emulator(mode="replay", cassette="tests/cassettes/conversation.yaml") as emulator:
        client = emulator.anthropic_client()      # answers come from the cassette; no sandbox, no network

    with Emulator(mode="record", cassette="new.yaml", upstream="https://api.anthropic.com") as emulator:
        ...                                       # requests are forwarded and recorded (keys filtered)

Cassettes are plain vcrpy cassettes; `configure_vcr` makes a `vcr.VCR` match them the way the emulator does,
for Python users who prefer client-side vcrpy / pytest-recording. Names are imported lazily so that the
pytest plugin does not load vcrpy in sessions that never use a cassette.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emulator.cassettes.client import configure_vcr, vcr_config
    from emulator.cassettes.edge import (
        UNMATCHED_ERROR_TYPE,
        UNMATCHED_STATUS,
        CassetteEdge,
        EdgeSettings,
        Unmatched,
    )
    from emulator.cassettes.fixtures import fixture_names, fixture_path, fixtures_dir
    from emulator.cassettes.format import AtomicPersister, Serializer, read_interactions
    from emulator.cassettes.lint import lint_cassette, lint_paths
    from emulator.cassettes.matching import BodyMatcher, BodyNormalizer, IndexedCassette, open_cassette
    from emulator.cassettes.modes import DEFAULT_UPSTREAM, MODES, RECORD_MODES, effective_record_mode
    from emulator.cassettes.verify import verify_cassette, verify_paths

_EXPORTS = {
    "client": ("configure_vcr", "vcr_config"),
    "edge": ("UNMATCHED_ERROR_TYPE", "UNMATCHED_STATUS", "CassetteEdge", "EdgeSettings", "Unmatched"),
    "fixtures": ("fixture_names", "fixture_path", "fixtures_dir"),
    "format": ("AtomicPersister", "Serializer", "read_interactions"),
    "lint": ("lint_cassette", "lint_paths"),
    "matching": ("BodyMatcher", "BodyNormalizer", "IndexedCassette", "open_cassette"),
    "modes": ("DEFAULT_UPSTREAM", "MODES", "RECORD_MODES", "effective_record_mode"),
    "verify": ("verify_cassette", "verify_paths"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'emulator.cassettes' has no attribute {name!r}")
    return getattr(importlib.import_module(f"emulator.cassettes.{module}"), name)


def register(subparsers: Any) -> None:
    """Add the `cassettes` command group (`lint`, `verify`) to the CLI's subparsers."""
    from emulator.cassettes.cli import register as register_commands

    register_commands(subparsers)


__all__ = [
    "DEFAULT_UPSTREAM",
    "MODES",
    "RECORD_MODES",
    "UNMATCHED_ERROR_TYPE",
    "UNMATCHED_STATUS",
    "AtomicPersister",
    "BodyMatcher",
    "BodyNormalizer",
    "CassetteEdge",
    "EdgeSettings",
    "IndexedCassette",
    "Serializer",
    "Unmatched",
    "configure_vcr",
    "effective_record_mode",
    "fixture_names",
    "fixture_path",
    "fixtures_dir",
    "lint_cassette",
    "lint_paths",
    "open_cassette",
    "read_interactions",
    "register",
    "vcr_config",
    "verify_cassette",
    "verify_paths",
]
