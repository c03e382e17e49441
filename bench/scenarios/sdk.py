"""P1, P2, P9: the emulator's own overhead on a turn, against floors that return the same bytes."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import anthropic
import httpx2

from bench.core import Row, Settings, ratio_row, stats_ms, time_calls, time_interleaved
from bench.support import (
    API_KEY,
    FloorServer,
    message_params,
    raw_response,
    tcp_nodelay_of_open_sockets,
)
from emulator import Emulator, bash, text


def respx_covers_httpx2() -> bool:
    """Whether respx can intercept the SDK's HTTP stack (SDK 2.13 uses httpx2 + httpcore2)."""
    try:
        import respx.mocks
    except ImportError:
        return False
    targets = [t for mocker in (respx.mocks.HTTPXMocker, respx.mocks.HTTPCoreMocker) for t in mocker.targets]
    return any("httpx2" in t or "httpcore2" in t for t in targets)


def mock_client(body: bytes, headers: dict[str, str]) -> anthropic.Anthropic:
    """The SDK over `httpx2.MockTransport` returning fixed bytes: what a respx route does for httpx."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        request.read()
        return httpx2.Response(200, content=body, headers=headers)

    return anthropic.Anthropic(
        base_url="http://emulator",
        api_key=API_KEY,
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )


def sdk_request_bodies(count: int) -> list[str]:
    """The bytes the SDK sends for `numbered_params(0..count-1)`: what a recording of them would hold."""
    sent: list[str] = []

    def capture(request: httpx2.Request) -> httpx2.Response:
        sent.append(request.read().decode("utf-8"))
        return httpx2.Response(400, json={"type": "error", "error": {"type": "x", "message": "captured"}})

    client = anthropic.Anthropic(
        base_url="http://capture",
        api_key=API_KEY,
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(capture)),
    )
    for index in range(count):
        with suppress(anthropic.BadRequestError):
            client.messages.create(**numbered_params(index))
    return sent


def write_replay_cassette(path: Path, count: int, body: bytes, headers: dict[str, str]) -> None:
    """A vcrpy cassette of `count` interactions: request i is `numbered_params(i)` as the SDK sends it (as
    the emulator's record mode stores it), every answer `body`."""
    from vcr.serializers import yamlserializer

    interactions = [
        {
            "request": {
                "method": "POST",
                "uri": "http://127.0.0.1/v1/messages",
                "body": sent,
                "headers": {"content-type": ["application/json"]},
            },
            "response": {
                "status": {"code": 200, "message": "OK"},
                "headers": {k: [v] for k, v in headers.items() if k.lower() == "content-type"},
                "body": {"string": body.decode()},
            },
        }
        for sent in sdk_request_bodies(count)
    ]
    path.write_text(yamlserializer.serialize({"interactions": interactions, "version": 1}))


def numbered_params(index: int) -> dict[str, Any]:
    """Distinct requests of equal size, so each replay is one lookup of its own recorded interaction."""
    return message_params(f"question {index:06d}")


class Numbered:
    """Sends request 0, 1, 2, ... through one client."""

    def __init__(self, client: anthropic.Anthropic) -> None:
        self.client = client
        self.next = 0

    def __call__(self) -> None:
        self.client.messages.create(**numbered_params(self.next))
        self.next += 1


@contextmanager
def replaying_emulator(n: int, warmup: int) -> Iterator[tuple[Emulator, bytes, dict[str, str]]]:
    """An emulator in replay mode over a cassette holding the answers of the requests the scenario sends."""
    with Emulator() as recorder:
        client = recorder.anthropic_client()
        recorder.add_turn(text("hello"))
        body, headers = raw_response(client, **numbered_params(0))
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        path = Path(tmp) / "replay.yaml"
        write_replay_cassette(path, n + warmup + 5, body, headers)
        with Emulator(mode="replay", cassette=path) as emulator:
            yield emulator, body, headers


def scripted_info_row(
    scenario_id: str,
    name: str,
    *,
    in_process: bool,
    baseline_for: Callable[[bytes, dict[str, str]], anthropic.Anthropic],
    baseline_name: str,
    note: str,
    n: int,
    warmup: int,
) -> Row:
    """The emulate-mode text turn (a script queued per call) next to a replay row, against a baseline
    client that `baseline_for` makes answer the same bytes: shown as information, not judged."""
    params = message_params()
    with Emulator() as emulator:
        client = emulator.anthropic_client(in_process=in_process, api_key=API_KEY)
        emulator.add_turn(text("hello"))
        baseline = baseline_for(*raw_response(client, **params))

        def scripted() -> None:
            emulator.add_turn(text("hello"))
            client.messages.create(**params)

        subject_s, baseline_s = time_interleaved(
            scripted, lambda: baseline.messages.create(**params), n=n, warmup=warmup
        )
    row = ratio_row(scenario_id, name, subject_s, baseline_s, baseline_name, 1.0)
    row.status, row.target, row.note = "info", None, note
    return row


def p1_in_process(settings: Settings) -> list[Row]:
    n = settings.n(600)
    warmup = 20
    covered = respx_covers_httpx2()
    respx_note = "" if covered else " (respx patches httpx/httpcore only, not the SDK's httpx2/httpcore2)"
    with replaying_emulator(n, warmup) as (emulator, body, headers):
        subject = Numbered(emulator.anthropic_client())
        baseline = Numbered(mock_client(body, headers))
        subject_s, baseline_s = time_interleaved(subject, baseline, n=n, warmup=warmup)
    replayed = ratio_row(
        "P1",
        "in-process replayed turn (SDK, cassette)",
        subject_s,
        baseline_s,
        "mock transport",
        1.3,
        "baseline: the SDK over httpx2.MockTransport returning the same bytes" + respx_note,
    )
    scripted = scripted_info_row(
        "P1",
        "in-process scripted text turn (SDK)",
        in_process=True,
        baseline_for=mock_client,
        baseline_name="mock transport",
        note="emulate mode (script queue, engine, validation); same baseline",
        n=n,
        warmup=warmup,
    )
    return [replayed, scripted]


def p2_http(settings: Settings) -> list[Row]:
    n = settings.n(600)
    warmup = 20
    with FloorServer() as floor:
        floor_client = anthropic.Anthropic(base_url=floor.url, api_key=API_KEY, max_retries=0)

        def floor_answering(body: bytes, headers: dict[str, str]) -> anthropic.Anthropic:
            floor.set(body, headers)
            return floor_client

        with replaying_emulator(n, warmup) as (emulator, body, headers):
            floor.set(body, headers)
            subject = Numbered(emulator.anthropic_client(in_process=False, api_key=API_KEY))
            subject_s, baseline_s = time_interleaved(subject, Numbered(floor_client), n=n, warmup=warmup)
            sockets = tcp_nodelay_of_open_sockets()
        replayed = ratio_row(
            "P2",
            "HTTP replayed turn (SDK, keep-alive)",
            subject_s,
            baseline_s,
            "uvicorn floor",
            1.2,
            f"baseline: bare ASGI app under uvicorn, same bytes; connected loopback TCP sockets of this "
            f"process with TCP_NODELAY on/off: {sockets['nodelay_on']}/{sockets['nodelay_off']}",
        )
        replayed.extra["sockets"] = sockets
        scripted = scripted_info_row(
            "P2",
            "HTTP scripted text turn (SDK)",
            in_process=False,
            baseline_for=floor_answering,
            baseline_name="uvicorn floor",
            note="emulate mode; same floor",
            n=n,
            warmup=warmup,
        )
    return [replayed, scripted]


def _first_event_time(client: anthropic.Anthropic, params: dict[str, Any]) -> tuple[float, float, str]:
    """(seconds to the first SSE event, seconds to the end of the stream, container id)."""
    started = time.perf_counter()
    stream = client.messages.create(stream=True, **params)
    container = ""
    with stream:
        first: float | None = None
        for event in stream:
            if first is None:
                first = time.perf_counter() - started
            if event.type == "message_delta":
                found = getattr(event.delta, "container", None)
                container = found.id if found is not None else container
    assert first is not None
    return first, time.perf_counter() - started, container


def p9_first_byte(settings: Settings) -> list[Row]:
    n = settings.n(8, minimum=3)
    sleep_s = 2.0
    with Emulator() as emulator, FloorServer() as floor:
        client = emulator.anthropic_client(in_process=False, api_key=API_KEY)
        params = message_params(tools=True)
        # a warm container: the first byte must not wait for the command, whatever the sandbox start costs
        emulator.add_turn(bash("true"), text("done"))
        _, _, container = _first_event_time(client, params)
        warm = dict(params, container=container)
        firsts: list[float] = []
        totals: list[float] = []
        fresh_firsts: list[float] = []
        for index in range(n):
            emulator.add_turn(bash(f"sleep {sleep_s:g}"), text("done"))
            first, total, _ = _first_event_time(client, warm)
            firsts.append(first)
            totals.append(total)
            if index < max(2, n // 3):
                # a new container each time: sandbox creation is on this path too
                emulator.add_turn(bash(f"sleep {sleep_s:g}"), text("done"))
                fresh_first, _, _ = _first_event_time(client, params)
                fresh_firsts.append(fresh_first)
        # the floor: the same first event from a bare app, as its own chunk
        emulator.add_turn(text("hello"))
        sse = client.messages.with_raw_response.create(stream=True, **params).http_response.read()
        head, sep, rest = sse.partition(b"\n\n")
        floor.set(sse, {"content-type": "text/event-stream"}, chunks=[head + sep, rest])
        floor_client = anthropic.Anthropic(base_url=floor.url, api_key=API_KEY, max_retries=0)
        floor_s = time_calls(lambda: _first_event_time(floor_client, params), settings.n(100), warmup=5)
    s = stats_ms(firsts)
    f = stats_ms(floor_s)
    fresh = stats_ms(fresh_firsts)
    total = stats_ms(totals)
    note = (
        f"command: sleep {sleep_s:g}; whole stream median {total.median:.0f} ms; baseline: first event "
        f"from a bare uvicorn app"
    )
    limit = 50.0
    return [
        Row(
            id="P9",
            name="first SSE event, 2 s command (warm container)",
            status="pass" if s.median <= limit else "fail",
            n=s.n,
            median=s.median,
            p90=s.p90,
            baseline_name="floor first event",
            baseline=f.median,
            ratio=s.median / f.median,
            target=f"median <= {limit:g} ms",
            note=note,
            extra={"total_ms": total.__dict__},
        ),
        Row(
            id="P9",
            name="first SSE event, 2 s command (new container)",
            status="pass" if fresh.median <= limit else "fail",
            n=fresh.n,
            median=fresh.median,
            p90=fresh.p90,
            baseline_name="floor first event",
            baseline=f.median,
            ratio=fresh.median / f.median,
            target=f"median <= {limit:g} ms",
            note="each request creates its container (the sandbox start is on this path)",
        ),
    ]


__all__ = ["p1_in_process", "p2_http", "p9_first_byte"]
