"""Hostile requests: whatever arrives, every answer is a success or a 4xx in the API's envelope, never a 5xx,
a traceback, a hang or a dead server.

Size knob: `CE_FUZZ_EXAMPLES` (default 150) is the number of Hypothesis examples of each fuzz test. The CI run
is fixed-seed (derandomized) and small; the nightly run is
`CE_FUZZ_EXAMPLES=10000 python -m pytest tests/robustness/test_hostile_requests.py -p no:cacheprovider`
(see docs/robustness.md for its measured size and duration). The per-test timeout grows with the knob.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator import Emulator

#: examples per fuzz test: 150 in CI, >= 10000 for the nightly run (docs/robustness.md)
EXAMPLES = int(os.environ.get("CE_FUZZ_EXAMPLES", "150"))
#: pytest-timeout's budget for one fuzz test: the configured 120 s, plus 0.1 s per example for big runs
FUZZ_TIMEOUT_S = max(120, int(EXAMPLES * 0.1) + 120)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
ENDPOINTS = [
    ("POST", "/v1/messages"),
    ("POST", "/v1/messages/count_tokens"),
    ("POST", "/v1/messages/batches"),
    ("POST", "/_emulator/script"),
    ("POST", "/_emulator/faults"),
]
VALID = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 16,
    "tools": [{"type": "code_execution_20250825", "name": "code_execution"}],
    "messages": [{"role": "user", "content": "hello"}],
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def mutated_bodies(draw: st.DrawFn) -> Any:
    """A valid Messages body with one part replaced, removed or added."""
    body = json.loads(json.dumps(VALID))
    target = draw(
        st.sampled_from(["model", "max_tokens", "tools", "messages", "container", "stream", "extra"])
    )
    action = draw(st.sampled_from(["replace", "remove", "nest"]))
    if action == "remove":
        body.pop(target, None)
    elif action == "replace":
        body[target] = draw(json_values)
    else:
        body["messages"] = [
            {"role": "user", "content": [{"type": draw(st.text(max_size=12)), target: draw(json_values)}]}
        ]
    return body


raw_bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda value: json.dumps(value).encode()),
    mutated_bodies().map(lambda value: json.dumps(value).encode()),
    st.integers(1, 30_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 30_000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
    st.sampled_from([b"\xff\xfe\x00", b'{"model": "\xc3\x28"}', b"{", b"", b"null", b'"str"', b"1e999999"]),
)
content_types = st.sampled_from(
    [
        "application/json",
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "",
    ]
)


def assert_well_formed(answer: httpx2.Response) -> None:
    assert answer.status_code < 500, (answer.status_code, answer.text[:300])
    assert "Traceback" not in answer.text
    assert answer.headers.get("request-id", "").startswith("req_")
    if answer.status_code >= 400:
        body = answer.json()
        assert body["type"] == "error"
        assert isinstance(body["error"]["type"], str) and isinstance(body["error"]["message"], str)


@pytest.fixture(scope="module")
def fuzz_target():
    with (
        Emulator(max_body_bytes=1_000_000, limits={"timeout_s": 5.0}) as emulator,
        emulator.http_client(headers={"x-api-key": "k"}) as http,
    ):
        yield emulator, http


@pytest.mark.timeout(FUZZ_TIMEOUT_S)
@FUZZ
@given(endpoint=st.sampled_from(ENDPOINTS), body=raw_bodies, content_type=content_types)
def test_any_body_to_any_endpoint(fuzz_target, endpoint, body, content_type):
    emulator, http = fuzz_target
    method, path = endpoint
    headers = {"content-type": content_type} if content_type else {}
    answer = http.request(method, path, content=body, headers=headers)
    assert_well_formed(answer)
    emulator.script.clear()
    emulator.runtime.services.faults.clear()


@pytest.mark.timeout(FUZZ_TIMEOUT_S)
@FUZZ
@given(
    method=st.sampled_from(["GET", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "POST"]),
    path=st.from_regex(r"\A/(v1|_emulator)/[a-z_/]{0,30}\Z"),
)
def test_any_method_any_path(fuzz_target, method, path):
    _, http = fuzz_target
    answer = http.request(method, path)
    assert answer.status_code < 500
    if method != "HEAD" and answer.status_code >= 400:
        assert answer.json()["type"] == "error"


def test_server_survives_slow_and_broken_clients():
    with Emulator() as emulator:
        host, port = emulator.start_server().removeprefix("http://").split(":")
        # Half a request then gone; headers cut short; not HTTP at all.
        for payload in (
            b'POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"mod',
            b"POST /v1/messages HTTP/1.1\r\nHo",
            b"GARBAGE\r\n\r\n",
        ):
            with socket.create_connection((host, int(port)), timeout=5) as sock:
                sock.sendall(payload)
                time.sleep(0.05)
        answer = httpx2.get(f"http://{host}:{port}/_emulator/health", timeout=5)
        assert answer.status_code == 200


#: the second turn of each conversation: its file, then the marked processes it can see while its own
#: marked process (named after the conversation, read from the file) is alive
SECOND_TURN = (
    "```bash\n"
    'name=ce-proc-$(cat mine.txt); (exec -a "$name" sleep 30) & sleep 1; cat mine.txt; ls | wc -l; '
    "for f in /proc/[0-9]*/cmdline; do tr '\\0' '\\n' < $f | head -1; done 2>/dev/null "
    "| grep -E '^ce-proc-conversation-[0-9]+$' | sort | tr '\\n' ' '\n"
    "```"
)


@pytest.mark.parametrize(
    ("backend", "conversations"),
    [("local", 32), pytest.param("docker", 8, marks=[pytest.mark.docker, pytest.mark.slow])],
)
def test_concurrent_conversations_do_not_cross_talk(backend, conversations, request, tmp_path):
    """Conversations in flight at once, each in its own container: each sees only its own file and, while
    all of them hold a marked process alive, only its own marked process."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    if backend == "docker":
        request.getfixturevalue("sandbox_image")
    together = threading.Barrier(conversations, timeout=120)
    with Emulator(backend=backend, state_dir=tmp_path / "state") as emulator:
        base_url = emulator.start_server()

        def conversation(number: int) -> tuple[str, str, str]:
            import anthropic

            client = anthropic.Anthropic(base_url=base_url, api_key="k", max_retries=0, timeout=120)
            marker = f"conversation-{number}"
            first = client.beta.messages.create(
                **VALID
                | {"messages": [{"role": "user", "content": f"```bash\necho {marker} > mine.txt; ls\n```"}]}
            )
            together.wait()  # every container exists: the second turns run side by side
            second = client.beta.messages.create(
                **VALID
                | {
                    "container": first.container.id,
                    "messages": [{"role": "user", "content": SECOND_TURN}],
                }
            )
            return marker, first.container.id, second.content[1].content.stdout

        with ThreadPoolExecutor(max_workers=conversations) as pool:
            results = list(pool.map(conversation, range(conversations)))
    assert len({container for _, container, _ in results}) == conversations
    for marker, _, stdout in results:
        assert stdout == f"{marker}\n1\nce-proc-{marker} ", stdout
