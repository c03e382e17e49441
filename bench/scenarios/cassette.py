"""P6: replay lookup of the last of 1,000 interactions in one cassette: ours against vcrpy's own.

Ours: `emulator.cassettes`' `open_cassette` (a vcrpy `Cassette` with a hash index, our matchers). vcrpy's own:
a stock `Cassette` of the same file with vcrpy's built-in matchers (method, scheme, host, port, path, query,
body), which scans the interactions in order. A lookup is what vcrpy's own stubs do on replay:
`can_play_response_for(request)` then `play_response(request)`, for a request built afresh (as a live request
would be) whose JSON body has its keys in another order than the recorded one. Our matchers without the index
are timed too (a few calls): that is what users get when they load our cassettes in plain vcrpy with our
matchers.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.core import Row, Settings, Skip, judge, stats_ms
from bench.support import MODEL

INTERACTIONS = 1000
URI = "http://127.0.0.1:8080/v1/messages"


def _open_cassette() -> Callable[..., Any]:
    try:
        import emulator.cassettes as package
    except ImportError as error:
        raise Skip(f"emulator.cassettes (issue #6) is not built yet ({error})") from None
    opener = getattr(package, "open_cassette", None)
    if opener is None:
        try:
            from emulator.cassettes.matching import open_cassette as opener
        except ImportError as error:
            raise Skip(f"emulator.cassettes has no open_cassette yet ({error})") from None
    return opener  # type: ignore[no-any-return]


def vcrpy_cassette(path: Path) -> Any:
    """The same file as a stock vcrpy cassette with vcrpy's built-in matchers."""
    from vcr import matchers
    from vcr.cassette import Cassette
    from vcr.record_mode import RecordMode
    from vcr.serializers import yamlserializer

    match_on = (
        matchers.method,
        matchers.scheme,
        matchers.host,
        matchers.port,
        matchers.path,
        matchers.query,
        matchers.body,
    )
    return Cassette.load(
        path=str(path), serializer=yamlserializer, record_mode=RecordMode.NONE, match_on=match_on
    )


def _request_body(index: int) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 1024,
        "tools": [{"type": "code_execution_20250825", "name": "code_execution"}],
        "messages": [{"role": "user", "content": f"Run this:\n```bash\necho {index}\n```"}],
    }


def _response_body(index: int) -> str:
    return json.dumps(
        {
            "id": f"msg_{index:024d}",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": [{"type": "text", "text": f"answer {index} " + "x" * 400}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 10},
        }
    )


def write_cassette(path: Path, count: int = INTERACTIONS) -> None:
    from vcr.serializers import yamlserializer

    interactions = [
        {
            "request": {
                "method": "POST",
                "uri": URI,
                "body": json.dumps(_request_body(i)),
                "headers": {"content-type": ["application/json"], "anthropic-version": ["2023-06-01"]},
            },
            "response": {
                "status": {"code": 200, "message": "OK"},
                "headers": {"content-type": ["application/json"]},
                "body": {"string": _response_body(i)},
            },
        }
        for i in range(count)
    ]
    path.write_text(yamlserializer.serialize({"interactions": interactions, "version": 1}))


def live_request(index: int) -> Any:
    from vcr.request import Request

    body = _request_body(index)
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=1).encode()
    return Request(
        "POST", URI, reordered, {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    )


def _lookup(cassette: Any, index: int) -> float:
    request = live_request(index)
    started = time.perf_counter()
    if not cassette.can_play_response_for(request):
        raise AssertionError("the cassette cannot play the request")
    response = cassette.play_response(request)
    elapsed = time.perf_counter() - started
    body = response["body"]["string"]
    if f"answer {index} ".encode() not in (body if isinstance(body, bytes) else body.encode()):
        raise AssertionError("the lookup returned another interaction's response")
    return elapsed


def p6_lookup(settings: Settings) -> list[Row]:
    open_cassette = _open_cassette()
    n = settings.n(300, minimum=20)
    last = INTERACTIONS - 1
    with tempfile.TemporaryDirectory(prefix="bench-cassette-") as tmp:
        path = Path(tmp) / "thousand.yaml"
        write_cassette(path)
        load_started = time.perf_counter()
        ours = open_cassette(path, "none", indexed=True)
        load_s = time.perf_counter() - load_started
        unindexed = open_cassette(path, "none", indexed=False)
        stock = vcrpy_cassette(path)
        for cassette in (ours, unindexed, stock):
            if len(cassette.data) != INTERACTIONS:
                raise AssertionError("the cassette did not load 1,000 interactions")
            cassette.allow_playback_repeats = True  # the same lookup many times
        for _ in range(5):
            _lookup(ours, last)
        # the linear scans take about a second each here: a few are enough, interleaved with ours
        slow_n = max(3, n // 60)
        ours_s: list[float] = []
        stock_s: list[float] = []
        unindexed_s: list[float] = []
        for i in range(n):
            ours_s.append(_lookup(ours, last))
            if i % (n // slow_n) == 0 and len(stock_s) < slow_n:
                stock_s.append(_lookup(stock, last))
                unindexed_s.append(_lookup(unindexed, last))
    o, s, u = stats_ms(ours_s), stats_ms(stock_s), stats_ms(unindexed_s)
    limit = 2.0
    return [
        Row(
            id="P6",
            name="cassette lookup, last of 1,000 (indexed)",
            status=judge(o.median, limit),
            n=o.n,
            median=o.median,
            p90=o.p90,
            baseline_name="vcrpy's own",
            baseline=s.median,
            ratio=o.median / s.median,
            target=f"median <= {limit:g} ms",
            note=(
                f"can_play_response_for + play_response; vcrpy's own lookup (built-in matchers) "
                f"{s.median:.0f} ms (n={s.n}); our matchers without the index {u.median:.0f} ms (n={u.n}); "
                f"loading the 1,000-interaction cassette took {load_s:.2f} s"
            ),
            extra={"indexed": o.__dict__, "vcrpy": s.__dict__, "unindexed": u.__dict__, "load_s": load_s},
        )
    ]
