"""P3, P7, P8: the local backend end to end, the emulator's memory, and a concurrent load."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

import anthropic

from bench.core import Row, Settings, Stats, judge, stats_ms, time_interleaved
from bench.support import (
    API_KEY,
    ChildEmulator,
    FloorServer,
    message_params,
    raw_response,
    read_status,
)
from emulator import Emulator, bash, text

MB = 1_000_000
FLOOD_BYTES = 100 * MB


def _bash_result(message: Any) -> Any:
    for block in message.content:
        if block.type == "bash_code_execution_tool_result":
            return block.content
    raise AssertionError(f"no bash result in {[b.type for b in message.content]}")


SPAWN_LOOP = 10
SPAWN_LOOP_SCRIPT = (
    f"s=$(date +%s%N); for i in $(seq {SPAWN_LOOP}); do bash -c true; done; e=$(date +%s%N); "
    f"echo $(( (e - s) / {SPAWN_LOOP} ))"
)


def _spawn_true() -> None:
    subprocess.run(["bash", "-c", "true"], check=True)


def p3_local_round_trip(settings: Settings) -> list[Row]:
    n = settings.n(300)
    params = message_params(tools=True)
    with Emulator() as emulator, FloorServer() as floor:
        tier = emulator.isolation().backend
        client = emulator.anthropic_client(in_process=False, api_key=API_KEY)
        emulator.add_turn(bash("true"), text("done"))
        first = client.messages.create(**params)
        assert first.container is not None
        warm = dict(params, container=first.container.id)
        emulator.add_turn(bash("true"), text("done"))
        body, headers = raw_response(client, **warm)
        floor.set(body, headers)
        floor_client = anthropic.Anthropic(base_url=floor.url, api_key=API_KEY, max_retries=0)
        sandbox = emulator.runtime.services.backend.open(first.container.id)

        def subject() -> None:
            emulator.add_turn(bash("true"), text("done"))
            result = _bash_result(client.messages.create(**warm))
            if result.return_code != 0:
                raise AssertionError(f"bash -c true returned {result.return_code}: {result.stderr!r}")

        def http_floor() -> None:
            floor_client.messages.create(**warm)

        inside: list[float] = []

        def sandbox_call() -> None:
            inside.append(sandbox.run_command("true").duration_s)

        spawns: list[float] = []

        def sandbox_spawn() -> None:
            # the sandbox's own spawn cost: `bash -c true` from a shell loop inside the same sandbox
            # (namespaces, seccomp and limits included), timed by the shell itself
            out = sandbox.run_command(SPAWN_LOOP_SCRIPT).stdout
            spawns.append(int(out.strip()) / 1e9)

        samples = time_interleaved(
            subject, http_floor, _spawn_true, sandbox_call, sandbox_spawn, n=n, warmup=10
        )
    s, f, host_spawn, sb, _ = (stats_ms(x) for x in samples)
    sp = stats_ms(spawns)
    command = stats_ms(inside)
    floor_ms = f.median + sp.median
    ratio = s.median / floor_ms
    limit = 1.5
    return [
        Row(
            id="P3",
            name="local bash -c true turn over HTTP",
            status=judge(ratio, limit),
            n=s.n,
            median=s.median,
            p90=s.p90,
            baseline_name=f"HTTP floor {f.median:.2f} + sandbox spawn {sp.median:.2f}",
            baseline=floor_ms,
            ratio=ratio,
            target=f"ratio <= {limit:g}",
            note=(
                f"sandbox tier: {tier}; the sandbox call alone (host -> agent -> bash -c true -> host) "
                f"{sb.median:.2f} ms median (p90 {sb.p90:.2f}), of which the command as the agent timed it "
                f"(spawn to reaped) {command.median:.2f} ms; the spawn floor is `bash -c true` from a shell "
                f"loop inside the sandbox ({SPAWN_LOOP} per sample); on the host it costs "
                f"{host_spawn.median:.2f} ms"
            ),
            extra={
                "subject": s.__dict__,
                "http_floor": f.__dict__,
                "spawn_in_sandbox": sp.__dict__,
                "spawn_on_host": host_spawn.__dict__,
                "sandbox_call": sb.__dict__,
                "command_in_agent": command.__dict__,
                "tier": tier,
            },
        )
    ]


# --- P7 -----------------------------------------------------------------------------------------------------

_BARE_CHILD = "import sys; print('ready', flush=True); sys.stdin.read()"


def _bare_python_rss_mb() -> float:
    process = subprocess.Popen(
        [sys.executable, "-c", _BARE_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        process.stdout.readline()
        return read_status(process.pid)["VmRSS"] / 1000
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(10)


def p7_memory(settings: Settings) -> list[Row]:
    # the flood must really flow through: raise the kill threshold above it (the 1 MiB output cap stays)
    options = {"limits": {"output_kill_bytes": 4 * FLOOD_BYTES}}
    bare_mb = _bare_python_rss_mb()
    with ChildEmulator(**options) as child:
        client = anthropic.Anthropic(base_url=child.url, api_key=API_KEY, max_retries=0, timeout=300)
        flood = f"head -c {FLOOD_BYTES} /dev/zero | tr '\\0' 'x'"
        # warm every path the flood takes: a container, a bash call, a large (capped) result
        warmup = client.messages.create(
            **message_params(f"```bash\nhead -c {2 * MB} /dev/zero\n```", tools=True)
        )
        assert warmup.container is not None
        container = warmup.container.id
        time.sleep(0.5)
        idle = child.status()
        started = time.perf_counter()
        message = client.messages.create(
            **message_params(f"```bash\n{flood}\n```", tools=True), container=container
        )
        flood_s = time.perf_counter() - started
        after = child.status()
        result = _bash_result(message)
    idle_mb = idle["VmRSS"] / 1000
    growth_mb = (after["VmHWM"] - idle["VmRSS"]) / 1000
    flood_note = (
        f"flood of {FLOOD_BYTES // MB} MB took {flood_s:.2f} s, return code {result.return_code}, "
        f"stdout returned {len(result.stdout)} chars (capped); VmHWM {idle['VmHWM'] / 1000:.1f} -> "
        f"{after['VmHWM'] / 1000:.1f} MB, VmRSS after {after['VmRSS'] / 1000:.1f} MB"
    )
    return [
        Row(
            id="P7",
            name="emulator RSS, idle (HTTP server, one container)",
            status=judge(idle_mb, 100.0),
            unit="MB",
            n=1,
            median=idle_mb,
            baseline_name="bare python",
            baseline=bare_mb,
            ratio=idle_mb / bare_mb,
            target="<= 100 MB",
            note="VmRSS of a child process running Emulator().start_server() after one warm-up turn",
        ),
        Row(
            id="P7",
            name="emulator RSS growth, 100 MB stdout flood",
            status=judge(growth_mb, 20.0),
            unit="MB",
            n=1,
            median=growth_mb,
            target="<= 20 MB",
            note=flood_note,
        ),
    ]


# --- P8 -----------------------------------------------------------------------------------------------------


def p8_load(settings: Settings) -> list[Row]:
    clients_n = settings.load_clients
    duration = settings.load_seconds
    params = message_params("```bash\ntrue\n```", tools=True)
    with ChildEmulator() as child:
        # each client works in its own container (one sandbox each, as concurrent test workers would)
        clients = [
            anthropic.Anthropic(base_url=child.url, api_key=API_KEY, max_retries=0, timeout=60)
            for _ in range(clients_n)
        ]
        containers: list[str] = []
        for client in clients:
            message = client.messages.create(**params)
            assert message.container is not None
            containers.append(message.container.id)
        single: list[float] = []
        for _ in range(settings.n(50, minimum=10)):
            started = time.perf_counter()
            clients[0].messages.create(**params, container=containers[0])
            single.append(time.perf_counter() - started)
        latencies: list[list[float]] = [[] for _ in clients]
        errors: list[list[str]] = [[] for _ in clients]
        barrier = threading.Barrier(clients_n + 1)
        stop_at: list[float] = []

        def worker(index: int) -> None:
            client, container = clients[index], containers[index]
            barrier.wait()
            deadline = stop_at[0]
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    result = _bash_result(client.messages.create(**params, container=container))
                    if result.return_code != 0:
                        errors[index].append(f"return code {result.return_code}")
                        continue
                except Exception as error:
                    errors[index].append(f"{type(error).__name__}: {error}")
                    continue
                latencies[index].append(time.perf_counter() - started)

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients_n)]
        for thread in threads:
            thread.start()
        stop_at.append(time.perf_counter() + duration)
        began = time.perf_counter()
        barrier.wait()
        for thread in threads:
            thread.join(duration + 120)
        elapsed = time.perf_counter() - began
    all_latencies = [x for per_client in latencies for x in per_client]
    all_errors = [e for per_client in errors for e in per_client]
    done = len(all_latencies)
    throughput = done / elapsed
    lat = stats_ms(all_latencies) if all_latencies else Stats(0, 0, 0, 0, 0, 0)
    one = stats_ms(single)
    error_note = f"; first error: {all_errors[0]}" if all_errors else ""
    return [
        Row(
            id="P8",
            name=f"{clients_n} clients x {duration:g} s: throughput",
            status="pass" if not all_errors and done else "fail",
            unit="req/s",
            n=done,
            median=throughput,
            target="0 errors",
            note=f"{done} turns (bash -c true each), {len(all_errors)} errors{error_note}",
            extra={"errors": all_errors[:20], "elapsed_s": elapsed},
        ),
        Row(
            id="P8",
            name=f"{clients_n} clients x {duration:g} s: latency",
            status="info",
            n=lat.n,
            median=lat.median,
            p90=lat.p90,
            baseline_name="1 client",
            baseline=one.median,
            ratio=lat.p99 / one.median if one.median else None,
            note=f"p99 {lat.p99:.1f} ms, max {lat.maximum:.1f} ms; ratio = p99 / single-client median",
            extra={"latency": lat.__dict__, "single_client": one.__dict__},
        ),
    ]
