"""The pytest plugin, exercised the way users meet it: through `pytester`."""

from __future__ import annotations

import pytest

TEST_FILE = """
import pytest
from emulator import bash

TOOL = {"type": "code_execution_20250825", "name": "code_execution"}

def ask(client):
    return client.beta.messages.create(
        model="claude-sonnet-4-5", max_tokens=50, tools=[TOOL], messages=[{"role": "user", "content": "go"}]
    )

def test_first(code_execution_emulator, anthropic_client):
    code_execution_emulator.add_turn(bash("echo one"))
    assert ask(anthropic_client).content[1].content.stdout == "one\\n"
    assert len(code_execution_emulator.requests) == 1

def test_state_was_reset(code_execution_emulator, anthropic_client):
    assert code_execution_emulator.requests == []
    assert code_execution_emulator.script.pending() == 0

@pytest.mark.code_execution_emulator(strict_models=True, fidelity="2025")
def test_marker_settings(code_execution_emulator):
    assert code_execution_emulator.config.strict_models is True
    client = code_execution_emulator.anthropic_client()
    code_execution_emulator.add_turn(bash("true"))
    raw = client.beta.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=50, tools=[TOOL], messages=[{"role": "user", "content": "go"}]
    )
    assert "stop_details" not in raw.http_response.json()
"""


def test_plugin_fixtures_markers_and_isolation(pytester):
    pytester.makepyfile(test_user=TEST_FILE)

    result = pytester.runpytest("--strict-markers", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=3)


def test_plugin_registers_its_marker_and_options(pytester):
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["*code_execution_emulator(**settings)*"])
    help_result = pytester.runpytest("--help")
    help_result.stdout.fnmatch_lines(["*--emulator-backend*", "*--emulator-isolation*"])


def test_terminal_summary_reports_execution_time(pytester):
    pytester.makepyfile(
        test_usage="""
from emulator import bash

def test_runs(code_execution_emulator, anthropic_client):
    code_execution_emulator.add_turn(bash("sleep 0.2"), bash("true"))
    anthropic_client.beta.messages.create(
        model="claude-sonnet-4-6", max_tokens=50,
        tools=[{"type": "code_execution_20250825", "name": "code_execution"}],
        messages=[{"role": "user", "content": "go"}],
    )
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["code-execution-emulator: 1 container, 2 tool calls, 0.2* s executed, would bill 0.083 h*"]
    )


@pytest.mark.slow
def test_terminal_summary_adds_up_xdist_workers(pytester):
    pytester.makepyfile(
        test_usage="""
import pytest
from emulator import bash

@pytest.mark.parametrize("n", range(4))
def test_runs(n, code_execution_emulator, anthropic_client):
    code_execution_emulator.add_turn(bash("true"))
    anthropic_client.beta.messages.create(
        model="claude-sonnet-4-6", max_tokens=50,
        tools=[{"type": "code_execution_20250825", "name": "code_execution"}],
        messages=[{"role": "user", "content": "go"}],
    )
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        ["code-execution-emulator: 4 containers, 4 tool calls, * s executed, would bill*"]
    )
