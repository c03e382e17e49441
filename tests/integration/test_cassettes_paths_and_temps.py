"""A cassette path that does not exist is named as such when a replay misses (not "no interactions"), and
the temp files a killed save leaves next to a cassette are swept once their writer is provably gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anthropic
import pytest

from emulator import Emulator
from emulator.cassettes import UNMATCHED_STATUS
from emulator.cassettes.format import STALE_TEMP_AGE_S, atomic_write_text, sweep_stale_temps
from emulator.cassettes.matching import open_cassette

from .test_cassettes_plugin import TEST_FILE

MODEL = "claude-sonnet-4-6"


def ask(client: anthropic.Anthropic) -> None:
    client.messages.create(model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "hi"}])


# --- a missing cassette file -------------------------------------------------------------------------------


def test_replaying_a_missing_cassette_file_says_so(tmp_path):
    missing = tmp_path / "cassettes" / "typo.yaml"
    with Emulator(mode="replay", cassette=missing) as emulator:
        with pytest.raises(anthropic.APIStatusError) as caught:
            ask(emulator.anthropic_client())
        assert emulator.cassette_edge is not None and emulator.cassette_edge.file_missing
    assert caught.value.status_code == UNMATCHED_STATUS
    message = caught.value.body["error"]["message"]
    assert f"cassette file not found: {missing}" in message
    assert "no interactions" not in message
    assert caught.value.body["error"]["details"]["closest"] == f"cassette file not found: {missing}"
    assert not missing.exists()  # replaying never creates it


def test_an_existing_empty_cassette_is_not_reported_as_missing(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("interactions: []\nversion: 1\n")
    with Emulator(mode="replay", cassette=empty) as emulator:
        with pytest.raises(anthropic.APIStatusError) as caught:
            ask(emulator.anthropic_client())
        assert emulator.cassette_edge is not None and not emulator.cassette_edge.file_missing
    message = caught.value.body["error"]["message"]
    assert "the cassette has no interactions" in message and "not found" not in message


def test_pytest_report_names_a_missing_cassette_file(pytester):
    pytester.makepyfile(test_user=TEST_FILE)  # no cassettes written at all

    # the test swallows the SDK's error, as code under test may: the report must still name the path
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "changed_prompt")

    result.assert_outcomes(passed=1, errors=1)
    expected = pytester.path / "cassettes" / "test_user" / "test_changed_prompt.yaml"
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_changed_prompt*",
            f"*cassette file not found: {expected} (1 request unanswered):*",
            f"*(record mode 'none'); cassette file not found: {expected}*",
        ]
    )
    result.stdout.no_fnmatch_line("*the cassette has no interactions*")


# --- temp files of killed saves -------------------------------------------------------------------------

#: a save that is killed (SIGKILL) after writing its temp file, before the rename
KILLED_SAVE = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from emulator.cassettes.format import atomic_write_text

    def hang(source, target):
        print(source, flush=True)
        time.sleep(600)

    os.replace = hang
    atomic_write_text(Path(sys.argv[1]), "interactions: []\\nversion: 1\\n")
    """
)


def killed_save(path: Path) -> tuple[Path, int]:
    """The temp file a save of `path` killed with SIGKILL mid-way left behind, and the dead writer's pid."""
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_SAVE, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    temp = Path(process.stdout.readline().strip())
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert temp.exists() and temp.name.startswith(f".{path.name}.{process.pid}.")
    return temp, process.pid


def age(path: Path, seconds: float) -> Path:
    """Create `path` if needed and make it `seconds` old."""
    if not path.exists():
        path.write_text("partial")
    moment = time.time() - seconds
    os.utime(path, (moment, moment))
    return path


def test_a_killed_save_leaves_a_temp_that_the_next_open_sweeps(tmp_path):
    cassette = tmp_path / "c.yaml"
    atomic_write_text(cassette, "interactions: []\nversion: 1\n")
    orphan, dead_pid = killed_save(cassette)
    age(orphan, 2 * STALE_TEMP_AGE_S)
    young_orphan = tmp_path / f".c.yaml.{dead_pid}.abcd1234.tmp"
    young_orphan.write_text("partial")  # dead writer, but too young to be sure across pid namespaces
    live = age(tmp_path / f".c.yaml.{os.getpid()}.live0000.tmp", 2 * STALE_TEMP_AGE_S)  # a live writer's
    stale_live_pid = age(tmp_path / f".c.yaml.{os.getpid()}.old00000.tmp", 2 * 3600)  # pid since reused
    old_unnamed = age(tmp_path / ".c.yaml.zz_9yy8x.tmp", 2 * STALE_TEMP_AGE_S)  # the pre-pid name format
    others = [
        age(tmp_path / f".other.yaml.{dead_pid}.abcd1234.tmp", 3600),  # another cassette's
        age(tmp_path / "c.yaml.abcd1234.tmp", 3600),  # not our pattern (no leading dot)
        age(tmp_path / f".c.yaml.{dead_pid}.abcd1234.tmp.keep", 3600),
        age(tmp_path / "notes.tmp", 3600),
    ]
    for directory_like in (tmp_path / f".c.yaml.{dead_pid}.dir00000.tmp",):
        directory_like.mkdir()
        age(directory_like, 3600)

    with Emulator(mode="replay", cassette=cassette):
        pass

    assert not orphan.exists() and not stale_live_pid.exists() and not old_unnamed.exists()
    assert young_orphan.exists() and live.exists()
    assert all(path.exists() for path in others)
    assert (tmp_path / f".c.yaml.{dead_pid}.dir00000.tmp").is_dir()
    assert cassette.read_text() == "interactions: []\nversion: 1\n"  # the cassette itself untouched


def test_saving_sweeps_stale_temps_and_keeps_every_interaction(tmp_path):
    from vcr.request import Request

    cassette_path = tmp_path / "rec.yaml"
    cassette = open_cassette(cassette_path, "all")
    orphan, _ = killed_save(cassette_path)
    age(orphan, 2 * STALE_TEMP_AGE_S)
    response = {"status": {"code": 200, "message": "OK"}, "headers": {}, "body": {"string": "{}"}}
    cassette.append(Request("POST", "https://h/v1/messages", '{"n": 1}', {}), response)
    cassette._save()
    assert not orphan.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.yaml"]
    assert len(open_cassette(cassette_path, "none")) == 1


def test_sweeping_a_directory_that_cannot_be_listed_is_harmless(tmp_path):
    assert sweep_stale_temps(tmp_path / "no" / "such" / "dir" / "c.yaml") == []
