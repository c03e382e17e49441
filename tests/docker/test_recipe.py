"""The image recipe and the seccomp profile as data (no engine needed)."""

from __future__ import annotations

import json
import shutil

from emulator.image.parity import DOCUMENTED_LIBRARIES, compare
from emulator.image.recipe import RECIPE_DIR, RECIPE_FILES, image_tag, locked_versions, read_lock, recipe_hash
from emulator.sandbox.docker_seccomp import DENIED, build_profile, profile_json


def test_tag_is_a_hash_of_every_recipe_file(tmp_path):
    copy = tmp_path / "recipe"
    shutil.copytree(RECIPE_DIR, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    assert recipe_hash(copy) == recipe_hash() and image_tag(copy) == image_tag()
    seen = {recipe_hash()}
    for name in RECIPE_FILES:
        path = copy / name
        original = path.read_bytes()
        path.write_bytes(original + b"\n# changed\n")
        seen.add(recipe_hash(copy))
        path.write_bytes(original)
    assert len(seen) == len(RECIPE_FILES) + 1
    assert image_tag().startswith("code-execution-emulator-sandbox:") and len(image_tag().split(":")[1]) == 16


def test_lock_pins_every_documented_library_with_a_hash():
    pins = read_lock(RECIPE_DIR / "requirements.lock")
    assert all(len(p.sha256) == 64 for p in pins)
    versions = locked_versions()
    assert set(DOCUMENTED_LIBRARIES) <= set(versions)
    assert "rlpycairo" in versions  # reportlab[pycairo]


def test_seccomp_profile_denies_vsock_and_the_privileged_surface():
    profile = build_profile()
    assert json.loads(profile_json()) == profile
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and profile["architectures"] == ["SCMP_ARCH_X86_64"]
    allowed = set(profile["syscalls"][0]["names"])
    assert not allowed & DENIED
    assert {"ptrace", "io_uring_setup", "bpf", "unshare", "mount", "keyctl", "userfaultfd"} <= DENIED
    assert {"read", "openat", "execve", "wait4", "sendmsg"} <= allowed
    socket_rules = {
        r["args"][0]["value"]: r["action"]
        for r in profile["syscalls"]
        if r["names"] == ["socket"] and r["args"][0]["op"] == "SCMP_CMP_EQ"
    }
    assert socket_rules[40] == socket_rules[38] == socket_rules[17] == "SCMP_ACT_ERRNO"
    assert socket_rules[1] == socket_rules[2] == socket_rules[10] == "SCMP_ACT_ALLOW"


def test_parity_differences_are_printed_not_hidden():
    seen = {
        "python": "3.11.2",
        "machine": "x86_64",
        "libraries": {"pandas": {"module": "pandas", "importable": True, "version": "3.1.1"}},
        "tools": {"rg": "/usr/bin/rg", "unrar": None},
        "memory_limit": 5 * 1024**3,
        "cpu_quota": 1.0,
        "os_cpu_count": 2,
        "affinity_cpus": 1,
        "interfaces": ["lo"],
        "nameservers": [],
        "workspace_bytes": 5 * 1024**3,
    }
    report = compare(seen, {"pandas": "3.1.1"})
    text = report.render()
    assert "python 3.11.2 (documented 3.11.12)" in text
    assert report.failures == ["tool unrar missing"] and not report.ok
    assert any("os.cpu_count() 2" in d for d in report.differences)
