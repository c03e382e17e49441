"""P4, P5: the Docker backend's warm tool call (through the in-container agent) and the first call in a new
container (served by the warm pool). Skipped, with the reason, when no engine answers or the image is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.core import Row, Settings, Skip, judge, stats_ms, time_calls, time_interleaved
from bench.support import message_params
from emulator import Emulator, bash, text


def docker_client() -> Any:
    """A docker-py client to an engine that answers, else `Skip`."""
    try:
        import docker
    except ImportError as error:
        raise Skip(f"docker-py is not installed ({error})") from None
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as error:
        raise Skip(f"no Docker engine answers ({type(error).__name__}: {error})") from None
    return client


def sandbox_image(client: Any) -> str:
    try:
        from emulator.image import find_image, image_tag
    except ImportError as error:
        raise Skip(f"the Docker image recipe (issue #3) is not available ({error})") from None
    tag = image_tag()
    if find_image(client, tag) is None:
        raise Skip(f"sandbox image {tag} is not built (run `code-execution-emulator image build`)")
    return tag


@contextmanager
def docker_emulator() -> Iterator[Emulator]:
    client = docker_client()
    sandbox_image(client)
    try:
        emulator = Emulator(backend="docker")
    except ValueError as error:
        raise Skip(f"the Docker backend (issue #3) is not available: {error}") from None
    with emulator:
        backend = emulator.runtime.services.backend
        backend.ready()  # connect, self-check, start the pool: failures here are real failures, not skips
        yield emulator


def _bash_ok(message: Any) -> str:
    for block in message.content:
        if block.type == "bash_code_execution_tool_result":
            if block.content.type != "bash_code_execution_result" or block.content.return_code != 0:
                raise AssertionError(f"bash -c true failed: {block.content}")
            assert message.container is not None
            return str(message.container.id)
    raise AssertionError(f"no bash result in {[b.type for b in message.content]}")


def p4_warm_call(settings: Settings) -> list[Row]:
    n = settings.n(150, minimum=10)
    params = message_params(tools=True)
    with docker_emulator() as emulator:
        client = emulator.anthropic_client()
        emulator.add_turn(bash("true"), text("done"))
        container = _bash_ok(client.messages.create(**params))
        warm = dict(params, container=container)
        sandbox = emulator.runtime.services.backend.open(container)
        engine_id = sandbox.engine_container
        engine = docker_client().containers.get(engine_id)

        def turn() -> None:
            emulator.add_turn(bash("true"), text("done"))
            _bash_ok(client.messages.create(**warm))

        inside: list[float] = []

        def agent_call() -> None:
            result = sandbox.run_command("true")
            if result.return_code != 0:
                raise AssertionError(f"bash -c true returned {result.return_code}")
            inside.append(result.duration_s)

        def docker_exec() -> None:
            code, _ = engine.exec_run(["bash", "-c", "true"], user="1000:1000")
            if code != 0:
                raise AssertionError(f"docker exec returned {code}")

        turn_s, agent_s, exec_s = time_interleaved(turn, agent_call, docker_exec, n=n, warmup=5)
        spawn_ms = in_container_spawn_ms(engine)
        cli_note = ""
        if shutil.which("docker"):
            argv = ["docker", "exec", "-u", "1000:1000", engine_id, "bash", "-c", "true"]
            cli = stats_ms(time_calls(lambda: subprocess.run(argv, check=True), max(5, n // 10), warmup=1))
            cli_note = f"; `docker exec` CLI {cli.median:.1f} ms median (n={cli.n})"
    t, a, x, c = stats_ms(turn_s), stats_ms(agent_s), stats_ms(exec_s), stats_ms(inside)
    limit = 10.0
    rows = []
    agent_note = (
        f"sandbox.run_command through the agent; the command as the agent timed it {c.median:.2f} ms; "
        f"a bare `bash -c true` spawn inside the container costs {spawn_ms:.2f} ms (loop of "
        f"{SPAWN_LOOP} in the container){cli_note}"
    )
    for name, s, note in (
        ("Docker warm tool call (agent, bash -c true)", a, agent_note),
        ("Docker warm turn in-process (SDK, bash -c true)", t, "the whole turn: SDK -> emulator -> agent"),
    ):
        rows.append(
            Row(
                id="P4",
                name=name,
                status=judge(s.median, limit),
                n=s.n,
                median=s.median,
                p90=s.p90,
                baseline_name="docker-py exec_run",
                baseline=x.median,
                ratio=s.median / x.median,
                target=f"median <= {limit:g} ms",
                note=note,
                extra={"subject": s.__dict__, "docker_exec": x.__dict__},
            )
        )
    return rows


SPAWN_LOOP = 200


def in_container_spawn_ms(engine: Any) -> float:
    """The physical floor inside the container: `bash -c true` spawned by a shell loop, per spawn."""
    script = (
        f"s=$(date +%s%N); for i in $(seq {SPAWN_LOOP}); do bash -c true; done; e=$(date +%s%N); "
        f"echo $(( (e - s) / {SPAWN_LOOP} ))"
    )
    code, out = engine.exec_run(["bash", "-c", script], user="1000:1000")
    if code != 0:
        raise AssertionError(f"the spawn loop failed: {out!r}")
    return int(out.decode().strip()) / 1e6


def p5_first_call(settings: Settings) -> list[Row]:
    n = settings.n(20, minimum=4)
    params = message_params(tools=True)
    firsts: list[float] = []
    warms: list[float] = []
    with docker_emulator() as emulator:
        backend = emulator.runtime.services.backend
        client = emulator.anthropic_client()
        for _ in range(n):
            if not backend.pool_ready(timeout=120):
                raise AssertionError("the warm pool did not refill within 120 s")
            emulator.add_turn(bash("true"), text("done"))
            started = time.perf_counter()
            container = _bash_ok(client.messages.create(**params))
            firsts.append(time.perf_counter() - started)
            # the pool refills in the background: let it finish so the warm call is measured alone
            backend.pool_ready(timeout=120)
            for _ in range(3):
                emulator.add_turn(bash("true"), text("done"))
                started = time.perf_counter()
                _bash_ok(client.messages.create(**params, container=container))
                warms.append(time.perf_counter() - started)
            emulator.reset()  # removes the container (untimed)
    f, w = stats_ms(firsts), stats_ms(warms)
    limit = 1.2
    ratio = f.median / w.median
    return [
        Row(
            id="P5",
            name="Docker first call in a new container (pool)",
            status=judge(ratio, limit),
            n=f.n,
            median=f.median,
            p90=f.p90,
            baseline_name="warm turn",
            baseline=w.median,
            ratio=ratio,
            target=f"ratio <= {limit:g}",
            note="in-process SDK turn without `container` (a new API container) vs the same container again",
            extra={"first": f.__dict__, "warm": w.__dict__},
        )
    ]
