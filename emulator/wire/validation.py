"""Validate wire objects against our JSON Schemas and phrase problems the way the real API does.

The real API validates request bodies with pydantic and answers `400 invalid_request_error` with the first
error as `"<dotted.path>: <pydantic message>"`, e.g. `messages.0.role: Field required` or
`tools.0.custom.defer_loading: Extra inputs are not permitted`. Tagged unions (tools, content blocks,
result contents, `cache_control`, callers...) put the tag of the selected branch into the path
(`messages.1.content.0.tool_use.id`); a custom tool, which may omit `type`, is tagged `custom`.

How a `jsonschema` error becomes a `Problem`:

* `anyOf` (e.g. `content: str | list`, `container: str | object | null`) is resolved like the API does:
  the first branch whose JSON type fits the input is descended into; when none fits, the first branch
  speaks (`container: Input should be a valid string`). No union segment is added to the path.
* A node annotated with `x-discriminator` is a tagged union: an unknown tag gives
  `Input tag 'x' found using 'type' does not match any of the expected tags: 'a', 'b'` (sorted), a
  missing tag `Unable to extract tag using discriminator 'type'`, and errors inside the selected branch
  get the tag inserted after the union's path.
* Keyword errors map to pydantic wording (`Field required`, `Extra inputs are not permitted`,
  `Input should be a valid integer`, `Input should be 'user' or 'assistant'`, ...).
* A node's `x-api-check` maps a keyword to the API's own words for it: a check the API makes after parsing
  (`messages: at least one message is required`), so it is reported only when nothing else is wrong.

Problems are ordered like pydantic reports them: by path, each object level in the order its schema
declares the properties (unknown keys last, in input order), array items by index, an object's own
error before errors inside it. `validate_request` raises the first one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from jsonschema.exceptions import ValidationError

from emulator.errors import InvalidRequestError
from emulator.wire.schemas import SchemaStore, default_store

if TYPE_CHECKING:
    from referencing._core import Resolver

REQUEST_SCHEMA = "request.schema.json"
RESPONSE_SCHEMA = "response.schema.json"
STREAM_EVENT_SCHEMA = "response.schema.json#/$defs/stream_event"
ERROR_SCHEMA = "errors.schema.json"

#: sort ranks: declared properties use their index, keys the schema does not declare come after them
_UNDECLARED = 1_000_000

_TYPE_MESSAGES = {
    "string": "Input should be a valid string",
    "integer": "Input should be a valid integer",
    "number": "Input should be a valid number",
    "boolean": "Input should be a valid boolean",
    "array": "Input should be a valid list",
    "object": "Input should be a valid dictionary",
    "null": "Input should be None",
}
_UNION_TYPE_MESSAGE = "Input should be a valid dictionary or object to extract fields from"
_JSON_TYPE_NAMES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    type(None): "null",
}

# Problems at the same path: the more fundamental one first.
_PRIORITY = {"tag": 0, "type": 1, "const": 2, "enum": 2, "required": 3}
_OTHER_PRIORITY = 4
_EXTRA_PRIORITY = 5


@dataclass(frozen=True, order=True)
class Problem:
    """One validation failure: `location` is the API-style dotted path (union tags included)."""

    sort_key: tuple[Any, ...] = field(repr=False)
    location: str
    message: str
    path: tuple[str | int, ...] = field(compare=False)
    #: an `x-api-check`: the API makes it only on a body that parsed, so it counts when nothing else is wrong
    after_parsing: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


def find_problems(ref: str, instance: object, store: SchemaStore | None = None) -> list[Problem]:
    """Every problem of `instance` against the schema `ref`, sorted, without duplicates."""
    store = store or default_store()
    if store.surely_valid(ref, instance):
        return []
    validator = store.validator(ref)
    walker = _Walker(validator.schema, store.registry.resolver(), instance)
    unique: dict[tuple[str, str], Problem] = {}
    for problem in walker.problems(_leaves(validator.iter_errors(instance))):
        unique.setdefault((problem.location, problem.message), problem)
    parsing = [problem for problem in unique.values() if not problem.after_parsing]
    return sorted(parsing or unique.values())


def validate_request(body: object, store: SchemaStore | None = None) -> None:
    """Raise `InvalidRequestError` (HTTP 400) with the API's message for a request body's first problem."""
    if not isinstance(body, dict):
        kind = _JSON_TYPE_NAMES.get(type(body), "a number")
        raise InvalidRequestError(f"The request body must be a JSON object, not {kind}")
    problems = find_problems(REQUEST_SCHEMA, body, store)
    if problems:
        raise InvalidRequestError(str(problems[0]))


def validate_response(body: object, store: SchemaStore | None = None) -> list[str]:
    """Problems (`"path: message"`) of a non-streaming Messages response body; `[]` when it conforms."""
    return [str(problem) for problem in find_problems(RESPONSE_SCHEMA, body, store)]


def validate_stream_event(event: object, store: SchemaStore | None = None) -> list[str]:
    """Problems of one SSE `data:` payload (any event type, including `ping` and `error`)."""
    return [str(problem) for problem in find_problems(STREAM_EVENT_SCHEMA, event, store)]


def validate_error_body(body: object, store: SchemaStore | None = None) -> list[str]:
    """Problems of an HTTP error envelope."""
    return [str(problem) for problem in find_problems(ERROR_SCHEMA, body, store)]


# --- choosing the errors to report --------------------------------------------------------------------------


def _leaves(errors: Iterable[ValidationError]) -> Iterator[ValidationError]:
    """Flatten `anyOf`/`oneOf` failures into the errors of the branch the input was meant for."""
    for error in errors:
        if error.validator in ("anyOf", "oneOf") and error.context:
            yield from _leaves(_chosen_branch(error.context))
        else:
            yield error


def _chosen_branch(context: Sequence[ValidationError]) -> list[ValidationError]:
    branches: dict[int, list[ValidationError]] = {}
    for error in context:
        branches.setdefault(int(error.relative_schema_path[0]), []).append(error)
    for index in sorted(branches):
        if not any(_rejects_kind(error) for error in branches[index]):
            return branches[index]
    first = branches[min(branches)]
    return [error for error in first if _rejects_kind(error)]


def _rejects_kind(error: ValidationError) -> bool:
    """True when a union branch refuses the input as a whole (wrong JSON type or literal)."""
    return not error.relative_path and error.validator in ("type", "const", "enum")


# --- from a jsonschema error to API-style problems ----------------------------------------------------------


@dataclass
class _Position:
    """Where an error sits: the schema node holding the failing keyword and the instance it applies to."""

    node: Mapping[str, Any]
    instance: Any
    path: list[str | int]
    ranks: list[int]
    tags: dict[int, str]
    union_of_tag: Mapping[str, Any] | None


class _Walker:
    def __init__(
        self, root_schema: Mapping[str, Any], resolver: Resolver[Any], root_instance: object
    ) -> None:
        self.root_schema = root_schema
        self.resolver = resolver
        self.root_instance = root_instance

    def problems(self, errors: Iterable[ValidationError]) -> Iterator[Problem]:
        for error in errors:
            yield from self._problems_of(error)

    def _problems_of(self, error: ValidationError) -> Iterator[Problem]:
        try:
            where = self._locate(error)
        except (KeyError, IndexError, TypeError, ValueError):
            # a schema shape the walker does not know: still report the error, in plain jsonschema terms
            path = tuple(error.absolute_path)
            location = ".".join(str(part) for part in path)
            yield Problem((), location, _keyword_message(error), path)
            return
        keyword = error.validator
        node = where.node
        union = node.get("x-discriminator") if isinstance(node, Mapping) else None
        instance = where.instance

        if keyword == "required" and isinstance(instance, Mapping):
            declared = list(node.get("properties", {}))
            for rank, name in enumerate(error.validator_value):
                if name in instance:
                    continue
                if union and name == union["propertyName"]:
                    yield self._problem(
                        where, [], [], f"Unable to extract tag using discriminator {name!r}", "tag"
                    )
                else:
                    position = declared.index(name) if name in declared else _UNDECLARED + rank
                    yield self._problem(where, [name], [position], "Field required", "required")
            return
        if keyword == "additionalProperties" and isinstance(instance, Mapping):
            for position, name in enumerate(instance):
                if _is_additional(node, name):
                    yield self._problem(
                        where, [name], [_UNDECLARED + position], "Extra inputs are not permitted", "extra"
                    )
            return
        if keyword in ("enum", "const") and where.union_of_tag is not None:
            prop = where.union_of_tag["x-discriminator"]["propertyName"]
            tags = ", ".join(repr(tag) for tag in sorted(map(str, error.validator_value)))
            message = (
                f"Input tag {_tag_text(instance)!r} found using {prop!r} does not match any of the expected "
                f"tags: {tags}"
            )
            # reported at the union itself: drop the discriminator property from the path
            yield self._problem(where, [], [], message, "tag", up=1)
            return
        if keyword == "type" and union:
            yield self._problem(where, [], [], _UNION_TYPE_MESSAGE, "type")
            return
        checks = node.get("x-api-check") if isinstance(node, Mapping) else None
        if isinstance(checks, Mapping) and keyword in checks:
            problem = self._problem(where, [], [], str(checks[keyword]), str(keyword))
            yield replace(problem, after_parsing=True)
            return
        yield self._problem(where, [], [], _keyword_message(error), str(keyword))

    def _problem(
        self,
        where: _Position,
        extra_path: list[str | int],
        extra_ranks: list[int],
        message: str,
        kind: str,
        up: int = 0,
    ) -> Problem:
        path = where.path[: len(where.path) - up] + extra_path
        ranks = where.ranks[: len(where.ranks) - up] + extra_ranks
        segments: list[str] = []
        for depth in range(len(path) + 1):
            # the tag of the union branch the object at `depth` was validated as (errors about the union
            # itself never went through a branch, so they carry none)
            tag = where.tags.get(depth)
            if tag is not None:
                segments.append(tag)
            if depth < len(path):
                segments.append(str(path[depth]))
        priority = _PRIORITY.get(kind, _EXTRA_PRIORITY if kind == "extra" else _OTHER_PRIORITY)
        return Problem(
            sort_key=(tuple(ranks), priority, message),
            location=".".join(segments),
            message=message,
            path=tuple(path),
        )

    def _locate(self, error: ValidationError) -> _Position:
        """Replay `error.absolute_schema_path` over the schemas (resolving `$ref`s) and the instance."""
        node: Any = self.root_schema
        resolver = self.resolver
        instance = self.root_instance
        path: list[str | int] = []
        ranks: list[int] = []
        tags: dict[int, str] = {}
        pending_union: Mapping[str, Any] | None = None
        union_of_tag: Mapping[str, Any] | None = None
        instance_path = list(error.absolute_path)
        steps = list(error.absolute_schema_path)
        index = 0
        while index < len(steps) - 1:  # the last step is the failing keyword itself
            step = steps[index]
            node, resolver = _deref(node, resolver, step)
            union_of_tag = None
            if step == "properties":
                name = steps[index + 1]
                declared = list(node["properties"])
                if "x-discriminator" in node and name == node["x-discriminator"]["propertyName"]:
                    union_of_tag = node
                ranks.append(declared.index(name))
                node = node["properties"][name]
                instance = instance[name]
                path.append(name)
                index += 2
            elif step in ("items", "additionalProperties", "patternProperties", "prefixItems"):
                key = instance_path[len(path)]
                if isinstance(key, int):
                    ranks.append(key)
                else:
                    ranks.append(_UNDECLARED + list(instance).index(key))
                node = node[step]
                if step in ("patternProperties", "prefixItems"):
                    node = node[steps[index + 1]]
                    index += 1
                instance = instance[key]
                path.append(key)
                index += 1
            elif step in ("allOf", "anyOf", "oneOf"):
                if step == "allOf" and "x-discriminator" in node:
                    pending_union = node
                node = node[step][steps[index + 1]]
                index += 2
            else:
                if step == "then" and pending_union is not None:
                    tags[len(path)] = _branch_tag(pending_union, instance)
                pending_union = None
                node = node[step]
                index += 1
        if steps:
            node, resolver = _deref(node, resolver, steps[-1])
        return _Position(node, instance, path, ranks, tags, union_of_tag)


def _deref(node: Any, resolver: Resolver[Any], step: object) -> tuple[Any, Resolver[Any]]:
    """Follow `$ref`s (which `jsonschema` leaves out of schema paths) until `step` is a key of the node."""
    while isinstance(node, Mapping) and step not in node and "$ref" in node:
        resolved = resolver.lookup(node["$ref"])
        node, resolver = resolved.contents, resolved.resolver
    return node, resolver


def _branch_tag(union: Mapping[str, Any], instance: object) -> str:
    spec = union["x-discriminator"]
    if isinstance(instance, Mapping) and spec["propertyName"] in instance:
        return _tag_text(instance[spec["propertyName"]])
    return str(spec.get("default", ""))


def _tag_text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


def _is_additional(node: Mapping[str, Any], name: str) -> bool:
    if name in node.get("properties", {}):
        return False
    return not any(re.search(pattern, name) for pattern in node.get("patternProperties", {}))


def _literal_list(values: Sequence[object]) -> str:
    shown = [repr(value) for value in values]
    if len(shown) == 1:
        return shown[0]
    return ", ".join(shown[:-1]) + " or " + shown[-1]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _keyword_message(error: ValidationError) -> str:
    keyword, expected, instance = error.validator, error.validator_value, error.instance
    if keyword == "type":
        first = expected if isinstance(expected, str) else expected[0]
        if first == "integer" and isinstance(instance, float) and not isinstance(instance, bool):
            return "Input should be a valid integer, got a number with a fractional part"
        return _TYPE_MESSAGES.get(first, f"Input should be of type {first}")
    if keyword == "enum":
        return f"Input should be {_literal_list(list(expected))}"
    if keyword == "const":
        return f"Input should be {expected!r}"
    if keyword == "minimum":
        return f"Input should be greater than or equal to {expected}"
    if keyword == "maximum":
        return f"Input should be less than or equal to {expected}"
    if keyword == "exclusiveMinimum":
        return f"Input should be greater than {expected}"
    if keyword == "exclusiveMaximum":
        return f"Input should be less than {expected}"
    if keyword == "minLength":
        return f"String should have at least {_plural(expected, 'character')}"
    if keyword == "maxLength":
        return f"String should have at most {_plural(expected, 'character')}"
    if keyword == "pattern":
        return f"String should match pattern {expected!r}"
    if keyword == "minItems":
        return f"List should have at least {_plural(expected, 'item')} after validation, not {len(instance)}"
    if keyword == "maxItems":
        return f"List should have at most {_plural(expected, 'item')} after validation, not {len(instance)}"
    return error.message
