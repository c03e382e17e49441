"""`cassettes lint` and `cassettes verify`, through the CLI as users run them."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from emulator.cassettes import fixture_path, read_interactions
from emulator.cassettes.format import is_cassette
from emulator.cassettes.lint import lint_cassette
from emulator.cli import main

FIXTURES = fixture_path("bash").parent


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def rewrite_response(source: Path, target: Path, number: int, change: object) -> None:
    """Copy a cassette, passing interaction `number`'s response body text through `change`."""
    data = yaml.safe_load(source.read_text())
    body = data["interactions"][number]["response"]["body"]
    body["string"] = change(body["string"])  # type: ignore[operator]
    target.write_text(yaml.safe_dump(data))


def test_lint_passes_on_every_fixture(capsys):
    code, out = run_cli(capsys, "cassettes", "lint", str(FIXTURES))
    assert code == 0, out
    assert f"{len(list(FIXTURES.glob('*.yaml')))} cassette(s) linted, 0 with problems" in out


def test_lint_passes_on_every_real_recording_that_is_a_cassette(real_api_dir, capsys):
    cassettes = [path for path in sorted(real_api_dir.rglob("*")) if is_cassette(path)]
    assert len(cassettes) >= 30  # pydantic-ai's vcrpy cassettes, `parsed_body` format
    code, out = run_cli(capsys, "cassettes", "lint", str(real_api_dir))
    assert code == 0, out
    assert f"{len(cassettes)} cassette(s) linted, 0 with problems" in out
    checked = sum(lint_cassette(path).checked for path in cassettes)
    assert checked >= 70  # requests, JSON bodies and streams were really looked at


def test_lint_names_the_field_of_a_corrupted_json_response(tmp_path, capsys):
    corrupted = tmp_path / "corrupted.yaml"

    def add_field(text: str) -> str:
        body = json.loads(text)
        body["content"][1]["content"]["surprise"] = True
        return json.dumps(body)

    rewrite_response(fixture_path("bash"), corrupted, 0, add_field)
    code, out = run_cli(capsys, "cassettes", "lint", str(corrupted), str(fixture_path("python")))
    assert code == 1
    assert f"{corrupted}: 1 problem" in out
    assert (
        "interaction 0 response: content.1.bash_code_execution_tool_result.content.bash_code_execution_result"
        ".surprise: Extra inputs are not permitted" in out
    )
    assert f"{fixture_path('python')}: ok" in out


def test_lint_checks_streams_event_by_event(tmp_path, capsys):
    corrupted = tmp_path / "stream.yaml"
    rewrite_response(
        fixture_path("bash_stream"),
        corrupted,
        0,
        lambda text: text.replace('"type":"bash_code_execution_result"', '"type":"bash_result_v2"', 1),
    )
    code, out = run_cli(capsys, "cassettes", "lint", str(corrupted))
    assert code == 1
    assert (
        "(content_block_start): content_block_start.content_block.bash_code_execution_tool_result.content: "
        "Input tag 'bash_result_v2' found using 'type' does not match" in out
    )


def test_lint_reports_a_file_that_is_not_a_cassette(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("interactions: [{request: {}}]\n")
    code, out = run_cli(capsys, "cassettes", "lint", str(broken))
    assert code == 1 and f"{broken}: ERROR" in out


VERIFIED = (
    "bash",
    "text_editor_str_replace",
    "text_editor_view",
    "container_reuse",
    "pause_turn_stream",
    "python",
)


def test_verify_reruns_recorded_calls_and_finds_no_drift_in_fixtures(tmp_path, capsys):
    for name in VERIFIED:
        shutil.copy(fixture_path(name), tmp_path / f"{name}.yaml")
    code, out = run_cli(capsys, "cassettes", "verify", str(tmp_path))
    assert code == 0, out
    assert f"{len(VERIFIED)} cassette(s) verified, 0 with drift" in out
    assert (
        f"{tmp_path / 'container_reuse.yaml'}: ok (2 tool call(s) re-run" in out
    )  # the file was still there
    assert f"{tmp_path / 'pause_turn_stream.yaml'}: ok (2 tool call(s) re-run" in out  # across the pause


def test_verify_flags_a_recording_whose_stdout_no_longer_matches(tmp_path, capsys):
    drifted = tmp_path / "drifted.yaml"
    rewrite_response(
        fixture_path("bash"), drifted, 0, lambda text: text.replace("hello from the sandbox\\n", "hi\\n")
    )
    assert "hi\\n" in read_interactions(drifted)[0].response_body.decode()
    code, out = run_cli(capsys, "cassettes", "verify", str(drifted))
    assert code == 1
    assert "1 drift(s)" in out
    assert "bash_code_execution `echo hello from the sandbox`" in out
    assert "stdout: recorded 'hi\\n', today 'hello from the sandbox\\n'" in out


def test_verify_flags_text_editor_and_return_code_drift(tmp_path, capsys):
    drifted = tmp_path / "editor.yaml"
    rewrite_response(
        fixture_path("text_editor_str_replace"),
        drifted,
        0,
        lambda text: text.replace('"is_file_update":false', '"is_file_update":true').replace(
            '"return_code":0', '"return_code":3'
        ),
    )
    code, out = run_cli(capsys, "cassettes", "verify", str(drifted))
    assert code == 1
    assert "is_file_update: recorded True, today False" in out
    assert "return_code: recorded 3, today 0" in out


def test_verify_restores_uploaded_files_and_skips_what_it_cannot_rerun(capsys):
    code, out = run_cli(
        capsys,
        "cassettes",
        "verify",
        str(fixture_path("upload_and_output_file")),
        str(fixture_path("tool_error_unavailable")),
    )
    assert code == 0, out
    assert "upload_and_output_file.yaml: ok (1 tool call(s) re-run" in out  # read $INPUT_DIR/data.csv again
    assert "recorded `unavailable` is not reproducible by re-running" in out


OUTPUT_FILE_ID = "file_01MuKoaNbJh9AfRfYF5QmwpP"  # `total.csv`, written by the bash call of the fixture


def test_verify_names_an_output_file_whose_recorded_name_differs(tmp_path, capsys):
    drifted = tmp_path / "renamed.yaml"
    rewrite_response(
        fixture_path("upload_and_output_file"),
        drifted,
        2,  # GET /v1/files/{id}: the output file's metadata
        lambda text: text.replace('"filename":"total.csv"', '"filename":"sum.csv"'),
    )
    code, out = run_cli(capsys, "cassettes", "verify", str(drifted))
    assert code == 1, out
    assert f"{drifted}: 1 drift(s)" in out
    assert f"output file sum.csv ({OUTPUT_FILE_ID}): name: recorded 'sum.csv', today 'total.csv'" in out
    assert "content" not in out  # the bytes are the same: only the name drifted


def test_verify_names_an_output_file_whose_downloaded_content_differs(tmp_path, capsys):
    drifted = tmp_path / "changed.yaml"
    rewrite_response(
        fixture_path("upload_and_output_file"),
        drifted,
        3,  # GET /v1/files/{id}/content: the output file's bytes
        lambda text: text.replace("total,100\n", "total,99\n"),
    )
    assert read_interactions(drifted)[3].response_body == b"total,99\n"
    code, out = run_cli(capsys, "cassettes", "verify", str(drifted))
    assert code == 1, out
    assert f"{drifted}: 1 drift(s)" in out
    recorded, today = hashlib.sha256(b"total,99\n").hexdigest(), hashlib.sha256(b"total,100\n").hexdigest()
    assert (
        f"output file total.csv ({OUTPUT_FILE_ID}): content: recorded '9 bytes, sha256 {recorded[:16]}', "
        f"today '10 bytes, sha256 {today[:16]}'" in out
    )


def test_verify_names_recorded_output_files_that_are_no_longer_written(tmp_path, capsys):
    """The call now writes a different file than the recorded one and another besides: each is named."""
    drifted = tmp_path / "other_files.yaml"
    data = yaml.safe_load(fixture_path("upload_and_output_file").read_text())
    request = data["interactions"][1]["request"]
    body = json.loads(data["interactions"][1]["response"]["body"]["string"])
    use = body["content"][0]
    # rewrite what the call runs (the request is untouched: verify re-runs the recorded tool input)
    use["input"]["command"] = use["input"]["command"].replace(
        '"$OUTPUT_DIR/total.csv"', '"$OUTPUT_DIR/a.csv" && echo x > "$OUTPUT_DIR/b.csv"'
    )
    data["interactions"][1]["response"]["body"]["string"] = json.dumps(body)
    data["interactions"][1]["request"] = request
    drifted.write_text(yaml.safe_dump(data))
    code, out = run_cli(capsys, "cassettes", "verify", str(drifted))
    assert code == 1, out
    assert "output files: recorded 1, today 2" in out
    assert f"output file total.csv ({OUTPUT_FILE_ID}): recorded 'written', today 'not written'" in out
    assert "output file a.csv: recorded 'not written', today 'written'" in out
    assert "output file b.csv: recorded 'not written', today 'written'" in out
