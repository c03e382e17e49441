"""Who decides the assistant's steps: scripts queued by tests, or the built-in fenced-block model."""
