"""Build the sandbox image without a container registry: debootstrap, a host-side wheelhouse, `docker import`.

Only Debian's mirror and PyPI are needed, and every download happens on the host (a dockerd started with
`--bridge=none` gives build containers no network, so `docker build` could not fetch anything). The steps:

1. download the pinned wheels (and pycairo's sdist plus its build backend) on the host, into a cache;
2. debootstrap a minimal bookworm root filesystem (main + non-free, for unrar);
3. configure it the way slim images are (no recommends, no docs/man/locales, no services);
4. install the runtime Debian packages;
5. build pycairo's wheel in a throwaway overlay of the root filesystem (cached by its inputs);
6. make a venv at /opt/venv and install the wheelhouse offline (`--no-index`);
7. run `finalize.sh` (the sandbox user, mount points, tool names, cleanup), shared with the Dockerfile;
8. `tar | docker import`, which flattens the result into one layer and needs no network.

Needs root (debootstrap, chroot, mounts), `debootstrap` and a local Docker engine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from .progress import ImageBuildError, Progress, clean_env, host_ca_bundle
from .recipe import (
    DEBIAN_SUITE,
    DEFAULT_MIRROR,
    DEFAULT_SECURITY_MIRROR,
    IMAGE_PATH,
    LABEL_RECIPE,
    LABEL_VARIANT,
    RECIPE_DIR,
    REPOSITORY,
    SOURCE_BUILT,
    VENV,
    Pin,
    debian_packages,
    read_lock,
    recipe_hash,
)

PYTHON_TAG = "3.11"
#: pip 23 does not expand manylinux_2_28 to the lower tags, so every one is listed (glibc 2.36 = bookworm)
PLATFORMS = (
    "linux_x86_64",
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
    *(f"manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1)),
)
PYCAIRO_BUILD_PACKAGES = (
    "gcc",
    "libc6-dev",
    "pkg-config",
    "libcairo2-dev",
    "python3-dev",
    "ninja-build",
    "patchelf",
)
DPKG_EXCLUDES = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
"""
CHROOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
}
STEPS = 8


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "code-execution-emulator" / "image"


def check_prerequisites() -> list[str]:
    """What is missing on this machine for an offline build (empty: nothing)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (debootstrap, chroot and mounts need it)")
    for tool in ("debootstrap", "chroot", "mount", "umount", "tar"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            missing.append(
                f"`{tool}` (apt-get install {'debootstrap' if tool == 'debootstrap' else 'coreutils'})"
            )
    return missing


# ------------------------------------------------------------------------------------------------ mounts


def _mountpoints_under(root: Path) -> list[str]:
    prefix = str(root.resolve()).rstrip("/") + "/"
    points = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return points
    for line in lines:
        fields = line.split()
        if len(fields) > 4:
            point = fields[4].replace("\\040", " ")
            if point.startswith(prefix) or point == prefix.rstrip("/"):
                points.append(point)
    return points


def unmount_under(root: Path) -> None:
    """Unmount everything mounted at or below `root`, deepest first (lazily if busy)."""
    for point in sorted(_mountpoints_under(root), key=len, reverse=True):
        if subprocess.run(["umount", point], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)


@contextlib.contextmanager
def _chroot_mounts(progress: Progress, root: Path, binds: dict[str, Path] | None = None) -> Iterator[None]:
    """/proc, /dev and /sys in `root` (Java's and ca-certificates' scripts need them) plus extra binds."""
    try:
        for sub in ("proc", "dev", "sys"):
            (root / sub).mkdir(exist_ok=True)
        progress.run(["mount", "-t", "proc", "proc", str(root / "proc")])
        progress.run(["mount", "--rbind", "/dev", str(root / "dev")])
        progress.run(["mount", "--make-rslave", str(root / "dev")])
        progress.run(["mount", "-t", "sysfs", "-o", "ro", "sysfs", str(root / "sys")])
        for inside, source in (binds or {}).items():
            target = root / inside.lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            progress.run(["mount", "--bind", str(source), str(target)])
        yield
    finally:
        for inside in reversed(list((binds or {}).keys())):
            subprocess.run(["umount", "-l", str(root / inside.lstrip("/"))], capture_output=True, check=False)
        for sub in ("sys", "dev", "proc"):
            subprocess.run(["umount", "-l", str(root / sub)], capture_output=True, check=False)


def _chroot(progress: Progress, root: Path, *argv: str) -> None:
    progress.run(["chroot", str(root), *argv], env=CHROOT_ENV)


# ------------------------------------------------------------------------------------------------ downloads


def _write_lock(pins: list[Pin], path: Path, *, hashes: bool) -> None:
    lines = [f"{p.name}=={p.version}" + (f" --hash=sha256:{p.sha256}" if hashes else "") for p in pins]
    path.write_text("\n".join(lines) + "\n")


def _pip_env(home: Path) -> dict[str, str]:
    extra = {"PIP_CONFIG_FILE": "/dev/null", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "HOME": str(home)}
    ca = host_ca_bundle()
    if ca:
        extra["PIP_CERT"] = ca
    return clean_env(**extra)


def download_wheelhouse(progress: Progress, wheelhouse: Path, scratch: Path) -> None:
    """Every pinned wheel for CPython 3.11 / manylinux x86_64, hash-checked, into `wheelhouse` (a cache:
    files already there are not downloaded again), plus the sdists of `SOURCE_BUILT` and their backend."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    pins = read_lock(RECIPE_DIR / "requirements.lock")
    wheels = [p for p in pins if p.name not in SOURCE_BUILT]
    lock = scratch / "wheels.lock"
    _write_lock(wheels + read_lock(RECIPE_DIR / "build-requirements.lock"), lock, hashes=True)
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "--only-binary=:all:"]
    argv += ["--python-version", PYTHON_TAG, "--implementation", "cp"]
    for abi in ("cp311", "abi3", "none"):
        argv += ["--abi", abi]
    for platform in PLATFORMS:
        argv += ["--platform", platform]
    argv += ["--progress-bar", "off", "-d", str(wheelhouse), "-r", str(lock)]
    progress.run(argv, env=_pip_env(scratch))
    for pin in pins:
        if pin.name in SOURCE_BUILT:
            fetch_sdist(pin, wheelhouse / "sdist")


def _ssl_context() -> ssl.SSLContext:
    ca = host_ca_bundle()
    return ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()


def fetch_sdist(pin: Pin, dest: Path) -> Path:
    """The source distribution of `pin` from PyPI, checked against the lock's sha256 (pip cannot download an
    sdist without building its metadata, which for pycairo needs cairo's headers on the host)."""
    dest.mkdir(parents=True, exist_ok=True)
    for existing in dest.glob(f"{pin.name}-{pin.version}.*"):
        if hashlib.sha256(existing.read_bytes()).hexdigest() == pin.sha256:
            return existing
    ctx = _ssl_context()
    # the simple API (PEP 691 JSON) is what every PyPI mirror and proxy serves
    request = urllib.request.Request(
        f"https://pypi.org/simple/{pin.name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, context=ctx, timeout=60) as r:
        meta = json.load(r)
    files = [f for f in meta.get("files", []) if f.get("hashes", {}).get("sha256") == pin.sha256]
    if not files:
        raise RuntimeError(f"PyPI has no file of {pin.name} {pin.version} with the locked sha256")
    target = dest / files[0]["filename"]
    with urllib.request.urlopen(files[0]["url"], context=ctx, timeout=300) as r:
        data = r.read()
    if hashlib.sha256(data).hexdigest() != pin.sha256:
        raise RuntimeError(f"{files[0]['filename']}: sha256 does not match the lock")
    target.write_bytes(data)
    return target


# ------------------------------------------------------------------------------------------------ rootfs


def _configure_rootfs(root: Path, mirror: str, security_mirror: str) -> None:
    components = "main non-free"
    (root / "etc/apt/sources.list").write_text(
        f"deb {mirror} {DEBIAN_SUITE} {components}\n"
        f"deb {mirror} {DEBIAN_SUITE}-updates {components}\n"
        f"deb {security_mirror} {DEBIAN_SUITE}-security {components}\n"
    )
    (root / "etc/apt/apt.conf.d/99ce-no-recommends").write_text(
        'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n'
    )
    (root / "etc/dpkg/dpkg.cfg.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/dpkg/dpkg.cfg.d/99ce-excludes").write_text(DPKG_EXCLUDES)
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    # openjdk's postinst registers man page alternatives and fails if the directory is missing
    (root / "usr/share/man/man1").mkdir(parents=True, exist_ok=True)
    # name resolution for apt inside the chroot; emptied again by the last step
    with contextlib.suppress(OSError):
        (root / "etc/resolv.conf").unlink()
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")


def _pycairo_wheel(progress: Progress, root: Path, work: Path, wheelhouse: Path, cache: Path) -> Path:
    """pycairo's cp311 wheel, built against the image's libcairo in a throwaway overlay (cached)."""
    pin = next(p for p in read_lock(RECIPE_DIR / "requirements.lock") if p.name == "pycairo")
    key = hashlib.sha256(
        (pin.sha256 + (RECIPE_DIR / "build-requirements.lock").read_text() + DEBIAN_SUITE).encode()
    ).hexdigest()[:16]
    cached_dir = cache / "built" / key
    found = sorted(cached_dir.glob("pycairo-*.whl")) if cached_dir.is_dir() else []
    if found:
        progress.say(f"      pycairo wheel from the cache ({found[0].name})")
        return found[0]
    upper, scratch, merged = work / "overlay-upper", work / "overlay-work", work / "overlay-root"
    for d in (upper, scratch, merged):
        d.mkdir(parents=True, exist_ok=True)
    opts = f"lowerdir={root},upperdir={upper},workdir={scratch}"
    progress.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)])
    try:
        out = work / "pycairo-out"
        out.mkdir(exist_ok=True)
        with _chroot_mounts(progress, merged, {"/tmp/wheels": wheelhouse, "/tmp/out": out}):
            _chroot(progress, merged, "apt-get", "install", "-y", *PYCAIRO_BUILD_PACKAGES)
            _chroot(progress, merged, "python3", "-m", "venv", "/tmp/build-venv")
            sdist = next((wheelhouse / "sdist").glob(f"pycairo-{pin.version}.*"))
            _chroot(
                progress,
                merged,
                "/tmp/build-venv/bin/pip",
                "wheel",
                "--no-index",
                "--find-links",
                "/tmp/wheels",
                "--no-deps",
                "-w",
                "/tmp/out",
                f"/tmp/wheels/sdist/{sdist.name}",
            )
        built = sorted(out.glob("pycairo-*.whl"))
        if not built:
            raise RuntimeError("pip reported success but wrote no pycairo wheel")
        cached_dir.mkdir(parents=True, exist_ok=True)
        target = cached_dir / built[0].name
        shutil.copyfile(built[0], target)
        return target
    finally:
        unmount_under(merged)
        subprocess.run(["umount", "-l", str(merged)], capture_output=True, check=False)
        shutil.rmtree(upper, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _import(progress: Progress, client: Any, root: Path, tag: str, digest: str) -> str:
    """Stream `tar` of the root filesystem into the engine's image import (one flattened layer)."""
    changes = [
        f"ENV PATH={IMAGE_PATH}",
        "ENV LANG=C.UTF-8",
        "ENV OMP_NUM_THREADS=1",
        "ENV OPENBLAS_NUM_THREADS=1",
        "ENV MKL_NUM_THREADS=1",
        "WORKDIR /workspace",
        'CMD ["sleep", "infinity"]',
        f"LABEL {LABEL_RECIPE}={digest} {LABEL_VARIANT}=offline",
    ]
    repo, _, version = tag.partition(":")
    with open(progress.log, "ab") as log:
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "--one-file-system", "-C", str(root), "-cf", "-", "."],
            stdout=subprocess.PIPE,
            stderr=log,
        )
        assert tar.stdout is not None

        def chunks() -> Iterator[bytes]:
            while True:
                data = tar.stdout.read(1 << 20)  # type: ignore[union-attr]
                if not data:
                    return
                yield data

        try:
            result = client.api.import_image(
                src=chunks(), repository=repo, tag=version, changes=changes, stream_src=True
            )
        finally:
            tar.stdout.close()
            rc = tar.wait()
    if rc != 0:
        raise ImageBuildError("docker import", f"tar exited with status {rc}", progress.log)
    text = result if isinstance(result, str) else json.dumps(result)
    if "error" in text.lower() and "status" not in text.lower():
        raise ImageBuildError("docker import", text[-500:], progress.log)
    return client.images.get(tag).id


def build_offline(
    client: Any,
    tag: str,
    *,
    out: TextIO,
    mirror: str = DEFAULT_MIRROR,
    security_mirror: str = DEFAULT_SECURITY_MIRROR,
    cache_dir: Path | None = None,
    work_parent: Path | None = None,
    keep_work: bool = False,
) -> str:
    """Build and tag the image offline; returns its id. Raises ImageBuildError naming the failed step."""
    missing = check_prerequisites()
    if missing:
        raise ImageBuildError("prerequisites", "missing: " + "; ".join(missing))
    cache = cache_dir or default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    digest = recipe_hash()
    work = Path(tempfile.mkdtemp(prefix="ce-image-build-", dir=work_parent or "/var/tmp"))
    log = work / "build.log"
    log.touch()
    progress = Progress(STEPS, out, log)
    progress.say(
        f"building {tag} offline (Debian {DEBIAN_SUITE} from {mirror}, wheels from PyPI); log: {log}"
    )
    root = work / "rootfs"
    wheelhouse = cache / "wheelhouse"
    download_error: list[BaseException] = []
    started = time.monotonic()
    try:
        # the wheel download runs on the host while debootstrap works: the two take about as long
        with progress.step("download wheels and sources (on the host, in the background)"):
            pip_log = work / "pip.log"
            pip_progress = Progress(STEPS, out, pip_log)

            def download() -> None:
                try:
                    pip_progress._step = "download wheels and sources"
                    download_wheelhouse(pip_progress, wheelhouse, work)
                except BaseException as e:
                    download_error.append(e)

            downloader = threading.Thread(target=download, name="image-wheels", daemon=True)
            downloader.start()
        with progress.step(f"debootstrap {DEBIAN_SUITE} (minbase)"):
            argv = ["debootstrap", "--variant=minbase", "--components=main,non-free"]
            argv += ["--include=python3,python3-venv", DEBIAN_SUITE, str(root), mirror]
            progress.run(argv, env=clean_env())
        with progress.step("configure the root filesystem"):
            _configure_rootfs(root, mirror, security_mirror)
        with progress.step("Debian packages"), _chroot_mounts(progress, root):
            _chroot(progress, root, "apt-get", "update")
            _chroot(progress, root, "apt-get", "-y", "dist-upgrade")
            _chroot(progress, root, "apt-get", "install", "-y", *debian_packages())
        downloader.join()
        if download_error:
            e = download_error[0]
            raise ImageBuildError(
                "download wheels and sources",
                str(e.reason if isinstance(e, ImageBuildError) else e),
                work / "pip.log",
                getattr(e, "tail", ""),
            )
        with progress.step("pycairo wheel (built in a throwaway overlay)"):
            pycairo = _pycairo_wheel(progress, root, work, wheelhouse, cache)
        with progress.step(f"Python libraries into {VENV} (offline)"):
            local = work / "wheels"
            local.mkdir(exist_ok=True)
            shutil.copyfile(pycairo, local / pycairo.name)
            pins = read_lock(RECIPE_DIR / "requirements.lock")
            _write_lock(pins, local / "install.lock", hashes=False)
            with _chroot_mounts(progress, root, {"/tmp/wheels": wheelhouse, "/tmp/local": local}):
                _chroot(progress, root, "python3", "-m", "venv", VENV)
                pip = [f"{VENV}/bin/pip", "install", "--no-index", "--no-deps", "--no-cache-dir"]
                pip += [
                    "--find-links",
                    "/tmp/wheels",
                    "--find-links",
                    "/tmp/local",
                    "-r",
                    "/tmp/local/install.lock",
                ]
                _chroot(progress, root, *pip)
                _chroot(progress, root, f"{VENV}/bin/pip", "check")
        with progress.step("finalize (sandbox user, mount points, cleanup)"):
            shutil.copyfile(RECIPE_DIR / "finalize.sh", root / "tmp/finalize.sh")
            site = f"{VENV}/lib/python{PYTHON_TAG}/site-packages"
            _chroot(progress, root, "sh", "/tmp/finalize.sh", site)
            (root / "etc/resolv.conf").write_text("")
            with contextlib.suppress(OSError):
                (root / "usr/sbin/policy-rc.d").unlink()
        with progress.step("docker import"):
            unmount_under(root)
            image_id = _import(progress, client, root, tag, digest)
        progress.say(f"built {tag} ({image_id[:19]}) in {time.monotonic() - started:.0f} s")
        return image_id
    except ImageBuildError as e:
        # the work directory goes away: keep the logs where the error message points
        kept = cache / "last-failed-build.log"
        with contextlib.suppress(OSError):
            kept.write_bytes(log.read_bytes() + _read(work / "pip.log"))
            e.log = kept
            e.args = (str(e).replace(str(log), str(kept)).replace(str(work / "pip.log"), str(kept)),)
        raise
    finally:
        unmount_under(work)
        if not keep_work:
            shutil.rmtree(work, ignore_errors=True)


__all__ = ["REPOSITORY", "build_offline", "check_prerequisites", "default_cache_dir", "download_wheelhouse"]
