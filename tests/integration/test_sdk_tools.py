"""Every tool operation through the official SDK, against real execution in the local sandbox."""

from __future__ import annotations

import pytest
from anthropic.types.beta import (
    BetaBashCodeExecutionResultBlock,
    BetaBashCodeExecutionToolResultBlock,
    BetaCodeExecutionResultBlock,
    BetaCodeExecutionToolResultBlock,
    BetaServerToolUseBlock,
    BetaTextBlock,
    BetaTextEditorCodeExecutionCreateResultBlock,
    BetaTextEditorCodeExecutionStrReplaceResultBlock,
    BetaTextEditorCodeExecutionToolResultBlock,
    BetaTextEditorCodeExecutionToolResultError,
    BetaTextEditorCodeExecutionViewResultBlock,
)

from emulator import Emulator, bash, create, python, str_replace, text, text_editor, view
from emulator.wire.validation import validate_response


def test_bash_runs_for_real(code_execution_emulator, ask):
    code_execution_emulator.add_turn(bash("echo out; echo err >&2; exit 3"), text("done"))

    message = ask()

    use, result, closing = message.content
    assert isinstance(use, BetaServerToolUseBlock)
    assert use.name == "bash_code_execution" and use.input == {"command": "echo out; echo err >&2; exit 3"}
    assert use.id.startswith("srvtoolu_01") and len(use.id) == len("srvtoolu_") + 24
    assert isinstance(result, BetaBashCodeExecutionToolResultBlock)
    assert result.tool_use_id == use.id
    assert isinstance(result.content, BetaBashCodeExecutionResultBlock)
    assert (result.content.stdout, result.content.stderr, result.content.return_code) == ("out\n", "err\n", 3)
    assert result.content.content == []
    assert isinstance(closing, BetaTextBlock) and closing.text == "done"
    assert message.stop_reason == "end_turn"
    assert message.container is not None and message.container.id.startswith("container_01")


def test_python_runs_as_code_execution(code_execution_emulator, ask):
    code_execution_emulator.add_turn(python("import sys\nprint(sys.version_info[:2])\nprint(2**100)"))

    message = ask()

    use, result = message.content
    assert use.name == "code_execution" and use.input == {
        "code": "import sys\nprint(sys.version_info[:2])\nprint(2**100)"
    }
    assert isinstance(result, BetaCodeExecutionToolResultBlock)
    assert isinstance(result.content, BetaCodeExecutionResultBlock)
    lines = result.content.stdout.splitlines()
    assert lines[0].startswith("(3, ") and lines[1] == str(2**100)
    assert result.content.return_code == 0


def test_text_editor_create_view_str_replace(code_execution_emulator, ask):
    original = "".join(f"line {n}\n" for n in range(1, 11))
    code_execution_emulator.add_turn(
        create("notes.txt", original),
        view("notes.txt"),
        str_replace("notes.txt", "line 5\n", "line five\n"),
        create("notes.txt", "replaced\n"),
    )

    message = ask()

    results = [
        block for block in message.content if isinstance(block, BetaTextEditorCodeExecutionToolResultBlock)
    ]
    created, viewed, replaced, recreated = (block.content for block in results)
    assert (
        isinstance(created, BetaTextEditorCodeExecutionCreateResultBlock) and created.is_file_update is False
    )
    assert isinstance(viewed, BetaTextEditorCodeExecutionViewResultBlock)
    # As recorded: the raw text without line numbers, and without the file's final newline.
    assert viewed.file_type == "text" and viewed.content == original.removesuffix("\n")
    assert (viewed.num_lines, viewed.start_line, viewed.total_lines) == (10, 1, 10)
    assert isinstance(replaced, BetaTextEditorCodeExecutionStrReplaceResultBlock)
    assert (replaced.old_start, replaced.old_lines, replaced.new_start, replaced.new_lines) == (2, 7, 2, 7)
    assert replaced.lines == [
        " line 2",
        " line 3",
        " line 4",
        "-line 5",
        "+line five",
        " line 6",
        " line 7",
        " line 8",
    ]
    assert (
        isinstance(recreated, BetaTextEditorCodeExecutionCreateResultBlock)
        and recreated.is_file_update is True
    )


def test_text_editor_errors(code_execution_emulator, ask):
    code_execution_emulator.add_turn(
        view("/workspace/does-not-exist.txt"),
        text_editor(command="insert", path="x.txt", insert_line=1, new_str="x"),
        create("a.txt", "same\nsame\n"),
        str_replace("a.txt", "same", "other"),
        str_replace("a.txt", "absent", "other"),
    )

    message = ask()

    errors = [
        block.content
        for block in message.content
        if isinstance(block, BetaTextEditorCodeExecutionToolResultBlock)
    ]
    missing, unknown, _, ambiguous, not_found = errors
    assert isinstance(missing, BetaTextEditorCodeExecutionToolResultError)
    assert missing.error_code == "file_not_found" and missing.error_message
    assert unknown.error_code == "invalid_tool_input" and "insert" in unknown.error_message
    assert ambiguous.error_code == "invalid_tool_input"
    assert not_found.error_code == "invalid_tool_input"


def test_container_reuse_sees_earlier_files(code_execution_emulator, ask):
    code_execution_emulator.add_turn(bash("echo persisted > /tmp/state.txt && echo hi > kept.txt"))
    first = ask()
    code_execution_emulator.add_turn(bash("cat /tmp/state.txt kept.txt"))

    second = ask(container=first.container.id)

    assert second.container.id == first.container.id
    assert second.content[1].content.stdout == "persisted\nhi\n"
    assert second.container.expires_at >= first.container.expires_at


def test_container_object_form_and_isolation_between_containers(code_execution_emulator, ask):
    code_execution_emulator.add_turn(bash("echo mine > only-here.txt"))
    first = ask()
    code_execution_emulator.add_turn(bash("ls only-here.txt"))
    other = ask()
    code_execution_emulator.add_turn(bash("cat only-here.txt"))
    again = ask(container={"id": first.container.id})

    assert other.container.id != first.container.id
    assert other.content[1].content.return_code != 0
    assert again.content[1].content.stdout == "mine\n"


def test_responses_validate_against_our_schemas(code_execution_emulator, anthropic_client):
    code_execution_emulator.add_turn(
        bash("echo hi"), create("f.txt", "a\n"), view("f.txt"), python("print(1)")
    )
    raw = anthropic_client.beta.messages.with_raw_response.create(
        model="claude-sonnet-4-5",
        max_tokens=100,
        tools=[{"type": "code_execution_20250825", "name": "code_execution"}],
        messages=[{"role": "user", "content": "go"}],
    )
    body = raw.http_response.json()

    assert validate_response(body) == []
    assert list(body) == [
        "model",
        "id",
        "type",
        "role",
        "content",
        "container",
        "stop_reason",
        "stop_sequence",
        "stop_details",
        "usage",
    ]
    assert raw.http_response.headers["request-id"].startswith("req_01")
    assert list(body["content"][1]["content"]) == ["type", "stdout", "stderr", "return_code", "content"]


def test_ga_client_path_works_too(code_execution_emulator, anthropic_client):
    code_execution_emulator.add_turn(bash("echo ga"))

    message = anthropic_client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=100,
        tools=[{"type": "code_execution_20250825", "name": "code_execution"}],
        messages=[{"role": "user", "content": "go"}],
    )

    assert message.content[1].content.stdout == "ga\n"
    assert message.model == "claude-sonnet-4-6"


def test_model_alias_resolves_to_dated_id(code_execution_emulator, ask):
    code_execution_emulator.add_turn(text("hello"))

    assert ask(model="claude-sonnet-4-5").model == "claude-sonnet-4-5-20250929"


@pytest.mark.parametrize(("fidelity", "stdout"), [("2026", "37170"), ("2025", "37170\n")])
def test_python_stdout_ends_as_the_recordings_of_its_era_do(fidelity, stdout):
    """2026 recordings strip a Python run's final newline; 2025 ones (claude-sonnet-4-20250514) keep it."""
    with Emulator(fidelity=fidelity) as emulator:
        emulator.add_turn(python("print(37170)"), bash("echo 37170"))
        message = emulator.anthropic_client().beta.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=100,
            tools=[{"type": "code_execution_20250825", "name": "code_execution"}],
            messages=[{"role": "user", "content": "go"}],
        )
    python_result, bash_result = (
        block.content for block in message.content if block.type.endswith("_result")
    )
    assert python_result.stdout == stdout
    assert bash_result.stdout == "37170\n"  # bash keeps it in every era
