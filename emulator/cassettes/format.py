"""The cassette file format: vcrpy's own (YAML by default), read and written through vcrpy.

* `Serializer` is vcrpy's YAML serializer with two additions that keep the format vcrpy's: multi-line strings
  (SSE streams) are written as YAML literal blocks so a cassette reads like the wire, and on reading, the
  `parsed_body` form some projects use (pydantic-ai stores JSON bodies as YAML under `parsed_body`) becomes a
  plain vcrpy `body` again. A cassette we write loads with stock vcrpy's serializer too.
* `AtomicPersister` is vcrpy's filesystem persister with atomic saves: the YAML goes to a temporary file in
  the same directory, is fsynced, then renamed over the cassette, so a run killed mid-write leaves the old
  cassette (or none), never a truncated one. What a save killed half-way leaves (`.<name>.<pid>.*.tmp`) is
  swept when that cassette is next opened or saved, once its writer is provably gone (`sweep_stale_temps`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from vcr.persisters.filesystem import CassetteDecodeError, CassetteNotFoundError, FilesystemPersister
from vcr.serialize import deserialize as vcr_deserialize
from vcr.serialize import serialize as vcr_serialize
from vcr.serializers import yamlserializer

CASSETTE_SUFFIXES = (".yaml", ".yml")

log = logging.getLogger("emulator.cassettes")


def _block_safe(text: str) -> bool:
    """Whether a YAML literal block can carry `text` exactly (YAML normalises CR and odd line breaks)."""
    if "\n" not in text or "\r" in text:
        return False
    return all(ch == "\n" or (ch.isprintable() and ch not in "\ufeff\x85\u2028\u2029") for ch in text)


def _represent_str(dumper: yaml.Dumper, data: str) -> yaml.ScalarNode:
    if _block_safe(data):
        # PyYAML itself falls back to a quoted style when a block cannot hold the text (e.g. trailing spaces).
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


class _Dumper(yamlserializer._CassetteDumper):  # type: ignore[misc,name-defined]
    """vcrpy's cassette dumper (it refuses Python objects the safe loader would reject) with block strings."""


_Dumper.add_representer(str, _represent_str)


def _unparse_bodies(data: Any) -> Any:
    """Turn `parsed_body` (a JSON body stored as YAML) back into vcrpy's `body` / `body.string`."""
    interactions = data.get("interactions") if isinstance(data, dict) else None
    if not isinstance(interactions, list):
        return data
    for interaction in interactions:
        if not isinstance(interaction, dict):
            continue
        for kind in ("request", "response"):
            part = interaction.get(kind)
            if isinstance(part, dict) and "parsed_body" in part:
                text = json.dumps(part.pop("parsed_body"), ensure_ascii=False)
                part["body"] = {"string": text} if kind == "response" else text
    return data


class Serializer:
    """vcrpy serializer (the `serializer=` of `Cassette`/`VCR`): YAML, literal blocks, `parsed_body` aware."""

    @staticmethod
    def deserialize(cassette_string: str) -> Any:
        return _unparse_bodies(yamlserializer.deserialize(cassette_string))

    @staticmethod
    def serialize(cassette_dict: Any) -> str:
        return yaml.dump(cassette_dict, Dumper=_Dumper, allow_unicode=True, width=120, sort_keys=True)


class UnreadableCassette(ValueError):
    """A cassette file exists but cannot be read. vcrpy would treat it as empty, and a recording run would
    then overwrite it: we refuse instead, so a cassette is never lost to a stray byte."""


class AtomicPersister(FilesystemPersister):  # type: ignore[misc]
    """vcrpy's filesystem persister, saving through temp file + fsync + rename, refusing unreadable files."""

    @classmethod
    def load_cassette(cls, cassette_path: str | os.PathLike[str], serializer: Any) -> Any:
        try:
            return super().load_cassette(cassette_path, serializer)
        except CassetteNotFoundError:
            raise
        except (CassetteDecodeError, yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as problem:
            raise UnreadableCassette(
                f"cassette {cassette_path} exists but cannot be read ({type(problem).__name__}: {problem}); "
                "fix or remove it (it is left untouched)"
            ) from problem

    @staticmethod
    def save_cassette(cassette_path: str | os.PathLike[str], cassette_dict: Any, serializer: Any) -> None:
        text = vcr_serialize(cassette_dict, serializer)
        atomic_write_text(Path(cassette_path), text)


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The writer's pid is in the name so that a later sweep can tell a crashed save from one in progress.
    handle, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    # the rename itself must survive a crash too
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    sweep_stale_temps(path)


# --- leftovers of killed saves ------------------------------------------------------------------------------

#: a temp file younger than this is never swept: its writer may be alive in a pid namespace we cannot see
#: (another container sharing the directory), and a save takes well under a second
STALE_TEMP_AGE_S = 60.0
#: past this age a temp file is swept even if a process with its writer's pid exists (the pid was reused)
ORPHAN_TEMP_AGE_S = 3600.0


def _temp_pattern(path: Path) -> re.Pattern[str]:
    """Our temp names for this cassette: `.<name>.<pid>.<8 random>.tmp`, or `.<name>.<8 random>.tmp` as
    written before the pid was added (mkstemp's random part is 8 of `[a-z0-9_]`)."""
    return re.compile(rf"\.{re.escape(path.name)}\.(?:(\d+)\.)?[a-z0-9_]{{8}}\.tmp")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another thread of this process may be saving the same cassette right now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except (OverflowError, OSError):
        return False
    return True


def sweep_stale_temps(path: Path, now: float | None = None) -> list[Path]:
    """Remove the temp files a killed save of this cassette left next to it; returns what was removed.

    Only names of our own pattern for this very cassette are considered, and only once they are older than
    `STALE_TEMP_AGE_S` and either carry no pid, name a dead process, or are older than `ORPHAN_TEMP_AGE_S`:
    a save in progress in another live process is never touched. Failures (a read-only checkout) are ignored.
    """
    pattern = _temp_pattern(path)
    prefix = f".{path.name}."
    moment = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = moment - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if age < STALE_TEMP_AGE_S:
            continue
        pid = int(match.group(1)) if match.group(1) else None
        if pid is not None and age < ORPHAN_TEMP_AGE_S and _pid_alive(pid):
            continue
        try:
            os.unlink(entry.path)
        except OSError:
            continue
        log.info("removed %s, left by an interrupted save of %s", entry.path, path)
        removed.append(Path(entry.path))
    return removed


# --- reading any cassette for lint and verify ------------------------------------------------------------


@dataclass(frozen=True)
class Interaction:
    """One recorded exchange, bodies as bytes (what went over the wire)."""

    number: int
    method: str
    uri: str
    request_headers: dict[str, str]
    request_body: bytes | None
    status: int
    response_headers: dict[str, list[str]]
    response_body: bytes

    @property
    def path(self) -> str:
        from urllib.parse import urlsplit

        return urlsplit(self.uri).path

    @property
    def is_stream(self) -> bool:
        content_type = ",".join(_header(self.response_headers, "content-type"))
        if "text/event-stream" in content_type:
            return True
        head = self.response_body.lstrip()[:6]
        return head.startswith((b"event:", b"data:"))


def _header(headers: dict[str, list[str]], name: str) -> list[str]:
    for key, values in headers.items():
        if key.lower() == name:
            return values if isinstance(values, list) else [values]
    return []


def _as_bytes(body: Any) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if hasattr(body, "read"):
        return bytes(body.read())
    if isinstance(body, list | tuple):
        return b"".join(_as_bytes(part) or b"" for part in body)
    return str(body).encode("utf-8")


class CassetteFormatError(ValueError):
    """The file is not a vcrpy cassette (or is damaged)."""


def read_interactions(path: Path) -> list[Interaction]:
    """Every interaction of a cassette, through vcrpy's deserializer (ours or pydantic-ai's format)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as problem:
        raise CassetteFormatError(f"cannot read: {problem}") from None
    if not text.strip():
        raise CassetteFormatError("empty file")
    try:
        requests, responses, *_ = vcr_deserialize(text, Serializer)
    except (yaml.YAMLError, ValueError, KeyError, TypeError) as problem:
        raise CassetteFormatError(f"not a vcrpy cassette: {problem}") from None
    interactions: list[Interaction] = []
    for number, (request, response) in enumerate(zip(requests, responses, strict=False)):
        try:
            status = int(response["status"]["code"])
            body = response.get("body") or {}
            interactions.append(
                Interaction(
                    number=number,
                    method=str(request.method).upper(),
                    uri=str(request.uri),
                    request_headers={str(k): str(v) for k, v in request.headers.items()},
                    request_body=_as_bytes(request.body),
                    status=status,
                    response_headers=dict(response.get("headers") or {}),
                    response_body=_as_bytes(body.get("string") if isinstance(body, dict) else body) or b"",
                )
            )
        except (KeyError, TypeError, ValueError) as problem:
            raise CassetteFormatError(f"interaction {number}: malformed ({problem!r})") from None
    return interactions


def is_cassette(path: Path) -> bool:
    """A YAML file whose top level has `interactions` (cheap check, used to pick cassettes out of a tree)."""
    if path.suffix not in CASSETTE_SUFFIXES or not path.is_file():
        return False
    try:
        with path.open(encoding="utf-8") as stream:
            head = stream.read(65536)
    except (OSError, UnicodeDecodeError):
        return False
    return any(line.startswith("interactions:") for line in head.splitlines())


__all__ = [
    "CASSETTE_SUFFIXES",
    "AtomicPersister",
    "CassetteDecodeError",
    "CassetteFormatError",
    "CassetteNotFoundError",
    "Interaction",
    "Serializer",
    "atomic_write_text",
    "is_cassette",
    "read_interactions",
    "sweep_stale_temps",
]
