"""Matching a live request to a recorded one, with vcrpy's `Cassette` and vcrpy-style matchers.

A request matches a recorded one when the method, the API path (from `/v1/` on; the host and the query
string are ignored, so `?beta=true` from older SDKs matches) and the body agree. JSON bodies are compared
semantically: key order and whitespace do not matter, and configured volatile fields (dotted paths, `*` for
any key or list item, e.g. `metadata.user_id` or `messages.*.content.*.cache_control`) are dropped first.
Multipart bodies are compared with their random boundary normalised. Repeated identical requests are
answered in recorded order: vcrpy plays each recorded interaction once, the first unplayed match first.

`IndexedCassette` is vcrpy's `Cassette` with a hash index in front of its linear scan: the candidates for a
request are looked up by (method, path, canonical body) and then confirmed with the same matchers, so the
lookup of the last of 1,000 interactions costs one dictionary probe instead of 1,000 matcher runs. The
cassette's format and its record/replay semantics are vcrpy's, unchanged.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vcr.cassette import Cassette
from vcr.matchers import method as vcr_method
from vcr.matchers import requests_match
from vcr.record_mode import RecordMode
from vcr.request import Request as VcrRequest

from emulator.cassettes.format import AtomicPersister, Serializer, sweep_stale_temps

MAX_DIFF_LINES = 60
_BOUNDARY = re.compile(r"boundary=\"?([^\";,\s]+)", re.IGNORECASE)
_KEY_ATTRIBUTE = "_emulator_match_key"


def api_path(path: str) -> str:
    """The part of a URL path the API routes on: from `/v1/` on (a proxy prefix is ignored)."""
    position = path.find("/v1/")
    trimmed = path[position:] if position >= 0 else path
    return trimmed.rstrip("/") or "/"


# --- body normalisation ---------------------------------------------------------------------------------


def _split_paths(fields: Iterable[str]) -> list[list[str]]:
    return [field.split(".") for field in fields if field]


def _drop(value: Any, path: Sequence[str]) -> None:
    if not path:
        return
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        keys = list(value) if head == "*" else [head] if head in value else []
        for key in keys:
            if rest:
                _drop(value[key], rest)
            else:
                del value[key]
    elif isinstance(value, list):
        if head == "*":
            indexes = range(len(value))
        elif head.isdigit() and int(head) < len(value):
            indexes = range(int(head), int(head) + 1)
        else:
            indexes = range(0)
        if rest:
            for index in indexes:
                _drop(value[index], rest)
        else:
            for index in sorted(indexes, reverse=True):
                del value[index]


def _content_type(headers: Any) -> str:
    try:
        value = headers.get("content-type") or headers.get("Content-Type") or ""
    except AttributeError:
        return ""
    if isinstance(value, list | tuple):
        value = value[0] if value else ""
    return value.decode() if isinstance(value, bytes) else str(value)


def _body_bytes(request: VcrRequest) -> bytes:
    body = request.body
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if hasattr(body, "read"):
        return bytes(body.read())
    return b"".join(part if isinstance(part, bytes) else str(part).encode() for part in body)


@dataclass(frozen=True)
class NormalBody:
    """A body made comparable: `text` is canonical JSON (sorted keys) or the raw text."""

    is_json: bool
    text: str

    def pretty(self) -> list[str]:
        if self.is_json:
            return json.dumps(
                json.loads(self.text), indent=2, sort_keys=True, ensure_ascii=False
            ).splitlines()
        return self.text.splitlines()


class BodyNormalizer:
    """Canonical forms of request bodies, with the volatile fields removed."""

    #: how many raw bodies `key` remembers the keys of (a replayed cassette's worth; then it starts over)
    MEMO_SIZE = 4096

    def __init__(self, ignore: Iterable[str] = ()) -> None:
        self.ignore = tuple(ignore)
        self._paths = _split_paths(self.ignore)
        self._memo: dict[tuple[str, str, bytes], tuple[str, str, str]] = {}

    def normalize(self, request: VcrRequest) -> NormalBody:
        return self.normalize_body(_body_bytes(request), _content_type(request.headers))

    def normalize_body(self, raw: bytes, content_type: str) -> NormalBody:
        if not raw.strip():
            return NormalBody(False, "")
        try:
            parsed = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            text = raw.decode("utf-8", errors="replace")
            boundary = _BOUNDARY.search(content_type)
            if boundary:
                text = text.replace(boundary.group(1), "BOUNDARY")
            return NormalBody(False, text)
        for path in self._paths:
            _drop(parsed, path)
        return NormalBody(True, json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False))

    def key(self, request: VcrRequest) -> tuple[str, str, str]:
        """(method, API path, body digest), cached on the request object (recorded requests never change)."""
        cached = request.__dict__.get(_KEY_ATTRIBUTE)
        if cached is not None and cached[0] == self.ignore:
            return cached[1]  # type: ignore[no-any-return]
        key = self.key_of(request.method, request.path, _body_bytes(request), _content_type(request.headers))
        request.__dict__[_KEY_ATTRIBUTE] = (self.ignore, key)
        return key

    def key_of(self, method: str, path: str, raw: bytes, content_type: str) -> tuple[str, str, str]:
        """The key of a request given by its parts (what `key` computes for a vcrpy request)."""
        method, path = str(method).upper(), api_path(path)
        # A replayed client sends the very bytes that were recorded: those skip the JSON round trip.
        memo_key = (method, path, raw)
        key = self._memo.get(memo_key)
        if key is None:
            body = self.normalize_body(raw, content_type)
            digest = hashlib.blake2b(body.text.encode("utf-8"), digest_size=16).hexdigest()
            key = (method, path, digest)
            if len(self._memo) >= self.MEMO_SIZE:
                self._memo.clear()
            self._memo[memo_key] = key
        return key


# --- vcrpy matchers -------------------------------------------------------------------------------------


def path_matcher(r1: VcrRequest, r2: VcrRequest) -> None:
    """vcrpy matcher: the API path (from `/v1/` on), host and query ignored."""
    if api_path(r1.path) != api_path(r2.path):
        raise AssertionError(f"path {api_path(r1.path)} != recorded {api_path(r2.path)}")


path_matcher.__name__ = "api_path"


class BodyMatcher:
    """vcrpy matcher comparing bodies semantically; its failure message is a unified diff."""

    __name__ = "json_body"

    def __init__(self, normalizer: BodyNormalizer) -> None:
        self.normalizer = normalizer

    def __call__(self, r1: VcrRequest, r2: VcrRequest) -> None:
        # vcrpy passes the live request first and the recorded one second
        if self.normalizer.key(r1)[2] != self.normalizer.key(r2)[2]:
            raise AssertionError(body_diff(self.normalizer.normalize(r2), self.normalizer.normalize(r1)))


def body_diff(recorded: NormalBody, live: NormalBody, limit: int = MAX_DIFF_LINES) -> str:
    lines = list(
        difflib.unified_diff(recorded.pretty(), live.pretty(), "recorded", "this request", n=2, lineterm="")
    )
    if not lines:
        return "the bodies differ only in ways the diff does not show (encoding)"
    shown = [line if len(line) <= 300 else line[:300] + "..." for line in lines[:limit]]
    if len(lines) > limit:
        shown.append(f"... ({len(lines) - limit} more diff lines)")
    return "\n".join(shown)


def matchers(ignore: Iterable[str] = ()) -> tuple[Callable[[VcrRequest, VcrRequest], None], ...]:
    """The matchers we match on: vcrpy's `method`, then the API path and the semantic body."""
    return (vcr_method, path_matcher, BodyMatcher(BodyNormalizer(ignore)))


# --- the indexed cassette ---------------------------------------------------------------------------------


class IndexedCassette(Cassette):  # type: ignore[misc]
    """vcrpy's `Cassette` with a hash index over (method, API path, canonical body).

    With `confirm` (the default) the index only narrows the candidates and each is confirmed with the
    cassette's matchers, so the answers are exactly those of the linear scan whatever the matchers. Without
    it, the index key must be exactly what the matchers compare (as `open_cassette` sets it up), and a
    candidate is taken as matched.
    """

    def __init__(
        self,
        *args: Any,
        index_key: Callable[[VcrRequest], Hashable],
        confirm: bool = True,
        **kwargs: Any,
    ) -> None:
        self._index: dict[Hashable, list[int]] = {}
        self._index_key = index_key
        self._confirm = confirm
        #: the file did not exist when the cassette was loaded (vcrpy treats that as an empty cassette)
        self.file_missing = False
        super().__init__(*args, **kwargs)

    def _load(self) -> None:
        # Remembered at load time: a miss must tell a typo'd path from an empty cassette, even if a later
        # save has since created the file.
        self.file_missing = not Path(self._path).exists()
        super()._load()

    def append(self, request: VcrRequest, response: Any) -> None:
        before = len(self.data)
        super().append(request, response)
        for position in range(before, len(self.data)):
            self._index.setdefault(self._index_key(self.data[position][0]), []).append(position)

    def _responses(self, request: VcrRequest) -> Iterator[tuple[int, Any]]:
        request = self._before_record_request(request)
        if not request:
            return
        for position in self._index.get(self._index_key(request), ()):
            stored_request, response = self.data[position]
            if not self._confirm or requests_match(request, stored_request, self._match_on):
                yield position, response

    def play_key(self, key: Hashable) -> Any:
        """vcrpy's `play_response` for a request known by its index key (None: nothing left to play).

        Only for a cassette whose index is exact (`confirm=False`) and that has no `before_record_request`
        filter, so that the key alone decides, as the matchers would. It spares the replay path the
        building of a vcrpy `Request` for every lookup.
        """
        if self._confirm:
            raise ValueError("play_key needs an exact index (confirm=False)")
        for position in self._index.get(key, ()):
            if self.play_counts[position] == 0 or self.allow_playback_repeats:
                self.play_counts[position] += 1
                return self.data[position][1]
        return None

    def _new_interactions(self) -> list[tuple[VcrRequest, Any]]:
        # vcrpy compares every interaction with every loaded one here; the index makes it linear
        old = {self._index_key(request) for request, _ in self._old_interactions}
        return [(request, response) for request, response in self.data if self._index_key(request) not in old]

    def _rerecorded_interactions(self) -> list[tuple[VcrRequest, Any]]:
        loaded = self.data[: self._loaded_count]
        recorded = self.data[self._loaded_count :]
        if self.drop_unused_requests:
            return recorded
        fresh = {self._index_key(request) for request, _ in recorded}
        kept = [(request, response) for request, response in loaded if self._index_key(request) not in fresh]
        return kept + recorded

    def unplayed(self) -> list[int]:
        return [position for position in range(len(self.data)) if self.play_counts[position] == 0]


def open_cassette(
    path: Path | str,
    record_mode: str = "none",
    ignore: Iterable[str] = (),
    *,
    indexed: bool = True,
    normalizer: BodyNormalizer | None = None,
) -> Cassette:
    """Load a cassette (missing: empty) with our serializer, atomic persister and matchers, first sweeping
    the temp files a killed save of it left behind.

    `normalizer` (default: a new one ignoring `ignore`) is shared with a caller that computes keys itself,
    so that the keys remembered while loading serve its lookups.
    """
    normalizer = normalizer if normalizer is not None else BodyNormalizer(ignore)
    sweep_stale_temps(Path(path))
    match_on = (vcr_method, path_matcher, BodyMatcher(normalizer))
    mode = RecordMode(record_mode)
    options: dict[str, Any] = {
        "path": str(path),
        "serializer": Serializer,
        "persister": AtomicPersister,
        "record_mode": mode,
        "match_on": match_on,
    }
    if indexed:
        # the key is (method, API path, canonical body digest): what these three matchers compare
        return IndexedCassette.load(index_key=normalizer.key, confirm=False, **options)
    return Cassette.load(**options)


# --- explaining a miss ------------------------------------------------------------------------------------


def cassette_file_missing(cassette: Cassette) -> bool:
    """Whether the cassette was opened on a path with no file (for a plain vcrpy cassette: has none now)."""
    missing = getattr(cassette, "file_missing", None)
    return bool(missing) if missing is not None else not Path(cassette._path).exists()


def explain_miss(cassette: Cassette, request: VcrRequest, normalizer: BodyNormalizer) -> tuple[str, str]:
    """(summary, detail) for a request no recorded interaction answers: the closest one and how it differs."""
    if not cassette.data:
        if cassette_file_missing(cassette):
            return f"cassette file not found: {Path(cassette._path).absolute()}", ""
        return "the cassette has no interactions", ""
    key = normalizer.key(request)
    same = [position for position, (stored, _) in enumerate(cassette.data) if normalizer.key(stored) == key]
    if same:
        return (
            f"it matches recorded interaction(s) {', '.join(map(str, same))}, but each was already played "
            f"(the cassette has this request {len(same)} time(s); this is one more)",
            "",
        )
    live = normalizer.normalize(request)
    best: tuple[float, int] | None = None
    for position, (stored, _) in enumerate(cassette.data):
        score = 0.0
        if str(stored.method).upper() == key[0]:
            score += 2
        if api_path(stored.path) == key[1]:
            score += 2
        recorded = normalizer.normalize(stored)
        score += difflib.SequenceMatcher(None, recorded.text, live.text, autojunk=False).quick_ratio()
        if best is None or score > best[0]:
            best = (score, position)
    assert best is not None
    position = best[1]
    stored = cassette.data[position][0]
    differences: list[str] = []
    if str(stored.method).upper() != key[0]:
        differences.append(f"method: recorded {stored.method}, this request {request.method}")
    if api_path(stored.path) != key[1]:
        differences.append(f"path: recorded {api_path(stored.path)}, this request {key[1]}")
    recorded_body = normalizer.normalize(stored)
    if recorded_body.text != live.text:
        differences.append("body:\n" + body_diff(recorded_body, live))
    played = " (already played)" if cassette.play_counts[position] else ""
    summary = f"closest recorded: interaction {position}, {stored.method} {api_path(stored.path)}{played}"
    return summary, "\n".join(differences)
