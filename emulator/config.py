"""One settings object for an emulator: backend, strictness, fidelity, limits and paths."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from emulator.engine.turn import Fidelity
from emulator.sandbox.base import Limits
from emulator.state.files import DEFAULT_MAX_FILE_BYTES
from emulator.wire.sse import Fragmentation

FidelityProfile = Literal["2026", "2025", "documented-2025"]
#: emulate: scripts or the built-in model plus real execution; replay: answer from `cassette`; record: forward
#: to `upstream` and write `cassette` (see `emulator.cassettes.modes`)
Mode = Literal["emulate", "replay", "record"]
#: vcrpy / pytest-recording record modes
RecordMode = Literal["none", "once", "new_episodes", "all", "rewrite"]

FIDELITY_PROFILES: dict[str, Fidelity] = {
    # What 2026 recordings show: `stop_details: null`, `usage.inference_geo`.
    "2026": Fidelity(stop_details=True, inference_geo="not_available", documented_2025_codes=False),
    # What 2025 recordings show: neither key, and Python stdout with its final newline.
    "2025": Fidelity(
        stop_details=False, inference_geo=None, documented_2025_codes=False, python_final_newline=True
    ),
    # The 2025 docs' shapes, with the error codes newer API versions dropped.
    "documented-2025": Fidelity(
        stop_details=False, inference_geo=None, documented_2025_codes=True, python_final_newline=True
    ),
}

#: the Messages endpoint's documented request size limit
MAX_MESSAGES_BODY_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class EmulatorConfig:
    """Settings of one emulator. Build with keywords; `with_overrides` returns a changed copy."""

    backend: str = "local"
    #: local backend isolation: "auto" (bubblewrap when it works, else plain processes), "bwrap" or "none"
    isolation: str = "auto"
    #: where containers' files live; None means a temporary directory removed on close
    state_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 0
    #: accept only this API key (401 `invalid x-api-key` otherwise); None accepts any key
    api_key: str | None = None
    strict_betas: bool = False
    strict_models: bool = False
    fidelity: FidelityProfile = "2026"
    limits: Limits = field(default_factory=Limits)
    #: seed for ids, so two runs of one script produce the same ids
    id_seed: int | None = None
    max_body_bytes: int = MAX_MESSAGES_BODY_BYTES
    #: use a manual clock that only moves when tests advance it
    manual_clock: bool = False
    #: how streamed text and tool input are fragmented (seeded, so streams are reproducible)
    streaming: Fragmentation = field(default_factory=Fragmentation)
    #: pause a turn after this many server tool calls (None: never, unless a script or fault says so)
    pause_after_tool_calls: int | None = None
    #: how long a programmatic tool call may wait for its result before the code gets a TimeoutError
    ptc_call_timeout_s: float = 240.0
    #: how long a new message batch stays `in_progress` before its requests run
    batch_delay_s: float = 0.0
    #: Files API: the largest upload accepted (413 `request_too_large` beyond), the documented 500 MB
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    #: the largest file a tool call may leave in `$OUTPUT_DIR` (bash gets `output_file_too_large` beyond)
    max_output_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    mode: Mode = "emulate"
    #: the vcrpy cassette (YAML) for `replay` and `record`
    cassette: Path | None = None
    #: None: "none" in replay mode (a miss is an error), "all" in record mode (always forward)
    record_mode: RecordMode | None = None
    #: where `record` mode forwards requests
    upstream: str = "https://api.anthropic.com"
    #: more headers kept out of cassettes (x-api-key, authorization and cookies always are)
    filter_headers: tuple[str, ...] = ()
    #: request body fields ignored when matching a cassette, dotted paths with `*` for any key or item
    match_ignore: tuple[str, ...] = ()
    #: base URL written in recorded `uri`s (default: `upstream`), e.g. to record from a local upstream as if
    #: from the real API
    record_base_url: str | None = None

    def with_overrides(self, **changes: Any) -> EmulatorConfig:
        if "limits" in changes and isinstance(changes["limits"], dict):
            changes["limits"] = replace(self.limits, **changes["limits"])
        if "streaming" in changes and isinstance(changes["streaming"], dict):
            changes["streaming"] = replace(self.streaming, **changes["streaming"])
        if "state_dir" in changes and changes["state_dir"] is not None:
            changes["state_dir"] = Path(changes["state_dir"])
        if changes.get("cassette") is not None:
            changes["cassette"] = Path(changes["cassette"])
        for name in ("filter_headers", "match_ignore"):
            if isinstance(changes.get(name), list | str):
                value = changes[name]
                changes[name] = (value,) if isinstance(value, str) else tuple(value)
        return replace(self, **changes)

    @property
    def fidelity_settings(self) -> Fidelity:
        return FIDELITY_PROFILES[self.fidelity]
