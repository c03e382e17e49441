"""Message Batches and count_tokens through the official SDK."""

from __future__ import annotations

import anthropic
import pytest

from emulator import Emulator, bash

TOOL = {"type": "code_execution_20250825", "name": "code_execution"}


def request(custom_id, content, **extra):
    params = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "tools": [TOOL],
        "messages": [{"role": "user", "content": content}],
    }
    params.update(extra)
    return {"custom_id": custom_id, "params": params}


def test_batch_of_five_code_execution_requests(code_execution_emulator, anthropic_client):
    requests = [request(f"r{n}", f"```bash\necho {n * n}\n```") for n in range(5)]

    batch = anthropic_client.beta.messages.batches.create(requests=requests)
    assert batch.id.startswith("msgbatch_01") and batch.processing_status in {"in_progress", "ended"}
    assert code_execution_emulator.runtime.batch_processor.wait_idle()
    ended = anthropic_client.beta.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.request_counts.succeeded == 5
    assert ended.results_url == f"http://emulator/v1/messages/batches/{batch.id}/results"

    results = {
        entry.custom_id: entry.result for entry in anthropic_client.beta.messages.batches.results(batch.id)
    }

    assert set(results) == {f"r{n}" for n in range(5)}
    for n in range(5):
        message = results[f"r{n}"].message
        assert results[f"r{n}"].type == "succeeded"
        assert message.content[1].content.stdout == f"{n * n}\n"


def test_per_request_errors_are_errored_results(code_execution_emulator, anthropic_client):
    requests = [
        request("good", "hi"),
        {"custom_id": "bad", "params": {"model": "claude-sonnet-4-6", "messages": []}},
    ]
    batch = anthropic_client.beta.messages.batches.create(requests=requests)
    code_execution_emulator.runtime.batch_processor.wait_idle()

    results = {
        entry.custom_id: entry.result for entry in anthropic_client.beta.messages.batches.results(batch.id)
    }

    assert results["good"].type == "succeeded"
    assert results["bad"].type == "errored"
    assert results["bad"].error.error.type == "invalid_request_error"
    assert results["bad"].error.error.message == "max_tokens: Field required"


def test_batch_creation_checks(anthropic_client):
    with pytest.raises(anthropic.BadRequestError):
        anthropic_client.beta.messages.batches.create(requests=[request("same", "a"), request("same", "b")])
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.beta.messages.batches.retrieve("msgbatch_01nope")


def test_list_cancel_delete():
    with Emulator(batch_delay_s=5.0) as emulator:
        client = emulator.anthropic_client()
        held = client.beta.messages.batches.create(requests=[request("a", "hi")])
        with pytest.raises(anthropic.BadRequestError):
            client.beta.messages.batches.delete(held.id)
        canceling = client.beta.messages.batches.cancel(held.id)
        assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
        listed = [b.id for b in client.beta.messages.batches.list(limit=10)]
        assert listed == [held.id]
    with Emulator() as emulator:
        client = emulator.anthropic_client()
        ids = [client.beta.messages.batches.create(requests=[request("a", "hi")]).id for _ in range(3)]
        emulator.runtime.batch_processor.wait_idle()
        page = client.beta.messages.batches.list(limit=2)
        assert [b.id for b in page.data] == ids[::-1][:2] and page.has_more
        assert [b.id for b in client.beta.messages.batches.list(limit=2)] == ids[::-1]
        deleted = client.beta.messages.batches.delete(ids[0])
        assert deleted.type == "message_batch_deleted"


def test_count_tokens(anthropic_client):
    counted = anthropic_client.beta.messages.count_tokens(
        model="claude-sonnet-4-6", tools=[TOOL], messages=[{"role": "user", "content": "x" * 400}]
    )
    assert counted.input_tokens >= 100
    bigger = anthropic_client.beta.messages.count_tokens(
        model="claude-sonnet-4-6", tools=[TOOL], messages=[{"role": "user", "content": "x" * 4000}]
    )
    assert bigger.input_tokens > counted.input_tokens
    with pytest.raises(anthropic.BadRequestError):
        anthropic_client.beta.messages.count_tokens(
            model="claude-sonnet-4-6", messages=[{"role": "nobody", "content": "x"}]
        )


def test_emulator_bash_in_batch_uses_containers(code_execution_emulator, anthropic_client):
    code_execution_emulator.add_turn(bash("echo scripted"))
    batch = anthropic_client.beta.messages.batches.create(requests=[request("s", "go")])
    code_execution_emulator.runtime.batch_processor.wait_idle()
    (entry,) = list(anthropic_client.beta.messages.batches.results(batch.id))
    assert entry.result.message.content[1].content.stdout == "scripted\n"
    assert entry.result.message.container.id.startswith("container_01")
