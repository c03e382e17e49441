"""Emulator modes and pytest-recording's record modes, and how they combine.

* `emulate` (default): the script or built-in model answers, tools really run. No cassette.
* `replay`: answers come from the cassette; no sandbox, no network. Record mode `none` by default, so an
  unmatched request is an error; with `once` / `new_episodes` / `all` it is replay-or-record.
* `record`: requests go to the upstream API and the answers are appended to the cassette. Record mode `all`
  by default (always forward, re-recorded interactions replace the ones they match); `new_episodes` replays
  what the cassette has and records the rest, `once` records only into a cassette that does not exist yet.

Record modes are vcrpy's / pytest-recording's: `none`, `once`, `new_episodes`, `all`, plus pytest-recording's
`rewrite` (start the cassette afresh: every request is forwarded and only what this run recorded is kept).
"""

from __future__ import annotations

from typing import Literal

Mode = Literal["emulate", "replay", "record"]
RecordModeName = Literal["none", "once", "new_episodes", "all", "rewrite"]

MODES: tuple[str, ...] = ("emulate", "replay", "record")
RECORD_MODES: tuple[str, ...] = ("none", "once", "new_episodes", "all", "rewrite")
DEFAULT_UPSTREAM = "https://api.anthropic.com"
DEFAULT_RECORD_MODE = {"replay": "none", "record": "all"}


def effective_record_mode(mode: str, record_mode: str | None) -> str:
    """The record mode a cassette is opened with; raises ValueError for unknown names."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if mode == "emulate":
        raise ValueError("mode 'emulate' uses no cassette")
    chosen = record_mode or DEFAULT_RECORD_MODE[mode]
    if chosen not in RECORD_MODES:
        raise ValueError(f"unknown record mode {chosen!r}; expected one of {', '.join(RECORD_MODES)}")
    return chosen
