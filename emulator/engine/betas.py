"""The `anthropic-beta` header: lenient by default; strict mode enforces the documented betas."""

from __future__ import annotations

from emulator.engine.catalog import REQUIRED_BETA, SUB_TOOLS
from emulator.errors import InvalidRequestError

KNOWN_BETAS = frozenset(
    {
        "code-execution-2025-05-22",
        "code-execution-2025-08-25",
        "files-api-2025-04-14",
        "skills-2025-10-02",
        "advanced-tool-use-2025-11-20",
        "fine-grained-tool-streaming-2025-05-14",
        "message-batches-2024-09-24",
        "prompt-caching-2024-07-31",
        "token-efficient-tools-2025-02-19",
        "interleaved-thinking-2025-05-14",
        "context-management-2025-06-27",
        "context-1m-2025-08-07",
        "mcp-client-2025-04-04",
        "mcp-client-2025-11-20",
        "web-fetch-2025-09-10",
        "output-128k-2025-02-19",
        "structured-outputs-2025-11-13",
        "effort-2025-11-24",
        "compact-2026-01-12",
        "message-threads-2026-08-12",
    }
)


def parse_betas(header_values: list[str]) -> frozenset[str]:
    return frozenset(part.strip() for value in header_values for part in value.split(",") if part.strip())


def check_betas(betas: frozenset[str], tool_version: str | None, tool_index: int) -> None:
    """Strict mode: unknown betas and a code execution version without its beta are 400s, as documented."""
    unknown = sorted(betas - KNOWN_BETAS)
    if unknown:
        names = ", ".join(f"`{name}`" for name in unknown)
        raise InvalidRequestError(
            f"Unexpected value(s) {names} for the `anthropic-beta` header. Please consult our documentation "
            "at platform.claude.com/docs or try again without the header."
        )
    needed = REQUIRED_BETA.get(tool_version or "")
    if needed and needed not in betas:
        available = sorted(
            version
            for version in SUB_TOOLS
            if REQUIRED_BETA.get(version) in betas or version not in REQUIRED_BETA
        )
        expected = ", ".join(f"'{tag}'" for tag in [*available, "custom"])
        raise InvalidRequestError(
            f"tools.{tool_index}: Input tag '{tool_version}' found using 'type' does not match any of the "
            f"expected tags: {expected}"
        )
