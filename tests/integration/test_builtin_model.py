"""The built-in fenced-block model, as a `serve` user meets it, through the SDK."""

from __future__ import annotations

from anthropic.types.beta import (
    BetaBashCodeExecutionToolResultBlock,
    BetaCodeExecutionToolResultBlock,
    BetaTextBlock,
    BetaTextEditorCodeExecutionToolResultBlock,
)

from emulator.model.builtin import PLAIN_ANSWER

PROMPT = """Please run these.

```bash
echo "from bash"
```

```create report.md
# Report
total: 1
```

```str_replace report.md
total: 1
=======
total: 2
```

```view report.md
```

```python
print(open("report.md").read().splitlines()[1])
```
"""


def test_each_fenced_block_becomes_a_tool_call_in_order(ask):
    message = ask(PROMPT)

    kinds = [block.type for block in message.content]
    assert kinds == [
        "server_tool_use",
        "bash_code_execution_tool_result",
        "server_tool_use",
        "text_editor_code_execution_tool_result",
        "server_tool_use",
        "text_editor_code_execution_tool_result",
        "server_tool_use",
        "text_editor_code_execution_tool_result",
        "server_tool_use",
        "code_execution_tool_result",
        "text",
    ]
    bash_result, create_result, replace_result, view_result, python_result = message.content[1:10:2]
    assert isinstance(bash_result, BetaBashCodeExecutionToolResultBlock)
    assert bash_result.content.stdout == "from bash\n"
    assert isinstance(create_result, BetaTextEditorCodeExecutionToolResultBlock)
    assert message.content[2].input == {
        "command": "create",
        "path": "report.md",
        "file_text": "# Report\ntotal: 1\n",
    }
    assert replace_result.content.lines == [" # Report", "-total: 1", "+total: 2"]
    assert view_result.content.content == "# Report\ntotal: 2"
    assert isinstance(python_result, BetaCodeExecutionToolResultBlock)
    assert python_result.content.stdout == "total: 2"
    assert isinstance(message.content[-1], BetaTextBlock)


def test_plain_message_gets_a_text_answer(ask):
    message = ask("Hello there")

    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == PLAIN_ANSWER
    assert message.container is None


def test_without_code_execution_tool_nothing_runs(ask):
    message = ask("```bash\necho hi\n```", tools=[])

    assert [block.type for block in message.content] == ["text"]
    assert "no code execution tool" in message.content[0].text


def test_legacy_tool_runs_bash_blocks_through_python(ask):
    message = ask(
        "```bash\necho legacy\n```",
        tools=[{"type": "code_execution_20250522", "name": "code_execution"}],
        betas=["code-execution-2025-05-22"],
    )

    use, result, _ = message.content
    assert use.name == "code_execution" and "subprocess" in use.input["code"]
    assert isinstance(result, BetaCodeExecutionToolResultBlock)
    assert result.content.stdout == "legacy"


def test_text_blocks_in_a_content_list_are_read(ask):
    message = ask([{"type": "text", "text": "```bash\necho listed\n```"}])

    assert message.content[1].content.stdout == "listed\n"
