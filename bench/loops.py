"""`python -m bench.loops P3 [--seconds 20]`: one scenario's subject in a loop, for a profiler to watch.

    py-spy record --gil -r 1000 -o p3.svg -- python -m bench.loops P3 --seconds 20
    pyinstrument -m bench.loops P1 --seconds 10

P1: in-process text turn; P3: local `bash -c true` turn over HTTP; P4: Docker `bash -c true` turn in-process;
P3-sandbox / P4-sandbox: the sandbox call alone (no HTTP, no engine).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from bench.support import API_KEY, message_params
from emulator import Emulator, bash, text


@contextmanager
def subject(name: str) -> Iterator[Callable[[], object]]:
    if name == "P1":
        with Emulator() as emulator:
            client = emulator.anthropic_client()
            params = message_params()

            def p1() -> object:
                emulator.add_turn(text("hello"))
                return client.messages.create(**params)

            yield p1
        return
    docker = name.startswith("P4")
    if docker:
        from bench.scenarios.docker import docker_emulator

        context = docker_emulator()
    else:
        context = Emulator()
    with context as emulator:
        client = emulator.anthropic_client(in_process=docker, api_key=API_KEY)
        params = message_params(tools=True)
        emulator.add_turn(bash("true"), text("done"))
        first = client.messages.create(**params)
        assert first.container is not None
        warm = dict(params, container=first.container.id)
        if name.endswith("-sandbox"):
            sandbox = emulator.runtime.services.backend.open(first.container.id)
            yield lambda: sandbox.run_command("true")
            return

        def turn() -> object:
            emulator.add_turn(bash("true"), text("done"))
            return client.messages.create(**warm)

        yield turn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loops", description=__doc__.split("\n")[0])
    parser.add_argument("scenario", choices=["P1", "P3", "P3-sandbox", "P4", "P4-sandbox"])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    with subject(args.scenario) as call:
        for _ in range(20):
            call()
        calls = 0
        started = time.perf_counter()
        deadline = started + args.seconds
        while time.perf_counter() < deadline:
            call()
            calls += 1
        elapsed = time.perf_counter() - started
    print(f"{args.scenario}: {calls} calls in {elapsed:.1f} s, {elapsed / calls * 1000:.3f} ms per call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
