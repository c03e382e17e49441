"""Load the JSON Schemas (`schemas/*.json`) into a `referencing.Registry` and hand out cached validators.

The schemas live at the top of the repository and ship inside the wheel as the `emulator.schemas` package.
Every file carries an `$id` under `SCHEMA_BASE_URI` and refers to its siblings by relative `$ref`, so a
reference such as `"response.schema.json#/$defs/stream_event"` works both here and in any other
Draft 2020-12 tool pointed at the same folder.
"""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
import json
from collections.abc import Iterator, Mapping
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT202012

try:  # a compiled Draft 2020-12 validator answers "valid?" ~1000x faster than jsonschema's walk
    import jsonschema_rs
except ImportError:  # pragma: no cover - the dependency is declared; this keeps a broken wheel non-fatal
    jsonschema_rs = None

SCHEMA_BASE_URI = "https://code-execution-emulator.dev/schemas/"
SCHEMA_PACKAGE = "emulator.schemas"


def schema_directory() -> Traversable:
    """`emulator.schemas` when installed from a wheel, else `<repo root>/schemas`."""
    try:
        spec = importlib.util.find_spec(SCHEMA_PACKAGE)
    except ModuleNotFoundError:
        spec = None
    if spec is not None:
        return importlib.resources.files(SCHEMA_PACKAGE)
    return Path(__file__).resolve().parents[2] / "schemas"


class SchemaStore:
    """All schema files of one directory, registered by `$id`, with one cached validator per reference."""

    def __init__(self, directory: Traversable | None = None) -> None:
        self.directory: Traversable = directory if directory is not None else schema_directory()
        self._documents: dict[str, dict[str, Any]] = {}
        for entry in sorted(self.directory.iterdir(), key=lambda item: item.name):
            if entry.name.endswith(".json") and entry.is_file():
                document = json.loads(entry.read_text(encoding="utf-8"))
                if not isinstance(document, dict) or not isinstance(document.get("$id"), str):
                    raise ValueError(f"schema {entry.name} has no $id")
                self._documents[entry.name] = document
        if not self._documents:
            raise FileNotFoundError(f"no JSON Schema files in {self.directory}")
        self.registry: Registry[Any] = (
            Registry()
            .with_resources(
                (document["$id"], DRAFT202012.create_resource(document))
                for document in self._documents.values()
            )
            .crawl()
        )
        self._validators: dict[str, Draft202012Validator] = {}
        self._fast_validators: dict[str, Any] = {}
        self._fast_registry: Any = None

    @property
    def names(self) -> tuple[str, ...]:
        """File names of the loaded schemas, sorted."""
        return tuple(self._documents)

    def document(self, name: str) -> Mapping[str, Any]:
        """The parsed contents of one schema file, e.g. `store.document("request.schema.json")`."""
        return self._documents[name]

    def uri(self, ref: str) -> str:
        """Absolute URI of `ref`, which is either absolute or relative to `SCHEMA_BASE_URI`."""
        return ref if "://" in ref else SCHEMA_BASE_URI + ref

    def validator(self, ref: str) -> Draft202012Validator:
        """A Draft 2020-12 validator for `ref` (`"request.schema.json"`, `"x.schema.json#/$defs/y"`)."""
        uri = self.uri(ref)
        validator = self._validators.get(uri)
        if validator is None:
            self.registry.resolver().lookup(uri)  # fail now, with a clear error, on an unknown reference
            validator = Draft202012Validator({"$ref": uri}, registry=self.registry)
            self._validators[uri] = validator
        return validator

    def iter_errors(self, ref: str, instance: object) -> Iterator[ValidationError]:
        """The raw `jsonschema` errors of `instance` against `ref`."""
        return self.validator(ref).iter_errors(instance)

    def is_valid(self, ref: str, instance: object) -> bool:
        return self.validator(ref).is_valid(instance)

    def surely_valid(self, ref: str, instance: object) -> bool:
        """True when the compiled validator accepts `instance`: a fast answer for the common, valid case.

        False means "not known valid", never "invalid": callers then ask `jsonschema`, which stays the one
        authority on what is wrong and how to phrase it. The two agree on every body of the test corpora
        (`tests/unit/test_fast_validation.py`).
        """
        if jsonschema_rs is None:
            return False
        try:
            return bool(self._fast_validator(ref).is_valid(instance))
        except Exception:  # a Python value JSON cannot hold (a set, a NaN key...): let jsonschema judge
            return False

    def _fast_validator(self, ref: str) -> Any:
        uri = self.uri(ref)
        validator = self._fast_validators.get(uri)
        if validator is None:
            if self._fast_registry is None:
                self._fast_registry = jsonschema_rs.Registry(
                    [(document["$id"], document) for document in self._documents.values()]
                )
            validator = jsonschema_rs.validator_for({"$ref": uri}, registry=self._fast_registry)
            self._fast_validators[uri] = validator
        return validator


@functools.cache
def default_store() -> SchemaStore:
    """The store over the packaged (or repository) schemas, loaded once per process."""
    return SchemaStore()
