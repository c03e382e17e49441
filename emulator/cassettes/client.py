"""Client-side vcrpy for Python users: match our cassettes in `vcr.VCR` the way the emulator does.

vcrpy 9.4 patches `httpx2`'s transports, so a cassette recorded by the emulator replays around the official
SDK with plain `vcr.use_cassette(path)` (matching on vcrpy's defaults: method, scheme, host, port, path,
query) as long as the SDK's base URL is the recorded one. `configure_vcr` adds the emulator's matching
(method, API path, semantic JSON body), the `parsed_body`-aware serializer and the atomic persister, and
filters the secret headers when vcrpy records.

With pytest-recording, in `conftest.py`:

    def pytest_recording_configure(config, vcr):
        from emulator.cassettes import configure_vcr

        configure_vcr(vcr)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from vcr import VCR

from emulator.cassettes.edge import SECRET_HEADERS
from emulator.cassettes.format import AtomicPersister, Serializer
from emulator.cassettes.matching import BodyMatcher, BodyNormalizer, path_matcher

MATCH_ON = ("method", "api_path", "json_body")


def configure_vcr(
    vcr: VCR | None = None, *, ignore: Iterable[str] = (), filter_headers: Iterable[str] = ()
) -> VCR:
    """Register the emulator's matchers, serializer and persister on `vcr` (a new `VCR` if None)."""
    vcr = vcr if vcr is not None else VCR()
    vcr.register_matcher("api_path", path_matcher)
    vcr.register_matcher("json_body", BodyMatcher(BodyNormalizer(ignore)))
    vcr.register_serializer("yaml", Serializer)
    vcr.register_persister(AtomicPersister)
    vcr.match_on = MATCH_ON
    vcr.filter_headers = sorted(SECRET_HEADERS | {name.lower() for name in filter_headers})
    return vcr


def vcr_config(*, filter_headers: Iterable[str] = ()) -> dict[str, Any]:
    """Options for pytest-recording's `vcr_config` fixture (the matchers need `configure_vcr` first)."""
    return {
        "match_on": list(MATCH_ON),
        "filter_headers": sorted(SECRET_HEADERS | {name.lower() for name in filter_headers}),
    }
