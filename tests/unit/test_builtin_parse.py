from __future__ import annotations

from emulator.model.builtin import PLAIN_ANSWER, last_user_text, plan_turn
from emulator.model.steps import TextStep, ToolStep, step_from_json


def user(text):
    return [{"role": "user", "content": text}]


def test_blocks_in_order_with_info_strings():
    steps = plan_turn(user("a\n```sh\nls\n```\n```py\nprint(1)\n```\n```create dir/x.txt\nhello\n```\n"))
    assert steps[:3] == [
        ToolStep("bash_code_execution", {"command": "ls"}),
        ToolStep("code_execution", {"code": "print(1)\n"}),
        ToolStep(
            "text_editor_code_execution", {"command": "create", "path": "dir/x.txt", "file_text": "hello\n"}
        ),
    ]
    assert steps[3] == TextStep("Ran 3 tool calls.")


def test_str_replace_and_view_and_quoted_paths():
    message = '```str_replace "my file.txt"\nold\n=======\nnew\n```\n```view "my file.txt"\n```'
    replace, show, closing = plan_turn(user(message))
    assert replace.input == {
        "command": "str_replace",
        "path": "my file.txt",
        "old_str": "old",
        "new_str": "new",
    }
    assert show.input == {"command": "view", "path": "my file.txt"}
    assert closing == TextStep("Ran 2 tool calls.")


def test_unknown_info_string_and_plain_text():
    assert plan_turn(user("```rust\nfn main(){}\n```")) == [TextStep(PLAIN_ANSWER)]
    assert plan_turn(user("just words")) == [TextStep(PLAIN_ANSWER)]
    assert plan_turn([]) == [TextStep(PLAIN_ANSWER)]


def test_longer_fences_and_tildes():
    steps = plan_turn(user("````bash\necho '```'\n````\n~~~python\nx=1\n~~~"))
    assert steps[0].input == {"command": "echo '```'"}
    assert steps[1].input == {"code": "x=1\n"}


def test_last_user_text_skips_assistant_and_reads_text_blocks():
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "reply"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "a"},
                {"type": "image", "source": {}},
                {"type": "text", "text": "b"},
            ],
        },
    ]
    assert last_user_text(messages) == "a\nb"


def test_step_from_json_errors():
    assert step_from_json({"type": "view", "path": "x"}) == ToolStep(
        "text_editor_code_execution", {"command": "view", "path": "x"}
    )
    for bad, fragment in [({"type": "zap"}, "unknown step type"), ({"type": "bash"}, "missing field")]:
        try:
            step_from_json(bad)
        except ValueError as problem:
            assert fragment in str(problem)
        else:
            raise AssertionError("expected ValueError")
