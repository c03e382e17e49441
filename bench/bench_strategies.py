"""Generation speed of `emulator.strategies`: examples per second for a message plus its SSE stream.

Each figure is how many examples hypothesis draws per second of CPU time in its generate phase (no
shrinking, no database, health checks off), the way a property test using the strategy pays for them. The
headline, `message_with_stream_per_second`, draws `streams()`: a whole message and every event that streams
it. `messages_per_second` draws the message alone, `raw_stream_per_second` adds the byte encoding and the
network chunking.

    python bench/bench_strategies.py
"""

from __future__ import annotations

import json
import time
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from emulator import strategies as ce

EXAMPLES = 300
QUICK_EXAMPLES = 60


def _rate(strategy: st.SearchStrategy[Any], examples: int) -> float:
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def draw(value: Any) -> None:
        del value

    started = time.process_time()
    draw()
    return examples / (time.process_time() - started)


def run(quick: bool = False, examples: int | None = None) -> dict[str, Any]:
    """Examples per CPU second for messages, message+stream, and message+stream as raw chunked bytes
    (`quick`: fewer examples, as `python -m bench --quick` asks)."""
    if examples is None:
        examples = QUICK_EXAMPLES if quick else EXAMPLES
    return {
        "message_with_stream_per_second": round(_rate(ce.streams(), examples), 1),
        "messages_per_second": round(_rate(ce.messages(), examples), 1),
        "raw_stream_per_second": round(_rate(ce.raw_streams(), examples), 1),
        "examples": examples,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
