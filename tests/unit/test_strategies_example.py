"""The worked example of `docs/strategies.md`: a small client parser with a planted bug, and the property
test that finds it.

The parser reads the output of the first command the model ran. It was written against a few recordings,
all of which put the result right after its call, so it assumes `content[1]` is the result of `content[0]`.
The API does not promise that: a paused turn ends with a call that has no result yet, parallel calls come
all first and their results after, and a result may be an error object without `stdout`.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import Phase, given, settings

from emulator import strategies as ce

PROFILE = settings.get_profile(os.environ.get("CE_HYPOTHESIS_PROFILE", "ci"))


def first_stdout(message: dict[str, Any]) -> str | None:
    """The stdout of the first command in a response (None when there is none). Planted bug inside."""
    content = message["content"]
    if content and content[0]["type"] == "server_tool_use":
        return content[1]["content"]["stdout"]  # the bug: assumes content[1] is the result of content[0]
    return None


def first_stdout_fixed(message: dict[str, Any]) -> str | None:
    """The same, pairing the result with its call by id and accepting every result variant."""
    content = message["content"]
    if not content or content[0]["type"] != "server_tool_use":
        return None
    call_id = content[0]["id"]
    for block in content:
        if block["type"].endswith("_tool_result") and block["tool_use_id"] == call_id:
            return block["content"].get("stdout")  # errors and text editor results have none
    return None  # a paused turn: the call has not run yet


def _property(parser: Any, seen: list[dict[str, Any]]) -> Any:
    # no explain phase: tracing which lines only failing examples ran costs seconds, and says little here
    @settings(
        PROFILE,
        max_examples=50,
        report_multiple_bugs=False,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    )
    @given(message=ce.messages(tool_version="code_execution_20250825"))
    def parser_reads_any_response(message):
        seen.append(message)
        parser(message)  # must not raise on anything the API can send

    return parser_reads_any_response


def test_the_property_finds_the_planted_bug():
    seen: list[dict[str, Any]] = []
    with pytest.raises((IndexError, KeyError)) as caught:
        _property(first_stdout, seen)()
    # Hypothesis replays the shrunk counterexample last, and names it in the exception's notes.
    shrunk = seen[-1]
    assert "Falsifying example" in "\n".join(getattr(caught.value, "__notes__", []))
    assert shrunk["content"][0]["type"] == "server_tool_use"
    assert len(shrunk["content"]) <= 2
    with pytest.raises(type(caught.value)):
        first_stdout(shrunk)
    assert first_stdout_fixed(shrunk) is None or isinstance(first_stdout_fixed(shrunk), str)


def test_the_fixed_parser_passes_the_same_property():
    seen: list[dict[str, Any]] = []
    _property(first_stdout_fixed, seen)()
    assert any(message["content"] and message["content"][0]["type"] == "server_tool_use" for message in seen)
