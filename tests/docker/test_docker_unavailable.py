"""No engine, no container: every tool call answers the API's `unavailable` (needs docker-py only)."""

from __future__ import annotations

from emulator import Emulator, bash, python, view

from .conftest import ask, results


def test_unreachable_engine_gives_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such-docker.sock")
    with Emulator(backend="docker", state_dir=tmp_path / "state") as emulator:
        message = ask(emulator, bash("echo hi"), python("print(1)"), view("/workspace"))
        shell, py, viewed = results(message)
        assert shell.type == "bash_code_execution_tool_result_error" and shell.error_code == "unavailable"
        assert py.error_code == "unavailable"
        assert viewed.error_code == "unavailable"
        report = emulator.isolation()
        assert not report.enforced("docker engine") and "unreachable" in report.warnings[0]
