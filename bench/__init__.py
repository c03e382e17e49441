"""Benchmarks of the emulator against the physical floors measured in the same run (`python -m bench`)."""
