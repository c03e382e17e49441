"""Cassettes in pytest: per-test cassettes next to the test, `--record-mode` shared with pytest-recording,
unmatched requests reported with their diff."""

from __future__ import annotations

import shutil

import pytest

from emulator import Emulator, bash, text
from emulator.cassettes import fixture_path, read_interactions

TEST_FILE = """
import pytest

TOOL = {"type": "code_execution_20250825", "name": "code_execution"}

def ask(client, content):
    return client.beta.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=1024,
        betas=["code-execution-2025-08-25"],
        tools=[TOOL],
        messages=[{"role": "user", "content": content}],
    )

def test_greeting(anthropic_client):
    assert ask(anthropic_client, "Say hello from the sandbox.").content[1].content.stdout == (
        "hello from the sandbox\\n"
    )

@pytest.mark.code_execution_emulator(mode="replay")
def test_marked(code_execution_emulator, anthropic_client):
    assert code_execution_emulator.config.mode == "replay"
    ask(anthropic_client, "Say hello from the sandbox.")

@pytest.mark.code_execution_emulator(mode="replay")
def test_changed_prompt(anthropic_client):
    try:
        ask(anthropic_client, "Say goodbye from the sandbox.")
    except Exception:
        pass  # swallowed by the code under test: the plugin still fails the test
"""


def write_cassettes(pytester: pytest.Pytester, *names: str) -> None:
    directory = pytester.path / "cassettes" / "test_user"
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(fixture_path("bash"), directory / f"{name}.yaml")


def test_marked_tests_replay_their_own_cassette_and_misses_fail_with_the_diff(pytester):
    pytester.makepyfile(test_user=TEST_FILE)
    write_cassettes(pytester, "test_marked", "test_changed_prompt")

    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "marked or changed")

    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_changed_prompt*",
            "*1 request did not match the cassette *cassettes/test_user/test_changed_prompt.yaml:*",
            "*No recorded interaction in cassette * matches POST /v1/messages (record mode 'none')*",
            '*-      "content": "Say hello from the sandbox.",*',
            '*+      "content": "Say goodbye from the sandbox.",*',
        ]
    )


def test_emulator_mode_option_records_missing_cassettes_then_replays_them(pytester, tmp_path):
    pytester.makepyfile(test_user=TEST_FILE)
    with Emulator() as upstream:
        upstream.add_turn(bash("echo hello from the sandbox"), text("done"))
        upstream_url = upstream.start_server()
        recorded = pytester.runpytest(
            "-p",
            "no:cacheprovider",
            "-k",
            "greeting",
            "--emulator-mode=replay",
            "--record-mode=once",
            f"--emulator-upstream={upstream_url}",
        )
        recorded.assert_outcomes(passed=1)
        assert len(upstream.requests) == 1
    cassette = pytester.path / "cassettes" / "test_user" / "test_greeting.yaml"
    assert [item.status for item in read_interactions(cassette)] == [200]

    replayed = pytester.runpytest("-p", "no:cacheprovider", "-k", "greeting", "--emulator-mode=replay")
    replayed.assert_outcomes(passed=1)


@pytest.mark.parametrize("with_pytest_recording", [True, False], ids=["pytest-recording", "alone"])
def test_record_mode_option_coexists_with_pytest_recording(pytester, with_pytest_recording):
    pytester.makepyfile(test_user=TEST_FILE)
    write_cassettes(pytester, "test_greeting")
    extra = [] if with_pytest_recording else ["-p", "no:recording"]

    help_text = pytester.runpytest(*extra, "--help").stdout.str()
    assert help_text.count("--record-mode=") == 1
    assert ("VCR.py record mode" in help_text) is with_pytest_recording

    result = pytester.runpytest(
        *extra, "-p", "no:cacheprovider", "-k", "greeting", "--emulator-mode=replay", "--record-mode=none"
    )
    result.assert_outcomes(passed=1)
