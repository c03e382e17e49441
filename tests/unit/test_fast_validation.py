"""The compiled validator (jsonschema-rs) is only a fast "yes": it must never accept what jsonschema rejects.

`SchemaStore.surely_valid` short-cuts `find_problems` for valid bodies; a body it wrongly accepted would skip
the API's 400. So on every body we have, valid or not, the two validators must give the same verdict.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator import strategies
from emulator.wire.schemas import default_store
from emulator.wire.validation import REQUEST_SCHEMA, RESPONSE_SCHEMA, STREAM_EVENT_SCHEMA, find_problems

from . import test_request_validation as request_cases
from . import test_schemas_real_api as corpus


def parametrized_bodies(function: Any) -> list[Any]:
    """The `body` argument of every parametrized case of a test function of test_request_validation."""
    bodies = []
    for mark in getattr(function, "pytestmark", []):
        if mark.name != "parametrize":
            continue
        names = [name.strip() for name in mark.args[0].split(",")] if isinstance(mark.args[0], str) else []
        names = names or list(mark.args[0])
        for case in mark.args[1]:
            values = case.values if hasattr(case, "values") else case
            values = values if len(names) > 1 else (values[0] if hasattr(case, "values") else values,)
            bodies.append(dict(zip(names, values, strict=True))["body"])
    return bodies


VALID = parametrized_bodies(request_cases.test_valid_requests_pass)
INVALID = parametrized_bodies(request_cases.test_invalid_requests_get_the_api_message)


def agree(ref: str, body: Any) -> None:
    store = default_store()
    slow_verdict = store.is_valid(ref, body)
    assert store.surely_valid(ref, body) == slow_verdict, (ref, body)
    assert (find_problems(ref, body) == []) == slow_verdict


def test_the_case_lists_were_found():
    assert len(VALID) >= 10
    assert len(INVALID) >= 50


@pytest.mark.parametrize("body", VALID + INVALID)
def test_request_cases_get_the_same_verdict(body):
    agree(REQUEST_SCHEMA, body)


CORPUS_REFS = {
    "request": REQUEST_SCHEMA,
    "response": RESPONSE_SCHEMA,
    "event": STREAM_EVENT_SCHEMA,
    "error": "errors.schema.json",
}


def test_the_real_corpus_gets_the_same_verdict():
    corpus.require_corpus()
    checked = 0
    for path in corpus.CORPUS:
        for item in corpus.items_of(path):
            agree(item.ref or CORPUS_REFS[item.kind], item.body)
            checked += 1
    assert checked > 500


def test_an_invalid_body_is_still_phrased_by_jsonschema():
    body = {"model": "m", "messages": []}
    assert not default_store().surely_valid(REQUEST_SCHEMA, body)
    assert [str(problem) for problem in find_problems(REQUEST_SCHEMA, body)] == ["max_tokens: Field required"]


def test_values_json_cannot_hold_fall_back_to_jsonschema():
    assert (
        default_store().surely_valid(REQUEST_SCHEMA, {"model": "m", "max_tokens": 1, "messages": set()})
        is False
    )


@settings(max_examples=60, deadline=None)
@given(strategies.request_bodies())
def test_generated_requests_get_the_same_verdict(body):
    agree(REQUEST_SCHEMA, body)


@settings(max_examples=40, deadline=None)
@given(strategies.messages())
def test_generated_messages_get_the_same_verdict(message):
    agree(RESPONSE_SCHEMA, message)


@settings(max_examples=40, deadline=None)
@given(strategies.request_bodies(), st.data())
def test_mutated_requests_get_the_same_verdict(body, data):
    """One field of a valid body replaced by a value of another type: both validators must say so alike."""
    mutated = copy.deepcopy(body)
    key = data.draw(st.sampled_from(sorted(mutated)))
    mutated[key] = data.draw(st.one_of(st.none(), st.integers(), st.text(max_size=3), st.lists(st.none())))
    agree(REQUEST_SCHEMA, mutated)


@settings(max_examples=20, deadline=None)
@given(strategies.streams())
def test_generated_stream_events_get_the_same_verdict(stream):
    for event in stream.events:
        agree(STREAM_EVENT_SCHEMA, event)
