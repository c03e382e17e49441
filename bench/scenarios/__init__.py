"""The benchmark scenarios P1-P9. Each is a function of the settings returning table rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.core import Row, Settings

from . import cassette, docker, local, sdk


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    run: Callable[[Settings], list[Row]]


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("P1", "in-process replayed turn vs mock transport", sdk.p1_in_process),
    Scenario("P2", "HTTP replayed turn vs bare uvicorn", sdk.p2_http),
    Scenario("P3", "local bash -c true round trip vs floors", local.p3_local_round_trip),
    Scenario("P4", "Docker warm tool call vs docker exec", docker.p4_warm_call),
    Scenario("P5", "Docker first call in a new container", docker.p5_first_call),
    Scenario("P6", "cassette lookup, last of 1,000", cassette.p6_lookup),
    Scenario("P7", "emulator RSS idle and under a 100 MB flood", local.p7_memory),
    Scenario("P8", "16 concurrent clients on the local backend", local.p8_load),
    Scenario("P9", "streaming: first SSE byte of a 2 s command", sdk.p9_first_byte),
)

__all__ = ["SCENARIOS", "Scenario"]
