"""Tool semantics: run one server tool call in a sandbox and turn the plain result into the API's block."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from emulator.sandbox import base as sandbox
from emulator.wire import models as wire

#: Turns the files a call left in `$OUTPUT_DIR` into Files API files and returns their ids, in order. Raises
#: `OutputFileTooLarge` (keeping none of them) when one is past the size limit.
OutputFileSink = Callable[[sandbox.Sandbox, Sequence[sandbox.OutputFile]], list[str]]


class OutputFileTooLarge(Exception):
    """An output file is larger than the emulator keeps (bash answers `output_file_too_large`)."""


TEXT_EDITOR_COMMANDS = {
    "view": ("path",),
    "create": ("path", "file_text"),
    "str_replace": ("path", "old_str", "new_str"),
}


def python_stdout(stdout: str, *, keep_final_newline: bool = False) -> str:
    """Recent recordings hand back a Python run's stdout without its final newline(s) (`print(37170)` gives
    `'37170'`), while bash output keeps them; the 2025 recordings (claude-sonnet-4-20250514) keep it, so the
    2025 fidelity profiles do too. Recorded programmatic-tool-calling cells keep their stdout as is."""
    return stdout if keep_final_newline else stdout.rstrip("\n")


def collect_output_files(
    box: sandbox.Sandbox, result: sandbox.CommandResult, sink: OutputFileSink | None
) -> list[str]:
    """The Files API ids of the files this call wrote into `$OUTPUT_DIR` (raises `OutputFileTooLarge`)."""
    if sink is None or not result.output_files:
        return []
    return sink(box, result.output_files)


def _execute(run: Callable[[], sandbox.CommandResult]) -> sandbox.CommandResult | str:
    """The command's result, or the error code the API gives when it could not run to its end."""
    try:
        result = run()
    except sandbox.SandboxBusy:
        return "too_many_requests"
    except sandbox.SandboxUnavailable:
        return "unavailable"
    return "execution_time_exceeded" if result.timed_out else result


def run_bash(
    box: sandbox.Sandbox, tool_use_id: str, tool_input: dict[str, Any], sink: OutputFileSink | None
) -> wire.ToolResultBlock:
    name = "bash_code_execution"
    command = tool_input.get("command")
    if not isinstance(command, str) or set(tool_input) - {"command", "restart"}:
        return error_block(name, tool_use_id, "invalid_tool_input")
    result = _execute(lambda: box.run_command(command))
    if isinstance(result, str):
        return error_block(name, tool_use_id, result)
    try:
        file_ids = collect_output_files(box, result, sink)
    except OutputFileTooLarge:
        return error_block(name, tool_use_id, "output_file_too_large")
    return wire.BashToolResultBlock(
        tool_use_id=tool_use_id,
        content=wire.BashResult(
            stdout=result.stdout,
            stderr=result.stderr,
            return_code=result.return_code,
            content=[wire.BashOutputBlock(file_id=file_id) for file_id in file_ids],
        ),
    )


def run_python(
    box: sandbox.Sandbox,
    tool_use_id: str,
    tool_input: dict[str, Any],
    sink: OutputFileSink | None,
    *,
    keep_final_newline: bool = False,
) -> wire.ToolResultBlock:
    name = "code_execution"
    code = tool_input.get("code")
    if not isinstance(code, str) or set(tool_input) != {"code"}:
        return error_block(name, tool_use_id, "invalid_tool_input")
    result = _execute(lambda: box.run_python(code))
    if isinstance(result, str):
        return error_block(name, tool_use_id, result)
    stderr = result.stderr
    try:
        file_ids = collect_output_files(box, result, sink)
    except OutputFileTooLarge as problem:
        # The Python tool has no `output_file_too_large` code: keep the run's result, without the files.
        file_ids = []
        stderr += f"\n[output files not kept: {problem}]\n"
    return wire.CodeExecutionToolResultBlock(
        tool_use_id=tool_use_id,
        content=wire.CodeExecutionResult(
            stdout=python_stdout(result.stdout, keep_final_newline=keep_final_newline),
            stderr=stderr,
            return_code=result.return_code,
            content=[wire.CodeExecutionOutputBlock(file_id=file_id) for file_id in file_ids],
        ),
    )


def _text_editor_input_error(tool_input: dict[str, Any]) -> str | None:
    command = tool_input.get("command")
    if command not in TEXT_EDITOR_COMMANDS:
        known = ", ".join(TEXT_EDITOR_COMMANDS)
        return f"Unknown command {command!r}; the text editor supports: {known}"
    required = TEXT_EDITOR_COMMANDS[str(command)]
    for name in required:
        if not isinstance(tool_input.get(name), str):
            return f"Parameter `{name}` is required for command: {command}"
    unexpected = sorted(set(tool_input) - {"command", *required})
    if unexpected:
        return f"Unexpected parameter(s) for command {command}: {', '.join(unexpected)}"
    return None


def _editor_content(outcome: sandbox.FileOpResult, legacy_codes: bool) -> Any:
    if isinstance(outcome, sandbox.ViewResult):
        return wire.ViewResult(
            file_type=outcome.file_type,
            content=outcome.content,
            num_lines=outcome.num_lines,
            start_line=outcome.start_line,
            total_lines=outcome.total_lines,
        )
    if isinstance(outcome, sandbox.CreateResult):
        return wire.CreateResult(is_file_update=outcome.is_file_update)
    if isinstance(outcome, sandbox.StrReplaceResult):
        return wire.StrReplaceResult(
            old_start=outcome.old_start,
            old_lines=outcome.old_lines,
            new_start=outcome.new_start,
            new_lines=outcome.new_lines,
            lines=list(outcome.lines),
        )
    code = outcome.code
    if code == "string_not_found" and not legacy_codes:
        code = "invalid_tool_input"
    return wire.TextEditorError(error_code=code, error_message=outcome.message)


def run_text_editor(
    box: sandbox.Sandbox, tool_use_id: str, tool_input: dict[str, Any], *, legacy_codes: bool = False
) -> wire.TextEditorToolResultBlock:
    problem = _text_editor_input_error(tool_input)
    if problem is not None:
        return wire.TextEditorToolResultBlock(
            tool_use_id=tool_use_id,
            content=wire.TextEditorError(error_code="invalid_tool_input", error_message=problem),
        )
    command = tool_input["command"]
    try:
        if command == "view":
            outcome = box.view(tool_input["path"])
        elif command == "create":
            outcome = box.create(tool_input["path"], tool_input["file_text"])
        else:
            outcome = box.str_replace(tool_input["path"], tool_input["old_str"], tool_input["new_str"])
    except sandbox.SandboxBusy as failure:
        outcome = sandbox.FileOpError("too_many_requests", str(failure))
    except sandbox.SandboxUnavailable as failure:
        outcome = sandbox.FileOpError("unavailable", str(failure) or "The sandbox is unavailable")
    return wire.TextEditorToolResultBlock(
        tool_use_id=tool_use_id, content=_editor_content(outcome, legacy_codes)
    )


def run_tool(
    box: sandbox.Sandbox,
    name: str,
    tool_use_id: str,
    tool_input: dict[str, Any],
    *,
    sink: OutputFileSink | None = None,
    legacy_codes: bool = False,
    keep_python_newline: bool = False,
) -> wire.ToolResultBlock:
    if name == "bash_code_execution":
        return run_bash(box, tool_use_id, tool_input, sink)
    if name == "code_execution":
        return run_python(box, tool_use_id, tool_input, sink, keep_final_newline=keep_python_newline)
    return run_text_editor(box, tool_use_id, tool_input, legacy_codes=legacy_codes)


DEFAULT_ERROR_MESSAGES = {
    "file_not_found": "File not found",
    "invalid_tool_input": "Invalid tool input",
    "unavailable": "The tool is temporarily unavailable",
    "too_many_requests": "Too many requests",
    "execution_time_exceeded": "Execution time exceeded",
    "string_not_found": "String to replace not found in file",
    "container_expired": "Container expired",
}


def error_block(
    name: str, tool_use_id: str, error_code: str, error_message: str | None = None
) -> wire.ToolResultBlock:
    """The error result block a tool of this name gives for `error_code` (only the editor has a message)."""
    if name == "bash_code_execution":
        return wire.BashToolResultBlock(
            tool_use_id=tool_use_id, content=wire.BashError(error_code=error_code)
        )  # type: ignore[arg-type]
    if name == "code_execution":
        return wire.CodeExecutionToolResultBlock(
            tool_use_id=tool_use_id,
            content=wire.CodeExecutionError(error_code=error_code),  # type: ignore[arg-type]
        )
    message = error_message or DEFAULT_ERROR_MESSAGES.get(error_code)
    return wire.TextEditorToolResultBlock(
        tool_use_id=tool_use_id,
        content=wire.TextEditorError(error_code=error_code, error_message=message),  # type: ignore[arg-type]
    )
