"""The wire format: models of what the emulator sends, SSE framing, ids, and JSON Schema validation."""
