"""The turn loop and tool semantics: from a validated request to content blocks."""
