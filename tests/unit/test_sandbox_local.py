"""The local sandbox backend in its "none" tier (plain processes, runs anywhere), plus the pure helpers."""

from __future__ import annotations

import base64
import difflib
import os
import re
import secrets
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from emulator.sandbox import (
    CreateResult,
    FileOpError,
    Limits,
    LocalBackend,
    LocalSandbox,
    Sandbox,
    SandboxBackend,
    SandboxUnavailable,
    StrReplaceResult,
    ViewResult,
    make_backend,
)
from emulator.sandbox.agent import TRUNCATION_MARKER, unified_hunk
from emulator.sandbox.isolation import AUDIT_ARCH_X86_64, build_seccomp_filter

FAST = Limits(timeout_s=10)


def _procs_with(marker: str) -> list[str]:
    """Host processes whose command line contains `marker`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd:
            found.append(f"{pid}: {cmd}")
    return found


@pytest.fixture
def backend(tmp_path):
    with LocalBackend(tmp_path / "state", FAST, isolation="none") as b:
        yield b


@pytest.fixture
def sb(backend):
    return backend.open("c1")


# ------------------------------------------------------------------------------------------- basics


def test_protocols_and_factory(tmp_path):
    b = make_backend("local", tmp_path, FAST, isolation="none")
    try:
        assert isinstance(b, SandboxBackend)
        assert isinstance(b.open("x"), Sandbox)
    finally:
        b.close()
    with pytest.raises(ValueError, match="unknown sandbox backend"):
        make_backend("nope", tmp_path, FAST)
    with pytest.raises(ValueError, match="workspace"):
        make_backend("docker", tmp_path, FAST, workspace="tmpfs")
    with pytest.raises(ValueError, match="isolation"):
        LocalBackend(tmp_path, FAST, isolation="chroot")


def test_invalid_container_id(backend):
    for bad in ("", "../x", "a/b", ".hidden", "x" * 200):
        with pytest.raises(ValueError):
            backend.open(bad)


def test_stdout_stderr_return_code(sb):
    r = sb.run_command("echo out; echo err >&2; exit 3")
    assert (r.stdout, r.stderr, r.return_code) == ("out\n", "err\n", 3)
    assert not r.timed_out and not r.truncated and not r.sandbox_restarted
    assert sb.run_command("kill -TERM $$").return_code == 143


def test_environment_is_clean(tmp_path, monkeypatch):
    canary = "ce-canary-" + secrets.token_hex(8)
    monkeypatch.setenv("CE_CANARY", canary)
    with LocalBackend(tmp_path, FAST, isolation="none") as b:
        sb = b.open("env")
        r = sb.run_command("env")
    assert canary not in r.stdout
    env = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    assert env["HOME"] == str(sb.workspace_dir)
    assert env["OUTPUT_DIR"] == sb.output_dir
    assert env["INPUT_DIR"] == sb.input_dir
    assert env["LANG"] == "C.UTF-8"
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"


def test_run_python(sb):
    r = sb.run_python(
        "import os, sys\nprint(os.getcwd())\nprint('oops', file=sys.stderr)\nraise SystemExit(4)"
    )
    assert r.stdout == f"{sb.workspace_dir}\n"
    assert r.stderr == "oops\n"
    assert r.return_code == 4
    r = sb.run_python("1/0")
    assert r.return_code == 1 and "ZeroDivisionError" in r.stderr


def test_streaming_callback(sb):
    seen: list[tuple[str, bytes]] = []
    r = sb.run_command("echo a; sleep 0.2; echo b >&2", on_output=lambda s, d: seen.append((s, d)))
    assert r.stdout == "a\n" and r.stderr == "b\n"
    assert ("stdout", b"a\n") in seen and ("stderr", b"b\n") in seen


# ------------------------------------------------------------------------------ processes and limits


def test_timeout_kills_escapees(sb):
    marker = f"{time.time_ns() % 1000}.{secrets.randbelow(1000) + 1}"
    t0 = time.monotonic()
    r = sb.run_command(
        f"setsid sleep {marker} >/dev/null 2>&1 & nohup sleep {marker} >/dev/null 2>&1 & "
        f"(sleep {marker} &); echo started; sleep {marker}",
        timeout_s=2,
    )
    assert r.timed_out
    assert r.return_code == 137
    assert r.stdout == "started\n"
    assert time.monotonic() - t0 < 8
    assert _procs_with(f"sleep {marker}") == []


def test_background_job_killed_after_return(sb):
    marker = f"{time.time_ns() % 1000}.{secrets.randbelow(1000) + 1}"
    t0 = time.monotonic()
    r = sb.run_command(f"sleep {marker} & echo started")
    assert r.stdout == "started\n" and r.return_code == 0
    assert time.monotonic() - t0 < 3
    assert _procs_with(f"sleep {marker}") == []
    assert sb.run_command("jobs -p; echo done").stdout == "done\n"


def test_a_finished_command_group_is_never_killed_again(sb):
    """pid_max is 32768 here: a command's group number is soon another host process's, so the handle must
    forget it once the agent has answered (a later stop() once SIGKILLed an unrelated test's processes)."""
    assert int(sb.run_command("echo $$").stdout) > 1
    stranger = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        agent = sb._agent
        assert agent is not None and agent.command_pgid is None
        agent.kill()  # what stop() does when the agent does not exit by itself
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_agent_killed_restarts(sb):
    sb.create("keep.txt", "still here")
    r = sb.run_command("echo before; sleep 0.3; kill -9 $PPID; sleep 5; echo never")
    assert r.sandbox_restarted
    assert r.return_code == 137
    assert r.stdout == "before\n"
    after = sb.run_command("cat keep.txt")
    assert after.stdout == "still here" and not after.sandbox_restarted


def test_output_cap_truncates_with_marker(tmp_path):
    with LocalBackend(tmp_path, Limits(timeout_s=10, output_cap_bytes=1000), isolation="none") as b:
        r = b.open("cap").run_command("head -c 5000 /dev/zero | tr '\\0' a; echo done >&2")
    assert r.truncated and not r.output_killed
    assert r.stdout == "a" * 1000 + TRUNCATION_MARKER.format(omitted=4000)
    assert r.stderr == "done\n"
    assert r.return_code == 0


def test_output_cap_keeps_utf8_intact(tmp_path):
    with LocalBackend(tmp_path, Limits(timeout_s=10, output_cap_bytes=5), isolation="none") as b:
        r = b.open("u").run_command("printf 'ééé'")
    assert r.stdout.startswith("éé\n[output truncated: 2 bytes omitted]")


def test_output_flood_killed_quickly(tmp_path):
    lim = Limits(timeout_s=30, output_cap_bytes=10_000, output_kill_bytes=2_000_000)
    with LocalBackend(tmp_path, lim, isolation="none") as b:
        t0 = time.monotonic()
        r = b.open("flood").run_command("yes")
    assert time.monotonic() - t0 < 10
    assert r.output_killed and r.truncated and not r.timed_out
    assert r.return_code == 137
    assert r.stdout.startswith("y\ny\n")
    assert "[output truncated:" in r.stdout
    assert len(r.stdout) < 10_200


def test_rlimits_apply(sb):
    r = sb.run_command("ulimit -n; ulimit -c; ulimit -v")
    nofile, core, vmem = r.stdout.split()
    assert int(nofile) == FAST.open_files
    assert core == "0"
    assert int(vmem) * 1024 == FAST.memory_bytes


def test_calls_on_one_sandbox_are_serialised(sb):
    results = []

    def work(i: int) -> None:
        results.append(sb.run_command(f"echo {i}").stdout)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted(f"{i}\n" for i in range(8))


def test_different_sandboxes_run_in_parallel(backend):
    a, b = backend.open("pa"), backend.open("pb")
    t0 = time.monotonic()
    threads = [threading.Thread(target=s.run_command, args=("sleep 1",)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - t0 < 1.9


def test_stop_then_call_restarts_and_destroy_removes(backend):
    sb = backend.open("life")
    sb.create("f.txt", "x")
    sb.stop()
    assert sb.run_command("cat f.txt").stdout == "x"
    root = sb.host_dir
    sb.destroy()
    assert not root.exists()
    with pytest.raises(SandboxUnavailable):
        sb.run_command("true")
    assert backend.open("life").run_command("ls").stdout == ""


def test_stop_during_a_call(sb):
    errors: list[BaseException] = []

    def long_call() -> None:
        try:
            sb.run_command("sleep 20")
        except SandboxUnavailable as e:
            errors.append(e)

    t = threading.Thread(target=long_call)
    t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    sb.stop()
    t.join(10)
    assert not t.is_alive() and time.monotonic() - t0 < 5
    assert len(errors) == 1
    assert sb.run_command("echo again").stdout == "again\n"


def test_failing_output_callback_is_reraised_after_the_command(sb):
    def boom(stream: str, data: bytes) -> None:
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        sb.run_command("echo 1; echo 2", on_output=boom)
    assert sb.run_command("echo fine").stdout == "fine\n"


def test_fifo_does_not_hang_the_agent(sb):
    sb.run_command("mkfifo pipe")
    t0 = time.monotonic()
    for r in (sb.view("pipe"), sb.str_replace("pipe", "a", "b"), sb.create("pipe", "x")):
        assert isinstance(r, FileOpError) and r.code == "invalid_tool_input"
    with pytest.raises(ValueError):
        sb.read_file("pipe")
    assert time.monotonic() - t0 < 5


def test_closed_backend_refuses(tmp_path):
    b = LocalBackend(tmp_path, FAST, isolation="none")
    sb = b.open("c")
    b.close()
    with pytest.raises(SandboxUnavailable):
        b.open("c")
    with pytest.raises(SandboxUnavailable):
        sb.run_command("true")


# ----------------------------------------------------------------------------------- files


def test_files_persist_across_calls_and_reopen(tmp_path):
    with LocalBackend(tmp_path, FAST, isolation="none") as b:
        sb = b.open("persist")
        sb.run_command("echo hello > a.txt")
        assert sb.create("b.txt", "bee") == CreateResult(is_file_update=False)
        out_dir = sb.output_dir
    with LocalBackend(tmp_path, FAST, isolation="none") as b:
        sb = b.open("persist")
        assert sb.output_dir == out_dir
        assert sb.run_command("cat a.txt b.txt").stdout == "hello\nbee"


def test_output_files_detected(sb):
    r = sb.run_command(
        'echo x > "$OUTPUT_DIR/a.txt"; mkdir -p "$OUTPUT_DIR/sub"; printf yy > "$OUTPUT_DIR/sub/b.bin"'
    )
    assert [(f.name, f.size_bytes) for f in r.output_files] == [("a.txt", 2), ("b.bin", 2)]
    assert r.output_files[0].path == f"{sb.output_dir}/a.txt"
    assert sb.read_file(r.output_files[1].path) == b"yy"
    r = sb.run_command('echo more >> "$OUTPUT_DIR/sub/b.bin"; echo untouched > not-output.txt')
    assert [f.name for f in r.output_files] == ["b.bin"]
    assert sb.run_command("true").output_files == ()
    assert {f.name for f in sb.list_output_files()} == {"a.txt", "b.bin"}


def test_put_and_read_file(sb):
    sb.put_file("$INPUT_DIR/data.csv", b"a,b\n1,2\n")
    assert sb.run_command('cat "$INPUT_DIR/data.csv"').stdout == "a,b\n1,2\n"
    sb.put_file("/workspace/deep/er/x.bin", bytes(range(256)))
    assert sb.read_file("deep/er/x.bin") == bytes(range(256))
    with pytest.raises(FileNotFoundError):
        sb.read_file("missing.txt")
    with pytest.raises(IsADirectoryError):
        sb.read_file("deep")


def test_create_and_view(sb):
    assert sb.create("notes/a.txt", "one\ntwo\nthree\n") == CreateResult(is_file_update=False)
    assert sb.create("notes/a.txt", "one\ntwo\nthree\n") == CreateResult(is_file_update=True)
    v = sb.view("notes/a.txt")
    # as recorded from the real tool: raw text without line numbers and without the final newline
    assert v == ViewResult("text", "one\ntwo\nthree", num_lines=3, start_line=1, total_lines=3)
    assert sb.view(f"{sb.workspace_dir}/notes/a.txt") == v
    assert sb.view("/workspace/notes/a.txt") == v  # the sandbox path maps onto the host directory
    assert sb.view("notes/a.txt", view_range=(2, -1)) == ViewResult("text", "two\nthree", 2, 2, 3)
    assert sb.view("notes/a.txt", view_range=(1, 1)) == ViewResult("text", "one", 1, 1, 3)
    sb.create("notes/sub/b.txt", "no newline")
    assert sb.view("notes/sub/b.txt").num_lines == 1
    listing = sb.view("notes")
    assert isinstance(listing, ViewResult)
    assert listing.content == "a.txt\nsub/\nsub/b.txt"


def test_view_image_and_pdf(sb):
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 20
    sb.put_file("pic.png", png)
    v = sb.view("pic.png")
    assert isinstance(v, ViewResult) and v.file_type == "image"
    assert base64.b64decode(v.content) == png
    sb.put_file("doc.pdf", b"%PDF-1.4\n")
    assert sb.view("doc.pdf").file_type == "pdf"


def test_env_var_paths_expand(sb):
    assert sb.create("$OUTPUT_DIR/r.txt", "r") == CreateResult(False)
    assert sb.run_command('cat "$OUTPUT_DIR/r.txt"').stdout == "r"
    sb.put_file("$INPUT_DIR/i.txt", b"i")
    assert sb.view("${INPUT_DIR}/i.txt").content == "i"


def test_str_replace_exact_hunk(sb):
    before = "".join(f"line {i}\n" for i in range(1, 31))
    sb.create("f.txt", before)
    r = sb.str_replace("f.txt", "line 20\nline 21\n", "LINE twenty\nLINE 21\n")
    after = before.replace("line 20\nline 21\n", "LINE twenty\nLINE 21\n")
    assert sb.view("f.txt").content == after.removesuffix("\n")
    diff = list(difflib.unified_diff(before.splitlines(), after.splitlines(), n=3, lineterm=""))
    header = diff[2]
    assert header == "@@ -17,8 +17,8 @@"
    assert r == StrReplaceResult(old_start=17, old_lines=8, new_start=17, new_lines=8, lines=tuple(diff[3:]))
    assert r.lines[:4] == (" line 17", " line 18", " line 19", "-line 20")


def test_str_replace_errors(tmp_path):
    with LocalBackend(tmp_path, FAST, isolation="none") as b:
        sb = b.open("e")
        sb.create("f.txt", "a\nb\na\n")
        miss = sb.str_replace("f.txt", "zzz", "y")
        # The sandbox reports what happened; the engine decides which API code that becomes.
        assert miss == FileOpError("string_not_found", "String to replace not found in file.")
        many = sb.str_replace("f.txt", "a", "y")
        assert isinstance(many, FileOpError) and many.code == "invalid_tool_input"
        assert "2 occurrences" in many.message and "lines 1, 3" in many.message
        assert sb.str_replace("nope.txt", "a", "b").code == "file_not_found"
        assert sb.str_replace("f.txt", "", "b").code == "invalid_tool_input"
        assert sb.read_file("f.txt") == b"a\nb\na\n"


def test_bad_paths(sb):
    assert sb.view("missing.txt").code == "file_not_found"
    for bad in ("", "   ", "a\x00b"):
        for r in (sb.view(bad), sb.create(bad, "x"), sb.str_replace(bad, "a", "b")):
            assert isinstance(r, FileOpError) and r.code == "invalid_tool_input"
    sb.run_command("mkdir d")
    assert sb.create("d", "x").code == "invalid_tool_input"
    with pytest.raises(ValueError):
        sb.put_file("a\x00b", b"")


def test_file_tools_confined_in_none_tier(backend, tmp_path):
    a, b = backend.open("ca"), backend.open("cb")
    secret = "ce-secret-" + secrets.token_hex(4)
    b.create("secret.txt", secret)
    # a symlink planted in the workspace pointing at a host file
    a.run_command("ln -s /etc/passwd evil; ln -s /workspace/../../etc evil-dir")
    for path in ("evil", "evil-dir/passwd", "/workspace/../../etc/passwd", f"{b.workspace_dir}/secret.txt"):
        r = a.view(path)
        assert isinstance(r, FileOpError) and r.code == "invalid_tool_input", path
    with pytest.raises(ValueError):
        a.read_file(f"{b.workspace_dir}/secret.txt")
    assert a.create("evil", "overwrite").code == "invalid_tool_input"
    assert "root:" in Path("/etc/passwd").read_text()


def test_report_none_tier(backend):
    report = backend.report()
    assert backend.tier == "none"
    assert report.backend == "local/none"
    assert not report.enforced("network namespace")
    assert not report.enforced("seccomp")
    assert report.enforced("rlimits")
    assert any("isolation tier 'none'" in w for w in report.warnings)


# ----------------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("".join(f"{i}\n" for i in range(20)), "".join(f"{i}\n" for i in range(20)).replace("10\n", "ten\n")),
        ("a\nb\nc\n", "a\nB\nB2\nc\n"),
        ("x\n", "y\n"),
        ("a\nb\n", "a\nb\nc\n"),
        ("a\nb\nc\n", "b\nc\n"),
    ],
)
def test_unified_hunk_matches_difflib(old, new):
    diff = list(difflib.unified_diff(old.split("\n")[:-1], new.split("\n")[:-1], n=3, lineterm=""))
    hunk = unified_hunk(old, new)
    assert hunk["lines"] == diff[3:]
    m = re.fullmatch(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", diff[2])
    assert m is not None
    a, b, c, d = m.groups()
    expected = (int(a), int(b if b is not None else 1), int(c), int(d if d is not None else 1))
    assert (hunk["old_start"], hunk["old_lines"], hunk["new_start"], hunk["new_lines"]) == expected


def test_unified_hunk_merges_distant_changes():
    old = "".join(f"L{i}\n" for i in range(30))
    new = old.replace("L5\n", "five\n").replace("L20\n", "twenty\n")
    diff = difflib.unified_diff(old.splitlines(), new.splitlines(), n=3)
    assert sum(line.startswith("@@") for line in diff) == 2  # difflib would print two hunks
    hunk = unified_hunk(old, new)
    assert (hunk["old_start"], hunk["old_lines"], hunk["new_start"], hunk["new_lines"]) == (3, 22, 3, 22)
    assert hunk["lines"][0] == " L2" and hunk["lines"][-1] == " L23"
    assert len(hunk["lines"]) == 24
    assert "-L5" in hunk["lines"] and "+twenty" in hunk["lines"]


def test_seccomp_program_shape():
    prog = build_seccomp_filter("x86_64")
    assert len(prog) % 8 == 0 and len(prog) // 8 < 4096
    code, _jt, _jf, k = struct.unpack("<HBBI", prog[:8])
    assert (code, k) == (0x20, 4)  # load seccomp_data.arch
    assert struct.unpack("<HBBI", prog[8:16])[3] == AUDIT_ARCH_X86_64
    with pytest.raises(RuntimeError):
        build_seccomp_filter("aarch64")


def test_local_sandbox_type(sb):
    assert isinstance(sb, LocalSandbox)
    assert sb.tier == "none"
    assert sb.ping() < 5


def test_the_agent_sweep_kills_only_the_process_it_saw():
    """A pid read from /proc may belong to another program by the time it is killed (pid reuse): the
    sweep's kill checks, on a pinned process, that it is still the child it saw."""
    from emulator.sandbox.agent import _kill_if_child_of

    stranger = subprocess.Popen(["sleep", "30"])
    try:
        _kill_if_child_of(stranger.pid, parent=1)  # what the walk saw under that number: another process
        assert stranger.poll() is None
        _kill_if_child_of(stranger.pid, parent=os.getpid())
        assert stranger.wait(timeout=5) == -9
    finally:
        stranger.kill()
        stranger.wait()


def test_a_cgroup_sweep_spares_a_process_outside_the_group(tmp_path):
    from emulator.sandbox.isolation import SandboxCgroup, detect_cgroups

    group = SandboxCgroup(detect_cgroups(), "ce-sandbox-test-parent", "nobody-joined", FAST)
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        group._kill_member(stranger.pid)  # e.g. a number read from cgroup.procs, since reused
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
