"""The Docker backend through the official SDK: every tool runs in the container, containers are reused,
the image matches the documented environment (parity), and an unchanged recipe is not rebuilt."""

from __future__ import annotations

import io

import pytest

from emulator import bash, create, python, str_replace, text, view
from emulator.cli import main as cli_main
from emulator.image import build_image, image_tag, recipe_hash
from emulator.image.parity import DOCUMENTED_LIBRARIES, DOCUMENTED_TOOLS, run_parity
from emulator.image.recipe import locked_versions

from .conftest import ask, results

pytestmark = pytest.mark.docker


def test_documented_libraries_import(docker_emulator):
    message = ask(
        docker_emulator, bash('python -c "import pandas, sklearn, matplotlib; print(pandas.__name__)"')
    )
    (result,) = results(message)
    assert (result.stdout, result.return_code) == ("pandas\n", 0), result.stderr


def test_each_tool_runs_in_the_container(docker_emulator):
    message = ask(
        docker_emulator,
        bash("id -u; hostname; pwd; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '"),
        python("import sys, os\nprint(sys.version_info[:2], os.getcwd())"),
        create("/workspace/notes.txt", "alpha\nbeta\ngamma\n"),
        str_replace("/workspace/notes.txt", "beta", "BETA"),
        view("/workspace/notes.txt"),
        text("done"),
    )
    shell, py, created, replaced, viewed = results(message)
    assert shell.stdout == "1000\nsandbox\n/workspace\nlo\n" and shell.return_code == 0
    assert py.stdout.rstrip("\n") == "(3, 11) /workspace"
    assert created.is_file_update is False
    assert replaced.lines == [" alpha", "-beta", "+BETA", " gamma"]
    assert viewed.content == "alpha\nBETA\ngamma" and viewed.num_lines == 3


def test_container_reuse_sees_files_and_tmp(docker_emulator):
    first = ask(
        docker_emulator,
        create("/tmp/x.py", "print(6 * 7)\n"),
        bash("echo kept > /workspace/state.txt; echo $OUTPUT_DIR > /workspace/outdir"),
    )
    container = first.container.id
    second = ask(docker_emulator, bash("python /tmp/x.py; cat state.txt; cat outdir"), container=container)
    (result,) = results(second)
    assert second.container.id == container
    out_dir = result.stdout.splitlines()[2]
    assert result.stdout.splitlines()[:2] == ["42", "kept"]
    assert out_dir.startswith("/files/output/") and len(out_dir) == len("/files/output/") + 16


def test_background_processes_die_with_their_command(docker_emulator):
    message = ask(docker_emulator, bash("sleep 30 & echo started"))
    (started,) = results(message)
    assert started.stdout == "started\n"
    later = ask(docker_emulator, bash("pgrep -u 1000 -c sleep || true"), container=message.container.id)
    assert results(later)[0].stdout.strip() == "0"


def test_output_files_are_reported(docker_emulator):
    message = ask(docker_emulator, bash("true"))
    box = docker_emulator.runtime.services.backend.open(message.container.id)
    result = box.run_command('echo data > "$OUTPUT_DIR/report.txt"; echo $OUTPUT_DIR')
    (output,) = result.output_files
    assert output.path == result.stdout.strip() + "/report.txt" and output.size_bytes == 5
    assert box.read_file(output.path) == b"data\n"


def test_parity_report_matches_the_documented_environment(docker_emulator):
    box = docker_emulator.runtime.services.backend.open("container_parity")
    try:
        report = run_parity(box, locked_versions())
    finally:
        box.destroy()
    seen = report.seen
    assert seen["python"].startswith("3.11.")
    assert set(seen["libraries"]) == set(DOCUMENTED_LIBRARIES)
    assert all(entry["importable"] for entry in seen["libraries"].values()), report.render()
    assert set(seen["tools"]) == set(DOCUMENTED_TOOLS) and all(seen["tools"].values())
    assert seen["memory_limit"] == 5 * 1024**3 and seen["cpu_quota"] == 1.0
    assert seen["interfaces"] == ["lo"] and seen["nameservers"] == []
    assert report.ok, report.render()
    if seen["python"] != "3.11.12":  # built offline: the difference is printed, not hidden
        assert f"python {seen['python']} (documented 3.11.12)" in report.render()


def test_doctor_image_prints_the_parity_report(sandbox_image, capsys):
    assert cli_main(["doctor", "--image"]) == 0
    out = capsys.readouterr().out
    assert "backend: docker" in out and "environment parity" in out
    assert "pandas" in out and "tool rg:" in out and "memory limit seen 5368709120" in out


def test_unchanged_recipe_is_not_rebuilt(docker_client, sandbox_image):
    assert sandbox_image == image_tag() and sandbox_image.endswith(recipe_hash()[:16])
    out = io.StringIO()
    outcome = build_image(docker_client, out=out)
    assert outcome.built is False and outcome.tag == sandbox_image
    assert "nothing to build" in out.getvalue()
    labels = docker_client.images.get(sandbox_image).labels
    assert labels["ce.image.recipe"] == recipe_hash()


def test_isolation_report_holds_every_guarantee(docker_emulator):
    report = docker_emulator.isolation()
    assert report.backend == "docker"
    for name in (
        "network none",
        "unprivileged user",
        "no new privileges",
        "capabilities dropped",
        "seccomp",
        "read-only root filesystem",
        "memory limit",
        "memory+swap limit",
        "pids limit",
        "cpu quota",
        "small /tmp",
        "no docker socket",
        "host secrets unreadable",
        "workspace disk quota",
        "no resolver",
        "OOM detection",
    ):
        assert report.enforced(name), (name, report)
