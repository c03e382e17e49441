"""Faults reach the place they fire: between-event stalls the stream, count_tokens its request hook, retry
headers the SDK's retry timer; fault targets are checked, and a dropped connection is no server traceback."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator

import anthropic
import httpx2
import pytest

from emulator import bash, faults, text
from emulator.engine.faults import http_error_parts

PARAMS = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 100,
    "tools": [{"type": "code_execution_20250825", "name": "code_execution"}],
    "messages": [{"role": "user", "content": "go"}],
}
COUNT_PARAMS = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "count me"}]}


def test_between_events_stall_spaces_every_event(code_execution_emulator):
    code_execution_emulator.add_turn(text("one two three four"))
    code_execution_emulator.inject(faults.stall(0.05, between_events=True))
    client = anthropic.Anthropic(base_url=code_execution_emulator.start_server(), api_key="k", max_retries=0)

    arrivals: list[float] = []
    started = time.monotonic()
    for _ in client.beta.messages.create(**PARAMS, stream=True):
        arrivals.append(time.monotonic())

    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(gaps) >= 4
    # every event waited for its own stall: the k-th cannot arrive before k stalls have passed. (Gaps
    # between arrivals are no measure: a client slowed by a busy machine reads several events at once.)
    assert all(arrival - started >= 0.05 * k * 0.95 for k, arrival in enumerate(arrivals, 1)), arrivals
    assert code_execution_emulator.faults == []


def test_between_events_stall_does_not_delay_the_request_itself(code_execution_emulator, anthropic_client):
    code_execution_emulator.inject(faults.stall(5, between_events=True))
    started = time.monotonic()
    assert anthropic_client.beta.messages.create(**PARAMS).type == "message"
    assert time.monotonic() - started < 2  # a plain JSON answer has no events to space
    assert [fault.between_events for fault in code_execution_emulator.faults] == [True]


def test_default_retry_headers_are_the_smallest_wait_the_sdk_honours():
    _, _, _, headers = http_error_parts(faults.http_error(529))
    assert (headers["retry-after-ms"], headers["retry-after"]) == ("1", "0.001")
    _, _, _, headers = http_error_parts(faults.http_error(529, retry_after_s=0.0001))
    assert headers["retry-after-ms"] == "1"  # never rounded to 0, which would mean "use your backoff"
    _, _, _, headers = http_error_parts(faults.http_error(503, retry_after_s=2))
    assert (headers["retry-after-ms"], headers["retry-after"]) == ("2000", "2")
    _, _, _, headers = http_error_parts(faults.http_error(529, retry_after_s=None))
    assert "retry-after" not in headers and "retry-after-ms" not in headers


def test_http_error_fault_fires_on_count_tokens(code_execution_emulator, anthropic_client):
    code_execution_emulator.inject(faults.http_error(529, endpoint="/v1/messages/count_tokens"))

    assert anthropic_client.beta.messages.create(**PARAMS).type == "message"  # not its endpoint
    with pytest.raises(anthropic.OverloadedError) as caught:
        anthropic_client.beta.messages.count_tokens(**COUNT_PARAMS)
    assert caught.value.body["error"]["type"] == "overloaded_error"
    assert anthropic_client.beta.messages.count_tokens(**COUNT_PARAMS).input_tokens > 0


def test_count_tokens_retries_an_injected_529(code_execution_emulator):
    code_execution_emulator.inject(faults.http_error(529, endpoint="/v1/messages/count_tokens", count=2))
    client = code_execution_emulator.anthropic_client(max_retries=2)
    assert client.beta.messages.count_tokens(**COUNT_PARAMS).input_tokens > 0
    assert code_execution_emulator.faults == []


def test_a_fault_endpoint_must_be_one_of_the_emulators(code_execution_emulator):
    with pytest.raises(ValueError, match="'/v1/message' is not one of the emulator's endpoints"):
        code_execution_emulator.inject(faults.http_error(500, endpoint="/v1/message"))
    with code_execution_emulator.http_client() as http:
        bad = http.post(
            "/_emulator/faults",
            json={"kind": "http_error", "status": 500, "endpoint": "/v1/messages/count-tokens"},
        )
        assert bad.status_code == 400
        assert bad.json()["error"]["type"] == "invalid_request_error"
        message = bad.json()["error"]["message"]
        assert message.startswith("faults: endpoint '/v1/messages/count-tokens'")
        assert "/v1/messages/count_tokens" in message  # the list of the ones that exist
        good = http.post(
            "/_emulator/faults",
            json={"kind": "http_error", "status": 500, "endpoint": "/v1/files/{file_id}/content"},
        )
        assert good.status_code == 200
        assert good.json()["data"] == [
            {
                "kind": "http_error",
                "count": 1,
                "endpoint": "/v1/files/{file_id}/content",
                "status": 500,
                "retry_after_s": 0.001,
            }
        ]
    assert code_execution_emulator.faults[0].endpoint == "/v1/files/{file_id}/content"


@pytest.mark.parametrize("value", ['"soon"', "-1", "true", "NaN", "1e400"])
def test_a_bad_retry_after_is_refused_when_armed_not_when_fired(code_execution_emulator, value):
    body = f'{{"kind": "http_error", "status": 529, "retry_after_s": {value}}}'
    with code_execution_emulator.http_client() as http:
        bad = http.post("/_emulator/faults", content=body, headers={"content-type": "application/json"})
    assert bad.status_code == 400
    assert bad.json()["error"]["message"].startswith("faults: retry_after_s")
    assert code_execution_emulator.faults == []


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def server_log() -> Iterator[_Records]:
    """What the HTTP server logs (uvicorn logs what escapes the app on `uvicorn.error`)."""
    handler = _Records()
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def test_dropped_connection_is_one_warning_line_not_a_traceback(code_execution_emulator, server_log):
    code_execution_emulator.add_turn(bash("echo x"), text("y"))
    code_execution_emulator.inject(faults.drop_connection(after_events=3))
    client = anthropic.Anthropic(base_url=code_execution_emulator.start_server(), api_key="k", max_retries=0)

    with (
        pytest.raises((anthropic.APIConnectionError, httpx2.HTTPError)),
        client.beta.messages.stream(**PARAMS) as stream,
    ):
        for _ in stream:
            pass

    # the server thread logs after the client saw the cut: wait for its record
    deadline = time.monotonic() + 5
    while not server_log.records and time.monotonic() < deadline:
        time.sleep(0.02)
    [record] = server_log.records
    assert record.levelname == "WARNING"
    assert record.getMessage() == "injected: connection dropped after 3 events"
    assert record.exc_info is None and record.exc_text is None  # no traceback under any formatter
    # the server is still healthy
    code_execution_emulator.add_turn(text("after"))
    assert client.beta.messages.create(**PARAMS).content[0].text == "after"
