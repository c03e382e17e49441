from __future__ import annotations

from typing import Any

import pytest

CODE_EXECUTION_TOOL = {"type": "code_execution_20250825", "name": "code_execution"}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


@pytest.fixture
def ask(anthropic_client):
    """Send one beta Messages request with the code execution tool; keyword arguments override the body."""

    def send(content: Any = "go", **overrides: Any):
        params: dict[str, Any] = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "tools": [CODE_EXECUTION_TOOL],
            "messages": [user(content)],
        }
        params.update(overrides)
        return anthropic_client.beta.messages.create(**params)

    return send
