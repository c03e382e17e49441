"""State the emulator keeps between requests: the clock, containers and the request journal."""
