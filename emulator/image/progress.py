"""Progress output and step failures for the image builders (a build takes minutes)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TextIO

HEARTBEAT_S = 15.0


class ImageBuildError(RuntimeError):
    """A build step failed: `step` names it, `reason` says why, `log` is where its full output went."""

    def __init__(self, step: str, reason: str, log: Path | None = None, tail: str = "") -> None:
        self.step = step
        self.reason = reason
        self.log = log
        self.tail = tail
        where = f" (full log: {log})" if log else ""
        detail = f"\n{tail}" if tail else ""
        super().__init__(f"image build failed at step '{step}': {reason}{where}{detail}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        data = path.read_bytes()[-8192:]
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


class Progress:
    """Numbered steps with their duration, a heartbeat while a step runs, and the log every command writes."""

    def __init__(self, total: int, out: TextIO, log: Path) -> None:
        self.total = total
        self.out = out
        self.log = log
        self._n = 0
        self._step = ""
        self._lock = threading.Lock()

    def say(self, text: str) -> None:
        with self._lock:
            print(text, file=self.out, flush=True)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        self._n += 1
        self._step = name
        started = time.monotonic()
        self.say(f"[{self._n}/{self.total}] {name} ...")
        stop = threading.Event()

        def heartbeat() -> None:
            while not stop.wait(HEARTBEAT_S):
                last = _tail(self.log, 1).strip()[:100]
                self.say(f"      {name}: {time.monotonic() - started:.0f} s" + (f" | {last}" if last else ""))

        beat = threading.Thread(target=heartbeat, name="image-build-heartbeat", daemon=True)
        beat.start()
        try:
            yield
        except ImageBuildError:
            raise
        except Exception as e:
            raise ImageBuildError(name, f"{type(e).__name__}: {e}", self.log, _tail(self.log)) from e
        finally:
            stop.set()
            beat.join()
        self.say(f"      done in {time.monotonic() - started:.1f} s")

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stdin: int | None = subprocess.DEVNULL,
    ) -> None:
        """Run one command of the current step, its output appended to the log; a failure names the step."""
        with open(self.log, "ab") as log:
            log.write(f"\n$ {' '.join(argv)}\n".encode())
            log.flush()
            try:
                rc = subprocess.run(
                    list(argv),
                    stdin=stdin,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=dict(env) if env is not None else None,
                    cwd=cwd,
                    check=False,
                ).returncode
            except OSError as e:
                raise ImageBuildError(self._step, f"cannot run {argv[0]}: {e}", self.log) from e
        if rc != 0:
            shown = " ".join(argv[:6]) + (" ..." if len(argv) > 6 else "")
            raise ImageBuildError(self._step, f"`{shown}` exited with status {rc}", self.log, _tail(self.log))


def clean_env(**extra: str) -> dict[str, str]:
    """A minimal environment: the build must not depend on the host's PIP_*, CA or proxy settings, except
    that a CA bundle and proxies the host needs to reach the registries are passed on explicitly."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
    }
    for key in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    env.update(extra)
    return env


def host_ca_bundle() -> str | None:
    """The CA bundle the host's pip trusts (an intercepting proxy's CA lives there), if any."""
    for key in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(key)
        if value and os.path.isfile(value):
            return value
    return None
