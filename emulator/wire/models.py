"""Pydantic models of what the emulator sends, serialised exactly as the wire has it.

Field order is the order the real API writes keys in (see the recordings), and `to_wire()` drops the
optional keys the real API leaves out when they have no value, while keeping the ones it writes as `null`
(`stop_sequence`, `stop_details`). These models are ours: nothing here comes from the SDK's types.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer
from pydantic.functional_serializers import SerializerFunctionWrapHandler


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds and `Z`, as the API writes `expires_at` and `created_at`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class WireModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: keys the real API omits (rather than writes `null`) when they have no value
    omit_if_none: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _drop_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in self.omit_if_none:
            if data.get(key, 0) is None:
                del data[key]
        return data

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# --- callers and client/server tool use -------------------------------------------------------------------


class DirectCaller(WireModel):
    type: Literal["direct"] = "direct"


class CodeExecutionCaller(WireModel):
    type: Literal["code_execution_20250825", "code_execution_20260120"]
    tool_id: str


Caller = Annotated[DirectCaller | CodeExecutionCaller, Field(discriminator="type")]


class TextBlock(WireModel):
    omit_if_none = frozenset({"citations"})
    type: Literal["text"] = "text"
    text: str
    citations: list[dict[str, Any]] | None = None


class ThinkingBlock(WireModel):
    type: Literal["thinking"] = "thinking"
    thinking: str
    signature: str


class ServerToolUseBlock(WireModel):
    omit_if_none = frozenset({"caller"})
    type: Literal["server_tool_use"] = "server_tool_use"
    id: str
    name: Literal["bash_code_execution", "text_editor_code_execution", "code_execution"]
    input: dict[str, Any]
    caller: Caller | None = None


class ToolUseBlock(WireModel):
    omit_if_none = frozenset({"caller"})
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any]
    caller: Caller | None = None


# --- bash ---------------------------------------------------------------------------------------------------

BashErrorCode = Literal[
    "invalid_tool_input",
    "unavailable",
    "too_many_requests",
    "execution_time_exceeded",
    "output_file_too_large",
    "container_expired",
]


class BashOutputBlock(WireModel):
    type: Literal["bash_code_execution_output"] = "bash_code_execution_output"
    file_id: str


class BashResult(WireModel):
    type: Literal["bash_code_execution_result"] = "bash_code_execution_result"
    stdout: str
    stderr: str
    return_code: int
    content: list[BashOutputBlock] = Field(default_factory=list)


class BashError(WireModel):
    type: Literal["bash_code_execution_tool_result_error"] = "bash_code_execution_tool_result_error"
    error_code: BashErrorCode


class BashToolResultBlock(WireModel):
    type: Literal["bash_code_execution_tool_result"] = "bash_code_execution_tool_result"
    tool_use_id: str
    content: Annotated[BashResult | BashError, Field(discriminator="type")]


# --- text editor --------------------------------------------------------------------------------------------

TextEditorErrorCode = Literal[
    "invalid_tool_input",
    "unavailable",
    "too_many_requests",
    "execution_time_exceeded",
    "file_not_found",
    "container_expired",
    "string_not_found",
]


class ViewResult(WireModel):
    type: Literal["text_editor_code_execution_view_result"] = "text_editor_code_execution_view_result"
    file_type: Literal["text", "image", "pdf"]
    content: str
    num_lines: int | None = None
    start_line: int | None = None
    total_lines: int | None = None


class CreateResult(WireModel):
    type: Literal["text_editor_code_execution_create_result"] = "text_editor_code_execution_create_result"
    is_file_update: bool


class StrReplaceResult(WireModel):
    type: Literal["text_editor_code_execution_str_replace_result"] = (
        "text_editor_code_execution_str_replace_result"
    )
    old_start: int | None = None
    old_lines: int | None = None
    new_start: int | None = None
    new_lines: int | None = None
    lines: list[str] | None = None


class TextEditorError(WireModel):
    omit_if_none = frozenset({"error_message"})
    type: Literal["text_editor_code_execution_tool_result_error"] = (
        "text_editor_code_execution_tool_result_error"
    )
    error_code: TextEditorErrorCode
    error_message: str | None = None


class TextEditorToolResultBlock(WireModel):
    type: Literal["text_editor_code_execution_tool_result"] = "text_editor_code_execution_tool_result"
    tool_use_id: str
    content: Annotated[
        ViewResult | CreateResult | StrReplaceResult | TextEditorError, Field(discriminator="type")
    ]


# --- Python (legacy tool, and Python cells under newer versions) --------------------------------------------

CodeExecutionErrorCode = Literal[
    "invalid_tool_input", "unavailable", "too_many_requests", "execution_time_exceeded", "container_expired"
]


class CodeExecutionOutputBlock(WireModel):
    type: Literal["code_execution_output"] = "code_execution_output"
    file_id: str


class CodeExecutionResult(WireModel):
    type: Literal["code_execution_result"] = "code_execution_result"
    stdout: str
    stderr: str
    return_code: int
    content: list[CodeExecutionOutputBlock] = Field(default_factory=list)


class CodeExecutionError(WireModel):
    type: Literal["code_execution_tool_result_error"] = "code_execution_tool_result_error"
    error_code: CodeExecutionErrorCode


class CodeExecutionToolResultBlock(WireModel):
    type: Literal["code_execution_tool_result"] = "code_execution_tool_result"
    tool_use_id: str
    content: Annotated[CodeExecutionResult | CodeExecutionError, Field(discriminator="type")]


ContentBlock = Annotated[
    TextBlock
    | ThinkingBlock
    | ServerToolUseBlock
    | ToolUseBlock
    | BashToolResultBlock
    | TextEditorToolResultBlock
    | CodeExecutionToolResultBlock,
    Field(discriminator="type"),
]

ToolResultBlock = BashToolResultBlock | TextEditorToolResultBlock | CodeExecutionToolResultBlock


# --- the message --------------------------------------------------------------------------------------------


class ContainerSkill(WireModel):
    type: Literal["anthropic", "custom"]
    skill_id: str
    version: str


class Container(WireModel):
    omit_if_none = frozenset({"skills"})
    id: str
    expires_at: str
    skills: list[ContainerSkill] | None = None


class CacheCreation(WireModel):
    ephemeral_5m_input_tokens: int = 0
    ephemeral_1h_input_tokens: int = 0


class ServerToolUsage(WireModel):
    web_search_requests: int = 0
    web_fetch_requests: int = 0


class Usage(WireModel):
    omit_if_none = frozenset({"inference_geo", "server_tool_use", "cache_creation", "service_tier"})
    input_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation: CacheCreation | None = Field(default_factory=CacheCreation)
    output_tokens: int
    service_tier: Literal["standard", "priority", "batch"] | None = "standard"
    inference_geo: str | None = None
    server_tool_use: ServerToolUsage | None = Field(default_factory=ServerToolUsage)


StopReason = Literal[
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
    "model_context_window_exceeded",
]


class Message(WireModel):
    """A Messages API response. `stop_details` is written (as null) only by the 2026 fidelity profile."""

    omit_if_none = frozenset({"container"})
    model: str
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    content: list[ContentBlock]
    container: Container | None = None
    stop_reason: StopReason | None
    stop_sequence: str | None = None
    stop_details: dict[str, Any] | None = None
    usage: Usage
    include_stop_details: bool = Field(default=True, exclude=True)

    def to_wire(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        if not self.include_stop_details:
            data.pop("stop_details", None)
        return data


# --- errors -------------------------------------------------------------------------------------------------


def error_envelope(error_type: str, message: str, request_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type, "message": message}}
    if request_id is not None:
        body["request_id"] = request_id
    return body
