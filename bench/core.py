"""The runner's plumbing: timing loops, statistics, result rows, the table and the JSON report.

Every timed scenario is measured the way `../shared/sandbox-notes.md` §1 did: warm-up calls first, then many
calls, reported as median and p90; and every subject is measured *interleaved* with its baseline (blocks of
subject and baseline calls alternate), so load from other processes on this shared 2-core machine hits both
sides alike and the ratio stays meaningful even when the absolute numbers drift.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

Call = Callable[[], object]


class Skip(Exception):
    """A scenario's prerequisite is missing (no Docker engine, a feature not built yet): one 'skipped' row."""


@dataclass(frozen=True)
class Settings:
    """How hard to measure. `scale` multiplies iteration counts; `--quick` sets it low."""

    scale: float = 1.0
    quick: bool = False
    #: P8's load duration in seconds
    load_seconds: float = 20.0
    load_clients: int = 16

    def n(self, full: int, minimum: int = 3) -> int:
        return max(minimum, math.ceil(full * self.scale))


@dataclass(frozen=True)
class Stats:
    n: int
    median: float
    p90: float
    p99: float
    minimum: float
    maximum: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        if not samples:
            raise ValueError("no samples")
        ordered = sorted(samples)
        return cls(
            n=len(ordered),
            median=statistics.median(ordered),
            p90=percentile(ordered, 90),
            p99=percentile(ordered, 99),
            minimum=ordered[0],
            maximum=ordered[-1],
        )


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile of sorted samples (linear interpolation between closest ranks)."""
    if not ordered:
        raise ValueError("no samples")
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def time_calls(call: Call, n: int, warmup: int = 3) -> list[float]:
    """Seconds per call of `n` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    samples: list[float] = []
    clock = time.perf_counter
    for _ in range(n):
        started = clock()
        call()
        samples.append(clock() - started)
    return samples


def time_interleaved(*calls: Call, n: int, warmup: int = 3, block: int = 10) -> list[list[float]]:
    """Seconds per call for `n` calls of each of `calls`, in alternating blocks of `block` calls, so that
    every side sees the same machine load (the order rotates each round: none always follows another's warm
    caches)."""
    for _ in range(warmup):
        for call in calls:
            call()
    samples: list[list[float]] = [[] for _ in calls]
    clock = time.perf_counter
    done = 0
    round_number = 0
    while done < n:
        size = min(block, n - done)
        shift = round_number % len(calls)
        for index in [*range(shift, len(calls)), *range(shift)]:
            call, out = calls[index], samples[index]
            for _ in range(size):
                started = clock()
                call()
                out.append(clock() - started)
        done += size
        round_number += 1
    return samples


@dataclass
class Row:
    """One line of the table. Times are in milliseconds, sizes in MB, rates in requests per second."""

    id: str
    name: str
    status: str  # "pass", "fail", "skip", "info" (measured, no target of its own)
    unit: str = "ms"
    n: int | None = None
    median: float | None = None
    p90: float | None = None
    baseline_name: str | None = None
    baseline: float | None = None
    ratio: float | None = None
    target: str | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool | None:
        return {"pass": True, "fail": False}.get(self.status)


def skipped(scenario_id: str, name: str, reason: str, target: str | None = None) -> Row:
    return Row(id=scenario_id, name=name, status="skip", target=target, note=f"skipped: {reason}")


def judge(value: float, limit: float) -> str:
    return "pass" if value <= limit else "fail"


def ms(seconds: float) -> float:
    return seconds * 1000.0


def stats_ms(samples: Sequence[float]) -> Stats:
    return Stats.of([ms(s) for s in samples])


def ratio_row(
    scenario_id: str,
    name: str,
    subject: Sequence[float],
    baseline: Sequence[float],
    baseline_name: str,
    limit: float,
    note: str = "",
    baseline_offset_ms: float = 0.0,
) -> Row:
    """A row judged on median(subject) / (median(baseline) + offset) <= limit; samples in seconds."""
    s = stats_ms(subject)
    b = stats_ms(baseline)
    base = b.median + baseline_offset_ms
    ratio = s.median / base
    return Row(
        id=scenario_id,
        name=name,
        status=judge(ratio, limit),
        n=s.n,
        median=s.median,
        p90=s.p90,
        baseline_name=baseline_name,
        baseline=base,
        ratio=ratio,
        target=f"ratio <= {limit:g}",
        note=note,
        extra={"subject": asdict(s), "baseline": asdict(b)},
    )


# --- output ---------------------------------------------------------------------------------------------

COLUMNS = ("scenario", "median", "p90", "baseline", "ratio", "target", "result")


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.3f} ms" if value < 10 else f"{value:.1f} ms"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit in ("req/s", "ex/s"):
        return f"{value:.0f} {unit}"
    return f"{value:.3g} {unit}"


def _fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    return f"{ratio:.2f}" if ratio >= 0.01 else f"{ratio:.1e}"


def table_lines(rows: Iterable[Row]) -> list[str]:
    """The table as text lines: one line per row, plus its note (indented) when there is one."""
    body: list[tuple[str, ...]] = []
    notes: list[str] = []
    for row in rows:
        baseline = "-"
        if row.baseline is not None:
            baseline = _fmt(row.baseline, row.unit)
            if row.baseline_name:
                baseline = f"{baseline} ({row.baseline_name})"
        body.append(
            (
                f"{row.id} {row.name}",
                _fmt(row.median, row.unit),
                _fmt(row.p90, row.unit),
                baseline,
                _fmt_ratio(row.ratio),
                row.target or "-",
                row.status.upper() if row.status in ("pass", "fail") else row.status,
            )
        )
        notes.append(row.note)
    widths = [max(len(c), *(len(r[i]) for r in body)) if body else len(c) for i, c in enumerate(COLUMNS)]
    widths[3] = min(widths[3], 48)
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for cells, note in zip(body, notes, strict=True):
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
        if note:
            lines.append(f"    {note}")
    return lines


def environment() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_at_end": load,
    }


def report(rows: Sequence[Row], settings: Settings, started: float) -> dict[str, Any]:
    counts = {
        status: sum(1 for r in rows if r.status == status) for status in ("pass", "fail", "skip", "info")
    }
    return {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "duration_s": round(time.time() - started, 1),
        "settings": asdict(settings),
        "environment": environment(),
        "summary": counts,
        "rows": [asdict(r) | {"passed": r.passed} for r in rows],
    }


def write_json(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)
